/* controld: the control daemon. gRPC over HTTP/2 with mutual TLS for the
 * fleet (Collector, Fleet) and for mailctl (Admin, also on a local unix
 * socket), all state in PostgreSQL, /metrics and /healthz over plain HTTP.
 *
 *   controld -c FILE            run
 *   controld -c FILE migrate    apply schema migrations and exit
 *   controld -n -c FILE         check the configuration and exit
 *   SIGHUP                      reload what can change while running (reload.h)
 *
 * This file: the configuration, the method table, start and stop. The
 * services are collector.c, fleet.c and admin.c, the HTTP port http.c;
 * call.c holds a call while its database work runs on the workers of
 * dbq.c, which alone call libpq (through db.c). */
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
#include "db_tlsrpt_sender.h"
#include "dbq.h"
#include "admin.h"
#include "admin_dns.h"
#include "admin_reports.h"
#include "rptrecv.h"
#include "admin_rptsend.h"
#include "call.h"
#include "collector.h"
#include "controld.h"
#include "dnsauto.h"
#include "fleet.h"
#include "http.h"
#include "inbound.h"
#include "grpc.h"
#include "log.h"
#include "netaddr.h"
#include "pki.h"
#include "queue_remote.h"
#include "reload.h"
#include "rollover_run.h"
#include "sdnotify.h"
#include "rptsend.h"
#include "mxfleet.pb-c.h"
#include "xmalloc.h"

struct controld *C;

static const struct grpc_method controld_methods[] = {
	{ "/mxfleet.v1.Collector/Export", collector_batch, NULL, call_end },
	{ "/mxfleet.v1.Collector/Stream", collector_batch, collector_half_close, call_end },
	{ "/mxfleet.v1.Fleet/Register", fleet_register, NULL, call_end },
	{ "/mxfleet.v1.Fleet/Heartbeat", fleet_heartbeat, NULL, call_end },
	{ "/mxfleet.v1.Fleet/WatchConfig", fleet_watch, NULL, call_end },
	{ "/mxfleet.v1.Admin/ListHosts", admin_list_hosts, NULL, call_end },
	{ "/mxfleet.v1.Admin/AddDomain", admin_add_domain, NULL, call_end },
	{ "/mxfleet.v1.Admin/ListDomains", admin_list_domains, NULL, call_end },
	{ "/mxfleet.v1.Admin/RemoveDomain", admin_remove_domain, NULL, call_end },
	{ "/mxfleet.v1.Admin/AddRoute", admin_add_route, NULL, call_end },
	{ "/mxfleet.v1.Admin/ListRoutes", admin_list_routes, NULL, call_end },
	{ "/mxfleet.v1.Admin/RemoveRoute", admin_remove_route, NULL, call_end },
	{ "/mxfleet.v1.Admin/SetPolicy", admin_set_policy, NULL, call_end },
	{ "/mxfleet.v1.Admin/ListPolicies", admin_list_policies, NULL, call_end },
	{ "/mxfleet.v1.Admin/RemovePolicy", admin_remove_policy, NULL, call_end },
	{ "/mxfleet.v1.Admin/SummarizeOutcomes", admin_summarize, NULL, call_end },
	{ "/mxfleet.v1.Admin/RevokeCertificate", admin_revoke, NULL, call_end },
	{ "/mxfleet.v1.Admin/SetRecipientCheck", admin_set_recipient_check, NULL, call_end },
	{ "/mxfleet.v1.Admin/AddRecipients", admin_add_recipients, NULL, call_end },
	{ "/mxfleet.v1.Admin/RemoveRecipients", admin_remove_recipients, NULL, call_end },
	{ "/mxfleet.v1.Admin/ListRecipients", admin_list_recipients, NULL, call_end },
	{ "/mxfleet.v1.Admin/SetDomainDns", admin_dns_set, NULL, call_end },
	{ "/mxfleet.v1.Admin/GetDomainDns", admin_dns_get, NULL, call_end },
	{ "/mxfleet.v1.Admin/DnsRecords", admin_dns_records, NULL, call_end },
	{ "/mxfleet.v1.Admin/DnsCheck", dnsops_check, NULL, call_end },
	{ "/mxfleet.v1.Admin/DnsPush", dnsops_push, NULL, call_end },
	{ "/mxfleet.v1.Admin/StartRollover", rollover_admin_start, NULL, call_end },
	{ "/mxfleet.v1.Admin/CancelRollover", rollover_admin_cancel, NULL, call_end },
	{ "/mxfleet.v1.Admin/GetRollover", rollover_admin_get, NULL, call_end },
	/* issue 12: inbound */
	{ "/mxfleet.v1.Admin/InboundTls", inbound_admin, NULL, call_end },
	/* issue 12: rptagg */
	{ "/mxfleet.v1.Admin/ReportPreview", admin_reports_preview, NULL, call_end },
	/* issue 12: rptrecv (rptrecv.h) */
	{ "/mxfleet.v1.Collector/SubmitReport", rptrecv_submit, NULL, call_end },
	{ "/mxfleet.v1.Admin/ReceivedReports", rptrecv_list, NULL, call_end },
	{ "/mxfleet.v1.Admin/ShowReceivedReport", rptrecv_show, NULL, call_end },
	/* ---- issue 12: rptsend ---- */
	{ "/mxfleet.v1.Admin/ReportDeliveries", admin_rptsend_deliveries, NULL, call_end },
	{ "/mxfleet.v1.Admin/ReportSendNow", admin_rptsend_send_now, NULL, call_end },
	{ "/mxfleet.v1.Admin/ReportSuppress", admin_rptsend_suppress, NULL, call_end },
	/* issue 13: queue */
	{ "/mxfleet.v1.Fleet/WatchQueueCommands", queue_remote_watch, NULL, call_end },
	{ "/mxfleet.v1.Fleet/QueueCommandDone", queue_remote_done, NULL, call_end },
	{ "/mxfleet.v1.Admin/QueueControl", queue_remote_control, NULL, call_end },
};

/* ---- configuration and main ---- */

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
	sdnotify("STOPPING=1");
	if (C->tls_srv)
		grpc_server_shutdown(C->tls_srv);
	if (C->local_srv)
		grpc_server_shutdown(C->local_srv);
	struct timeval tv = { 1, 0 };
	event_base_loopexit(C->base, &tv);
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	reload_run(C);
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

/* Connect, with the configured statement timeout: for migrate and for the
 * start, before the event loop runs. */
static struct db *
controld_db_open(char *err, size_t errsz)
{
	struct db *db;
	if (db_open(&db, C->cfg.database, err, errsz) != DB_OK)
		return NULL;
	if (db_set_statement_timeout(db, (int)C->cfg.statement_timeout * 1000) != DB_OK) {
		snprintf(err, errsz, "%s", db_errmsg(db));
		db_close(db);
		return NULL;
	}
	return db;
}

static int
controld_migrate(void)
{
	char err[1024], q[LOG_QUOTE_SIZE(300)];
	unsigned applied = 0;
	struct db *db = controld_db_open(err, sizeof(err));
	if (db == NULL) {
		log_error("event=db_unavailable error=%s",
		    log_quote(q, sizeof(q), err, strlen(err), 300));
		return 1;
	}
	int rc = db_migrate(db, C->cfg.schema_dir, &applied);
	if (rc != DB_OK)
		fprintf(stderr, "controld: migrate: %s\n", db_errmsg(db));
	else
		printf("controld: %u migration(s) applied\n", applied);
	db_close(db);
	return rc == DB_OK ? 0 : 1;
}

/* Before the loop runs, so before any handshake: the revoked serials, and
 * the snapshot WatchConfig answers from. With the database down controld
 * starts anyway: calls answer UNAVAILABLE until it is back (mxd keeps its
 * journal meanwhile), and the workers load both then. */
static void
controld_preload(void)
{
	char err[1024], q[LOG_QUOTE_SIZE(300)];
	struct db *db = controld_db_open(err, sizeof(err));
	if (db == NULL) {
		log_error("event=db_unavailable error=%s",
		    log_quote(q, sizeof(q), err, strlen(err), 300));
		return;
	}
	char **serials;
	size_t n;
	if (C->revoked && db_revoked_list(db, &serials, &n) == DB_OK)
		admin_revoke_apply(serials, n);
	/* Before the snapshot: a changed reports.mail_from is a new version. */
	int changed = 0;
	if (db_tlsrpt_sender_set(db, C->cfg.reports.mail_from, &changed) != DB_OK)
		log_error("event=tlsrpt_sender_not_stored error=%s",
		    log_quote(q, sizeof(q), db_errmsg(db), strlen(db_errmsg(db)), 300));
	else if (changed)
		log_info("event=tlsrpt_sender_changed sender=%s",
		    C->cfg.reports.mail_from ? C->cfg.reports.mail_from : "-");
	Mxfleet__V1__ConfigSnapshot *snap;
	if (db_config_snapshot(db, &snap) == DB_OK)
		fleet_snapshot_take(snap);
	db_close(db);
}

static void
controld_listen(struct controld *d)
{
	char err[1024];
	struct grpc_server_limits lim = controld_limits(&d->cfg);
	struct grpc_server_opts o = { controld_methods,
	    sizeof(controld_methods) / sizeof(controld_methods[0]), d, d->tls,
	    (size_t)d->cfg.max_message };
	if (d->cfg.listen) {
		grpc_server_new(&d->tls_srv, d->base, &o);
		grpc_server_set_limits(d->tls_srv, &lim);
		if (grpc_server_listen(d->tls_srv, d->cfg.listen, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d->cfg.socket) {
		struct grpc_server_opts lo = o;
		lo.tls = NULL;
		grpc_server_new(&d->local_srv, d->base, &lo);
		grpc_server_set_limits(d->local_srv, &lim);
		if (grpc_server_listen_unix(d->local_srv, d->cfg.socket, err, sizeof(err)) < 0)
			fatalx("event=listen_failed error=\"%s\"", err);
	}
	if (d->cfg.http) {
		char host[256];
		int port;
		if (netaddr_split_hostport(d->cfg.http, host, sizeof(host), &port) < 0)
			fatalx("event=bad_http addr=%s", d->cfg.http);
		d->http = evhttp_new(d->base);
		/* Two GET endpoints: no body, small headers, no slow clients. */
		evhttp_set_max_headers_size(d->http, (ev_ssize_t)d->cfg.http_max_request);
		evhttp_set_max_body_size(d->http, 0);
		evhttp_set_timeout(d->http, (int)d->cfg.http_timeout);
		evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
		evhttp_set_cb(d->http, "/metrics", http_metrics, NULL);
		evhttp_set_cb(d->http, "/healthz", http_healthz, NULL);
		if (evhttp_bind_socket(d->http, host, (ev_uint16_t)port) != 0)
			fatalx("event=listen_failed addr=%s", d->cfg.http);
	}
}

static void
controld_timers(struct controld *d)
{
	struct timeval poll_tv = { CONTROLD_WATCH_POLL_MS / 1000,
	    (CONTROLD_WATCH_POLL_MS % 1000) * 1000 };
	d->poll_ev = event_new(d->base, -1, EV_PERSIST, fleet_poll_cb, NULL);
	event_add(d->poll_ev, &poll_tv);
	if (d->revoked) {
		struct timeval rtv = { (time_t)d->cfg.revocation_interval, 0 };
		d->revoke_ev = event_new(d->base, -1, EV_PERSIST, admin_revoke_tick, NULL);
		event_add(d->revoke_ev, &rtv);
	}
	rollover_run_start(d->base);
	dnsauto_start(d->base);
	inbound_start(d->base);
	rptsend_start(d->base);
	queue_remote_start(d->base);
}

/* After the loop: calls first (their jobs then answer no one), then the
 * workers (each finishes its job; what waits is handed back undone). */
static void
controld_shutdown(struct controld *d)
{
	grpc_server_free(d->tls_srv);
	grpc_server_free(d->local_srv);
	d->tls_srv = d->local_srv = NULL;
	http_health_drain();
	dbq_free(d->dbq, CONTROLD_STOP_WAIT_MS);
	d->dbq = NULL;
	dbq_free(d->dnsq, CONTROLD_STOP_WAIT_MS);
	d->dnsq = NULL;
	rptsend_stop();
	queue_remote_stop();
	while (d->watchers)
		fleet_watch_remove(d->watchers);
	if (d->http)
		evhttp_free(d->http);
	event_free(d->poll_ev);
	rollover_run_stop();
	dnsauto_stop();
	inbound_stop();
	if (d->revoke_ev)
		event_free(d->revoke_ev);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(d->base, EVLOOP_NONBLOCK);
	event_base_free(d->base);
	SSL_CTX_free(d->tls);
	pki_revoked_free(d->revoked);
	if (d->snap)
		db_config_snapshot_free(d->snap);
	controld_config_free(&d->cfg);
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
	if (check || migrate_only) {
		int rc = 0;
		if (check)
			printf("controld: %s: configuration OK\n", path);
		else
			rc = controld_migrate();
		SSL_CTX_free(d.tls);
		controld_config_free(&d.cfg);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	if (d.tls) {
		d.revoked = pki_revoked_new();
		pki_server_enforce(d.tls, d.revoked);
	}
	controld_preload();
	d.base = event_base_new();
	struct dbq_opts qo = { d.cfg.database, (int)d.cfg.statement_timeout * 1000,
	    (int)d.cfg.db_workers, (size_t)d.cfg.db_max_queued };
	if (dbq_new(&d.dbq, d.base, &qo, err, sizeof(err)) < 0)
		fatalx("event=db_workers_failed error=\"%s\"", err);
	/* A few jobs at most wait for a DNS worker: a check is asked by hand. */
	struct dbq_opts dq = { d.cfg.database, (int)d.cfg.statement_timeout * 1000,
	    (int)d.cfg.dns.workers, 64 };
	if (dbq_new(&d.dnsq, d.base, &dq, err, sizeof(err)) < 0)
		fatalx("event=dns_workers_failed error=\"%s\"", err);
	controld_listen(&d);
	controld_timers(&d);
	struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, NULL);
	struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, NULL);
	struct event *sighup = evsignal_new(d.base, SIGHUP, on_sighup, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	reload_init(path);
	event_add(sighup, NULL);
	log_info("event=started version=%s listen=%s socket=%s http=%s grpc_port=%d db_workers=%lld",
	    MXFLEET_VERSION, d.cfg.listen ? d.cfg.listen : "-", d.cfg.socket ? d.cfg.socket : "-",
	    d.cfg.http ? d.cfg.http : "-", d.tls_srv ? grpc_server_port(d.tls_srv, 0) : 0,
	    d.cfg.db_workers);
	/* Type=notify (systemd): the listeners accept calls now. */
	sdnotify("READY=1\nSTATUS=accepting calls");
	event_base_dispatch(d.base);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	reload_free();
	controld_shutdown(&d);
	log_info("event=stopped");
	return 0;
}
