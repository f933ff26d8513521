/* The uploader's side of queue control through controld (queue_remote.h). */
#include "queue_remote.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "mxfleet.pb-c.h"
#include "queue_client.h"
#include "queue_cmd.h"
#include "xmalloc.h"

#define QUEUE_REMOTE_MAX_LIST	10000	/* controld's own cap on max_messages */
#define QUEUE_REMOTE_CONNECT_TRIES	15
#define QUEUE_REMOTE_CONNECT_PAUSE_MS	200	/* 3 s in all */

struct queue_remote {
	struct event_base	*base;
	struct grpc_client	*cl;
	char			*spool_dir;
	char			*host_id;
	struct grpc_call	*watch;
	struct event		*retry_ev;
	uint64_t		 stat_messages;	/* the scheduler's last STAT */
	int64_t			 stat_oldest;
};

/* The scheduler's request line for a command; -1 with err for one this
 * mxd does not know (a newer controld) or a malformed id. */
static int
queue_remote_request(const Mxfleet__V1__QueueCommand *cmd, char *line, size_t size,
    const char **err)
{
	struct queue_cmd qc;
	const char *id = cmd->id ? cmd->id : "";

	if (strcmp(cmd->op, "list") == 0)
		snprintf(line, size, "LIST");
	else if (strcmp(cmd->op, "retry") == 0)
		snprintf(line, size, "RETRY %s", id);
	else if (strcmp(cmd->op, "retry-all") == 0)
		snprintf(line, size, "RETRY ALL");
	else if (strcmp(cmd->op, "drop") == 0)
		snprintf(line, size, "DROP %s", id);
	else {
		*err = "unknown queue operation";
		return -1;
	}
	return queue_cmd_parse(line, strlen(line), &qc, err);
}

static Mxfleet__V1__QueueMessage *
queue_remote_msg(char *line)
{
	struct queue_client_msg m;
	Mxfleet__V1__QueueMessage *q = xcalloc(1, sizeof(*q));

	mxfleet__v1__queue_message__init(q);
	queue_client_parse_msg(line, &m);
	q->id = (char *)m.id;
	q->sender = (char *)(m.from ? m.from : "");
	q->n_recipients = m.nrcpts < QUEUE_CLIENT_RCPTS ? m.nrcpts : QUEUE_CLIENT_RCPTS;
	q->recipients = xcalloc(q->n_recipients + 1, sizeof(char *));
	for (size_t i = 0; i < q->n_recipients; i++)
		q->recipients[i] = (char *)m.rcpts[i];
	q->recipients_count = (uint32_t)m.nrcpts;
	q->size = m.size;
	q->arrival_unix = m.created;
	q->attempts = (uint32_t)m.attempts;
	q->next_attempt_unix = m.next;
	q->last_error = (char *)(m.last_reply ? m.last_reply : "");
	q->delivering = m.delivering;
	q->error = (char *)(m.error ? m.error : "");
	return q;
}

/* The scheduler's answer into r, its strings pointing into ans. */
static void
queue_remote_answer(char *ans, size_t max, Mxfleet__V1__QueueHostResult *r)
{
	char *save = NULL;
	uint64_t listed = 0;

	r->messages = xcalloc(max + 1, sizeof(*r->messages));
	for (char *line = strtok_r(ans, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "MSG ", 4) == 0) {
			if (r->n_messages < max)
				r->messages[r->n_messages++] = queue_remote_msg(line + 4);
			listed++;
		} else if (strncmp(line, "OK", 2) == 0) {
			r->ok = 1;
			r->result = line[2] == ' ' ? line + 3 : line + 2;
			r->total = listed;
			r->truncated = listed - r->n_messages;
			return;
		} else if (strncmp(line, "ERR", 3) == 0) {
			r->error = line[3] == ' ' ? line + 4 : line + 3;
			return;
		}
	}
	r->error = "incomplete answer from mxd's scheduler";
}

static void
queue_remote_result_free(Mxfleet__V1__QueueHostResult *r)
{
	for (size_t i = 0; i < r->n_messages; i++) {
		free(r->messages[i]->recipients);
		free(r->messages[i]);
	}
	free(r->messages);
}

static void
queue_remote_done_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	if (status != GRPC_OK)
		log_warnx("event=control_call_failed path=%s status=%s message=\"%s\"",
		    grpc_call_path(c), grpc_status_name(status), message);
}

static void
queue_remote_ignore(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
}

static void
queue_remote_send_done(struct queue_remote *qr, Mxfleet__V1__QueueCommandResult *res)
{
	struct grpc_call *c = grpc_client_call(qr->cl, "/mxfleet.v1.Fleet/QueueCommandDone", 30000,
	    queue_remote_ignore, queue_remote_done_closed, qr);
	if (c == NULL)
		return;
	size_t n = protobuf_c_message_get_packed_size(&res->base);
	uint8_t *buf = xmalloc(n ? n : 1);
	protobuf_c_message_pack(&res->base, buf);
	grpc_call_send(c, buf, n);
	grpc_call_close_send(c);
	free(buf);
}

/* The scheduler is restarted by a reload (a new configuration snapshot):
 * a missing socket is tried again for a moment before it is an error. */
static int
queue_remote_exchange(struct queue_remote *qr, const char *line, struct buf *ans, char *err,
    size_t errsz)
{
	int rc;
	for (int i = 0; i < QUEUE_REMOTE_CONNECT_TRIES; i++) {
		if ((rc = queue_client_run(qr->spool_dir, line, QUEUE_REMOTE_TIMEOUT_MS, ans, err,
		    errsz)) != -2)
			return rc;
		usleep(QUEUE_REMOTE_CONNECT_PAUSE_MS * 1000);
	}
	return -1;
}

/* Run one command and answer it: the scheduler's answer or its error,
 * never nothing (controld waits for it). */
static void
queue_remote_run(struct queue_remote *qr, const Mxfleet__V1__QueueCommand *cmd)
{
	Mxfleet__V1__QueueCommandResult res = MXFLEET__V1__QUEUE_COMMAND_RESULT__INIT;
	Mxfleet__V1__QueueHostResult r = MXFLEET__V1__QUEUE_HOST_RESULT__INIT;
	char line[QUEUE_CMD_LINE_MAX], err[4400];
	const char *perr = NULL;
	struct buf ans;

	buf_init(&ans);
	res.host_id = qr->host_id;
	res.command_id = cmd->command_id;
	res.result = &r;
	r.host_id = qr->host_id;
	if (queue_remote_request(cmd, line, sizeof(line), &perr) < 0)
		r.error = (char *)perr;
	else if (queue_remote_exchange(qr, line, &ans, err, sizeof(err)) < 0)
		r.error = err;
	else {
		size_t max = cmd->max_messages && cmd->max_messages <= QUEUE_REMOTE_MAX_LIST ?
		    cmd->max_messages : 1000;
		buf_appendc(&ans, '\0');
		queue_remote_answer(ans.data, max, &r);
	}
	log_info("event=queue_command id=%" PRIu64 " op=%s ok=%d listed=%zu", cmd->command_id,
	    cmd->op, (int)r.ok, r.n_messages);
	queue_remote_send_done(qr, &res);
	queue_remote_result_free(&r);
	buf_free(&ans);
}

static void
queue_remote_cmd_cb(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct queue_remote *qr = arg;
	Mxfleet__V1__QueueCommand *cmd = mxfleet__v1__queue_command__unpack(NULL, len, msg);
	if (cmd == NULL) {
		log_warnx("event=bad_queue_command len=%zu", len);
		return;
	}
	queue_remote_run(qr, cmd);
	mxfleet__v1__queue_command__free_unpacked(cmd, NULL);
}

static void
queue_remote_watch_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct queue_remote *qr = arg;
	if (c != qr->watch)
		return;
	qr->watch = NULL;
	if (status != GRPC_OK)
		log_warnx("event=queue_watch_closed status=%s message=\"%s\"",
		    grpc_status_name(status), message);
	struct timeval tv = { QUEUE_REMOTE_RETRY_MS / 1000, (QUEUE_REMOTE_RETRY_MS % 1000) * 1000 };
	evtimer_add(qr->retry_ev, &tv);
}

void
queue_remote_kick(struct queue_remote *qr)
{
	if (qr->watch != NULL || !grpc_client_ready(qr->cl))
		return;
	qr->watch = grpc_client_call(qr->cl, "/mxfleet.v1.Fleet/WatchQueueCommands", 0,
	    queue_remote_cmd_cb, queue_remote_watch_closed, qr);
	if (qr->watch == NULL)
		return;
	Mxfleet__V1__WatchRequest w = MXFLEET__V1__WATCH_REQUEST__INIT;
	w.host_id = qr->host_id;
	uint8_t buf[512];
	size_t n = mxfleet__v1__watch_request__pack(&w, buf);
	grpc_call_send(qr->watch, buf, n);
	grpc_call_close_send(qr->watch);
}

static void
queue_remote_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_remote_kick(arg);
}

int
queue_remote_stat(struct queue_remote *qr, uint64_t *messages, int64_t *oldest)
{
	struct buf ans;
	char err[4400];
	unsigned long long n;
	long long o;

	buf_init(&ans);
	int rc = queue_client_run(qr->spool_dir, "STAT", QUEUE_REMOTE_STAT_MS, &ans, err,
	    sizeof(err));
	buf_appendc(&ans, '\0');
	if (rc == 0 && sscanf(ans.data, "OK %llu messages oldest=%lld", &n, &o) == 2) {
		qr->stat_messages = n;
		qr->stat_oldest = o;
	} else {
		log_debug("event=queue_stat_failed error=\"%s\"", rc < 0 ? err : "bad answer");
		rc = -1;
	}
	*messages = qr->stat_messages;
	*oldest = qr->stat_oldest;
	buf_free(&ans);
	return rc;
}

struct queue_remote *
queue_remote_new(struct event_base *base, struct grpc_client *cl, const char *spool_dir,
    const char *host_id)
{
	struct queue_remote *qr = xcalloc(1, sizeof(*qr));
	qr->base = base;
	qr->cl = cl;
	qr->spool_dir = xstrdup(spool_dir);
	qr->host_id = xstrdup(host_id);
	qr->retry_ev = evtimer_new(base, queue_remote_retry_cb, qr);
	return qr;
}

void
queue_remote_free(struct queue_remote *qr)
{
	if (qr == NULL)
		return;
	event_free(qr->retry_ev);
	free(qr->spool_dir);
	free(qr->host_id);
	free(qr);
}
