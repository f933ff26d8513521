/* controld: the TLS reports we send, aggregated in PostgreSQL
 * (db_tlsrpt.h). */
#include "db_tlsrpt.h"
#include "db_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "xmalloc.h"

/* The result types RFC 8460 4.3 defines for a failed session. */
#define DB_TLSRPT_FAILURE_TYPES							\
	"'starttls-not-supported', 'certificate-host-mismatch', 'certificate-expired',"	\
	" 'certificate-not-trusted', 'validation-failure', 'tlsa-invalid', 'dnssec-invalid',"	\
	" 'dane-required', 'sts-policy-fetch-error', 'sts-policy-invalid', 'sts-webpki-invalid'"

/* Every counted policy result of the day's outbound sessions ($1 <= start_ts
 * < $2: one day partition) that did not carry TLS reports (tlsrpt_exempt:
 * no reports about reports), one row each, with the names a report is chosen
 * by: the policy domain and the MX host, lower case, no final dot. */
#define DB_TLSRPT_RESULTS							\
	"WITH r AS (SELECT pr->>'policy_type' AS ptype,"			\
	" lower(rtrim(coalesce(pr->>'policy_domain', ''), '.')) AS pdomain,"	\
	" lower(rtrim(coalesce(pr->>'receiving_mx_hostname', ''), '.')) AS mxname,"	\
	" pr->>'result_type' = 'success' AS ok, pr"				\
	" FROM outcomes o CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN"	\
	" jsonb_typeof(o.policy_results) = 'array' THEN o.policy_results ELSE '[]' END) AS pr"	\
	" WHERE o.direction = 2 AND NOT o.tlsrpt_exempt AND o.start_ts >= $1::timestamptz AND o.start_ts < $2::timestamptz"	\
	" AND pr->>'policy_type' IN ('sts', 'no-policy-found', 'tlsa')"		\
	" AND pr->>'result_type' IN ('success', " DB_TLSRPT_FAILURE_TYPES "))"

/* Each counted result once per report it goes into: its policy domain's
 * ("domain"), and for tlsa its MX host's ("host"). $3 NULL: every report of
 * the day; else only the report of $3 of kind $4. $5 (NULL or a text
 * array): recipient domains whose results stay out of host reports (their
 * own report goes to the same address). */
#define DB_TLSRPT_TARGETS							\
	", t AS (SELECT k.d, k.kind, r.* FROM r CROSS JOIN LATERAL (VALUES"	\
	" (r.pdomain, 'domain'), (CASE WHEN r.ptype = 'tlsa' THEN r.mxname END, 'host'))"	\
	" AS k(d, kind) WHERE k.d <> '' AND ($3::text IS NULL OR (k.d = $3 AND k.kind = $4))"	\
	" AND NOT (k.kind = 'host' AND coalesce(r.pdomain = ANY($5::text[]), false)))"

/* The reports: sessions grouped by report, policy (type, strings, MX hosts)
 * and, for failures, every failure-details field; then one row per policy
 * of a report with its two counts and its failure details as a JSON array
 * of [result-type, sending-mta-ip, receiving-mx-hostname,
 * receiving-mx-helo, receiving-ip, additional-information,
 * failure-reason-code, count]. */
static const char db_tlsrpt_report_sql[] = DB_TLSRPT_RESULTS DB_TLSRPT_TARGETS
	", g AS (SELECT d, kind, ptype, coalesce(pr->'policy_strings', '[]') AS ps,"
	" coalesce(pr->'mx_host', '[]') AS mh, ok,"
	" CASE WHEN NOT ok THEN pr->>'result_type' END AS rt,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'sending_mta_ip', '') END AS smta,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'receiving_mx_hostname', '') END AS rmx,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'receiving_mx_helo', '') END AS helo,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'receiving_ip', '') END AS rip,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'additional_information', '') END AS ai,"
	" CASE WHEN NOT ok THEN coalesce(pr->>'failure_reason_code', '') END AS frc,"
	" count(*) AS n FROM t GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)"
	" SELECT d, kind, ptype, ps::text, mh::text, coalesce(sum(n) FILTER (WHERE ok), 0),"
	" coalesce(sum(n) FILTER (WHERE NOT ok), 0),"
	" coalesce(jsonb_agg(jsonb_build_array(rt, smta, rmx, helo, rip, ai, frc, n)"
	" ORDER BY rt, smta, rmx, helo, rip, ai, frc) FILTER (WHERE NOT ok), '[]')::text"
	" FROM g GROUP BY d, kind, ptype, ps, mh ORDER BY d, kind, ptype, ps::text, mh::text";

/* Every (policy domain, kind) the day has a counted result for. */
static const char db_tlsrpt_list_sql[] = DB_TLSRPT_RESULTS DB_TLSRPT_TARGETS
	" SELECT DISTINCT d, kind FROM t ORDER BY 1, 2";

const char *
db_tlsrpt_kind_name(enum tlsrpt_kind kind)
{
	return kind == TLSRPT_KIND_HOST ? "host" : "domain";
}

int
db_tlsrpt_day(const char *day, time_t *begin)
{
	struct tm tm = { 0 }, back;
	time_t t;

	if (strlen(day) != 10 || day[4] != '-' || day[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)day[i]))
			return -1;
	tm.tm_year = atoi(day) - 1900;
	tm.tm_mon = atoi(day + 5) - 1;
	tm.tm_mday = atoi(day + 8);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
		return -1;
	back = tm;
	t = timegm(&tm);
	/* timegm moves February 30 to March 2: such a day is not a date. */
	if (tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon)
		return -1;
	*begin = t;
	return 0;
}

/* begin as YYYY-MM-DD, and as PostgreSQL reads a UTC time. */
static void
db_tlsrpt_day_text(time_t begin, char *day, size_t daysz, char *ts, size_t tssz)
{
	struct tm tm;

	gmtime_r(&begin, &tm);
	strftime(day, daysz, "%Y-%m-%d", &tm);
	if (ts)
		strftime(ts, tssz, "%Y-%m-%d %H:%M:%S+00", &tm);
}

char *
db_tlsrpt_report_id(time_t begin, const char *policy_domain, enum tlsrpt_kind kind,
    const char *submitter)
{
	char day[16];

	db_tlsrpt_day_text(begin, day, sizeof(day), NULL, 0);
	return xasprintf("%s_%s_%s@%s", day, policy_domain, db_tlsrpt_kind_name(kind),
	    submitter);
}

/* $1, $2: the day's bounds. */
static void
db_tlsrpt_bounds(struct db_params *p, time_t begin, char *lo, char *hi, size_t sz)
{
	char day[16];

	db_tlsrpt_day_text(begin, day, sizeof(day), lo, sz);
	db_tlsrpt_day_text(begin + 86400, day, sizeof(day), hi, sz);
	dbp_str(p, lo);
	dbp_str(p, hi);
}

/* ---- the report ---- */

/* A JSON array PostgreSQL made (what: for the error), or NULL. */
static json_t *
db_tlsrpt_array(struct db *db, const char *text, const char *what)
{
	json_error_t je;
	json_t *a = json_loads(text, 0, &je);

	if (a == NULL || !json_is_array(a)) {
		json_decref(a);
		db_seterr(db, "tls report: %s are not a JSON array", what);
		return NULL;
	}
	return a;
}

/* Strings into v (empty strings and non-strings left out). */
static int
db_tlsrpt_strings(struct db *db, const char *text, char ***v, size_t *n)
{
	json_t *a = db_tlsrpt_array(db, text, "policy strings"), *e;
	size_t i;

	if (a == NULL)
		return DB_ESQL;
	*v = xcalloc(json_array_size(a) + 1, sizeof(**v));
	json_array_foreach(a, i, e)
		if (json_is_string(e) && json_string_length(e) > 0)
			(*v)[(*n)++] = xstrdup(json_string_value(e));
	json_decref(a);
	return DB_OK;
}

/* Element i of a failure group: NULL when empty (left out of the JSON). */
static char *
db_tlsrpt_field(json_t *g, size_t i)
{
	const char *s = json_string_value(json_array_get(g, i));

	return s != NULL && s[0] != '\0' ? xstrdup(s) : NULL;
}

static int
db_tlsrpt_failures(struct db *db, const char *text, struct tlsrpt_policy *p)
{
	json_t *a = db_tlsrpt_array(db, text, "failure details"), *g;
	size_t i;

	if (a == NULL)
		return DB_ESQL;
	p->failures = xcalloc(json_array_size(a) + 1, sizeof(*p->failures));
	json_array_foreach(a, i, g) {
		struct tlsrpt_failure *f = &p->failures[p->n_failures++];
		f->result_type = db_tlsrpt_field(g, 0);
		f->sending_mta_ip = db_tlsrpt_field(g, 1);
		f->receiving_mx_hostname = db_tlsrpt_field(g, 2);
		f->receiving_mx_helo = db_tlsrpt_field(g, 3);
		f->receiving_ip = db_tlsrpt_field(g, 4);
		f->additional_information = db_tlsrpt_field(g, 5);
		f->failure_reason_code = db_tlsrpt_field(g, 6);
		f->failed_session_count = (uint64_t)json_integer_value(json_array_get(g, 7));
	}
	json_decref(a);
	return DB_OK;
}

/* Row row: one policy of a report. */
static int
db_tlsrpt_policy(struct db *db, const PGresult *res, int row, struct tlsrpt_policy *p)
{
	int rc;

	p->policy_domain = db_get_str(res, row, 0);
	p->policy_type = db_get_str(res, row, 2);
	p->total_success = db_get_u64(res, row, 5);
	p->total_failure = db_get_u64(res, row, 6);
	if ((rc = db_tlsrpt_strings(db, PQgetvalue(res, row, 3), &p->policy_string,
	    &p->n_policy_string)) != DB_OK ||
	    (rc = db_tlsrpt_strings(db, PQgetvalue(res, row, 4), &p->mx_host, &p->n_mx_host)) != DB_OK)
		return rc;
	return db_tlsrpt_failures(db, PQgetvalue(res, row, 7), p);
}

static enum tlsrpt_kind
db_tlsrpt_kind_at(const PGresult *res, int row)
{
	return strcmp(PQgetvalue(res, row, 1), "host") == 0 ? TLSRPT_KIND_HOST : TLSRPT_KIND_DOMAIN;
}

/* Rows from..to-1 (one report's policies) into out, with who sends it. */
static int
db_tlsrpt_fill(struct db *db, const PGresult *res, int from, int to, time_t begin,
    const struct db_tlsrpt_submitter *who, struct tlsrpt_report *out)
{
	int rc = DB_OK;

	memset(out, 0, sizeof(*out));
	out->organization_name = xstrdup(who->organization_name);
	out->contact_info = xstrdup(who->contact_info);
	out->report_id = db_tlsrpt_report_id(begin, PQgetvalue(res, from, 0),
	    db_tlsrpt_kind_at(res, from), who->submitter);
	out->begin = begin;
	out->end = begin + 86400 - 1;	/* 23:59:59Z, as the RFC's example */
	out->policies = xcalloc((size_t)(to - from), sizeof(*out->policies));
	for (int i = from; i < to && rc == DB_OK; i++)
		rc = db_tlsrpt_policy(db, res, i, &out->policies[out->n_policies++]);
	return rc;
}

/* Where the report that starts at row from ends. */
static int
db_tlsrpt_run_end(const PGresult *res, int from)
{
	int n = PQntuples(res), to = from + 1;

	while (to < n && strcmp(PQgetvalue(res, to, 0), PQgetvalue(res, from, 0)) == 0 &&
	    strcmp(PQgetvalue(res, to, 1), PQgetvalue(res, from, 1)) == 0)
		to++;
	return to;
}

struct db_tlsrpt_report_arg {
	const char			*domain;	/* NULL: every report */
	time_t				 begin;
	enum tlsrpt_kind		 kind;
	const struct db_tlsrpt_submitter *who;
	char *const			*exclude;	/* NULL: none */
	size_t				 n_exclude;
	struct db_tlsrpt_pair		*pairs;
	struct tlsrpt_report		*out;
	size_t				 n;
};

static void
db_tlsrpt_arg_clear(struct db_tlsrpt_report_arg *a)
{
	for (size_t i = 0; i < a->n; i++)
		tlsrpt_report_free(&a->out[i]);
	db_tlsrpt_pairs_free(a->pairs, a->n);
	free(a->out);
	a->out = NULL;
	a->pairs = NULL;
	a->n = 0;
}

static int
db_tlsrpt_report_op(struct db *db, void *arg)
{
	struct db_tlsrpt_report_arg *a = arg;
	struct db_params p = { 0 };
	char lo[32], hi[32];
	PGresult *res;
	char *excl = NULL;
	int rc = DB_OK, rows;

	db_tlsrpt_arg_clear(a);
	db_tlsrpt_bounds(&p, a->begin, lo, hi, sizeof(lo));
	if (a->domain) {
		dbp_str(&p, a->domain);
		dbp_str(&p, db_tlsrpt_kind_name(a->kind));
	} else {
		dbp_null(&p);
		dbp_null(&p);
	}
	if (a->exclude) {
		excl = db_array_literal(a->exclude, a->n_exclude);
		dbp_str(&p, excl);
	} else
		dbp_null(&p);
	rc = db_query(db, "tls report", db_tlsrpt_report_sql, &p, &res);
	free(excl);
	if (rc != DB_OK)
		return rc;
	rows = PQntuples(res);
	a->out = xcalloc((size_t)rows + 1, sizeof(*a->out));
	a->pairs = xcalloc((size_t)rows + 1, sizeof(*a->pairs));
	for (int from = 0, to; from < rows && rc == DB_OK; from = to) {
		to = db_tlsrpt_run_end(res, from);
		a->pairs[a->n].policy_domain = db_get_str(res, from, 0);
		a->pairs[a->n].kind = db_tlsrpt_kind_at(res, from);
		rc = db_tlsrpt_fill(db, res, from, to, a->begin, a->who, &a->out[a->n++]);
	}
	PQclear(res);
	return rc;
}

static int
db_tlsrpt_one(struct db *db, struct db_tlsrpt_report_arg *a, struct tlsrpt_report *out)
{
	char day[16];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = db_call(db, db_tlsrpt_report_op, a, DB_REPEAT_ALWAYS)) == DB_OK && a->n == 0) {
		db_tlsrpt_day_text(a->begin, day, sizeof(day), NULL, 0);
		db_seterr(db, "no TLS results for %s on %s (%s report): no outbound session "
		    "reported under its policies that day%s", a->domain, day,
		    db_tlsrpt_kind_name(a->kind), a->n_exclude ? " outside the recipient "
		    "domains whose own report goes to the same address" : "");
		rc = DB_ENOTFOUND;
	}
	if (rc == DB_OK) {
		*out = a->out[0];
		memset(&a->out[0], 0, sizeof(a->out[0]));
	}
	db_tlsrpt_arg_clear(a);
	return rc;
}

int
db_tlsrpt_report(struct db *db, const char *policy_domain, time_t begin,
    enum tlsrpt_kind kind, const struct db_tlsrpt_submitter *who, struct tlsrpt_report *out)
{
	struct db_tlsrpt_report_arg a = { policy_domain, begin, kind, who, NULL, 0, NULL, NULL,
	    0 };

	return db_tlsrpt_one(db, &a, out);
}

int
db_tlsrpt_host_report_without(struct db *db, const char *mx_host, time_t begin,
    const struct db_tlsrpt_submitter *who, char *const *exclude, size_t n_exclude,
    struct tlsrpt_report *out)
{
	struct db_tlsrpt_report_arg a = { mx_host, begin, TLSRPT_KIND_HOST, who, exclude,
	    n_exclude, NULL, NULL, 0 };

	return db_tlsrpt_one(db, &a, out);
}

int
db_tlsrpt_reports(struct db *db, time_t begin, const struct db_tlsrpt_submitter *who,
    struct db_tlsrpt_pair **pairs, struct tlsrpt_report **reports, size_t *n)
{
	struct db_tlsrpt_report_arg a = { NULL, begin, TLSRPT_KIND_DOMAIN, who, NULL, 0, NULL,
	    NULL, 0 };
	int rc = db_call(db, db_tlsrpt_report_op, &a, DB_REPEAT_ALWAYS);

	if (rc != DB_OK)
		db_tlsrpt_arg_clear(&a);
	*pairs = a.pairs;
	*reports = a.out;
	*n = a.n;
	return rc;
}

void
db_tlsrpt_reports_free(struct db_tlsrpt_pair *pairs, struct tlsrpt_report *reports, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tlsrpt_report_free(&reports[i]);
	free(reports);
	db_tlsrpt_pairs_free(pairs, n);
}

/* ---- the list ---- */

struct db_tlsrpt_list_arg {
	time_t			 begin;
	struct db_tlsrpt_pair	**out;
	size_t			*n;
};

static int
db_tlsrpt_list_op(struct db *db, void *arg)
{
	struct db_tlsrpt_list_arg *a = arg;
	struct db_params p = { 0 };
	char lo[32], hi[32];
	PGresult *res;
	int rc;

	db_tlsrpt_pairs_free(*a->out, *a->n);
	*a->out = NULL;
	*a->n = 0;
	db_tlsrpt_bounds(&p, a->begin, lo, hi, sizeof(lo));
	dbp_null(&p);
	dbp_null(&p);
	dbp_null(&p);
	if ((rc = db_query(db, "tls report list", db_tlsrpt_list_sql, &p, &res)) != DB_OK)
		return rc;
	int rows = PQntuples(res);
	*a->out = xcalloc((size_t)rows + 1, sizeof(**a->out));
	for (int i = 0; i < rows; i++) {
		(*a->out)[i].policy_domain = db_get_str(res, i, 0);
		(*a->out)[i].kind = strcmp(PQgetvalue(res, i, 1), "host") == 0 ? TLSRPT_KIND_HOST :
		    TLSRPT_KIND_DOMAIN;
	}
	*a->n = (size_t)rows;
	PQclear(res);
	return DB_OK;
}

int
db_tlsrpt_list(struct db *db, time_t begin, struct db_tlsrpt_pair **out, size_t *n)
{
	struct db_tlsrpt_list_arg a = { begin, out, n };

	*out = NULL;
	*n = 0;
	return db_call(db, db_tlsrpt_list_op, &a, DB_REPEAT_ALWAYS);
}

void
db_tlsrpt_pairs_free(struct db_tlsrpt_pair *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].policy_domain);
	free(v);
}
