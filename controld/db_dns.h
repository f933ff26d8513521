/* A hosted domain's DNS in PostgreSQL (schema/008, docs/dns.md "Settings"):
 * its settings (domain_dns, domain_aliases), its DKIM keys (dkim_keys) and
 * what dnsgen needs to generate its records, read from the hosts' reports
 * (host_identity, host_certs). Same rules as db.h: parameters only, blocking,
 * one handle per thread, DB_* codes with db_errmsg.
 *
 * Settings are replaced whole: db_dns_set stores exactly the message it is
 * given, an unset field (0, "", no hosts, no aliases) meaning the default,
 * so "mailctl dns set D --ttl 600" also puts back the default of every
 * option it does not name. Storing what is stored already changes nothing:
 * no new configuration version, the same MTA-STS policy id. */
#ifndef CONTROLD_DB_DNS_H
#define CONTROLD_DB_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "db.h"
#include "dnsgen.h"
#include "mxfleet.pb-c.h"

#define DB_DNS_DEFAULT_MAX_AGE	604800
#define DB_DNS_DEFAULT_TTL	3600
#define DB_DNS_MAX_TTL		604800
#define DB_DNS_MAX_MAX_AGE	31557600

/* Store d's settings (checked by the caller: admin_dns.c) for the hosted
 * domain d->domain, in one transaction that also makes the domain's DKIM
 * keys if it has none (dkim.h; made at now). DB_ENOTFOUND: the domain is not
 * hosted; DB_EINVAL: a host (in hosts or an alias) controld does not know.
 * *version (may be NULL) gets the configuration version that includes it. */
int db_dns_set(struct db *db, const Mxfleet__V1__DomainDns *d, time_t now, uint64_t *version);
/* The settings in force (defaults filled in: sts_mode, sts_max_age, ttl);
 * DB_ENOTFOUND when the domain is not hosted. Release with db_dns_get_free. */
int db_dns_get(struct db *db, const char *domain, Mxfleet__V1__DomainDns **out);
void db_dns_get_free(Mxfleet__V1__DomainDns *d);
/* Make the domain's active and next DKIM keys if it lacks them. */
int db_dns_dkim_ensure(struct db *db, const char *domain, time_t now);

/* Everything dnsgen_domain needs for a hosted domain, read in one
 * REPEATABLE READ transaction: the serving hosts (domain_dns.hosts, or
 * every host that reported an identity) with their MX name, addresses,
 * served and retired keys, next key and aliases; the settings with their
 * defaults; the active and next DKIM keys (public halves only). Release
 * with db_dns_domain_free. */
int db_dns_load(struct db *db, const char *domain, struct dnsgen_domain *out);
void db_dns_domain_free(struct dnsgen_domain *d);

/* For db_config_snapshot, inside its transaction: the MTA-STS policy of
 * every hosted domain whose sts_mode is not none and that some host serves.
 * Release with db_dns_sts_free. */
int db_dns_snapshot_sts(struct db *db, Mxfleet__V1__MtaStsPolicy ***out, size_t *n);
void db_dns_sts_free(Mxfleet__V1__MtaStsPolicy **v, size_t n);

#endif
