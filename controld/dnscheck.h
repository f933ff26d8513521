/* `mailctl dns check`: the DNS a hosted domain has live, compared with what
 * controld generates for it (dnsgen.h), and what the fleet's hosts serve.
 *
 * Everything goes through the configured resolver (lib/dns.h), so the check
 * sees what a sender using a validating resolver sees: MX, addresses (a
 * CNAME on the way is reported), PTR and its forward confirmation, TLSA with
 * its DNSSEC status, the MTA-STS TXT and policy (fetched over HTTPS from an
 * address the resolver gives for mta-sts.<domain>, with lib/sts_fetch.c),
 * TLSRPT for the domain and every host, SPF, DMARC and DKIM. Each fleet
 * host's published addresses get a live STARTTLS (SNI = the MX name): the
 * certificate served is compared with the names and the TLSA records.
 *
 * Each finding (docs/dns.md, "Findings") is a struct dnsgen_error: severity
 * ("error", "warning", "info"), a stable code, the name or address
 * concerned, what is wrong, why it matters and how to fix it. A lookup that
 * gives no answer (timeout, SERVFAIL) is the warning check-incomplete: what
 * it would have checked is not claimed right or wrong.
 *
 * Blocking: run it on a worker thread. Every step is bounded: each DNS call
 * by the resolver's bound, each STARTTLS probe by smtp_ms, the policy fetch
 * by https_ms; the whole check by their sum over the hosts' addresses.
 * Thread-safe: no state outside the call. */
#ifndef CONTROLD_DNSCHECK_H
#define CONTROLD_DNSCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "dnsgen.h"

#define DNSCHECK_SMTP_MS	20000	/* default bound of one STARTTLS probe */
#define DNSCHECK_HTTPS_MS	20000	/* default bound of the policy fetch */
#define DNSCHECK_EXPIRY_WARN	(14 * 86400)	/* cert-expiring: this close to notAfter */

struct dnscheck_opts {
	const struct dns_resolver *resolver;
	unsigned	 smtp_port;	/* 0: 25 */
	unsigned	 https_port;	/* 0: 443 (the MTA-STS policy) */
	const char	*ca_file;	/* PKIX roots for the policy; NULL: the system's */
	int		 smtp_ms;	/* one probe: connect to certificate; 0: default */
	int		 https_ms;	/* the policy fetch; 0: default */
	const char	*helo;		/* the EHLO name; NULL: "dnscheck.invalid" */
	int64_t		 now;		/* unix seconds, for certificate expiry; 0: the clock */
	/* Tests: reverse names under this instead of in-addr.arpa / ip6.arpa
	 * (dns_reverse_name); NULL in production. */
	const char	*reverse_root;
};

struct dnscheck_report {
	struct dnsgen_error *findings;	/* in the order found */
	size_t		 nfindings;
	size_t		 nerrors, nwarnings;
};

/* Check the live DNS of want_in->name against want (dnsgen_domain's result
 * for want_in). Fills *out (free with dnscheck_report_free) and returns the
 * number of "error" findings, or -1 when the check cannot start (no
 * resolver, no domain name): then out holds one finding saying why. */
int dnscheck_domain(const struct dnsgen_domain *want_in, const struct dnsgen_result *want,
    const struct dnscheck_opts *o, struct dnscheck_report *out);
void dnscheck_report_free(struct dnscheck_report *r);

#endif
