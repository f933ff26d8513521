/* controld: the HTTP port (http.h). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "http.h"
#include "inbound.h"
#include "xmalloc.h"

/* /healthz requests waiting for a probe of the database. */
struct http_health_wait {
	struct http_health_wait	*next;
	struct evhttp_request	*req;
	struct event		*timer;
};


/* ---- HTTP: /metrics, /healthz ---- */

static void
http_metrics_connections(struct evbuffer *b)
{
	struct grpc_server_stats t = { 0 }, st;
	struct grpc_server *srv[] = { C->tls_srv, C->local_srv };
	for (size_t i = 0; i < sizeof(srv) / sizeof(srv[0]); i++) {
		if (srv[i] == NULL)
			continue;
		grpc_server_get_stats(srv[i], &st);
		t.connections += st.connections;
		t.refused += st.refused;
		t.handshake_timeouts += st.handshake_timeouts;
		t.idle_closed += st.idle_closed;
	}
	evbuffer_add_printf(b,
	    "# HELP controld_grpc_connections gRPC connections open (TLS and unix socket).\n"
	    "# TYPE controld_grpc_connections gauge\n"
	    "controld_grpc_connections %zu\n"
	    "# HELP controld_grpc_connections_refused_total Connections closed at accept: over max_connections or max_connections_per_ip.\n"
	    "# TYPE controld_grpc_connections_refused_total counter\n"
	    "controld_grpc_connections_refused_total %" PRIu64 "\n"
	    "# HELP controld_grpc_handshake_timeouts_total Connections closed: no HTTP/2 frame within handshake_timeout.\n"
	    "# TYPE controld_grpc_handshake_timeouts_total counter\n"
	    "controld_grpc_handshake_timeouts_total %" PRIu64 "\n"
	    "# HELP controld_grpc_idle_closed_total Connections closed: idle past idle_timeout, or a keepalive PING not answered.\n"
	    "# TYPE controld_grpc_idle_closed_total counter\n"
	    "controld_grpc_idle_closed_total %" PRIu64 "\n",
	    t.connections, t.refused, t.handshake_timeouts, t.idle_closed);
}

void
http_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	int watchers = 0;
	for (struct watcher *w = C->watchers; w; w = w->next)
		watchers += !w->dropped;
	evbuffer_add_printf(b,
	    "# HELP controld_batches_total Outcome batches stored.\n"
	    "# TYPE controld_batches_total counter\n"
	    "controld_batches_total %" PRIu64 "\n"
	    "# HELP controld_outcomes_stored_total Outcomes stored for the first time.\n"
	    "# TYPE controld_outcomes_stored_total counter\n"
	    "controld_outcomes_stored_total %" PRIu64 "\n"
	    "# HELP controld_outcomes_duplicate_total Outcomes received again and not counted.\n"
	    "# TYPE controld_outcomes_duplicate_total counter\n"
	    "controld_outcomes_duplicate_total %" PRIu64 "\n"
	    "# HELP controld_ingest_errors_total Batches refused because the database failed.\n"
	    "# TYPE controld_ingest_errors_total counter\n"
	    "controld_ingest_errors_total %" PRIu64 "\n"
	    "# HELP controld_db_errors_total Database errors of any call.\n"
	    "# TYPE controld_db_errors_total counter\n"
	    "controld_db_errors_total %" PRIu64 "\n"
	    "# HELP controld_identity_refused_total Calls refused: certificate and claimed host differ.\n"
	    "# TYPE controld_identity_refused_total counter\n"
	    "controld_identity_refused_total %" PRIu64 "\n"
	    "# HELP controld_grpc_calls_total gRPC requests handled.\n"
	    "# TYPE controld_grpc_calls_total counter\n"
	    "controld_grpc_calls_total %" PRIu64 "\n"
	    "# HELP controld_host_batches_refused_total Outcome batches hosts report refused"
	    " (RESOURCE_EXHAUSTED, INVALID_ARGUMENT).\n"
	    "# TYPE controld_host_batches_refused_total counter\n"
	    "controld_host_batches_refused_total %" PRIu64 "\n"
	    "# HELP controld_host_outcomes_quarantined_total Outcome records hosts set aside"
	    " after a refusal.\n"
	    "# TYPE controld_host_outcomes_quarantined_total counter\n"
	    "controld_host_outcomes_quarantined_total %" PRIu64 "\n"
	    "# HELP controld_config_watchers Hosts watching the configuration.\n"
	    "# TYPE controld_config_watchers gauge\n"
	    "controld_config_watchers %d\n"
	    "# HELP controld_config_watchers_dropped_total Watchers dropped: over watch_max_pending, not reading.\n"
	    "# TYPE controld_config_watchers_dropped_total counter\n"
	    "controld_config_watchers_dropped_total %" PRIu64 "\n",
	    C->m.batches, C->m.outcomes_stored, C->m.outcomes_duplicate, C->m.ingest_errors,
	    C->m.db_errors, C->m.refused_identity, C->m.calls, C->m.host_batches_refused,
	    C->m.host_outcomes_quarantined, watchers, C->m.watchers_dropped);
	http_metrics_connections(b);
	struct dbq_stats st;
	dbq_stats(C->dbq, &st);
	evbuffer_add_printf(b,
	    "# HELP controld_db_jobs_queued Database jobs waiting for a worker.\n"
	    "# TYPE controld_db_jobs_queued gauge\n"
	    "controld_db_jobs_queued %zu\n"
	    "# HELP controld_db_workers_busy Database workers running a job.\n"
	    "# TYPE controld_db_workers_busy gauge\n"
	    "controld_db_workers_busy %zu\n"
	    "# HELP controld_db_workers Database workers (db_workers).\n"
	    "# TYPE controld_db_workers gauge\n"
	    "controld_db_workers %lld\n"
	    "# HELP controld_heartbeats_unwritten_total Heartbeats acknowledged and not written:"
	    " the database failed, or the host's previous one was still waiting.\n"
	    "# TYPE controld_heartbeats_unwritten_total counter\n"
	    "controld_heartbeats_unwritten_total %" PRIu64 "\n",
	    st.queued, st.busy, C->cfg.db_workers, C->m.heartbeats_unwritten);
	inbound_metrics(b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* /healthz: a probe of the database (a worker reads the configuration
 * version), queued ahead of other work. A request waits for it at most
 * CONTROLD_HEALTH_WAIT_MS; past that, with the probe still out (the
 * database frozen, or every worker stuck on it), it is answered unhealthy,
 * so a load balancer hears "no" instead of waiting. */
static void
http_health_reply(struct evhttp_request *req, int ok, const char *why)
{
	struct evbuffer *b = evbuffer_new();
	if (ok)
		evbuffer_add_printf(b, "ok\n");
	else
		evbuffer_add_printf(b, "database unavailable: %s\n", why);
	evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
	evbuffer_free(b);
}

static void
http_health_wait_free(struct http_health_wait *h)
{
	event_free(h->timer);
	free(h);
}

static void
http_health_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_health_wait *h = arg, **pp;
	char why[120];
	for (pp = &C->health_waits; *pp && *pp != h; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = h->next;
	snprintf(why, sizeof(why), "no answer within %d ms", CONTROLD_HEALTH_WAIT_MS);
	http_health_reply(h->req, 0, why);
	http_health_wait_free(h);
}

static int
http_health_work(struct db *db, struct dbq_job *qj)
{
	uint64_t v;
	return db_config_version(db, &v);
}

static void
http_health_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	C->health_busy = 0;
	if (j->q.rc != DB_OK)
		C->m.db_errors++;
	while (C->health_waits) {
		struct http_health_wait *h = C->health_waits;
		C->health_waits = h->next;
		http_health_reply(h->req, j->q.rc == DB_OK, j->q.err);
		http_health_wait_free(h);
	}
	call_job_free(j);
}

void
http_healthz(struct evhttp_request *req, void *arg)
{
	struct http_health_wait *h = xcalloc(1, sizeof(*h));
	struct timeval tv = { 0, CONTROLD_HEALTH_WAIT_MS * 1000 };
	h->req = req;
	h->timer = evtimer_new(C->base, http_health_timeout_cb, h);
	evtimer_add(h->timer, &tv);
	h->next = C->health_waits;
	C->health_waits = h;
	if (!C->health_busy) {
		C->health_busy = 1;
		dbq_submit_first(C->dbq, &call_bg_job_new(http_health_work, http_health_done)->q);
	}
}

/* At shutdown: every /healthz still waiting is answered. */
void
http_health_drain(void)
{
	while (C->health_waits) {
		struct http_health_wait *h = C->health_waits;
		C->health_waits = h->next;
		http_health_reply(h->req, 0, "controld is stopping");
		http_health_wait_free(h);
	}
}

