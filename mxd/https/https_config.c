#include "https_config.h"
#include "dnsname.h"
#include "log.h"
#include "mxd_config_list.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

/* listen's addresses with port 443: "0.0.0.0:25" -> "0.0.0.0:443". */
static void
https_config_default_listen(struct mxd_config *cfg)
{
	mxd_config_list_addrs_free(cfg->mta_sts_listen, cfg->nmta_sts_listen);
	cfg->mta_sts_listen = xcalloc(cfg->nlisten + 1, sizeof(char *));
	cfg->nmta_sts_listen = 0;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const char *a = cfg->listen[i], *colon = strrchr(a, ':');
		cfg->mta_sts_listen[cfg->nmta_sts_listen++] = xasprintf("%.*s:443",
		    (int)(colon - a), a);
	}
}

int
https_config_parse(struct mxd_config *cfg, const config_setting_t *root, struct conf_err *err)
{
	config_setting_t *g;
	int r;

	if ((r = conf_get_aggregate(root, "mta_sts_listen", CONFIG_TYPE_ARRAY, &g, err)) < 0)
		return -1;
	cfg->mta_sts_listen_set = r == 1;
	if (r == 1 && mxd_config_list_addrs(g, &cfg->mta_sts_listen, &cfg->nmta_sts_listen,
	    err) < 0)
		return -1;
	if (r == 0)
		https_config_default_listen(cfg);
	if ((r = conf_get_aggregate(root, "mta_sts_certs", CONFIG_TYPE_LIST, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_list_certs(g, &cfg->mta_sts_certs, &cfg->nmta_sts_certs,
	    err) < 0)
		return -1;
	return 0;
}

static void
https_config_free_policies(struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->nmta_sts; i++) {
		free(cfg->mta_sts[i].domain);
		free(cfg->mta_sts[i].host);
		free(cfg->mta_sts[i].policy);
		free(cfg->mta_sts[i].id);
	}
	free(cfg->mta_sts);
	cfg->mta_sts = NULL;
	cfg->nmta_sts = 0;
}

/* One snapshot policy into cfg; -1 with why when it cannot be served. */
static int
https_config_add(struct mxd_config *cfg, const Mxfleet__V1__MtaStsPolicy *p, char *why,
    size_t whysz)
{
	size_t n = strlen(p->domain);
	if (dnsname_check(p->domain, why, whysz) < 0)
		return -1;
	if (n > 0 && p->domain[n - 1] == '.')
		n--;
	/* "mta-sts." + the domain is itself a name of 253 octets at most. */
	if (n + 8 > DNSNAME_MAX) {
		snprintf(why, whysz, "mta-sts.<domain> is longer than %d octets", DNSNAME_MAX);
		return -1;
	}
	char *host = xasprintf("mta-sts.%.*s", (int)n, p->domain);
	for (char *c = host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c + 32);
	if (https_config_policy(cfg, host) != NULL) {
		snprintf(why, whysz, "a second policy for the domain");
		free(host);
		return -1;
	}
	struct mxd_mta_sts *m = &cfg->mta_sts[cfg->nmta_sts++];
	m->host = host;
	m->domain = xstrdup(host + 8);
	m->len = strlen(p->policy);
	m->policy = xstrdup(p->policy);
	m->id = xstrdup(p->id);
	return 0;
}

void
https_config_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s)
{
	char why[300], q[LOG_QUOTE_SIZE(100)], qw[LOG_QUOTE_SIZE(300)];

	https_config_free_policies(cfg);
	cfg->mta_sts = xcalloc(s->n_mta_sts + 1, sizeof(*cfg->mta_sts));
	for (size_t i = 0; i < s->n_mta_sts; i++) {
		const Mxfleet__V1__MtaStsPolicy *p = s->mta_sts[i];
		if (https_config_add(cfg, p, why, sizeof(why)) < 0)
			log_warnx("event=snapshot_mta_sts_ignored domain=%s why=%s",
			    log_quote(q, sizeof(q), p->domain, strlen(p->domain), 100),
			    log_quote(qw, sizeof(qw), why, strlen(why), 300));
	}
}

const struct mxd_mta_sts *
https_config_policy(const struct mxd_config *cfg, const char *host)
{
	for (size_t i = 0; i < cfg->nmta_sts; i++)
		if (strcmp(cfg->mta_sts[i].host, host) == 0)
			return &cfg->mta_sts[i];
	return NULL;
}

void
https_config_free(struct mxd_config *cfg)
{
	mxd_config_list_addrs_free(cfg->mta_sts_listen, cfg->nmta_sts_listen);
	mxd_config_list_certs_free(cfg->mta_sts_certs, cfg->nmta_sts_certs);
	https_config_free_policies(cfg);
}
