/* controld: the control daemon. gRPC over HTTP/2 with mutual TLS for the
 * fleet (Collector, Fleet) and for mailctl (Admin, also on a local unix
 * socket), all state in PostgreSQL, /metrics and /healthz over plain HTTP.
 *
 *   controld -c FILE            run
 *   controld -c FILE migrate    apply schema migrations and exit
 *   controld -n -c FILE         check the configuration and exit */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "dbq.h"
#include "dnsname.h"
#include "grpc.h"
#include "log.h"
#include "timeutil.h"
#include "netaddr.h"
#include "nexthop.h"
#include "pki.h"
#include "mxfleet.pb-c.h"
#include "rcpt_addr.h"
#include "xmalloc.h"

#define CONTROLD_WATCH_POLL_MS	2000	/* other replicas' config changes */
#define CONTROLD_SPARE_FDS	64	/* listeners, PostgreSQL, HTTP, logs */
#define CONTROLD_WATCH_MAX_PENDING	(16 << 20)
#define CONTROLD_MS_PER_DAY		INT64_C(86400000)
#define CONTROLD_HEALTH_WAIT_MS	500	/* /healthz: a probe of the database, at most */

struct controld_config {
	char	*listen;
	char	*socket;
	char	*http;
	char	*database;
	char	*schema_dir;
	char	*cert, *key, *ca;
	enum log_level log_level;
	long long max_message;
	int	 allow_multiple_ca;
	long long revocation_interval;	/* seconds between reloads of revoked serials */
	/* what one peer may hold (docs/control-plane.md, "controld") */
	long long handshake_timeout, idle_timeout;	/* seconds */
	long long max_connections, max_connections_per_ip, max_streams;
	long long watch_max_pending;	/* bytes queued for one watcher */
	/* outcome start times accepted: now - days .. now + seconds */
	long long outcome_max_age_days, outcome_max_future;
	long long statement_timeout;	/* seconds, every database statement */
	long long http_max_request;	/* bytes: request line and headers */
	long long http_timeout;		/* seconds */
	long long db_workers;		/* threads, one connection each */
	long long db_max_queued;	/* database jobs waiting for a worker */
};

struct watcher {
	struct watcher		*next, *prev;
	struct grpc_call	*call;
	char			 host_id[256];
	uint64_t		 sent_version;
	int			 dropped;	/* aborted: not reading */
};

struct metrics {
	uint64_t	batches, outcomes_stored, outcomes_duplicate, ingest_errors;
	uint64_t	refused_identity, db_errors, calls, watchers_dropped;
	uint64_t	host_batches_refused, host_outcomes_quarantined;	/* as hosts report */
	uint64_t	heartbeats_unwritten;
};

struct call_job;

/* What controld keeps of a gRPC call while database work for it runs: the
 * jobs whose answers it waits for, in the order they go out (a stream's
 * acks follow its batches), and its watcher (WatchConfig). Outlives the
 * call when jobs are still running: their results are then dropped. */
struct rpc {
	struct grpc_call	*call;		/* NULL once the call ended */
	struct call_job		*head, *tail;
	int			 half_closed;	/* Stream: finish once every answer is out */
	struct watcher		*watcher;
};

/* One piece of database work, on a worker, with what it needs and what it
 * finds. answer runs on the loop once the job and every earlier job of its
 * call are done; the call is NULL when it ended meanwhile. */
struct call_job {
	struct dbq_job		 q;		/* first: the pool hands it back */
	struct rpc		*rpc;		/* NULL: no call waits for it */
	struct call_job		*next;		/* in rpc's list, or the heartbeat list */
	int			 finished;
	void			(*answer)(struct call_job *j, struct grpc_call *c);
	char			*path;		/* the call's method, for logs */
	void			*req;		/* the unpacked request */
	void			(*req_free)(void *req);
	void			*reply;		/* list results, built by the worker */
	void			(*reply_free)(void *reply);
	Mxfleet__V1__ConfigSnapshot *snap;	/* a change: the snapshot that includes it */
	uint64_t		 n1, n2;	/* stored, duplicates; newly revoked; versions */
	char			**locals;	/* recipients add/remove */
	size_t			 nlocals;
	char			**serials;	/* the revoked serials read back */
	size_t			 nserials;
	char			*log;		/* logged when the change is stored */
	int			 status;	/* a refusal made on the loop, in call order */
	char			*status_msg;
};

/* /healthz requests waiting for a probe of the database. */
struct health_wait {
	struct health_wait	*next;
	struct evhttp_request	*req;
	struct event		*timer;
};

struct controld {
	struct controld_config	 cfg;
	struct event_base	*base;
	struct dbq		*dbq;
	struct grpc_server	*tls_srv;
	struct grpc_server	*local_srv;
	struct evhttp		*http;
	SSL_CTX			*tls;
	struct watcher		*watchers;
	uint64_t		 config_version;
	Mxfleet__V1__ConfigSnapshot *snap;	/* the newest snapshot read */
	struct event		*poll_ev;
	struct metrics		 m;
	struct pki_revoked	*revoked;	/* read by the TLS verify callback */
	struct event		*revoke_ev;
	int			 poll_busy, revoke_busy, health_busy;
	struct call_job		*hb_pending;	/* heartbeat writes queued or running */
	struct health_wait	*health_waits;
};

static struct controld *C;

/* ---- helpers ---- */

static int
reply_msg(struct grpc_call *c, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = xmalloc(n ? n : 1);
	protobuf_c_message_pack(msg, buf);
	int rc = grpc_call_send(c, buf, n);
	free(buf);
	return rc;
}

/* Answer a unary call; nothing when the call is gone (c NULL). */
static void
reply_unary(struct grpc_call *c, const ProtobufCMessage *msg)
{
	if (c == NULL)
		return;
	reply_msg(c, msg);
	grpc_call_finish(c, GRPC_OK, NULL);
}

/* A failed database job, as the caller should read it: a refused request
 * is the caller's to fix, anything else is "try again later". Counted and
 * logged even when the call is gone. */
static void
fail_db(struct grpc_call *c, const struct call_job *j)
{
	static const struct { int rc; int status; } map[] = {
		{ DB_EINVAL, GRPC_INVALID_ARGUMENT }, { DB_EEXIST, GRPC_ALREADY_EXISTS },
		{ DB_ENOTFOUND, GRPC_NOT_FOUND },
	};
	int status = GRPC_UNAVAILABLE;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].rc == j->q.rc)
			status = map[i].status;
	const char *e = j->q.err;
	char msg[600], q[LOG_QUOTE_SIZE(300)];
	if (status == GRPC_UNAVAILABLE) {
		C->m.db_errors++;
		log_warnx("event=db_error path=%s error=%s", j->path ? j->path : "-",
		    log_quote(q, sizeof(q), e, strlen(e), 300));
		snprintf(msg, sizeof(msg), "database: %s", e);
	} else
		snprintf(msg, sizeof(msg), "%s", e);
	if (c)
		grpc_call_finish(c, status, msg);
}

#define UNPACK(type, fn, c, msg, len)						\
	type *req = fn##__unpack(NULL, len, msg);				\
	if (req == NULL) {							\
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "cannot parse request");	\
		return;								\
	}

/* ---- calls answered when their database work is done ---- */

static void watch_remove(struct watcher *w);

static struct rpc *
rpc_of(struct grpc_call *c)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->call = c;
		grpc_call_set_data(c, r);
	}
	return r;
}

static void
call_job_free(struct call_job *j)
{
	if (j->req && j->req_free)
		j->req_free(j->req);
	if (j->reply && j->reply_free)
		j->reply_free(j->reply);
	if (j->snap)
		db_config_snapshot_free(j->snap);
	for (size_t i = 0; i < j->nlocals; i++)
		free(j->locals[i]);
	free(j->locals);
	for (size_t i = 0; i < j->nserials; i++)
		free(j->serials[i]);
	free(j->serials);
	free(j->path);
	free(j->log);
	free(j->status_msg);
	free(j);
}

/* Send every answer that is ready, in order. An rpc whose call ended is
 * freed with its last job. */
static void
rpc_flush(struct rpc *r)
{
	while (r->head && r->head->finished) {
		struct call_job *j = r->head;
		r->head = j->next;
		if (r->head == NULL)
			r->tail = NULL;
		j->answer(j, r->call);
		call_job_free(j);
	}
	if (r->head)
		return;
	if (r->call == NULL)
		free(r);
	else if (r->half_closed)
		grpc_call_finish(r->call, GRPC_OK, NULL);
}

static void
call_job_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	j->finished = 1;
	rpc_flush(j->rpc);
}

static struct call_job *
call_job_new(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *))
{
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->q.work = work;
	j->q.done = call_job_done;
	j->answer = answer;
	j->path = xstrdup(grpc_call_path(c));
	return j;
}

static void
rpc_append(struct rpc *r, struct call_job *j)
{
	j->rpc = r;
	if (r->tail)
		r->tail->next = j;
	else
		r->head = j;
	r->tail = j;
}

/* Queue a job for call c. With the queue full the call is answered
 * UNAVAILABLE (in its turn): the caller retries later. */
static void
call_submit(struct grpc_call *c, struct call_job *j)
{
	struct rpc *r = rpc_of(c);
	rpc_append(r, j);
	if (dbq_submit(C->dbq, &j->q) < 0) {
		j->q.rc = DB_ECONN;
		snprintf(j->q.err, sizeof(j->q.err), "busy: %lld jobs wait for a database worker "
		    "(db_max_queued)", C->cfg.db_max_queued);
		j->finished = 1;
		rpc_flush(r);
	}
}

static void
answer_refusal(struct call_job *j, struct grpc_call *c)
{
	if (c)
		grpc_call_finish(c, j->status, j->status_msg);
}

/* Refuse in call order: a stream's batches before this one are answered
 * first. */
static void
call_refuse(struct grpc_call *c, int status, const char *msg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL || r->head == NULL) {
		grpc_call_finish(c, status, msg);
		return;
	}
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->answer = answer_refusal;
	j->status = status;
	j->status_msg = xstrdup(msg);
	j->finished = 1;
	rpc_append(r, j);
}

/* Every method's on_close: whatever the call waits for is dropped when it
 * comes; a watcher stops. */
static void
rpc_end(struct grpc_call *c, void *arg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL)
		return;
	grpc_call_set_data(c, NULL);
	r->call = NULL;
	if (r->watcher) {
		watch_remove(r->watcher);
		r->watcher = NULL;
	}
	if (r->head == NULL)
		free(r);
}

/* The common answer: the reply the worker built, or the failure. */
static void
answer_reply(struct call_job *j, struct grpc_call *c)
{
	if (j->q.rc != DB_OK)
		fail_db(c, j);
	else
		reply_unary(c, j->reply);
}

/* A job no call waits for (polls, heartbeat writes, reloads). */
static struct call_job *
bg_job_new(int (*work)(struct db *, struct dbq_job *), void (*done)(struct dbq_job *))
{
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->q.work = work;
	j->q.done = done;
	return j;
}

/* A host may speak only for itself: the certificate's CN is its host_id. */
static int
check_host(struct grpc_call *c, const char *host_id)
{
	if (host_id == NULL || host_id[0] == '\0') {
		call_refuse(c, GRPC_INVALID_ARGUMENT, "host_id is required");
		return -1;
	}
	if (strcmp(grpc_call_peer_unit(c), "host") != 0 || strcmp(grpc_call_peer(c), host_id) != 0) {
		C->m.refused_identity++;
		log_warnx("event=identity_refused peer=%s unit=%s claimed=%s path=%s",
		    grpc_call_peer(c), grpc_call_peer_unit(c), host_id, grpc_call_path(c));
		char msg[600];
		snprintf(msg, sizeof(msg), "certificate %s may not speak for host %s",
		    grpc_call_peer(c), host_id);
		call_refuse(c, GRPC_PERMISSION_DENIED, msg);
		return -1;
	}
	return 0;
}

static int
check_admin(struct grpc_call *c)
{
	if (grpc_call_peer_is_local(c) || strcmp(grpc_call_peer_unit(c), "admin") == 0)
		return 0;
	C->m.refused_identity++;
	grpc_call_finish(c, GRPC_PERMISSION_DENIED, "the Admin service needs an admin certificate");
	return -1;
}

/* A start time picks the day partition an outcome goes to, and the day is
 * created on demand: only days near now may be, or one host could make a
 * table for every day from 1970 to 9999. */
static int
outcome_times_check(const Mxfleet__V1__OutcomeBatch *b, int64_t now_ms, char *msg, size_t msgsz)
{
	int64_t lo = now_ms - C->cfg.outcome_max_age_days * CONTROLD_MS_PER_DAY;
	int64_t hi = now_ms + C->cfg.outcome_max_future * 1000;
	for (size_t i = 0; i < b->n_outcomes; i++) {
		const Mxfleet__V1__Outcome *o = b->outcomes[i];
		if (o->start_unix_ms >= lo && o->start_unix_ms <= hi)
			continue;
		snprintf(msg, msgsz, "outcome seq %" PRIu64 ": start time %" PRId64 " ms is outside"
		    " now - %lld days .. now + %lld s (outcome_max_age_days, outcome_max_future)",
		    o->seq, o->start_unix_ms, C->cfg.outcome_max_age_days, C->cfg.outcome_max_future);
		return -1;
	}
	return 0;
}

/* ---- Collector ---- */

static void
free_batch(void *p)
{
	mxfleet__v1__outcome_batch__free_unpacked(p, NULL);
}

static int
ingest_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_ingest(db, j->req, &j->n1, &j->n2);
}

/* Stored means counted, whether or not the caller is still there to hear
 * it; the Ack goes out only after COMMIT, and after the acks of the
 * stream's earlier batches (mxd acknowledges its journal up to the seq). */
static void
ingest_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__OutcomeBatch *b = j->req;
	if (j->q.rc != DB_OK) {
		C->m.ingest_errors++;
		fail_db(c, j);
		return;
	}
	C->m.batches++;
	C->m.outcomes_stored += j->n1;
	C->m.outcomes_duplicate += j->n2;
	if (c == NULL)
		return;
	Mxfleet__V1__Ack ack = MXFLEET__V1__ACK__INIT;
	ack.seq = b->seq;
	ack.duplicate = j->n1 == 0 && j->n2 > 0;
	reply_msg(c, &ack.base);
	if (strcmp(j->path, "/mxfleet.v1.Collector/Export") == 0)
		grpc_call_finish(c, GRPC_OK, NULL);
}

static void
collector_batch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__OutcomeBatch, mxfleet__v1__outcome_batch, c, msg, len);
	C->m.calls++;
	char why[300];
	if (check_host(c, req->host_id) < 0)
		goto out;
	if (outcome_times_check(req, timeutil_wall_ms(), why, sizeof(why)) < 0) {
		log_warnx("event=batch_refused host=%s seq=%" PRIu64 " reason=\"%s\"", req->host_id,
		    req->seq, why);
		call_refuse(c, GRPC_INVALID_ARGUMENT, why);
		goto out;
	}
	struct call_job *j = call_job_new(c, ingest_work, ingest_answer);
	j->req = req;
	j->req_free = free_batch;
	call_submit(c, j);
	return;
out:
	mxfleet__v1__outcome_batch__free_unpacked(req, NULL);
}

/* Stream: the client has sent its last batch; the call ends once their
 * answers are out. */
static void
collector_half_close(struct grpc_call *c, void *arg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r && r->head)
		r->half_closed = 1;
	else
		grpc_call_finish(c, GRPC_OK, NULL);
}

/* ---- Fleet ---- */

static void
free_register(void *p)
{
	mxfleet__v1__register_request__free_unpacked(p, NULL);
}

static void
free_heartbeat(void *p)
{
	mxfleet__v1__heartbeat_request__free_unpacked(p, NULL);
}

static void
free_watch(void *p)
{
	mxfleet__v1__watch_request__free_unpacked(p, NULL);
}

static int
register_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_host_register(db, j->req, &j->n1);
}

static void
register_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__RegisterRequest *req = j->req;
	if (j->q.rc != DB_OK) {
		fail_db(c, j);
		return;
	}
	log_info("event=host_registered host=%s version=%s", req->host_id, req->version);
	Mxfleet__V1__RegisterResponse r = MXFLEET__V1__REGISTER_RESPONSE__INIT;
	r.config_version = j->n1;
	reply_unary(c, &r.base);
}

static void
fleet_register(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RegisterRequest, mxfleet__v1__register_request, c, msg, len);
	C->m.calls++;
	if (check_host(c, req->host_id) < 0) {
		mxfleet__v1__register_request__free_unpacked(req, NULL);
		return;
	}
	struct call_job *j = call_job_new(c, register_work, register_answer);
	j->req = req;
	j->req_free = free_register;
	call_submit(c, j);
}

/* The heartbeat's write: last_seen, and what it says of the host's outcome
 * upload (stored for mailctl hosts; n1, n2: by how much the refused and
 * quarantined counts grew, for /metrics). */
static int
heartbeat_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__HeartbeatRequest *req = j->req;
	uint64_t v;
	int rc = db_host_heartbeat(db, req, &v);
	if (rc != DB_OK)
		return rc;
	return db_host_upload_health(db, req->host_id, req->batches_refused,
	    req->outcomes_quarantined, &j->n1, &j->n2);
}

static void
heartbeat_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj, **pp;
	const Mxfleet__V1__HeartbeatRequest *req = j->req;
	char q[LOG_QUOTE_SIZE(300)];

	for (pp = &C->hb_pending; *pp && *pp != j; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = j->next;
	if (j->q.rc != DB_OK) {
		C->m.db_errors++;
		C->m.heartbeats_unwritten++;
		log_warnx("event=db_error op=heartbeat host=%s error=%s", req->host_id,
		    log_quote(q, sizeof(q), j->q.err, strlen(j->q.err), 300));
	} else {
		C->m.host_batches_refused += j->n1;
		C->m.host_outcomes_quarantined += j->n2;
		if (j->n1 || j->n2)
			log_warnx("event=host_upload_refused host=%s batches_refused=%" PRIu64
			    " outcomes_quarantined=%" PRIu64, req->host_id, req->batches_refused,
			    req->outcomes_quarantined);
	}
	call_job_free(j);
}

/* Queue the write of a heartbeat already answered. One per host at a time:
 * while one waits for the database the next ones are counted, not queued
 * (they carry nothing the next one after it will not). Takes req. */
static void
heartbeat_queue(Mxfleet__V1__HeartbeatRequest *req)
{
	for (struct call_job *p = C->hb_pending; p; p = p->next) {
		const Mxfleet__V1__HeartbeatRequest *o = p->req;
		if (strcmp(o->host_id, req->host_id) == 0) {
			C->m.heartbeats_unwritten++;
			mxfleet__v1__heartbeat_request__free_unpacked(req, NULL);
			return;
		}
	}
	struct call_job *j = bg_job_new(heartbeat_work, heartbeat_done);
	j->req = req;
	j->req_free = free_heartbeat;
	if (dbq_submit(C->dbq, &j->q) < 0) {
		C->m.heartbeats_unwritten++;
		call_job_free(j);
		return;
	}
	j->next = C->hb_pending;
	C->hb_pending = j;
}

/* A heartbeat is answered at once, with the newest configuration version
 * controld has read: a slow database must not make hosts think controld is
 * gone. Its write follows on a worker (docs/control-plane.md, "Database
 * workers"). */
static void
fleet_heartbeat(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__HeartbeatRequest, mxfleet__v1__heartbeat_request, c, msg, len);
	C->m.calls++;
	if (check_host(c, req->host_id) < 0) {
		mxfleet__v1__heartbeat_request__free_unpacked(req, NULL);
		return;
	}
	Mxfleet__V1__HeartbeatResponse r = MXFLEET__V1__HEARTBEAT_RESPONSE__INIT;
	r.config_version = C->config_version;
	reply_unary(c, &r.base);
	heartbeat_queue(req);
}

static int
watch_send(struct watcher *w, const Mxfleet__V1__ConfigSnapshot *snap)
{
	if (snap->version <= w->sent_version || w->dropped)
		return 0;
	/* A watcher that does not read would make controld buffer every
	 * snapshot for it: past the cap it is dropped, and reconnects (mxd
	 * does, and gets the newest snapshot first). */
	size_t pending = grpc_call_pending(w->call);
	if (pending + protobuf_c_message_get_packed_size(&snap->base) >
	    (size_t)C->cfg.watch_max_pending) {
		C->m.watchers_dropped++;
		w->dropped = 1;
		log_warnx("event=watcher_dropped host=%s pending=%zu version=%" PRIu64
		    " reason=\"not reading: over watch_max_pending\"", w->host_id, pending,
		    snap->version);
		grpc_call_abort(w->call);
		return -1;
	}
	if (reply_msg(w->call, &snap->base) < 0)
		return -1;	/* the call is ending: on_close unregisters it */
	w->sent_version = snap->version;
	log_info("event=config_pushed host=%s version=%" PRIu64, w->host_id, snap->version);
	return 0;
}

/* A snapshot read from the database: kept when newer than the one held,
 * and pushed to every watcher. Takes snap. */
static void
snapshot_take(Mxfleet__V1__ConfigSnapshot *snap)
{
	if (C->snap && snap->version <= C->snap->version) {
		db_config_snapshot_free(snap);
		return;
	}
	if (C->snap)
		db_config_snapshot_free(C->snap);
	C->snap = snap;
	C->config_version = snap->version;
	for (struct watcher *w = C->watchers; w; w = w->next)
		watch_send(w, snap);
}

static void
watch_remove(struct watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		C->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

/* The current snapshot at once, even when the host has it: the first
 * message tells it the watch is live. */
static void
watch_start(struct grpc_call *c, const char *host_id)
{
	struct rpc *r = rpc_of(c);
	struct watcher *w = xcalloc(1, sizeof(*w));
	w->call = c;
	snprintf(w->host_id, sizeof(w->host_id), "%s", host_id);
	w->next = C->watchers;
	if (C->watchers)
		C->watchers->prev = w;
	C->watchers = w;
	r->watcher = w;
	watch_send(w, C->snap);
}

static int
snapshot_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_config_snapshot(db, &j->snap);
}

static void
watch_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__WatchRequest *req = j->req;
	if (j->q.rc != DB_OK) {
		fail_db(c, j);
		return;
	}
	snapshot_take(j->snap);
	j->snap = NULL;
	if (c)
		watch_start(c, req->host_id);
}

/* From the snapshot controld holds; only before it has read one does the
 * call wait for the database. */
static void
fleet_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__WatchRequest, mxfleet__v1__watch_request, c, msg, len);
	C->m.calls++;
	struct rpc *r = grpc_call_get_data(c);
	if (r && (r->watcher || r->head))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "one WatchRequest per call");
	else if (check_host(c, req->host_id) < 0)
		;
	else if (C->snap)
		watch_start(c, req->host_id);
	else {
		struct call_job *j = call_job_new(c, snapshot_work, watch_answer);
		j->req = req;
		j->req_free = free_watch;
		call_submit(c, j);
		return;
	}
	mxfleet__v1__watch_request__free_unpacked(req, NULL);
}

/* Other replicas' changes: the version, and the snapshot when it moved. */
static int
poll_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	uint64_t v;
	int rc = db_config_version(db, &v);
	if (rc != DB_OK || v == j->n1)
		return rc;
	return db_config_snapshot(db, &j->snap);
}

static void
poll_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	C->poll_busy = 0;
	if (j->q.rc != DB_OK)
		C->m.db_errors++;
	else if (j->snap) {
		snapshot_take(j->snap);
		j->snap = NULL;
	}
	call_job_free(j);
}

static void
watch_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	if (C->poll_busy)
		return;
	struct call_job *j = bg_job_new(poll_work, poll_done);
	j->n1 = C->snap ? C->snap->version : UINT64_MAX;
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	C->poll_busy = 1;
}

/* ---- Admin ---- */

/* Free functions of the messages requests and replies are. */
#define FREE_FN(name, call)	static void name(void *p) { call; }
FREE_FN(free_domain_config, mxfleet__v1__domain_config__free_unpacked(p, NULL))
FREE_FN(free_domain_name, mxfleet__v1__domain_name__free_unpacked(p, NULL))
FREE_FN(free_route_config, mxfleet__v1__route_config__free_unpacked(p, NULL))
FREE_FN(free_policy_config, mxfleet__v1__tls_policy_config__free_unpacked(p, NULL))
FREE_FN(free_outcome_query, mxfleet__v1__outcome_query__free_unpacked(p, NULL))
FREE_FN(free_revoke_request, mxfleet__v1__revoke_request__free_unpacked(p, NULL))
FREE_FN(free_recipients_req, mxfleet__v1__domain_recipients__free_unpacked(p, NULL))
FREE_FN(free_host_list, db_host_list_free(p))
FREE_FN(free_domain_list, db_domain_list_free(p))
FREE_FN(free_route_list, db_route_list_free(p))
FREE_FN(free_policy_list, db_policy_list_free(p))
FREE_FN(free_report, db_outcome_report_free(p))
FREE_FN(free_recipients, db_recipients_free(p))

/* Queue an admin call's job; takes req. */
static void
admin_submit(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *), void *req, void (*req_free)(void *))
{
	struct call_job *j = call_job_new(c, work, answer);
	j->req = req;
	j->req_free = req_free;
	call_submit(c, j);
}

/* ---- Admin: lists ---- */

static int
hosts_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__HostList *l;
	int rc = db_hosts_list(db, &l);
	if (rc != DB_OK)
		return rc;
	j->reply = l;
	j->reply_free = free_host_list;
	return db_hosts_upload_health(db, l);
}

#define LIST_WORK(name, type, call, freefn)				\
static int								\
name(struct db *db, struct dbq_job *qj)					\
{									\
	struct call_job *j = (struct call_job *)qj;			\
	type *l = NULL;							\
	int rc = call;							\
	j->reply = l;							\
	j->reply_free = freefn;						\
	return rc;							\
}
LIST_WORK(domains_work, Mxfleet__V1__DomainList, db_domain_list(db, &l), free_domain_list)
LIST_WORK(routes_work, Mxfleet__V1__RouteList, db_route_list(db, &l), free_route_list)
LIST_WORK(policies_work, Mxfleet__V1__PolicyList, db_policy_list(db, &l), free_policy_list)
LIST_WORK(summary_work, Mxfleet__V1__OutcomeReport, db_outcome_summary(db, j->req, &l),
    free_report)
LIST_WORK(recipients_list_work, Mxfleet__V1__DomainRecipients,
    db_recipients_list(db, ((Mxfleet__V1__DomainName *)j->req)->name, &l), free_recipients)

/* A list call without a request message (Empty). */
static void
admin_list(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *))
{
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_submit(c, work, answer_reply, NULL, NULL);
}

static void
admin_list_hosts(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, hosts_work);
}

static void
admin_list_domains(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, domains_work);
}

static void
admin_list_routes(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, routes_work);
}

static void
admin_list_policies(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, policies_work);
}

static void
admin_summarize(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__OutcomeQuery, mxfleet__v1__outcome_query, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_submit(c, summary_work, answer_reply, req, free_outcome_query);
	else
		free_outcome_query(req);
}

static void
admin_list_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_submit(c, recipients_list_work, answer_reply, req, free_domain_name);
	else
		free_domain_name(req);
}

/* ---- Admin: changes, answered with the snapshot that includes them ---- */

/* After a change: the snapshot, read on the same worker. eexist_ok: "it is
 * so already" is not an error (nothing changed). */
static int
change_snapshot(struct db *db, struct call_job *j, int rc, int eexist_ok)
{
	if (rc == DB_EEXIST && eexist_ok)
		rc = DB_OK;
	if (rc != DB_OK)
		return rc;
	return db_config_snapshot(db, &j->snap);
}

static void
change_answer(struct call_job *j, struct grpc_call *c)
{
	if (j->q.rc != DB_OK) {
		fail_db(c, j);
		return;
	}
	if (j->log)
		log_info("%s", j->log);
	reply_unary(c, &j->snap->base);
	snapshot_take(j->snap);
	j->snap = NULL;
}

#define CHANGE_WORK(name, type, call, eexist_ok)			\
static int								\
name(struct db *db, struct dbq_job *qj)					\
{									\
	struct call_job *j = (struct call_job *)qj;			\
	type *req = j->req;						\
	return change_snapshot(db, j, call, eexist_ok);			\
}
CHANGE_WORK(domain_add_work, Mxfleet__V1__DomainConfig, db_domain_add(db, req, NULL), 0)
CHANGE_WORK(domain_remove_work, Mxfleet__V1__DomainName,
    db_domain_remove(db, req->name, NULL), 0)
CHANGE_WORK(route_add_work, Mxfleet__V1__RouteConfig, db_route_add(db, req, NULL), 0)
CHANGE_WORK(route_remove_work, Mxfleet__V1__RouteConfig, db_route_remove(db, req, NULL), 0)
CHANGE_WORK(policy_set_work, Mxfleet__V1__TlsPolicyConfig, db_policy_set(db, req, NULL), 1)
CHANGE_WORK(policy_remove_work, Mxfleet__V1__DomainName,
    db_policy_remove(db, req->name, NULL), 0)
CHANGE_WORK(recipient_check_work, Mxfleet__V1__DomainRecipients,
    db_recipient_check_set(db, req->domain, req->mode, NULL), 1)
CHANGE_WORK(recipients_add_work, Mxfleet__V1__DomainRecipients,
    db_recipients_add(db, req->domain, j->locals, j->nlocals, NULL), 1)
CHANGE_WORK(recipients_remove_work, Mxfleet__V1__DomainRecipients,
    db_recipients_remove(db, req->domain, j->locals, j->nlocals, NULL), 0)

/* Queue a change; log (may be NULL, taken) is logged once it is stored. */
static void
admin_change(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *), void *req,
    void (*req_free)(void *), char *log)
{
	struct call_job *j = call_job_new(c, work, change_answer);
	j->req = req;
	j->req_free = req_free;
	j->log = log;
	call_submit(c, j);
}

/* The port a next hop ends with, when it ends with ":DIGITS"; -1 if not. */
static long
nexthop_trailing_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 9)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return strtol(colon + 1, NULL, 10);
}

/* Would mxd take this domain? A domain name (one trailing dot allowed, and
 * removed: "example.test." is stored as "example.test") and a next hop it
 * can parse, whose host is an IP address or a host name. 0, or -1 with what
 * is wrong in msg. */
static int
domain_refusal(Mxfleet__V1__DomainConfig *d, char *msg, size_t msgsz)
{
	struct mxd_nexthop nh;
	char why[300];
	unsigned char ip[16];
	size_t len = strlen(d->name);
	long port;

	if (dnsname_check(d->name, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "name: %s", why);
		return -1;
	}
	if (d->name[len - 1] == '.')
		d->name[len - 1] = '\0';
	if (mxd_nexthop_parse(d->next_hop, &nh, 0, why, sizeof(why)) < 0) {
		port = strchr(d->next_hop, ':') ? nexthop_trailing_port(d->next_hop) : -1;
		if (port == 0 || port > 65535)
			snprintf(msg, msgsz, "next_hop: port %ld is out of range (1-65535); %s",
			    port, why);
		else
			snprintf(msg, msgsz, "next_hop: %s", why);
		return -1;
	}
	if (!nh.is_unix && inet_pton(AF_INET, nh.host, ip) != 1 &&
	    inet_pton(AF_INET6, nh.host, ip) != 1 && dnsname_check(nh.host, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "next_hop host: %s", why);
		return -1;
	}
	return 0;
}

static void
admin_add_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainConfig, mxfleet__v1__domain_config, c, msg, len);
	C->m.calls++;
	char text[400];
	if (check_admin(c) < 0)
		;
	else if (req->name[0] == '\0' || req->next_hop[0] == '\0')
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "name and next_hop are required");
	else if (domain_refusal(req, text, sizeof(text)) < 0) {
		/* mxd would ignore it: refuse it here, where the operator sees why. */
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	} else {
		admin_change(c, domain_add_work, req, free_domain_config,
		    xasprintf("event=domain_added name=%s next_hop=%s", req->name, req->next_hop));
		return;
	}
	free_domain_config(req);
}

static void
admin_remove_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_change(c, domain_remove_work, req, free_domain_name,
		    xasprintf("event=domain_removed name=%s", req->name));
	else
		free_domain_name(req);
}

static void
admin_add_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	struct mxd_nexthop nh;
	char why[300], text[400];
	if (check_admin(c) < 0)
		;
	else if (req->transport[0] == '\0')
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "transport is required");
	else if (mxd_nexthop_parse(req->transport, &nh, 1, why, sizeof(why)) < 0) {
		snprintf(text, sizeof(text), "transport: %s", why);
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	} else {
		admin_change(c, route_add_work, req, free_route_config, NULL);
		return;
	}
	free_route_config(req);
}

static void
admin_remove_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_change(c, route_remove_work, req, free_route_config, NULL);
	else
		free_route_config(req);
}

static void
admin_set_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__TlsPolicyConfig, mxfleet__v1__tls_policy_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) < 0)
		;
	else if (req->domain[0] == '\0' || !db_policy_mode_ok(req->mode))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (none, may, "
		    "encrypt, dane, dane-only, verify, secure) are required");
	else {
		admin_change(c, policy_set_work, req, free_policy_config,
		    xasprintf("event=policy_set domain=%s mode=%s", req->domain, req->mode));
		return;
	}
	free_policy_config(req);
}

static void
admin_remove_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0)
		admin_change(c, policy_remove_work, req, free_domain_name, NULL);
	else
		free_domain_name(req);
}

/* ---- revocation (schema/006, mailctl pki revoke) ---- */

static int
revoke_refuse(SSL *ssl, void *arg)
{
	return pki_peer_refused(ssl, C->revoked);
}

/* A freshly read list of revoked serials (taken); when the set changed,
 * close the connections of peers revoked since their handshake. New
 * handshakes read the set through pki_server_enforce's callback. */
static void
revoke_apply(char **serials, size_t n)
{
	if (pki_revoked_take(C->revoked, serials, n)) {
		int closed = C->tls_srv ? grpc_server_close_peers(C->tls_srv, revoke_refuse, NULL,
		    "certificate revoked") : 0;
		log_info("event=revocations_loaded revoked=%zu connections_closed=%d", n, closed);
	}
}

static int
revoked_list_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_revoked_list(db, &j->serials, &j->nserials);
}

/* On a database error the last set stays. */
static void
revoke_reload_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	char q[LOG_QUOTE_SIZE(300)];
	C->revoke_busy = 0;
	if (j->q.rc != DB_OK) {
		C->m.db_errors++;
		log_warnx("event=revocations_not_loaded error=%s kept=%zu",
		    log_quote(q, sizeof(q), j->q.err, strlen(j->q.err), 300),
		    pki_revoked_count(C->revoked));
	} else {
		revoke_apply(j->serials, j->nserials);
		j->serials = NULL;
		j->nserials = 0;
	}
	call_job_free(j);
}

static void
revoke_tick(evutil_socket_t fd, short what, void *arg)
{
	if (C->revoked == NULL || C->revoke_busy)
		return;
	struct call_job *j = bg_job_new(revoked_list_work, revoke_reload_done);
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	C->revoke_busy = 1;
}

/* Record the serial, and read the set back on the same worker: this
 * replica enforces it at once, the others at their next reload. */
static int
revoke_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__RevokeRequest *req = j->req;
	int newly = 0;
	int rc = db_revoke(db, req->serial, req->name, req->not_after_unix, &newly);
	if (rc != DB_OK)
		return rc;
	j->n1 = (uint64_t)newly;
	if (db_revoked_list(db, &j->serials, &j->nserials) != DB_OK) {
		j->serials = NULL;	/* stored; the next reload enforces it */
		j->nserials = 0;
		j->n2 = 1;
	}
	return DB_OK;
}

static void
revoke_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__RevokeRequest *req = j->req;
	char q[LOG_QUOTE_SIZE(100)];
	if (j->q.rc != DB_OK) {
		fail_db(c, j);
		return;
	}
	log_info("event=certificate_revoked serial=%s name=%s by=%s newly=%d", req->serial,
	    log_quote(q, sizeof(q), req->name, strlen(req->name), 100),
	    c ? grpc_call_peer(c) : "-", (int)j->n1);
	if (C->revoked && j->n2 == 0) {
		revoke_apply(j->serials, j->nserials);
		j->serials = NULL;
		j->nserials = 0;
	}
	Mxfleet__V1__RevokeReply r = MXFLEET__V1__REVOKE_REPLY__INIT;
	r.newly_revoked = (int)j->n1;
	r.revoked_total = C->revoked ? (uint32_t)pki_revoked_count(C->revoked) : 0;
	r.reload_interval_seconds = (uint32_t)C->cfg.revocation_interval;
	reply_unary(c, &r.base);
}

static void
admin_revoke(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RevokeRequest, mxfleet__v1__revoke_request, c, msg, len);
	C->m.calls++;
	if (check_admin(c) < 0)
		;
	else if (!pki_serial_ok(req->serial))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "serial: upper-case hex, 1 to 40 digits, "
		    "as 'openssl x509 -serial' prints it");
	else {
		admin_submit(c, revoke_work, revoke_answer, req, free_revoke_request);
		return;
	}
	free_revoke_request(req);
}

/* ---- Admin: recipient checks (backscatter; schema/007) ---- */

static void
admin_set_recipient_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (check_admin(c) < 0)
		;
	else if (req->domain[0] == '\0' || !db_recipient_mode_ok(req->mode))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (any, list or "
		    "verify) are required");
	else {
		admin_change(c, recipient_check_work, req, free_recipients_req,
		    xasprintf("event=recipient_check_set domain=%s mode=%s", req->domain, req->mode));
		return;
	}
	free_recipients_req(req);
}

/* The request's addresses as local parts of its domain, or the call
 * finished with INVALID_ARGUMENT naming the first bad one. */
static char **
admin_recipient_locals(struct grpc_call *c, const Mxfleet__V1__DomainRecipients *req)
{
	char why[300], text[700];
	char **v;

	if (req->domain[0] == '\0' || req->n_local_parts == 0) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and addresses are required");
		return NULL;
	}
	v = xcalloc(req->n_local_parts, sizeof(*v));
	for (size_t i = 0; i < req->n_local_parts; i++) {
		v[i] = xmalloc(RCPT_ADDR_LOCAL_MAX + 1);
		if (rcpt_addr_local(req->local_parts[i], req->domain, v[i], RCPT_ADDR_LOCAL_MAX + 1,
		    why, sizeof(why)) < 0) {
			snprintf(text, sizeof(text), "%.300s: %s", req->local_parts[i], why);
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
			for (size_t j = 0; j <= i; j++)
				free(v[j]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void
admin_change_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, int add)
{
	char **locals;
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (check_admin(c) < 0 || (locals = admin_recipient_locals(c, req)) == NULL) {
		free_recipients_req(req);
		return;
	}
	struct call_job *j = call_job_new(c, add ? recipients_add_work : recipients_remove_work,
	    change_answer);
	j->req = req;
	j->req_free = free_recipients_req;
	j->locals = locals;
	j->nlocals = req->n_local_parts;
	j->log = xasprintf("event=recipients_%s domain=%s count=%zu", add ? "added" : "removed",
	    req->domain, req->n_local_parts);
	call_submit(c, j);
}

static void
admin_add_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 1);
}

static void
admin_remove_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 0);
}

static const struct grpc_method controld_methods[] = {
	{ "/mxfleet.v1.Collector/Export", collector_batch, NULL, rpc_end },
	{ "/mxfleet.v1.Collector/Stream", collector_batch, collector_half_close, rpc_end },
	{ "/mxfleet.v1.Fleet/Register", fleet_register, NULL, rpc_end },
	{ "/mxfleet.v1.Fleet/Heartbeat", fleet_heartbeat, NULL, rpc_end },
	{ "/mxfleet.v1.Fleet/WatchConfig", fleet_watch, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/ListHosts", admin_list_hosts, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/AddDomain", admin_add_domain, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/ListDomains", admin_list_domains, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/RemoveDomain", admin_remove_domain, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/AddRoute", admin_add_route, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/ListRoutes", admin_list_routes, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/RemoveRoute", admin_remove_route, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/SetPolicy", admin_set_policy, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/ListPolicies", admin_list_policies, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/RemovePolicy", admin_remove_policy, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/SummarizeOutcomes", admin_summarize, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/RevokeCertificate", admin_revoke, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/SetRecipientCheck", admin_set_recipient_check, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/AddRecipients", admin_add_recipients, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/RemoveRecipients", admin_remove_recipients, NULL, rpc_end },
	{ "/mxfleet.v1.Admin/ListRecipients", admin_list_recipients, NULL, rpc_end },
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

static void
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
health_reply(struct evhttp_request *req, int ok, const char *why)
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
health_wait_free(struct health_wait *h)
{
	event_free(h->timer);
	free(h);
}

static void
health_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct health_wait *h = arg, **pp;
	char why[120];
	for (pp = &C->health_waits; *pp && *pp != h; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = h->next;
	snprintf(why, sizeof(why), "no answer within %d ms", CONTROLD_HEALTH_WAIT_MS);
	health_reply(h->req, 0, why);
	health_wait_free(h);
}

static int
health_work(struct db *db, struct dbq_job *qj)
{
	uint64_t v;
	return db_config_version(db, &v);
}

static void
health_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	C->health_busy = 0;
	if (j->q.rc != DB_OK)
		C->m.db_errors++;
	while (C->health_waits) {
		struct health_wait *h = C->health_waits;
		C->health_waits = h->next;
		health_reply(h->req, j->q.rc == DB_OK, j->q.err);
		health_wait_free(h);
	}
	call_job_free(j);
}

static void
http_healthz(struct evhttp_request *req, void *arg)
{
	struct health_wait *h = xcalloc(1, sizeof(*h));
	struct timeval tv = { 0, CONTROLD_HEALTH_WAIT_MS * 1000 };
	h->req = req;
	h->timer = evtimer_new(C->base, health_timeout_cb, h);
	evtimer_add(h->timer, &tv);
	h->next = C->health_waits;
	C->health_waits = h;
	if (!C->health_busy) {
		C->health_busy = 1;
		dbq_submit_first(C->dbq, &bg_job_new(health_work, health_done)->q);
	}
}

/* ---- configuration and main ---- */

static const char *const controld_keys[] = {
	"listen", "socket", "http", "database", "schema_dir", "tls", "log_level",
	"max_message", "handshake_timeout", "idle_timeout", "max_connections",
	"max_connections_per_ip", "max_streams", "watch_max_pending", "outcome_max_age_days",
	"outcome_max_future", "statement_timeout", "http_max_request", "http_timeout", "db_workers", "db_max_queued",
	NULL
};
static const char *const controld_tls_keys[] = {
	"cert", "key", "ca", "allow_multiple_ca", "revocation_interval", NULL
};

static int
controld_str(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	if (r == 1)
		*out = xstrdup(s);
	return r;
}

static void controld_config_free(struct controld_config *cfg);

/* tls.ca is the fleet CA alone: a second certificate in the file is a
 * second CA whose every certificate could speak as a host or an admin. */
static int
controld_check_ca(const struct controld_config *cfg, const char *path, char *err, size_t errsz)
{
	int n = pki_count_certs(cfg->ca, err, errsz);
	if (n < 0)
		return -1;
	if (n == 0) {
		snprintf(err, errsz, "%s: tls.ca %s holds no PEM certificate", path, cfg->ca);
		return -1;
	}
	if (n > 1 && !cfg->allow_multiple_ca) {
		snprintf(err, errsz, "%s: tls.ca %s holds %d certificates; controld trusts one "
		    "fleet CA (set tls.allow_multiple_ca = true to trust them all)", path, cfg->ca, n);
		return -1;
	}
	return 0;
}

static int
controld_config_load(const char *path, struct controld_config *cfg, char *err, size_t errsz)
{
	config_t lc;
	struct conf_err cerr;
	const char *s;
	config_setting_t *g;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->max_message = GRPC_DEFAULT_MAX_MESSAGE;
	cfg->revocation_interval = 5;
	cfg->handshake_timeout = GRPC_DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000;
	cfg->idle_timeout = GRPC_DEFAULT_IDLE_TIMEOUT_MS / 1000;
	cfg->max_connections = GRPC_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_ip = GRPC_DEFAULT_MAX_CONNECTIONS_PER_IP;
	cfg->max_streams = GRPC_DEFAULT_MAX_STREAMS;
	cfg->watch_max_pending = CONTROLD_WATCH_MAX_PENDING;
	cfg->outcome_max_age_days = 30;
	cfg->outcome_max_future = 86400;
	cfg->statement_timeout = DB_STATEMENT_TIMEOUT_MS / 1000;
	cfg->http_max_request = 8192;
	cfg->http_timeout = 10;
	cfg->db_workers = DBQ_DEFAULT_WORKERS;
	cfg->db_max_queued = DBQ_DEFAULT_MAX_QUEUED;
	if (conf_load(&lc, path, &cerr) < 0) {
		snprintf(err, errsz, "%s", cerr.msg);
		return -1;
	}
	config_setting_t *root = config_root_setting(&lc);
	if (conf_check_keys(root, controld_keys, &cerr) < 0 ||
	    controld_str(root, "listen", &cfg->listen, &cerr) < 0 ||
	    controld_str(root, "socket", &cfg->socket, &cerr) < 0 ||
	    controld_str(root, "http", &cfg->http, &cerr) < 0 ||
	    controld_str(root, "database", &cfg->database, &cerr) < 0 ||
	    controld_str(root, "schema_dir", &cfg->schema_dir, &cerr) < 0 ||
	    conf_get_int(root, "max_message", 1024, 1 << 30, &cfg->max_message, &cerr) < 0 ||
	    conf_get_int(root, "handshake_timeout", 1, 3600, &cfg->handshake_timeout, &cerr) < 0 ||
	    conf_get_int(root, "idle_timeout", 1, 86400, &cfg->idle_timeout, &cerr) < 0 ||
	    conf_get_int(root, "max_connections", 1, 1000000, &cfg->max_connections, &cerr) < 0 ||
	    conf_get_int(root, "max_connections_per_ip", 1, 1000000, &cfg->max_connections_per_ip,
	    &cerr) < 0 ||
	    conf_get_int(root, "max_streams", 1, GRPC_DEFAULT_MAX_STREAMS, &cfg->max_streams,
	    &cerr) < 0 ||
	    conf_get_int(root, "watch_max_pending", 65536, 1LL << 32, &cfg->watch_max_pending,
	    &cerr) < 0 ||
	    conf_get_int(root, "outcome_max_age_days", 1, 3650, &cfg->outcome_max_age_days,
	    &cerr) < 0 ||
	    conf_get_int(root, "outcome_max_future", 0, 30 * 86400, &cfg->outcome_max_future,
	    &cerr) < 0 ||
	    conf_get_int(root, "statement_timeout", 1, 3600, &cfg->statement_timeout, &cerr) < 0 ||
	    conf_get_int(root, "http_max_request", 1024, 1 << 20, &cfg->http_max_request,
	    &cerr) < 0 ||
	    conf_get_int(root, "http_timeout", 1, 3600, &cfg->http_timeout, &cerr) < 0 ||
	    conf_get_int(root, "db_workers", 1, DBQ_MAX_WORKERS, &cfg->db_workers, &cerr) < 0 ||
	    conf_get_int(root, "db_max_queued", 1, 1000000, &cfg->db_max_queued, &cerr) < 0)
		goto fail;
	if ((r = conf_get_string(root, "log_level", &s, &cerr)) < 0)
		goto fail;
	if (r == 1 && log_level_parse(s, &cfg->log_level) < 0) {
		conf_error(&cerr, config_setting_get_member(root, "log_level"),
		    "expected debug, info, warn or error");
		goto fail;
	}
	if ((r = conf_get_aggregate(root, "tls", CONFIG_TYPE_GROUP, &g, &cerr)) < 0)
		goto fail;
	if (r == 1 && (conf_check_keys(g, controld_tls_keys, &cerr) < 0 ||
	    controld_str(g, "cert", &cfg->cert, &cerr) < 0 ||
	    controld_str(g, "key", &cfg->key, &cerr) < 0 ||
	    controld_str(g, "ca", &cfg->ca, &cerr) < 0 ||
	    conf_get_bool(g, "allow_multiple_ca", &cfg->allow_multiple_ca, &cerr) < 0 ||
	    conf_get_int(g, "revocation_interval", 1, 3600, &cfg->revocation_interval, &cerr) < 0))
		goto fail;
	if (cfg->database == NULL) {
		snprintf(cerr.msg, sizeof(cerr.msg), "%s: database is required", path);
		goto fail;
	}
	if (cfg->listen && (cfg->cert == NULL || cfg->key == NULL || cfg->ca == NULL)) {
		snprintf(cerr.msg, sizeof(cerr.msg),
		    "%s: listen needs tls.cert, tls.key and tls.ca (mutual TLS is not optional)", path);
		goto fail;
	}
	if (cfg->listen == NULL && cfg->socket == NULL) {
		snprintf(cerr.msg, sizeof(cerr.msg), "%s: neither listen nor socket is set", path);
		goto fail;
	}
	if (cfg->ca && controld_check_ca(cfg, path, cerr.msg, sizeof(cerr.msg)) < 0)
		goto fail;
	if (cfg->schema_dir == NULL)
		cfg->schema_dir = xstrdup(MXFLEET_SCHEMA_DIR);
	config_destroy(&lc);
	return 0;
fail:
	snprintf(err, errsz, "%s", cerr.msg);
	config_destroy(&lc);
	controld_config_free(cfg);
	return -1;
}

static void
controld_config_free(struct controld_config *cfg)
{
	free(cfg->listen);
	free(cfg->socket);
	free(cfg->http);
	free(cfg->database);
	free(cfg->schema_dir);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->ca);
}

/* The connection limits, and enough descriptors for them: the soft limit is
 * raised toward the hard one; if that is not enough, the cap comes down, so
 * accept() never fails for want of a descriptor (libevent would retry it in
 * a loop). */
static struct grpc_server_limits
controld_limits(const struct controld_config *cfg)
{
	struct grpc_server_limits l = {
		.handshake_timeout_ms = (int)cfg->handshake_timeout * 1000,
		.idle_timeout_ms = (int)cfg->idle_timeout * 1000,
		.max_connections = (size_t)cfg->max_connections,
		.max_connections_per_ip = (size_t)cfg->max_connections_per_ip,
		.max_streams = (uint32_t)cfg->max_streams,
	};
	/* Two servers (TLS, unix socket), and descriptors for the rest. */
	rlim_t want = 2 * (rlim_t)cfg->max_connections + CONTROLD_SPARE_FDS;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < want) {
			size_t cap = rl.rlim_cur > 2 * CONTROLD_SPARE_FDS ?
			    (size_t)(rl.rlim_cur - CONTROLD_SPARE_FDS) / 2 : 1;
			log_warnx("event=max_connections_lowered configured=%lld now=%zu "
			    "reason=\"open files limit %llu\"", cfg->max_connections, cap,
			    (unsigned long long)rl.rlim_cur);
			l.max_connections = cap;
		}
	}
	return l;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("event=stopping signal=%d", (int)sig);
	if (C->tls_srv)
		grpc_server_shutdown(C->tls_srv);
	if (C->local_srv)
		grpc_server_shutdown(C->local_srv);
	struct timeval tv = { 1, 0 };
	event_base_loopexit(C->base, &tv);
}

static void
usage(void)
{
	fprintf(stderr, "usage: controld -c FILE [migrate]\n       controld -n -c FILE\n"
	    "  -c FILE  configuration (docs/control-plane.md)\n"
	    "  -n       check the configuration and exit\n"
	    "  migrate  apply the schema migrations and exit\n");
	exit(2);
}

/* Connect, with the configured statement timeout: for migrate and for the
 * start, before the event loop runs. */
static struct db *
controld_db_open(char *err, size_t errsz)
{
	struct db *db;
	if (db_open(&db, C->cfg.database, err, errsz) != DB_OK)
		return NULL;
	if (db_set_statement_timeout(db, (int)C->cfg.statement_timeout * 1000) != DB_OK) {
		snprintf(err, errsz, "%s", db_errmsg(db));
		db_close(db);
		return NULL;
	}
	return db;
}

static int
controld_migrate(void)
{
	char err[1024], q[LOG_QUOTE_SIZE(300)];
	unsigned applied = 0;
	struct db *db = controld_db_open(err, sizeof(err));
	if (db == NULL) {
		log_error("event=db_unavailable error=%s",
		    log_quote(q, sizeof(q), err, strlen(err), 300));
		return 1;
	}
	int rc = db_migrate(db, C->cfg.schema_dir, &applied);
	if (rc != DB_OK)
		fprintf(stderr, "controld: migrate: %s\n", db_errmsg(db));
	else
		printf("controld: %u migration(s) applied\n", applied);
	db_close(db);
	return rc == DB_OK ? 0 : 1;
}

/* Before the loop runs, so before any handshake: the revoked serials, and
 * the snapshot WatchConfig answers from. With the database down controld
 * starts anyway: calls answer UNAVAILABLE until it is back (mxd keeps its
 * journal meanwhile), and the workers load both then. */
static void
controld_preload(void)
{
	char err[1024], q[LOG_QUOTE_SIZE(300)];
	struct db *db = controld_db_open(err, sizeof(err));
	if (db == NULL) {
		log_error("event=db_unavailable error=%s",
		    log_quote(q, sizeof(q), err, strlen(err), 300));
		return;
	}
	char **serials;
	size_t n;
	if (C->revoked && db_revoked_list(db, &serials, &n) == DB_OK)
		revoke_apply(serials, n);
	Mxfleet__V1__ConfigSnapshot *snap;
	if (db_config_snapshot(db, &snap) == DB_OK)
		snapshot_take(snap);
	db_close(db);
}

static void
controld_listen(struct controld *d)
{
	char err[1024];
	struct grpc_server_limits lim = controld_limits(&d->cfg);
	struct grpc_server_opts o = { controld_methods,
	    sizeof(controld_methods) / sizeof(controld_methods[0]), d, d->tls,
	    (size_t)d->cfg.max_message };
	if (d->cfg.listen) {
		grpc_server_new(&d->tls_srv, d->base, &o);
		grpc_server_set_limits(d->tls_srv, &lim);
		if (grpc_server_listen(d->tls_srv, d->cfg.listen, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d->cfg.socket) {
		struct grpc_server_opts lo = o;
		lo.tls = NULL;
		grpc_server_new(&d->local_srv, d->base, &lo);
		grpc_server_set_limits(d->local_srv, &lim);
		if (grpc_server_listen_unix(d->local_srv, d->cfg.socket, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d->cfg.http) {
		char host[256];
		int port;
		if (netaddr_split_hostport(d->cfg.http, host, sizeof(host), &port) < 0)
			fatalx("event=bad_http addr=%s", d->cfg.http);
		d->http = evhttp_new(d->base);
		/* Two GET endpoints: no body, small headers, no slow clients. */
		evhttp_set_max_headers_size(d->http, (ev_ssize_t)d->cfg.http_max_request);
		evhttp_set_max_body_size(d->http, 0);
		evhttp_set_timeout(d->http, (int)d->cfg.http_timeout);
		evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
		evhttp_set_cb(d->http, "/metrics", http_metrics, NULL);
		evhttp_set_cb(d->http, "/healthz", http_healthz, NULL);
		if (evhttp_bind_socket(d->http, host, (ev_uint16_t)port) != 0)
			fatalx("event=listen_failed addr=%s", d->cfg.http);
	}
}

static void
controld_timers(struct controld *d)
{
	struct timeval poll_tv = { CONTROLD_WATCH_POLL_MS / 1000,
	    (CONTROLD_WATCH_POLL_MS % 1000) * 1000 };
	d->poll_ev = event_new(d->base, -1, EV_PERSIST, watch_poll_cb, NULL);
	event_add(d->poll_ev, &poll_tv);
	if (d->revoked) {
		struct timeval rtv = { (time_t)d->cfg.revocation_interval, 0 };
		d->revoke_ev = event_new(d->base, -1, EV_PERSIST, revoke_tick, NULL);
		event_add(d->revoke_ev, &rtv);
	}
}

/* After the loop: calls first (their jobs then answer no one), then the
 * workers (each finishes its job; what waits is handed back undone). */
static void
controld_shutdown(struct controld *d)
{
	grpc_server_free(d->tls_srv);
	grpc_server_free(d->local_srv);
	d->tls_srv = d->local_srv = NULL;
	while (d->health_waits) {
		struct health_wait *h = d->health_waits;
		d->health_waits = h->next;
		health_reply(h->req, 0, "controld is stopping");
		health_wait_free(h);
	}
	dbq_free(d->dbq);
	d->dbq = NULL;
	while (d->watchers)
		watch_remove(d->watchers);
	if (d->http)
		evhttp_free(d->http);
	event_free(d->poll_ev);
	if (d->revoke_ev)
		event_free(d->revoke_ev);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(d->base, EVLOOP_NONBLOCK);
	event_base_free(d->base);
	SSL_CTX_free(d->tls);
	pki_revoked_free(d->revoked);
	if (d->snap)
		db_config_snapshot_free(d->snap);
	controld_config_free(&d->cfg);
}

int
main(int argc, char **argv)
{
	struct controld d;
	const char *path = NULL;
	int check = 0, ch;
	char err[1024];

	while ((ch = getopt(argc, argv, "c:nV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': printf("controld %s\n", MXFLEET_VERSION); return 0;
		default: usage();
		}
	}
	int migrate_only = optind < argc && strcmp(argv[optind], "migrate") == 0;
	if (path == NULL || (optind < argc && !migrate_only) || optind + migrate_only != argc)
		usage();
	memset(&d, 0, sizeof(d));
	C = &d;
	log_init("controld", LOG_LEVEL_INFO, 0);
	if (controld_config_load(path, &d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "controld: %s\n", err);
		return 1;
	}
	log_set_level(d.cfg.log_level);
	if (d.cfg.listen) {
		d.tls = grpc_tls_server_ctx(d.cfg.cert, d.cfg.key, d.cfg.ca, err, sizeof(err));
		if (d.tls == NULL) {
			fprintf(stderr, "controld: %s\n", err);
			return 1;
		}
	}
	if (check || migrate_only) {
		int rc = 0;
		if (check)
			printf("controld: %s: configuration OK\n", path);
		else
			rc = controld_migrate();
		SSL_CTX_free(d.tls);
		controld_config_free(&d.cfg);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	if (d.tls) {
		d.revoked = pki_revoked_new();
		pki_server_enforce(d.tls, d.revoked);
	}
	controld_preload();
	d.base = event_base_new();
	struct dbq_opts qo = { d.cfg.database, (int)d.cfg.statement_timeout * 1000,
	    (int)d.cfg.db_workers, (size_t)d.cfg.db_max_queued };
	if (dbq_new(&d.dbq, d.base, &qo, err, sizeof(err)) < 0)
		fatalx("event=db_workers_failed error=\"%s\"", err);
	controld_listen(&d);
	controld_timers(&d);
	struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, NULL);
	struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	log_info("event=started version=%s listen=%s socket=%s http=%s grpc_port=%d db_workers=%lld",
	    MXFLEET_VERSION, d.cfg.listen ? d.cfg.listen : "-", d.cfg.socket ? d.cfg.socket : "-",
	    d.cfg.http ? d.cfg.http : "-", d.tls_srv ? grpc_server_port(d.tls_srv, 0) : 0,
	    d.cfg.db_workers);
	event_base_dispatch(d.base);
	event_free(sigterm);
	event_free(sigint);
	controld_shutdown(&d);
	log_info("event=stopped");
	return 0;
}
