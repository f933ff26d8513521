/* Typed, range-checked access to a libconfig file.
 *
 * libconfig does the parsing (a packaged, documented syntax with line numbers in
 * its errors); this module adds what an operator needs on top: unknown keys are
 * errors, every value is type- and range-checked, and every message names the
 * file, the line and the key. Each getter returns 1 when the key was set, 0 when
 * absent (out untouched: the caller's default stands), -1 on error (err filled). */
#ifndef MXFLEET_CONF_H
#define MXFLEET_CONF_H

#include <libconfig.h>
#include <stddef.h>

struct conf_err {
	char	msg[512];
};

int conf_load(config_t *cfg, const char *path, struct conf_err *err);
int conf_check_keys(const config_setting_t *group, const char *const *allowed,
    struct conf_err *err);
int conf_get_string(const config_setting_t *group, const char *key,
    const char **out, struct conf_err *err);
int conf_get_int(const config_setting_t *group, const char *key, long long min,
    long long max, long long *out, struct conf_err *err);
int conf_get_bool(const config_setting_t *group, const char *key, int *out,
    struct conf_err *err);
/* The member as an aggregate of the given type (CONFIG_TYPE_GROUP/LIST/ARRAY). */
int conf_get_aggregate(const config_setting_t *group, const char *key, int type,
    config_setting_t **out, struct conf_err *err);
/* Element i of an array or list that must be a string. */
int conf_elem_string(const config_setting_t *agg, unsigned int i, const char **out,
    struct conf_err *err);
/* Format an error about setting s ("file:line: key: ..."). Returns -1. */
int conf_error(struct conf_err *err, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
