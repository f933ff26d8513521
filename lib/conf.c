#include "conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void
conf_path(const config_setting_t *s, char *out, size_t outsz)
{
	/* Build "tls.certificates[1].cert" from the setting up to the root. */
	const config_setting_t *chain[16];
	int n = 0;
	for (const config_setting_t *p = s; p && !config_setting_is_root(p) && n < 16;
	    p = config_setting_parent(p))
		chain[n++] = p;
	size_t o = 0;
	out[0] = '\0';
	for (int i = n - 1; i >= 0 && o < outsz; i--) {
		const char *name = config_setting_name(chain[i]);
		int w;
		if (name)
			w = snprintf(out + o, outsz - o, "%s%s", o ? "." : "", name);
		else
			w = snprintf(out + o, outsz - o, "[%d]", config_setting_index(chain[i]));
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

int
conf_error(struct conf_err *err, const config_setting_t *s, const char *fmt, ...)
{
	char path[256], what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	conf_path(s, path, sizeof(path));
	const char *file = config_setting_source_file(s);
	snprintf(err->msg, sizeof(err->msg), "%s:%u: %s: %s", file ? file : "config",
	    config_setting_source_line(s), path[0] ? path : "(top)", what);
	return -1;
}

int
conf_load(config_t *cfg, const char *path, struct conf_err *err)
{
	config_init(cfg);
	if (config_read_file(cfg, path) == CONFIG_TRUE)
		return 0;
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		snprintf(err->msg, sizeof(err->msg), "%s: cannot read file", path);
	else
		snprintf(err->msg, sizeof(err->msg), "%s:%d: %s",
		    config_error_file(cfg) ? config_error_file(cfg) : path,
		    config_error_line(cfg), config_error_text(cfg));
	config_destroy(cfg);
	return -1;
}

int
conf_check_keys(const config_setting_t *group, const char *const *allowed,
    struct conf_err *err)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			if (name && strcmp(name, *a) == 0)
				ok = 1;
		if (!ok)
			return conf_error(err, s, "unknown key");
	}
	return 0;
}

int
conf_get_string(const config_setting_t *group, const char *key,
    const char **out, struct conf_err *err)
{
	config_setting_t *s = config_setting_get_member(group, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_error(err, s, "expected a string");
	*out = config_setting_get_string(s);
	return 1;
}

int
conf_get_int(const config_setting_t *group, const char *key, long long min,
    long long max, long long *out, struct conf_err *err)
{
	config_setting_t *s = config_setting_get_member(group, key);
	if (s == NULL)
		return 0;
	long long v;
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return conf_error(err, s, "expected an integer");
	if (v < min || v > max)
		return conf_error(err, s, "%lld is out of range %lld..%lld", v, min, max);
	*out = v;
	return 1;
}

int
conf_get_bool(const config_setting_t *group, const char *key, int *out,
    struct conf_err *err)
{
	config_setting_t *s = config_setting_get_member(group, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return conf_error(err, s, "expected true or false");
	*out = config_setting_get_bool(s);
	return 1;
}

int
conf_get_aggregate(const config_setting_t *group, const char *key, int type,
    config_setting_t **out, struct conf_err *err)
{
	static const char *const names[] = {
		[CONFIG_TYPE_GROUP] = "a group { ... }",
		[CONFIG_TYPE_ARRAY] = "an array [ ... ]",
		[CONFIG_TYPE_LIST] = "a list ( ... )",
	};
	config_setting_t *s = config_setting_get_member(group, key);
	if (s == NULL)
		return 0;
	int t = config_setting_type(s);
	/* An empty list and an empty array are written alike by operators. */
	int ok = t == type || ((type == CONFIG_TYPE_ARRAY || type == CONFIG_TYPE_LIST) &&
	    (t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST));
	if (!ok)
		return conf_error(err, s, "expected %s", names[type]);
	*out = s;
	return 1;
}

int
conf_elem_string(const config_setting_t *agg, unsigned int i, const char **out,
    struct conf_err *err)
{
	config_setting_t *s = config_setting_get_elem(agg, i);
	if (s == NULL || config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_error(err, s ? s : agg, "expected a string");
	*out = config_setting_get_string(s);
	return 1;
}
