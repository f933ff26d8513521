/* controld: queue control of the fleet's hosts (queue_remote.h). */
#include "queue_remote.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "db_queue.h"
#include "timeutil.h"
#include "xmalloc.h"

/* A host's WatchQueueCommands stream. */
struct qr_watcher {
	struct qr_watcher	*next, *prev;
	struct grpc_call	*call;
	char			 host_id[256];
};

/* A QueueControl call waiting for its hosts' answers. */
struct qr_waiter {
	struct qr_waiter	*next, *prev;
	struct grpc_call	*call;		/* NULL once the caller went away */
	struct db_queue_cmds	 cmds;
	unsigned		 wait_s;
	uint64_t		 deadline_ms;
	int			 busy, final;
	struct event		*tick;
};

static struct {
	struct event_base	*base;
	struct qr_watcher	*watchers;
	struct qr_waiter	*waiters;
	struct event		*poll_ev;
	int			 poll_busy;
} QR;

/* ---- the hosts' streams ---- */

static void
qr_watch_end(void *arg)
{
	struct qr_watcher *w = arg;
	if (w->prev)
		w->prev->next = w->next;
	else
		QR.watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

void
queue_remote_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__WatchRequest, mxfleet__v1__watch_request, c, msg, len);
	C->m.calls++;
	struct rpc *r = grpc_call_get_data(c);
	if (r && (r->on_end || r->head))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "one WatchRequest per call");
	else if (call_check_host(c, req->host_id) == 0) {
		struct qr_watcher *w = xcalloc(1, sizeof(*w));
		w->call = c;
		snprintf(w->host_id, sizeof(w->host_id), "%s", req->host_id);
		w->next = QR.watchers;
		if (QR.watchers)
			QR.watchers->prev = w;
		QR.watchers = w;
		r = call_rpc(c);
		r->owner = w;
		r->on_end = qr_watch_end;
		log_info("event=queue_watch host=%s", w->host_id);
	}
	mxfleet__v1__watch_request__free_unpacked(req, NULL);
}

static int
qr_take_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_queue_take(db, j->locals, j->nlocals, j->reply);
}

static void
qr_cmds_free(void *p)
{
	db_queue_cmds_free(p);
	free(p);
}

/* The newest stream of the host (an older one may not be gone yet). */
static struct qr_watcher *
qr_watcher_find(const char *host_id)
{
	for (struct qr_watcher *w = QR.watchers; w; w = w->next)
		if (strcmp(w->host_id, host_id) == 0)
			return w;
	return NULL;
}

static void
qr_take_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct db_queue_cmds *cmds = j->reply;
	QR.poll_busy = 0;
	if (j->q.rc != DB_OK)
		C->m.db_errors++;
	for (size_t i = 0; j->q.rc == DB_OK && i < cmds->n; i++) {
		struct db_queue_cmd *q = &cmds->v[i];
		struct qr_watcher *w = qr_watcher_find(q->host_id);
		Mxfleet__V1__QueueCommand m = MXFLEET__V1__QUEUE_COMMAND__INIT;
		m.command_id = q->id;
		m.op = q->op;
		m.id = q->arg;
		m.max_messages = q->max_messages;
		/* Gone meanwhile: the caller hears "did not answer". */
		if (w == NULL || call_send_msg(w->call, &m.base) < 0)
			continue;
		log_info("event=queue_command_pushed host=%s id=%" PRIu64 " op=%s", q->host_id, q->id,
		    q->op);
	}
	call_job_free(j);
}

static void
qr_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t n = 0;
	if (QR.poll_busy || QR.watchers == NULL)
		return;
	struct call_job *j = call_bg_job_new(qr_take_work, qr_take_done);
	for (struct qr_watcher *w = QR.watchers; w; w = w->next)
		n++;
	j->locals = xcalloc(n + 1, sizeof(char *));
	for (struct qr_watcher *w = QR.watchers; w; w = w->next)
		j->locals[j->nlocals++] = xstrdup(w->host_id);
	j->reply = xcalloc(1, sizeof(struct db_queue_cmds));
	j->reply_free = qr_cmds_free;
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	QR.poll_busy = 1;
}

/* ---- a host's answer ---- */

static void
qr_free_result(void *p)
{
	mxfleet__v1__queue_command_result__free_unpacked(p, NULL);
}

static int
qr_done_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__QueueCommandResult *req = j->req;
	Mxfleet__V1__QueueHostResult empty = MXFLEET__V1__QUEUE_HOST_RESULT__INIT;
	Mxfleet__V1__QueueHostResult *r = req->result ? req->result : &empty;
	size_t n = protobuf_c_message_get_packed_size(&r->base);
	uint8_t *buf = xmalloc(n ? n : 1);
	int found = 0;
	protobuf_c_message_pack(&r->base, buf);
	int rc = db_queue_done(db, req->host_id, req->command_id, buf, n, &found);
	free(buf);
	j->n1 = (uint64_t)found;
	return rc;
}

static void
qr_done_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__QueueCommandResult *req = j->req;
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	if (!j->n1)
		log_warnx("event=queue_answer_dropped host=%s id=%" PRIu64
		    " reason=\"not this host's command, or answered or withdrawn already\"",
		    req->host_id, req->command_id);
	Mxfleet__V1__Empty e = MXFLEET__V1__EMPTY__INIT;
	call_reply(c, &e.base);
}

void
queue_remote_done(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__QueueCommandResult, mxfleet__v1__queue_command_result, c, msg, len);
	C->m.calls++;
	if (call_check_host(c, req->host_id) < 0) {
		qr_free_result(req);
		return;
	}
	call_submit_new(c, qr_done_work, qr_done_answer, req, qr_free_result);
}

/* ---- mailctl's call: the commands, and waiting for their answers ---- */

static void
qr_waiter_free(struct qr_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		QR.waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	event_free(w->tick);
	db_queue_cmds_free(&w->cmds);
	free(w);
}

static void
qr_waiter_gone(void *arg)
{
	struct qr_waiter *w = arg;
	w->call = NULL;
}

/* One host's part of the answer: what it said, or why it said nothing.
 * *keep is the unpacked answer the caller frees after replying. */
static Mxfleet__V1__QueueHostResult *
qr_host_result(const struct qr_waiter *w, const struct db_queue_cmd *q,
    Mxfleet__V1__QueueHostResult **keep, char *err, size_t errsz)
{
	*keep = NULL;
	if (q->done && !q->cancelled) {
		*keep = mxfleet__v1__queue_host_result__unpack(NULL, q->result_len, q->result);
		if (*keep) {
			/* The host is the one the row names, whatever it wrote. */
			free((*keep)->host_id);
			(*keep)->host_id = xstrdup(q->host_id);
			return *keep;
		}
		snprintf(err, errsz, "its answer could not be read");
	} else if (!q->taken || q->cancelled) {
		char ago[32];
		timeutil_duration(ago, sizeof(ago), (long long)(time(NULL) - q->last_seen));
		if (q->last_seen == 0)
			snprintf(err, errsz, "not connected to controld (never seen)");
		else
			snprintf(err, errsz, "not connected to controld (last seen %s ago)", ago);
	} else
		snprintf(err, errsz, "did not answer within %u s", w->wait_s);
	Mxfleet__V1__QueueHostResult *r = xmalloc(sizeof(*r));
	mxfleet__v1__queue_host_result__init(r);
	r->host_id = q->host_id;
	r->error = err;
	return r;
}

/* The call, about to be finished: its end must no longer reach the
 * waiter (freed right after). */
static struct grpc_call *
qr_waiter_detach(struct qr_waiter *w)
{
	struct grpc_call *c = w->call;
	struct rpc *r = c ? grpc_call_get_data(c) : NULL;
	if (r) {
		r->on_end = NULL;
		r->owner = NULL;
	}
	w->call = NULL;
	return c;
}

static void
qr_waiter_reply(struct qr_waiter *w)
{
	Mxfleet__V1__QueueReply rep = MXFLEET__V1__QUEUE_REPLY__INIT;
	size_t n = w->cmds.n;
	Mxfleet__V1__QueueHostResult **keep = xcalloc(n + 1, sizeof(*keep));
	char (*errs)[200] = xcalloc(n + 1, sizeof(*errs));

	rep.hosts = xcalloc(n + 1, sizeof(*rep.hosts));
	rep.n_hosts = n;
	for (size_t i = 0; i < n; i++) {
		rep.hosts[i] = qr_host_result(w, &w->cmds.v[i], &keep[i], errs[i], sizeof(errs[i]));
		if (!rep.hosts[i]->ok)
			log_warnx("event=queue_host_failed host=%s id=%" PRIu64 " error=\"%s\"",
			    w->cmds.v[i].host_id, w->cmds.v[i].id, errs[i][0] ? errs[i] : "its own");
	}
	call_reply(qr_waiter_detach(w), &rep.base);
	for (size_t i = 0; i < n; i++) {
		if (keep[i])
			mxfleet__v1__queue_host_result__free_unpacked(keep[i], NULL);
		else
			free(rep.hosts[i]);
	}
	free(rep.hosts);
	free(keep);
	free(errs);
}

static int
qr_results_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct qr_waiter *w = j->reply;
	return db_queue_results(db, &w->cmds, w->final);
}

static void
qr_results_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct qr_waiter *w = j->reply;
	int all = 1;

	j->reply = NULL;
	w->busy = 0;
	if (j->q.rc != DB_OK) {
		C->m.db_errors++;
		if (w->final && w->call)
			call_fail_db(qr_waiter_detach(w), j);
	}
	call_job_free(j);
	for (size_t i = 0; i < w->cmds.n; i++)
		all &= w->cmds.v[i].done;
	if (w->call && (all || w->final))
		qr_waiter_reply(w);
	if (w->call == NULL)
		qr_waiter_free(w);
}

static void
qr_waiter_tick(evutil_socket_t fd, short what, void *arg)
{
	struct qr_waiter *w = arg;
	if (w->busy)
		return;
	if (w->call == NULL) {
		qr_waiter_free(w);
		return;
	}
	w->final = timeutil_mono_ms() >= w->deadline_ms;
	struct call_job *j = call_bg_job_new(qr_results_work, qr_results_done);
	j->reply = w;	/* no reply_free: the waiter is freed on its own */
	if (dbq_submit(C->dbq, &j->q) < 0) {
		j->reply = NULL;
		call_job_free(j);
		return;
	}
	w->busy = 1;
}

static void
qr_free_request(void *p)
{
	mxfleet__v1__queue_request__free_unpacked(p, NULL);
}

static int
qr_insert_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__QueueRequest *req = j->req;
	return db_queue_insert(db, req->host_id, req->op, req->id, req->max_messages, j->reply);
}

static void
qr_insert_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__QueueRequest *req = j->req;
	struct db_queue_cmds *cmds = j->reply;
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	if (c == NULL)
		return;	/* the rows are withdrawn by no one: they expire unanswered */
	if (cmds->n == 0) {
		Mxfleet__V1__QueueReply rep = MXFLEET__V1__QUEUE_REPLY__INIT;
		call_reply(c, &rep.base);
		return;
	}
	struct qr_waiter *w = xcalloc(1, sizeof(*w));
	w->call = c;
	w->cmds = *cmds;
	memset(cmds, 0, sizeof(*cmds));
	w->wait_s = req->wait_seconds;
	w->deadline_ms = timeutil_mono_ms() + (uint64_t)w->wait_s * 1000;
	w->next = QR.waiters;
	if (QR.waiters)
		QR.waiters->prev = w;
	QR.waiters = w;
	struct rpc *r = call_rpc(c);
	r->owner = w;
	r->on_end = qr_waiter_gone;
	struct timeval tv = { 0, QUEUE_REMOTE_WAIT_POLL_MS * 1000 };
	w->tick = event_new(QR.base, -1, EV_PERSIST, qr_waiter_tick, w);
	event_add(w->tick, &tv);
	log_info("event=queue_control op=%s id=%s hosts=%zu", req->op, req->id[0] ? req->id : "-",
	    w->cmds.n);
	qr_poll_cb(-1, 0, NULL);	/* ours to push now, when the host is here */
}

/* Like mxd's own check (qmgr/queue_cmd.c): 1..31 of [A-Za-z0-9._-], not
 * starting with '.'. */
static int
qr_id_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len >= 32 || s[0] == '.')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static const char *
qr_check(Mxfleet__V1__QueueRequest *req)
{
	int needs_id = strcmp(req->op, "retry") == 0 || strcmp(req->op, "drop") == 0;
	if (!needs_id && strcmp(req->op, "list") != 0 && strcmp(req->op, "retry-all") != 0)
		return "op: expected list, retry, retry-all or drop";
	if (needs_id && !qr_id_ok(req->id))
		return "id: a message id is 1 to 31 characters of A-Z a-z 0-9 . _ -";
	if (!needs_id && req->id[0] != '\0')
		return "id: only retry and drop take a message id";
	if (req->wait_seconds == 0)
		req->wait_seconds = QUEUE_REMOTE_WAIT_DEFAULT;
	if (req->wait_seconds > QUEUE_REMOTE_WAIT_MAX)
		req->wait_seconds = QUEUE_REMOTE_WAIT_MAX;
	if (req->max_messages == 0)
		req->max_messages = QUEUE_REMOTE_LIST_DEFAULT;
	if (req->max_messages > QUEUE_REMOTE_LIST_MAX)
		req->max_messages = QUEUE_REMOTE_LIST_MAX;
	return NULL;
}

void
queue_remote_control(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__QueueRequest, mxfleet__v1__queue_request, c, msg, len);
	C->m.calls++;
	const char *why;
	if (call_check_admin(c) < 0) {
		qr_free_request(req);
		return;
	}
	if ((why = qr_check(req)) != NULL) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, why);
		qr_free_request(req);
		return;
	}
	struct call_job *j = call_job_new(c, qr_insert_work, qr_insert_answer, req, qr_free_request);
	j->reply = xcalloc(1, sizeof(struct db_queue_cmds));
	j->reply_free = qr_cmds_free;
	call_submit(c, j);
}

void
queue_remote_start(struct event_base *base)
{
	QR.base = base;
	struct timeval tv = { 0, QUEUE_REMOTE_POLL_MS * 1000 };
	QR.poll_ev = event_new(base, -1, EV_PERSIST, qr_poll_cb, NULL);
	event_add(QR.poll_ev, &tv);
}

void
queue_remote_stop(void)
{
	while (QR.waiters)
		qr_waiter_free(QR.waiters);
	while (QR.watchers)
		qr_watch_end(QR.watchers);
	if (QR.poll_ev)
		event_free(QR.poll_ev);
	QR.poll_ev = NULL;
}
