/* mxd's configuration: loaded from a libconfig file, every key checked. */
#ifndef MXD_CONFIG_H
#define MXD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"
#include "netaddr.h"
#include "tls.h"

struct dns_tlsa_result;

enum mxd_nexthop_proto { MXD_NH_SMTP, MXD_NH_LMTP };

struct mxd_nexthop {
	enum mxd_nexthop_proto	proto;
	int			is_unix;
	char			host[256];
	int			port;
	char			path[108];
	char			sni[256];	/* name for SNI when host is an address */
	int			verify;		/* check the certificate names sni (PKIX) */
	const struct dns_tlsa_result *tlsa;	/* DANE: verify with these records */
};

struct mxd_domain {
	char			*name;
	char			*next_hop;	/* as written, for logs */
	struct mxd_nexthop	 nh;
};

/* Outbound TLS policy for a destination domain, from controld. */
struct mxd_tls_policy {
	char	*domain;
	char	*mode;		/* none, may, encrypt, dane, dane-only, verify, secure */
};

struct mxd_config {
	char			*path;
	char			*hostname;
	char			**listen;
	size_t			 nlisten;
	int			 workers;
	char			*user;
	char			*spool_dir;
	enum log_level		 log_level;
	int			 log_syslog;
	struct netaddr_cidr	*trusted;
	size_t			 ntrusted;
	char			*relay_next_hop;
	struct mxd_nexthop	 relay_nh;
	int			 received_header;
	struct mxd_domain	*domains;
	size_t			 ndomains;

	struct tls_cert_spec	*certs;
	size_t			 ncerts;
	int			 tls_min_version;
	int			 session_tickets;

	uint64_t		 message_size;
	int			 max_recipients;
	int			 max_errors;
	int			 connections_per_ip;
	int			 max_connections;
	int			 command_timeout;
	int			 data_timeout;
	int			 tls_handshake_timeout;
	int			 shutdown_timeout;

	/* control plane (absent: mxd runs standalone) */
	char			*control_server;	/* "host:port" as written */
	char			*control_host;
	int			 control_port;
	char			*control_authority;
	char			*control_host_id;
	char			*control_cert, *control_key, *control_ca;
	int			 control_journal_mb;
	int			 control_batch;
	int			 control_heartbeat;
	char			*snapshot_path;		/* cached ConfigSnapshot */
	uint64_t		 snapshot_version;	/* merged into this config */
	struct mxd_tls_policy	*policies;		/* from the snapshot; applied by
							   outbound delivery (issue 4) */
	size_t			 npolicies;

	char			*resolver;	/* "IP[:port]": direct MX delivery */
	int			 remote_port;	/* MX port (25; tests change it) */
	int			 sts_port;	/* MTA-STS HTTPS port (443; tests) */
	char			*ca_file;	/* PKIX trust for MTA-STS; NULL: system */
	char			*sts_cache_dir;	/* NULL: spool_dir/sts */

	int			 retry_min;
	int			 retry_max;
	int			 max_age;
	int			 delay_dsn;	/* seconds deferred before a delay DSN; 0: none */
	int			 next_hop_tls;	/* 1: may, 0: none */
};

int mxd_config_load(const char *path, struct mxd_config **out, char *err, size_t errsz);
void mxd_config_free(struct mxd_config *cfg);
const struct mxd_domain *mxd_config_domain(const struct mxd_config *cfg, const char *domain);
int mxd_config_trusted(const struct mxd_config *cfg, const struct sockaddr *sa);
/* Where mail for this recipient goes: its domain's next hop, or the relay
 * next hop, or NULL (no route). name receives the next hop as written. */
const struct mxd_nexthop *mxd_config_route(const struct mxd_config *cfg,
    const char *rcpt, const char **name);
/* "smtp:host:port", "lmtp:host:port", "lmtp:unix:/path". 0 or -1. */
int mxd_nexthop_parse(const char *s, struct mxd_nexthop *nh);
/* Cache a ConfigSnapshot received from controld (atomically: tmp, fsync,
 * rename). mxd_config_load merges the cached snapshot's domains into the
 * file's (controld's entry wins for a domain in both). */
int mxd_snapshot_store(const struct mxd_config *cfg, const uint8_t *msg, size_t len,
    char *err, size_t errsz);
uint64_t mxd_snapshot_version(const struct mxd_config *cfg);

#endif
