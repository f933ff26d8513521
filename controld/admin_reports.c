/* controld: the Admin calls for the TLS reports we send (admin_reports.h). */
#include "admin_reports.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "db_tlsrpt.h"
#include "dnsname.h"
#include "log.h"
#include "tlsrpt.h"
#include "xmalloc.h"

/* What a worker needs: the checked request and copies of the reports
 * group (workers never read C). */
struct admin_reports_req {
	Mxfleet__V1__ReportPreviewRequest	*req;
	char					 domain[DNSNAME_MAX + 2];
	time_t					 begin;
	enum tlsrpt_kind			 kind;
	char					*org, *contact, *submitter;
	int					 unbuildable;	/* set by the worker */
};

static void
admin_reports_req_free(void *p)
{
	struct admin_reports_req *r = p;

	mxfleet__v1__report_preview_request__free_unpacked(r->req, NULL);
	free(r->org);
	free(r->contact);
	free(r->submitter);
	free(r);
}

static void
admin_reports_preview_free(void *p)
{
	Mxfleet__V1__ReportPreviewReply *r = p;

	if (r == NULL)
		return;
	free(r->json);
	free(r->filename);
	free(r);
}

/* The request checked and normalized (domain lower case, no final dot):
 * 0, or -1 with why. */
static int
admin_reports_check(const Mxfleet__V1__ReportPreviewRequest *q, struct admin_reports_req *r,
    char *why, size_t whysz)
{
	char shown[LOG_QUOTE_SIZE(100)], e[300];
	size_t len = strlen(q->domain);

	if (len == 0 || dnsname_check(q->domain, e, sizeof(e)) < 0) {
		snprintf(why, whysz, "domain %s: %s", log_quote(shown, sizeof(shown), q->domain, len,
		    100), len == 0 ? "required" : e);
		return -1;
	}
	for (size_t i = 0; i <= len; i++)
		r->domain[i] = (char)tolower((unsigned char)q->domain[i]);
	if (r->domain[len - 1] == '.')
		r->domain[len - 1] = '\0';
	if (db_tlsrpt_day(q->day, &r->begin) < 0) {
		snprintf(why, whysz, "day %s: expected a UTC day as YYYY-MM-DD (e.g. 2026-01-31)",
		    log_quote(shown, sizeof(shown), q->day, strlen(q->day), 100));
		return -1;
	}
	if (q->kind[0] == '\0' || strcmp(q->kind, "domain") == 0)
		r->kind = TLSRPT_KIND_DOMAIN;
	else if (strcmp(q->kind, "host") == 0)
		r->kind = TLSRPT_KIND_HOST;
	else {
		snprintf(why, whysz, "kind %s: expected domain or host",
		    log_quote(shown, sizeof(shown), q->kind, strlen(q->kind), 100));
		return -1;
	}
	return 0;
}

/* The reply: the JSON and the file name, or why the report cannot be
 * built (r->unbuildable). */
static int
admin_reports_build(struct call_job *j, struct admin_reports_req *r,
    const struct tlsrpt_report *rep)
{
	Mxfleet__V1__ReportPreviewReply *p;
	char err[TLSRPT_ERR_MAX], name[1024], *json;
	size_t len;

	if (tlsrpt_build_json(rep, &json, &len, err, sizeof(err)) < 0) {
		r->unbuildable = 1;
		snprintf(j->q.err, sizeof(j->q.err), "the %s report of %s cannot be built: %s",
		    db_tlsrpt_kind_name(r->kind), r->domain, err);
		return DB_EINVAL;
	}
	if (tlsrpt_filename(r->submitter, r->domain, rep->begin, rep->end, NULL, 1, name,
	    sizeof(name)) < 0) {
		free(json);
		r->unbuildable = 1;
		snprintf(j->q.err, sizeof(j->q.err), "the %s report of %s: no RFC 8460 file name "
		    "fits submitter %s", db_tlsrpt_kind_name(r->kind), r->domain, r->submitter);
		return DB_EINVAL;
	}
	p = xmalloc(sizeof(*p));
	mxfleet__v1__report_preview_reply__init(p);
	p->json = json;
	p->filename = xstrdup(name);
	j->reply = p;
	j->reply_free = admin_reports_preview_free;
	return DB_OK;
}

static int
admin_reports_preview_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct admin_reports_req *r = j->req;
	struct db_tlsrpt_submitter who = { r->org, r->contact, r->submitter };
	struct tlsrpt_report rep;
	int rc;

	if ((rc = db_tlsrpt_report(db, r->domain, r->begin, r->kind, &who, &rep)) != DB_OK)
		return rc;
	rc = admin_reports_build(j, r, &rep);
	tlsrpt_report_free(&rep);
	return rc;
}

static void
admin_reports_preview_answer(struct call_job *j, struct grpc_call *c)
{
	struct admin_reports_req *r = j->req;

	if (j->q.rc != DB_OK && r->unbuildable) {
		if (c)
			grpc_call_finish(c, GRPC_INTERNAL, j->q.err);
	} else
		call_answer_reply(j, c);
}

void
admin_reports_preview(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__ReportPreviewRequest, mxfleet__v1__report_preview_request, c, msg, len);
	struct admin_reports_req *r = xcalloc(1, sizeof(*r));
	const char *missing = reports_config_missing(&C->cfg.reports);
	char why[600];

	C->m.calls++;
	r->req = req;
	if (call_check_admin(c) < 0)
		;
	else if (admin_reports_check(req, r, why, sizeof(why)) < 0)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, why);
	else if (missing)
		grpc_call_finish(c, GRPC_FAILED_PRECONDITION, missing);
	else {
		r->org = xstrdup(C->cfg.reports.organization_name);
		r->contact = xstrdup(C->cfg.reports.contact_info);
		r->submitter = xstrdup(C->cfg.reports.submitter);
		call_submit_new(c, admin_reports_preview_work, admin_reports_preview_answer, r,
		    admin_reports_req_free);
		return;
	}
	admin_reports_req_free(r);
}
