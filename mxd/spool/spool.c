#include "spool.h"
#include "buf.h"
#include "dsn_param.h"
#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC		"MXSPOOL1\n"
#define SPOOL_WBUF		65536
#define SPOOL_SIZE_DIGITS	20
/* "sched attempts=%010d next=%020lld delay_notice=%d": its value is always
 * SPOOL_SCHED_LEN bytes, so it can be rewritten in place. */
#define SPOOL_SCHED_FMT		"attempts=%010d next=%020lld delay_notice=%d"
#define SPOOL_SCHED_LEN		60
/* "status state=S code=DDD len=DDD TEXT": the value is always
 * SPOOL_STATUS_LEN bytes (spool.h), TEXT padded with spaces. */
#define SPOOL_STATUS_HEAD	"state=%c code=%03d len=%03d "
#define SPOOL_STATUS_HEAD_LEN	25
#define SPOOL_STATUS_TEXT	(SPOOL_STATUS_LEN - SPOOL_STATUS_HEAD_LEN)
#define SPOOL_STATUS_CUT	" [...]"
#define SPOOL_HDR_FIRST		16384
#define SPOOL_HDR_MAX		(64u << 20)

struct spool {
	char	*dir;
	int	 tmp_fd;
	int	 queue_fd;
	int	 corrupt_fd;
};

/* Where a message's file is: what abort has to remove. */
enum spool_msg_where {
	SPOOL_MSG_TMP,		/* tmp/ID */
	SPOOL_MSG_HIDDEN,	/* queue/.ID: renamed, directory not yet fsync'd */
	SPOOL_MSG_QUEUED,	/* queue/ID: durable and visible, abort keeps it */
};

struct spool_msg {
	struct spool		*sp;
	char			 id[SPOOL_ID_MAX];
	int			 fd;
	off_t			 size_off;	/* where the size digits live */
	uint64_t		 size;
	struct buf		 wbuf;
	int			 error;		/* first errno; sticky */
	enum spool_msg_where	 where;
};

static int
spool_mkdir(int parent, const char *name, uid_t uid, gid_t gid, char *err, size_t errsz)
{
	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errsz, "mkdir %s: %s", name, strerror(errno));
		return -1;
	}
	if (uid != (uid_t)-1 && fchownat(parent, name, uid, gid, 0) < 0) {
		snprintf(err, errsz, "chown %s: %s", name, strerror(errno));
		return -1;
	}
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		snprintf(err, errsz, "open %s: %s", name, strerror(errno));
	return fd;
}

int
spool_open(struct spool **out, const char *dir, uid_t uid, gid_t gid, char *err, size_t errsz)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	sp->tmp_fd = sp->queue_fd = sp->corrupt_fd = -1;
	sp->dir = xstrdup(dir);
	int root = spool_mkdir(AT_FDCWD, dir, uid, gid, err, errsz);
	if (root < 0)
		goto fail;
	sp->tmp_fd = spool_mkdir(root, "tmp", uid, gid, err, errsz);
	sp->queue_fd = sp->tmp_fd < 0 ? -1 : spool_mkdir(root, "queue", uid, gid, err, errsz);
	sp->corrupt_fd = sp->queue_fd < 0 ? -1 : spool_mkdir(root, "corrupt", uid, gid, err, errsz);
	close(root);
	if (sp->corrupt_fd < 0)
		goto fail;
	*out = sp;
	return 0;
fail:
	spool_free(sp);
	return -1;
}

void
spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->tmp_fd >= 0)
		close(sp->tmp_fd);
	if (sp->queue_fd >= 0)
		close(sp->queue_fd);
	if (sp->corrupt_fd >= 0)
		close(sp->corrupt_fd);
	free(sp->dir);
	free(sp);
}

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}

int
spool_queue_fd(const struct spool *sp)
{
	return sp->queue_fd;
}

void
spool_env_free(struct spool_env *env)
{
	free(env->from);
	for (size_t i = 0; i < env->nrcpts; i++) {
		free(env->rcpts[i]);
		if (env->orcpt)
			free(env->orcpt[i]);
		if (env->status) {
			free(env->status[i].mta);
			free(env->status[i].reply);
		}
	}
	free(env->rcpts);
	free(env->notify);
	free(env->orcpt);
	free(env->status);
	free(env->envid);
	env->from = NULL;
	env->rcpts = NULL;
	env->nrcpts = 0;
	env->notify = NULL;
	env->orcpt = NULL;
	env->status = NULL;
	env->envid = NULL;
	env->ret = DSN_RET_NONE;
}

void
spool_env_add_rcpt_dsn(struct spool_env *env, const char *rcpt, unsigned notify,
    const char *orcpt)
{
	size_t n = env->nrcpts;

	/* The DSN arrays may be absent (an envelope built by hand): then they
	 * start out as "nothing given" for the recipients so far. */
	unsigned *nt = xreallocarray(env->notify, n + 1, sizeof(*nt));
	if (env->notify == NULL)
		memset(nt, 0, n * sizeof(*nt));
	char **oc = xreallocarray(env->orcpt, n + 1, sizeof(*oc));
	if (env->orcpt == NULL)
		memset(oc, 0, n * sizeof(*oc));
	struct spool_rcpt_status *st = xreallocarray(env->status, n + 1, sizeof(*st));
	for (size_t i = env->status == NULL ? 0 : n; i <= n; i++) {
		memset(&st[i], 0, sizeof(st[i]));
		st[i].state = SPOOL_RCPT_TODO;
	}
	env->notify = nt;
	env->orcpt = oc;
	env->status = st;
	env->rcpts = xreallocarray(env->rcpts, n + 1, sizeof(char *));
	env->rcpts[n] = xstrdup(rcpt);
	env->notify[n] = notify;
	env->orcpt[n] = orcpt ? xstrdup(orcpt) : NULL;
	env->nrcpts = n + 1;
}

void
spool_env_add_rcpt(struct spool_env *env, const char *rcpt)
{
	spool_env_add_rcpt_dsn(env, rcpt, 0, NULL);
}

unsigned
spool_env_notify(const struct spool_env *env, size_t i)
{
	return env->notify && i < env->nrcpts ? env->notify[i] : 0;
}

const char *
spool_env_orcpt(const struct spool_env *env, size_t i)
{
	return env->orcpt && i < env->nrcpts ? env->orcpt[i] : NULL;
}

char
spool_env_state(const struct spool_env *env, size_t i)
{
	return env->status && i < env->nrcpts ? env->status[i].state : SPOOL_RCPT_TODO;
}

void
spool_env_set_status(struct spool_env *env, size_t i, char state, int code,
    const char *mta, const char *reply)
{
	struct spool_rcpt_status *st = &env->status[i];

	free(st->mta);
	free(st->reply);
	st->state = state;
	st->code = state == SPOOL_RCPT_BOUNCED && code > 0 && code < 1000 ? code : 0;
	st->mta = state == SPOOL_RCPT_BOUNCED && mta ? xstrdup(mta) : NULL;
	st->reply = state == SPOOL_RCPT_BOUNCED && reply ? xstrdup(reply) : NULL;
}

void
spool_env_keep(struct spool_env *env, const int *keep)
{
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		if (!keep[i]) {
			free(env->rcpts[i]);
			if (env->orcpt)
				free(env->orcpt[i]);
			if (env->status) {
				free(env->status[i].mta);
				free(env->status[i].reply);
			}
			continue;
		}
		env->rcpts[n] = env->rcpts[i];
		if (env->notify)
			env->notify[n] = env->notify[i];
		if (env->orcpt)
			env->orcpt[n] = env->orcpt[i];
		if (env->status)
			env->status[n] = env->status[i];
		n++;
	}
	env->nrcpts = n;
}

#define SPOOL_ID_PID_MASK	0xfffffu
#define SPOOL_ID_TAIL		10	/* the pid field and the counter: 5 + 5 */

void
spool_new_id(char *id, size_t idsz)
{
	static unsigned counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* time, pid and a counter: unique across the workers of one host. */
	snprintf(id, idsz, "%010llx%05x%05x", (unsigned long long)ts.tv_sec * 1000 +
	    (unsigned long long)(ts.tv_nsec / 1000000), spool_id_pid(getpid()),
	    counter++ & SPOOL_ID_PID_MASK);
}

unsigned
spool_id_pid(pid_t pid)
{
	return (unsigned)pid & SPOOL_ID_PID_MASK;
}

/* Whether name is an id (nothing more: not ID.rw) made by a process whose
 * pid field is pidtag ("%05x"). The time part is 10 or more digits. */
static int
spool_id_of(const char *name, const char *pidtag)
{
	size_t n = strlen(name);
	return n > SPOOL_ID_TAIL + 9 && n < SPOOL_ID_MAX &&
	    strspn(name, "0123456789abcdef") == n &&
	    memcmp(name + n - SPOOL_ID_TAIL, pidtag, 5) == 0;
}

static int
spool_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Overwrite n bytes in place. A short count sets no errno (the kernel saw
 * no error), so it is reported as EIO rather than whatever errno held. */
static int
spool_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	ssize_t w = pwrite(fd, p, n, off);
	if (w == (ssize_t)n)
		return 0;
	if (w >= 0)
		errno = EIO;
	return -1;
}

/* A remote MTA's name is kept only when it looks like one (a host name or
 * an address literal): it is the status text's first word. */
static int
spool_mta_ok(const char *mta)
{
	if (mta == NULL || *mta == '\0' || strlen(mta) > 255)
		return 0;
	return strspn(mta, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-_:[]") == strlen(mta);
}

/* The status text: "MTA REPLY", REPLY with '%' and bytes outside printable
 * ASCII as %XX; cut to fit, with a marker, never inside an escape. */
static size_t
spool_status_text(char *out, const struct spool_rcpt_status *st)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, room = SPOOL_STATUS_TEXT - (sizeof(SPOOL_STATUS_CUT) - 1);

	if (st->state != SPOOL_RCPT_BOUNCED)
		return 0;
	if (spool_mta_ok(st->mta)) {
		memcpy(out, st->mta, strlen(st->mta));
		o = strlen(st->mta);
	}
	out[o++] = ' ';
	for (const char *p = st->reply ? st->reply : ""; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		int esc = ch < 0x20 || ch > 0x7e || ch == '%';
		if (o + (esc ? 3 : 1) > room) {
			memcpy(out + o, SPOOL_STATUS_CUT, sizeof(SPOOL_STATUS_CUT) - 1);
			return o + sizeof(SPOOL_STATUS_CUT) - 1;
		}
		if (esc) {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else
			out[o++] = (char)ch;
	}
	return o;
}

/* Exactly SPOOL_STATUS_LEN bytes, whatever the status holds. */
static void
spool_format_status(struct buf *b, const struct spool_rcpt_status *st)
{
	char text[SPOOL_STATUS_TEXT];
	size_t n = spool_status_text(text, st);
	char state = st->state == SPOOL_RCPT_DONE || st->state == SPOOL_RCPT_BOUNCED ?
	    st->state : SPOOL_RCPT_TODO;
	int code = state == SPOOL_RCPT_BOUNCED && st->code > 0 && st->code < 1000 ? st->code : 0;

	buf_printf(b, SPOOL_STATUS_HEAD, state, code, (int)n);
	buf_append(b, text, n);
	memset(text, ' ', SPOOL_STATUS_TEXT - n);
	buf_append(b, text, SPOOL_STATUS_TEXT - n);
}

static void
spool_format_sched(struct buf *b, const struct spool_env *env)
{
	long long next = env->next_attempt > 0 ? (long long)env->next_attempt : 0;
	int attempts = env->attempts > 0 ? env->attempts : 0;
	buf_printf(b, SPOOL_SCHED_FMT, attempts, next, env->delay_notified ? 1 : 0);
}

static void
spool_format_env(struct buf *b, const struct spool_env *env, size_t *size_off)
{
	buf_appends(b, SPOOL_MAGIC);
	buf_printf(b, "id %s\n", env->id);
	buf_printf(b, "created %lld\n", (long long)env->created);
	buf_printf(b, "from <%s>\n", env->from ? env->from : "");
	/* The DSN lines appear only when something was given, so an envelope
	 * without DSN parameters reads as it did before they existed. */
	if (env->envid)
		buf_printf(b, "envid %s\n", env->envid);
	if (env->ret == DSN_RET_FULL || env->ret == DSN_RET_HDRS)
		buf_printf(b, "ret %s\n", env->ret == DSN_RET_FULL ? "FULL" : "HDRS");
	for (size_t i = 0; i < env->nrcpts; i++) {
		static const struct spool_rcpt_status todo = { .state = SPOOL_RCPT_TODO };
		char notify[64];
		buf_printf(b, "rcpt <%s>\n", env->rcpts[i]);
		dsn_notify_format(spool_env_notify(env, i), notify, sizeof(notify));
		if (notify[0])
			buf_printf(b, "notify %s\n", notify);
		if (spool_env_orcpt(env, i))
			buf_printf(b, "orcpt %s\n", spool_env_orcpt(env, i));
		/* Written with the message, so that delivery can record
		 * its outcome in place, without new disk space. */
		buf_appends(b, "status ");
		spool_format_status(b, env->status ? &env->status[i] : &todo);
		buf_appends(b, "\n");
	}
	buf_printf(b, "flags requiretls=%d smtputf8=%d body8bit=%d\n", env->requiretls ? 1 : 0,
	    env->smtputf8 ? 1 : 0, env->body8bit ? 1 : 0);
	buf_appends(b, "sched ");
	spool_format_sched(b, env);
	buf_appends(b, "\n");
	buf_appends(b, "size ");
	*size_off = b->len;
	buf_printf(b, "%0*" PRIu64 "\n\n", SPOOL_SIZE_DIGITS, env->size);
}

int
spool_msg_begin(struct spool *sp, const struct spool_env *env, struct spool_msg **out)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));
	size_t size_off;

	m->sp = sp;
	snprintf(m->id, sizeof(m->id), "%s", env->id);
	buf_init(&m->wbuf);
	m->fd = openat(sp->tmp_fd, m->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (m->fd < 0) {
		int err = errno;
		log_warn("event=spool_error op=create id=%s", m->id);
		free(m);
		errno = err;
		return -1;
	}
	spool_format_env(&m->wbuf, env, &size_off);
	m->size_off = (off_t)size_off;
	*out = m;
	return 0;
}

/* The first error sticks: everything after it is dropped, so a write that
 * succeeds once space returns can never leave a hole in the content, and the
 * session learns at the end why the message was not taken. */
static int
spool_msg_fail(struct spool_msg *m, const char *op)
{
	if (m->error == 0) {
		m->error = errno ? errno : EIO;
		log_warn("event=spool_error op=%s id=%s", op, m->id);
		buf_free(&m->wbuf);
	}
	errno = m->error;
	return -1;
}

int
spool_msg_error(const struct spool_msg *m)
{
	return m->error;
}

int
spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	if (m->error)
		return spool_msg_fail(m, "write");
	m->size += n;
	if (m->wbuf.len + n < SPOOL_WBUF) {
		buf_append(&m->wbuf, p, n);
		return 0;
	}
	if (spool_write_all(m->fd, m->wbuf.data, m->wbuf.len) < 0 ||
	    spool_write_all(m->fd, p, n) < 0)
		return spool_msg_fail(m, "write");
	buf_reset(&m->wbuf);
	return 0;
}

int
spool_msg_finish(struct spool_msg *m)
{
	char digits[SPOOL_SIZE_DIGITS + 1];
	if (m->error || spool_write_all(m->fd, m->wbuf.data, m->wbuf.len) < 0)
		return spool_msg_fail(m, "write");
	buf_free(&m->wbuf);
	snprintf(digits, sizeof(digits), "%0*" PRIu64, SPOOL_SIZE_DIGITS, m->size);
	if (spool_pwrite_all(m->fd, digits, SPOOL_SIZE_DIGITS, m->size_off) < 0)
		return spool_msg_fail(m, "write");
	return 0;
}

int
spool_msg_sync(struct spool_msg *m, int do_fsync)
{
	if (m->error)
		return spool_msg_fail(m, "fsync");
	if (do_fsync && fdatasync(m->fd) < 0)
		return spool_msg_fail(m, "fsync");
	return 0;
}

/* queue/.ID: spool_list skips dot names, so neither the scheduler's
 * rescan nor a restart's recovery takes it for a message before reveal. */
static void
spool_hidden_name(char *out, size_t outsz, const char *id)
{
	snprintf(out, outsz, ".%s", id);
}

int
spool_msg_publish(struct spool_msg *m)
{
	char hidden[SPOOL_ID_MAX + 1];

	if (m->error)
		return spool_msg_fail(m, "rename");
	spool_hidden_name(hidden, sizeof(hidden), m->id);
	if (renameat(m->sp->tmp_fd, m->id, m->sp->queue_fd, hidden) < 0)
		return spool_msg_fail(m, "rename");
	m->where = SPOOL_MSG_HIDDEN;
	return 0;
}

int
spool_msg_reveal(struct spool_msg *m)
{
	char hidden[SPOOL_ID_MAX + 1];

	spool_hidden_name(hidden, sizeof(hidden), m->id);
	if (renameat(m->sp->queue_fd, hidden, m->sp->queue_fd, m->id) < 0)
		return spool_msg_fail(m, "reveal");
	m->where = SPOOL_MSG_QUEUED;
	return 0;
}

int
spool_sync_queue(struct spool *sp)
{
	if (fsync(sp->queue_fd) < 0) {
		int err = errno;
		log_warn("event=spool_error op=fsync_dir dir=queue");
		errno = err;
		return -1;
	}
	return 0;
}

void
spool_msg_free(struct spool_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	buf_free(&m->wbuf);
	free(m);
}

void
spool_msg_abort(struct spool_msg *m)
{
	char hidden[SPOOL_ID_MAX + 1];

	if (m == NULL)
		return;
	if (m->where == SPOOL_MSG_TMP)
		unlinkat(m->sp->tmp_fd, m->id, 0);
	else if (m->where == SPOOL_MSG_HIDDEN) {
		spool_hidden_name(hidden, sizeof(hidden), m->id);
		if (unlinkat(m->sp->queue_fd, hidden, 0) < 0)
			log_warn("event=spool_error op=unlink id=%s", m->id);
	}
	spool_msg_free(m);
}

const char *
spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

uint64_t
spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

static int
spool_inject_sync(struct spool *sp, struct spool_env *env, const char *content, size_t len,
    int durable)
{
	struct spool_msg *m;
	spool_new_id(env->id, sizeof(env->id));
	if (spool_msg_begin(sp, env, &m) < 0)
		return -1;
	if (spool_msg_write(m, content, len) < 0 || spool_msg_finish(m) < 0 ||
	    spool_msg_sync(m, durable) < 0 || spool_msg_publish(m) < 0 ||
	    (durable && spool_sync_queue(sp) < 0) || spool_msg_reveal(m) < 0) {
		int err = errno;
		spool_msg_abort(m);
		errno = err;
		return -1;
	}
	spool_msg_free(m);
	return 0;
}

int
spool_inject(struct spool *sp, struct spool_env *env, const char *content, size_t len)
{
	return spool_inject_sync(sp, env, content, len, 1);
}

int
spool_inject_unsynced(struct spool *sp, struct spool_env *env, const char *content, size_t len)
{
	return spool_inject_sync(sp, env, content, len, 0);
}

static int
spool_line(const char **pp, const char *end, const char *key, const char **val, size_t *vlen)
{
	const char *p = *pp;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t kl = strlen(key);
	if (nl == NULL)
		return 0;
	if ((size_t)(nl - p) < kl + 1 || memcmp(p, key, kl) != 0 || p[kl] != ' ')
		return -1;
	*val = p + kl + 1;
	*vlen = (size_t)(nl - *val);
	*pp = nl + 1;
	return 1;
}

static int
spool_bracketed(const char *v, size_t vl, char **out)
{
	if (vl < 2 || v[0] != '<' || v[vl - 1] != '>' || memchr(v, '\0', vl))
		return -1;
	*out = xstrndup(v + 1, vl - 2);
	return 0;
}

/* Exactly n decimal digits, at most max, into *out. */
static int
spool_digits(const char *v, size_t n, long long max, long long *out)
{
	long long x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		int dg = v[i] - '0';
		if (x > max / 10 || (x == max / 10 && dg > max % 10))
			return -1;
		x = x * 10 + dg;
	}
	*out = x;
	return 0;
}

static int
spool_parse_sched(const char *v, size_t vl, struct spool_env *env)
{
	long long attempts, next, notice;
	/* attempts=DDDDDDDDDD next=DDDDDDDDDDDDDDDDDDDD delay_notice=D */
	if (vl != SPOOL_SCHED_LEN || memcmp(v, "attempts=", 9) != 0 ||
	    spool_digits(v + 9, 10, INT_MAX, &attempts) < 0 ||
	    memcmp(v + 19, " next=", 6) != 0 ||
	    spool_digits(v + 25, 20, LLONG_MAX, &next) < 0 ||
	    memcmp(v + 45, " delay_notice=", 14) != 0 ||
	    spool_digits(v + 59, 1, 1, &notice) < 0)
		return -1;
	env->attempts = (int)attempts;
	env->next_attempt = (time_t)next;
	env->delay_notified = (int)notice;
	return 0;
}

static int
spool_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The status text back: an escape that does not decode stays as it is,
 * so a torn in-place write (old and new bytes mixed) still reads. */
static char *
spool_unescape(const char *v, size_t vl)
{
	char *out = xmalloc(vl + 1);
	size_t o = 0;
	for (size_t i = 0; i < vl; i++) {
		int hi, lo;
		/* %00 too stays: the text is a C string. */
		if (v[i] == '%' && i + 2 < vl && (hi = spool_hexval(v[i + 1])) >= 0 &&
		    (lo = spool_hexval(v[i + 2])) >= 0 && (hi | lo) != 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[o++] = v[i];
	}
	out[o] = '\0';
	return out;
}

/* state=S code=DDD len=DDD TEXT, every byte printable: whatever mix of
 * two such values a torn write leaves is one too. */
static int
spool_parse_status(const char *v, size_t vl, struct spool_rcpt_status *st)
{
	long long code, len;

	if (vl != SPOOL_STATUS_LEN || memcmp(v, "state=", 6) != 0 ||
	    (v[6] != SPOOL_RCPT_TODO && v[6] != SPOOL_RCPT_DONE && v[6] != SPOOL_RCPT_BOUNCED) ||
	    memcmp(v + 7, " code=", 6) != 0 || spool_digits(v + 13, 3, 999, &code) < 0 ||
	    memcmp(v + 16, " len=", 5) != 0 || spool_digits(v + 21, 3, 999, &len) < 0 ||
	    v[24] != ' ')
		return -1;
	for (size_t i = SPOOL_STATUS_HEAD_LEN; i < vl; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return -1;
	st->state = v[6];
	if (st->state != SPOOL_RCPT_BOUNCED)
		return 0;
	const char *t = v + SPOOL_STATUS_HEAD_LEN;
	size_t tl = (size_t)len < SPOOL_STATUS_TEXT ? (size_t)len : SPOOL_STATUS_TEXT;
	const char *sp = memchr(t, ' ', tl);
	size_t ml = sp ? (size_t)(sp - t) : tl;
	st->code = (int)code;
	st->mta = ml > 0 ? xstrndup(t, ml) : NULL;
	st->reply = sp ? spool_unescape(sp + 1, tl - ml - 1) : xstrdup("");
	return 0;
}

long
spool_parse_env(const char *p, size_t len, struct spool_env *env)
{
	const char *start = p, *end = p + len, *v;
	size_t vl;
	int r;
	char tmp[64];

	memset(env, 0, sizeof(*env));
	if (len < sizeof(SPOOL_MAGIC) - 1)
		return 0;
	if (memcmp(p, SPOOL_MAGIC, sizeof(SPOOL_MAGIC) - 1) != 0)
		return -1;
	p += sizeof(SPOOL_MAGIC) - 1;
	if ((r = spool_line(&p, end, "id", &v, &vl)) <= 0)
		goto out;
	if (vl == 0 || vl >= sizeof(env->id) || memchr(v, '/', vl) || memchr(v, '\0', vl))
		goto bad;
	memcpy(env->id, v, vl);
	env->id[vl] = '\0';
	if ((r = spool_line(&p, end, "created", &v, &vl)) <= 0)
		goto out;
	if (vl == 0 || vl >= sizeof(tmp))
		goto bad;
	memcpy(tmp, v, vl);
	tmp[vl] = '\0';
	env->created = (time_t)strtoll(tmp, NULL, 10);
	if ((r = spool_line(&p, end, "from", &v, &vl)) <= 0)
		goto out;
	if (spool_bracketed(v, vl, &env->from) < 0)
		goto bad;
	if ((r = spool_line(&p, end, "envid", &v, &vl)) == 0)
		goto out;
	if (r > 0) {
		if (!dsn_envid_ok(v, vl))
			goto bad;
		env->envid = xstrndup(v, vl);
	}
	if ((r = spool_line(&p, end, "ret", &v, &vl)) == 0)
		goto out;
	if (r > 0) {
		if (vl == 4 && memcmp(v, "FULL", 4) == 0)
			env->ret = DSN_RET_FULL;
		else if (vl == 4 && memcmp(v, "HDRS", 4) == 0)
			env->ret = DSN_RET_HDRS;
		else
			goto bad;
	}
	for (;;) {
		if ((r = spool_line(&p, end, "rcpt", &v, &vl)) == 0)
			goto out;
		if (r < 0)
			break;
		char *rc;
		if (spool_bracketed(v, vl, &rc) < 0)
			goto bad;
		spool_env_add_rcpt_dsn(env, rc, 0, NULL);
		free(rc);
		/* This recipient's DSN parameters, when it has any. */
		if ((r = spool_line(&p, end, "notify", &v, &vl)) == 0)
			goto out;
		if (r > 0 && dsn_notify_parse(v, vl, &env->notify[env->nrcpts - 1]) < 0)
			goto bad;
		if ((r = spool_line(&p, end, "orcpt", &v, &vl)) == 0)
			goto out;
		if (r > 0) {
			if (!dsn_orcpt_ok(v, vl))
				goto bad;
			env->orcpt[env->nrcpts - 1] = xstrndup(v, vl);
		}
		/* Absent in files written before it existed: TODO, and no
		 * offset to update it at. */
		if ((r = spool_line(&p, end, "status", &v, &vl)) == 0)
			goto out;
		if (r > 0) {
			struct spool_rcpt_status *st = &env->status[env->nrcpts - 1];
			if (spool_parse_status(v, vl, st) < 0)
				goto bad;
			st->off = (off_t)(v - start);
		}
	}
	if ((r = spool_line(&p, end, "flags", &v, &vl)) <= 0)
		goto out;
	if (vl >= sizeof(tmp))
		goto bad;
	memcpy(tmp, v, vl);
	tmp[vl] = '\0';
	if (sscanf(tmp, "requiretls=%d smtputf8=%d body8bit=%d", &env->requiretls,
	    &env->smtputf8, &env->body8bit) != 3)
		goto bad;
	/* Absent in files written before it existed. */
	if ((r = spool_line(&p, end, "sched", &v, &vl)) == 0)
		goto out;
	if (r > 0 && spool_parse_sched(v, vl, env) < 0)
		goto bad;
	if (r > 0)
		env->sched_off = (off_t)(v - start);
	if ((r = spool_line(&p, end, "size", &v, &vl)) <= 0)
		goto out;
	long long size;
	if (vl != SPOOL_SIZE_DIGITS || spool_digits(v, vl, LLONG_MAX, &size) < 0)
		goto bad;
	env->size = (uint64_t)size;
	if (p >= end)
		goto incomplete;
	if (*p != '\n')
		goto bad;
	p++;
	if (env->nrcpts == 0)
		goto bad;
	return (long)(p - start);
out:
	if (r < 0)
		goto bad;
incomplete:
	spool_env_free(env);
	return 0;
bad:
	spool_env_free(env);
	return -1;
}

int
spool_read(struct spool *sp, const char *id, struct spool_env *env, int *fdp, off_t *content_off)
{
	size_t cap = SPOOL_HDR_FIRST;
	char *hdr = NULL;
	struct stat st;
	ssize_t n;
	long hl;
	int fd = openat(sp->queue_fd, id, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	/* Most headers fit the first read; many recipients (each with an
	 * ORCPT) need more, up to a bound past which the file is corrupt. */
	for (;;) {
		hdr = xreallocarray(hdr, cap, 1);
		n = pread(fd, hdr, cap, 0);
		if (n < 0) {
			free(hdr);
			close(fd);
			return -1;
		}
		hl = spool_parse_env(hdr, (size_t)n, env);
		if (hl != 0 || (size_t)n < cap || cap >= SPOOL_HDR_MAX)
			break;
		cap *= 4;
	}
	free(hdr);
	if (hl <= 0 || strcmp(env->id, id) != 0 ||
	    (uint64_t)st.st_size != (uint64_t)hl + env->size) {
		if (hl > 0)
			spool_env_free(env);
		close(fd);
		return -2;
	}
	if (lseek(fd, hl, SEEK_SET) < 0) {
		spool_env_free(env);
		close(fd);
		return -1;
	}
	*fdp = fd;
	*content_off = hl;
	return 0;
}

int
spool_rewrite(struct spool *sp, const struct spool_env *env, int fd, off_t content_off)
{
	struct buf b;
	size_t size_off;
	char name[SPOOL_ID_MAX + 8];
	char chunk[65536];
	int out;

	snprintf(name, sizeof(name), "%s.rw", env->id);
	out = openat(sp->tmp_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return -1;
	buf_init(&b);
	spool_format_env(&b, env, &size_off);
	int rc = spool_write_all(out, b.data, b.len);
	buf_free(&b);
	off_t off = content_off;
	while (rc == 0) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), off);
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		rc = spool_write_all(out, chunk, (size_t)n);
		off += n;
	}
	if (rc == 0 && fdatasync(out) < 0)
		rc = -1;
	close(out);
	if (rc == 0 && renameat(sp->tmp_fd, name, sp->queue_fd, env->id) < 0)
		rc = -1;
	if (rc == 0)
		fsync(sp->queue_fd);
	else
		unlinkat(sp->tmp_fd, name, 0);
	return rc;
}

static int
spool_store_sched(int fd, const struct spool_env *env)
{
	struct buf b;
	int rc;

	buf_init(&b);
	spool_format_sched(&b, env);
	if (b.len != SPOOL_SCHED_LEN) {
		errno = EINVAL;
		rc = -1;
	} else
		rc = spool_pwrite_all(fd, b.data, b.len, env->sched_off);
	buf_free(&b);
	return rc;
}

int
spool_env_in_place(const struct spool_env *env)
{
	if (env->sched_off <= 0 || env->status == NULL)
		return 0;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->status[i].off <= 0)
			return 0;
	return 1;
}

int
spool_set_progress(struct spool *sp, const struct spool_env *env)
{
	struct buf b;
	int rc = 0;

	if (!spool_env_in_place(env)) {
		errno = EINVAL;
		return -1;
	}
	int fd = openat(sp->queue_fd, env->id, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	buf_init(&b);
	for (size_t i = 0; i < env->nrcpts && rc == 0; i++) {
		buf_reset(&b);
		spool_format_status(&b, &env->status[i]);
		rc = spool_pwrite_all(fd, b.data, b.len, env->status[i].off);
	}
	buf_free(&b);
	if (rc == 0)
		rc = spool_store_sched(fd, env);
	/* Durable before the caller acts on it: a recipient marked delivered
	 * that a crash turned back into "to do" would be delivered again. */
	if (rc == 0)
		rc = fdatasync(fd);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

int
spool_remove(struct spool *sp, const char *id)
{
	/* No directory fsync: if the unlink is lost in a crash, the message is
	 * delivered again, which is allowed; losing it is not possible. */
	return unlinkat(sp->queue_fd, id, 0);
}

int
spool_quarantine(struct spool *sp, const char *id)
{
	if (renameat(sp->queue_fd, id, sp->corrupt_fd, id) < 0)
		return -1;
	fsync(sp->corrupt_fd);
	return 0;
}

enum spool_list_action {
	SPOOL_LIST_IDS,		/* call cb for every message id */
	SPOOL_LIST_REMOVE,	/* unlink every file (tmp/) */
	SPOOL_LIST_REVEAL,	/* queue/.ID -> queue/ID, cb for every ID */
};

/* Dot names are never message ids: only REVEAL looks at them. pidtag, when
 * not NULL, limits REMOVE and REVEAL to the ids that process made. Returns
 * the number of files acted on, -1 when the directory can not be read. */
static int
spool_list(int dirfd, enum spool_list_action act, const char *pidtag,
    void (*cb)(const char *id, void *arg), void *arg)
{
	int fd = dup(dirfd), n = 0;
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		if ((name[0] == '.') != (act == SPOOL_LIST_REVEAL) ||
		    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (pidtag && !spool_id_of(name + (act == SPOOL_LIST_REVEAL), pidtag))
			continue;
		if (act == SPOOL_LIST_IDS) {
			if (cb)
				cb(name, arg);
		} else if (act == SPOOL_LIST_REMOVE) {
			log_info("event=spool_recover action=remove_partial file=tmp/%s", name);
			unlinkat(dirfd, name, 0);
		} else {
			/* queue/.ID, left by a crash between a commit's rename
			 * and its reveal. Its data was fsync'd before the
			 * rename, so it is complete; the session got 250 or
			 * nothing: deliver it. One whose directory fsync failed
			 * was unlinked before the 451 and is back only if that
			 * unlink was lost as well (spool_commit.h). */
			if (renameat(dirfd, name, dirfd, name + 1) < 0) {
				log_warn("event=spool_error op=reveal id=%s", name + 1);
				continue;
			}
			log_info("event=spool_recover action=reveal file=queue/%s", name + 1);
			if (cb)
				cb(name + 1, arg);
		}
		n++;
	}
	closedir(d);
	return n;
}

int
spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg), void *arg)
{
	int revealed;

	if (spool_list(sp->tmp_fd, SPOOL_LIST_REMOVE, NULL, NULL, NULL) < 0 ||
	    (revealed = spool_list(sp->queue_fd, SPOOL_LIST_REVEAL, NULL, NULL, NULL)) < 0)
		return -1;
	if (revealed > 0)
		spool_sync_queue(sp);
	return spool_list(sp->queue_fd, SPOOL_LIST_IDS, NULL, cb, arg) < 0 ? -1 : 0;
}

int
spool_recover_pid(struct spool *sp, pid_t pid, void (*cb)(const char *id, void *arg),
    void *arg)
{
	char tag[8];
	int revealed;

	snprintf(tag, sizeof(tag), "%05x", spool_id_pid(pid));
	if (spool_list(sp->tmp_fd, SPOOL_LIST_REMOVE, tag, NULL, NULL) < 0 ||
	    (revealed = spool_list(sp->queue_fd, SPOOL_LIST_REVEAL, tag, cb, arg)) < 0)
		return -1;
	if (revealed > 0)
		spool_sync_queue(sp);
	return revealed;
}

int
spool_scan(struct spool *sp, void (*cb)(const char *id, void *arg), void *arg)
{
	return spool_list(sp->queue_fd, SPOOL_LIST_IDS, NULL, cb, arg) < 0 ? -1 : 0;
}
