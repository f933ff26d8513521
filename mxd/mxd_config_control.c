/* mxd's `control` group (mxd_config_control.h). */
#include "mxd_config_control.h"
#include "mxd_config.h"
#include "mxd_config_list.h"
#include "netaddr.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const mxd_config_control_keys[] = {
	"server", "servers", "authority", "host_id", "cert", "key", "ca", "journal_max_mb",
	"batch_size", "batch_max_bytes", "heartbeat_interval", "ack_timeout", NULL
};

/* One "host:port" into the next slot of cfg->control_servers. */
static int
mxd_config_control_add(struct mxd_config *cfg, const char *addr, const config_setting_t *s,
    struct conf_err *err)
{
	char host[256];
	int port;
	if (netaddr_split_hostport(addr, host, sizeof(host), &port) < 0 || host[0] == '\0')
		return conf_error(err, s, "expected HOST:PORT (e.g. \"controld1.example:7443\" or "
		    "\"[2001:db8::1]:7443\"), got \"%s\"", addr);
	for (size_t i = 0; i < cfg->ncontrol_servers; i++)
		if (strcmp(cfg->control_servers[i].host, host) == 0 &&
		    cfg->control_servers[i].port == port)
			return conf_error(err, s, "%s is listed twice", addr);
	struct mxd_control_server *cs = &cfg->control_servers[cfg->ncontrol_servers++];
	cs->addr = xstrdup(addr);
	cs->host = xstrdup(host);
	cs->port = port;
	return 0;
}

/* `server = "H:P"` or `servers = [ "H:P", ... ]`, exactly one of them. */
static int
mxd_config_control_servers(struct mxd_config *cfg, const config_setting_t *g,
    struct conf_err *err)
{
	const char *one = NULL;
	config_setting_t *list = NULL;
	int r1 = conf_get_string(g, "server", &one, err);
	if (r1 < 0)
		return -1;
	int r2 = conf_get_aggregate(g, "servers", CONFIG_TYPE_ARRAY, &list, err);
	if (r2 < 0)
		return -1;
	if (r1 == 1 && r2 == 1)
		return conf_error(err, list, "set either server (one controld) or servers (a list "
		    "of controld replicas), not both");
	if (r1 == 1) {
		cfg->control_servers = xcalloc(1, sizeof(*cfg->control_servers));
		return mxd_config_control_add(cfg, one, config_setting_get_member(g, "server"), err);
	}
	if (r2 == 0)
		return conf_error(err, g, "server (or servers), cert, key and ca are required");
	int n = config_setting_length(list);
	if (n == 0)
		return conf_error(err, list, "an empty list: name at least one controld as "
		    "\"HOST:PORT\"");
	if (n > MXD_CONTROL_SERVERS_MAX)
		return conf_error(err, list, "at most %d servers", MXD_CONTROL_SERVERS_MAX);
	cfg->control_servers = xcalloc((size_t)n, sizeof(*cfg->control_servers));
	for (int i = 0; i < n; i++) {
		const char *s;
		if (conf_elem_string(list, (unsigned)i, &s, err) < 0 ||
		    mxd_config_control_add(cfg, s, config_setting_get_elem(list, (unsigned)i),
		    err) < 0)
			return -1;
	}
	return 0;
}

int
mxd_config_control(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	if (conf_check_keys(g, mxd_config_control_keys, err) < 0 ||
	    mxd_config_control_servers(cfg, g, err) < 0 ||
	    mxd_config_strdup(g, "authority", &cfg->control_authority, err) < 0 ||
	    mxd_config_strdup(g, "host_id", &cfg->control_host_id, err) < 0 ||
	    mxd_config_strdup(g, "cert", &cfg->control_cert, err) < 0 ||
	    mxd_config_strdup(g, "key", &cfg->control_key, err) < 0 ||
	    mxd_config_strdup(g, "ca", &cfg->control_ca, err) < 0 ||
	    mxd_config_int(g, "journal_max_mb", 1, 1 << 20, &cfg->control_journal_mb,
	    err) < 0 ||
	    mxd_config_int(g, "batch_size", 1, 100000, &cfg->control_batch, err) < 0 ||
	    mxd_config_int(g, "batch_max_bytes", 16384, 1 << 30,
	    &cfg->control_batch_bytes, err) < 0 ||
	    mxd_config_int(g, "heartbeat_interval", 1, 3600, &cfg->control_heartbeat,
	    err) < 0 ||
	    mxd_config_int(g, "ack_timeout", 1, 3600, &cfg->control_ack_timeout,
	    err) < 0)
		return -1;
	if (!cfg->control_cert || !cfg->control_key || !cfg->control_ca)
		return conf_error(err, g, "server (or servers), cert, key and ca are required");
	/* The first server stands for the group (control_server set: mxd has a
	 * control plane). */
	cfg->control_server = xstrdup(cfg->control_servers[0].addr);
	cfg->control_host = xstrdup(cfg->control_servers[0].host);
	cfg->control_port = cfg->control_servers[0].port;
	return 0;
}

void
mxd_config_control_free(struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->ncontrol_servers; i++) {
		free(cfg->control_servers[i].addr);
		free(cfg->control_servers[i].host);
	}
	free(cfg->control_servers);
	cfg->control_servers = NULL;
	cfg->ncontrol_servers = 0;
	free(cfg->control_server);
	free(cfg->control_host);
	cfg->control_server = cfg->control_host = NULL;
}
