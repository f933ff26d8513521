/* controld: the Collector service (collector.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "collector.h"
#include "controld.h"
#include "timeutil.h"
#include "xmalloc.h"

/* A start time picks the day partition an outcome goes to, and the day is
 * created on demand: only days near now may be, or one host could make a
 * table for every day from 1970 to 9999. */
static int
collector_times_check(const Mxfleet__V1__OutcomeBatch *b, int64_t now_ms, char *msg, size_t msgsz)
{
	int64_t lo = now_ms - C->cfg.outcome_max_age_days * CONTROLD_MS_PER_DAY;
	int64_t hi = now_ms + C->cfg.outcome_max_future * 1000;
	for (size_t i = 0; i < b->n_outcomes; i++) {
		const Mxfleet__V1__Outcome *o = b->outcomes[i];
		if (o->start_unix_ms >= lo && o->start_unix_ms <= hi)
			continue;
		snprintf(msg, msgsz, "outcome seq %" PRIu64 ": start time %" PRId64 " ms is outside"
		    " now - %lld days .. now + %lld s (outcome_max_age_days, outcome_max_future)",
		    o->seq, o->start_unix_ms, C->cfg.outcome_max_age_days, C->cfg.outcome_max_future);
		return -1;
	}
	return 0;
}

/* ---- Collector ---- */

static void
collector_free_batch(void *p)
{
	mxfleet__v1__outcome_batch__free_unpacked(p, NULL);
}

static int
collector_ingest_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_ingest(db, j->req, &j->n1, &j->n2);
}

/* Stored means counted, whether or not the caller is still there to hear
 * it; the Ack goes out only after COMMIT, and after the acks of the
 * stream's earlier batches (mxd acknowledges its journal up to the seq). */
static void
collector_ingest_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__OutcomeBatch *b = j->req;
	if (j->q.rc != DB_OK) {
		C->m.ingest_errors++;
		call_fail_db(c, j);
		return;
	}
	C->m.batches++;
	C->m.outcomes_stored += j->n1;
	C->m.outcomes_duplicate += j->n2;
	if (c == NULL)
		return;
	Mxfleet__V1__Ack ack = MXFLEET__V1__ACK__INIT;
	ack.seq = b->seq;
	ack.duplicate = j->n1 == 0 && j->n2 > 0;
	call_send_msg(c, &ack.base);
	if (strcmp(j->path, "/mxfleet.v1.Collector/Export") == 0)
		grpc_call_finish(c, GRPC_OK, NULL);
}

/* Two batches of one stream that share a seq: the later (a resend) waits
 * for the earlier, and is then acknowledged as a duplicate. */
static int
collector_overlap(const struct call_job *a, const struct call_job *b)
{
	return a->key_lo <= b->key_hi && b->key_lo <= a->key_hi;
}

static void
collector_keys(struct call_job *j, const Mxfleet__V1__OutcomeBatch *b)
{
	j->key_lo = j->key_hi = b->seq;
	for (size_t i = 0; i < b->n_outcomes; i++) {
		uint64_t s = b->outcomes[i]->seq;
		if (s < j->key_lo)
			j->key_lo = s;
		if (s > j->key_hi)
			j->key_hi = s;
	}
	j->conflicts = collector_overlap;
}

void
collector_batch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__OutcomeBatch, mxfleet__v1__outcome_batch, c, msg, len);
	C->m.calls++;
	char why[300];
	if (call_check_host(c, req->host_id) < 0)
		goto out;
	if (collector_times_check(req, timeutil_wall_ms(), why, sizeof(why)) < 0) {
		log_warnx("event=batch_refused host=%s seq=%" PRIu64 " reason=\"%s\"", req->host_id,
		    req->seq, why);
		call_refuse(c, GRPC_INVALID_ARGUMENT, why);
		goto out;
	}
	struct call_job *j = call_job_new(c, collector_ingest_work, collector_ingest_answer, req,
	    collector_free_batch);
	collector_keys(j, req);
	call_submit(c, j);
	return;
out:
	mxfleet__v1__outcome_batch__free_unpacked(req, NULL);
}

/* Stream: the client has sent its last batch; the call ends once their
 * answers are out. */
void
collector_half_close(struct grpc_call *c, void *arg)
{
	struct rpc *r = grpc_call_get_data(c);
	if (r && r->head)
		r->half_closed = 1;
	else
		grpc_call_finish(c, GRPC_OK, NULL);
}
