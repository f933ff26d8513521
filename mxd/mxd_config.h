/* mxd's configuration: loaded from a libconfig file, every key checked. */
#ifndef MXD_CONFIG_H
#define MXD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "log.h"
#include "netaddr.h"
#include "tls.h"

#include "nexthop.h"
#include "rcpt_check.h"

struct mxd_domain {
	char			*name;
	char			*next_hop;	/* as written, for logs */
	struct mxd_nexthop	 nh;
	struct rcpt_check	 rcpt;		/* who RCPT accepts (backscatter) */
};

/* Outbound TLS policy for a destination (Postfix's security levels): from
 * the file's tls_policies and controld's snapshot. */
enum mxd_tls_mode {
	MXD_TLS_DEFAULT,	/* no entry: DANE, then MTA-STS, else opportunistic */
	MXD_TLS_NONE,		/* plaintext only */
	MXD_TLS_MAY,		/* opportunistic; DANE and MTA-STS are not used */
	MXD_TLS_ENCRYPT,	/* TLS required, certificate not checked */
	MXD_TLS_DANE,		/* DANE when usable TLSA exists, else opportunistic */
	MXD_TLS_DANE_ONLY,	/* DANE required */
	MXD_TLS_VERIFY,		/* TLS required, certificate names the MX host (PKIX) */
	MXD_TLS_SECURE,		/* TLS required, certificate names the domain or a subdomain */
};

struct mxd_tls_policy {
	char			*domain;	/* "example.org", or ".example.org": subdomains */
	char			*mode;		/* as written */
	enum mxd_tls_mode	 level;
};

/* A route (first match wins): mail from sender_domain to recipient_domain
 * ("" or NULL: any), from attempt min_attempt on, goes through transport. */
struct mxd_route {
	char			*sender_domain;
	char			*recipient_domain;
	int			 min_attempt;
	char			*transport;	/* as written */
	struct mxd_nexthop	 nh;
};

/* SASL PLAIN credentials for a submission transport's server. */
struct mxd_sasl {
	char			*server;	/* "host:port" as in the transport */
	char			*user;
	char			*password;	/* read from password_file; never logged */
};

/* delivery.destinations: one destination's own concurrency ceiling. */
struct mxd_dest_limit {
	char	*name;		/* a domain (direct MX) or a next hop as written */
	int	 concurrency;
};

/* One controld address of control.server / control.servers. */
struct mxd_control_server {
	char	*addr;		/* "host:port" as written */
	char	*host;		/* brackets of an IPv6 literal removed */
	int	 port;
};

/* An MTA-STS policy from controld's snapshot, served by mxd-https at
 * https://mta-sts.<domain>/.well-known/mta-sts.txt (docs/dns.md). */
struct mxd_mta_sts {
	char	*domain;	/* lower case, no final dot */
	char	*host;		/* "mta-sts.<domain>" */
	char	*policy;	/* the file's exact bytes */
	size_t	 len;
	char	*id;		/* of its _mta-sts TXT record */
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
	int			 core_dumps;	/* processes dumpable (debugging only) */
	struct netaddr_cidr	*trusted;
	size_t			 ntrusted;
	char			*relay_next_hop;
	struct mxd_nexthop	 relay_nh;
	int			 received_header;
	struct mxd_domain	*domains;
	size_t			 ndomains;
	char			*recipient_delimiter;	/* "+": user+tag is user; NULL: none */

	struct tls_cert_spec	*certs;
	size_t			 ncerts;
	int			 tls_min_version;
	int			 session_tickets;
	/* the host's identity for DNS (mxd_identity.h) */
	char			*next_key;		/* tls.next_key; NULL: default */
	char			**public_addresses;	/* canonical IP text */
	size_t			 npublic_addresses;
	int			 public_addresses_set;	/* else: listen's addresses */
	/* the key rollover's switch (mxd_keyswitch.h) */
	char			*next_cert;		/* tls.next_cert; NULL: default */
	struct mxd_key_switch {
		char	*host_id;
		char	 to_spki[65];
	}			*key_switches;		/* the snapshot's, every host's */
	size_t			 nkey_switches;
	char			*tlsrpt_sender;		/* the snapshot's (NULL: none); its
							   sessions are tlsrpt_exempt */
	/* issue 12: the snapshot's TLSRPT addresses (rptspool.h), sorted */
	char			**tlsrpt_addresses;
	size_t			 ntlsrpt_addresses;

	uint64_t		 message_size;
	int			 max_recipients;
	int			 max_errors;
	int			 verify_timeout;	/* recipient_verify: whole probe, seconds */
	int			 verify_positive_ttl;	/* seconds a 2xx answer is kept */
	int			 verify_negative_ttl;	/* seconds a 5xx answer is kept */
	int			 verify_cache_size;	/* addresses kept per worker */
	int			 junk_commands;	/* EHLO/HELO/NOOP/RSET/VRFY/HELP per message */
	int			 connections_per_ip;
	int			 max_connections;
	int			 command_timeout;
	int			 data_timeout;
	int			 tls_handshake_timeout;
	int			 shutdown_timeout;

	/* control plane (absent: mxd runs standalone) */
	char			*control_server;	/* the first of control_servers */
	char			*control_host;
	int			 control_port;
	struct mxd_control_server *control_servers;	/* control.server(s), in order */
	size_t			 ncontrol_servers;
	int			 control_ack_timeout;	/* s: no ack, try the next server */
	char			*control_authority;
	char			*control_host_id;
	char			*control_cert, *control_key, *control_ca;
	int			 control_journal_mb;
	int			 control_batch;
	int			 control_batch_bytes;	/* a batch's encoded size bound */
	int			 control_heartbeat;
	char			*snapshot_path;		/* cached ConfigSnapshot */
	uint64_t		 snapshot_version;	/* merged into this config */
	struct mxd_tls_policy	*policies;		/* the snapshot's, then the file's */
	size_t			 npolicies;
	struct mxd_route	*routes;		/* the snapshot's, then the file's */
	size_t			 nroutes;
	struct mxd_sasl		*sasl;
	size_t			 nsasl;

	char			*resolver;	/* "IP[:port]": direct MX delivery */
	int			 remote_port;	/* MX port (25; tests change it) */
	int			 sts_port;	/* MTA-STS HTTPS port (443; tests) */
	char			*ca_file;	/* PKIX trust for MTA-STS; NULL: system */
	char			 source_ipv4[16];	/* connect from this address; "": */
	char			 source_ipv6[46];	/* the kernel picks */
	char			*sts_cache_dir;	/* NULL: spool_dir/sts */
	int			 sts_refresh_interval;	/* seconds between looks for cached
							   policies to refresh */

	int			 retry_min;
	int			 retry_max;
	int			 max_age;
	int			 delay_dsn;	/* seconds deferred before a delay DSN; 0: none */
	int			 next_hop_tls;	/* 1: may, 0: none */

	/* the scheduler and its delivery agents (docs/delivery.md#agents) */
	int			 nexthop_agents;	/* agents at once: configured next hops */
	int			 mx_agents;		/* agents at once: direct MX delivery */
	int			 destination_concurrency;	/* a window's ceiling */
	int			 nexthop_concurrency;	/* of next hops; 0: the above */
	int			 mx_concurrency;	/* of MX domains; 0: the above */
	int			 initial_concurrency;	/* a window's start */
	int			 dead_after;		/* connection failures in a row */
	int			 dead_time;		/* seconds a dead destination waits */
	int			 recipient_limit;	/* recipients per transaction */
	int			 connection_cache_time;	/* seconds an idle connection is kept */
	struct mxd_dest_limit	*dest_limits;	/* delivery.destinations */
	size_t			 ndest_limits;
	/* The delivery client's deadlines, seconds (delivery.*_timeout), and
	 * the floor rate for sending a message (bytes/s): smtp_client.h. */
	int			 smtp_connect_timeout;
	int			 smtp_command_timeout;
	int			 smtp_data_timeout;
	int			 smtp_transaction_timeout;
	int			 smtp_min_data_rate;
	/* The MX walk of one attempt: addresses tried, sessions that got a
	 * greeting (0: no limit). */
	int			 mx_address_limit;
	int			 mx_session_limit;

	/* MTA-STS hosting (mxd/https/https_config.h) */
	char			**mta_sts_listen;	/* default: listen's, port 443 */
	size_t			 nmta_sts_listen;
	int			 mta_sts_listen_set;	/* written in the file (even []) */
	struct tls_cert_spec	*mta_sts_certs;		/* besides the SMTP ones */
	size_t			 nmta_sts_certs;
	struct mxd_mta_sts	*mta_sts;		/* from the snapshot */
	size_t			 nmta_sts;
};

int mxd_config_load(const char *path, struct mxd_config **out, char *err, size_t errsz);
void mxd_config_free(struct mxd_config *cfg);
const struct mxd_domain *mxd_config_domain(const struct mxd_config *cfg, const char *domain);
/* Log a warning naming each hosted domain with no recipient check (any
 * local part accepted: a backscatter source), and how each checked one is
 * checked. The master calls it at start and after each reload. */
void mxd_config_log_rcpt_checks(const struct mxd_config *cfg);
int mxd_config_trusted(const struct mxd_config *cfg, const struct sockaddr *sa);
/* Where mail for this recipient goes, on the given attempt (1, 2, ...): a
 * local domain's next hop, else the first matching route, else the relay
 * next hop; NULL when none applies (direct MX delivery, if configured).
 * A route whose transport is "mx" returns its nexthop (proto MXD_NH_MX).
 * name receives the next hop or transport as written. */
/* The concurrency ceiling of destination `name`, a domain for direct MX
 * delivery (mx 1) or a next hop: its delivery.destinations entry, else
 * delivery.mx_concurrency or nexthop_concurrency, else
 * delivery.destination_concurrency. */
int mxd_config_dest_concurrency(const struct mxd_config *cfg, const char *name, int mx);
const struct mxd_nexthop *mxd_config_route(const struct mxd_config *cfg, const char *sender,
    const char *rcpt, int attempt, const char **name);
/* The TLS policy for a destination domain or host: an exact entry, else the
 * nearest ".parent" entry; NULL when none. */
const struct mxd_tls_policy *mxd_config_tls_policy(const struct mxd_config *cfg,
    const char *dest);
/* A policy mode's name to its level; -1 when unknown. */
int mxd_tls_mode_parse(const char *mode);
const struct mxd_sasl *mxd_config_sasl(const struct mxd_config *cfg, const char *host, int port);
/* The largest snapshot mxd takes from controld and reads from its cache:
 * far above realistic fleets (10,000 domains are about 1 MiB). */
#define MXD_SNAPSHOT_MAX_BYTES	(64u << 20)
/* Cache a ConfigSnapshot received from controld (atomically: tmp, fsync,
 * rename). mxd_config_load merges the cached snapshot's domains into the
 * file's (controld's entry wins for a domain in both). */
int mxd_snapshot_store(const struct mxd_config *cfg, const uint8_t *msg, size_t len,
    char *err, size_t errsz);
uint64_t mxd_snapshot_version(const struct mxd_config *cfg);

#endif
