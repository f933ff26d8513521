/* controld's DNS jobs (docs/dns.md, "Check" and "Push"): the settings of the
 * `dns` group of controld.conf, and the Admin calls that check a domain's
 * live DNS and push its records. Both take seconds (DNS queries, STARTTLS
 * and HTTPS to every MX, an RFC 2136 exchange), so they run on a pool of
 * their own (struct dbq with dns.workers threads): a check never holds a
 * database worker that ingest or a heartbeat waits for. */
#ifndef CONTROLD_DNSOPS_H
#define CONTROLD_DNSOPS_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "grpc.h"

/* A zone controld may update (RFC 2136), and the TSIG key it signs with. */
struct dnsops_zone {
	char	*name;			/* lower case, no final dot */
	char	*server;		/* the primary: "IP", "IP:port", "[IPv6]:port" */
	char	*tsig_name;		/* key name, as the server knows it */
	char	*tsig_algorithm;	/* hmac-sha256 (default), hmac-sha512, ... */
	char	*tsig_secret;		/* base64, read from tsig_secret_file */
	char	**servers;		/* every authoritative server, asked directly
					 * by the rollover (default: server) */
	size_t	 nservers;
};

struct dnsops_config {
	char			*resolver;	/* validating resolver for checks; NULL: none */
	long long		 timeout;	/* seconds, each query / connection of a check */
	long long		 smtp_port;	/* where checks STARTTLS to each MX (25) */
	long long		 https_port;	/* where checks fetch the policy (443) */
	char			*ca_file;	/* PKIX trust for checks; NULL: the system's */
	long long		 workers;	/* threads for checks and pushes */
	long long		 rollover_interval;	/* seconds between rollover steps */
	struct dnsops_zone	*zones;
	size_t			 nzones;
};

/* The `dns` group (may be NULL: defaults, no zones). -1 with err filled. */
int dnsops_config_load(const config_setting_t *g, struct dnsops_config *cfg,
    struct conf_err *err);
void dnsops_config_free(struct dnsops_config *cfg);
/* The zone of cfg an owner name belongs to (the longest suffix), or NULL. */
const struct dnsops_zone *dnsops_zone_of(const struct dnsops_config *cfg, const char *owner);

/* Admin.DnsCheck and Admin.DnsPush (method table of controld.c). */
void dnsops_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void dnsops_push(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);

struct db;
/* Push domain's records as Admin.DnsPush does (its own transaction, under
 * the push lock), on a DNS worker: 0 with *changed the records added and
 * deleted, or -1 with why. The rollover driver's PUSH (rollover_run.c). */
int dnsops_push_domain(struct db *db, const struct dnsops_config *cfg, const char *domain,
    size_t *changed, char *why, size_t whysz);

#endif
