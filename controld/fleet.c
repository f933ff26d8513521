/* controld: the Fleet service (fleet.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "db_identity.h"
#include "db_queue.h"
#include "fleet.h"
#include "xmalloc.h"

/* ---- Fleet ---- */

static void
fleet_free_register(void *p)
{
	mxfleet__v1__register_request__free_unpacked(p, NULL);
}

static void
fleet_free_heartbeat(void *p)
{
	mxfleet__v1__heartbeat_request__free_unpacked(p, NULL);
}

static void
fleet_free_watch(void *p)
{
	mxfleet__v1__watch_request__free_unpacked(p, NULL);
}

/* The identity a host reports (DNS): stored after the host's own row. */
static int
fleet_identity_store(struct db *db, const char *host_id, const Mxfleet__V1__HostIdentity *id)
{
	int changed = 0;
	unsigned retired = 0;
	if (id == NULL)
		return DB_OK;	/* an mxd from before HostIdentity: what is stored stays */
	int rc = db_identity_store(db, host_id, id, &changed, &retired);
	if (rc == DB_OK && (changed || retired))
		log_info("event=host_identity_stored host=%s hostname=%s addresses=%zu"
		    " certificates=%zu changed=%d keys_retired=%u", host_id, id->hostname,
		    id->n_addresses, id->n_certs, changed, retired);
	return rc;
}

/* A hostile or broken mxd must not put junk into the DNS tables: the
 * whole call is refused, naming the field. */
static int
fleet_identity_refused(struct grpc_call *c, const char *host_id,
    const Mxfleet__V1__HostIdentity *id)
{
	char why[300];
	if (id == NULL || db_identity_check(id, why, sizeof(why)) == 0)
		return 0;
	/* why names a field, never a value: nothing of the host's to quote. */
	log_warnx("event=host_identity_refused host=%s path=%s reason=\"%s\"", host_id,
	    grpc_call_path(c), why);
	grpc_call_finish(c, GRPC_INVALID_ARGUMENT, why);
	return 1;
}

static int
fleet_register_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__RegisterRequest *req = j->req;
	int rc = db_host_register(db, req, &j->n1);
	return rc != DB_OK ? rc : fleet_identity_store(db, req->host_id, req->identity);
}

static void
fleet_register_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__RegisterRequest *req = j->req;
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	log_info("event=host_registered host=%s version=%s", req->host_id, req->version);
	Mxfleet__V1__RegisterResponse r = MXFLEET__V1__REGISTER_RESPONSE__INIT;
	r.config_version = j->n1;
	call_reply(c, &r.base);
}

void
fleet_register(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RegisterRequest, mxfleet__v1__register_request, c, msg, len);
	C->m.calls++;
	if (call_check_host(c, req->host_id) < 0 || fleet_identity_refused(c, req->host_id, req->identity)) {
		mxfleet__v1__register_request__free_unpacked(req, NULL);
		return;
	}
	call_submit_new(c, fleet_register_work, fleet_register_answer, req, fleet_free_register);
}

/* The heartbeat's write: last_seen, and what it says of the host's outcome
 * upload (stored for mailctl hosts; n1, n2: by how much the refused and
 * quarantined counts grew, for /metrics). */
static int
fleet_heartbeat_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__HeartbeatRequest *req = j->req;
	uint64_t v;
	int rc = db_host_heartbeat(db, req, &v);
	if (rc == DB_OK)
		rc = fleet_identity_store(db, req->host_id, req->identity);
	if (rc != DB_OK)
		return rc;
	return db_host_upload_health(db, req->host_id, req->batches_refused,
	    req->outcomes_quarantined, &j->n1, &j->n2);
}

static void
fleet_heartbeat_done(struct dbq_job *qj)
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
fleet_heartbeat_queue(Mxfleet__V1__HeartbeatRequest *req)
{
	for (struct call_job *p = C->hb_pending; p; p = p->next) {
		const Mxfleet__V1__HeartbeatRequest *o = p->req;
		if (strcmp(o->host_id, req->host_id) == 0) {
			C->m.heartbeats_unwritten++;
			mxfleet__v1__heartbeat_request__free_unpacked(req, NULL);
			return;
		}
	}
	struct call_job *j = call_bg_job_new(fleet_heartbeat_work, fleet_heartbeat_done);
	j->req = req;
	j->req_free = fleet_free_heartbeat;
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
void
fleet_heartbeat(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__HeartbeatRequest, mxfleet__v1__heartbeat_request, c, msg, len);
	C->m.calls++;
	if (call_check_host(c, req->host_id) < 0 || fleet_identity_refused(c, req->host_id, req->identity)) {
		mxfleet__v1__heartbeat_request__free_unpacked(req, NULL);
		return;
	}
	Mxfleet__V1__HeartbeatResponse r = MXFLEET__V1__HEARTBEAT_RESPONSE__INIT;
	r.config_version = C->config_version;
	call_reply(c, &r.base);
	fleet_heartbeat_queue(req);
}

static int
fleet_watch_send(struct watcher *w, const Mxfleet__V1__ConfigSnapshot *snap)
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
	if (call_send_msg(w->call, &snap->base) < 0)
		return -1;	/* the call is ending: on_close unregisters it */
	w->sent_version = snap->version;
	log_info("event=config_pushed host=%s version=%" PRIu64, w->host_id, snap->version);
	return 0;
}

/* A snapshot read from the database: kept when newer than the one held,
 * and pushed to every watcher. Takes snap. */
void
fleet_snapshot_take(Mxfleet__V1__ConfigSnapshot *snap)
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
		fleet_watch_send(w, snap);
}

void
fleet_watch_remove(struct watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		C->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
}

static void
fleet_watch_end(void *w)
{
	fleet_watch_remove(w);
}

/* The current snapshot at once, even when the host has it: the first
 * message tells it the watch is live. */
static void
fleet_watch_start(struct grpc_call *c, const char *host_id)
{
	struct rpc *r = call_rpc(c);
	struct watcher *w = xcalloc(1, sizeof(*w));
	w->call = c;
	snprintf(w->host_id, sizeof(w->host_id), "%s", host_id);
	w->next = C->watchers;
	if (C->watchers)
		C->watchers->prev = w;
	C->watchers = w;
	r->owner = w;
	r->on_end = fleet_watch_end;
	fleet_watch_send(w, C->snap);
}

static int
fleet_snapshot_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_config_snapshot(db, &j->snap);
}

static void
fleet_watch_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__WatchRequest *req = j->req;
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	fleet_snapshot_take(j->snap);
	j->snap = NULL;
	if (c)
		fleet_watch_start(c, req->host_id);
}

/* From the snapshot controld holds; only before it has read one does the
 * call wait for the database. */
void
fleet_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__WatchRequest, mxfleet__v1__watch_request, c, msg, len);
	C->m.calls++;
	struct rpc *r = grpc_call_get_data(c);
	if (r && (r->on_end || r->head))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "one WatchRequest per call");
	else if (call_check_host(c, req->host_id) < 0)
		;
	else if (C->snap)
		fleet_watch_start(c, req->host_id);
	else {
		call_submit_new(c, fleet_snapshot_work, fleet_watch_answer, req, fleet_free_watch);
		return;
	}
	mxfleet__v1__watch_request__free_unpacked(req, NULL);
}

/* Other replicas' changes: the version, and the snapshot when it moved. */
static int
fleet_poll_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	uint64_t v;
	int rc = db_config_version(db, &v);
	if (rc != DB_OK || v == j->n1)
		return rc;
	return db_config_snapshot(db, &j->snap);
}

static void
fleet_poll_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	C->poll_busy = 0;
	if (j->q.rc != DB_OK)
		C->m.db_errors++;
	else if (j->snap) {
		fleet_snapshot_take(j->snap);
		j->snap = NULL;
	}
	call_job_free(j);
}

void
fleet_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	if (C->poll_busy)
		return;
	struct call_job *j = call_bg_job_new(fleet_poll_work, fleet_poll_done);
	j->n1 = C->snap ? C->snap->version : UINT64_MAX;
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	C->poll_busy = 1;
}
