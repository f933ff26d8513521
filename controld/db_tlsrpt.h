/* The TLS reports we send (RFC 8460), aggregated in PostgreSQL from the
 * outbound outcomes of every host (docs/reports.md, "Aggregation"). Same
 * rules as db.h: parameters only, blocking, one handle per thread, DB_*
 * codes with db_errmsg.
 *
 * A report covers one UTC day and one policy domain, of one kind:
 *   TLSRPT_KIND_DOMAIN  the recipient domain's report (its _smtp._tls rua):
 *                       every sts, no-policy-found and tlsa result whose
 *                       policy_domain is the domain;
 *   TLSRPT_KIND_HOST    an MX host's own report (_smtp._tls.<mx>): the tlsa
 *                       results of sessions with that host, whatever the
 *                       recipient domain, with policy-domain the host name.
 * Counted: result_type "success" (successful sessions) and the eleven
 * failure result types of RFC 8460 4.3 (failed sessions). Anything else
 * (mxd's "connection-failure": no TCP session, nothing negotiated) is in
 * neither count nor in any failure-details.
 *
 * Each call is one query that reads the day's partition once (start_ts in
 * [day, day+1)): one scan, hash aggregation, no per-row round trip. A
 * sender building every report of a day calls db_tlsrpt_reports once, not
 * db_tlsrpt_report per domain (which would read the day once per report). */
#ifndef CONTROLD_DB_TLSRPT_H
#define CONTROLD_DB_TLSRPT_H

#include <stddef.h>
#include <time.h>

#include "db.h"
#include "tlsrpt.h"

enum tlsrpt_kind {
	TLSRPT_KIND_DOMAIN = 0,
	TLSRPT_KIND_HOST = 1,
};

/* Who submits: the reports group of controld.conf (reports_conf.h). */
struct db_tlsrpt_submitter {
	const char	*organization_name;
	const char	*contact_info;
	const char	*submitter;		/* a domain */
};

/* One (policy domain, kind) with data on a day. */
struct db_tlsrpt_pair {
	char			*policy_domain;
	enum tlsrpt_kind	 kind;
};

/* "domain" / "host". */
const char *db_tlsrpt_kind_name(enum tlsrpt_kind kind);

/* A UTC day written YYYY-MM-DD (a real date, 1970..9999): 0 with *begin =
 * its 00:00:00Z, or -1. */
int db_tlsrpt_day(const char *day, time_t *begin);

/* The report id: "<YYYY-MM-DD>_<policy-domain>_<kind>@<submitter>",
 * stable for the same (day, domain, kind, submitter) and unique across them;
 * a dot-atom@dot-atom, as the mailed report's Subject and Message-ID need
 * (RFC 8460 5.3, RFC 5322 msg-id: no ':'). Malloc'd. */
char *db_tlsrpt_report_id(time_t begin, const char *policy_domain, enum tlsrpt_kind kind,
    const char *submitter);

/* The report of policy_domain (lower case, no final dot) for the UTC day
 * starting at begin: filled in out (free with tlsrpt_report_free) with the
 * submitter's names, the date range 00:00:00Z..23:59:59Z, the report id and
 * the policies in a stable order (type, strings, MX hosts; failure details
 * by result type, then the other fields). DB_ENOTFOUND (and db_errmsg says
 * so) when the day holds no counted result for it. */
int db_tlsrpt_report(struct db *db, const char *policy_domain, time_t begin,
    enum tlsrpt_kind kind, const struct db_tlsrpt_submitter *who, struct tlsrpt_report *out);

/* The host report of mx_host (as db_tlsrpt_report with TLSRPT_KIND_HOST)
 * without the results of the recipient domains in exclude (lower case, no
 * final dot): for an address that also gets those domains' own reports,
 * so it does not get their DANE results twice. DB_ENOTFOUND when nothing
 * is left. */
int db_tlsrpt_host_report_without(struct db *db, const char *mx_host, time_t begin,
    const struct db_tlsrpt_submitter *who, char *const *exclude, size_t n_exclude,
    struct tlsrpt_report *out);

/* Every report of the UTC day starting at begin, from one read of the day:
 * (*reports)[i] is the report of (*pairs)[i], ordered by domain then kind.
 * Free both with db_tlsrpt_reports_free; *n may be 0. */
int db_tlsrpt_reports(struct db *db, time_t begin, const struct db_tlsrpt_submitter *who,
    struct db_tlsrpt_pair **pairs, struct tlsrpt_report **reports, size_t *n);
void db_tlsrpt_reports_free(struct db_tlsrpt_pair *pairs, struct tlsrpt_report *reports,
    size_t n);

/* Every (policy domain, kind) with at least one counted result on the UTC
 * day starting at begin, ordered by domain then kind. *out is malloc'd
 * (free with db_tlsrpt_pairs_free); *n may be 0. */
int db_tlsrpt_list(struct db *db, time_t begin, struct db_tlsrpt_pair **out, size_t *n);
void db_tlsrpt_pairs_free(struct db_tlsrpt_pair *v, size_t n);

#endif
