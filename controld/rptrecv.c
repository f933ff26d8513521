/* controld: received TLS reports (rptrecv.h). */
#include "rptrecv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "call.h"
#include "controld.h"
#include "db_rptrecv.h"
#include "log.h"
#include "tlsrpt.h"
#include "tlsrpt_mime.h"
#include "utf8.h"
#include "xmalloc.h"

/* A submitted mail and what the worker made of it (logged on the loop). */
struct rptrecv_job {
	Mxfleet__V1__ReceivedReportMail	*in;
	char				 reason[TLSRPT_ERR_MAX + 64];
	char				*org, *report_id;
	size_t				 n_policies;
	uint64_t			 success, failure;
};

static void
rptrecv_job_free(void *p)
{
	struct rptrecv_job *r = p;

	mxfleet__v1__received_report_mail__free_unpacked(r->in, NULL);
	free(r->org);
	free(r->report_id);
	free(r);
}

static void
rptrecv_ack_free(void *p)
{
	Mxfleet__V1__ReceivedReportAck *a = p;

	if (a == NULL)
		return;
	free(a->reason);
	free(a);
}

static void
rptrecv_json_set(json_t *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, key, json_string(v));
}

static json_t *
rptrecv_json_strings(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
rptrecv_json_failure(const struct tlsrpt_failure *f)
{
	json_t *o = json_object();

	rptrecv_json_set(o, "result-type", f->result_type);
	rptrecv_json_set(o, "sending-mta-ip", f->sending_mta_ip);
	rptrecv_json_set(o, "receiving-mx-hostname", f->receiving_mx_hostname);
	rptrecv_json_set(o, "receiving-mx-helo", f->receiving_mx_helo);
	rptrecv_json_set(o, "receiving-ip", f->receiving_ip);
	json_object_set_new(o, "failed-session-count",
	    json_integer((json_int_t)f->failed_session_count));
	rptrecv_json_set(o, "additional-information", f->additional_information);
	rptrecv_json_set(o, "failure-reason-code", f->failure_reason_code);
	return o;
}

/* The policies as read, normalized (mx-host always an array, counts as
 * numbers): what mailctl reports show prints. Malloc'd. */
static char *
rptrecv_policies_json(const struct tlsrpt_report *r)
{
	json_t *a = json_array();
	char *s;

	for (size_t i = 0; i < r->n_policies; i++) {
		const struct tlsrpt_policy *p = &r->policies[i];
		json_t *o = json_object(), *fd = json_array();

		rptrecv_json_set(o, "policy-type", p->policy_type);
		rptrecv_json_set(o, "policy-domain", p->policy_domain);
		json_object_set_new(o, "policy-string",
		    rptrecv_json_strings(p->policy_string, p->n_policy_string));
		json_object_set_new(o, "mx-host", rptrecv_json_strings(p->mx_host, p->n_mx_host));
		json_object_set_new(o, "total-successful-session-count",
		    json_integer((json_int_t)p->total_success));
		json_object_set_new(o, "total-failure-session-count",
		    json_integer((json_int_t)p->total_failure));
		for (size_t k = 0; k < p->n_failures; k++)
			json_array_append_new(fd, rptrecv_json_failure(&p->failures[k]));
		json_object_set_new(o, "failure-details", fd);
		json_array_append_new(a, o);
	}
	s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(a);
	return s ? s : xstrdup("[]");
}

/* What the job keeps for the log line of an accepted report. */
static void
rptrecv_note(struct rptrecv_job *r, const struct tlsrpt_report *rep)
{
	r->org = xstrdup(rep->organization_name ? rep->organization_name : "");
	r->report_id = xstrdup(rep->report_id ? rep->report_id : "");
	r->n_policies = rep->n_policies;
	for (size_t i = 0; i < rep->n_policies; i++) {
		r->success += rep->policies[i].total_success;
		r->failure += rep->policies[i].total_failure;
	}
}

/* On a worker: read the mail, store it (accepted or refused), make the ack. */
static int
rptrecv_submit_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct rptrecv_job *r = j->req;
	const Mxfleet__V1__ReceivedReportMail *in = r->in;
	struct tlsrpt_mime mime;
	struct tlsrpt_report rep = { 0 };
	struct db_rptrecv_mail m = { 0 };
	char err[TLSRPT_ERR_MAX > TLSRPT_MIME_ERR_MAX ? TLSRPT_ERR_MAX : TLSRPT_MIME_ERR_MAX];
	char *pj = NULL;
	uint64_t id = 0;
	int dup = 0, rc, got_mime;

	m.in = in;
	got_mime = tlsrpt_mime_extract(in->message.data, in->message.len, &mime, err,
	    sizeof(err)) == 0;
	if (!got_mime) {
		snprintf(r->reason, sizeof(r->reason), "mail: %s", err);
		m.raw = in->message.data;
		m.raw_len = in->message.len;
	} else {
		m.mime = &mime;
		m.raw = mime.report;
		m.raw_len = mime.report_len;
		if (tlsrpt_parse(mime.report, mime.report_len, NULL, &rep, err, sizeof(err)) == 0) {
			m.report = &rep;
			m.policies_json = pj = rptrecv_policies_json(&rep);
			rptrecv_note(r, &rep);
		} else
			snprintf(r->reason, sizeof(r->reason), "report: %s", err);
	}
	if (m.report == NULL && m.raw_len > RPTRECV_KEEP_MAX) {
		m.raw_len = RPTRECV_KEEP_MAX;
		m.raw_cut = 1;
	}
	m.refused = r->reason;
	rc = db_rptrecv_store(db, &m, &id, &dup);
	if (rc == DB_OK) {
		Mxfleet__V1__ReceivedReportAck *a = xmalloc(sizeof(*a));
		mxfleet__v1__received_report_ack__init(a);
		a->duplicate = dup;
		a->refused = m.report == NULL;
		a->reason = xstrdup(m.report ? "" : r->reason);
		a->report = id;
		j->reply = a;
		j->reply_free = rptrecv_ack_free;
		j->n1 = id;
		j->n2 = (uint64_t)dup;
	}
	free(pj);
	tlsrpt_report_free(&rep);
	if (got_mime)
		tlsrpt_mime_free(&mime);
	return rc;
}

static void
rptrecv_submit_answer(struct call_job *j, struct grpc_call *c)
{
	struct rptrecv_job *r = j->req;
	const Mxfleet__V1__ReceivedReportMail *in = r->in;
	char rq[LOG_QUOTE_SIZE(100)], fq[LOG_QUOTE_SIZE(100)], why[LOG_QUOTE_SIZE(300)];
	char oq[LOG_QUOTE_SIZE(100)], iq[LOG_QUOTE_SIZE(100)];

	if (j->q.rc == DB_OK && j->n2 == 0) {
		log_quote(rq, sizeof(rq), in->recipient, strlen(in->recipient), 100);
		log_quote(fq, sizeof(fq), in->mail_from, strlen(in->mail_from), 100);
		if (r->org == NULL)
			log_warnx("event=tlsrpt_refused host=%s id=%" PRIu64 " recipient=%s from=%s"
			    " reason=%s", in->host_id, j->n1, rq, fq,
			    log_quote(why, sizeof(why), r->reason, strlen(r->reason), 300));
		else
			log_info("event=tlsrpt_received host=%s id=%" PRIu64 " recipient=%s from=%s"
			    " organization=%s report_id=%s policies=%zu success=%" PRIu64
			    " failure=%" PRIu64, in->host_id, j->n1, rq, fq,
			    log_quote(oq, sizeof(oq), r->org, strlen(r->org), 100),
			    log_quote(iq, sizeof(iq), r->report_id, strlen(r->report_id), 100),
			    r->n_policies, r->success, r->failure);
	}
	call_answer_reply(j, c);
}

/* The envelope is remote text too: what PostgreSQL's text cannot hold (bytes
 * that are not UTF-8, control characters) becomes '?', so a stored mail is
 * never refused by the database and resent forever. */
static void
rptrecv_printable(char *s)
{
	size_t n = strlen(s);

	if (!utf8_valid((const unsigned char *)s, n)) {
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] >= 0x80)
				s[i] = '?';
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

void
rptrecv_submit(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__ReceivedReportMail, mxfleet__v1__received_report_mail, c, msg, len);
	struct rptrecv_job *r;

	C->m.calls++;
	if (call_check_host(c, req->host_id) < 0) {
		mxfleet__v1__received_report_mail__free_unpacked(req, NULL);
		return;
	}
	if (req->id[0] == '\0' || strlen(req->id) > RPTRECV_ID_MAX || req->recipient[0] == '\0') {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "id (at most 200 bytes) and recipient"
		    " are required");
		mxfleet__v1__received_report_mail__free_unpacked(req, NULL);
		return;
	}
	rptrecv_printable(req->id);
	rptrecv_printable(req->mail_from);
	rptrecv_printable(req->recipient);
	r = xcalloc(1, sizeof(*r));
	r->in = req;
	call_submit_new(c, rptrecv_submit_work, rptrecv_submit_answer, r, rptrecv_job_free);
}

/* ---- Admin: ReceivedReports, ShowReceivedReport ---- */

static void
rptrecv_list_free(void *p)
{
	db_rptrecv_list_free(p);
}

static void
rptrecv_report_free(void *p)
{
	db_rptrecv_report_free(p);
}

static int
rptrecv_list_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__ReceivedReportQuery *q = j->req;
	Mxfleet__V1__ReceivedReportList *l;
	int rc;

	if ((rc = db_rptrecv_list(db, q->domain, q->since_unix, &l)) == DB_OK) {
		j->reply = l;
		j->reply_free = rptrecv_list_free;
	}
	return rc;
}

static void
rptrecv_query_free(void *p)
{
	mxfleet__v1__received_report_query__free_unpacked(p, NULL);
}

void
rptrecv_list(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__ReceivedReportQuery, mxfleet__v1__received_report_query, c, msg, len);

	C->m.calls++;
	if (call_check_admin(c) < 0) {
		rptrecv_query_free(req);
		return;
	}
	for (char *p = req->domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	size_t n = strlen(req->domain);
	if (n > 0 && req->domain[n - 1] == '.')
		req->domain[n - 1] = '\0';
	call_submit_new(c, rptrecv_list_work, call_answer_reply, req, rptrecv_query_free);
}

static int
rptrecv_show_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__ReceivedReportId *q = j->req;
	Mxfleet__V1__ReceivedReport *r;
	int rc;

	if ((rc = db_rptrecv_show(db, q->id, &r)) == DB_OK) {
		j->reply = r;
		j->reply_free = rptrecv_report_free;
	}
	return rc;
}

static void
rptrecv_id_free(void *p)
{
	mxfleet__v1__received_report_id__free_unpacked(p, NULL);
}

void
rptrecv_show(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__ReceivedReportId, mxfleet__v1__received_report_id, c, msg, len);

	C->m.calls++;
	if (call_check_admin(c) < 0) {
		rptrecv_id_free(req);
		return;
	}
	call_submit_new(c, rptrecv_show_work, call_answer_reply, req, rptrecv_id_free);
}
