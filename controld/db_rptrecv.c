/* controld: received TLS reports in PostgreSQL (db_rptrecv.h). */
#include "db_rptrecv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db_internal.h"
#include "tlsrpt_txt.h"
#include "xmalloc.h"

/* ---- the addresses of the snapshot ---- */

static int
db_rptrecv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is the address's domain one of the hosted ones (res column 0, lower)? */
static int
db_rptrecv_hosted(const PGresult *hosted, const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr)
		return 0;
	for (int i = 0; i < PQntuples(hosted); i++)
		if (strcmp(PQgetvalue(hosted, i, 0), at + 1) == 0)
			return 1;
	return 0;
}

/* The mailto: targets of one domain's rua, lower case, appended. */
static void
db_rptrecv_rua(const char *domain, const char *rua, const PGresult *hosted, char ***out,
    size_t *n)
{
	char why[TLSRPT_TXT_ERR_MAX], *rec, *a;
	struct tlsrpt_txt *t = NULL;

	if (rua[0] == '\0')
		rec = xasprintf("v=TLSRPTv1; rua=mailto:tlsrpt@%s", domain);
	else
		rec = xasprintf("v=TLSRPTv1; rua=%s", rua);
	if (tlsrpt_txt_parse_record(rec, strlen(rec), &t, why, sizeof(why)) == TLSRPT_TXT_OK) {
		for (size_t i = 0; i < t->n_rua; i++) {
			if (t->rua[i].scheme != TLSRPT_TXT_MAILTO || t->rua[i].target == NULL)
				continue;
			a = xstrdup(t->rua[i].target);
			for (char *p = a; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			if (!db_rptrecv_hosted(hosted, a)) {
				free(a);
				continue;
			}
			*out = xreallocarray(*out, *n + 1, sizeof(**out));
			(*out)[(*n)++] = a;
		}
	}
	tlsrpt_txt_free(t);
	free(rec);
}

int
db_rptrecv_addresses(struct db *db, char ***out, size_t *n)
{
	PGresult *hosted = NULL, *res = NULL;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = db_query(db, "snapshot: hosted domains", "SELECT DISTINCT lower(name) FROM"
	    " domains", NULL, &hosted)) != DB_OK)
		return rc;
	if ((rc = db_query(db, "snapshot: tlsrpt addresses", "SELECT s.domain, s.tlsrpt_rua"
	    " FROM domain_dns s JOIN domains d ON lower(d.name) = s.domain ORDER BY 1", NULL,
	    &res)) != DB_OK) {
		PQclear(hosted);
		return rc;
	}
	for (int i = 0; i < PQntuples(res); i++)
		db_rptrecv_rua(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), hosted, out, n);
	PQclear(res);
	PQclear(hosted);
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), db_rptrecv_cmp);
	for (size_t i = 0; i < *n; i++) {
		if (k > 0 && strcmp((*out)[k - 1], (*out)[i]) == 0)
			free((*out)[i]);
		else
			(*out)[k++] = (*out)[i];
	}
	*n = k;
	return DB_OK;
}

void
db_rptrecv_addresses_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- storing ---- */

/* bytea in text form: \x and hex. */
static char *
db_rptrecv_hex(const unsigned char *p, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	char *s = xmalloc(2 * len + 3), *o = s;

	*o++ = '\\';
	*o++ = 'x';
	for (size_t i = 0; i < len; i++) {
		*o++ = hx[p[i] >> 4];
		*o++ = hx[p[i] & 15];
	}
	*o = '\0';
	return s;
}

/* The policy domains of a report, lower case, as a text[] literal. */
static char *
db_rptrecv_domains(const struct tlsrpt_report *r)
{
	char **v = xcalloc(r ? r->n_policies + 1 : 1, sizeof(*v)), *lit;
	size_t n = 0;

	for (size_t i = 0; r && i < r->n_policies; i++) {
		if (r->policies[i].policy_domain == NULL)
			continue;
		v[n] = xstrdup(r->policies[i].policy_domain);
		for (char *p = v[n]; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		n++;
	}
	lit = db_array_literal(v, n);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return lit;
}

static const char db_rptrecv_insert[] =
    "INSERT INTO received_reports (host_id, mail_id, received_at, mail_from, recipient,"
    " header_from, message_id, subject, report_domain, report_submitter, refused,"
    " organization_name, report_id, contact_info, begin_ts, end_ts, policy_domains,"
    " total_success, total_failure, policies, content_type, raw, raw_cut) VALUES ($1, $2,"
    " to_timestamp($3), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, to_timestamp($15),"
    " to_timestamp($16), $17::text[], $18, $19, $20::jsonb, $21, $22::bytea, $23)"
    " ON CONFLICT (host_id, mail_id) DO NOTHING RETURNING id";

static int
db_rptrecv_store_op(struct db *db, void *arg)
{
	void **a = arg;
	const struct db_rptrecv_mail *m = a[0];
	uint64_t *id = a[1];
	int *dup = a[2];
	const Mxfleet__V1__ReceivedReportMail *in = m->in;
	const struct tlsrpt_mime *mi = m->mime;
	const struct tlsrpt_report *r = m->report;
	char recv[24], begin[24], end[24], succ[24], fail[24];
	char *domains = db_rptrecv_domains(r), *hex = db_rptrecv_hex(m->raw, m->raw_len);
	uint64_t s = 0, f = 0;
	const char *v[23];
	PGresult *res = NULL;
	int rc;

	for (size_t i = 0; r && i < r->n_policies; i++) {
		s += r->policies[i].total_success;
		f += r->policies[i].total_failure;
	}
	if (s > INT64_MAX)
		s = INT64_MAX;
	if (f > INT64_MAX)
		f = INT64_MAX;
	snprintf(recv, sizeof(recv), "%lld", (long long)in->received_unix);
	snprintf(begin, sizeof(begin), "%lld", r ? (long long)r->begin : 0LL);
	snprintf(end, sizeof(end), "%lld", r ? (long long)r->end : 0LL);
	snprintf(succ, sizeof(succ), "%llu", (unsigned long long)s);
	snprintf(fail, sizeof(fail), "%llu", (unsigned long long)f);
	v[0] = in->host_id;
	v[1] = in->id;
	v[2] = recv;
	v[3] = in->mail_from;
	v[4] = in->recipient;
	v[5] = mi ? mi->from : NULL;
	v[6] = mi ? mi->message_id : NULL;
	v[7] = mi ? mi->subject : NULL;
	v[8] = mi ? mi->report_domain : NULL;
	v[9] = mi ? mi->report_submitter : NULL;
	v[10] = r ? NULL : m->refused;
	v[11] = r ? r->organization_name : NULL;
	v[12] = r ? r->report_id : NULL;
	v[13] = r ? r->contact_info : NULL;
	v[14] = r ? begin : NULL;
	v[15] = r ? end : NULL;
	v[16] = domains;
	v[17] = succ;
	v[18] = fail;
	v[19] = r ? m->policies_json : NULL;
	v[20] = mi ? mi->content_type : NULL;
	v[21] = hex;
	v[22] = m->raw_cut ? "true" : "false";
	res = PQexecParams(db->conn, db_rptrecv_insert, 23, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = db_fail(db, res, "received report: store");
		goto out;
	}
	if (PQntuples(res) == 1) {
		*id = db_get_u64(res, 0, 0);
		*dup = 0;
		rc = DB_OK;
		PQclear(res);
		goto out;
	}
	PQclear(res);
	*dup = 1;
	{
		struct db_params p = { 0 };
		dbp_str(&p, in->host_id);
		dbp_str(&p, in->id);
		if ((rc = db_query(db, "received report: find", "SELECT id FROM received_reports"
		    " WHERE host_id = $1 AND mail_id = $2", &p, &res)) == DB_OK) {
			*id = PQntuples(res) == 1 ? db_get_u64(res, 0, 0) : 0;
			PQclear(res);
		}
	}
out:
	free(domains);
	free(hex);
	return rc;
}

int
db_rptrecv_store(struct db *db, const struct db_rptrecv_mail *m, uint64_t *id, int *duplicate)
{
	void *a[3] = { (void *)m, id, duplicate };

	*id = 0;
	*duplicate = 0;
	/* Idempotent: a repeat finds the row and says duplicate. */
	return db_call(db, db_rptrecv_store_op, a, DB_REPEAT_ALWAYS);
}

/* ---- reading ---- */

#define DB_RPTRECV_COLS \
    "SELECT id, extract(epoch FROM received_at)::bigint, host_id, recipient, mail_from," \
    " coalesce(header_from, ''), coalesce(refused, ''), coalesce(organization_name, '')," \
    " coalesce(report_id, ''), coalesce(extract(epoch FROM begin_ts)::bigint, 0)," \
    " coalesce(extract(epoch FROM end_ts)::bigint, 0), to_json(policy_domains)::text," \
    " total_success, total_failure, coalesce(contact_info, ''), coalesce(subject, '')," \
    " coalesce(report_domain, ''), coalesce(report_submitter, ''), "

static Mxfleet__V1__ReceivedReport *
db_rptrecv_row(const PGresult *res, int i)
{
	Mxfleet__V1__ReceivedReport *r = xmalloc(sizeof(*r));
	json_t *a;

	mxfleet__v1__received_report__init(r);
	r->id = db_get_u64(res, i, 0);
	r->received_unix = db_get_i64(res, i, 1);
	r->host_id = db_get_str(res, i, 2);
	r->recipient = db_get_str(res, i, 3);
	r->mail_from = db_get_str(res, i, 4);
	r->header_from = db_get_str(res, i, 5);
	r->refused = db_get_str(res, i, 6);
	r->organization_name = db_get_str(res, i, 7);
	r->report_id = db_get_str(res, i, 8);
	r->begin_unix = db_get_i64(res, i, 9);
	r->end_unix = db_get_i64(res, i, 10);
	if ((a = json_loads(PQgetvalue(res, i, 11), 0, NULL)) != NULL && json_is_array(a)) {
		r->policy_domains = xcalloc(json_array_size(a) + 1, sizeof(char *));
		for (size_t k = 0; k < json_array_size(a); k++) {
			const char *d = json_string_value(json_array_get(a, k));
			r->policy_domains[r->n_policy_domains++] = xstrdup(d ? d : "");
		}
	}
	json_decref(a);
	r->total_success = db_get_u64(res, i, 12);
	r->total_failure = db_get_u64(res, i, 13);
	r->contact_info = db_get_str(res, i, 14);
	r->subject = db_get_str(res, i, 15);
	r->report_domain = db_get_str(res, i, 16);
	r->report_submitter = db_get_str(res, i, 17);
	r->policies_json = db_get_str(res, i, 18);
	r->raw_bytes = db_get_u64(res, i, 19);
	return r;
}

void
db_rptrecv_report_free(Mxfleet__V1__ReceivedReport *r)
{
	if (r == NULL)
		return;
	free(r->host_id);
	free(r->recipient);
	free(r->mail_from);
	free(r->header_from);
	free(r->refused);
	free(r->organization_name);
	free(r->report_id);
	for (size_t i = 0; i < r->n_policy_domains; i++)
		free(r->policy_domains[i]);
	free(r->policy_domains);
	free(r->contact_info);
	free(r->subject);
	free(r->report_domain);
	free(r->report_submitter);
	free(r->policies_json);
	free(r);
}

struct db_rptrecv_list_arg {
	const char				*domain;
	int64_t					 since;
	Mxfleet__V1__ReceivedReportList		**out;
};

static int
db_rptrecv_list_op(struct db *db, void *arg)
{
	struct db_rptrecv_list_arg *a = arg;
	Mxfleet__V1__ReceivedReportList *l;
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_i64(&p, a->since);
	dbp_str(&p, a->domain);
	dbp_i64(&p, DB_RPTRECV_LIST_MAX + 1);
	if ((rc = db_query(db, "received reports", DB_RPTRECV_COLS "'', length(raw)"
	    " FROM received_reports WHERE received_at >= to_timestamp($1) AND ($2 = ''"
	    " OR $2 = ANY (policy_domains) OR lower(split_part(recipient, '@', 2)) = $2)"
	    " ORDER BY received_at DESC, id DESC LIMIT $3", &p, &res)) != DB_OK)
		return rc;
	l = xmalloc(sizeof(*l));
	mxfleet__v1__received_report_list__init(l);
	l->reports = xcalloc((size_t)PQntuples(res) + 1, sizeof(*l->reports));
	for (int i = 0; i < PQntuples(res); i++) {
		if (i == DB_RPTRECV_LIST_MAX) {
			l->truncated = 1;
			break;
		}
		l->reports[l->n_reports++] = db_rptrecv_row(res, i);
	}
	PQclear(res);
	*a->out = l;
	return DB_OK;
}

int
db_rptrecv_list(struct db *db, const char *domain, int64_t since_unix,
    Mxfleet__V1__ReceivedReportList **out)
{
	struct db_rptrecv_list_arg a = { domain ? domain : "", since_unix, out };

	*out = NULL;
	return db_call(db, db_rptrecv_list_op, &a, DB_REPEAT_ALWAYS);
}

void
db_rptrecv_list_free(Mxfleet__V1__ReceivedReportList *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_reports; i++)
		db_rptrecv_report_free(l->reports[i]);
	free(l->reports);
	free(l);
}

struct db_rptrecv_show_arg {
	uint64_t			 id;
	Mxfleet__V1__ReceivedReport	**out;
};

static int
db_rptrecv_show_op(struct db *db, void *arg)
{
	struct db_rptrecv_show_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_u64(&p, a->id);
	if ((rc = db_query(db, "received report", DB_RPTRECV_COLS "coalesce(policies::text, ''),"
	    " length(raw) FROM received_reports WHERE id = $1", &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		db_seterr(db, "no received report %llu", (unsigned long long)a->id);
		return DB_ENOTFOUND;
	}
	*a->out = db_rptrecv_row(res, 0);
	PQclear(res);
	return DB_OK;
}

int
db_rptrecv_show(struct db *db, uint64_t id, Mxfleet__V1__ReceivedReport **out)
{
	struct db_rptrecv_show_arg a = { id, out };

	*out = NULL;
	return db_call(db, db_rptrecv_show_op, &a, DB_REPEAT_ALWAYS);
}
