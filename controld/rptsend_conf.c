/* controld: the reports.send group of controld.conf (rptsend_conf.h). */
#include "rptsend_conf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

static const char *const rptsend_conf_keys[] = {
	"enabled", "submit", "interval", "jitter", "window", "retry", "retry_max", "give_up",
	"timeout", "report_without_failures", "https_ca_file", NULL
};

/* submit = ["127.0.0.1:25", "[::1]:25"]: host:port, tried in order. */
static int
rptsend_conf_submit(const config_setting_t *g, struct rptsend_config *cfg, struct conf_err *err)
{
	config_setting_t *a;
	const char *s;
	int r = conf_get_aggregate(g, "submit", CONFIG_TYPE_ARRAY, &a, err);

	if (r != 1)
		return r;
	if (config_setting_length(a) > RPTSEND_SUBMIT_MAX)
		return conf_error(err, a, "at most %d addresses", RPTSEND_SUBMIT_MAX);
	for (int i = 0; i < config_setting_length(a); i++) {
		if (conf_elem_string(a, (unsigned)i, &s, err) < 0)
			return -1;
		const char *colon = strrchr(s, ':');
		long port = colon ? strtol(colon + 1, NULL, 10) : 0;
		if (colon == NULL || colon == s || port < 1 || port > 65535)
			return conf_error(err, a, "%s: expected host:port (127.0.0.1:25, [::1]:25)", s);
		cfg->submit[cfg->nsubmit++] = xstrdup(s);
	}
	return 1;
}

int
rptsend_config_load(const config_setting_t *g, struct rptsend_config *cfg, struct conf_err *err)
{
	const char *ca = NULL;

	memset(cfg, 0, sizeof(*cfg));
	cfg->interval = 60;
	cfg->jitter = 900;
	cfg->window = 14400;
	cfg->retry = 600;
	cfg->retry_max = 7200;
	cfg->give_up = 86400;
	cfg->timeout = 60;
	cfg->report_without_failures = 1;
	if (g == NULL)
		return 0;
	if (conf_check_keys(g, rptsend_conf_keys, err) < 0 ||
	    conf_get_bool(g, "enabled", &cfg->enabled, err) < 0 ||
	    rptsend_conf_submit(g, cfg, err) < 0 ||
	    conf_get_int(g, "interval", 1, 3600, &cfg->interval, err) < 0 ||
	    conf_get_int(g, "jitter", 0, 43200, &cfg->jitter, err) < 0 ||
	    conf_get_int(g, "window", 0, 86400, &cfg->window, err) < 0 ||
	    conf_get_int(g, "retry", 1, 86400, &cfg->retry, err) < 0 ||
	    conf_get_int(g, "retry_max", 1, 86400, &cfg->retry_max, err) < 0 ||
	    conf_get_int(g, "give_up", 1, 7 * 86400, &cfg->give_up, err) < 0 ||
	    conf_get_int(g, "timeout", 1, 600, &cfg->timeout, err) < 0 ||
	    conf_get_bool(g, "report_without_failures", &cfg->report_without_failures, err) < 0 ||
	    conf_get_string(g, "https_ca_file", &ca, err) < 0) {
		rptsend_config_free(cfg);
		return -1;
	}
	if (ca)
		cfg->https_ca_file = xstrdup(ca);
	return 0;
}

void
rptsend_config_free(struct rptsend_config *cfg)
{
	for (size_t i = 0; i < cfg->nsubmit; i++)
		free(cfg->submit[i]);
	free(cfg->https_ca_file);
	memset(cfg, 0, sizeof(*cfg));
}

int
rptsend_config_retry(const struct rptsend_config *cfg, int attempts, time_t first, time_t now,
    time_t *next)
{
	long long delay = cfg->retry;

	for (int i = 0; i < attempts && delay < cfg->retry_max; i++)
		delay *= 2;
	if (delay > cfg->retry_max)
		delay = cfg->retry_max;
	*next = now + (time_t)delay;
	return now >= (first ? first : now) + cfg->give_up;
}

time_t
rptsend_config_due(const struct rptsend_config *cfg, const char *report_id, const char *uri,
    time_t planned)
{
	uint64_t h = 1469598103934665603ULL;

	if (cfg->window <= 0)
		return planned;
	for (const char *s = report_id; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	for (const char *s = uri; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return planned + (time_t)(h % (uint64_t)cfg->window);
}
