/* controld: the inbound TLS view's Admin call, metrics and warning
 * (inbound.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call.h"
#include "controld.h"
#include "db_inbound.h"
#include "inbound.h"
#include "inbound_tls.h"
#include "log.h"
#include "xmalloc.h"

#define INBOUND_DEFAULT_SINCE		3600	/* the Admin call without since */
#define INBOUND_METRICS_MAX_FAILURES	50	/* (stage, reason) series; the rest is "other" */

struct inbound_failure {
	char		*stage, *reason;
	uint64_t	 sessions;
};

/* What the last refresh found, for /metrics (the loop's thread only). */
static struct {
	const struct inbound_config	*cfg;
	struct event			*ev;
	int				 busy;
	int64_t				 refreshed;	/* unix time of the last good read; 0 none */
	uint64_t			 not_offered, offered, established, failed;
	struct inbound_failure		*fail;
	size_t				 nfail;
	struct inbound_tls_alarm	 alarm;
	int				 truncated;	/* the last read was cut */
} inbound;

static const char *const inbound_keys[] = {
	"window", "refresh_interval", "failure_threshold", "min_attempts", NULL
};

int
inbound_config_load(const config_setting_t *g, struct inbound_config *cfg,
    struct conf_err *err)
{
	config_setting_t *t;

	cfg->window = 900;
	cfg->refresh_interval = 60;
	cfg->failure_threshold = 0.2;
	cfg->min_attempts = 20;
	if (g == NULL)
		return 0;
	if (conf_check_keys(g, inbound_keys, err) < 0 ||
	    conf_get_int(g, "window", 60, 7 * 86400, &cfg->window, err) < 0 ||
	    conf_get_int(g, "refresh_interval", 1, 3600, &cfg->refresh_interval, err) < 0 ||
	    conf_get_int(g, "min_attempts", 1, 1000000000, &cfg->min_attempts, err) < 0)
		return -1;
	if ((t = config_setting_get_member(g, "failure_threshold")) == NULL)
		return 0;
	if (config_setting_type(t) == CONFIG_TYPE_FLOAT)
		cfg->failure_threshold = config_setting_get_float(t);
	else if (config_setting_type(t) == CONFIG_TYPE_INT)
		cfg->failure_threshold = config_setting_get_int(t);
	else
		return conf_error(err, t, "expected a number from 0 to 1 (0.2: one in five)");
	if (!(cfg->failure_threshold > 0 && cfg->failure_threshold <= 1))
		return conf_error(err, t, "expected a number above 0, at most 1 (0.2: one in five)");
	return 0;
}

/* ---- the Admin call ---- */

static void
inbound_free_query(void *p)
{
	mxfleet__v1__inbound_tls_query__free_unpacked(p, NULL);
}

static void
inbound_free_report(void *p)
{
	inbound_tls_report_free(p);
}

static int
inbound_admin_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__InboundTlsQuery *q = j->req;
	Mxfleet__V1__InboundTlsReport *r = NULL;
	enum inbound_tls_by by;

	(void)inbound_tls_by_parse(q->by, &by);	/* checked on the loop */
	int rc = db_inbound_tls(db, q->since_unix, by, &r);
	j->reply = r;
	j->reply_free = inbound_free_report;
	return rc;
}

void
inbound_admin(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	enum inbound_tls_by by;

	(void)arg;
	UNPACK(Mxfleet__V1__InboundTlsQuery, mxfleet__v1__inbound_tls_query, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (inbound_tls_by_parse(req->by, &by) < 0)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT,
		    "by: sender-domain, remote-ip, stage or host");
	else {
		if (req->since_unix == 0)
			req->since_unix = (int64_t)time(NULL) - INBOUND_DEFAULT_SINCE;
		call_submit_new(c, inbound_admin_work, call_answer_reply, req, inbound_free_query);
		return;
	}
	inbound_free_query(req);
}

/* ---- the periodic read: metrics and the warning ---- */

static void
inbound_failures_clear(void)
{
	for (size_t i = 0; i < inbound.nfail; i++) {
		free(inbound.fail[i].stage);
		free(inbound.fail[i].reason);
	}
	free(inbound.fail);
	inbound.fail = NULL;
	inbound.nfail = 0;
}

/* Count one (stage, reason) pair into the series; past the cap, into
 * "other" (its last slot), so a flood of odd reasons cannot blow up the
 * number of series. */
static void
inbound_failure_add(const char *stage, const char *reason, uint64_t n)
{
	for (size_t i = 0; i < inbound.nfail; i++)
		if (strcmp(inbound.fail[i].stage, stage) == 0 &&
		    strcmp(inbound.fail[i].reason, reason) == 0) {
			inbound.fail[i].sessions += n;
			return;
		}
	if (inbound.nfail == INBOUND_METRICS_MAX_FAILURES) {
		inbound_failure_add("other", "other", n);
		return;
	}
	if (inbound.nfail + 1 == INBOUND_METRICS_MAX_FAILURES) {
		stage = "other";
		reason = "other";
	}
	inbound.fail = xreallocarray(inbound.fail, inbound.nfail + 1, sizeof(*inbound.fail));
	inbound.fail[inbound.nfail].stage = xstrdup(stage);
	inbound.fail[inbound.nfail].reason = xstrdup(reason);
	inbound.fail[inbound.nfail++].sessions = n;
}

static void
inbound_cache(const Mxfleet__V1__InboundTlsReport *r)
{
	inbound.not_offered = inbound.offered = inbound.established = inbound.failed = 0;
	inbound_failures_clear();
	for (size_t i = 0; i < r->n_groups; i++) {
		const Mxfleet__V1__InboundTlsGroup *g = r->groups[i];
		inbound.not_offered += g->not_offered;
		inbound.offered += g->offered;
		inbound.established += g->established;
		inbound.failed += g->failed;
		for (size_t k = 0; k < g->n_failures; k++)
			inbound_failure_add(g->failures[k]->stage, g->failures[k]->reason,
			    g->failures[k]->sessions);
	}
}

static void
inbound_crossed(const Mxfleet__V1__InboundTlsGroup *g, void *arg)
{
	char d[LOG_QUOTE_SIZE(100)], st[LOG_QUOTE_SIZE(100)], re[LOG_QUOTE_SIZE(100)];
	const Mxfleet__V1__InboundTlsFailure *top = g->n_failures ? g->failures[0] : NULL;

	(void)arg;
	log_warnx("event=inbound_tls_failure_rate sender_domain=%s failed=%" PRIu64
	    " attempted=%" PRIu64 " rate=%.3f threshold=%.3f window=%lld top_stage=%s"
	    " top_reason=%s", log_quote(d, sizeof(d), g->key, strlen(g->key), 100),
	    g->failed, g->attempted, (double)g->failed / (double)g->attempted,
	    inbound.cfg->failure_threshold, inbound.cfg->window,
	    top ? log_quote(st, sizeof(st), top->stage, strlen(top->stage), 100) : "-",
	    top ? log_quote(re, sizeof(re), top->reason, strlen(top->reason), 100) : "-");
}

static void
inbound_recovered(const char *domain, void *arg)
{
	char d[LOG_QUOTE_SIZE(100)];

	(void)arg;
	log_info("event=inbound_tls_failure_rate_recovered sender_domain=%s threshold=%.3f",
	    log_quote(d, sizeof(d), domain, strlen(domain), 100), inbound.cfg->failure_threshold);
}

static int
inbound_refresh_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__InboundTlsReport *r = NULL;
	int rc = db_inbound_tls(db, (int64_t)j->n1, INBOUND_TLS_BY_SENDER_DOMAIN, &r);
	j->reply = r;
	j->reply_free = inbound_free_report;
	return rc;
}

/* On a database error the last counts stay (their refresh time says how
 * old they are) and no domain is warned about or forgotten. */
static void
inbound_refresh_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	char q[LOG_QUOTE_SIZE(300)];
	struct inbound_tls_alarm_cb cb = { inbound_crossed, inbound_recovered, NULL };

	inbound.busy = 0;
	if (j->q.rc != DB_OK) {
		C->m.db_errors++;
		log_warnx("event=inbound_tls_refresh_failed error=%s",
		    log_quote(q, sizeof(q), j->q.err, strlen(j->q.err), 300));
	} else if (j->reply) {
		Mxfleet__V1__InboundTlsReport *r = j->reply;
		inbound_cache(r);
		inbound.refreshed = (int64_t)j->n2;
		/* A cut read holds an arbitrary part of the window: no domain is
		 * warned about or forgotten on it (once per stretch of cut reads). */
		if (r->truncated && !inbound.truncated)
			log_warnx("event=inbound_tls_truncated window=%lld max_rows=%d action=\"the"
			    " failure-rate warning is not updated from a partial read; shorten"
			    " inbound.window\"", inbound.cfg->window, DB_INBOUND_MAX_ROWS);
		inbound.truncated = r->truncated;
		if (!r->truncated)
			inbound_tls_alarm_update(&inbound.alarm, r, inbound.cfg->failure_threshold,
			    (uint64_t)inbound.cfg->min_attempts, &cb);
	}
	call_job_free(j);
}

/* A read still running makes the next tick skip. */
static void
inbound_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (inbound.busy)
		return;
	struct call_job *j = call_bg_job_new(inbound_refresh_work, inbound_refresh_done);
	int64_t now = (int64_t)time(NULL);
	j->n1 = (uint64_t)(now - inbound.cfg->window);
	j->n2 = (uint64_t)now;
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	inbound.busy = 1;
}

void
inbound_start(struct event_base *base)
{
	struct timeval tv = { (time_t)C->cfg.inbound.refresh_interval, 0 };
	inbound.cfg = &C->cfg.inbound;
	inbound.ev = event_new(base, -1, EV_PERSIST, inbound_tick, NULL);
	event_add(inbound.ev, &tv);
	event_active(inbound.ev, EV_TIMEOUT, 0);	/* the first read now */
}

void
inbound_stop(void)
{
	if (inbound.ev)
		event_free(inbound.ev);
	inbound.ev = NULL;
	inbound_failures_clear();
	inbound_tls_alarm_free(&inbound.alarm);
}

/* ---- /metrics ---- */

/* A label value: backslash, quote and newline escaped (Prometheus text). */
static void
inbound_label(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

void
inbound_metrics(struct evbuffer *b)
{
	if (inbound.cfg == NULL)
		return;
	evbuffer_add_printf(b,
	    "# HELP mxfleet_inbound_window_seconds The window the mxfleet_inbound_* gauges count"
	    " (inbound.window).\n"
	    "# TYPE mxfleet_inbound_window_seconds gauge\n"
	    "mxfleet_inbound_window_seconds %lld\n"
	    "# HELP mxfleet_inbound_refresh_timestamp_seconds When the gauges were last read from"
	    " the database (0: not yet).\n"
	    "# TYPE mxfleet_inbound_refresh_timestamp_seconds gauge\n"
	    "mxfleet_inbound_refresh_timestamp_seconds %" PRId64 "\n"
	    "# HELP mxfleet_inbound_starttls_sessions Inbound sessions of every host in the window,"
	    " by how STARTTLS went.\n"
	    "# TYPE mxfleet_inbound_starttls_sessions gauge\n"
	    "mxfleet_inbound_starttls_sessions{result=\"established\"} %" PRIu64 "\n"
	    "mxfleet_inbound_starttls_sessions{result=\"failed\"} %" PRIu64 "\n"
	    "mxfleet_inbound_starttls_sessions{result=\"offered\"} %" PRIu64 "\n"
	    "mxfleet_inbound_starttls_sessions{result=\"not_offered\"} %" PRIu64 "\n"
	    "# HELP mxfleet_inbound_sender_domains_over_threshold Sender domains whose STARTTLS"
	    " failure rate is over inbound.failure_threshold.\n"
	    "# TYPE mxfleet_inbound_sender_domains_over_threshold gauge\n"
	    "mxfleet_inbound_sender_domains_over_threshold %zu\n"
	    "# HELP mxfleet_inbound_starttls_failures Failed inbound STARTTLS handshakes in the"
	    " window, by stage and reason.\n"
	    "# TYPE mxfleet_inbound_starttls_failures gauge\n",
	    inbound.cfg->window, inbound.refreshed, inbound.established, inbound.failed,
	    inbound.offered, inbound.not_offered, inbound.alarm.nover);
	for (size_t i = 0; i < inbound.nfail; i++) {
		evbuffer_add_printf(b, "mxfleet_inbound_starttls_failures{stage=\"");
		inbound_label(b, inbound.fail[i].stage);
		evbuffer_add_printf(b, "\",reason=\"");
		inbound_label(b, inbound.fail[i].reason);
		evbuffer_add_printf(b, "\"} %" PRIu64 "\n", inbound.fail[i].sessions);
	}
}
