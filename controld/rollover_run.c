/* controld: the TLSA key rollover driver and its Admin calls
 * (rollover_run.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call.h"
#include "controld.h"
#include "db_rollover.h"
#include "dnsops.h"
#include "log.h"
#include "rollover.h"
#include "rollover_dns.h"
#include "rollover_run.h"
#include "xmalloc.h"

static struct event *rollover_ev;
static int rollover_busy;
/* The dns group, read-only once controld runs: the workers read it. */
static const struct dnsops_config *rollover_conf;

/* ---- one step of one host's rollover ---- */

static const struct dnsops_config *
rollover_cfg(void)
{
	return rollover_conf;
}

/* The observation: the host's report and every authoritative server of
 * the zone its MX name is in (dns.zones[].servers). */
static struct rollover_server_obs *
rollover_observe(const struct rollover *r, const struct db_rollover_report *rep,
    const char *const *served, struct rollover_obs *obs)
{
	const struct dnsops_config *cfg = rollover_cfg();
	const struct dnsops_zone *z = *rep->hostname ? dnsops_zone_of(cfg, rep->hostname) : NULL;
	size_t n = z ? z->nservers : 0;
	struct rollover_server_obs *so = xcalloc(n + 1, sizeof(*so));
	char *owner = xasprintf("_25._tcp.%s.", rep->hostname);

	for (size_t i = 0; i < n; i++)
		rollover_dns_ask(z->servers[i], owner, r, (int)cfg->timeout, &so[i]);
	free(owner);
	memset(obs, 0, sizeof(*obs));
	obs->servers = so;
	obs->nservers = n;
	obs->zone_ttl = rep->ttl;
	obs->served_spki = served;
	obs->nserved = rep->nserved;
	obs->next_spki = rep->next_spki;
	obs->next_cert_ready = rep->next_cert_ready;
	obs->next_cert_path = *rep->next_cert_path ? rep->next_cert_path : NULL;
	return so;
}

/* A new state (from: the one before the step, which may have crossed
 * several; "-" at the start). */
static void
rollover_log(const struct rollover *r, const char *from)
{
	char q[LOG_QUOTE_SIZE(ROLLOVER_STATUS_MAX)];
	log_info("event=rollover host=%s state=%s from=%s status=%s", r->host,
	    rollover_state_name(r->state), from, log_quote(q, sizeof(q), r->status,
	    strlen(r->status), ROLLOVER_STATUS_MAX));
}

/* After the step is stored: push every domain whose records name the host
 * (dnsgen publishes the served and next keys' TLSA, and drops a retired
 * key's). A failed push is logged; the next step asks again. */
static void
rollover_push(struct db *db, const struct rollover *r, const struct db_rollover_report *rep)
{
	char why[1024], q[LOG_QUOTE_SIZE(300)];
	size_t changed;

	if (rep->ndomains == 0)
		log_warnx("event=rollover_push_failed host=%s error=\"no hosted domain with publish "
		    "on names this host (mailctl dns set DOMAIN --publish)\"", r->host);
	for (size_t i = 0; i < rep->ndomains; i++) {
		if (dnsops_push_domain(db, rollover_cfg(), rep->domains[i], &changed, why,
		    sizeof(why)) == 0)
			log_info("event=rollover_push host=%s domain=%s changed=%zu", r->host,
			    rep->domains[i], changed);
		else
			log_warnx("event=rollover_push_failed host=%s domain=%s error=%s", r->host,
			    rep->domains[i], log_quote(q, sizeof(q), why, strlen(why), 300));
	}
}

/* Lock, load, observe, step, store. 1: another replica drives now. */
static int
rollover_run_host(struct db *db, const char *host, int64_t now, int *other)
{
	struct db_rollover_report rep;
	struct rollover_action act;
	struct rollover r;
	int got, rc;

	if ((rc = db_rollover_lock(db, &got)) != DB_OK)
		return rc;
	if (!got) {
		db_rollover_abort(db);
		*other = 1;
		return DB_OK;
	}
	if ((rc = db_rollover_load(db, host, &r)) != DB_OK) {
		db_rollover_abort(db);
		return rc == DB_ENOTFOUND ? DB_OK : rc;
	}
	if ((rc = db_rollover_report(db, host, &rep)) != DB_OK) {
		db_rollover_report_free(&rep);
		db_rollover_abort(db);
		return rc;
	}
	struct rollover_obs obs;
	struct rollover_server_obs *so = rollover_observe(&r, &rep,
	    (const char *const *)rep.served, &obs);
	enum rollover_state was = r.state;
	if (rollover_step(&r, &obs, now, &act) < 0) {
		log_warnx("event=rollover_step_failed host=%s state=%s", host,
		    rollover_state_name(r.state));
		db_rollover_abort(db);
	} else {
		enum db_rollover_switch sw = act.what == ROLLOVER_SWITCH_HOST ?
		    DB_ROLLOVER_SWITCH_SET : r.state == ROLLOVER_DONE ? DB_ROLLOVER_SWITCH_CLEAR :
		    DB_ROLLOVER_SWITCH_KEEP;
		rc = db_rollover_save(db, &r, sw);
		if (rc == DB_OK && r.state != was)
			rollover_log(&r, rollover_state_name(was));
		if (rc == DB_OK && act.what == ROLLOVER_PUSH)
			rollover_push(db, &r, &rep);
	}
	free(so);
	db_rollover_report_free(&rep);
	return rc;
}

static int
rollover_run_work(struct db *db, struct dbq_job *qj)
{
	char **hosts;
	size_t n;
	int rc, other = 0;
	char q[LOG_QUOTE_SIZE(300)];

	(void)qj;
	if ((rc = db_rollover_active(db, &hosts, &n)) != DB_OK)
		return rc;
	for (size_t i = 0; i < n && !other; i++) {
		if ((rc = rollover_run_host(db, hosts[i], (int64_t)time(NULL), &other)) != DB_OK) {
			const char *e = db_errmsg(db);
			log_warnx("event=rollover_step_failed host=%s error=%s", hosts[i],
			    log_quote(q, sizeof(q), e, strlen(e), 300));
		}
	}
	db_rollover_hosts_free(hosts, n);
	return DB_OK;
}

static void
rollover_run_done(struct dbq_job *qj)
{
	rollover_busy = 0;
	call_job_free((struct call_job *)qj);
}

static void
rollover_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (rollover_busy)
		return;
	struct call_job *j = call_bg_job_new(rollover_run_work, rollover_run_done);
	if (dbq_submit(C->dnsq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	rollover_busy = 1;
}

void
rollover_run_start(struct event_base *base)
{
	struct timeval tv = { (time_t)C->cfg.dns.rollover_interval, 0 };
	rollover_conf = &C->cfg.dns;
	rollover_ev = event_new(base, -1, EV_PERSIST, rollover_tick, NULL);
	event_add(rollover_ev, &tv);
}

void
rollover_run_stop(void)
{
	if (rollover_ev)
		event_free(rollover_ev);
	rollover_ev = NULL;
}

/* ---- Admin.StartRollover, Admin.GetRollover ---- */

static void
rollover_status_free(void *p)
{
	Mxfleet__V1__RolloverStatus *s = p;
	free(s->host_id);
	free(s->status);
	free(s->old_spki_sha256);
	free(s->new_spki_sha256);
	free(s);
}

static Mxfleet__V1__RolloverStatus *
rollover_status_new(const struct rollover *r)
{
	Mxfleet__V1__RolloverStatus *s = xmalloc(sizeof(*s));
	mxfleet__v1__rollover_status__init(s);
	s->host_id = xstrdup(r->host);
	s->state = (char *)rollover_state_name(r->state);
	s->status = xstrdup(r->status);
	s->old_spki_sha256 = xstrdup(r->old_spki);
	s->new_spki_sha256 = xstrdup(r->new_spki);
	s->entered_unix = r->entered;
	s->wait_until_unix = r->state == ROLLOVER_WAIT ? r->wait_until : 0;
	return s;
}

static int
rollover_admin_start_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__HostName *req = j->req;
	struct rollover r;
	char why[sizeof(j->q.err)];

	int rc = db_rollover_start(db, req->host_id, (int64_t)time(NULL),
	    (uint32_t)rollover_cfg()->rollover_interval, &r, why, sizeof(why));
	if (rc != DB_OK) {
		if (why[0])
			snprintf(j->q.err, sizeof(j->q.err), "%s", why);
		return rc;
	}
	rollover_log(&r, "-");
	j->reply = rollover_status_new(&r);
	j->reply_free = rollover_status_free;
	return DB_OK;
}

static int
rollover_admin_cancel_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__HostName *req = j->req;
	struct rollover r;
	char why[sizeof(j->q.err)];

	int rc = db_rollover_cancel(db, req->host_id, (int64_t)time(NULL), &r, why, sizeof(why));
	if (rc == DB_ENOTFOUND)
		snprintf(j->q.err, sizeof(j->q.err), "no rollover of host %.200s", req->host_id);
	else if (rc != DB_OK && why[0])
		snprintf(j->q.err, sizeof(j->q.err), "%s", why);
	if (rc != DB_OK)
		return rc;
	rollover_log(&r, "cancel");
	j->reply = rollover_status_new(&r);
	j->reply_free = rollover_status_free;
	return DB_OK;
}

static int
rollover_admin_get_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__HostName *req = j->req;
	struct rollover r;

	int rc = db_rollover_get(db, req->host_id, &r);
	if (rc == DB_ENOTFOUND)
		snprintf(j->q.err, sizeof(j->q.err), "no rollover of host %.200s (start one: "
		    "mailctl tls rollover %.200s)", req->host_id, req->host_id);
	if (rc != DB_OK)
		return rc;
	j->reply = rollover_status_new(&r);
	j->reply_free = rollover_status_free;
	return DB_OK;
}

static void
rollover_req_free(void *p)
{
	mxfleet__v1__host_name__free_unpacked(p, NULL);
}

static void
rollover_admin_submit(struct grpc_call *c, const uint8_t *msg, size_t len,
    int (*work)(struct db *, struct dbq_job *))
{
	UNPACK(Mxfleet__V1__HostName, mxfleet__v1__host_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0) {
		rollover_req_free(req);
		return;
	}
	if (req->host_id[0] == '\0') {
		rollover_req_free(req);
		call_refuse(c, GRPC_INVALID_ARGUMENT, "host_id is required");
		return;
	}
	call_submit_new(c, work, call_answer_reply, req, rollover_req_free);
}

void
rollover_admin_start(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	rollover_admin_submit(c, msg, len, rollover_admin_start_work);
}

void
rollover_admin_cancel(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	rollover_admin_submit(c, msg, len, rollover_admin_cancel_work);
}

void
rollover_admin_get(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	(void)arg;
	rollover_admin_submit(c, msg, len, rollover_admin_get_work);
}
