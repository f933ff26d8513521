/* controld: calls answered when their database work is done (call.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "xmalloc.h"

/* ---- helpers ---- */

int
call_send_msg(struct grpc_call *c, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = xmalloc(n ? n : 1);
	protobuf_c_message_pack(msg, buf);
	int rc = grpc_call_send(c, buf, n);
	free(buf);
	return rc;
}

/* Answer a unary call; nothing when the call is gone (c NULL). */
void
call_reply(struct grpc_call *c, const ProtobufCMessage *msg)
{
	if (c == NULL)
		return;
	call_send_msg(c, msg);
	grpc_call_finish(c, GRPC_OK, NULL);
}

/* A failed database job, as the caller should read it: a refused request
 * is the caller's to fix, anything else is "try again later". Counted and
 * logged even when the call is gone. */
void
call_fail_db(struct grpc_call *c, const struct call_job *j)
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

/* ---- calls answered when their database work is done ---- */

struct rpc *
call_rpc(struct grpc_call *c)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->call = c;
		grpc_call_set_data(c, r);
	}
	return r;
}

void
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

/* Does j wait for an earlier job of its call that is not done (a batch
 * resent on its stream while the first copy is being stored)? */
static int
call_held_back(const struct rpc *r, const struct call_job *j)
{
	if (j->conflicts == NULL)
		return 0;
	for (const struct call_job *p = r->head; p && p != j; p = p->next)
		if (!p->finished && p->conflicts && j->conflicts(p, j))
			return 1;
	return 0;
}

/* To the workers; with the queue full, answered UNAVAILABLE in its turn:
 * the caller retries later. */
static void
call_dispatch(struct call_job *j)
{
	j->held = 0;
	if (dbq_submit(j->queue ? j->queue : C->dbq, &j->q) < 0) {
		j->q.rc = DB_ECONN;
		if (j->queue)
			snprintf(j->q.err, sizeof(j->q.err), "busy: DNS checks and pushes fill "
			    "their queue (dns.workers); try again later");
		else
			snprintf(j->q.err, sizeof(j->q.err), "busy: %lld jobs wait for a database "
			    "worker (db_max_queued)", C->cfg.db_max_queued);
		j->finished = 1;
	}
}

/* Start the held jobs nothing holds back any more; send every answer that
 * is ready, in order. An rpc whose call ended is freed with its last job. */
static void
call_flush(struct rpc *r)
{
	for (struct call_job *p = r->head; p; p = p->next)
		if (p->held && !call_held_back(r, p))
			call_dispatch(p);
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
	call_flush(j->rpc);
}

struct call_job *
call_job_new(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *), void *req, void (*req_free)(void *))
{
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->q.work = work;
	j->q.done = call_job_done;
	j->answer = answer;
	j->path = xstrdup(grpc_call_path(c));
	j->req = req;
	j->req_free = req_free;
	return j;
}

static void
call_append(struct rpc *r, struct call_job *j)
{
	j->rpc = r;
	if (r->tail)
		r->tail->next = j;
	else
		r->head = j;
	r->tail = j;
}

/* Queue a job for call c; one that conflicts with an earlier job of the
 * call waits until that one is done. */
void
call_submit(struct grpc_call *c, struct call_job *j)
{
	struct rpc *r = call_rpc(c);
	call_append(r, j);
	if (call_held_back(r, j)) {
		j->held = 1;
		return;
	}
	call_dispatch(j);
	if (j->finished)
		call_flush(r);
}

static void
call_answer_refusal(struct call_job *j, struct grpc_call *c)
{
	if (c)
		grpc_call_finish(c, j->status, j->status_msg);
}

/* Refuse in call order: a stream's batches before this one are answered
 * first. */
void
call_refuse(struct grpc_call *c, int status, const char *msg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL || r->head == NULL) {
		grpc_call_finish(c, status, msg);
		return;
	}
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->answer = call_answer_refusal;
	j->status = status;
	j->status_msg = xstrdup(msg);
	j->finished = 1;
	call_append(r, j);
}

/* Every method's on_close: whatever the call waits for is dropped when it
 * comes; a watcher stops. */
void
call_end(struct grpc_call *c, void *arg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r == NULL)
		return;
	grpc_call_set_data(c, NULL);
	r->call = NULL;
	if (r->on_end) {
		r->on_end(r->owner);
		r->on_end = NULL;
	}
	if (r->head == NULL)
		free(r);
}

/* The common answer: the reply the worker built, or the failure. */
void
call_answer_reply(struct call_job *j, struct grpc_call *c)
{
	if (j->q.rc != DB_OK)
		call_fail_db(c, j);
	else
		call_reply(c, j->reply);
}

/* A job no call waits for (polls, heartbeat writes, reloads). */
struct call_job *
call_bg_job_new(int (*work)(struct db *, struct dbq_job *), void (*done)(struct dbq_job *))
{
	struct call_job *j = xcalloc(1, sizeof(*j));
	j->q.work = work;
	j->q.done = done;
	return j;
}

/* A host may speak only for itself: the certificate's CN is its host_id. */
int
call_check_host(struct grpc_call *c, const char *host_id)
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

int
call_check_admin(struct grpc_call *c)
{
	if (grpc_call_peer_is_local(c) || strcmp(grpc_call_peer_unit(c), "admin") == 0)
		return 0;
	C->m.refused_identity++;
	grpc_call_finish(c, GRPC_PERMISSION_DENIED, "the Admin service needs an admin certificate");
	return -1;
}

void
call_submit_new(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *), void *req, void (*req_free)(void *))
{
	call_submit(c, call_job_new(c, work, answer, req, req_free));
}
