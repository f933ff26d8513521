/* controld: the fleet's hosts in PostgreSQL: register, heartbeat, list (db.h). */
#include "db.h"
#include "db_dns.h"
#include "db_identity.h"
#include "db_internal.h"
#include "db_rollover.h"
#include "db_tlsrpt_sender.h"
#include "db_rptrecv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"


/* ---- hosts ---- */


struct host_arg {
	const void	*req;
	uint64_t	 config_version;
};

static int
db_register_op(struct db *db, void *arg)
{
	struct host_arg *a = arg;
	const Mxfleet__V1__RegisterRequest *req = a->req;
	struct db_params p = { 0 };
	struct buf listen;
	PGresult *res = NULL;
	int rc;

	buf_init(&listen);
	for (size_t i = 0; i < req->n_listen; i++) {
		if (i > 0)
			buf_appendc(&listen, '\n');
		buf_appends(&listen, req->listen[i]);
	}
	dbp_str(&p, req->host_id);
	dbp_str(&p, req->version);
	dbp_str(&p, listen.len > 0 ? listen.data : "");
	rc = db_query(db, "register",
	    "INSERT INTO hosts AS h (host_id, version, listen, registered_at)"
	    " VALUES ($1, $2, string_to_array($3, E'\\n'), now())"
	    " ON CONFLICT (host_id) DO UPDATE SET version = EXCLUDED.version,"
	    " listen = EXCLUDED.listen, registered_at = now(),"
	    " last_seen = greatest(h.last_seen, now())"
	    " RETURNING (SELECT version FROM config_state)", &p, &res);
	buf_free(&listen);
	if (rc != DB_OK)
		return rc;
	a->config_version = db_get_u64(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

int
host_id_check(struct db *db, const char *what, const char *host_id)
{
	if (host_id == NULL || host_id[0] == '\0' || !db_utf8_valid(host_id)) {
		db_seterr(db, "%s: host_id empty or not UTF-8", what);
		return DB_EINVAL;
	}
	return DB_OK;
}

int
db_host_register(struct db *db, const Mxfleet__V1__RegisterRequest *req,
    uint64_t *config_version)
{
	struct host_arg a = { .req = req };
	int rc;

	db->err[0] = '\0';
	if ((rc = host_id_check(db, "register", req->host_id)) != DB_OK)
		return rc;
	if (!db_utf8_valid(req->version)) {
		db_seterr(db, "register: version is not UTF-8");
		return DB_EINVAL;
	}
	for (size_t i = 0; i < req->n_listen; i++) {
		if (strchr(req->listen[i], '\n') != NULL || !db_utf8_valid(req->listen[i])) {
			db_seterr(db, "register: listen address %zu has a newline or"
			    " is not UTF-8", i);
			return DB_EINVAL;
		}
	}
	rc = db_call(db, db_register_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && config_version != NULL)
		*config_version = a.config_version;
	return rc;
}

static int
db_heartbeat_op(struct db *db, void *arg)
{
	struct host_arg *a = arg;
	const Mxfleet__V1__HeartbeatRequest *req = a->req;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, req->host_id);
	dbp_str(&p, req->version);
	dbp_u64(&p, req->journal_backlog);
	dbp_u64(&p, req->config_version);
	if (req->cert_not_after_unix != 0)
		dbp_i64(&p, req->cert_not_after_unix);
	else
		dbp_null(&p);
	dbp_u64(&p, req->queue_messages);
	dbp_i64(&p, req->queue_oldest_unix);
	/* An empty version or a zero expiry means "not told": keep what we had.
	 * The queue counts are the scheduler's last STAT (0: empty). */
	if ((rc = db_query(db, "heartbeat",
	    "INSERT INTO hosts AS h (host_id, version, journal_backlog, config_version,"
	    " cert_not_after, queue_messages, queue_oldest)"
	    " VALUES ($1, $2, $3, $4, to_timestamp($5::bigint), $6,"
	    " CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint) END)"
	    " ON CONFLICT (host_id) DO UPDATE SET"
	    " version = coalesce(nullif(EXCLUDED.version, ''), h.version),"
	    " journal_backlog = EXCLUDED.journal_backlog,"
	    " config_version = EXCLUDED.config_version,"
	    " cert_not_after = coalesce(EXCLUDED.cert_not_after, h.cert_not_after),"
	    " queue_messages = EXCLUDED.queue_messages, queue_oldest = EXCLUDED.queue_oldest,"
	    " last_seen = greatest(h.last_seen, now())"
	    " RETURNING (SELECT version FROM config_state)", &p, &res)) != DB_OK)
		return rc;
	a->config_version = db_get_u64(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

int
db_host_heartbeat(struct db *db, const Mxfleet__V1__HeartbeatRequest *req,
    uint64_t *config_version)
{
	struct host_arg a = { .req = req };
	int rc;

	db->err[0] = '\0';
	if ((rc = host_id_check(db, "heartbeat", req->host_id)) != DB_OK)
		return rc;
	if (!db_utf8_valid(req->version) || req->journal_backlog > INT64_MAX ||
	    req->config_version > INT64_MAX || req->cert_not_after_unix < 0 ||
	    req->cert_not_after_unix > DB_MAX_UNIX_S || req->queue_messages > INT64_MAX ||
	    req->queue_oldest_unix < 0 || req->queue_oldest_unix > DB_MAX_UNIX_S) {
		db_seterr(db, "heartbeat: host %.100s: version not UTF-8 or a number"
		    " out of range", req->host_id);
		return DB_EINVAL;
	}
	rc = db_call(db, db_heartbeat_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && config_version != NULL)
		*config_version = a.config_version;
	return rc;
}

static int
db_hosts_list_op(struct db *db, void *arg)
{
	Mxfleet__V1__HostList **out = arg, *l;
	PGresult *res = NULL;
	int rc, n;

	/* One read of hosts (and of config_state: how far behind each is). */
	if ((rc = db_query(db, "hosts",
	    "SELECT h.host_id, h.version, floor(extract(epoch FROM h.last_seen))::bigint,"
	    " h.journal_backlog, h.config_version,"
	    " coalesce(floor(extract(epoch FROM h.cert_not_after))::bigint, 0),"
	    " h.outcomes, h.dropped, h.corrupt, h.batches_refused, h.outcomes_quarantined,"
	    " h.queue_messages, coalesce(floor(extract(epoch FROM h.queue_oldest))::bigint, 0),"
	    " c.version, floor(extract(epoch FROM c.changed_at))::bigint"
	    " FROM hosts h CROSS JOIN config_state c ORDER BY h.host_id", NULL, &res)) != DB_OK)
		return rc;
	n = PQntuples(res);
	l = xmalloc(sizeof(*l));
	mxfleet__v1__host_list__init(l);
	l->n_hosts = (size_t)n;
	l->hosts = xcalloc((size_t)n, sizeof(*l->hosts));
	for (int r = 0; r < n; r++) {
		Mxfleet__V1__HostInfo *h = xmalloc(sizeof(*h));

		mxfleet__v1__host_info__init(h);
		h->host_id = db_get_str(res, r, 0);
		h->version = db_get_str(res, r, 1);
		h->last_seen_unix = db_get_i64(res, r, 2);
		h->journal_backlog = db_get_u64(res, r, 3);
		h->config_version = db_get_u64(res, r, 4);
		h->cert_not_after_unix = db_get_i64(res, r, 5);
		h->outcomes = db_get_u64(res, r, 6);
		h->dropped = db_get_u64(res, r, 7);
		h->corrupt = db_get_u64(res, r, 8);
		h->batches_refused = db_get_u64(res, r, 9);
		h->outcomes_quarantined = db_get_u64(res, r, 10);
		h->queue_messages = db_get_u64(res, r, 11);
		h->queue_oldest_unix = db_get_i64(res, r, 12);
		h->config_version_latest = db_get_u64(res, r, 13);
		h->config_latest_unix = db_get_i64(res, r, 14);
		l->hosts[r] = h;
	}
	PQclear(res);
	*out = l;
	return DB_OK;
}

int
db_hosts_list(struct db *db, Mxfleet__V1__HostList **out)
{
	*out = NULL;
	return db_call(db, db_hosts_list_op, out, DB_REPEAT_ALWAYS);
}

/* Strings of the messages built here are all allocated, but be safe with
 * a field left at protobuf-c's shared empty string. */

void
db_host_list_free(Mxfleet__V1__HostList *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_hosts; i++) {
		db_str_free(l->hosts[i]->host_id);
		db_str_free(l->hosts[i]->version);
		db_identity_free(l->hosts[i]->identity);
		free(l->hosts[i]);
	}
	free(l->hosts);
	free(l);
}
