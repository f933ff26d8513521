/* The inbound TLS view (docs/reports.md, "Inbound TLS view"), without I/O:
 * the sender domain of a session, the folding of the database's grouped
 * rows into an InboundTlsReport, and the failure-rate alarm's memory.
 *
 * db_inbound.c reads the rows (one GROUP BY over the time range) and hands
 * them here; controld's inbound.c serves the report, the metrics and the
 * warning from what comes out. Everything here is pure and unit-tested
 * (tests/unit/test_inbound_tls.c). */
#ifndef CONTROLD_INBOUND_TLS_H
#define CONTROLD_INBOUND_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "mxfleet.pb-c.h"

#define INBOUND_TLS_DOMAIN_MAX	256	/* a sender domain, NUL included */
#define INBOUND_TLS_NO_PTR	"(no-ptr)"
#define INBOUND_TLS_NO_FAILURE	"(no-failure)"	/* --by stage: not a failed session */

/* What a session is grouped by (mailctl tls inbound --by). */
enum inbound_tls_by {
	INBOUND_TLS_BY_SENDER_DOMAIN,
	INBOUND_TLS_BY_REMOTE_IP,
	INBOUND_TLS_BY_STAGE,
	INBOUND_TLS_BY_HOST,
};

/* "sender-domain" ("" too), "remote-ip", "stage", "host": 0, else -1. */
int inbound_tls_by_parse(const char *s, enum inbound_tls_by *out);
const char *inbound_tls_by_name(enum inbound_tls_by by);

/* The sender domain of a session, from its reverse-DNS name (ptr) and,
 * when it has none, its address:
 *   - the PTR name lower-cased, without a trailing dot, cut to its last two
 *     labels ("mail-db8eur05on2100.outbound.protection.outlook.com" ->
 *     "outlook.com"), or its last three when the second-to-last is a short
 *     second-level suffix under a two-letter country code (co, com, net,
 *     org, ac, gov, edu, ne, or, go, ltd, plc: "mx1.mail.example.co.uk" ->
 *     "example.co.uk");
 *   - no PTR: the IPv4 /24 ("192.0.2.0/24") or IPv6 /48 ("2001:db8:1::/48")
 *     of ip, so one unnamed network still shows as one sender;
 *   - neither: "(no-ptr)".
 * Simple on purpose: no Public Suffix List, so a provider whose names sit
 * under a private suffix (x.amazonaws.com) is grouped under it. */
void inbound_tls_sender_domain(const char *ptr, const char *ip, char *out, size_t outsz);

/* One grouped row of the database: count sessions sharing these values.
 * key is the grouping column (remote_ptr, remote_ip, tls_fail_stage or
 * host_id); ip is remote_ip when the key is a PTR name (else ignored). */
struct inbound_tls_row {
	const char	*key, *ip;
	int		 starttls;	/* mxfleet.v1.StartTls */
	const char	*stage, *reason, *version, *cipher;
	uint64_t	 sessions;
};

struct inbound_tls_agg;

struct inbound_tls_agg *inbound_tls_agg_new(enum inbound_tls_by by);
void inbound_tls_agg_add(struct inbound_tls_agg *a, const struct inbound_tls_row *r);
/* The report (groups with most failures first, then most attempts; each
 * group's failures and the versions and ciphers with most sessions first);
 * frees a. Free the report with inbound_tls_report_free. */
Mxfleet__V1__InboundTlsReport *inbound_tls_agg_finish(struct inbound_tls_agg *a,
    int64_t since_unix);
void inbound_tls_report_free(Mxfleet__V1__InboundTlsReport *r);

/* The alarm's memory: which sender domains are over the threshold now.
 * inbound_tls_alarm_update compares a fresh report (by sender domain)
 * with it and calls crossed once for each domain that has just gone over
 * (attempted >= min_attempts and failed / attempted >= threshold), not
 * again while it stays over; a domain under the threshold again (or gone
 * from the window) is forgotten and calls recovered, so its next crossing
 * is reported again. */
struct inbound_tls_alarm {
	char	**over;
	size_t	  nover;
};

struct inbound_tls_alarm_cb {
	void	(*crossed)(const Mxfleet__V1__InboundTlsGroup *g, void *arg);
	void	(*recovered)(const char *domain, void *arg);
	void	 *arg;
};

void inbound_tls_alarm_update(struct inbound_tls_alarm *al,
    const Mxfleet__V1__InboundTlsReport *rep, double threshold, uint64_t min_attempts,
    const struct inbound_tls_alarm_cb *cb);
void inbound_tls_alarm_free(struct inbound_tls_alarm *al);

#endif
