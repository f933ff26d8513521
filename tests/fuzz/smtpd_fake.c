/* The scripted peer of smtpd_fake.h. */
#include "smtpd_fake.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMTPD_FAKE_QUEUED	"250 2.0.0 Ok: queued as "

static void
smtpd_fake_violation(const struct smtpd_fake *f, const char *what)
{
	fprintf(stderr, "smtpd_fake: %s (phase %d); replies so far:\n%.*s\n", what,
	    f->info ? (int)f->info->phase : -1, (int)(f->replies.len < 4000 ? f->replies.len : 4000),
	    f->replies.data ? f->replies.data : "");
	abort();
}

static int
smtpd_fake_fate(const struct smtpd_fake *f, int k, int *err)
{
	if (f->ndecide == 0)
		return -1;
	uint8_t d = f->decide[(size_t)k % f->ndecide];
	*err = d & 8 ? ENOSPC : EIO;
	return d % 8;
}

/* ---- the io callbacks ---- */

static void
smtpd_fake_send(void *arg, const char *data, size_t len)
{
	struct smtpd_fake *f = arg;
	if (len < 5 || memcmp(data + len - 2, "\r\n", 2) != 0)
		smtpd_fake_violation(f, "a reply that is not a whole line");
	buf_append(&f->replies, data, len);
}

static void
smtpd_fake_set_timeout(void *arg, int seconds)
{
	if (seconds <= 0)
		smtpd_fake_violation(arg, "a timeout of zero");
}

static int
smtpd_fake_msg_begin(void *arg, struct spool_env *env)
{
	struct smtpd_fake *f = arg;
	if (f->msg_open || f->commit_pending)
		smtpd_fake_violation(f, "a message begun while another is open");
	f->fate = smtpd_fake_fate(f, f->nmsgs, &f->err);
	snprintf(env->id, sizeof(env->id), "FAKE%04d", f->nmsgs++);
	env->created = 1700000000;
	if (f->fate == SMTPD_FAKE_BEGIN_FAILS)
		return f->err;
	f->msg_open = 1;
	buf_reset(&f->msg);
	return 0;
}

static int
smtpd_fake_msg_write(void *arg, const char *data, size_t len)
{
	struct smtpd_fake *f = arg;
	if (!f->msg_open)
		smtpd_fake_violation(f, "a write without an open message");
	if (f->fate == SMTPD_FAKE_WRITE_FAILS)
		return f->err;
	buf_append(&f->msg, data, len);
	return 0;
}

static int
smtpd_fake_msg_commit(void *arg)
{
	struct smtpd_fake *f = arg;
	if (!f->msg_open)
		smtpd_fake_violation(f, "a commit without an open message");
	if (f->fate == SMTPD_FAKE_FINISH_FAILS)
		return f->err;	/* still open: the core aborts it */
	f->msg_open = 0;
	f->commit_pending = 1;
	return 0;
}

static void
smtpd_fake_msg_abort(void *arg)
{
	struct smtpd_fake *f = arg;
	if (!f->msg_open && !f->commit_pending)
		smtpd_fake_violation(f, "an abort with nothing open");
	f->msg_open = 0;
	f->commit_pending = 0;
}

static void
smtpd_fake_starttls(void *arg)
{
	struct smtpd_fake *f = arg;
	if (f->info->phase != SMTPD_PHASE_STARTTLS_FLUSH)
		smtpd_fake_violation(f, "starttls asked outside STARTTLS");
}

static void
smtpd_fake_close(void *arg)
{
	struct smtpd_fake *f = arg;
	f->closed = 1;
}

static const struct smtpd_core_io smtpd_fake_io = {
	.send = smtpd_fake_send,
	.set_timeout = smtpd_fake_set_timeout,
	.msg_begin = smtpd_fake_msg_begin,
	.msg_write = smtpd_fake_msg_write,
	.msg_commit = smtpd_fake_msg_commit,
	.msg_abort = smtpd_fake_msg_abort,
	.starttls = smtpd_fake_starttls,
	.close = smtpd_fake_close,
};

void
smtpd_fake_init(struct smtpd_fake *f, const struct mxd_config *cfg, int trusted,
    int tls_available, const uint8_t *decide, size_t ndecide)
{
	smtpd_fake_init_flush(f, cfg, trusted, tls_available, decide, ndecide, 0);
}

void
smtpd_fake_init_flush(struct smtpd_fake *f, const struct mxd_config *cfg, int trusted,
    int tls_available, const uint8_t *decide, size_t ndecide, size_t flush_bytes)
{
	struct smtpd_core_params p = {
		.cfg = cfg, .sid = "FAKESID", .ip = "192.0.2.1", .trusted = trusted,
		.tls_available = tls_available, .flush_bytes = flush_bytes,
	};
	memset(f, 0, sizeof(*f));
	buf_init(&f->replies);
	buf_init(&f->committed);
	buf_init(&f->msg);
	f->decide = decide;
	f->ndecide = ndecide;
	if (smtpd_core_new(&p, &smtpd_fake_io, f, &f->core) != 0)
		abort();
	f->info = smtpd_core_info(f->core);
}

void
smtpd_fake_free(struct smtpd_fake *f)
{
	smtpd_core_free(f->core);
	buf_free(&f->replies);
	buf_free(&f->committed);
	buf_free(&f->msg);
}

/* ---- the checks ---- */

/* Reply lines in r[0..len) that start with prefix. */
static int
smtpd_fake_has_reply(const char *r, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	int c = 0;
	for (size_t i = 0; i + n <= len; i++)
		if ((i == 0 || r[i - 1] == '\n') && memcmp(r + i, prefix, n) == 0)
			c++;
	return c;
}

static int
smtpd_fake_count(const char *r, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	int c = 0;
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(r + i, needle, n) == 0)
			c++;
	return c;
}

static int
smtpd_fake_command_phase(enum smtpd_core_phase p)
{
	return p == SMTPD_PHASE_INIT || p == SMTPD_PHASE_READY || p == SMTPD_PHASE_MAIL;
}

/* One smtpd_core_feed call consumed in[0..used) and sent what follows
 * offset r0 of the replies. */
static void
smtpd_fake_check_step(struct smtpd_fake *f, enum smtpd_core_phase before, const char *in,
    size_t used, size_t r0)
{
	const char *r = f->replies.len ? f->replies.data + r0 : "";
	size_t rlen = f->replies.len - r0;
	enum smtpd_core_phase after = f->info->phase;
	int chunk_end = before == SMTPD_PHASE_BDAT && after != SMTPD_PHASE_BDAT;
	int overlong = smtpd_fake_command_phase(before) && used > SMTP_LINE_MAX &&
	    memchr(in, '\n', used) == NULL;

	if (smtpd_fake_has_reply(r, rlen, SMTPD_FAKE_QUEUED) != 0)
		smtpd_fake_violation(f, "a queued reply without a commit");
	if (rlen == 0)
		return;
	if (overlong) {
		if (!smtpd_fake_has_reply(r, rlen, "500 5.5.2"))
			smtpd_fake_violation(f, "a reply to half an overlong line");
	} else if (!chunk_end && (used == 0 || in[used - 1] != '\n'))
		smtpd_fake_violation(f, "a reply before its command was complete");
	if (before == SMTPD_PHASE_DATA && after != SMTPD_PHASE_DATA &&
	    smtpd_fake_has_reply(r, rlen, "250"))
		smtpd_fake_violation(f, "250 to the end of DATA before any commit");
	if (chunk_end && after != SMTPD_PHASE_MAIL && smtpd_fake_has_reply(r, rlen, "250"))
		smtpd_fake_violation(f, "250 to BDAT LAST before any commit");
}

static void
smtpd_fake_check_clean(struct smtpd_fake *f, const struct buf *m)
{
	for (size_t i = 0; i < m->len; i++) {
		if (m->data[i] == '\n' && (i == 0 || m->data[i - 1] != '\r'))
			smtpd_fake_violation(f, "a bare LF committed");
		if (m->data[i] == '\r' && (i + 1 >= m->len || m->data[i + 1] != '\n'))
			smtpd_fake_violation(f, "a bare CR committed");
	}
}

/* The server waits for its commit: end it as the message's fate says. */
static void
smtpd_fake_end_commit(struct smtpd_fake *f)
{
	size_t r0 = f->replies.len;
	int ok = f->fate != SMTPD_FAKE_COMMIT_FAILS;
	char id[32];

	snprintf(id, sizeof(id), "FAKE%04d", f->nmsgs - 1);
	f->commit_pending = 0;
	if (ok) {
		smtpd_fake_check_clean(f, &f->msg);
		buf_append(&f->committed, f->msg.data, f->msg.len);
		buf_append(&f->committed, "", 1);
		f->ncommitted++;
	}
	smtpd_core_commit_done(f->core, ok ? 0 : f->err, id);
	const char *r = f->replies.data + r0;
	size_t rlen = f->replies.len - r0;
	if (ok && (smtpd_fake_has_reply(r, rlen, SMTPD_FAKE_QUEUED) != 1 ||
	    smtpd_fake_count(r, rlen, id) != 1))
		smtpd_fake_violation(f, "a committed message without its 250");
	if (!ok && smtpd_fake_has_reply(r, rlen, "250"))
		smtpd_fake_violation(f, "250 after a failed commit");
	f->nqueued_replies += smtpd_fake_has_reply(r, rlen, SMTPD_FAKE_QUEUED);
}

/* The 220 to STARTTLS is out: what was pipelined after it is never read;
 * the handshake completes; nothing of before survives. */
static void
smtpd_fake_tls(struct smtpd_fake *f, struct buf *pending)
{
	size_t used = 1;
	size_t r0 = f->replies.len;

	if (smtpd_core_feed(f->core, pending->data, pending->len, &used) != 0 || used != 0 ||
	    f->replies.len != r0)
		smtpd_fake_violation(f, "input read after the 220 to STARTTLS");
	if (f->msg_open || f->commit_pending)
		smtpd_fake_violation(f, "a message open across STARTTLS");
	f->discarded += pending->len;
	buf_reset(pending);
	smtpd_core_tls_started(f->core);
	smtpd_core_tls_established(f->core, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
	f->starttls++;
	if (f->info->phase != SMTPD_PHASE_INIT || f->info->helo[0] || f->info->esmtp ||
	    f->info->in_txn || !f->info->tls || f->replies.len != r0)
		smtpd_fake_violation(f, "state carried over STARTTLS");
}

/* Feed what is pending while the server moves on; end commits and
 * handshakes it waits for. */
static void
smtpd_fake_pump(struct smtpd_fake *f, struct buf *pending)
{
	while (!f->closed) {
		enum smtpd_core_phase before = f->info->phase;
		size_t win = pending->len < SMTPD_CORE_WINDOW ? pending->len : SMTPD_CORE_WINDOW;
		size_t r0 = f->replies.len, used = 0;
		int moved = smtpd_core_feed(f->core, pending->data, win, &used);

		if (used > win)
			smtpd_fake_violation(f, "used more than it was given");
		smtpd_fake_check_step(f, before, pending->data, used, r0);
		buf_consume(pending, used);
		if (moved)
			continue;
		if (f->info->phase == SMTPD_PHASE_COMMIT && f->commit_pending)
			smtpd_fake_end_commit(f);
		else if (f->info->phase == SMTPD_PHASE_STARTTLS_FLUSH && !f->closed)
			smtpd_fake_tls(f, pending);
		else
			return;
	}
}

void
smtpd_fake_play(struct smtpd_fake *f, const char *in, size_t len, const uint8_t *chunks,
    size_t nchunks)
{
	struct buf pending;
	size_t pos = 0, i = 0;

	buf_init(&pending);
	do {
		size_t n = nchunks ? (size_t)chunks[i++ % nchunks] + 1 : len - pos;
		if (n > len - pos)
			n = len - pos;
		buf_append(&pending, in + pos, n);
		pos += n;
		smtpd_fake_pump(f, &pending);
	} while (pos < len && !f->closed);
	buf_free(&pending);
	if (f->nqueued_replies != f->ncommitted)
		smtpd_fake_violation(f, "queued replies and commits differ");
}

struct mxd_config *
smtpd_fake_config(const char *text)
{
	char path[] = "/tmp/smtpd-fake-config.XXXXXX";
	struct mxd_config *cfg;
	char err[600];
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	if (mxd_config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "smtpd_fake_config: %s\n", err);
		abort();
	}
	unlink(path);
	return cfg;
}
