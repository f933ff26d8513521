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
 * never waits for any of this.
 *
 * Refused batches. Batches are cut by bytes (control.batch_max_bytes) as well
 * as by count, so they stay under controld's max_message. If controld still
 * refuses one as too large or invalid (RESOURCE_EXHAUSTED, INVALID_ARGUMENT),
 * resending it as it is would fail forever and hold back the whole journal.
 * So the uploader logs event=batch_refused and goes careful: one batch in
 * flight, half as many records each time one is refused, until it is past
 * every record that was in flight. A record refused alone, twice, is copied
 * to <spool_dir>/journal-quarantine/<seq>.pb (event=outcome_quarantined) and
 * acknowledged in the journal, and the rest flows on. Both counts go to
 * controld in every heartbeat (mailctl hosts: REFUSED, QUARANTINED). */
#include "mxd.h"
#include "mxd_identity.h"
#include "mxd_keyswitch.h"
#include "buf.h"
#include "journal.h"
#include "upload_batch.h"
#include "ctlservers.h"
#include "grpc.h"
#include "log.h"
#include "outcome.h"
#include "queue_remote.h"
#include "rptupload.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	Mxfleet__V1__HostIdentity *identity;	/* the master's newest; NULL: none */
	struct mxd_next_cert_watch next_cert;	/* identity->next_cert_ready kept current */
	struct event		*read_ev, *commit_ev, *hb_ev, *retry_ev, *term_ev, *identity_ev;
	int			 commit_pending;
	/* the stream */
	struct grpc_call	*stream;
	uint64_t		 sent_upto;	/* highest seq handed to the stream */
	uint64_t		 inflight_seq[UPLOADER_INFLIGHT];
	uint64_t		 inflight_dropped[UPLOADER_INFLIGHT];
	uint64_t		 inflight_corrupt[UPLOADER_INFLIGHT];
	uint64_t		 inflight_first[UPLOADER_INFLIGHT];
	size_t			 inflight_count[UPLOADER_INFLIGHT];
	size_t			 inflight_bytes[UPLOADER_INFLIGHT];
	int			 ninflight;
	/* refused batches (see the top of this file) */
	size_t			 careful_records;	/* 0: not careful */
	uint64_t		 careful_upto;		/* careful until this seq is acked */
	uint64_t		 suspect_seq;		/* refused alone once */
	uint64_t		 batches_refused;	/* since start */
	uint64_t		 quarantined;		/* files in quarantine_dir */
	char			 quarantine_dir[4096];
	uint64_t		 pending_dropped, pending_corrupt;
	/* config watch */
	struct grpc_call	*watch;
	uint64_t		 config_version;
	struct upload_batch	 batch;
	int			 stopping;
	struct rptupload	*rpt;		/* received TLS reports (rptupload.h) */
	struct queue_remote	*qr;		/* queue control (queue_remote.h) */
	/* control.servers: which controld, and when to move on (ctlservers.h) */
	struct ctlservers	 servers;
	struct event		*ack_ev;	/* the oldest batch in flight is overdue */
	size_t			 faults;	/* moves for a fault since the last ack */
};

static void uploader_pump(struct uploader *u);
static void uploader_open_calls(struct uploader *u);
static void uploader_ack_watch(struct uploader *u);
static void uploader_call_fault(struct uploader *u, const char *path, int status,
    const char *message);

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

static int
uploader_add_record(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct upload_batch *ub = arg;
	/* Not taken: it starts the next batch. */
	if (!upload_batch_add(ub, seq, rec, len))
		return 1;
	return upload_batch_full(ub);
}

static void
uploader_pump(struct uploader *u)
{
	if (u->stream == NULL || u->stopping)
		return;
	int max_inflight = u->careful_records ? 1 : UPLOADER_INFLIGHT;
	size_t max_records = u->careful_records ? u->careful_records : (size_t)u->cfg->control_batch;
	/* grpc_call_send may close the stream at once (uploader_stream_closed). */
	while (u->stream != NULL && u->ninflight < max_inflight &&
	    u->sent_upto < journal_last_seq(u->j)) {
		/* Flow control: do not queue more than the connection takes. */
		if (grpc_call_pending(u->stream) > (4u << 20))
			return;
		struct upload_batch *ub = &u->batch;
		upload_batch_begin(ub, u->host_id, (size_t)u->cfg->control_batch_bytes, max_records);
		if (journal_read(u->j, u->sent_upto, max_records, uploader_add_record, ub) < 0) {
			log_warn("event=journal_error op=read");
			return;
		}
		uint64_t jd, jc, last = ub->last;
		journal_take_counters(u->j, &jd, &jc);
		u->pending_dropped += jd + outcome_take_dropped(u->shared_dropped);
		u->pending_corrupt += jc;
		if (ub->count == 0) {
			/* Everything up to last_seq was skipped as corrupt or dropped. */
			u->sent_upto = journal_last_seq(u->j);
			if (u->pending_dropped == 0 && u->pending_corrupt == 0)
				return;
			last = u->sent_upto;
		}
		upload_batch_end(ub, last, u->pending_dropped, u->pending_corrupt);
		int i = u->ninflight++;
		u->inflight_seq[i] = last;
		u->inflight_first[i] = ub->first;
		u->inflight_count[i] = ub->count;
		u->inflight_bytes[i] = ub->b.len;
		u->inflight_dropped[i] = u->pending_dropped;
		u->inflight_corrupt[i] = u->pending_corrupt;
		u->pending_dropped = u->pending_corrupt = 0;
		u->sent_upto = last;
		grpc_call_send(u->stream, (const uint8_t *)ub->b.data, ub->b.len);
		uploader_ack_watch(u);
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
		memmove(u->inflight_first, u->inflight_first + 1, (size_t)(u->ninflight - 1) * sizeof(uint64_t));
		memmove(u->inflight_count, u->inflight_count + 1, (size_t)(u->ninflight - 1) * sizeof(size_t));
		memmove(u->inflight_bytes, u->inflight_bytes + 1, (size_t)(u->ninflight - 1) * sizeof(size_t));
		u->ninflight--;
		u->faults = 0;
		evtimer_del(u->ack_ev);
		uploader_ack_watch(u);
		log_debug("event=batch_acked seq=%" PRIu64 " duplicate=%d", a->seq, a->duplicate);
		if (u->careful_records && a->seq >= u->careful_upto) {
			u->careful_records = 0;
			u->suspect_seq = 0;
			log_info("event=upload_resumed seq=%" PRIu64 " batches_refused=%" PRIu64
			    " quarantined=%" PRIu64, a->seq, u->batches_refused, u->quarantined);
		}
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

/* ---- refused batches ---- */

static int
uploader_count_quarantine(const char *dir, uint64_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL)
		return -1;
	*n = 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] != '.' && l > 3 && strcmp(e->d_name + l - 3, ".pb") == 0)
			(*n)++;
	}
	closedir(d);
	return 0;
}

struct uploader_copy {
	uint64_t	 seq;
	uint8_t		*data;
	size_t		 len;
};

static int
uploader_copy_record(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct uploader_copy *cp = arg;
	if (seq == cp->seq) {
		cp->data = xmalloc(len ? len : 1);
		memcpy(cp->data, rec, len);
		cp->len = len;
	}
	return 1;
}

static int
uploader_write_file(int dirfd, const char *name, const uint8_t *data, size_t len)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, len);
	if (w != (ssize_t)len || fsync(fd) < 0) {
		if (w >= 0 && w != (ssize_t)len)
			errno = EIO;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) < 0 || fsync(dirfd) < 0)
		return -1;
	return 0;
}

/* The record seq, refused alone twice: set it aside in a file, durably,
 * then let the journal forget it. If it cannot be written the record stays
 * in the journal (and upload stays stuck, loudly) rather than be lost. */
static void
uploader_quarantine(struct uploader *u, uint64_t seq)
{
	struct uploader_copy cp = { seq, NULL, 0 };
	char name[64];
	if (journal_read(u->j, seq - 1, 1, uploader_copy_record, &cp) < 0 || cp.data == NULL) {
		log_error("event=quarantine_failed seq=%" PRIu64 " error=\"cannot read the record\"",
		    seq);
		free(cp.data);
		return;
	}
	snprintf(name, sizeof(name), "%" PRIu64 ".pb", seq);
	if (mkdir(u->quarantine_dir, 0700) < 0 && errno != EEXIST) {
		log_error("event=quarantine_failed seq=%" PRIu64 " dir=%s error=\"%s\"", seq,
		    u->quarantine_dir, strerror(errno));
		free(cp.data);
		return;
	}
	int dirfd = open(u->quarantine_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || uploader_write_file(dirfd, name, cp.data, cp.len) < 0) {
		log_error("event=quarantine_failed seq=%" PRIu64 " dir=%s error=\"%s\"", seq,
		    u->quarantine_dir, strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		free(cp.data);
		return;
	}
	close(dirfd);
	free(cp.data);
	if (journal_ack(u->j, seq) < 0) {
		log_warn("event=journal_error op=ack seq=%" PRIu64, seq);
		return;
	}
	u->quarantined++;
	u->suspect_seq = 0;
	log_error("event=outcome_quarantined seq=%" PRIu64 " bytes=%zu file=%s/%s quarantined=%" PRIu64,
	    seq, cp.len, u->quarantine_dir, name, u->quarantined);
}

static int
uploader_is_refusal(int status)
{
	return status == GRPC_RESOURCE_EXHAUSTED || status == GRPC_INVALID_ARGUMENT;
}

/* controld refused a batch in flight (which one, when several are, it does
 * not say). Returns the seq of a record to quarantine, or 0 and the next
 * batches are smaller. */
static uint64_t
uploader_refused(struct uploader *u, int status, const char *message)
{
	char q[LOG_QUOTE_SIZE(200)];
	uint64_t poison = 0;
	size_t n = u->inflight_count[0];
	u->batches_refused++;
	if (u->ninflight == 1 && n == 1) {
		/* Alone: refused once may be a fluke of controld's; twice is the
		 * record. */
		if (u->suspect_seq == u->inflight_first[0])
			poison = u->suspect_seq;
		u->suspect_seq = u->inflight_first[0];
	}
	u->careful_records = n > 1 ? n / 2 : 1;
	if (u->careful_upto < u->sent_upto)
		u->careful_upto = u->sent_upto;
	log_warnx("event=batch_refused status=%s message=%s first_seq=%" PRIu64 " last_seq=%" PRIu64
	    " records=%zu bytes=%zu in_flight=%d action=%s batches_refused=%" PRIu64,
	    grpc_status_name(status), log_quote(q, sizeof(q), message, strlen(message), 200),
	    u->inflight_first[0], u->inflight_seq[0], n, u->inflight_bytes[0], u->ninflight,
	    poison ? "quarantine" : n > 1 || u->ninflight > 1 ? "split" : "retry",
	    u->batches_refused);
	return poison;
}

static void
uploader_stream_closed(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct uploader *u = arg;
	if (c != u->stream)
		return;
	u->stream = NULL;
	uint64_t poison = uploader_is_refusal(status) && u->ninflight > 0 ?
	    uploader_refused(u, status, message) : 0;
	/* Counters carried by unacknowledged batches go out again. */
	for (int i = 0; i < u->ninflight; i++) {
		u->pending_dropped += u->inflight_dropped[i];
		u->pending_corrupt += u->inflight_corrupt[i];
	}
	u->ninflight = 0;
	evtimer_del(u->ack_ev);
	if (poison)
		uploader_quarantine(u, poison);
	u->sent_upto = journal_acked(u->j);
	if (status != GRPC_OK || !u->stopping)
		log_warnx("event=stream_closed status=%s message=\"%s\" backlog=%" PRIu64,
		    grpc_status_name(status), message, journal_backlog(u->j));
	uploader_call_fault(u, grpc_call_path(c), status, message);
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
	uploader_call_fault(u, grpc_call_path(c), status, message);
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
	uploader_call_fault(arg, grpc_call_path(c), status, message);
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
	hb.batches_refused = u->batches_refused;
	/* Counted afresh: an operator deletes the files once dealt with. */
	uint64_t n;
	if (uploader_count_quarantine(u->quarantine_dir, &n) == 0)
		u->quarantined = n;
	else if (errno == ENOENT)
		u->quarantined = 0;
	hb.outcomes_quarantined = u->quarantined;
	/* An operator puts the next key's certificate in place at any time. */
	mxd_keyswitch_watch(&u->next_cert, u->identity, time(NULL));
	hb.identity = u->identity;
	queue_remote_stat(u->qr, &hb.queue_messages, &hb.queue_oldest_unix);
	uploader_unary(u, "/mxfleet.v1.Fleet/Heartbeat", &hb.base);
}

static int
uploader_same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t na = protobuf_c_message_get_packed_size(a);
	if (na != protobuf_c_message_get_packed_size(b))
		return 0;
	uint8_t *pa = xmalloc(na ? na : 1), *pb = xmalloc(na ? na : 1);
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	int same = memcmp(pa, pb, na) == 0;
	free(pa);
	free(pb);
	return same;
}

/* A reload's identity from the master: controld hears of a change at once. */
static void
uploader_identity_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uploader *u = arg;
	Mxfleet__V1__HostIdentity *id = mxd_identity_recv(fd);
	if (id == NULL)
		return;
	int same = u->identity && uploader_same_msg(&u->identity->base, &id->base);
	if (u->identity)
		mxfleet__v1__host_identity__free_unpacked(u->identity, NULL);
	u->identity = id;
	if (same)
		return;	/* a reload that changed nothing of it */
	log_info("event=host_identity_changed certificates=%zu", id->n_certs);
	if (grpc_client_ready(u->cl))
		uploader_heartbeat(u);
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
	rptupload_kick(u->rpt);
	queue_remote_kick(u->qr);
	uploader_pump(u);
}

static void
uploader_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	uploader_open_calls(arg);
}

/* ---- failover between controld replicas (ctlservers.h) ---- */

/* The connection to the current server failed or was dropped: the next
 * attempt (after the client's backoff) goes to the next server. */
static void
uploader_server_failed(struct uploader *u, const char *why)
{
	char line[1024];
	if (ctlservers_failed(&u->servers, why, line, sizeof(line)))
		grpc_client_set_target(u->cl, ctlservers_host(&u->servers),
		    ctlservers_port(&u->servers), ctlservers_authority(&u->servers));
	if (line[0])
		log_warnx("%s backlog=%" PRIu64, line, journal_backlog(u->j));
}

/* A call ended badly on a connection still up. With other servers to try,
 * move on: but only once per server in a row without an ack, so a fault
 * all replicas share (their database) does not make mxd reconnect in a
 * loop; it then retries the stream where it is, as with one server. */
static void
uploader_call_fault(struct uploader *u, const char *path, int status, const char *message)
{
	char why[300];
	if (u->stopping || u->servers.n < 2 || !ctlservers_status_is_fault(status) ||
	    !grpc_client_ready(u->cl) || u->faults >= u->servers.n)
		return;
	u->faults++;
	snprintf(why, sizeof(why), "%s: %s %s", path, grpc_status_name(status), message);
	grpc_client_drop(u->cl, why);
}

/* Batches in flight: the oldest must be acknowledged within
 * control.ack_timeout, or the server is taken for gone. */
static void
uploader_ack_watch(struct uploader *u)
{
	struct timeval tv = { u->cfg->control_ack_timeout, 0 };
	if (u->ninflight > 0 && u->servers.n > 1 && !evtimer_pending(u->ack_ev, NULL))
		evtimer_add(u->ack_ev, &tv);
}

static void
uploader_ack_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uploader *u = arg;
	char why[200];
	if (u->ninflight == 0 || u->stream == NULL)
		return;
	snprintf(why, sizeof(why), "no acknowledgement of seq %" PRIu64 " in %d s",
	    u->inflight_seq[0], u->cfg->control_ack_timeout);
	uploader_call_fault(u, "/mxfleet.v1.Collector/Stream", GRPC_DEADLINE_EXCEEDED, why);
}

static void
uploader_state_cb(struct grpc_client *cl, int ready, void *arg)
{
	struct uploader *u = arg;
	if (!ready) {
		uploader_server_failed(u, grpc_client_error(cl));
		return;
	}
	ctlservers_connected(&u->servers);
	log_info("event=controld_connected server=%s host_id=%s backlog=%" PRIu64,
	    ctlservers_addr(&u->servers), u->host_id, journal_backlog(u->j));
	Mxfleet__V1__RegisterRequest r = MXFLEET__V1__REGISTER_REQUEST__INIT;
	r.host_id = u->host_id;
	r.version = (char *)MXFLEET_VERSION;
	r.n_listen = u->cfg->nlisten;
	r.listen = u->cfg->listen;
	r.identity = u->identity;
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
	upload_batch_init(&u.batch);
	signal(SIGPIPE, SIG_IGN);

	snprintf(dir, sizeof(dir), "%s/journal", cfg->spool_dir);
	struct journal_opts jo = { dir, (uint64_t)cfg->control_journal_mb << 20, 0 };
	if (journal_open(&u.j, &jo, err, sizeof(err)) < 0)
		fatalx("event=journal_error error=\"%s\"", err);
	u.config_version = mxd_snapshot_version(cfg);
	snprintf(u.quarantine_dir, sizeof(u.quarantine_dir), "%s/journal-quarantine", cfg->spool_dir);
	if (uploader_count_quarantine(u.quarantine_dir, &u.quarantined) == 0 && u.quarantined > 0)
		log_warnx("event=outcomes_in_quarantine dir=%s records=%" PRIu64, u.quarantine_dir,
		    u.quarantined);

	u.cert_not_after = (int64_t)creds->not_after;
	snprintf(u.host_id, sizeof(u.host_id), "%s", cfg->control_host_id ? cfg->control_host_id :
	    creds->cn);
	u.tls = creds->tls;
	if (creds->identity_len > 0)
		u.identity = mxfleet__v1__host_identity__unpack(NULL, creds->identity_len,
		    creds->identity);
	u.base = event_base_new();
	u.read_ev = event_new(u.base, fd, EV_READ | EV_PERSIST, uploader_read_cb, &u);
	u.commit_ev = evtimer_new(u.base, uploader_commit_cb, &u);
	u.retry_ev = evtimer_new(u.base, uploader_retry_cb, &u);
	u.hb_ev = event_new(u.base, -1, EV_PERSIST, uploader_hb_cb, &u);
	u.term_ev = evsignal_new(u.base, SIGTERM, uploader_term_cb, &u);
	event_add(u.read_ev, NULL);
	event_add(u.term_ev, NULL);
	if (creds->identity_fd > 0) {
		u.identity_ev = event_new(u.base, creds->identity_fd, EV_READ | EV_PERSIST,
		    uploader_identity_cb, &u);
		event_add(u.identity_ev, NULL);
	}
	struct timeval hb = { cfg->control_heartbeat, 0 };
	event_add(u.hb_ev, &hb);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	struct grpc_client_opts o;
	memset(&o, 0, sizeof(o));
	ctlservers_init(&u.servers, cfg->control_servers, cfg->ncontrol_servers,
	    cfg->control_authority);
	u.ack_ev = evtimer_new(u.base, uploader_ack_timeout_cb, &u);
	o.host = ctlservers_host(&u.servers);
	o.port = ctlservers_port(&u.servers);
	o.authority = ctlservers_authority(&u.servers);
	o.tls = u.tls;
	o.max_message = MXD_SNAPSHOT_MAX_BYTES;	/* what we take: snapshots */
	o.reconnect = 1;
	o.on_state = uploader_state_cb;
	o.arg = &u;
	log_info("event=uploader_started host_id=%s controld=%s servers=%zu journal=%s backlog=%"
	    PRIu64, u.host_id, ctlservers_addr(&u.servers), u.servers.n, dir, journal_backlog(u.j));
	grpc_client_new(&u.cl, u.base, &o);
	u.rpt = rptupload_new(u.base, u.cl, cfg->spool_dir, u.host_id);
	u.qr = queue_remote_new(u.base, u.cl, cfg->spool_dir, u.host_id);
	event_base_dispatch(u.base);

	rptupload_free(u.rpt);
	grpc_client_free(u.cl);
	queue_remote_free(u.qr);	/* after the client: its watch closes in there */
	event_free(u.read_ev);
	event_free(u.commit_ev);
	event_free(u.retry_ev);
	event_free(u.ack_ev);
	event_free(u.hb_ev);
	event_free(u.term_ev);
	if (u.identity_ev)
		event_free(u.identity_ev);
	if (u.identity)
		mxfleet__v1__host_identity__free_unpacked(u.identity, NULL);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(u.base, EVLOOP_NONBLOCK);
	event_base_free(u.base);
	log_info("event=uploader_stopped backlog=%" PRIu64, journal_backlog(u.j));
	journal_close(u.j);
	upload_batch_free(&u.batch);
	exit(0);
}
