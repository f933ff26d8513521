/* The queue-control socket of the scheduler: spool_dir/queue.sock,
 * where an operator (mxd -c FILE queue ..., later controld) lists the queue,
 * makes messages due now and drops them (docs/mxd.md#queue-control).
 *
 * The scheduler is single-threaded and owns the queue, so requests
 * are answered from its loop, one request per connection. A connection gets
 * QMGR_QUEUE_TIMEOUT_MS to send its line: a stalled client delays scheduling
 * by at most that. Short answers (retry, drop) are written at once, within
 * the same time. A listing - with 100,000 messages queued some 15 MB, one
 * spool file read per message - is a stream instead: the queue's ids are
 * taken when the request arrives, and each turn of the loop formats the
 * next QMGR_QUEUE_SLICE of them and writes what the socket takes, so
 * delivery goes on while it is served; a listing whose client has taken
 * nothing for QMGR_QUEUE_TIMEOUT_MS is given up. Only root and mxd's own
 * user may connect: the socket is 0600 inside the 0700 spool, and the
 * peer's uid is checked as well. */
#include "qmgr.h"
#include "buf.h"
#include "log.h"
#include "queue_cmd.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define QMGR_QUEUE_TIMEOUT_MS	2000
#define QMGR_QUEUE_ACCEPT_MAX	1	/* connections per turn of the loop: a
					   silent client holds it up 2 s at most */
#define QMGR_QUEUE_ADDR_MAX		1000	/* bytes of an address shown */
#define QMGR_QUEUE_SLICE	256		/* messages formatted per loop turn */
#define QMGR_QUEUE_LOW		(64 * 1024)	/* format more below this much unsent */
#define QMGR_QUEUE_LISTS_MAX	4		/* listings served at once */

/* A listing being streamed: the ids queued when it was asked for (NUL
 * separated), the next one to format, and what is formatted but unsent. */
struct qmgr_qlist {
	struct qmgr_qlist *next;
	int		 fd;
	struct buf	 ids;
	size_t		 next_id;	/* offset into ids */
	size_t		 total;		/* the queue's size when asked */
	size_t		 listed;	/* MSG lines so far */
	struct buf	 out;
	size_t		 sent;		/* bytes of out written */
	uint64_t	 progress_ms;	/* the last time the client took bytes */
	uint64_t	 start_ms;
	uint64_t	 bytes;		/* written in all */
	int		 done;		/* the OK line is in out */
};

static void
qmgr_queue_list_free(struct qmgr_qlist *l)
{
	close(l->fd);
	buf_free(&l->ids);
	buf_free(&l->out);
	free(l);
}

typedef void (*qmgr_queue_fn)(struct qmgr *, const struct queue_cmd *, struct buf *);

static void
qmgr_queue_warn(const struct qmgr *q, const char *reason)
{
	log_warnx("event=queue_control_unavailable path=%s/%s reason=\"%s\" effect=no_queue_control",
	    spool_dir(q->sp), QUEUE_CMD_SOCK, reason);
}

/* Does a process listen on the socket at sun? Then it is not stale. */
static int
qmgr_queue_in_use(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return rc;
}

void
qmgr_queue_open(struct qmgr *q)
{
	struct sockaddr_un sun;
	struct stat st;
	char why[300];

	q->qctl_fd = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(q->qctl_path, sizeof(q->qctl_path), "%s/%s", spool_dir(q->sp),
	    QUEUE_CMD_SOCK) >= sizeof(q->qctl_path) ||
	    strlen(q->qctl_path) >= sizeof(sun.sun_path)) {
		q->qctl_path[0] = '\0';
		qmgr_queue_warn(q, "path too long for a unix socket");
		return;
	}
	memcpy(sun.sun_path, q->qctl_path, strlen(q->qctl_path) + 1);
	/* What a scheduler that died (or a crashed mxd) left behind is
	 * removed; anything else at the path is not ours to remove. */
	if (lstat(q->qctl_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			qmgr_queue_warn(q, "a file that is not a socket is in the way");
			q->qctl_path[0] = '\0';
			return;
		}
		if (qmgr_queue_in_use(&sun)) {
			qmgr_queue_warn(q, "another process listens on it (a second mxd on this spool?)");
			q->qctl_path[0] = '\0';
			return;
		}
		unlink(q->qctl_path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		qmgr_queue_warn(q, why);
		q->qctl_path[0] = '\0';
		return;
	}
	/* 0600 from the first moment: bind creates the node under the umask. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(why, sizeof(why), "%s: %s", rc < 0 ? "bind" : "listen", strerror(errno));
		qmgr_queue_warn(q, why);
		if (rc == 0)
			unlink(q->qctl_path);
		close(fd);
		q->qctl_path[0] = '\0';
		return;
	}
	q->qctl_fd = fd;
	log_info("event=queue_control_listening path=%s", q->qctl_path);
}

void
qmgr_queue_close(struct qmgr *q)
{
	while (q->qlists) {
		struct qmgr_qlist *l = q->qlists;
		q->qlists = l->next;
		qmgr_queue_list_free(l);
	}
	if (q->qctl_fd < 0)
		return;
	close(q->qctl_fd);
	q->qctl_fd = -1;
	unlink(q->qctl_path);
}

/* ---- requests: checked by queue_cmd_parse, acted on here ---- */

/* The MSG line of the message with this id; nothing when it has left the
 * queue since the listing began. */
static int
qmgr_queue_list_one(struct qmgr *qm, const char *id, time_t now, struct buf *out)
{
	struct spool_env env;
	int fd;
	off_t off;
	char q[LOG_QUOTE_SIZE(QMGR_QUEUE_ADDR_MAX)];

	struct qmgr_msg *e = qmgr_sched_find(qm->sched, id);
	if (e == NULL || e->dropped)
		return 0;
	int rc = spool_read(qm->sp, e->id, &env, &fd, &off);
	if (rc == -1 && errno == ENOENT)
		return 0;	/* gone since; the loop forgets it on its next attempt */
	buf_printf(out, "MSG id=%s", e->id);
	if (rc == 0)
		buf_printf(out, " created=%lld age=%lld size=%llu", (long long)env.created,
		    (long long)(now - env.created), (unsigned long long)env.size);
	buf_printf(out, " attempts=%d next=%lld", e->attempts,
	    (long long)(e->owner != NULL || e->due < now ? now : e->due));
	if (e->owner != NULL)
		buf_appends(out, " state=delivering");
	if (rc == 0) {
		buf_printf(out, " from=%s", log_quote(q, sizeof(q), env.from, strlen(env.from),
		    QMGR_QUEUE_ADDR_MAX));
		for (size_t i = 0; i < env.nrcpts; i++)
			if (spool_env_state(&env, i) != SPOOL_RCPT_DONE)	/* still to do */
				buf_printf(out, " rcpt=%s", log_quote(q, sizeof(q), env.rcpts[i],
				    strlen(env.rcpts[i]), QMGR_QUEUE_ADDR_MAX));
		close(fd);
		spool_env_free(&env);
	} else
		buf_printf(out, " error=\"%s\"", rc == -2 ? "corrupt envelope" : "envelope unreadable");
	if (e->last_reply[0] != '\0')
		buf_printf(out, " last_reply=%s", log_quote(q, sizeof(q), e->last_reply,
		    strlen(e->last_reply), sizeof(e->last_reply)));
	buf_appendc(out, '\n');
	return 1;
}

/* The next slice of l's answer into l->out: up to QMGR_QUEUE_SLICE
 * messages, and the OK line after the last. */
static void
qmgr_queue_list_slice(struct qmgr *q, struct qmgr_qlist *l)
{
	time_t now = time(NULL);
	for (int i = 0; i < QMGR_QUEUE_SLICE && l->next_id < l->ids.len; i++) {
		const char *id = l->ids.data + l->next_id;
		l->next_id += strlen(id) + 1;
		l->listed += (size_t)qmgr_queue_list_one(q, id, now, &l->out);
	}
	if (l->next_id >= l->ids.len && !l->done) {
		buf_printf(&l->out, "OK %zu messages\n", l->total);
		l->done = 1;
	}
}

static void
qmgr_queue_collect(struct qmgr_msg *e, void *arg)
{
	if (!e->dropped)
		buf_append(arg, e->id, strlen(e->id) + 1);
}

/* Due now, and every destination alive: the retry really connects. A
 * message being delivered is left to finish. */
static void
qmgr_queue_retry(struct qmgr *q, const struct queue_cmd *cmd, struct buf *out)
{
	struct qmgr_msg *e = qmgr_sched_find(q->sched, cmd->id);
	if (e == NULL || e->dropped) {
		buf_printf(out, "ERR no such message: %s\n", cmd->id);
		return;
	}
	if (e->owner == NULL)
		qmgr_sched_set_due(q->sched, e, 0);
	qmgr_sched_revive_all(q->sched);
	log_info("event=retry_requested id=%s by=queue-control", e->id);
	buf_printf(out, "OK retry scheduled: %s\n", e->id);
}

static void
qmgr_queue_due_now(struct qmgr_msg *e, void *arg)
{
	if (e->owner == NULL && !e->dropped)
		qmgr_sched_set_due(arg, e, 0);
}

static void
qmgr_queue_retry_all(struct qmgr *q, const struct queue_cmd *cmd, struct buf *out)
{
	(void)cmd;
	qmgr_sched_foreach(q->sched, qmgr_queue_due_now, q->sched);
	qmgr_sched_revive_all(q->sched);
	size_t n = qmgr_sched_count(q->sched);
	log_info("event=retry_requested id=all messages=%zu by=queue-control", n);
	buf_printf(out, "OK retry scheduled: %zu messages\n", n);
}

/* Like postsuper -d: gone from the queue and the spool, no DSN. A message
 * being delivered is removed now; what its agents are sending still
 * arrives (they have the file open), nothing is recorded or retried. */
static void
qmgr_queue_drop(struct qmgr *q, const struct queue_cmd *cmd, struct buf *out)
{
	struct qmgr_msg *e = qmgr_sched_find(q->sched, cmd->id);
	if (e == NULL || e->dropped) {
		buf_printf(out, "ERR no such message: %s\n", cmd->id);
		return;
	}
	if (spool_remove(q->sp, e->id) < 0 && errno != ENOENT) {
		log_warn("event=spool_error op=remove id=%s by=queue-control", e->id);
		buf_printf(out, "ERR cannot remove %s: %s\n", e->id, strerror(errno));
		return;
	}
	log_info("event=dropped id=%s attempts=%d by=queue-control%s", e->id, e->attempts,
	    e->owner != NULL ? " state=delivering" : "");
	buf_printf(out, "OK dropped: %s\n", e->id);
	if (e->owner != NULL)
		e->dropped = 1;	/* forgotten when its agents answer */
	else
		qmgr_sched_remove(q->sched, e);
}

/* The arrival of a message from its id (spool_new_id: milliseconds in hex,
 * then 10 digits of pid and counter); 0 for an id of another shape (put in
 * by hand). */
static int64_t
qmgr_queue_id_time(const char *id)
{
	size_t len = strlen(id);
	int64_t ms = 0;
	if (len < 20 || len > 24)
		return 0;
	for (size_t i = 0; i < len - 10; i++) {
		char c = id[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return 0;
		ms = ms * 16 + d;
	}
	return ms / 1000;
}

static void
qmgr_queue_oldest(struct qmgr_msg *e, void *arg)
{
	int64_t *oldest = arg, t = qmgr_queue_id_time(e->id);
	if (!e->dropped && t > 0 && (*oldest == 0 || t < *oldest))
		*oldest = t;
}

/* For the uploader's heartbeat: from memory, no spool reads. */
static void
qmgr_queue_stat(struct qmgr *q, const struct queue_cmd *cmd, struct buf *out)
{
	int64_t oldest = 0;
	(void)cmd;
	qmgr_sched_foreach(q->sched, qmgr_queue_oldest, &oldest);
	buf_printf(out, "OK %zu messages oldest=%lld\n", qmgr_sched_count(q->sched),
	    (long long)oldest);
}

static const qmgr_queue_fn qmgr_queue_table[QUEUE_CMD_NVERBS] = {
	[QUEUE_CMD_LIST] = NULL,	/* a stream: qmgr_queue_list_start */
	[QUEUE_CMD_RETRY] = qmgr_queue_retry,
	[QUEUE_CMD_RETRY_ALL] = qmgr_queue_retry_all,
	[QUEUE_CMD_DROP] = qmgr_queue_drop,
	[QUEUE_CMD_STAT] = qmgr_queue_stat,
};

/* ---- one connection ---- */

static int
qmgr_queue_wait(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = timeutil_mono_ms();
		if (now >= deadline)
			return -1;
		struct pollfd p = { fd, events, 0 };
		int n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* The request line: its length, -1 on timeout or a silent close, -2 when
 * QUEUE_CMD_LINE_MAX bytes hold no line end. A last line without one (the
 * client shut its side down) counts. */
static ssize_t
qmgr_queue_read_line(int fd, char *line, size_t size, uint64_t deadline)
{
	size_t len = 0;
	while (len < size) {
		ssize_t n = recv(fd, line + len, size - len, 0);
		if (n > 0) {
			char *nl = memchr(line + len, '\n', (size_t)n);
			len += (size_t)n;
			if (nl)
				return nl - line + 1;
			continue;
		}
		if (n == 0)
			return len > 0 ? (ssize_t)len : -1;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) || qmgr_queue_wait(fd, POLLIN, deadline) < 0)
			return -1;
	}
	return -2;
}

static int
qmgr_queue_write(int fd, const char *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno != EAGAIN && errno != EWOULDBLOCK))
			return -1;
		if (qmgr_queue_wait(fd, POLLOUT, deadline) < 0)
			return -1;
	}
	return 0;
}

/* Closing with unread input would make the client's next read fail with
 * ECONNRESET instead of seeing the end of the answer: what it sent beyond
 * the request line (an overlong line) is read and thrown away first. */
static void
qmgr_queue_discard(int fd)
{
	char junk[4096];
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++)
		if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			return;
}

/* Root and mxd's own user, the only ones the file mode lets in anyway. */
static int
qmgr_queue_peer_ok(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* A listing from now on, on fd (the stream takes it); "ERR busy" when
 * QMGR_QUEUE_LISTS_MAX are being served. Returns 1 when fd was taken. */
static int
qmgr_queue_list_start(struct qmgr *q, int fd, struct buf *out)
{
	size_t n = 0;
	for (struct qmgr_qlist *l = q->qlists; l; l = l->next)
		n++;
	if (n >= QMGR_QUEUE_LISTS_MAX) {
		buf_printf(out, "ERR busy: %zu listings are being sent, try again\n", n);
		return 0;
	}
	struct qmgr_qlist *l = xcalloc(1, sizeof(*l));
	l->fd = fd;
	buf_init(&l->ids);
	buf_init(&l->out);
	qmgr_sched_foreach(q->sched, qmgr_queue_collect, &l->ids);
	l->total = qmgr_sched_count(q->sched);
	l->start_ms = l->progress_ms = timeutil_mono_ms();
	l->next = q->qlists;
	q->qlists = l;
	return 1;
}

/* Returns 1 when fd now belongs to a listing. */
static int
qmgr_queue_conn(struct qmgr *q, int fd)
{
	uint64_t deadline = timeutil_mono_ms() + QMGR_QUEUE_TIMEOUT_MS;
	char line[QUEUE_CMD_LINE_MAX];
	struct queue_cmd cmd;
	const char *err;
	struct buf out;

	buf_init(&out);
	ssize_t n = qmgr_queue_peer_ok(fd) ? qmgr_queue_read_line(fd, line, sizeof(line), deadline) : -3;
	if (n == -1) {
		log_info("event=queue_control_no_request timeout_ms=%d", QMGR_QUEUE_TIMEOUT_MS);
		buf_free(&out);
		return 0;
	}
	if (n == -3)
		buf_appends(&out, "ERR permission denied\n");
	else if (n == -2)
		buf_appends(&out, "ERR line too long\n");
	else if (queue_cmd_parse(line, (size_t)n, &cmd, &err) < 0)
		buf_printf(&out, "ERR %s\n", err);
	else if (cmd.verb == QUEUE_CMD_LIST) {
		if (qmgr_queue_list_start(q, fd, &out)) {
			buf_free(&out);
			return 1;
		}
	} else
		qmgr_queue_table[cmd.verb](q, &cmd, &out);
	if (qmgr_queue_write(fd, out.data, out.len, deadline) < 0)
		log_info("event=queue_control_timeout stage=answer bytes=%zu timeout_ms=%d", out.len,
		    QMGR_QUEUE_TIMEOUT_MS);
	buf_free(&out);
	qmgr_queue_discard(fd);
	return 0;
}

void
qmgr_queue_serve(struct qmgr *q)
{
	if (q->qctl_fd < 0)
		return;
	for (int i = 0; i < QMGR_QUEUE_ACCEPT_MAX; i++) {
		int fd = accept4(q->qctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("event=queue_control_error op=accept");
			return;
		}
		if (!qmgr_queue_conn(q, fd))
			close(fd);
	}
}

/* ---- listings: streamed a slice per turn of the loop ---- */

size_t
qmgr_queue_pollfds(const struct qmgr *q, struct pollfd *p)
{
	size_t n = 0;
	for (const struct qmgr_qlist *l = q->qlists; l; l = l->next, n++)
		if (p)
			p[n] = (struct pollfd){ l->fd, POLLOUT, 0 };
	return n;
}

/* Write what l's socket takes, formatting a slice first when little is
 * left. 1: the listing is over (sent, or given up). */
static int
qmgr_queue_list_step(struct qmgr *q, struct qmgr_qlist *l, uint64_t now)
{
	if (!l->done && l->out.len - l->sent < QMGR_QUEUE_LOW) {
		if (l->sent > 0) {
			buf_consume(&l->out, l->sent);
			l->sent = 0;
		}
		qmgr_queue_list_slice(q, l);
	}
	while (l->sent < l->out.len) {
		ssize_t w = send(l->fd, l->out.data + l->sent, l->out.len - l->sent, MSG_NOSIGNAL);
		if (w > 0) {
			l->sent += (size_t)w;
			l->bytes += (uint64_t)w;
			l->progress_ms = now;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (now - l->progress_ms < QMGR_QUEUE_TIMEOUT_MS)
				return 0;
			log_info("event=queue_control_timeout stage=listing messages=%zu/%zu "
			    "bytes=%llu timeout_ms=%d", l->listed, l->total,
			    (unsigned long long)l->bytes, QMGR_QUEUE_TIMEOUT_MS);
			return 1;
		}
		log_info("event=queue_control_gone stage=listing messages=%zu/%zu bytes=%llu",
		    l->listed, l->total, (unsigned long long)l->bytes);
		return 1;
	}
	if (!l->done)
		return 0;
	log_info("event=queue_listed messages=%zu bytes=%llu ms=%llu", l->listed,
	    (unsigned long long)l->bytes, (unsigned long long)(now - l->start_ms));
	qmgr_queue_discard(l->fd);
	return 1;
}

void
qmgr_queue_stream(struct qmgr *q)
{
	uint64_t now = timeutil_mono_ms();
	for (struct qmgr_qlist **lp = &q->qlists; *lp; ) {
		struct qmgr_qlist *l = *lp;
		if (qmgr_queue_list_step(q, l, now)) {
			*lp = l->next;
			qmgr_queue_list_free(l);
		} else
			lp = &l->next;
	}
}

/* In a delivery agent just forked: the scheduler's sockets are not its
 * own (a listing's client would never see the end of its answer). */
void
qmgr_queue_forget(struct qmgr *q)
{
	if (q->qctl_fd >= 0)
		close(q->qctl_fd);
	q->qctl_fd = -1;
	for (struct qmgr_qlist *l = q->qlists; l; l = l->next)
		close(l->fd);
}
