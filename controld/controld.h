/* controld's shared state: the configuration, the counters, the context
 * every service file reads through C (one process-wide context: the event
 * loop's thread only; the database workers never touch it). */
#ifndef CONTROLD_CONTROLD_H
#define CONTROLD_CONTROLD_H

#include <event2/http.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "dbq.h"
#include "dnsops.h"
#include "grpc.h"
#include "inbound.h"
#include "log.h"
#include "mxfleet.pb-c.h"
#include "pki.h"
#include "reports_conf.h"

#define CONTROLD_WATCH_POLL_MS	2000	/* other replicas' config changes */
#define CONTROLD_SPARE_FDS	64	/* listeners, PostgreSQL, HTTP, logs */
#define CONTROLD_WATCH_MAX_PENDING	(16 << 20)
#define CONTROLD_MS_PER_DAY		INT64_C(86400000)
#define CONTROLD_STOP_WAIT_MS	5000	/* at stop: for database workers, at most */
#define CONTROLD_HEALTH_WAIT_MS	500	/* /healthz: a probe of the database, at most */

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
	long long db_workers;		/* threads, one connection each */
	long long db_max_queued;	/* database jobs waiting for a worker */
	struct dnsops_config dns;	/* the dns group: checks and pushes */
	struct inbound_config inbound;	/* the inbound group: the inbound TLS view */
	struct reports_config reports;	/* the reports group: who sends TLS reports */
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
	uint64_t	heartbeats_unwritten;
};

struct call_job;
struct http_health_wait;

struct controld {
	struct controld_config	 cfg;
	struct event_base	*base;
	struct dbq		*dbq;
	struct dbq		*dnsq;		/* DNS checks and pushes (dnsops.h) */
	struct grpc_server	*tls_srv;
	struct grpc_server	*local_srv;
	struct evhttp		*http;
	SSL_CTX			*tls;
	struct watcher		*watchers;
	uint64_t		 config_version;
	Mxfleet__V1__ConfigSnapshot *snap;	/* the newest snapshot read */
	struct event		*poll_ev;
	struct metrics		 m;
	struct pki_revoked	*revoked;	/* read by the TLS verify callback */
	struct event		*revoke_ev;
	int			 poll_busy, revoke_busy, health_busy;
	struct call_job		*hb_pending;	/* heartbeat writes queued or running */
	struct http_health_wait	*health_waits;
};

extern struct controld *C;

/* Read FILE into cfg (defaults for what it leaves out). 0, or -1 with err
 * naming the file, line and key; cfg is then empty. */
int controld_config_load(const char *path, struct controld_config *cfg, char *err, size_t errsz);
void controld_config_free(struct controld_config *cfg);

#endif
