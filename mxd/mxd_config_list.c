#include "mxd_config_list.h"
#include "netaddr.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <sys/socket.h>

static const char *const mxd_config_list_cert_keys[] = { "cert", "key", NULL };

int
mxd_config_int(const config_setting_t *g, const char *key, long long min, long long max,
    int *out, struct conf_err *err)
{
	long long v;
	int r = conf_get_int(g, key, min, max, &v, err);
	if (r == 1)
		*out = (int)v;
	return r;
}

int
mxd_config_strdup(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	if (r == 1) {
		free(*out);
		*out = xstrdup(s);
	}
	return r;
}

void
mxd_config_list_addrs_free(char **addrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(addrs[i]);
	free(addrs);
}

int
mxd_config_list_addrs(const config_setting_t *array, char ***out, size_t *n,
    struct conf_err *err)
{
	int len = config_setting_length(array);
	const char *s;

	mxd_config_list_addrs_free(*out, *n);
	*out = xcalloc((size_t)len + 1, sizeof(char *));
	*n = 0;
	for (int i = 0; i < len; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (conf_elem_string(array, (unsigned)i, &s, err) < 0)
			return -1;
		if (netaddr_parse_hostport(s, &ss, &sl) < 0)
			return conf_error(err, config_setting_get_elem(array, (unsigned)i),
			    "expected IPv4:PORT or [IPv6]:PORT");
		(*out)[(*n)++] = xstrdup(s);
	}
	return 0;
}

void
mxd_config_list_certs_free(struct tls_cert_spec *certs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)certs[i].cert);
		free((char *)certs[i].key);
	}
	free(certs);
}

int
mxd_config_list_certs(const config_setting_t *list, struct tls_cert_spec **out, size_t *n,
    struct conf_err *err)
{
	int len = config_setting_length(list);

	mxd_config_list_certs_free(*out, *n);
	*out = xcalloc((size_t)len + 1, sizeof(**out));
	*n = 0;
	for (int i = 0; i < len; i++) {
		config_setting_t *c = config_setting_get_elem(list, (unsigned)i);
		const char *cert = NULL, *key = NULL;
		if (!config_setting_is_group(c))
			return conf_error(err, c, "expected a group { cert = ...; key = ...; }");
		if (conf_check_keys(c, mxd_config_list_cert_keys, err) < 0 ||
		    conf_get_string(c, "cert", &cert, err) < 0 ||
		    conf_get_string(c, "key", &key, err) < 0)
			return -1;
		if (cert == NULL || key == NULL)
			return conf_error(err, c, "both cert and key are required");
		(*out)[*n].cert = xstrdup(cert);
		(*out)[*n].key = xstrdup(key);
		(*n)++;
	}
	return 0;
}
