/* controld: the control daemon. gRPC over HTTP/2 with mutual TLS for the
 * fleet (Collector, Fleet) and for mailctl (Admin, also on a local unix
 * socket), all state in PostgreSQL, /metrics and /healthz over plain HTTP.
 *
 *   controld -c FILE            run
 *   controld -c FILE migrate    apply schema migrations and exit
 *   controld -n -c FILE         check the configuration and exit */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf.h"
#include "db.h"
#include "dnsname.h"
#include "grpc.h"
#include "log.h"
#include "timeutil.h"
#include "netaddr.h"
#include "nexthop.h"
#include "pki.h"
#include "mxfleet.pb-c.h"
#include "rcpt_addr.h"
#include "xmalloc.h"

#define CONTROLD_WATCH_POLL_MS	2000	/* other replicas' config changes */
#define CONTROLD_SPARE_FDS	64	/* listeners, PostgreSQL, HTTP, logs */
#define CONTROLD_WATCH_MAX_PENDING	(16 << 20)
#define CONTROLD_MS_PER_DAY		INT64_C(86400000)

struct controld_config {
	char	*listen;
	char	*socket;
	char	*http;
	char	*database;
	char	*schema_dir;
	char	*cert, *key, *ca;
	enum log_level log_level;
	long long max_message;
	int	 allow_multiple_ca;
	long long revocation_interval;	/* seconds between reloads of revoked serials */
	/* what one peer may hold (docs/control-plane.md, "controld") */
	long long handshake_timeout, idle_timeout;	/* seconds */
	long long max_connections, max_connections_per_ip, max_streams;
	long long watch_max_pending;	/* bytes queued for one watcher */
	/* outcome start times accepted: now - days .. now + seconds */
	long long outcome_max_age_days, outcome_max_future;
	long long statement_timeout;	/* seconds, every database statement */
	long long http_max_request;	/* bytes: request line and headers */
	long long http_timeout;		/* seconds */
};

struct watcher {
	struct watcher		*next, *prev;
	struct grpc_call	*call;
	char			 host_id[256];
	uint64_t		 sent_version;
	int			 dropped;	/* aborted: not reading */
};

struct metrics {
	uint64_t	batches, outcomes_stored, outcomes_duplicate, ingest_errors;
	uint64_t	refused_identity, db_errors, calls, watchers_dropped;
	uint64_t	host_batches_refused, host_outcomes_quarantined;	/* as hosts report */
};

struct controld {
	struct controld_config	 cfg;
	struct event_base	*base;
	struct db		*db;
	struct grpc_server	*tls_srv;
	struct grpc_server	*local_srv;
	struct evhttp		*http;
	SSL_CTX			*tls;
	struct watcher		*watchers;
	uint64_t		 config_version;
	struct event		*poll_ev;
	struct metrics		 m;
	struct pki_revoked	*revoked;	/* read by the TLS verify callback */
	struct event		*revoke_ev;
};

static struct controld *C;

/* ---- helpers ---- */

/* Connect, with the configured statement timeout. */
static int
controld_db_open(struct db **out, char *err, size_t errsz)
{
	if (db_open(out, C->cfg.database, err, errsz) != DB_OK)
		return -1;
	if (db_set_statement_timeout(*out, (int)C->cfg.statement_timeout * 1000) != DB_OK) {
		snprintf(err, errsz, "%s", db_errmsg(*out));
		db_close(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The database handle, opening it if controld started while PostgreSQL was
 * down. NULL (and the call answered UNAVAILABLE) when it still is. */
static struct db *
need_db(struct grpc_call *c)
{
	char err[512];
	if (C->db == NULL && controld_db_open(&C->db, err, sizeof(err)) < 0) {
		C->db = NULL;
		C->m.db_errors++;
		if (c) {
			char msg[600];
			snprintf(msg, sizeof(msg), "database unavailable: %s", err);
			grpc_call_finish(c, GRPC_UNAVAILABLE, msg);
		}
		return NULL;
	}
	return C->db;
}

static int
reply_msg(struct grpc_call *c, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = xmalloc(n ? n : 1);
	protobuf_c_message_pack(msg, buf);
	int rc = grpc_call_send(c, buf, n);
	free(buf);
	return rc;
}

static void
reply_unary(struct grpc_call *c, const ProtobufCMessage *msg)
{
	reply_msg(c, msg);
	grpc_call_finish(c, GRPC_OK, NULL);
}

/* A failed database call, as the caller should read it: a refused request is
 * the caller's to fix, anything else is "try again later". */
static void
fail_db(struct grpc_call *c, int rc)
{
	static const struct { int rc; int status; } map[] = {
		{ DB_EINVAL, GRPC_INVALID_ARGUMENT }, { DB_EEXIST, GRPC_ALREADY_EXISTS },
		{ DB_ENOTFOUND, GRPC_NOT_FOUND },
	};
	int status = GRPC_UNAVAILABLE;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].rc == rc)
			status = map[i].status;
	const char *e = db_errmsg(C->db);
	char msg[600], q[LOG_QUOTE_SIZE(300)];
	if (status == GRPC_UNAVAILABLE) {
		C->m.db_errors++;
		log_warnx("event=db_error path=%s error=%s", grpc_call_path(c),
		    log_quote(q, sizeof(q), e, strlen(e), 300));
		snprintf(msg, sizeof(msg), "database: %s", e);
	} else
		snprintf(msg, sizeof(msg), "%s", e);
	grpc_call_finish(c, status, msg);
}

/* A host may speak only for itself: the certificate's CN is its host_id. */
static int
check_host(struct grpc_call *c, const char *host_id)
{
	if (host_id == NULL || host_id[0] == '\0') {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "host_id is required");
		return -1;
	}
	if (strcmp(grpc_call_peer_unit(c), "host") != 0 || strcmp(grpc_call_peer(c), host_id) != 0) {
		C->m.refused_identity++;
		log_warnx("event=identity_refused peer=%s unit=%s claimed=%s path=%s",
		    grpc_call_peer(c), grpc_call_peer_unit(c), host_id, grpc_call_path(c));
		char msg[600];
		snprintf(msg, sizeof(msg), "certificate %s may not speak for host %s",
		    grpc_call_peer(c), host_id);
		grpc_call_finish(c, GRPC_PERMISSION_DENIED, msg);
		return -1;
	}
	return 0;
}

static int
check_admin(struct grpc_call *c)
{
	if (grpc_call_peer_is_local(c) || strcmp(grpc_call_peer_unit(c), "admin") == 0)
		return 0;
	C->m.refused_identity++;
	grpc_call_finish(c, GRPC_PERMISSION_DENIED, "the Admin service needs an admin certificate");
	return -1;
}

#define UNPACK(type, fn, c, msg, len)						\
	type *req = fn##__unpack(NULL, len, msg);				\
	if (req == NULL) {							\
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "cannot parse request");	\
		return;								\
	}

/* ---- Collector ---- */

/* A start time picks the day partition an outcome goes to, and the day is
 * created on demand: only days near now may be, or one host could make a
 * table for every day from 1970 to 9999. */
static int
outcome_times_check(const Mxfleet__V1__OutcomeBatch *b, int64_t now_ms, char *msg, size_t msgsz)
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

static void
collector_batch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__OutcomeBatch, mxfleet__v1__outcome_batch, c, msg, len);
	C->m.calls++;
	char why[300];
	if (check_host(c, req->host_id) < 0)
		goto out;
	if (outcome_times_check(req, timeutil_wall_ms(), why, sizeof(why)) < 0) {
		log_warnx("event=batch_refused host=%s seq=%" PRIu64 " reason=\"%s\"", req->host_id,
		    req->seq, why);
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, why);
		goto out;
	}
	if (need_db(c) == NULL)
		goto out;
	uint64_t stored = 0, dup = 0;
	if ((rc = db_ingest(C->db, req, &stored, &dup)) != DB_OK) {
		C->m.ingest_errors++;
		fail_db(c, rc);
		goto out;
	}
	C->m.batches++;
	C->m.outcomes_stored += stored;
	C->m.outcomes_duplicate += dup;
	Mxfleet__V1__Ack ack = MXFLEET__V1__ACK__INIT;
	ack.seq = req->seq;
	ack.duplicate = stored == 0 && dup > 0;
	reply_msg(c, &ack.base);
	if (strcmp(grpc_call_path(c), "/mxfleet.v1.Collector/Export") == 0)
		grpc_call_finish(c, GRPC_OK, NULL);
out:
	mxfleet__v1__outcome_batch__free_unpacked(req, NULL);
}

static void
finish_ok(struct grpc_call *c, void *arg)
{
	grpc_call_finish(c, GRPC_OK, NULL);
}

/* ---- Fleet ---- */

static void
fleet_register(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__RegisterRequest, mxfleet__v1__register_request, c, msg, len);
	C->m.calls++;
	uint64_t v = 0;
	if (check_host(c, req->host_id) == 0 && need_db(c) != NULL) {
		if ((rc = db_host_register(C->db, req, &v)) != DB_OK)
			fail_db(c, rc);
		else {
			log_info("event=host_registered host=%s version=%s", req->host_id, req->version);
			Mxfleet__V1__RegisterResponse r = MXFLEET__V1__REGISTER_RESPONSE__INIT;
			r.config_version = v;
			reply_unary(c, &r.base);
		}
	}
	mxfleet__v1__register_request__free_unpacked(req, NULL);
}

/* What a heartbeat says of the host's outcome upload: stored for mailctl
 * hosts, and what grew counted on /metrics. A failure here is logged only:
 * the heartbeat itself went through. */
static void
heartbeat_upload_health(const Mxfleet__V1__HeartbeatRequest *req)
{
	uint64_t refused = 0, quarantined = 0;
	if (db_host_upload_health(C->db, req->host_id, req->batches_refused,
	    req->outcomes_quarantined, &refused, &quarantined) != DB_OK) {
		C->m.db_errors++;
		log_warnx("event=db_error op=upload_health host=%s error=\"%s\"", req->host_id,
		    db_errmsg(C->db));
		return;
	}
	C->m.host_batches_refused += refused;
	C->m.host_outcomes_quarantined += quarantined;
	if (refused || quarantined)
		log_warnx("event=host_upload_refused host=%s batches_refused=%" PRIu64
		    " outcomes_quarantined=%" PRIu64, req->host_id, req->batches_refused,
		    req->outcomes_quarantined);
}

static void
fleet_heartbeat(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__HeartbeatRequest, mxfleet__v1__heartbeat_request, c, msg, len);
	C->m.calls++;
	uint64_t v = 0;
	if (check_host(c, req->host_id) == 0 && need_db(c) != NULL) {
		if ((rc = db_host_heartbeat(C->db, req, &v)) != DB_OK)
			fail_db(c, rc);
		else {
			heartbeat_upload_health(req);
			Mxfleet__V1__HeartbeatResponse r = MXFLEET__V1__HEARTBEAT_RESPONSE__INIT;
			r.config_version = v;
			reply_unary(c, &r.base);
		}
	}
	mxfleet__v1__heartbeat_request__free_unpacked(req, NULL);
}

static int
watch_send(struct watcher *w, const Mxfleet__V1__ConfigSnapshot *snap)
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
	if (reply_msg(w->call, &snap->base) < 0)
		return -1;	/* the call is ending: on_close unregisters it */
	w->sent_version = snap->version;
	log_info("event=config_pushed host=%s version=%" PRIu64, w->host_id, snap->version);
	return 0;
}

static void
watch_broadcast(void)
{
	int rc;
	Mxfleet__V1__ConfigSnapshot *snap;
	if (C->watchers == NULL || need_db(NULL) == NULL)
		return;
	if ((rc = db_config_snapshot(C->db, &snap)) != DB_OK) {
		C->m.db_errors++;
		return;
	}
	C->config_version = snap->version;
	for (struct watcher *w = C->watchers; w; w = w->next)
		watch_send(w, snap);
	db_config_snapshot_free(snap);
}

static void
watch_remove(struct watcher *w)
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
fleet_watch(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__WatchRequest, mxfleet__v1__watch_request, c, msg, len);
	C->m.calls++;
	if (grpc_call_get_data(c) != NULL) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "one WatchRequest per call");
		goto out;
	}
	if (check_host(c, req->host_id) < 0 || need_db(c) == NULL)
		goto out;
	struct watcher *w = xcalloc(1, sizeof(*w));
	w->call = c;
	w->sent_version = req->have_version;
	snprintf(w->host_id, sizeof(w->host_id), "%s", req->host_id);
	w->next = C->watchers;
	if (C->watchers)
		C->watchers->prev = w;
	C->watchers = w;
	grpc_call_set_data(c, w);
	Mxfleet__V1__ConfigSnapshot *snap;
	if ((rc = db_config_snapshot(C->db, &snap)) != DB_OK) {
		grpc_call_set_data(c, NULL);
		watch_remove(w);
		fail_db(c, rc);
		goto out;
	}
	/* The current snapshot at once, even when the host has it: the first
	 * message tells it the watch is live. */
	w->sent_version = 0;
	watch_send(w, snap);
	db_config_snapshot_free(snap);
out:
	mxfleet__v1__watch_request__free_unpacked(req, NULL);
}

/* However the call ended (a second request refused, a reset, a deadline,
 * the connection lost): no configuration goes to it any more. */
static void
fleet_watch_end(struct grpc_call *c, void *arg)
{
	struct watcher *w = grpc_call_get_data(c);
	if (w) {
		grpc_call_set_data(c, NULL);
		watch_remove(w);
	}
}

static void
watch_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;
	if (C->watchers && need_db(NULL) && db_config_version(C->db, &v) == DB_OK &&
	    v != C->config_version)
		watch_broadcast();
}

/* ---- Admin ---- */

static void
admin_list_hosts(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	Mxfleet__V1__HostList *l;
	C->m.calls++;
	if (check_admin(c) < 0 || need_db(c) == NULL)
		return;
	if ((rc = db_hosts_list(C->db, &l)) != DB_OK ||
	    (rc = db_hosts_upload_health(C->db, l)) != DB_OK) {
		db_host_list_free(l);
		fail_db(c, rc);
		return;
	}
	reply_unary(c, &l->base);
	db_host_list_free(l);
}

static void
admin_snapshot_reply(struct grpc_call *c)
{
	int rc;
	Mxfleet__V1__ConfigSnapshot *snap;
	if ((rc = db_config_snapshot(C->db, &snap)) != DB_OK) {
		fail_db(c, rc);
		return;
	}
	reply_unary(c, &snap->base);
	db_config_snapshot_free(snap);
	watch_broadcast();
}

/* The port a next hop ends with, when it ends with ":DIGITS"; -1 if not. */
static long
nexthop_trailing_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 9)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return strtol(colon + 1, NULL, 10);
}

/* Would mxd take this domain? A domain name (one trailing dot allowed, and
 * removed: "example.test." is stored as "example.test") and a next hop it
 * can parse, whose host is an IP address or a host name. 0, or -1 with what
 * is wrong in msg. */
static int
domain_refusal(Mxfleet__V1__DomainConfig *d, char *msg, size_t msgsz)
{
	struct mxd_nexthop nh;
	char why[300];
	unsigned char ip[16];
	size_t len = strlen(d->name);
	long port;

	if (dnsname_check(d->name, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "name: %s", why);
		return -1;
	}
	if (d->name[len - 1] == '.')
		d->name[len - 1] = '\0';
	if (mxd_nexthop_parse(d->next_hop, &nh, 0, why, sizeof(why)) < 0) {
		port = strchr(d->next_hop, ':') ? nexthop_trailing_port(d->next_hop) : -1;
		if (port == 0 || port > 65535)
			snprintf(msg, msgsz, "next_hop: port %ld is out of range (1-65535); %s",
			    port, why);
		else
			snprintf(msg, msgsz, "next_hop: %s", why);
		return -1;
	}
	if (!nh.is_unix && inet_pton(AF_INET, nh.host, ip) != 1 &&
	    inet_pton(AF_INET6, nh.host, ip) != 1 && dnsname_check(nh.host, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "next_hop host: %s", why);
		return -1;
	}
	return 0;
}

static void
admin_add_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__DomainConfig, mxfleet__v1__domain_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		char text[400];
		if (req->name[0] == '\0' || req->next_hop[0] == '\0')
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "name and next_hop are required");
		else if (domain_refusal(req, text, sizeof(text)) < 0) {
			/* mxd would ignore it: refuse it here, where the operator sees why. */
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
		} else if ((rc = db_domain_add(C->db, req, NULL)) != DB_OK)
			fail_db(c, rc);
		else {
			log_info("event=domain_added name=%s next_hop=%s", req->name, req->next_hop);
			admin_snapshot_reply(c);
		}
	}
	mxfleet__v1__domain_config__free_unpacked(req, NULL);
}

static void
admin_remove_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		if ((rc = db_domain_remove(C->db, req->name, NULL)) != DB_OK)
			fail_db(c, rc);
		else {
			log_info("event=domain_removed name=%s", req->name);
			admin_snapshot_reply(c);
		}
	}
	mxfleet__v1__domain_name__free_unpacked(req, NULL);
}

static void
admin_list_domains(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	Mxfleet__V1__DomainList *l;
	C->m.calls++;
	if (check_admin(c) < 0 || need_db(c) == NULL)
		return;
	if ((rc = db_domain_list(C->db, &l)) != DB_OK) {
		fail_db(c, rc);
		return;
	}
	reply_unary(c, &l->base);
	db_domain_list_free(l);
}

static void
admin_add_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		struct mxd_nexthop nh;
		char why[300], text[400];
		if (req->transport[0] == '\0')
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "transport is required");
		else if (mxd_nexthop_parse(req->transport, &nh, 1, why, sizeof(why)) < 0) {
			snprintf(text, sizeof(text), "transport: %s", why);
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
		} else if ((rc = db_route_add(C->db, req, NULL)) != DB_OK)
			fail_db(c, rc);
		else
			admin_snapshot_reply(c);
	}
	mxfleet__v1__route_config__free_unpacked(req, NULL);
}

static void
admin_remove_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		if ((rc = db_route_remove(C->db, req, NULL)) != DB_OK)
			fail_db(c, rc);
		else
			admin_snapshot_reply(c);
	}
	mxfleet__v1__route_config__free_unpacked(req, NULL);
}

static void
admin_list_routes(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	Mxfleet__V1__RouteList *l;
	C->m.calls++;
	if (check_admin(c) < 0 || need_db(c) == NULL)
		return;
	if ((rc = db_route_list(C->db, &l)) != DB_OK) {
		fail_db(c, rc);
		return;
	}
	reply_unary(c, &l->base);
	db_route_list_free(l);
}

static void
admin_set_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__TlsPolicyConfig, mxfleet__v1__tls_policy_config, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0) {
		if (req->domain[0] == '\0' || !db_policy_mode_ok(req->mode))
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (none, may, "
			    "encrypt, dane, dane-only, verify, secure) are required");
		else if (need_db(c) == NULL)
			;
		else if ((rc = db_policy_set(C->db, req, NULL)) != DB_OK && rc != DB_EEXIST)
			fail_db(c, rc);	/* DB_EEXIST: that mode already: nothing to change */
		else {
			log_info("event=policy_set domain=%s mode=%s", req->domain, req->mode);
			admin_snapshot_reply(c);
		}
	}
	mxfleet__v1__tls_policy_config__free_unpacked(req, NULL);
}

static void
admin_remove_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		if ((rc = db_policy_remove(C->db, req->name, NULL)) != DB_OK)
			fail_db(c, rc);
		else
			admin_snapshot_reply(c);
	}
	mxfleet__v1__domain_name__free_unpacked(req, NULL);
}

static void
admin_list_policies(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	Mxfleet__V1__PolicyList *l;
	C->m.calls++;
	if (check_admin(c) < 0 || need_db(c) == NULL)
		return;
	if ((rc = db_policy_list(C->db, &l)) != DB_OK) {
		fail_db(c, rc);
		return;
	}
	reply_unary(c, &l->base);
	db_policy_list_free(l);
}

static void
admin_summarize(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__OutcomeQuery, mxfleet__v1__outcome_query, c, msg, len);
	C->m.calls++;
	Mxfleet__V1__OutcomeReport *r;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		if ((rc = db_outcome_summary(C->db, req, &r)) != DB_OK)
			fail_db(c, rc);
		else {
			reply_unary(c, &r->base);
			db_outcome_report_free(r);
		}
	}
	mxfleet__v1__outcome_query__free_unpacked(req, NULL);
}

/* ---- revocation (schema/006, mailctl pki revoke) ---- */

static int
revoke_refuse(SSL *ssl, void *arg)
{
	return pki_peer_refused(ssl, C->revoked);
}

/* Load the revoked serials; when the set changed, close the connections of
 * peers revoked since their handshake. New handshakes read the set through
 * pki_server_enforce's callback. On a database error the last set stays. */
static void
revoke_reload(void)
{
	char **serials;
	size_t n;
	if (C->revoked == NULL || need_db(NULL) == NULL)
		return;
	int rc = db_revoked_list(C->db, &serials, &n);
	if (rc != DB_OK) {
		const char *e = db_errmsg(C->db);
		char q[LOG_QUOTE_SIZE(300)];
		C->m.db_errors++;
		log_warnx("event=revocations_not_loaded error=%s kept=%zu",
		    log_quote(q, sizeof(q), e, strlen(e), 300), pki_revoked_count(C->revoked));
		return;
	}
	if (pki_revoked_take(C->revoked, serials, n)) {
		int closed = C->tls_srv ? grpc_server_close_peers(C->tls_srv, revoke_refuse, NULL,
		    "certificate revoked") : 0;
		log_info("event=revocations_loaded revoked=%zu connections_closed=%d", n, closed);
	}
}

static void
revoke_tick(evutil_socket_t fd, short what, void *arg)
{
	revoke_reload();
}

/* Whether a RevokeCertificate call may go ahead; if not, it is answered. */
static int
revoke_allowed(struct grpc_call *c, const Mxfleet__V1__RevokeRequest *req)
{
	if (check_admin(c) < 0)
		return 0;
	if (!pki_serial_ok(req->serial)) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "serial: upper-case hex, 1 to 40 digits, "
		    "as 'openssl x509 -serial' prints it");
		return 0;
	}
	return need_db(c) != NULL;
}

static void
admin_revoke_store(struct grpc_call *c, const Mxfleet__V1__RevokeRequest *req)
{
	int rc, newly = 0;
	char q[LOG_QUOTE_SIZE(100)];
	if ((rc = db_revoke(C->db, req->serial, req->name, req->not_after_unix, &newly)) != DB_OK) {
		fail_db(c, rc);
		return;
	}
	log_info("event=certificate_revoked serial=%s name=%s by=%s newly=%d", req->serial,
	    log_quote(q, sizeof(q), req->name, strlen(req->name), 100), grpc_call_peer(c), newly);
	/* This replica at once; the others at their next reload. */
	revoke_reload();
	Mxfleet__V1__RevokeReply r = MXFLEET__V1__REVOKE_REPLY__INIT;
	r.newly_revoked = newly;
	r.revoked_total = C->revoked ? (uint32_t)pki_revoked_count(C->revoked) : 0;
	r.reload_interval_seconds = (uint32_t)C->cfg.revocation_interval;
	reply_unary(c, &r.base);
}

static void
admin_revoke(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RevokeRequest, mxfleet__v1__revoke_request, c, msg, len);
	C->m.calls++;
	if (revoke_allowed(c, req))
		admin_revoke_store(c, req);
	mxfleet__v1__revoke_request__free_unpacked(req, NULL);
}

/* ---- Admin: recipient checks (backscatter; schema/007) ---- */

static void
admin_set_recipient_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (check_admin(c) < 0)
		;
	else if (req->domain[0] == '\0' || !db_recipient_mode_ok(req->mode))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (any, list or "
		    "verify) are required");
	else if (need_db(c) == NULL)
		;
	else if ((rc = db_recipient_check_set(C->db, req->domain, req->mode, NULL)) != DB_OK &&
	    rc != DB_EEXIST)
		fail_db(c, rc);	/* DB_EEXIST: that mode already: nothing to change */
	else {
		log_info("event=recipient_check_set domain=%s mode=%s", req->domain, req->mode);
		admin_snapshot_reply(c);
	}
	mxfleet__v1__domain_recipients__free_unpacked(req, NULL);
}

/* The request's addresses as local parts of its domain, or the call
 * finished with INVALID_ARGUMENT naming the first bad one. */
static char **
admin_recipient_locals(struct grpc_call *c, const Mxfleet__V1__DomainRecipients *req)
{
	char why[300], text[700];
	char **v;

	if (req->domain[0] == '\0' || req->n_local_parts == 0) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and addresses are required");
		return NULL;
	}
	v = xcalloc(req->n_local_parts, sizeof(*v));
	for (size_t i = 0; i < req->n_local_parts; i++) {
		v[i] = xmalloc(RCPT_ADDR_LOCAL_MAX + 1);
		if (rcpt_addr_local(req->local_parts[i], req->domain, v[i], RCPT_ADDR_LOCAL_MAX + 1,
		    why, sizeof(why)) < 0) {
			snprintf(text, sizeof(text), "%.300s: %s", req->local_parts[i], why);
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
			for (size_t j = 0; j <= i; j++)
				free(v[j]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void
admin_change_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, int add)
{
	int rc;
	char **locals;
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && (locals = admin_recipient_locals(c, req)) != NULL) {
		size_t n = req->n_local_parts;
		if (need_db(c) == NULL)
			;
		else if ((rc = (add ? db_recipients_add : db_recipients_remove)(C->db, req->domain,
		    locals, n, NULL)) != DB_OK && !(add && rc == DB_EEXIST))
			fail_db(c, rc);	/* add, DB_EEXIST: all listed already */
		else {
			log_info("event=recipients_%s domain=%s count=%zu", add ? "added" : "removed",
			    req->domain, n);
			admin_snapshot_reply(c);
		}
		for (size_t i = 0; i < n; i++)
			free(locals[i]);
		free(locals);
	}
	mxfleet__v1__domain_recipients__free_unpacked(req, NULL);
}

static void
admin_add_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 1);
}

static void
admin_remove_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 0);
}

static void
admin_list_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	int rc;
	Mxfleet__V1__DomainRecipients *r;
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (check_admin(c) == 0 && need_db(c) != NULL) {
		if ((rc = db_recipients_list(C->db, req->name, &r)) != DB_OK)
			fail_db(c, rc);
		else {
			reply_unary(c, &r->base);
			db_recipients_free(r);
		}
	}
	mxfleet__v1__domain_name__free_unpacked(req, NULL);
}

static const struct grpc_method controld_methods[] = {
	{ "/mxfleet.v1.Collector/Export", collector_batch, NULL, NULL },
	{ "/mxfleet.v1.Collector/Stream", collector_batch, finish_ok, NULL },
	{ "/mxfleet.v1.Fleet/Register", fleet_register, NULL, NULL },
	{ "/mxfleet.v1.Fleet/Heartbeat", fleet_heartbeat, NULL, NULL },
	{ "/mxfleet.v1.Fleet/WatchConfig", fleet_watch, NULL, fleet_watch_end },
	{ "/mxfleet.v1.Admin/ListHosts", admin_list_hosts, NULL, NULL },
	{ "/mxfleet.v1.Admin/AddDomain", admin_add_domain, NULL, NULL },
	{ "/mxfleet.v1.Admin/ListDomains", admin_list_domains, NULL, NULL },
	{ "/mxfleet.v1.Admin/RemoveDomain", admin_remove_domain, NULL, NULL },
	{ "/mxfleet.v1.Admin/AddRoute", admin_add_route, NULL, NULL },
	{ "/mxfleet.v1.Admin/ListRoutes", admin_list_routes, NULL, NULL },
	{ "/mxfleet.v1.Admin/RemoveRoute", admin_remove_route, NULL, NULL },
	{ "/mxfleet.v1.Admin/SetPolicy", admin_set_policy, NULL, NULL },
	{ "/mxfleet.v1.Admin/ListPolicies", admin_list_policies, NULL, NULL },
	{ "/mxfleet.v1.Admin/RemovePolicy", admin_remove_policy, NULL, NULL },
	{ "/mxfleet.v1.Admin/SummarizeOutcomes", admin_summarize, NULL, NULL },
	{ "/mxfleet.v1.Admin/RevokeCertificate", admin_revoke, NULL, NULL },
	{ "/mxfleet.v1.Admin/SetRecipientCheck", admin_set_recipient_check, NULL, NULL },
	{ "/mxfleet.v1.Admin/AddRecipients", admin_add_recipients, NULL, NULL },
	{ "/mxfleet.v1.Admin/RemoveRecipients", admin_remove_recipients, NULL, NULL },
	{ "/mxfleet.v1.Admin/ListRecipients", admin_list_recipients, NULL, NULL },
};

/* ---- HTTP: /metrics, /healthz ---- */

static void
http_metrics_connections(struct evbuffer *b)
{
	struct grpc_server_stats t = { 0 }, st;
	struct grpc_server *srv[] = { C->tls_srv, C->local_srv };
	for (size_t i = 0; i < sizeof(srv) / sizeof(srv[0]); i++) {
		if (srv[i] == NULL)
			continue;
		grpc_server_get_stats(srv[i], &st);
		t.connections += st.connections;
		t.refused += st.refused;
		t.handshake_timeouts += st.handshake_timeouts;
		t.idle_closed += st.idle_closed;
	}
	evbuffer_add_printf(b,
	    "# HELP controld_grpc_connections gRPC connections open (TLS and unix socket).\n"
	    "# TYPE controld_grpc_connections gauge\n"
	    "controld_grpc_connections %zu\n"
	    "# HELP controld_grpc_connections_refused_total Connections closed at accept: over max_connections or max_connections_per_ip.\n"
	    "# TYPE controld_grpc_connections_refused_total counter\n"
	    "controld_grpc_connections_refused_total %" PRIu64 "\n"
	    "# HELP controld_grpc_handshake_timeouts_total Connections closed: no HTTP/2 frame within handshake_timeout.\n"
	    "# TYPE controld_grpc_handshake_timeouts_total counter\n"
	    "controld_grpc_handshake_timeouts_total %" PRIu64 "\n"
	    "# HELP controld_grpc_idle_closed_total Connections closed: idle past idle_timeout, or a keepalive PING not answered.\n"
	    "# TYPE controld_grpc_idle_closed_total counter\n"
	    "controld_grpc_idle_closed_total %" PRIu64 "\n",
	    t.connections, t.refused, t.handshake_timeouts, t.idle_closed);
}

static void
http_metrics(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	int watchers = 0;
	for (struct watcher *w = C->watchers; w; w = w->next)
		watchers += !w->dropped;
	evbuffer_add_printf(b,
	    "# HELP controld_batches_total Outcome batches stored.\n"
	    "# TYPE controld_batches_total counter\n"
	    "controld_batches_total %" PRIu64 "\n"
	    "# HELP controld_outcomes_stored_total Outcomes stored for the first time.\n"
	    "# TYPE controld_outcomes_stored_total counter\n"
	    "controld_outcomes_stored_total %" PRIu64 "\n"
	    "# HELP controld_outcomes_duplicate_total Outcomes received again and not counted.\n"
	    "# TYPE controld_outcomes_duplicate_total counter\n"
	    "controld_outcomes_duplicate_total %" PRIu64 "\n"
	    "# HELP controld_ingest_errors_total Batches refused because the database failed.\n"
	    "# TYPE controld_ingest_errors_total counter\n"
	    "controld_ingest_errors_total %" PRIu64 "\n"
	    "# HELP controld_db_errors_total Database errors of any call.\n"
	    "# TYPE controld_db_errors_total counter\n"
	    "controld_db_errors_total %" PRIu64 "\n"
	    "# HELP controld_identity_refused_total Calls refused: certificate and claimed host differ.\n"
	    "# TYPE controld_identity_refused_total counter\n"
	    "controld_identity_refused_total %" PRIu64 "\n"
	    "# HELP controld_grpc_calls_total gRPC requests handled.\n"
	    "# TYPE controld_grpc_calls_total counter\n"
	    "controld_grpc_calls_total %" PRIu64 "\n"
	    "# HELP controld_host_batches_refused_total Outcome batches hosts report refused"
	    " (RESOURCE_EXHAUSTED, INVALID_ARGUMENT).\n"
	    "# TYPE controld_host_batches_refused_total counter\n"
	    "controld_host_batches_refused_total %" PRIu64 "\n"
	    "# HELP controld_host_outcomes_quarantined_total Outcome records hosts set aside"
	    " after a refusal.\n"
	    "# TYPE controld_host_outcomes_quarantined_total counter\n"
	    "controld_host_outcomes_quarantined_total %" PRIu64 "\n"
	    "# HELP controld_config_watchers Hosts watching the configuration.\n"
	    "# TYPE controld_config_watchers gauge\n"
	    "controld_config_watchers %d\n"
	    "# HELP controld_config_watchers_dropped_total Watchers dropped: over watch_max_pending, not reading.\n"
	    "# TYPE controld_config_watchers_dropped_total counter\n"
	    "controld_config_watchers_dropped_total %" PRIu64 "\n",
	    C->m.batches, C->m.outcomes_stored, C->m.outcomes_duplicate, C->m.ingest_errors,
	    C->m.db_errors, C->m.refused_identity, C->m.calls, C->m.host_batches_refused,
	    C->m.host_outcomes_quarantined, watchers, C->m.watchers_dropped);
	http_metrics_connections(b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
http_healthz(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	uint64_t v;
	int ok = need_db(NULL) != NULL && db_config_version(C->db, &v) == DB_OK;
	evbuffer_add_printf(b, ok ? "ok\n" : "database unavailable: %s\n",
	    C->db ? db_errmsg(C->db) : "not connected");
	evhttp_send_reply(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", b);
	evbuffer_free(b);
}

/* ---- configuration and main ---- */

static const char *const controld_keys[] = {
	"listen", "socket", "http", "database", "schema_dir", "tls", "log_level",
	"max_message", "handshake_timeout", "idle_timeout", "max_connections",
	"max_connections_per_ip", "max_streams", "watch_max_pending", "outcome_max_age_days",
	"outcome_max_future", "statement_timeout", "http_max_request", "http_timeout", NULL
};
static const char *const controld_tls_keys[] = {
	"cert", "key", "ca", "allow_multiple_ca", "revocation_interval", NULL
};

static int
controld_str(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	if (r == 1)
		*out = xstrdup(s);
	return r;
}

static void controld_config_free(struct controld_config *cfg);

/* tls.ca is the fleet CA alone: a second certificate in the file is a
 * second CA whose every certificate could speak as a host or an admin. */
static int
controld_check_ca(const struct controld_config *cfg, const char *path, char *err, size_t errsz)
{
	int n = pki_count_certs(cfg->ca, err, errsz);
	if (n < 0)
		return -1;
	if (n == 0) {
		snprintf(err, errsz, "%s: tls.ca %s holds no PEM certificate", path, cfg->ca);
		return -1;
	}
	if (n > 1 && !cfg->allow_multiple_ca) {
		snprintf(err, errsz, "%s: tls.ca %s holds %d certificates; controld trusts one "
		    "fleet CA (set tls.allow_multiple_ca = true to trust them all)", path, cfg->ca, n);
		return -1;
	}
	return 0;
}

static int
controld_config_load(const char *path, struct controld_config *cfg, char *err, size_t errsz)
{
	config_t lc;
	struct conf_err cerr;
	const char *s;
	config_setting_t *g;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->max_message = GRPC_DEFAULT_MAX_MESSAGE;
	cfg->revocation_interval = 5;
	cfg->handshake_timeout = GRPC_DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000;
	cfg->idle_timeout = GRPC_DEFAULT_IDLE_TIMEOUT_MS / 1000;
	cfg->max_connections = GRPC_DEFAULT_MAX_CONNECTIONS;
	cfg->max_connections_per_ip = GRPC_DEFAULT_MAX_CONNECTIONS_PER_IP;
	cfg->max_streams = GRPC_DEFAULT_MAX_STREAMS;
	cfg->watch_max_pending = CONTROLD_WATCH_MAX_PENDING;
	cfg->outcome_max_age_days = 30;
	cfg->outcome_max_future = 86400;
	cfg->statement_timeout = DB_STATEMENT_TIMEOUT_MS / 1000;
	cfg->http_max_request = 8192;
	cfg->http_timeout = 10;
	if (conf_load(&lc, path, &cerr) < 0) {
		snprintf(err, errsz, "%s", cerr.msg);
		return -1;
	}
	config_setting_t *root = config_root_setting(&lc);
	if (conf_check_keys(root, controld_keys, &cerr) < 0 ||
	    controld_str(root, "listen", &cfg->listen, &cerr) < 0 ||
	    controld_str(root, "socket", &cfg->socket, &cerr) < 0 ||
	    controld_str(root, "http", &cfg->http, &cerr) < 0 ||
	    controld_str(root, "database", &cfg->database, &cerr) < 0 ||
	    controld_str(root, "schema_dir", &cfg->schema_dir, &cerr) < 0 ||
	    conf_get_int(root, "max_message", 1024, 1 << 30, &cfg->max_message, &cerr) < 0 ||
	    conf_get_int(root, "handshake_timeout", 1, 3600, &cfg->handshake_timeout, &cerr) < 0 ||
	    conf_get_int(root, "idle_timeout", 1, 86400, &cfg->idle_timeout, &cerr) < 0 ||
	    conf_get_int(root, "max_connections", 1, 1000000, &cfg->max_connections, &cerr) < 0 ||
	    conf_get_int(root, "max_connections_per_ip", 1, 1000000, &cfg->max_connections_per_ip,
	    &cerr) < 0 ||
	    conf_get_int(root, "max_streams", 1, GRPC_DEFAULT_MAX_STREAMS, &cfg->max_streams,
	    &cerr) < 0 ||
	    conf_get_int(root, "watch_max_pending", 65536, 1LL << 32, &cfg->watch_max_pending,
	    &cerr) < 0 ||
	    conf_get_int(root, "outcome_max_age_days", 1, 3650, &cfg->outcome_max_age_days,
	    &cerr) < 0 ||
	    conf_get_int(root, "outcome_max_future", 0, 30 * 86400, &cfg->outcome_max_future,
	    &cerr) < 0 ||
	    conf_get_int(root, "statement_timeout", 1, 3600, &cfg->statement_timeout, &cerr) < 0 ||
	    conf_get_int(root, "http_max_request", 1024, 1 << 20, &cfg->http_max_request,
	    &cerr) < 0 ||
	    conf_get_int(root, "http_timeout", 1, 3600, &cfg->http_timeout, &cerr) < 0)
		goto fail;
	if ((r = conf_get_string(root, "log_level", &s, &cerr)) < 0)
		goto fail;
	if (r == 1 && log_level_parse(s, &cfg->log_level) < 0) {
		conf_error(&cerr, config_setting_get_member(root, "log_level"),
		    "expected debug, info, warn or error");
		goto fail;
	}
	if ((r = conf_get_aggregate(root, "tls", CONFIG_TYPE_GROUP, &g, &cerr)) < 0)
		goto fail;
	if (r == 1 && (conf_check_keys(g, controld_tls_keys, &cerr) < 0 ||
	    controld_str(g, "cert", &cfg->cert, &cerr) < 0 ||
	    controld_str(g, "key", &cfg->key, &cerr) < 0 ||
	    controld_str(g, "ca", &cfg->ca, &cerr) < 0 ||
	    conf_get_bool(g, "allow_multiple_ca", &cfg->allow_multiple_ca, &cerr) < 0 ||
	    conf_get_int(g, "revocation_interval", 1, 3600, &cfg->revocation_interval, &cerr) < 0))
		goto fail;
	if (cfg->database == NULL) {
		snprintf(cerr.msg, sizeof(cerr.msg), "%s: database is required", path);
		goto fail;
	}
	if (cfg->listen && (cfg->cert == NULL || cfg->key == NULL || cfg->ca == NULL)) {
		snprintf(cerr.msg, sizeof(cerr.msg),
		    "%s: listen needs tls.cert, tls.key and tls.ca (mutual TLS is not optional)", path);
		goto fail;
	}
	if (cfg->listen == NULL && cfg->socket == NULL) {
		snprintf(cerr.msg, sizeof(cerr.msg), "%s: neither listen nor socket is set", path);
		goto fail;
	}
	if (cfg->ca && controld_check_ca(cfg, path, cerr.msg, sizeof(cerr.msg)) < 0)
		goto fail;
	if (cfg->schema_dir == NULL)
		cfg->schema_dir = xstrdup(MXFLEET_SCHEMA_DIR);
	config_destroy(&lc);
	return 0;
fail:
	snprintf(err, errsz, "%s", cerr.msg);
	config_destroy(&lc);
	controld_config_free(cfg);
	return -1;
}

static void
controld_config_free(struct controld_config *cfg)
{
	free(cfg->listen);
	free(cfg->socket);
	free(cfg->http);
	free(cfg->database);
	free(cfg->schema_dir);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->ca);
}

/* The connection limits, and enough descriptors for them: the soft limit is
 * raised toward the hard one; if that is not enough, the cap comes down, so
 * accept() never fails for want of a descriptor (libevent would retry it in
 * a loop). */
static struct grpc_server_limits
controld_limits(const struct controld_config *cfg)
{
	struct grpc_server_limits l = {
		.handshake_timeout_ms = (int)cfg->handshake_timeout * 1000,
		.idle_timeout_ms = (int)cfg->idle_timeout * 1000,
		.max_connections = (size_t)cfg->max_connections,
		.max_connections_per_ip = (size_t)cfg->max_connections_per_ip,
		.max_streams = (uint32_t)cfg->max_streams,
	};
	/* Two servers (TLS, unix socket), and descriptors for the rest. */
	rlim_t want = 2 * (rlim_t)cfg->max_connections + CONTROLD_SPARE_FDS;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < want) {
			size_t cap = rl.rlim_cur > 2 * CONTROLD_SPARE_FDS ?
			    (size_t)(rl.rlim_cur - CONTROLD_SPARE_FDS) / 2 : 1;
			log_warnx("event=max_connections_lowered configured=%lld now=%zu "
			    "reason=\"open files limit %llu\"", cfg->max_connections, cap,
			    (unsigned long long)rl.rlim_cur);
			l.max_connections = cap;
		}
	}
	return l;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("event=stopping signal=%d", (int)sig);
	if (C->tls_srv)
		grpc_server_shutdown(C->tls_srv);
	if (C->local_srv)
		grpc_server_shutdown(C->local_srv);
	struct timeval tv = { 1, 0 };
	event_base_loopexit(C->base, &tv);
}

static void
usage(void)
{
	fprintf(stderr, "usage: controld -c FILE [migrate]\n       controld -n -c FILE\n"
	    "  -c FILE  configuration (docs/control-plane.md)\n"
	    "  -n       check the configuration and exit\n"
	    "  migrate  apply the schema migrations and exit\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct controld d;
	const char *path = NULL;
	int check = 0, ch;
	char err[1024];

	while ((ch = getopt(argc, argv, "c:nV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': printf("controld %s\n", MXFLEET_VERSION); return 0;
		default: usage();
		}
	}
	int migrate_only = optind < argc && strcmp(argv[optind], "migrate") == 0;
	if (path == NULL || (optind < argc && !migrate_only) || optind + migrate_only != argc)
		usage();
	memset(&d, 0, sizeof(d));
	C = &d;
	log_init("controld", LOG_LEVEL_INFO, 0);
	if (controld_config_load(path, &d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "controld: %s\n", err);
		return 1;
	}
	log_set_level(d.cfg.log_level);
	if (d.cfg.listen) {
		d.tls = grpc_tls_server_ctx(d.cfg.cert, d.cfg.key, d.cfg.ca, err, sizeof(err));
		if (d.tls == NULL) {
			fprintf(stderr, "controld: %s\n", err);
			return 1;
		}
	}
	if (check) {
		printf("controld: %s: configuration OK\n", path);
		SSL_CTX_free(d.tls);
		controld_config_free(&d.cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (controld_db_open(&d.db, err, sizeof(err)) < 0) {
		d.db = NULL;
		char q[LOG_QUOTE_SIZE(300)];
		log_error("event=db_unavailable error=%s", log_quote(q, sizeof(q), err, strlen(err), 300));
		if (migrate_only) {
			SSL_CTX_free(d.tls);
			controld_config_free(&d.cfg);
			return 1;
		}
		/* Start anyway: calls answer UNAVAILABLE until the database is back,
		 * and mxd keeps its journal meanwhile. */
	}
	if (migrate_only) {
		unsigned applied = 0;
		if (db_migrate(d.db, d.cfg.schema_dir, &applied) != DB_OK) {
			fprintf(stderr, "controld: migrate: %s\n", db_errmsg(d.db));
			db_close(d.db);
			SSL_CTX_free(d.tls);
			controld_config_free(&d.cfg);
			return 1;
		}
		printf("controld: %u migration(s) applied\n", applied);
		db_close(d.db);
		SSL_CTX_free(d.tls);
		controld_config_free(&d.cfg);
		return 0;
	}

	d.base = event_base_new();
	struct grpc_server_limits lim = controld_limits(&d.cfg);
	struct grpc_server_opts o = { controld_methods,
	    sizeof(controld_methods) / sizeof(controld_methods[0]), &d, d.tls,
	    (size_t)d.cfg.max_message };
	if (d.cfg.listen) {
		grpc_server_new(&d.tls_srv, d.base, &o);
		grpc_server_set_limits(d.tls_srv, &lim);
		if (grpc_server_listen(d.tls_srv, d.cfg.listen, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d.cfg.socket) {
		struct grpc_server_opts lo = o;
		lo.tls = NULL;
		grpc_server_new(&d.local_srv, d.base, &lo);
		grpc_server_set_limits(d.local_srv, &lim);
		if (grpc_server_listen_unix(d.local_srv, d.cfg.socket, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d.cfg.http) {
		char host[256];
		int port;
		if (netaddr_split_hostport(d.cfg.http, host, sizeof(host), &port) < 0)
			fatalx("event=bad_http addr=%s", d.cfg.http);
		d.http = evhttp_new(d.base);
		/* Two GET endpoints: no body, small headers, no slow clients. */
		evhttp_set_max_headers_size(d.http, (ev_ssize_t)d.cfg.http_max_request);
		evhttp_set_max_body_size(d.http, 0);
		evhttp_set_timeout(d.http, (int)d.cfg.http_timeout);
		evhttp_set_allowed_methods(d.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
		evhttp_set_cb(d.http, "/metrics", http_metrics, NULL);
		evhttp_set_cb(d.http, "/healthz", http_healthz, NULL);
		if (evhttp_bind_socket(d.http, host, (ev_uint16_t)port) != 0)
			fatalx("event=listen_failed addr=%s", d.cfg.http);
	}
	d.poll_ev = event_new(d.base, -1, EV_PERSIST, watch_poll_cb, NULL);
	struct timeval poll_tv = { CONTROLD_WATCH_POLL_MS / 1000, (CONTROLD_WATCH_POLL_MS % 1000) * 1000 };
	event_add(d.poll_ev, &poll_tv);
	if (d.tls) {
		/* Before the loop runs, so before any handshake. */
		d.revoked = pki_revoked_new();
		pki_server_enforce(d.tls, d.revoked);
		revoke_reload();
		d.revoke_ev = event_new(d.base, -1, EV_PERSIST, revoke_tick, NULL);
		struct timeval rtv = { (time_t)d.cfg.revocation_interval, 0 };
		event_add(d.revoke_ev, &rtv);
	}
	struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, NULL);
	struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	log_info("event=started version=%s listen=%s socket=%s http=%s grpc_port=%d", MXFLEET_VERSION,
	    d.cfg.listen ? d.cfg.listen : "-", d.cfg.socket ? d.cfg.socket : "-",
	    d.cfg.http ? d.cfg.http : "-", d.tls_srv ? grpc_server_port(d.tls_srv, 0) : 0);
	event_base_dispatch(d.base);

	grpc_server_free(d.tls_srv);
	grpc_server_free(d.local_srv);
	while (d.watchers)
		watch_remove(d.watchers);
	if (d.http)
		evhttp_free(d.http);
	event_free(d.poll_ev);
	if (d.revoke_ev)
		event_free(d.revoke_ev);
	event_free(sigterm);
	event_free(sigint);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(d.base, EVLOOP_NONBLOCK);
	event_base_free(d.base);
	SSL_CTX_free(d.tls);
	pki_revoked_free(d.revoked);
	if (d.db)
		db_close(d.db);
	controld_config_free(&d.cfg);
	log_info("event=stopped");
	return 0;
}
