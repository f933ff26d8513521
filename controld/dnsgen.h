/* The DNS a hosted domain needs, computed from what controld knows: the
 * hosts serving it (their MX names, addresses, served keys and next key, as
 * each mxd reports them), the operator's settings (mailctl dns set) and the
 * domain's DKIM keys. I/O-free: the caller loads a struct dnsgen_domain from
 * PostgreSQL (db_dns.c) and gets records, the MTA-STS policy and its id, and
 * the errors that must be fixed before anything is published.
 *
 * What is generated (docs/dns.md, "Records"), every owner absolute with the
 * final dot:
 *   <domain>                 MX 10 <mx_name>      one per host (never a CNAME)
 *   <mx_name>                A / AAAA             the host's addresses
 *   _25._tcp.<mx_name>       TLSA 3 1 1 <spki>    every key the host serves
 *                                                 now AND its next key
 *                                                 (RFC 7671 8.1: published
 *                                                 before the switch)
 *   mta-sts.<domain>         A / AAAA             every host (each mxd serves
 *                                                 the policy over HTTPS)
 *   _mta-sts.<domain>        TXT "v=STSv1; id=<id>"  unless sts_mode is none
 *   _smtp._tls.<domain>      TXT "v=TLSRPTv1; rua=..."
 *   _smtp._tls.<mx_name>     TXT "v=TLSRPTv1; rua=..."  per host
 *   <domain>                 TXT SPF
 *   _dmarc.<domain>          TXT DMARC
 *   <sel>._domainkey.<domain> TXT "v=DKIM1; k=...; p=..."  active and next keys
 *
 * The policy (RFC 8461 3.2) lists every name a sender may reach the fleet
 * by: each host's mx_name and aliases. Its id is derived from its content
 * (hex of the first 16 bytes of its SHA-256): it changes exactly when the
 * content does, and every controld replica computes the same one. */
#ifndef MXFLEET_DNSGEN_H
#define MXFLEET_DNSGEN_H

#include <stddef.h>
#include <stdint.h>

struct dnsgen_cert {
	char	*spki_sha256;		/* 64 lower-case hex digits */
	char	**names;		/* DNS subjectAltNames, "*.x" allowed */
	size_t	 nnames;
	int64_t	 not_after;		/* unix seconds */
};

struct dnsgen_host {
	char	*host_id;
	char	*mx_name;		/* no final dot */
	char	**addrs;		/* IP literals */
	size_t	 naddrs;
	char	**aliases;		/* other names senders reach it by */
	size_t	 naliases;
	struct dnsgen_cert *certs;	/* served now */
	size_t	 ncerts;
	char	*next_spki;		/* "" or NULL: none reported */
	char	**retired_spki;		/* keys it served before, no longer */
	size_t	 nretired;
};

enum dnsgen_dkim_state { DNSGEN_DKIM_ACTIVE, DNSGEN_DKIM_NEXT };

struct dnsgen_dkim {
	char	*selector;
	char	*key_type;		/* "rsa" or "ed25519" (k=) */
	char	*public_b64;		/* p= */
	enum dnsgen_dkim_state state;
};

struct dnsgen_domain {
	char	*name;			/* lower case, no final dot */
	uint32_t ttl;
	struct dnsgen_host *hosts;
	size_t	 nhosts;
	char	*sts_mode;		/* enforce, testing, none */
	uint32_t sts_max_age;
	char	*tlsrpt_rua;		/* "" : mailto:tlsrpt@<name> */
	char	*spf;			/* "" : v=spf1 ip4:.. ip6:.. -all from addrs */
	char	*dmarc;			/* "" : v=DMARC1; p=none; rua=mailto:dmarc@<name> */
	struct dnsgen_dkim *dkim;
	size_t	 ndkim;
};

struct dnsgen_rr {
	char	*owner;			/* absolute, final dot */
	uint32_t ttl;
	char	*type;			/* "MX", "A", "AAAA", "TLSA", "TXT" */
	char	*rdata;			/* presentation form (TXT quoted, split in
					 * <= 255-byte strings) */
	char	*why;			/* one line for people */
};

/* A problem that must be fixed before publishing (a certificate that does
 * not cover a name the policy lists, a host with no address ...). The same
 * codes and words as dns check's findings (docs/dns.md, "Findings"). */
struct dnsgen_error {
	char	*severity;		/* "error" (blocks publishing), "warning" */
	char	*code;
	char	*subject;
	char	*what;
	char	*why;
	char	*fix;
};

struct dnsgen_result {
	struct dnsgen_rr *rrs;
	size_t	 nrrs;
	char	*sts_policy;		/* NULL when sts_mode is none, or
					 * no host can be published */
	char	 sts_id[33];		/* "" when sts_policy is NULL */
	struct dnsgen_error *errors;
	size_t	 nerrors;
};

/* 0, or -1 with the reason in err (and an empty *out) when the domain name
 * itself is unusable: missing, not a DNS name, or too long for its
 * _smtp._tls owner. Everything else goes in out->errors and still gives
 * records: problems of the fleet, and any host value or setting that cannot
 * be put in a record (left out, or replaced by its default). */
int dnsgen_domain(const struct dnsgen_domain *d, struct dnsgen_result *out, char *err,
    size_t errsz);
void dnsgen_result_free(struct dnsgen_result *r);

/* Does a certificate name (perhaps "*.example.com", RFC 6125 6.4.3: the
 * wildcard is the whole left-most label and matches exactly one label)
 * cover host? ASCII case-insensitive, a final dot ignored on either. */
int dnsgen_name_covers(const char *pattern, const char *host);

/* The MTA-STS id of a policy text (32 hex digits, NUL). */
void dnsgen_sts_id(const char *policy, char id[33]);

#endif
