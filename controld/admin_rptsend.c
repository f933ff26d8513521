/* controld: the Admin calls for sending TLS reports (admin_rptsend.h). */
#include "admin_rptsend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "db_rptsend.h"
#include "db_tlsrpt.h"
#include "log.h"
#include "rptsend.h"
#include "xmalloc.h"

/* ---- ReportDeliveries ---------------------------------------------------- */

static void
admin_rptsend_list_free(void *p)
{
	db_rptsend_list_free(p);
}

static int
admin_rptsend_deliveries_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__ReportDeliveriesRequest *q = j->req;
	Mxfleet__V1__ReportDeliveriesReply *r;
	int rc;

	if ((rc = db_rptsend_list(db, q->state, (int64_t)q->id, &r)) != DB_OK)
		return rc;
	j->reply = r;
	j->reply_free = admin_rptsend_list_free;
	return DB_OK;
}

static void
admin_rptsend_req_free(void *p)
{
	protobuf_c_message_free_unpacked(p, NULL);
}

void
admin_rptsend_deliveries(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	UNPACK(Mxfleet__V1__ReportDeliveriesRequest, mxfleet__v1__report_deliveries_request, c,
	    msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (strcmp(req->state, "") != 0 && strcmp(req->state, "sent") != 0 &&
	    strcmp(req->state, "pending") != 0)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "state: expected sent, pending or empty");
	else {
		call_submit_new(c, admin_rptsend_deliveries_work, call_answer_reply, req,
		    admin_rptsend_req_free);
		return;
	}
	admin_rptsend_req_free(req);
}

/* ---- ReportSendNow -------------------------------------------------------- */

static void
admin_rptsend_round_free(void *p)
{
	rptsend_round_free(p);
	free(p);
}

static void
admin_rptsend_reply_free(void *p)
{
	Mxfleet__V1__ReportSendNowReply *r = p;

	for (size_t i = 0; i < r->n_errors; i++)
		free(r->errors[i]);
	free(r->errors);
	free(r->day);
	free(r);
}

static int
admin_rptsend_send_now_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct rptsend_round *r = j->req;
	Mxfleet__V1__ReportSendNowReply *p;
	struct tm tm;
	char day[16];
	int rc;

	if ((rc = rptsend_round_run(db, r)) != DB_OK)
		return rc;
	if (r->busy) {
		snprintf(j->q.err, sizeof(j->q.err), "another controld replica is sending reports "
		    "now; try again later");
		return DB_OK;
	}
	p = xmalloc(sizeof(*p));
	mxfleet__v1__report_send_now_reply__init(p);
	gmtime_r(&r->day, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	p->day = xstrdup(day);
	p->planned = r->planned;
	p->sent = r->sent;
	p->retrying = r->retrying;
	p->failed = r->failed;
	p->suppressed = r->suppressed;
	p->errors = r->errors;
	p->n_errors = r->nerrors;
	r->errors = NULL;
	r->nerrors = 0;
	j->reply = p;
	j->reply_free = admin_rptsend_reply_free;
	return DB_OK;
}

static void
admin_rptsend_send_now_answer(struct call_job *j, struct grpc_call *c)
{
	struct rptsend_round *r = j->req;

	if (j->q.rc == DB_OK && r->busy) {
		if (c)
			grpc_call_finish(c, GRPC_UNAVAILABLE, j->q.err);
	} else
		call_answer_reply(j, c);
}

void
admin_rptsend_send_now(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	UNPACK(Mxfleet__V1__ReportSendNowRequest, mxfleet__v1__report_send_now_request, c, msg,
	    len);
	const char *missing = reports_config_missing(&C->cfg.reports);
	struct rptsend_round *r = xcalloc(1, sizeof(*r));
	char why[300], q[LOG_QUOTE_SIZE(40)];

	C->m.calls++;
	r->now = rptsend_clock();
	r->day = r->now / 86400 * 86400 - 86400;
	if (call_check_admin(c) < 0)
		;
	else if (req->day[0] != '\0' && db_tlsrpt_day(req->day, &r->day) < 0) {
		snprintf(why, sizeof(why), "day %s: expected a UTC day as YYYY-MM-DD",
		    log_quote(q, sizeof(q), req->day, strlen(req->day), 40));
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, why);
	} else if (missing)
		grpc_call_finish(c, GRPC_FAILED_PRECONDITION, missing);
	else if (rptsend_queue() == NULL)
		grpc_call_finish(c, GRPC_UNAVAILABLE, "the report worker did not start");
	else {
		struct call_job *j = call_job_new(c, admin_rptsend_send_now_work,
		    admin_rptsend_send_now_answer, r, admin_rptsend_round_free);
		j->queue = rptsend_queue();
		call_submit(c, j);
		admin_rptsend_req_free(req);
		return;
	}
	admin_rptsend_round_free(r);
	admin_rptsend_req_free(req);
}

/* ---- ReportSuppress ----------------------------------------------------- */

static void
admin_rptsend_suppress_reply_free(void *p)
{
	free(p);
}

static int
admin_rptsend_suppress_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__ReportSuppressRequest *q = j->req;
	Mxfleet__V1__ReportSuppressReply *p;
	int rc, changed;

	if ((rc = db_rptsend_suppress(db, q->address, q->remove ? 0 : (time_t)q->until_unix,
	    &changed)) != DB_OK)
		return rc;
	p = xmalloc(sizeof(*p));
	mxfleet__v1__report_suppress_reply__init(p);
	p->changed = changed;
	j->reply = p;
	j->reply_free = admin_rptsend_suppress_reply_free;
	log_info("event=tlsrpt_%s address=%s until_unix=%lld", q->remove ? "unsuppressed" :
	    "suppressed", q->address, (long long)q->until_unix);
	return DB_OK;
}

void
admin_rptsend_suppress(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	UNPACK(Mxfleet__V1__ReportSuppressRequest, mxfleet__v1__report_suppress_request, c, msg,
	    len);
	size_t alen = strlen(req->address);

	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (alen == 0 || alen > 2048 || strpbrk(req->address, " \t\r\n") != NULL)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "address: an address or a URI, "
		    "without spaces, at most 2048 bytes");
	else if (!req->remove && req->until_unix <= time(NULL))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "until: must be in the future");
	else {
		call_submit_new(c, admin_rptsend_suppress_work, call_answer_reply, req,
		    admin_rptsend_req_free);
		return;
	}
	admin_rptsend_req_free(req);
}
