/* The uploader process: mxd's link to controld.
 *
 * Workers send each session's outcome record here (outcome.c). The uploader
 * appends it to the on-disk journal (group-committed fsync), streams batches
 * to controld's Collector.Stream and forgets a batch only when controld has
 * acknowledged it; after a reconnect it resends from the last acknowledged
 * record, and controld counts each record once. It also registers the host,
 * sends heartbeats, and watches the configuration: each snapshot is cached
 * on disk and the master is asked to reload (SIGHUP), so mxd applies it
 * without a restart and starts from the cache when controld is away. SMTP
 * never waits for any of this. */
#include "mxd.h"
#include "buf.h"
#include "journal.h"
#include "grpc.h"
#include "log.h"
#include "outcome.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UPLOADER_COMMIT_MS	20	/* group commit window */
#define UPLOADER_INFLIGHT	8	/* batches sent and not yet acknowledged */
#define UPLOADER_RETRY_MS	1000

struct uploader {
	struct mxd_config	*cfg;
	struct event_base	*base;
	struct journal		*j;
	int			 fd;		/* outcome records from the workers */
	uint64_t		*shared_dropped;
	struct grpc_client	*cl;
	SSL_CTX			*tls;
	char			 host_id[256];
	int64_t			 cert_not_after;
	struct event		*read_ev, *commit_ev, *hb_ev, *retry_ev, *term_ev;
	int			 commit_pending;
	/* the stream */
	struct grpc_call	*stream;
	uint64_t		 sent_upto;	/* highest seq handed to the stream */
	uint64_t		 inflight_seq[UPLOADER_INFLIGHT];
	uint64_t		 inflight_dropped[UPLOADER_INFLIGHT];
	uint64_t		 inflight_corrupt[UPLOADER_INFLIGHT];
	int			 ninflight;
	uint64_t		 pending_dropped, pending_corrupt;
	/* config watch */
	struct grpc_call	*watch;
	uint64_t		 config_version;
	struct buf		 batch;
	int			 stopping;
};

static void uploader_pump(struct uploader *u);
static void uploader_open_calls(struct uploader *u);

static void
uploader_commit(struct uploader *u)
{
	if (!u->commit_pending)
		return;
	u->commit_pending = 0;
	if (journal_commit(u->j) < 0)
		log_warn("event=journal_error op=commit");
	uploader_pump(u);
}

static void
uploader_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	uploader_commit(arg);
}

static void
uploader_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uploader *u = arg;
	uint8_t buf[OUTCOME_MAX_RECORD];
	for (int i = 0; i < 1024; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		uint64_t seq;
		if (journal_append(u->j, buf, (size_t)n, &seq) < 0) {
			log_warn("event=journal_error op=append");
			u->pending_dropped++;
			continue;
		}
		if (!u->commit_pending) {
			u->commit_pending = 1;
			struct timeval tv = { 0, UPLOADER_COMMIT_MS * 1000 };
			evtimer_add(u->commit_ev, &tv);
		}
	}
}

/* Protobuf by hand: the batch is the records as they are, each with its seq
 * appended (outcome_append_seq), so nothing is unpacked and packed again. */
static void
uploader_varint(struct buf *b, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;
		v >>= 7;
		buf_appendc(b, (char)(v ? c | 0x80 : c));
	} while (v);
}

struct uploader_fill {
	struct uploader	*u;
	uint64_t	 last;
	size_t		 count;
};

static int
uploader_add_record(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct uploader_fill *f = arg;
	uint8_t tmp[JOURNAL_REC_MAX + 16];
	size_t n = outcome_append_seq(tmp, rec, len, seq);
	buf_appendc(&f->u->batch, 0x1a);	/* field 3, length-delimited */
	uploader_varint(&f->u->batch, n);
	buf_append(&f->u->batch, tmp, n);
	f->last = seq;
	f->count++;
	return 0;
}

static void
uploader_pump(struct uploader *u)
{
	if (u->stream == NULL || u->stopping)
		return;
	while (u->ninflight < UPLOADER_INFLIGHT && u->sent_upto < journal_last_seq(u->j)) {
		/* Flow control: do not queue more than the connection takes. */
		if (grpc_call_pending(u->stream) > (4u << 20))
			return;
		struct uploader_fill f = { u, 0, 0 };
		buf_reset(&u->batch);
		buf_appendc(&u->batch, 0x0a);	/* field 1: host_id */
		uploader_varint(&u->batch, strlen(u->host_id));
		buf_appends(&u->batch, u->host_id);
		size_t head = u->batch.len;
		if (journal_read(u->j, u->sent_upto, (size_t)u->cfg->control_batch, uploader_add_record, &f) < 0) {
			log_warn("event=journal_error op=read");
			return;
		}
		uint64_t jd, jc;
		journal_take_counters(u->j, &jd, &jc);
		u->pending_dropped += jd + outcome_take_dropped(u->shared_dropped);
		u->pending_corrupt += jc;
		if (f.count == 0) {
			/* Everything up to last_seq was skipped as corrupt or dropped. */
			u->sent_upto = journal_last_seq(u->j);
			if (u->pending_dropped == 0 && u->pending_corrupt == 0)
				return;
			f.last = u->sent_upto;
		}
		(void)head;
		buf_appendc(&u->batch, 0x10);	/* field 2: seq */
		uploader_varint(&u->batch, f.last);
		if (u->pending_dropped) {
			buf_appendc(&u->batch, 0x20);
			uploader_varint(&u->batch, u->pending_dropped);
		}
		if (u->pending_corrupt) {
			buf_appendc(&u->batch, 0x28);
			uploader_varint(&u->batch, u->pending_corrupt);
		}
		int i = u->ninflight++;
		u->inflight_seq[i] = f.last;
		u->inflight_dropped[i] = u->pending_dropped;
		u->inflight_corrupt[i] = u->pending_corrupt;
		u->pending_dropped = u->pending_corrupt = 0;
		u->sent_upto = f.last;
		grpc_call_send(u->stream, (const uint8_t *)u->batch.data, u->batch.len);
	}
}

static void
uploader_ack_cb(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct uploader *u = arg;
	Mxfleet__V1__Ack *a = mxfleet__v1__ack__unpack(NULL, len, msg);
	if (a == NULL)
		return;
	if (u->ninflight > 0 && a->seq == u->inflight_seq[0]) {
		if (journal_ack(u->j, a->seq) < 0)
			log_warn("event=journal_error op=ack seq=%" PRIu64, a->seq);
		memmove(u->inflight_seq, u->inflight_seq + 1, (size_t)(u->ninflight - 1) * sizeof(uint64_t));
		memmove(u->inflight_dropped, u->inflight_dropped + 1, (size_t)(u->ninflight - 1) * sizeof(uint64_t));
		memmove(u->inflight_corrupt, u->inflight_corrupt + 1, (size_t)(u->ninflight - 1) * sizeof(uint64_t));
		u->ninflight--;
		log_debug("event=batch_acked seq=%" PRIu64 " duplicate=%d", a->seq, a->duplicate);
	} else
		log_warnx("event=unexpected_ack seq=%" PRIu64, a->seq);
	mxfleet__v1__ack__free_unpacked(a, NULL);
	uploader_pump(u);
}

static void
uploader_schedule_retry(struct uploader *u)
{
	struct timeval tv = { UPLOADER_RETRY_MS / 1000, (UPLOADER_RETRY_MS % 1000) * 1000 };
	if (!u->stopping)
		evtimer_add(u->retry_ev, &tv);
}

static void
uploader_stream_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct uploader *u = arg;
	if (c != u->stream)
		return;
	u->stream = NULL;
	/* Counters carried by unacknowledged batches go out again. */
	for (int i = 0; i < u->ninflight; i++) {
		u->pending_dropped += u->inflight_dropped[i];
		u->pending_corrupt += u->inflight_corrupt[i];
	}
	u->ninflight = 0;
	u->sent_upto = journal_acked(u->j);
	if (status != GRPC_OK || !u->stopping)
		log_warnx("event=stream_closed status=%s message=\"%s\" backlog=%" PRIu64,
		    grpc_status_name(status), message, journal_backlog(u->j));
	uploader_schedule_retry(u);
}

/* ---- configuration watch ---- */

static void
uploader_snapshot_cb(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct uploader *u = arg;
	Mxfleet__V1__ConfigSnapshot *s = mxfleet__v1__config_snapshot__unpack(NULL, len, msg);
	if (s == NULL) {
		log_warnx("event=bad_snapshot len=%zu", len);
		return;
	}
	uint64_t v = s->version;
	mxfleet__v1__config_snapshot__free_unpacked(s, NULL);
	if (v == u->config_version)
		return;
	char err[512];
	if (mxd_snapshot_store(u->cfg, msg, len, err, sizeof(err)) < 0) {
		log_error("event=snapshot_cache_failed error=\"%s\"", err);
		return;
	}
	u->config_version = v;
	log_info("event=config_snapshot version=%" PRIu64 " action=reload", v);
	kill(getppid(), SIGHUP);
}

static void
uploader_watch_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct uploader *u = arg;
	if (c != u->watch)
		return;
	u->watch = NULL;
	if (!u->stopping)
		log_warnx("event=watch_closed status=%s message=\"%s\"", grpc_status_name(status), message);
	uploader_schedule_retry(u);
}

/* ---- register, heartbeat ---- */

static void
uploader_ignore_msg(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
}

static void
uploader_unary_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	if (status != GRPC_OK)
		log_warnx("event=control_call_failed path=%s status=%s message=\"%s\"",
		    grpc_call_path(c), grpc_status_name(status), message);
}

static void
uploader_unary(struct uploader *u, const char *path, const ProtobufCMessage *m)
{
	struct grpc_call *c = grpc_client_call(u->cl, path, 30000, uploader_ignore_msg,
	    uploader_unary_closed, u);
	if (c == NULL)
		return;
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = xmalloc(n ? n : 1);
	protobuf_c_message_pack(m, buf);
	grpc_call_send(c, buf, n);
	grpc_call_close_send(c);
	free(buf);
}

static void
uploader_heartbeat(struct uploader *u)
{
	Mxfleet__V1__HeartbeatRequest hb = MXFLEET__V1__HEARTBEAT_REQUEST__INIT;
	hb.host_id = u->host_id;
	hb.version = (char *)MXFLEET_VERSION;
	hb.journal_backlog = journal_backlog(u->j);
	hb.config_version = u->config_version;
	hb.cert_not_after_unix = u->cert_not_after;
	uploader_unary(u, "/mxfleet.v1.Fleet/Heartbeat", &hb.base);
}

static void
uploader_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uploader *u = arg;
	if (grpc_client_ready(u->cl))
		uploader_heartbeat(u);
}

static void
uploader_open_calls(struct uploader *u)
{
	if (!grpc_client_ready(u->cl) || u->stopping)
		return;
	if (u->stream == NULL) {
		u->stream = grpc_client_call(u->cl, "/mxfleet.v1.Collector/Stream", 0, uploader_ack_cb,
		    uploader_stream_closed, u);
		u->sent_upto = journal_acked(u->j);
		u->ninflight = 0;
	}
	if (u->watch == NULL) {
		u->watch = grpc_client_call(u->cl, "/mxfleet.v1.Fleet/WatchConfig", 0,
		    uploader_snapshot_cb, uploader_watch_closed, u);
		if (u->watch) {
			Mxfleet__V1__WatchRequest w = MXFLEET__V1__WATCH_REQUEST__INIT;
			w.host_id = u->host_id;
			w.have_version = u->config_version;
			uint8_t buf[512];
			size_t n = mxfleet__v1__watch_request__pack(&w, buf);
			grpc_call_send(u->watch, buf, n);
			grpc_call_close_send(u->watch);
		}
	}
	uploader_pump(u);
}

static void
uploader_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	uploader_open_calls(arg);
}

static void
uploader_state_cb(struct grpc_client *cl, int ready, void *arg)
{
	struct uploader *u = arg;
	if (!ready) {
		log_warnx("event=controld_unreachable error=\"%s\" backlog=%" PRIu64,
		    grpc_client_error(cl), journal_backlog(u->j));
		return;
	}
	log_info("event=controld_connected host_id=%s backlog=%" PRIu64, u->host_id,
	    journal_backlog(u->j));
	Mxfleet__V1__RegisterRequest r = MXFLEET__V1__REGISTER_REQUEST__INIT;
	r.host_id = u->host_id;
	r.version = (char *)MXFLEET_VERSION;
	r.n_listen = u->cfg->nlisten;
	r.listen = u->cfg->listen;
	uploader_unary(u, "/mxfleet.v1.Fleet/Register", &r.base);
	uploader_heartbeat(u);
	uploader_open_calls(u);
}

static void
uploader_term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uploader *u = arg;
	u->stopping = 1;
	uploader_read_cb(u->fd, EV_READ, u);
	uploader_commit(u);
	event_base_loopexit(u->base, NULL);
}

void
uploader_main(struct mxd_config *cfg, int fd, uint64_t *shared_dropped,
    const struct uploader_creds *creds)
{
	struct uploader u;
	char err[600], dir[4096];

	memset(&u, 0, sizeof(u));
	u.cfg = cfg;
	u.fd = fd;
	u.shared_dropped = shared_dropped;
	buf_init(&u.batch);
	signal(SIGPIPE, SIG_IGN);

	snprintf(dir, sizeof(dir), "%s/journal", cfg->spool_dir);
	struct journal_opts jo = { dir, (uint64_t)cfg->control_journal_mb << 20, 0 };
	if (journal_open(&u.j, &jo, err, sizeof(err)) < 0)
		fatalx("event=journal_error error=\"%s\"", err);
	u.config_version = mxd_snapshot_version(cfg);

	u.cert_not_after = (int64_t)creds->not_after;
	snprintf(u.host_id, sizeof(u.host_id), "%s", cfg->control_host_id ? cfg->control_host_id :
	    creds->cn);
	u.tls = creds->tls;
	u.base = event_base_new();
	u.read_ev = event_new(u.base, fd, EV_READ | EV_PERSIST, uploader_read_cb, &u);
	u.commit_ev = evtimer_new(u.base, uploader_commit_cb, &u);
	u.retry_ev = evtimer_new(u.base, uploader_retry_cb, &u);
	u.hb_ev = event_new(u.base, -1, EV_PERSIST, uploader_hb_cb, &u);
	u.term_ev = evsignal_new(u.base, SIGTERM, uploader_term_cb, &u);
	event_add(u.read_ev, NULL);
	event_add(u.term_ev, NULL);
	struct timeval hb = { cfg->control_heartbeat, 0 };
	event_add(u.hb_ev, &hb);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	struct grpc_client_opts o;
	memset(&o, 0, sizeof(o));
	o.host = cfg->control_host;
	o.port = cfg->control_port;
	o.authority = cfg->control_authority;
	o.tls = u.tls;
	o.reconnect = 1;
	o.on_state = uploader_state_cb;
	o.arg = &u;
	log_info("event=uploader_started host_id=%s controld=%s:%d journal=%s backlog=%" PRIu64,
	    u.host_id, cfg->control_host, cfg->control_port, dir, journal_backlog(u.j));
	grpc_client_new(&u.cl, u.base, &o);
	event_base_dispatch(u.base);

	grpc_client_free(u.cl);
	event_free(u.read_ev);
	event_free(u.commit_ev);
	event_free(u.retry_ev);
	event_free(u.hb_ev);
	event_free(u.term_ev);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(u.base, EVLOOP_NONBLOCK);
	event_base_free(u.base);
	log_info("event=uploader_stopped backlog=%" PRIu64, journal_backlog(u.j));
	journal_close(u.j);
	buf_free(&u.batch);
	exit(0);
}
