/* controld: the Admin calls for a hosted domain's DNS (admin_dns.h). */
#include "admin_dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "call.h"
#include "controld.h"
#include "db_dns.h"
#include "dnsgen.h"
#include "dns_settings.h"
#include "xmalloc.h"

/* ---- the calls ---- */

#define FREE_FN(name, call)	static void name(void *p) { call; }
FREE_FN(admin_dns_free_req, mxfleet__v1__domain_dns__free_unpacked(p, NULL))
FREE_FN(admin_dns_free_name, mxfleet__v1__domain_name__free_unpacked(p, NULL))
FREE_FN(admin_dns_free_settings, db_dns_get_free(p))

static int
admin_dns_set_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return admin_change_snapshot(db, j, db_dns_set(db, j->req, (time_t)j->n1, NULL), 0);
}

void
admin_dns_set(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainDns, mxfleet__v1__domain_dns, c, msg, len);
	char text[600];

	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (dns_settings_check(req, text, sizeof(text)) < 0)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	else {
		struct call_job *j = call_job_new(c, admin_dns_set_work, admin_change_answer, req,
		    admin_dns_free_req);
		j->log = xasprintf("event=domain_dns_set domain=%s sts_mode=%s hosts=%zu "
		    "aliases=%zu", req->domain, req->sts_mode[0] ? req->sts_mode : "enforce",
		    req->n_hosts, req->n_aliases);
		j->n1 = (uint64_t)time(NULL);	/* the day in new DKIM selectors */
		call_submit(c, j);
		return;
	}
	admin_dns_free_req(req);
}

static int
admin_dns_get_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__DomainDns *d = NULL;
	int rc = db_dns_get(db, ((Mxfleet__V1__DomainName *)j->req)->name, &d);

	j->reply = d;
	j->reply_free = admin_dns_free_settings;
	return rc;
}

/* A call about one domain (DomainName), answered with j->reply. j->n1 is
 * the time it came: the day in the selectors of DKIM keys made for it. */
static void
admin_dns_named(struct grpc_call *c, const uint8_t *msg, size_t len,
    int (*work)(struct db *, struct dbq_job *))
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0) {
		admin_dns_free_name(req);
		return;
	}
	struct call_job *j = call_job_new(c, work, call_answer_reply, req, admin_dns_free_name);
	j->n1 = (uint64_t)time(NULL);
	call_submit(c, j);
}

void
admin_dns_get(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_named(c, msg, len, admin_dns_get_work);
}

/* ---- DnsRecords ---- */

#define DUP(s)	xstrdup((s) != NULL ? (s) : "")

Mxfleet__V1__DnsFinding *
admin_dns_finding_new(const struct dnsgen_error *e)
{
	Mxfleet__V1__DnsFinding *f = xmalloc(sizeof(*f));
	mxfleet__v1__dns_finding__init(f);
	f->severity = DUP(e->severity);
	f->code = DUP(e->code);
	f->subject = DUP(e->subject);
	f->what = DUP(e->what);
	f->why = DUP(e->why);
	f->fix = DUP(e->fix);
	return f;
}

void
admin_dns_finding_free(Mxfleet__V1__DnsFinding *f)
{
	free(f->severity);
	free(f->code);
	free(f->subject);
	free(f->what);
	free(f->why);
	free(f->fix);
	free(f);
}

void
admin_dns_record_free(Mxfleet__V1__DnsRecord *r)
{
	free(r->owner);
	free(r->type);
	free(r->rdata);
	free(r->why);
	free(r);
}

static void
admin_dns_set_free(void *p)
{
	Mxfleet__V1__DnsRecordSet *s = p;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_records; i++)
		admin_dns_record_free(s->records[i]);
	for (size_t i = 0; i < s->n_errors; i++)
		admin_dns_finding_free(s->errors[i]);
	free(s->records);
	free(s->errors);
	free(s->domain);
	free(s->sts_policy);
	free(s->sts_id);
	free(s);
}


static Mxfleet__V1__DnsRecordSet *
admin_dns_set_from(const char *domain, const struct dnsgen_result *r)
{
	Mxfleet__V1__DnsRecordSet *s = xmalloc(sizeof(*s));

	mxfleet__v1__dns_record_set__init(s);
	s->domain = xstrdup(domain);
	s->sts_policy = DUP(r->sts_policy);
	s->sts_id = xstrdup(r->sts_id);
	s->records = xcalloc(r->nrrs + 1, sizeof(*s->records));
	for (; s->n_records < r->nrrs; s->n_records++) {
		const struct dnsgen_rr *rr = &r->rrs[s->n_records];
		Mxfleet__V1__DnsRecord *x = xmalloc(sizeof(*x));
		mxfleet__v1__dns_record__init(x);
		x->owner = DUP(rr->owner);
		x->ttl = rr->ttl;
		x->type = DUP(rr->type);
		x->rdata = DUP(rr->rdata);
		x->why = DUP(rr->why);
		s->records[s->n_records] = x;
	}
	s->errors = xcalloc(r->nerrors + 1, sizeof(*s->errors));
	for (; s->n_errors < r->nerrors; s->n_errors++) {
		s->errors[s->n_errors] = admin_dns_finding_new(&r->errors[s->n_errors]);
	}
	return s;
}

/* The domain's keys first (a domain whose settings were never set has
 * none yet), then the records from one consistent read. */
static int
admin_dns_records_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const char *name = ((Mxfleet__V1__DomainName *)j->req)->name;
	struct dnsgen_domain d;
	struct dnsgen_result r;
	char err[300];
	int rc;

	if ((rc = db_dns_dkim_ensure(db, name, (time_t)j->n1)) != DB_OK ||
	    (rc = db_dns_load(db, name, &d)) != DB_OK)
		return rc;
	if (dnsgen_domain(&d, &r, err, sizeof(err)) < 0) {
		snprintf(qj->err, sizeof(qj->err), "cannot generate the records of %s: %s",
		    d.name, err);
		db_dns_domain_free(&d);
		return DB_EINVAL;
	}
	j->reply = admin_dns_set_from(d.name, &r);
	j->reply_free = admin_dns_set_free;
	dnsgen_result_free(&r);
	db_dns_domain_free(&d);
	return DB_OK;
}

void
admin_dns_records(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_named(c, msg, len, admin_dns_records_work);
}
