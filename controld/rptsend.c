/* controld: planning and sending the TLS reports (rptsend.h). */
#include "rptsend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "call.h"
#include "controld.h"
#include "db_rptsend.h"
#include "db_tlsrpt.h"
#include "log.h"
#include "rptsend_net.h"
#include "tlsrpt.h"
#include "tlsrpt_mail.h"
#include "xmalloc.h"

#define RPTSEND_DAY	86400

/* Read-only for the process once rptsend_start has run. */
static const struct reports_config *rptsend_cfg;
static const char *rptsend_resolver;
static long long rptsend_offset;
static struct dbq *rptsend_q;
static struct event *rptsend_ev;
static int rptsend_busy;

time_t
rptsend_clock(void)
{
	return time(NULL) + (time_t)rptsend_offset;
}

struct dbq *
rptsend_queue(void)
{
	return rptsend_q;
}

static void
rptsend_error(struct rptsend_round *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rptsend_error(struct rptsend_round *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->nerrors >= 100)
		return;
	r->errors = xreallocarray(r->errors, r->nerrors + 1, sizeof(char *));
	r->errors[r->nerrors++] = xstrdup(line);
}

void
rptsend_round_free(struct rptsend_round *r)
{
	for (size_t i = 0; i < r->nerrors; i++)
		free(r->errors[i]);
	free(r->errors);
	r->errors = NULL;
	r->nerrors = 0;
}

static uint64_t
rptsend_failures(const struct tlsrpt_report *rep)
{
	uint64_t n = 0;

	for (size_t i = 0; i < rep->n_policies; i++)
		n += rep->policies[i].total_failure;
	return n;
}

/* The delivery of rep to one rua. */
static int
rptsend_plan_rua(struct db *db, struct rptsend_round *r, const struct db_tlsrpt_pair *pair,
    const struct tlsrpt_report *rep, const struct tlsrpt_txt_rua *u, int force)
{
	char err[RPTSEND_ERR_MAX], *json;
	size_t len;
	int rc, added;

	if (tlsrpt_build_json(rep, &json, &len, err, sizeof(err)) < 0) {
		rptsend_error(r, "%s: the report cannot be built: %s", pair->policy_domain, err);
		return DB_OK;
	}
	struct db_rptsend_new d = { r->day, pair->policy_domain, db_tlsrpt_kind_name(pair->kind),
	    u->uri, tlsrpt_txt_scheme_name(u->scheme), u->target, rep->report_id, json,
	    force ? r->now : rptsend_config_due(&rptsend_cfg->send, rep->report_id, u->uri,
	    r->now) };
	if ((rc = db_rptsend_add(db, &d, &added)) == DB_OK && added) {
		r->planned++;
		log_info("event=tlsrpt_planned day_unix=%lld domain=%s kind=%s rua=%s",
		    (long long)r->day, pair->policy_domain, d.kind, u->uri);
	}
	free(json);
	return rc;
}

static int
rptsend_usable(const struct tlsrpt_txt_rua *u)
{
	return u->scheme == TLSRPT_TXT_MAILTO || u->scheme == TLSRPT_TXT_HTTPS;
}

/* Whether txt names the same address as u (mailto: target, https: URI). */
static int
rptsend_names(const struct tlsrpt_txt *txt, const struct tlsrpt_txt_rua *u)
{
	for (size_t i = 0; txt && i < txt->n_rua; i++)
		if (rptsend_usable(&txt->rua[i]) && txt->rua[i].scheme == u->scheme &&
		    strcasecmp(txt->rua[i].target, u->target) == 0)
			return 1;
	return 0;
}

/* One day's reports and what each is sent to. */
struct rptsend_plan_set {
	struct db_tlsrpt_pair	*pairs;
	struct tlsrpt_report	*reps;
	struct tlsrpt_txt	**txt;		/* NULL: no usable record */
	int			*send;		/* the report is sent (failures, setting) */
	size_t			 n;
};

/* A host report to u: without the DANE results of the recipient domains
 * whose own report u also gets (the same data never twice to one address). */
static int
rptsend_plan_host_rua(struct db *db, struct rptsend_round *r, const struct rptsend_plan_set *ps,
    size_t i, const struct tlsrpt_txt_rua *u, int force)
{
	struct db_tlsrpt_submitter who = { rptsend_cfg->organization_name,
	    rptsend_cfg->contact_info, rptsend_cfg->submitter };
	char **excl = xcalloc(ps->n + 1, sizeof(char *));
	struct tlsrpt_report rep;
	size_t n = 0;
	int rc;

	for (size_t j = 0; j < ps->n; j++)
		if (ps->pairs[j].kind == TLSRPT_KIND_DOMAIN && ps->send[j] &&
		    rptsend_names(ps->txt[j], u))
			excl[n++] = ps->pairs[j].policy_domain;
	if (n == 0) {
		free(excl);
		return rptsend_plan_rua(db, r, &ps->pairs[i], &ps->reps[i], u, force);
	}
	rc = db_tlsrpt_host_report_without(db, ps->pairs[i].policy_domain, r->day, &who, excl, n,
	    &rep);
	free(excl);
	if (rc == DB_ENOTFOUND) {
		log_info("event=tlsrpt_covered day_unix=%lld domain=%s kind=host rua=%s "
		    "reason=\"every result is in a recipient domain's report to that address\"",
		    (long long)r->day, ps->pairs[i].policy_domain, u->uri);
		return DB_OK;
	}
	if (rc == DB_OK) {
		rc = rptsend_plan_rua(db, r, &ps->pairs[i], &rep, u, force);
		tlsrpt_report_free(&rep);
	}
	return rc;
}

/* The deliveries of report i: one per usable rua. */
static int
rptsend_plan_one(struct db *db, struct rptsend_round *r, const struct rptsend_plan_set *ps,
    size_t i, int force)
{
	const struct tlsrpt_txt *txt = ps->txt[i];
	int rc = DB_OK;

	for (size_t k = 0; txt && k < txt->n_rua && rc == DB_OK; k++) {
		if (!rptsend_usable(&txt->rua[k]))
			continue;
		if (ps->pairs[i].kind == TLSRPT_KIND_HOST)
			rc = rptsend_plan_host_rua(db, r, ps, i, &txt->rua[k], force);
		else
			rc = rptsend_plan_rua(db, r, &ps->pairs[i], &ps->reps[i], &txt->rua[k],
			    force);
	}
	return rc;
}

/* The rua of every report to send, looked up once each. */
static void
rptsend_lookup(struct rptsend_round *r, const struct dns_resolver *res,
    struct rptsend_plan_set *ps)
{
	char err[RPTSEND_ERR_MAX];

	ps->txt = xcalloc(ps->n + 1, sizeof(*ps->txt));
	ps->send = xcalloc(ps->n + 1, sizeof(*ps->send));
	for (size_t i = 0; i < ps->n; i++) {
		ps->send[i] = rptsend_cfg->send.report_without_failures ||
		    rptsend_failures(&ps->reps[i]) > 0;
		if (ps->send[i] && rptsend_net_rua(res, ps->pairs[i].policy_domain, &ps->txt[i],
		    err, sizeof(err)) < 0)
			rptsend_error(r, "%s: %s", ps->pairs[i].policy_domain, err);
	}
}

static void
rptsend_plan_set_free(struct rptsend_plan_set *ps)
{
	for (size_t i = 0; ps->txt && i < ps->n; i++)
		tlsrpt_txt_free(ps->txt[i]);
	free(ps->txt);
	free(ps->send);
	db_tlsrpt_reports_free(ps->pairs, ps->reps, ps->n);
}

/* Every report of r->day, looked up and queued. */
static int
rptsend_plan(struct db *db, struct rptsend_round *r, int force)
{
	struct db_tlsrpt_submitter who = { rptsend_cfg->organization_name,
	    rptsend_cfg->contact_info, rptsend_cfg->submitter };
	struct rptsend_plan_set ps = { 0 };
	struct dns_resolver *res;
	char err[300];
	int rc;

	if (rptsend_resolver == NULL) {
		rptsend_error(r, "dns.resolver is not set: no rua can be looked up");
		return DB_OK;
	}
	if ((res = dns_resolver_new(rptsend_resolver, 2000, 2, err, sizeof(err))) == NULL) {
		rptsend_error(r, "dns.resolver: %s", err);
		return DB_OK;
	}
	if ((rc = db_tlsrpt_reports(db, r->day, &who, &ps.pairs, &ps.reps, &ps.n)) != DB_OK) {
		dns_resolver_free(res);
		return rc;
	}
	rptsend_lookup(r, res, &ps);
	dns_resolver_free(res);
	for (size_t i = 0; i < ps.n && rc == DB_OK; i++)
		if (ps.send[i])
			rc = rptsend_plan_one(db, r, &ps, i, force);
	rptsend_plan_set_free(&ps);
	if (rc == DB_OK && !force)
		rc = db_rptsend_day_mark(db, r->day);
	return rc;
}

/* The signed mail of d: 0 with *msg, 1 to wait (no key, no sender: err
 * says what to set), -1 when it cannot be made. */
static int
rptsend_compose(struct db *db, const struct db_rptsend_delivery *d, time_t now, char **msg,
    size_t *len, char *err, size_t errsz)
{
	struct tlsrpt_report rep;
	char *sel, *pem;
	uint64_t nonce = 0;
	int rc;

	*msg = NULL;
	if (rptsend_cfg->mail_from == NULL) {
		snprintf(err, errsz, "reports.mail_from is not set: no sender for mailed reports");
		return 1;
	}
	if ((rc = db_rptsend_dkim_key(db, rptsend_cfg->submitter, &sel, &pem)) != DB_OK) {
		snprintf(err, errsz, "%s", db_errmsg(db));
		return rc == DB_ENOTFOUND ? 1 : -1;
	}
	if (tlsrpt_parse(d->report_json, strlen(d->report_json), NULL, &rep, err, errsz) < 0) {
		free(sel);
		free(pem);
		return -1;
	}
	RAND_bytes((unsigned char *)&nonce, sizeof(nonce));
	struct tlsrpt_mail m = { rptsend_cfg->mail_from, d->target, rptsend_cfg->submitter,
	    d->policy_domain, NULL, nonce, NULL, now, rptsend_cfg->submitter, sel, pem };
	rc = tlsrpt_mail_compose(&rep, &m, msg, len, err, errsz);
	tlsrpt_report_free(&rep);
	free(sel);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	return rc < 0 ? -1 : 0;
}

/* One try: 0 sent, 1 waiting (nothing tried), -1 failed (err). */
static int
rptsend_try(struct db *db, const struct db_rptsend_delivery *d, time_t now, char *err,
    size_t errsz)
{
	unsigned char *gz;
	size_t len;
	char *msg;
	int rc;

	if (strcmp(d->scheme, "https") == 0) {
		if (tlsrpt_gzip(d->report_json, strlen(d->report_json), &gz, &len, err, errsz) < 0)
			return -1;
		rc = rptsend_net_https(&rptsend_cfg->send, d->target, gz, len, err, errsz);
		free(gz);
		return rc;
	}
	if ((rc = rptsend_compose(db, d, now, &msg, &len, err, errsz)) != 0)
		return rc;
	rc = rptsend_net_smtp(&rptsend_cfg->send, rptsend_cfg->submitter, rptsend_cfg->mail_from,
	    d->target, msg, len, err, errsz);
	free(msg);
	return rc;
}

/* After a try (outcome 0 sent, 1 waiting: nothing was tried, -1 failed):
 * sent, retried later (the delay doubles per attempt up to retry_max), or
 * failed give_up seconds after the first try. */
static int
rptsend_settle(struct db *db, struct rptsend_round *r, const struct db_rptsend_delivery *d,
    int outcome, const char *err)
{
	char q[LOG_QUOTE_SIZE(300)];
	time_t next;
	int tried = outcome < 0, give_up;

	if (outcome == 0) {
		r->sent++;
		log_info("event=tlsrpt_sent id=%lld domain=%s kind=%s rua=%s attempts=%d",
		    (long long)d->id, d->policy_domain, d->kind, d->rua, d->attempts + 1);
		return db_rptsend_finish(db, d->id, "sent", r->now, r->now, 1, "");
	}
	give_up = rptsend_config_retry(&rptsend_cfg->send, d->attempts, d->first_attempt, r->now,
	    &next);
	log_quote(q, sizeof(q), err, strlen(err), 300);
	if (tried && give_up) {
		r->failed++;
		log_warnx("event=tlsrpt_failed id=%lld domain=%s rua=%s attempts=%d error=%s",
		    (long long)d->id, d->policy_domain, d->rua, d->attempts + 1, q);
		return db_rptsend_finish(db, d->id, "failed", r->now, r->now, 1, err);
	}
	r->retrying++;
	rptsend_error(r, "%s %s: %s", d->policy_domain, d->rua, err);
	log_warnx("event=%s id=%lld domain=%s rua=%s attempts=%d retry_in=%lld error=%s",
	    tried ? "tlsrpt_send_failed" : "tlsrpt_send_waiting", (long long)d->id,
	    d->policy_domain, d->rua, d->attempts + tried, (long long)(next - r->now), q);
	return db_rptsend_finish(db, d->id, "pending", r->now, next, tried, err);
}

static int
rptsend_send_due(struct db *db, struct rptsend_round *r)
{
	struct db_rptsend_delivery d;
	char err[RPTSEND_ERR_MAX];
	uint64_t n;
	int rc, got;

	if ((rc = db_rptsend_suppress_due(db, r->now, &n)) != DB_OK)
		return rc;
	r->suppressed += (uint32_t)n;
	while ((rc = db_rptsend_claim(db, r->now, &d, &got)) == DB_OK && got) {
		err[0] = '\0';
		rc = rptsend_settle(db, r, &d, rptsend_try(db, &d, r->now, err, sizeof(err)), err);
		db_rptsend_delivery_free(&d);
		if (rc != DB_OK)
			break;
	}
	return rc;
}

int
rptsend_round_run(struct db *db, struct rptsend_round *r)
{
	uint64_t n;
	int rc, got, planned;

	if ((rc = db_rptsend_lock(db, &got)) != DB_OK)
		return rc;
	if (!got) {
		r->busy = 1;
		return DB_OK;
	}
	if ((rc = db_rptsend_recover(db, r->now, &n)) == DB_OK && n > 0)
		log_warnx("event=tlsrpt_recovered deliveries=%llu reason=\"a round stopped while "
		    "sending; they are sent again\"", (unsigned long long)n);
	if (rc == DB_OK && r->day >= 0)
		rc = rptsend_plan(db, r, 1);
	else if (rc == DB_OK) {
		time_t today = r->now / RPTSEND_DAY * RPTSEND_DAY;
		r->day = today - RPTSEND_DAY;
		if (r->now >= today + rptsend_cfg->send.jitter &&
		    (rc = db_rptsend_day_planned(db, r->day, &planned)) == DB_OK && !planned)
			rc = rptsend_plan(db, r, 0);
	}
	if (rc == DB_OK)
		rc = rptsend_send_due(db, r);
	db_rptsend_unlock(db);
	return rc;
}

static void
rptsend_round_release(void *p)
{
	rptsend_round_free(p);
	free(p);
}

static int
rptsend_tick_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct rptsend_round *r = j->req;

	return rptsend_round_run(db, r);
}

static void
rptsend_tick_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	char q[LOG_QUOTE_SIZE(300)];

	rptsend_busy = 0;
	if (qj->rc != DB_OK)
		log_warnx("event=tlsrpt_round_failed error=%s",
		    log_quote(q, sizeof(q), qj->err, strlen(qj->err), 300));
	call_job_free(j);
}

/* A round still running (many deliveries, a slow receiver) makes the next
 * tick skip. */
static void
rptsend_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (rptsend_busy)
		return;
	struct call_job *j = call_bg_job_new(rptsend_tick_work, rptsend_tick_done);
	struct rptsend_round *r = xcalloc(1, sizeof(*r));
	r->now = rptsend_clock();
	r->day = -1;
	j->req = r;
	j->req_free = rptsend_round_release;
	if (dbq_submit(rptsend_q, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	rptsend_busy = 1;
}

void
rptsend_start(struct event_base *base)
{
	struct dbq_opts o = { C->cfg.database, (int)C->cfg.statement_timeout * 1000, 1, 8 };
	const char *off = getenv("MXFLEET_REPORTS_CLOCK_OFFSET");
	char err[512];

	rptsend_cfg = &C->cfg.reports;
	rptsend_resolver = C->cfg.dns.resolver;
	if (off != NULL && *off != '\0') {
		rptsend_offset = strtoll(off, NULL, 10);
		log_warnx("event=tlsrpt_clock_offset seconds=%lld reason=\"test hook "
		    "MXFLEET_REPORTS_CLOCK_OFFSET is set\"", rptsend_offset);
	}
	if (dbq_new(&rptsend_q, base, &o, err, sizeof(err)) < 0) {
		log_warnx("event=tlsrpt_worker_failed error=\"%s\"", err);
		return;
	}
	if (!C->cfg.reports.send.enabled || reports_config_missing(&C->cfg.reports))
		return;
	struct timeval tv = { (time_t)C->cfg.reports.send.interval, 0 };
	rptsend_ev = event_new(base, -1, EV_PERSIST, rptsend_tick, NULL);
	event_add(rptsend_ev, &tv);
}

void
rptsend_stop(void)
{
	if (rptsend_ev)
		event_free(rptsend_ev);
	rptsend_ev = NULL;
	dbq_free(rptsend_q, CONTROLD_STOP_WAIT_MS);
	rptsend_q = NULL;
}
