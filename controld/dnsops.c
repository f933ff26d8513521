/* controld: DNS checks and pushes (dnsops.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns.h"
#include "dnsops.h"
#include "xmalloc.h"

/* ---- configuration ---- */

static const char *const dnsops_keys[] = {
	"resolver", "timeout", "smtp_port", "https_port", "ca_file", "workers", "zones", NULL
};
static const char *const dnsops_zone_keys[] = {
	"name", "server", "tsig_name", "tsig_algorithm", "tsig_secret_file", NULL
};

static int
dnsops_str(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	if (r == 1) {
		free(*out);
		*out = xstrdup(s);
	}
	return r;
}

/* A TSIG secret: base64 on one line, in a file no one else may read (the
 * key signs changes to the fleet's DNS). Never logged. */
static int
dnsops_read_secret(const config_setting_t *s, const char *path, char **out,
    struct conf_err *err)
{
	char buf[1024];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return conf_error(err, s, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (st.st_mode & 0007)) {
		close(fd);
		return conf_error(err, s, "%s: readable by others (mode %03o): a TSIG secret "
		    "must be mode 0600 or 0640", path, (unsigned)(st.st_mode & 0777));
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return conf_error(err, s, "%s: %s", path, strerror(errno));
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	if (n == 0)
		return conf_error(err, s, "%s: empty", path);
	for (ssize_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)buf[i]) && buf[i] != '+' && buf[i] != '/' &&
		    buf[i] != '=') {
			explicit_bzero(buf, sizeof(buf));
			return conf_error(err, s, "%s: not one line of base64", path);
		}
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static int
dnsops_zone_load(const config_setting_t *z, struct dnsops_zone *zone, struct conf_err *err)
{
	const char *secret_file = NULL;

	if (config_setting_type(z) != CONFIG_TYPE_GROUP)
		return conf_error(err, z, "expected a group { name = ...; server = ...; }");
	if (conf_check_keys(z, dnsops_zone_keys, err) < 0 ||
	    dnsops_str(z, "name", &zone->name, err) < 0 ||
	    dnsops_str(z, "server", &zone->server, err) < 0 ||
	    dnsops_str(z, "tsig_name", &zone->tsig_name, err) < 0 ||
	    dnsops_str(z, "tsig_algorithm", &zone->tsig_algorithm, err) < 0 ||
	    conf_get_string(z, "tsig_secret_file", &secret_file, err) < 0)
		return -1;
	if (zone->name == NULL || zone->server == NULL)
		return conf_error(err, z, "a zone needs name and server");
	size_t len = strlen(zone->name);
	if (len > 1 && zone->name[len - 1] == '.')
		zone->name[len - 1] = '\0';
	for (char *p = zone->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!dns_name_valid(zone->name))
		return conf_error(err, z, "name: %s is not a domain name", zone->name);
	if ((zone->tsig_name == NULL) != (secret_file == NULL))
		return conf_error(err, z, "tsig_name and tsig_secret_file go together");
	if (zone->tsig_algorithm == NULL)
		zone->tsig_algorithm = xstrdup("hmac-sha256");
	if (secret_file &&
	    dnsops_read_secret(config_setting_get_member(z, "tsig_secret_file"), secret_file,
	    &zone->tsig_secret, err) < 0)
		return -1;
	return 0;
}

int
dnsops_config_load(const config_setting_t *g, struct dnsops_config *cfg, struct conf_err *err)
{
	config_setting_t *zl;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout = 10;
	cfg->smtp_port = 25;
	cfg->https_port = 443;
	cfg->workers = 2;
	if (g == NULL)
		return 0;
	if (conf_check_keys(g, dnsops_keys, err) < 0 ||
	    dnsops_str(g, "resolver", &cfg->resolver, err) < 0 ||
	    conf_get_int(g, "timeout", 1, 300, &cfg->timeout, err) < 0 ||
	    conf_get_int(g, "smtp_port", 1, 65535, &cfg->smtp_port, err) < 0 ||
	    conf_get_int(g, "https_port", 1, 65535, &cfg->https_port, err) < 0 ||
	    dnsops_str(g, "ca_file", &cfg->ca_file, err) < 0 ||
	    conf_get_int(g, "workers", 1, 16, &cfg->workers, err) < 0 ||
	    (r = conf_get_aggregate(g, "zones", CONFIG_TYPE_LIST, &zl, err)) < 0)
		goto fail;
	if (r == 1) {
		cfg->nzones = (size_t)config_setting_length(zl);
		cfg->zones = xcalloc(cfg->nzones ? cfg->nzones : 1, sizeof(*cfg->zones));
		for (size_t i = 0; i < cfg->nzones; i++)
			if (dnsops_zone_load(config_setting_get_elem(zl, (unsigned)i), &cfg->zones[i],
			    err) < 0)
				goto fail;
	}
	return 0;
fail:
	dnsops_config_free(cfg);
	return -1;
}

void
dnsops_config_free(struct dnsops_config *cfg)
{
	for (size_t i = 0; i < cfg->nzones; i++) {
		struct dnsops_zone *z = &cfg->zones[i];
		free(z->name);
		free(z->server);
		free(z->tsig_name);
		free(z->tsig_algorithm);
		if (z->tsig_secret) {
			explicit_bzero(z->tsig_secret, strlen(z->tsig_secret));
			free(z->tsig_secret);
		}
	}
	free(cfg->zones);
	free(cfg->resolver);
	free(cfg->ca_file);
	memset(cfg, 0, sizeof(*cfg));
}

const struct dnsops_zone *
dnsops_zone_of(const struct dnsops_config *cfg, const char *owner)
{
	const struct dnsops_zone *best = NULL;
	size_t olen = strlen(owner), bestlen = 0;

	if (olen > 0 && owner[olen - 1] == '.')
		olen--;
	for (size_t i = 0; i < cfg->nzones; i++) {
		size_t zlen = strlen(cfg->zones[i].name);
		if (zlen > olen || zlen < bestlen)
			continue;
		const char *tail = owner + olen - zlen;
		if (strncasecmp(tail, cfg->zones[i].name, zlen) != 0)
			continue;
		if (zlen < olen && tail[-1] != '.')
			continue;
		best = &cfg->zones[i];
		bestlen = zlen;
	}
	return best;
}
