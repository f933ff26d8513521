/* controld: reading controld.conf (controld.h: controld_config_load), at
 * start and again at SIGHUP (reload.c). */
#include "controld.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "db.h"
#include "dbq.h"
#include "dnsops.h"
#include "grpc.h"
#include "inbound.h"
#include "log.h"
#include "pki.h"
#include "reports_conf.h"
#include "xmalloc.h"

static const char *const controld_keys[] = {
	"listen", "socket", "http", "database", "schema_dir", "tls", "log_level",
	"max_message", "handshake_timeout", "idle_timeout", "max_connections",
	"max_connections_per_ip", "max_streams", "watch_max_pending", "outcome_max_age_days",
	"outcome_max_future", "statement_timeout", "http_max_request", "http_timeout", "db_workers", "db_max_queued",
	"dns", "inbound", "reports", NULL
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

int
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
	cfg->db_workers = DBQ_DEFAULT_WORKERS;
	cfg->db_max_queued = DBQ_DEFAULT_MAX_QUEUED;
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
	    conf_get_int(root, "http_timeout", 1, 3600, &cfg->http_timeout, &cerr) < 0 ||
	    conf_get_int(root, "db_workers", 1, DBQ_MAX_WORKERS, &cfg->db_workers, &cerr) < 0 ||
	    conf_get_int(root, "db_max_queued", 1, 1000000, &cfg->db_max_queued, &cerr) < 0)
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
	if ((r = conf_get_aggregate(root, "dns", CONFIG_TYPE_GROUP, &g, &cerr)) < 0 ||
	    dnsops_config_load(r == 1 ? g : NULL, &cfg->dns, &cerr) < 0)
		goto fail;
	if ((r = conf_get_aggregate(root, "inbound", CONFIG_TYPE_GROUP, &g, &cerr)) < 0 ||
	    inbound_config_load(r == 1 ? g : NULL, &cfg->inbound, &cerr) < 0)
		goto fail;
	if ((r = conf_get_aggregate(root, "reports", CONFIG_TYPE_GROUP, &g, &cerr)) < 0 ||
	    reports_config_load(r == 1 ? g : NULL, &cfg->reports, &cerr) < 0)
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

void
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
	dnsops_config_free(&cfg->dns);
	reports_config_free(&cfg->reports);
}
