/* One inbound SMTP session: the glue between the socket (libevent
 * bufferevents, plain and then TLS), the spool, and the I/O-free
 * conversation in smtpd_core.c. Input is fed to the core while it moves on;
 * its replies go to the output buffer, its spool events to the message file
 * and the commit thread. */
#include "mxd.h"
#include "smtpd_core.h"
#include "rcpt_prober.h"
#include "ptr_lookup.h"
#include "ptr_name.h"
#include "spool_commit.h"
#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMTP_SESSION_INPUT_HIGH	(1u << 20)	/* stop reading past 1 MiB queued */
/* A client that pipelines commands and never reads would make us queue its
 * replies without end: past HIGH bytes of unsent replies the session reads
 * no more input until they drain to LOW. */
#define SMTP_SESSION_OUTPUT_HIGH	(256u << 10)
#define SMTP_SESSION_OUTPUT_LOW		(64u << 10)

/* Sessions per client address in this worker (limits.connections_per_ip):
 * the count after adding delta. */
static int
smtp_session_ipcount_add(struct mxd_worker *w, const char *ip, int delta)
{
	unsigned h = 5381;
	for (const char *p = ip; *p; p++)
		h = h * 33 + (unsigned char)*p;
	struct mxd_ipcount **pp = &w->ipcounts[h % MXD_IPCOUNT_BUCKETS];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->ip, ip) != 0)
			continue;
		struct mxd_ipcount *c = *pp;
		c->n += delta;
		int n = c->n;
		if (n <= 0) {
			*pp = c->next;
			free(c);
		}
		return n;
	}
	if (delta <= 0)
		return 0;
	struct mxd_ipcount *c = xcalloc(1, sizeof(*c));
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->n = delta;
	c->next = w->ipcounts[h % MXD_IPCOUNT_BUCKETS];
	w->ipcounts[h % MXD_IPCOUNT_BUCKETS] = c;
	return delta;
}

static const char *const smtp_starttls_names[] = { "no", "offered", "attempted", "established" };

struct smtp_session {
	struct smtp_session	*next, *prev;
	struct mxd_worker	*w;
	struct bufferevent	*bev;
	int			 fd;
	int			 tls;		/* bev is the TLS bufferevent */
	char			 sid[SPOOL_ID_MAX];
	char			 ip[64];
	int			 port;
	struct sockaddr_storage	 peer;
	int			 trusted;
	uint64_t		 started_ms;
	int64_t			 started_wall_ms;
	char			 local_ip[64];
	int			 local_port;
	int			 closing;
	int			 output_full;	/* input paused until the replies drain */

	struct smtpd_core	*core;		/* the conversation */
	const struct smtpd_core_info *info;	/* the core's, for logs and shutdown */

	/* TLS outcome */
	SSL			*ssl;
	struct tls_trace	 trace;
	char			 tls_version[16];
	char			 tls_cipher[64];
	char			 sni[256];
	char			 tls_fail_stage[64];
	char			 tls_fail_reason[128];
	size_t			 starttls_discarded;

	/* the message being written, then committed */
	struct spool_msg	*msg;
	struct spool_commit_job	*job;

	struct rcpt_prober_wait	*verify;	/* the probe RCPT waits for */

	/* the client's reverse-DNS name (ptr_lookup.h) */
	struct ptr_lookup	*ptr_lookup;	/* in flight */
	char			 ptr[PTR_NAME_SIZE];	/* confirmed, or "" */
};

static void smtp_session_process(struct smtp_session *s);
static void smtp_session_free(struct smtp_session *s);
static void smtp_session_readcb(struct bufferevent *bev, void *arg);
static void smtp_session_writecb(struct bufferevent *bev, void *arg);
static void smtp_session_eventcb(struct bufferevent *bev, short what, void *arg);

static void
smtp_session_close(struct smtp_session *s)
{
	s->closing = 1;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		smtp_session_free(s);
	/* else the write callback frees it once the last reply has left */
}

static void
smtp_session_set_timeout(struct smtp_session *s, int seconds)
{
	struct timeval tv = { seconds, 0 };
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* ---- what the core asks for ---- */

static void
smtp_session_io_send(void *arg, const char *data, size_t len)
{
	struct smtp_session *s = arg;
	evbuffer_add(bufferevent_get_output(s->bev), data, len);
}

static void
smtp_session_io_set_timeout(void *arg, int seconds)
{
	smtp_session_set_timeout(arg, seconds);
}

static int
smtp_session_io_msg_begin(void *arg, struct spool_env *env)
{
	struct smtp_session *s = arg;
	spool_new_id(env->id, sizeof(env->id));
	env->created = time(NULL);
	if (spool_msg_begin(s->w->spool, env, &s->msg) == 0)
		return 0;
	return errno ? errno : EIO;
}

/* The spool's sticky error of the open message (spool.h), never 0 on a
 * failure. */
static int
smtp_session_msg_error(struct smtp_session *s)
{
	int err = spool_msg_error(s->msg);
	return err ? err : EIO;
}

static int
smtp_session_io_msg_write(void *arg, const char *data, size_t len)
{
	struct smtp_session *s = arg;
	return spool_msg_write(s->msg, data, len) == 0 ? 0 : smtp_session_msg_error(s);
}

static void smtp_session_commit_done(void *arg, int error, const char *id);

static int
smtp_session_io_msg_commit(void *arg)
{
	struct smtp_session *s = arg;
	if (spool_msg_finish(s->msg) < 0)
		return smtp_session_msg_error(s);	/* the core aborts the message */
	struct spool_msg *m = s->msg;
	s->msg = NULL;
	s->job = spool_commit(s->w->committer, m, smtp_session_commit_done, s);
	return 0;
}

static void
smtp_session_io_msg_abort(void *arg)
{
	struct smtp_session *s = arg;
	if (s->job) {
		spool_commit_cancel(s->job);
		s->job = NULL;
	}
	if (s->msg) {
		spool_msg_abort(s->msg);
		s->msg = NULL;
	}
}

static void
smtp_session_io_starttls(void *arg)
{
	struct smtp_session *s = arg;
	/* The handshake starts once the 220 has left (write callback). */
	bufferevent_disable(s->bev, EV_READ);
}

/* The core queued a final reply: read no more; the write callback frees the
 * session once the reply has left (never here: the core is still running). */
static void
smtp_session_io_close(void *arg)
{
	struct smtp_session *s = arg;
	s->closing = 1;
	bufferevent_disable(s->bev, EV_READ);
}

static void
smtp_session_verify_done(void *arg, enum rcpt_probe_result r)
{
	struct smtp_session *s = arg;

	s->verify = NULL;
	if (s->closing)
		return;		/* timed out meanwhile: the 421 was the last reply */
	smtpd_core_verify_done(s->core, r == RCPT_PROBE_ACCEPTED ? SMTPD_VERIFY_KNOWN :
	    r == RCPT_PROBE_REJECTED ? SMTPD_VERIFY_UNKNOWN : SMTPD_VERIFY_FAILED);
	bufferevent_enable(s->bev, EV_READ);
	smtp_session_process(s);
}

/* recipient_check verify: the worker's cache, or a probe the session waits
 * for without reading (pipelined commands stay in the input buffer). */
static enum smtpd_core_verify
smtp_session_io_rcpt_verify(void *arg, const struct mxd_domain *dom, const char *addr)
{
	struct smtp_session *s = arg;

	if (s->w->prober == NULL)
		s->w->prober = rcpt_prober_new(s->w->base, s->w->cfg);
	switch (rcpt_prober_check(s->w->prober, dom, addr, smtp_session_verify_done, s,
	    &s->verify)) {
	case RCPT_VERIFY_KNOWN:
		return SMTPD_VERIFY_KNOWN;
	case RCPT_VERIFY_UNKNOWN:
		return SMTPD_VERIFY_UNKNOWN;
	default:
		bufferevent_disable(s->bev, EV_READ);
		return SMTPD_VERIFY_WAIT;
	}
}

static const struct smtpd_core_io smtp_session_io = {
	.send = smtp_session_io_send,
	.set_timeout = smtp_session_io_set_timeout,
	.msg_begin = smtp_session_io_msg_begin,
	.msg_write = smtp_session_io_msg_write,
	.msg_commit = smtp_session_io_msg_commit,
	.msg_abort = smtp_session_io_msg_abort,
	.starttls = smtp_session_io_starttls,
	.close = smtp_session_io_close,
	.rcpt_verify = smtp_session_io_rcpt_verify,
};

static void
smtp_session_commit_done(void *arg, int error, const char *id)
{
	struct smtp_session *s = arg;

	s->job = NULL;
	smtpd_core_commit_done(s->core, error, id);
	if (s->w->shutting_down) {
		smtpd_core_shutdown(s->core);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	smtp_session_process(s);
}

static void
smtp_session_log(struct smtp_session *s)
{
	char helo[LOG_QUOTE_SIZE(100)];
	char sni[LOG_QUOTE_SIZE(100)];
	struct buf b;

	log_quote(helo, sizeof(helo), s->info->helo, strlen(s->info->helo), 100);
	buf_init(&b);
	buf_printf(&b, "event=session sid=%s client=%s:%d helo=%s starttls=%s",
	    s->sid, s->ip, s->port, helo, smtp_starttls_names[s->info->starttls]);
	if (s->info->starttls == SMTPD_STARTTLS_ESTABLISHED) {
		log_quote(sni, sizeof(sni), s->sni, strlen(s->sni), 100);
		buf_printf(&b, " tls_version=%s tls_cipher=%s sni=%s", s->tls_version,
		    s->tls_cipher, sni);
	} else if (s->info->starttls == SMTPD_STARTTLS_ATTEMPTED) {
		buf_printf(&b, " tls_fail_stage=%s tls_fail_reason=%s",
		    s->tls_fail_stage[0] ? s->tls_fail_stage : "unknown",
		    s->tls_fail_reason[0] ? s->tls_fail_reason : "unknown");
	}
	if (s->starttls_discarded)
		buf_printf(&b, " starttls_discarded=%zu", s->starttls_discarded);
	if (s->w->ptr)	/* a hostname (ptr_name_clean): nothing to quote */
		buf_printf(&b, " ptr=%s", s->ptr[0] ? s->ptr : "unknown");
	buf_printf(&b, " messages=%d rcpts=%d errors=%d duration_ms=%" PRIu64,
	    s->info->messages, s->info->rcpts_total, s->info->errors, timeutil_mono_ms() - s->started_ms);
	log_info("%s", b.data);
	buf_free(&b);
}

/* The session's outcome record for the control plane (DESIGN.md). */
static void
smtp_session_outcome(struct smtp_session *s)
{
	static const Mxfleet__V1__StartTls st[] = {
		[SMTPD_STARTTLS_NONE] = MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED,
		[SMTPD_STARTTLS_OFFERED] = MXFLEET__V1__START_TLS__STARTTLS_OFFERED,
		[SMTPD_STARTTLS_ATTEMPTED] = MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED,
		[SMTPD_STARTTLS_ESTABLISHED] = MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED,
	};
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;

	if (s->w->outcomes.fd < 0)
		return;
	o.session_id = s->sid;
	o.direction = MXFLEET__V1__DIRECTION__DIRECTION_INBOUND;
	o.start_unix_ms = s->started_wall_ms;
	o.end_unix_ms = timeutil_wall_ms();
	o.local_ip = s->local_ip;
	o.local_port = (uint32_t)s->local_port;
	o.remote_ip = s->ip;
	o.remote_port = (uint32_t)s->port;
	o.remote_ehlo = (char *)s->info->helo;	/* protobuf-c fields are not const */
	o.remote_ptr = s->ptr;
	o.starttls = st[s->info->starttls];
	if (s->info->starttls == SMTPD_STARTTLS_ESTABLISHED) {
		o.tls_version = s->tls_version;
		o.tls_cipher = s->tls_cipher;
		o.sni = s->sni;
	} else if (s->info->starttls == SMTPD_STARTTLS_ATTEMPTED) {
		o.tls_fail_stage = s->tls_fail_stage;
		o.tls_fail_reason = s->tls_fail_reason;
	}
	o.messages = (uint32_t)s->info->messages;
	o.recipients = (uint32_t)s->info->rcpts_total;
	outcome_emit(&s->w->outcomes, &o);
}

static void
smtp_session_free(struct smtp_session *s)
{
	struct mxd_worker *w = s->w;

	smtp_session_log(s);
	smtp_session_outcome(s);
	smtp_session_io_msg_abort(s);
	rcpt_prober_cancel(s->verify);
	ptr_lookup_cancel(s->ptr_lookup);
	smtpd_core_free(s->core);
	if (s->bev)
		bufferevent_free(s->bev);
	/* The plain bufferevent never owns the socket (STARTTLS hands it on);
	 * the TLS one does. */
	if (!s->tls && s->fd >= 0)
		close(s->fd);
	else if (s->tls && s->bev == NULL) {
		if (s->ssl)
			SSL_free(s->ssl);
		if (s->fd >= 0)
			close(s->fd);
	}
	smtp_session_ipcount_add(w, s->ip, -1);
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsessions--;
	free(s);
	if ((w->shutting_down || w->draining) && w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

/* ---- STARTTLS ---- */

static void
smtp_session_tls_failed(struct smtp_session *s, int saw_eof, unsigned long ossl_err,
    const char *why)
{
	snprintf(s->tls_fail_stage, sizeof(s->tls_fail_stage), "%s", tls_trace_stage(&s->trace));
	if (why)
		snprintf(s->tls_fail_reason, sizeof(s->tls_fail_reason), "%s", why);
	else
		tls_trace_reason(&s->trace, saw_eof, ossl_err, s->tls_fail_reason,
		    sizeof(s->tls_fail_reason));
	smtp_session_free(s);
}

static void
smtp_session_tls_start(struct smtp_session *s)
{
	struct bufferevent *plain = s->bev;

	smtpd_core_tls_started(s->core);
	s->ssl = tls_server_ssl(s->w->tls, &s->trace);
	if (s->ssl == NULL) {
		smtp_session_tls_failed(s, 0, 0, "ssl_new_failed");
		return;
	}
	/* Anything the client pipelined after STARTTLS dies with the plain
	 * bufferevent: it is never executed (CVE-2011-0411). */
	s->starttls_discarded += evbuffer_get_length(bufferevent_get_input(plain));
	s->bev = bufferevent_openssl_socket_new(s->w->base, s->fd, s->ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_free(plain);
	if (s->bev == NULL) {
		s->tls = 1;
		smtp_session_tls_failed(s, 0, 0, "bufferevent_failed");
		return;
	}
	s->tls = 1;
	s->fd = -1;	/* owned by the TLS bufferevent now */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, smtp_session_readcb, smtp_session_writecb,
	    smtp_session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SESSION_INPUT_HIGH);
	smtp_session_set_timeout(s, s->w->cfg->tls_handshake_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
smtp_session_tls_established(struct smtp_session *s)
{
	const char *sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->ssl));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", SSL_get_cipher_name(s->ssl));
	snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
	smtpd_core_tls_established(s->core, s->tls_version, s->tls_cipher);
	log_debug("event=tls_established sid=%s version=%s cipher=%s", s->sid, s->tls_version,
	    s->tls_cipher);
}


/* The unread input as the core needs it (smtpd_core.h): the first
 * contiguous piece when it holds a whole line, is longer than any line, or
 * is all there is; otherwise a window made contiguous. Pulling up only when a
 * line spans pieces keeps pipelined commands from copying the window once
 * each. */
static const char *
smtp_session_input(struct evbuffer *in, size_t *len)
{
	struct evbuffer_iovec v;
	size_t avail = evbuffer_get_length(in);

	*len = 0;
	if (avail == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
		return NULL;
	if (v.iov_len == avail || v.iov_len > SMTP_LINE_MAX ||
	    memchr(v.iov_base, '\n', v.iov_len) != NULL) {
		*len = v.iov_len;
		return v.iov_base;
	}
	*len = avail < SMTPD_CORE_WINDOW ? avail : SMTPD_CORE_WINDOW;
	return (const char *)evbuffer_pullup(in, (ev_ssize_t)*len);
}

/* Feed the core what has arrived, while it moves on and the client reads
 * its replies. */
static void
smtp_session_process(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (!s->closing) {
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTP_SESSION_OUTPUT_HIGH) {
			/* Resumed by the write callback at the low watermark. */
			s->output_full = 1;
			bufferevent_disable(s->bev, EV_READ);
			bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_SESSION_OUTPUT_LOW, 0);
			return;
		}
		size_t len, used = 0;
		const char *p = smtp_session_input(in, &len);
		int moved = smtpd_core_feed(s->core, p, len, &used);
		evbuffer_drain(in, used);
		if (!moved)
			return;
	}
}

static void
smtp_session_readcb(struct bufferevent *bev, void *arg)
{
	smtp_session_process(arg);
}

static void
smtp_session_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	if (s->output_full) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > SMTP_SESSION_OUTPUT_LOW)
			return;
		s->output_full = 0;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		if (!s->closing) {
			bufferevent_enable(bev, EV_READ);
			smtp_session_process(s);
		}
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->closing) {
		smtp_session_free(s);
		return;
	}
	if (s->info->phase == SMTPD_PHASE_STARTTLS_FLUSH)
		smtp_session_tls_start(s);
}

static void
smtp_session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->info->phase == SMTPD_PHASE_TLS) {
			smtp_session_tls_established(s);
			smtp_session_process(s);
		}
		return;
	}
	if (s->info->phase == SMTPD_PHASE_TLS) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (what & BEV_EVENT_TIMEOUT)
			smtp_session_tls_failed(s, 0, 0, "timeout");
		else
			smtp_session_tls_failed(s, (what & BEV_EVENT_EOF) != 0, e, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!s->closing) {
			smtpd_core_reply(s->core, "421 4.4.2 %s Error: timeout exceeded",
			    s->w->cfg->hostname);
			log_info("event=timeout sid=%s client=%s phase=%d", s->sid, s->ip,
			    s->info->phase);
			s->closing = 1;
			bufferevent_disable(s->bev, EV_READ);
			/* Give the 421 one chance to leave; do not wait on a dead peer. */
			struct timeval tv = { 5, 0 };
			bufferevent_set_timeouts(s->bev, NULL, &tv);
			bufferevent_enable(s->bev, EV_WRITE);
			return;
		}
		smtp_session_free(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->info->phase == SMTPD_PHASE_DATA || s->info->phase == SMTPD_PHASE_BDAT ||
		    s->info->in_txn)
			log_info("event=lost_connection sid=%s client=%s phase=%d", s->sid, s->ip,
			    s->info->phase);
		smtp_session_free(s);
	}
}

/* The client's name is known (or known not to be): later messages carry it
 * in Received:, the session's log line and outcome at its end. */
static void
smtp_session_ptr_done(void *arg, const char *name)
{
	struct smtp_session *s = arg;

	s->ptr_lookup = NULL;
	snprintf(s->ptr, sizeof(s->ptr), "%s", name);
	if (name[0])
		smtpd_core_set_client_name(s->core, name);
}

void
smtp_session_accept(struct mxd_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct mxd_config *cfg = w->cfg;

	s->w = w;
	s->fd = fd;
	s->started_ms = timeutil_mono_ms();
	s->started_wall_ms = timeutil_wall_ms();
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &ll) == 0) {
		netaddr_ntop((struct sockaddr *)&local, s->local_ip, sizeof(s->local_ip));
		s->local_port = netaddr_port((struct sockaddr *)&local);
	}
	memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
	netaddr_ntop(sa, s->ip, sizeof(s->ip));
	s->port = netaddr_port(sa);
	s->trusted = mxd_config_trusted(cfg, sa);
	spool_new_id(s->sid, sizeof(s->sid));
	tls_trace_init(&s->trace);
	struct smtpd_core_params params = {
		.cfg = cfg, .sid = s->sid, .ip = s->ip, .trusted = s->trusted,
		.tls_available = w->tls != NULL,
	};
	smtpd_core_new(&params, &smtp_session_io, s, &s->core);
	s->info = smtpd_core_info(s->core);
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	w->nsessions++;
	int per_ip = smtp_session_ipcount_add(w, s->ip, 1);

	s->bev = bufferevent_socket_new(w->base, fd, 0);
	if (s->bev == NULL) {
		smtp_session_free(s);
		return;
	}
	bufferevent_setcb(s->bev, smtp_session_readcb, smtp_session_writecb,
	    smtp_session_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_SESSION_INPUT_HIGH);
	smtp_session_set_timeout(s, cfg->command_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	if (w->shutting_down) {
		smtpd_core_shutdown(s->core);
		return;
	}
	if (w->nsessions > cfg->max_connections || per_ip > cfg->connections_per_ip) {
		log_info("event=refused client=%s reason=%s", s->ip,
		    per_ip > cfg->connections_per_ip ? "connections_per_ip" : "connections");
		smtpd_core_reply(s->core, "421 4.7.0 %s Error: too many connections%s", cfg->hostname,
		    per_ip > cfg->connections_per_ip ? " from your address" : "");
		smtp_session_close(s);
		return;
	}
	smtpd_core_reply(s->core, "220 %s ESMTP mxd", cfg->hostname);
	if (w->ptr)	/* after the greeting, which never waits for it */
		s->ptr_lookup = ptr_lookup_start(w->ptr, (struct sockaddr *)&s->peer,
		    smtp_session_ptr_done, s);
}

void
smtp_session_shutdown_all(struct mxd_worker *w)
{
	struct smtp_session *s = w->sessions, *next;
	for (; s; s = next) {
		next = s->next;
		enum smtpd_core_phase ph = s->info->phase;
		if (s->closing || s->info->in_txn || ph == SMTPD_PHASE_DATA ||
		    ph == SMTPD_PHASE_BDAT || ph == SMTPD_PHASE_COMMIT)
			continue;	/* finishes its transaction first */
		if (ph == SMTPD_PHASE_TLS || ph == SMTPD_PHASE_STARTTLS_FLUSH) {
			smtp_session_free(s);
			continue;
		}
		smtpd_core_shutdown(s->core);
	}
}

void
smtp_session_close_all(struct mxd_worker *w)
{
	while (w->sessions)
		smtp_session_free(w->sessions);
}

