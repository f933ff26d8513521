/* What the files of dnscheck share (dnscheck.c, dnscheck_host.c,
 * dnscheck_sts.c, dnscheck_probe.c). Not for other modules. */
#ifndef CONTROLD_DNSCHECK_INT_H
#define CONTROLD_DNSCHECK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "dnscheck.h"
#include "dnsgen.h"
#include "tlsid.h"

/* One check in progress. */
struct dnscheck {
	const struct dnsgen_domain	*in;
	const struct dnsgen_result	*want;
	const struct dnscheck_opts	*o;
	struct dnscheck_report		*out;
	struct dns_mx_result		 mx;	/* the domain's published MX */
	int				 mx_known;	/* mx holds an answer */
};

/* Add a finding: severity, why and the general fix come from the code's
 * entry in the table (dnscheck.c); fix_detail (or NULL) is appended to the
 * fix; what is formatted. */
void dnscheck_add(struct dnscheck *c, const char *code, const char *subject,
    const char *fix_detail, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A lookup that gave no usable answer: check-incomplete, or dnssec-bogus
 * when the resolver said the answer failed validation. 1 when it added one. */
int dnscheck_lookup_failed(struct dnscheck *c, const char *name, const char *type,
    const struct dns_status *st);

/* Lowercase hex of n bytes (out: 2n+1). */
void dnscheck_hex(const unsigned char *b, size_t n, char *out);
/* A generated TXT rdata in presentation form ("..." "...") as one string,
 * the character-strings joined (RFC 1035 5.1 escapes undone). Caller frees. */
char *dnscheck_txt_unquote(const char *rdata);

/* Per fleet host: addresses, PTR, STARTTLS, TLSA, TLSRPT (dnscheck_host.c). */
void dnscheck_host(struct dnscheck *c, const struct dnsgen_host *h);
/* The _mta-sts TXT and the policy served (dnscheck_sts.c). */
void dnscheck_sts(struct dnscheck *c);
/* TLSRPT records at name: missing or several (dnscheck.c). */
void dnscheck_tlsrpt(struct dnscheck *c, const char *name);
/* How many of t's records begin with prefix (a record's tag, e.g.
 * "v=spf1"); *first (if not NULL) is the index of the first. */
size_t dnscheck_txt_count(const struct dns_txt_result *t, const char *prefix, size_t *first);

/* ---- the live STARTTLS (dnscheck_probe.c) */
struct dnscheck_probe {
	int		 ok;		/* a certificate was taken */
	char		 fail[300];	/* why not: connect, greeting, no STARTTLS, TLS */
	int		 no_starttls;	/* the server answered but offered no STARTTLS */
	struct tlsid_cert id;		/* the leaf's names, SPKI SHA-256, notAfter */
	char		 full[65];	/* SHA-256 of the whole certificate, hex */
};

/* Connect to ip:port, read the greeting, EHLO helo, STARTTLS, handshake with
 * SNI sni, keep the certificate; all within timeout_ms. */
void dnscheck_probe_run(const char *ip, unsigned port, const char *sni, const char *helo,
    int timeout_ms, struct dnscheck_probe *out);
void dnscheck_probe_free(struct dnscheck_probe *p);
/* Whether the EHLO reply text (lines "250-..." LF-separated, as struct
 * smtp_reply keeps them) advertises STARTTLS. */
int dnscheck_probe_has_starttls(const char *text, size_t len);

#endif
