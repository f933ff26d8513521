#include "mxd_config.h"
#include "rptspool.h"
#include "mxd_config_list.h"
#include "mxd_config_control.h"
#include "https_config.h"
#include "mxd_identity.h"
#include "mxd_keyswitch.h"
#include "conf.h"
#include "dnsname.h"
#include "rcpt_addr.h"
#include "log.h"
#include "smtp_parser.h"
#include "xmalloc.h"
#include "mxfleet.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const mxd_config_top_keys[] = {
	"hostname", "listen", "workers", "user", "spool_dir", "log_level", "log_syslog",
	"core_dumps",
	"trusted_networks", "relay_next_hop", "received_header", "domains", "tls",
	"limits", "delivery", "control", "resolver", "routes", "tls_policies",
	"submission_auth", "recipient_delimiter", "recipient_verify", "public_addresses",
	"mta_sts_listen", "mta_sts_certs", NULL
};
static const char *const mxd_config_verify_keys[] = {
	"timeout", "positive_ttl", "negative_ttl", "cache_size", NULL
};
static const char *const mxd_config_route_keys[] = {
	"sender_domain", "recipient_domain", "min_attempt", "transport", NULL
};
static const char *const mxd_config_policy_keys[] = { "domain", "mode", NULL };
static const char *const mxd_config_sasl_keys[] = { "server", "user", "password_file", NULL };
static const char *const mxd_tls_mode_names[] = {
	[MXD_TLS_NONE] = "none", [MXD_TLS_MAY] = "may", [MXD_TLS_ENCRYPT] = "encrypt",
	[MXD_TLS_DANE] = "dane", [MXD_TLS_DANE_ONLY] = "dane-only", [MXD_TLS_VERIFY] = "verify",
	[MXD_TLS_SECURE] = "secure",
};
static const char *const mxd_config_tls_keys[] = {
	"certificates", "min_version", "session_tickets", "next_key", "next_cert", NULL
};
static const char *const mxd_config_domain_keys[] = {
	"name", "next_hop", "recipient_check", "recipients", "recipients_file", NULL
};
static const char *const mxd_config_limit_keys[] = {
	"message_size", "recipients", "errors", "junk_commands", "connections_per_ip", "connections",
	"command_timeout", "data_timeout", "tls_handshake_timeout", "shutdown_timeout", NULL
};
static const char *const mxd_config_delivery_keys[] = {
	"retry_min", "retry_max", "max_age", "next_hop_tls", "remote_port", "sts_port",
	"ca_file", "sts_cache_dir", "delay_dsn", "sts_refresh_interval", "source_ipv4",
	"source_ipv6", "nexthop_agents", "mx_agents", "destination_concurrency",
	"initial_concurrency", "destinations", "dead_after", "dead_time", "recipient_limit",
	"connection_cache_time", "nexthop_concurrency", "mx_concurrency",
	"connect_timeout", "command_timeout", "data_timeout", "transaction_timeout",
	"min_data_rate", "mx_address_limit", "mx_session_limit", NULL
};
static const char *const mxd_config_dest_keys[] = { "name", "concurrency", NULL };

int
mxd_tls_mode_parse(const char *mode)
{
	for (size_t i = 1; i < sizeof(mxd_tls_mode_names) / sizeof(mxd_tls_mode_names[0]); i++)
		if (strcmp(mode, mxd_tls_mode_names[i]) == 0)
			return (int)i;
	return -1;
}

static int
mxd_config_tls(struct mxd_config *cfg, const config_setting_t *tls, struct conf_err *err)
{
	config_setting_t *certs;
	const char *s;
	int r;

	if (conf_check_keys(tls, mxd_config_tls_keys, err) < 0)
		return -1;
	if ((r = conf_get_string(tls, "min_version", &s, err)) < 0)
		return -1;
	if (r == 1 && (cfg->tls_min_version = tls_version_parse(s)) < 0)
		return conf_error(err, config_setting_get_member(tls, "min_version"),
		    "expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3");
	if (conf_get_bool(tls, "session_tickets", &cfg->session_tickets, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(tls, "certificates", CONFIG_TYPE_LIST, &certs, err)) < 0)
		return -1;
	return r == 1 ? mxd_config_list_certs(certs, &cfg->certs, &cfg->ncerts, err) : 0;
}

/* One entry of a domain's list into set; -1 with why when refused. */
static int
mxd_config_rcpt_entry(struct rcpt_set *set, const char *domain, const char *entry,
    char *why, size_t whysz)
{
	char local[RCPT_ADDR_LOCAL_MAX + 1], reason[200];
	if (rcpt_addr_local(entry, domain, local, sizeof(local), reason, sizeof(reason)) < 0) {
		snprintf(why, whysz, "\"%.300s\": %s", entry, reason);
		return -1;
	}
	rcpt_set_add(set, local);
	return 0;
}

/* recipients_file: one address or local part per line; blank lines and
 * lines starting with '#' are skipped, white space around an entry too. A
 * line over MXD_RCPT_LINE_MAX bytes or a NUL byte is an error: not a list,
 * or not the file meant (/dev/zero would otherwise be read for ever). */
#define MXD_RCPT_LINE_MAX	1024

/* The next line of f without its newline into line; 1, 0 at the end, -1
 * with why set. */
static int
mxd_config_rcpt_line(FILE *f, char *line, size_t size, char *why, size_t whysz)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (c == '\0') {
			snprintf(why, whysz, "NUL byte");
			return -1;
		}
		if (n + 1 >= size) {
			snprintf(why, whysz, "line longer than %zu bytes", size - 1);
			return -1;
		}
		line[n++] = (char)c;
	}
	line[n] = '\0';
	return c != EOF || n > 0;
}

static int
mxd_config_rcpt_file(struct rcpt_set *set, const char *domain, const char *path,
    char *why, size_t whysz)
{
	FILE *f = fopen(path, "re");
	char line[MXD_RCPT_LINE_MAX + 1], line_why[600];
	unsigned lineno = 0;
	int r;

	if (f == NULL) {
		snprintf(why, whysz, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		lineno++;
		if ((r = mxd_config_rcpt_line(f, line, sizeof(line), line_why,
		    sizeof(line_why))) <= 0)
			break;
		char *p = line, *e = line + strlen(line);
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		*e = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		if (mxd_config_rcpt_entry(set, domain, p, line_why, sizeof(line_why)) < 0) {
			r = -1;
			break;
		}
	}
	if (r < 0)
		snprintf(why, whysz, "%s:%u: %s", path, lineno, line_why);
	else if (ferror(f)) {
		snprintf(why, whysz, "%s: %s", path, strerror(errno));
		r = -1;
	}
	fclose(f);
	return r;
}

/* A domain's recipient check: recipient_check, recipients, recipients_file.
 * A list (either key) means "list" unless recipient_check says otherwise. */
static int
mxd_config_domain_rcpts(struct mxd_domain *dom, const config_setting_t *d, struct conf_err *err)
{
	const char *mode = NULL, *file = NULL;
	config_setting_t *arr = NULL;
	char why[900];
	int r, m = RCPT_CHECK_UNSET;

	if (conf_get_string(d, "recipient_check", &mode, err) < 0 ||
	    conf_get_string(d, "recipients_file", &file, err) < 0 ||
	    (r = conf_get_aggregate(d, "recipients", CONFIG_TYPE_ARRAY, &arr, err)) < 0)
		return -1;
	if (mode != NULL && (m = rcpt_check_mode_parse(mode)) < 0)
		return conf_error(err, config_setting_get_member(d, "recipient_check"),
		    "expected any, list or verify");
	if (m == RCPT_CHECK_UNSET && (arr != NULL || file != NULL))
		m = RCPT_CHECK_LIST;
	if ((m == RCPT_CHECK_ANY || m == RCPT_CHECK_VERIFY) && (arr != NULL || file != NULL))
		return conf_error(err, d, "recipient_check %s takes no recipients list",
		    rcpt_check_mode_name((enum rcpt_check_mode)m));
	if (m == RCPT_CHECK_LIST && arr == NULL && file == NULL)
		return conf_error(err, d, "recipient_check list needs recipients or recipients_file");
	if (m != RCPT_CHECK_LIST) {
		rcpt_check_set(&dom->rcpt, (enum rcpt_check_mode)m, NULL);
		return 0;
	}
	struct rcpt_set *set = rcpt_set_new();
	for (int i = 0; arr != NULL && i < config_setting_length(arr); i++) {
		const char *entry;
		if (conf_elem_string(arr, (unsigned)i, &entry, err) < 0)
			goto fail;
		if (mxd_config_rcpt_entry(set, dom->name, entry, why, sizeof(why)) < 0) {
			conf_error(err, config_setting_get_elem(arr, (unsigned)i), "%s", why);
			goto fail;
		}
	}
	if (file != NULL && mxd_config_rcpt_file(set, dom->name, file, why, sizeof(why)) < 0) {
		conf_error(err, config_setting_get_member(d, "recipients_file"), "%s", why);
		goto fail;
	}
	rcpt_set_seal(set);
	rcpt_check_set(&dom->rcpt, RCPT_CHECK_LIST, set);
	return 0;
fail:
	rcpt_set_free(set);
	return -1;
}

static int
mxd_config_domains(struct mxd_config *cfg, const config_setting_t *list, struct conf_err *err)
{
	int n = config_setting_length(list);
	cfg->domains = xcalloc((size_t)n + 1, sizeof(*cfg->domains));
	for (int i = 0; i < n; i++) {
		config_setting_t *d = config_setting_get_elem(list, (unsigned)i);
		const char *name = NULL, *nh = NULL;
		if (!config_setting_is_group(d))
			return conf_error(err, d, "expected a group { name = ...; next_hop = ...; }");
		if (conf_check_keys(d, mxd_config_domain_keys, err) < 0 ||
		    conf_get_string(d, "name", &name, err) < 0 ||
		    conf_get_string(d, "next_hop", &nh, err) < 0)
			return -1;
		if (name == NULL || nh == NULL)
			return conf_error(err, d, "both name and next_hop are required");
		struct mxd_domain *dom = &cfg->domains[cfg->ndomains];
		char why[200];
		if (mxd_nexthop_parse(nh, &dom->nh, 0, why, sizeof(why)) < 0)
			return conf_error(err, config_setting_get_member(d, "next_hop"), "%s", why);
		if (name[0] == '\0' || strchr(name, '@') || strchr(name, ' '))
			return conf_error(err, config_setting_get_member(d, "name"),
			    "not a domain name");
		dom->name = xstrdup(name);
		dom->next_hop = xstrdup(nh);
		cfg->ndomains++;
		if (mxd_config_domain_rcpts(dom, d, err) < 0)
			return -1;
	}
	return 0;
}

/* A domain as routes and policies match it: not an address, no spaces. */
static int
mxd_config_domain_ok(const char *s, int allow_dot)
{
	if (allow_dot && s[0] == '.')
		s++;
	return s[0] != '\0' && strlen(s) < 254 && strpbrk(s, "@ \t[]:") == NULL;
}

static void
mxd_route_add(struct mxd_config *cfg, const char *sender, const char *rcpt, int min_attempt,
    const char *transport, const struct mxd_nexthop *nh)
{
	cfg->routes = xreallocarray(cfg->routes, cfg->nroutes + 1, sizeof(*cfg->routes));
	struct mxd_route *rt = &cfg->routes[cfg->nroutes++];
	rt->sender_domain = xstrdup(sender ? sender : "");
	rt->recipient_domain = xstrdup(rcpt ? rcpt : "");
	rt->min_attempt = min_attempt;
	rt->transport = xstrdup(transport);
	rt->nh = *nh;
}

static int
mxd_config_routes(struct mxd_config *cfg, const config_setting_t *list, struct conf_err *err)
{
	int n = config_setting_length(list);
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *sender = NULL, *rcpt = NULL, *transport = NULL;
		int min_attempt = 0;
		struct mxd_nexthop nh;
		char why[200];
		if (!config_setting_is_group(e))
			return conf_error(err, e, "expected a group { recipient_domain = ...; "
			    "transport = ...; }");
		if (conf_check_keys(e, mxd_config_route_keys, err) < 0 ||
		    conf_get_string(e, "sender_domain", &sender, err) < 0 ||
		    conf_get_string(e, "recipient_domain", &rcpt, err) < 0 ||
		    mxd_config_int(e, "min_attempt", 0, 100000, &min_attempt, err) < 0 ||
		    conf_get_string(e, "transport", &transport, err) < 0)
			return -1;
		if (transport == NULL)
			return conf_error(err, e, "transport is required");
		if (mxd_nexthop_parse(transport, &nh, 1, why, sizeof(why)) < 0)
			return conf_error(err, config_setting_get_member(e, "transport"), "%s", why);
		if (sender && sender[0] && !mxd_config_domain_ok(sender, 0))
			return conf_error(err, config_setting_get_member(e, "sender_domain"),
			    "not a domain name");
		if (rcpt && rcpt[0] && !mxd_config_domain_ok(rcpt, 0))
			return conf_error(err, config_setting_get_member(e, "recipient_domain"),
			    "not a domain name");
		mxd_route_add(cfg, sender, rcpt, min_attempt, transport, &nh);
	}
	return 0;
}

static void
mxd_policy_add(struct mxd_config *cfg, const char *domain, const char *mode, int level)
{
	cfg->policies = xreallocarray(cfg->policies, cfg->npolicies + 1, sizeof(*cfg->policies));
	struct mxd_tls_policy *p = &cfg->policies[cfg->npolicies++];
	p->domain = xstrdup(domain);
	p->mode = xstrdup(mode);
	p->level = (enum mxd_tls_mode)level;
}

static int
mxd_config_policies(struct mxd_config *cfg, const config_setting_t *list, struct conf_err *err)
{
	int n = config_setting_length(list);
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *domain = NULL, *mode = NULL;
		int level;
		if (!config_setting_is_group(e))
			return conf_error(err, e, "expected a group { domain = ...; mode = ...; }");
		if (conf_check_keys(e, mxd_config_policy_keys, err) < 0 ||
		    conf_get_string(e, "domain", &domain, err) < 0 ||
		    conf_get_string(e, "mode", &mode, err) < 0)
			return -1;
		if (domain == NULL || mode == NULL)
			return conf_error(err, e, "both domain and mode are required");
		if (!mxd_config_domain_ok(domain, 1))
			return conf_error(err, config_setting_get_member(e, "domain"),
			    "not a domain name (\".example.org\" covers its subdomains)");
		if ((level = mxd_tls_mode_parse(mode)) < 0)
			return conf_error(err, config_setting_get_member(e, "mode"), "expected none, "
			    "may, encrypt, dane, dane-only, verify or secure");
		mxd_policy_add(cfg, domain, mode, level);
	}
	return 0;
}

/* The password is the file's first line. The file is read now, while the
 * master can (it may be readable by root only); it is never logged. */
static int
mxd_config_sasls(struct mxd_config *cfg, const config_setting_t *list, struct conf_err *err)
{
	int n = config_setting_length(list);
	cfg->sasl = xcalloc((size_t)n + 1, sizeof(*cfg->sasl));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *server = NULL, *user = NULL, *pwfile = NULL;
		char host[256], pw[1024];
		int port;
		if (!config_setting_is_group(e))
			return conf_error(err, e, "expected a group { server = \"HOST:PORT\"; user = "
			    "...; password_file = ...; }");
		if (conf_check_keys(e, mxd_config_sasl_keys, err) < 0 ||
		    conf_get_string(e, "server", &server, err) < 0 ||
		    conf_get_string(e, "user", &user, err) < 0 ||
		    conf_get_string(e, "password_file", &pwfile, err) < 0)
			return -1;
		if (server == NULL || user == NULL || pwfile == NULL)
			return conf_error(err, e, "server, user and password_file are required");
		if (netaddr_split_hostport(server, host, sizeof(host), &port) < 0)
			return conf_error(err, config_setting_get_member(e, "server"),
			    "expected HOST:PORT, as in the submission transport");
		int fd = open(pwfile, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return conf_error(err, config_setting_get_member(e, "password_file"),
			    "cannot open %s: %s", pwfile, strerror(errno));
		ssize_t len = read(fd, pw, sizeof(pw) - 1);
		close(fd);
		if (len < 0)
			return conf_error(err, config_setting_get_member(e, "password_file"),
			    "cannot read %s: %s", pwfile, strerror(errno));
		pw[len] = '\0';
		pw[strcspn(pw, "\r\n")] = '\0';
		if (pw[0] == '\0')
			return conf_error(err, config_setting_get_member(e, "password_file"),
			    "%s holds no password on its first line", pwfile);
		cfg->sasl[cfg->nsasl].server = xstrdup(server);
		cfg->sasl[cfg->nsasl].user = xstrdup(user);
		cfg->sasl[cfg->nsasl].password = xstrdup(pw);
		cfg->nsasl++;
		explicit_bzero(pw, sizeof(pw));
	}
	return 0;
}



/* delivery.source_ipv4/6: a literal address of that family, kept in its
 * canonical form. */
static int
mxd_config_source(const config_setting_t *g, const char *key, int af, char *out, size_t outsz,
    struct conf_err *err)
{
	const char *s;
	unsigned char a[16];
	int r = conf_get_string(g, key, &s, err);
	if (r <= 0)
		return r;
	if (inet_pton(af, s, a) != 1 || inet_ntop(af, a, out, (socklen_t)outsz) == NULL)
		return conf_error(err, config_setting_get_member(g, key), af == AF_INET ?
		    "expected an IPv4 address such as 192.0.2.25" :
		    "expected an IPv6 address such as 2001:db8::25");
	return 0;
}

/* The limits group: what one session or message may use. */
static int
mxd_config_limits(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	long long size;
	int r;

	if (conf_check_keys(g, mxd_config_limit_keys, err) < 0)
		return -1;
	if ((r = conf_get_int(g, "message_size", 1024, 1LL << 40, &size, err)) < 0)
		return -1;
	if (r == 1)
		cfg->message_size = (uint64_t)size;
	/* recipients: a message's spool header (~1 KiB per recipient at worst,
	 * status line included) must stay under SPOOL_HDR_MAX. */
	if (mxd_config_int(g, "recipients", 1, 50000, &cfg->max_recipients, err) < 0 ||
	    mxd_config_int(g, "errors", 1, 1000, &cfg->max_errors, err) < 0 ||
	    mxd_config_int(g, "junk_commands", 1, 1000000, &cfg->junk_commands, err) < 0 ||
	    mxd_config_int(g, "connections_per_ip", 1, 100000, &cfg->connections_per_ip, err) < 0 ||
	    mxd_config_int(g, "connections", 1, 1000000, &cfg->max_connections, err) < 0 ||
	    mxd_config_int(g, "command_timeout", 1, 86400, &cfg->command_timeout, err) < 0 ||
	    mxd_config_int(g, "data_timeout", 1, 86400, &cfg->data_timeout, err) < 0 ||
	    mxd_config_int(g, "tls_handshake_timeout", 1, 3600, &cfg->tls_handshake_timeout, err) < 0 ||
	    mxd_config_int(g, "shutdown_timeout", 0, 3600, &cfg->shutdown_timeout, err) < 0)
		return -1;
	return 0;
}

/* The recipient_verify group: probes of recipient_check = "verify". */
static int
mxd_config_verify(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	if (conf_check_keys(g, mxd_config_verify_keys, err) < 0 ||
	    mxd_config_int(g, "timeout", 1, 300, &cfg->verify_timeout, err) < 0 ||
	    mxd_config_int(g, "positive_ttl", 1, 30 * 86400, &cfg->verify_positive_ttl, err) < 0 ||
	    mxd_config_int(g, "negative_ttl", 1, 30 * 86400, &cfg->verify_negative_ttl, err) < 0 ||
	    mxd_config_int(g, "cache_size", 1, 10000000, &cfg->verify_cache_size, err) < 0)
		return -1;
	return 0;
}

/* delivery.destinations = ( { name = "example.com"; concurrency = 5; }, ... ) */
static int
mxd_config_dest_limits(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	config_setting_t *list;
	int r = conf_get_aggregate(g, "destinations", CONFIG_TYPE_LIST, &list, err);
	if (r <= 0)
		return r;
	int n = config_setting_length(list);
	cfg->dest_limits = xcalloc((size_t)n + 1, sizeof(*cfg->dest_limits));
	for (int i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const char *name = NULL;
		struct mxd_dest_limit *l = &cfg->dest_limits[cfg->ndest_limits];
		if (!config_setting_is_group(e))
			return conf_error(err, e, "expected a group { name = ...; concurrency = N; }");
		if (conf_check_keys(e, mxd_config_dest_keys, err) < 0 ||
		    conf_get_string(e, "name", &name, err) < 0 ||
		    mxd_config_int(e, "concurrency", 1, 10000, &l->concurrency, err) < 0)
			return -1;
		if (name == NULL || name[0] == '\0' || l->concurrency == 0)
			return conf_error(err, e, "both name and concurrency are required");
		l->name = xstrdup(name);
		cfg->ndest_limits++;
	}
	return 0;
}

/* The agent pool's keys of the delivery group (docs/delivery.md#agents). */
static int
mxd_config_pool(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	if (mxd_config_int(g, "nexthop_agents", 1, 5000, &cfg->nexthop_agents, err) < 0 ||
	    mxd_config_int(g, "mx_agents", 1, 5000, &cfg->mx_agents, err) < 0 ||
	    mxd_config_int(g, "destination_concurrency", 1, 10000, &cfg->destination_concurrency,
	    err) < 0 ||
	    mxd_config_int(g, "nexthop_concurrency", 1, 10000, &cfg->nexthop_concurrency, err) < 0 ||
	    mxd_config_int(g, "mx_concurrency", 1, 10000, &cfg->mx_concurrency, err) < 0 ||
	    mxd_config_int(g, "initial_concurrency", 1, 10000, &cfg->initial_concurrency, err) < 0 ||
	    mxd_config_int(g, "dead_after", 1, 1000, &cfg->dead_after, err) < 0 ||
	    mxd_config_int(g, "dead_time", 1, 86400, &cfg->dead_time, err) < 0 ||
	    mxd_config_int(g, "recipient_limit", 1, 1000, &cfg->recipient_limit, err) < 0 ||
	    mxd_config_int(g, "connection_cache_time", 0, 3600, &cfg->connection_cache_time,
	    err) < 0)
		return -1;
	return mxd_config_dest_limits(cfg, g, err);
}

/* The delivery client's deadlines and the MX walk's caps (docs/delivery.md,
 * "Deadlines and limits"). 0 for a cap: no limit, as in Postfix. */
static int
mxd_config_deadlines(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err)
{
	return mxd_config_int(g, "connect_timeout", 1, 3600, &cfg->smtp_connect_timeout, err) < 0 ||
	    mxd_config_int(g, "command_timeout", 1, 3600, &cfg->smtp_command_timeout, err) < 0 ||
	    mxd_config_int(g, "data_timeout", 1, 3600, &cfg->smtp_data_timeout, err) < 0 ||
	    mxd_config_int(g, "transaction_timeout", 1, 86400, &cfg->smtp_transaction_timeout,
	    err) < 0 ||
	    mxd_config_int(g, "min_data_rate", 1, 1 << 30, &cfg->smtp_min_data_rate, err) < 0 ||
	    mxd_config_int(g, "mx_address_limit", 0, 100000, &cfg->mx_address_limit, err) < 0 ||
	    mxd_config_int(g, "mx_session_limit", 0, 100000, &cfg->mx_session_limit, err) < 0 ?
	    -1 : 0;
}

static int
mxd_config_parse(struct mxd_config *cfg, config_t *lc, struct conf_err *err)
{
	config_setting_t *root = config_root_setting(lc), *g;
	const char *s;
	int r;

	if (conf_check_keys(root, mxd_config_top_keys, err) < 0)
		return -1;
	if (mxd_config_strdup(root, "hostname", &cfg->hostname, err) < 0 ||
	    mxd_config_strdup(root, "user", &cfg->user, err) < 0 ||
	    mxd_config_strdup(root, "spool_dir", &cfg->spool_dir, err) < 0 ||
	    mxd_config_int(root, "workers", 1, 64, &cfg->workers, err) < 0 ||
	    conf_get_bool(root, "log_syslog", &cfg->log_syslog, err) < 0 ||
	    conf_get_bool(root, "core_dumps", &cfg->core_dumps, err) < 0 ||
	    conf_get_bool(root, "received_header", &cfg->received_header, err) < 0)
		return -1;
	if ((r = conf_get_string(root, "log_level", &s, err)) < 0)
		return -1;
	if (r == 1 && log_level_parse(s, &cfg->log_level) < 0)
		return conf_error(err, config_setting_get_member(root, "log_level"),
		    "expected debug, info, warn or error");
	if ((r = conf_get_aggregate(root, "listen", CONFIG_TYPE_ARRAY, &g, err)) < 0)
		return -1;
	if (r == 1 && config_setting_length(g) == 0)
		return conf_error(err, g, "at least one address is needed");
	if (r == 1 && mxd_config_list_addrs(g, &cfg->listen, &cfg->nlisten, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "trusted_networks", CONFIG_TYPE_ARRAY, &g, err)) < 0)
		return -1;
	if (r == 1) {
		int n = config_setting_length(g);
		cfg->trusted = xcalloc((size_t)n + 1, sizeof(*cfg->trusted));
		for (int i = 0; i < n; i++) {
			if (conf_elem_string(g, (unsigned)i, &s, err) < 0)
				return -1;
			if (netaddr_parse_cidr(s, &cfg->trusted[cfg->ntrusted++]) < 0)
				return conf_error(err, config_setting_get_elem(g, (unsigned)i),
				    "expected a network like 192.0.2.0/24 or 2001:db8::/32");
		}
	}
	if (mxd_config_strdup(root, "relay_next_hop", &cfg->relay_next_hop, err) < 0 ||
	    mxd_config_strdup(root, "resolver", &cfg->resolver, err) < 0 ||
	    mxd_config_strdup(root, "recipient_delimiter", &cfg->recipient_delimiter, err) < 0)
		return -1;
	if (cfg->recipient_delimiter && (cfg->recipient_delimiter[0] == '\0' ||
	    strlen(cfg->recipient_delimiter) > 8 ||
	    strspn(cfg->recipient_delimiter, "+-_=.#%&") != strlen(cfg->recipient_delimiter)))
		return conf_error(err, config_setting_get_member(root, "recipient_delimiter"),
		    "expected one to eight of the characters + - _ = . # %% &");
	char why[200];
	if (cfg->relay_next_hop &&
	    mxd_nexthop_parse(cfg->relay_next_hop, &cfg->relay_nh, 0, why, sizeof(why)) < 0)
		return conf_error(err, config_setting_get_member(root, "relay_next_hop"), "%s", why);
	if ((r = conf_get_aggregate(root, "routes", CONFIG_TYPE_LIST, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_routes(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "tls_policies", CONFIG_TYPE_LIST, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_policies(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "submission_auth", CONFIG_TYPE_LIST, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_sasls(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "domains", CONFIG_TYPE_LIST, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_domains(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "tls", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if ((r == 1 && mxd_config_tls(cfg, g, err) < 0) || mxd_identity_config(cfg, root, err) < 0)
		return -1;
	if (r == 1 && mxd_keyswitch_config(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "limits", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_limits(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "recipient_verify", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_verify(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "control", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if (r == 1 && mxd_config_control(cfg, g, err) < 0)
		return -1;
	if ((r = conf_get_aggregate(root, "delivery", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if (r == 1) {
		if (conf_check_keys(g, mxd_config_delivery_keys, err) < 0)
			return -1;
		if (mxd_config_int(g, "delay_dsn", 0, 8640000, &cfg->delay_dsn, err) < 0 ||
		    mxd_config_int(g, "sts_refresh_interval", 1, 86400, &cfg->sts_refresh_interval,
		    err) < 0 ||
		    mxd_config_int(g, "sts_port", 1, 65535, &cfg->sts_port, err) < 0 ||
		    mxd_config_strdup(g, "ca_file", &cfg->ca_file, err) < 0 ||
		    mxd_config_strdup(g, "sts_cache_dir", &cfg->sts_cache_dir, err) < 0 ||
		    mxd_config_int(g, "remote_port", 1, 65535, &cfg->remote_port, err) < 0 ||
		    mxd_config_int(g, "retry_min", 1, 86400, &cfg->retry_min, err) < 0 ||
		    mxd_config_int(g, "retry_max", 1, 864000, &cfg->retry_max, err) < 0 ||
		    mxd_config_int(g, "max_age", 1, 8640000, &cfg->max_age, err) < 0)
			return -1;
		if ((r = conf_get_string(g, "next_hop_tls", &s, err)) < 0)
			return -1;
		if (r == 1) {
			if (strcmp(s, "may") == 0)
				cfg->next_hop_tls = 1;
			else if (strcmp(s, "none") == 0)
				cfg->next_hop_tls = 0;
			else
				return conf_error(err, config_setting_get_member(g, "next_hop_tls"),
				    "expected may or none");
		}
		if (cfg->retry_max < cfg->retry_min)
			return conf_error(err, g, "retry_max is smaller than retry_min");
		if (mxd_config_pool(cfg, g, err) < 0)
			return -1;
		if (mxd_config_source(g, "source_ipv4", AF_INET, cfg->source_ipv4,
		    sizeof(cfg->source_ipv4), err) < 0 ||
		    mxd_config_source(g, "source_ipv6", AF_INET6, cfg->source_ipv6,
		    sizeof(cfg->source_ipv6), err) < 0)
			return -1;
		if (mxd_config_deadlines(cfg, g, err) < 0)
			return -1;
	}
	return https_config_parse(cfg, root, err);
}

int
mxd_config_dest_concurrency(const struct mxd_config *cfg, const char *name, int mx)
{
	for (size_t i = 0; i < cfg->ndest_limits; i++)
		if (strcasecmp(cfg->dest_limits[i].name, name) == 0)
			return cfg->dest_limits[i].concurrency;
	int per_class = mx ? cfg->mx_concurrency : cfg->nexthop_concurrency;
	return per_class > 0 ? per_class : cfg->destination_concurrency;
}

static void mxd_config_merge_snapshot(struct mxd_config *cfg);

int
mxd_config_load(const char *path, struct mxd_config **out, char *err, size_t errsz)
{
	struct mxd_config *cfg = xcalloc(1, sizeof(*cfg));
	struct conf_err cerr;
	config_t lc;
	char host[256];

	cfg->path = xstrdup(path);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->listen = xcalloc(2, sizeof(char *));
	cfg->listen[0] = xstrdup("0.0.0.0:25");
	cfg->listen[1] = xstrdup("[::]:25");
	cfg->nlisten = 2;
	cfg->workers = 1;
	cfg->spool_dir = xstrdup("/var/spool/mxd");
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->received_header = 1;
	cfg->tls_min_version = TLS1_2_VERSION;
	cfg->message_size = 52428800;
	cfg->max_recipients = 1000;
	cfg->max_errors = 10;
	cfg->junk_commands = 100;
	cfg->verify_timeout = 10;
	cfg->verify_positive_ttl = 3600;
	cfg->verify_negative_ttl = 600;
	cfg->verify_cache_size = 100000;
	cfg->connections_per_ip = 20;
	cfg->max_connections = 1000;
	cfg->command_timeout = 300;
	cfg->data_timeout = 300;
	cfg->tls_handshake_timeout = 30;
	cfg->shutdown_timeout = 30;
	cfg->nexthop_agents = 200;
	cfg->mx_agents = 200;
	cfg->destination_concurrency = 20;
	cfg->initial_concurrency = 5;
	cfg->dead_after = 5;
	cfg->dead_time = 300;
	cfg->recipient_limit = 50;
	cfg->connection_cache_time = 2;
	cfg->retry_min = 300;
	cfg->retry_max = 14400;
	cfg->max_age = 432000;
	cfg->delay_dsn = 14400;
	cfg->next_hop_tls = 1;
	cfg->remote_port = 25;
	cfg->sts_port = 443;
	cfg->sts_refresh_interval = 3600;
	cfg->smtp_connect_timeout = 30;
	cfg->smtp_command_timeout = 300;
	cfg->smtp_data_timeout = 600;
	cfg->smtp_transaction_timeout = 1800;
	cfg->smtp_min_data_rate = 4096;
	cfg->mx_address_limit = 5;
	cfg->mx_session_limit = 2;
	cfg->control_journal_mb = 256;
	cfg->control_batch = 500;
	cfg->control_batch_bytes = 1 << 20;
	cfg->control_heartbeat = 10;
	cfg->control_ack_timeout = 30;

	if (conf_load(&lc, path, &cerr) < 0) {
		snprintf(err, errsz, "%s", cerr.msg);
		mxd_config_free(cfg);
		return -1;
	}
	int rc = mxd_config_parse(cfg, &lc, &cerr);
	config_destroy(&lc);
	if (rc < 0) {
		snprintf(err, errsz, "%s", cerr.msg);
		mxd_config_free(cfg);
		return -1;
	}
	cfg->snapshot_path = xasprintf("%s/config-snapshot.pb", cfg->spool_dir);
	if (cfg->control_server)
		mxd_config_merge_snapshot(cfg);
	*out = cfg;
	return 0;
}

/* controld's recipient checks: each replaces the check of its domain (the
 * file's too, when the file has the domain). A domain controld says nothing
 * about keeps the file's check. */
static void
mxd_config_merge_rcpt_checks(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s)
{
	char why[900], q[LOG_QUOTE_SIZE(200)];

	for (size_t i = 0; i < s->n_recipient_checks; i++) {
		const Mxfleet__V1__DomainRecipients *r = s->recipient_checks[i];
		struct mxd_domain *d = (struct mxd_domain *)mxd_config_domain(cfg, r->domain);
		int m = rcpt_check_mode_parse(r->mode);
		if (d == NULL || m < 0) {
			log_warnx("event=snapshot_recipient_check_ignored domain=%.100s mode=%.20s "
			    "reason=%s", r->domain, r->mode, d == NULL ? "no_such_domain" :
			    "unknown_mode");
			continue;
		}
		struct rcpt_set *set = NULL;
		if (m == RCPT_CHECK_LIST) {
			set = rcpt_set_new();
			for (size_t j = 0; j < r->n_local_parts; j++)
				if (mxd_config_rcpt_entry(set, d->name, r->local_parts[j], why,
				    sizeof(why)) < 0)
					log_warnx("event=snapshot_recipient_ignored domain=%.100s why=%s",
					    d->name, log_quote(q, sizeof(q), why, strlen(why), 200));
			rcpt_set_seal(set);
		}
		rcpt_check_set(&d->rcpt, (enum rcpt_check_mode)m, set);
	}
}

/* The cached snapshot's bytes, whole (malloc'd), or NULL when there is none
 * or it cannot be read; a file over MXD_SNAPSHOT_MAX_BYTES is refused. */
static uint8_t *
mxd_snapshot_read(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("event=snapshot_ignored path=%s reason=open", path);
		return NULL;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > MXD_SNAPSHOT_MAX_BYTES) {
		log_warnx("event=snapshot_ignored path=%s reason=size bytes=%lld max=%llu", path,
		    (long long)st.st_size, (unsigned long long)MXD_SNAPSHOT_MAX_BYTES);
		close(fd);
		return NULL;
	}
	uint8_t *buf = xmalloc((size_t)st.st_size);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0) {
			log_warn("event=snapshot_ignored path=%s reason=read", path);
			free(buf);
			close(fd);
			return NULL;
		}
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

/* Domains from controld's last snapshot. A broken or unreadable cache is
 * logged and ignored: the file's configuration still stands. */
static void
mxd_config_merge_snapshot(struct mxd_config *cfg)
{
	size_t len = 0;
	uint8_t *buf = mxd_snapshot_read(cfg->snapshot_path, &len);
	if (buf == NULL)
		return;
	Mxfleet__V1__ConfigSnapshot *s = mxfleet__v1__config_snapshot__unpack(NULL, len, buf);
	free(buf);
	if (s == NULL) {
		log_warnx("event=snapshot_ignored path=%s reason=unreadable", cfg->snapshot_path);
		return;
	}
	/* Only the file's own domains can clash with the snapshot's (controld
	 * keeps its names unique): looking those up keeps a snapshot of many
	 * thousand domains linear. */
	size_t nfile_domains = cfg->ndomains;
	/* Room for all at once: a domain is ~1 KiB (its parsed next hop), and
	 * growing the array one by one would copy it quadratically. */
	cfg->domains = xreallocarray(cfg->domains, nfile_domains + s->n_domains + 1,
	    sizeof(*cfg->domains));
	for (size_t i = 0; i < s->n_domains; i++) {
		struct mxd_nexthop nh;
		const char *name = s->domains[i]->name, *hop = s->domains[i]->next_hop;
		char why[200];
		if (name[0] == '\0' || strchr(name, '@') || mxd_nexthop_parse(hop, &nh, 0, why,
		    sizeof(why)) < 0) {
			log_warnx("event=snapshot_domain_ignored name=%.100s next_hop=%.100s", name, hop);
			continue;
		}
		struct mxd_domain *d = NULL;
		for (size_t k = 0; k < nfile_domains && d == NULL; k++)
			if (strcasecmp(cfg->domains[k].name, name) == 0)
				d = &cfg->domains[k];
		if (d == NULL) {
			d = &cfg->domains[cfg->ndomains++];
			memset(d, 0, sizeof(*d));
			d->name = xstrdup(name);
		} else
			free(d->next_hop);
		d->next_hop = xstrdup(hop);
		d->nh = nh;
	}
	mxd_config_merge_rcpt_checks(cfg, s);
	https_config_merge_snapshot(cfg, s);
	mxd_keyswitch_merge_snapshot(cfg, s);
	if (s->tlsrpt_sender[0] && strlen(s->tlsrpt_sender) < 1000)
		cfg->tlsrpt_sender = xstrdup(s->tlsrpt_sender);
	rptspool_merge_snapshot(cfg, s);
	/* controld's routes and policies come first: the file's apply where
	 * controld has nothing to say. */
	struct mxd_route *file_routes = cfg->routes;
	size_t nfile_routes = cfg->nroutes;
	cfg->routes = NULL;
	cfg->nroutes = 0;
	for (size_t i = 0; i < s->n_routes; i++) {
		const Mxfleet__V1__RouteConfig *rc = s->routes[i];
		struct mxd_nexthop nh;
		char why[200];
		if (mxd_nexthop_parse(rc->transport, &nh, 1, why, sizeof(why)) < 0 ||
		    (rc->match_sender_domain[0] && !mxd_config_domain_ok(rc->match_sender_domain, 0)) ||
		    (rc->match_recipient_domain[0] &&
		    !mxd_config_domain_ok(rc->match_recipient_domain, 0)) || rc->min_attempt > 100000) {
			log_warnx("event=snapshot_route_ignored transport=%.100s", rc->transport);
			continue;
		}
		mxd_route_add(cfg, rc->match_sender_domain, rc->match_recipient_domain,
		    (int)rc->min_attempt, rc->transport, &nh);
	}
	for (size_t i = 0; i < nfile_routes; i++) {
		cfg->routes = xreallocarray(cfg->routes, cfg->nroutes + 1, sizeof(*cfg->routes));
		cfg->routes[cfg->nroutes++] = file_routes[i];
	}
	free(file_routes);
	struct mxd_tls_policy *file_policies = cfg->policies;
	size_t nfile_policies = cfg->npolicies;
	cfg->policies = NULL;
	cfg->npolicies = 0;
	for (size_t i = 0; i < s->n_policies; i++) {
		const char *dom = s->policies[i]->domain, *mode = s->policies[i]->mode;
		int level = mxd_tls_mode_parse(mode);
		if (!mxd_config_domain_ok(dom, 1) || level < 0) {
			log_warnx("event=snapshot_policy_ignored domain=%.100s mode=%.20s", dom, mode);
			continue;
		}
		mxd_policy_add(cfg, dom, mode, level);
	}
	for (size_t i = 0; i < nfile_policies; i++) {
		cfg->policies = xreallocarray(cfg->policies, cfg->npolicies + 1, sizeof(*cfg->policies));
		cfg->policies[cfg->npolicies++] = file_policies[i];
	}
	free(file_policies);
	cfg->snapshot_version = s->version;
	mxfleet__v1__config_snapshot__free_unpacked(s, NULL);
}

uint64_t
mxd_snapshot_version(const struct mxd_config *cfg)
{
	return cfg->snapshot_version;
}

int
mxd_snapshot_store(const struct mxd_config *cfg, const uint8_t *msg, size_t len,
    char *err, size_t errsz)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->snapshot_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, msg, len);
	if (w != (ssize_t)len || fsync(fd) < 0) {
		snprintf(err, errsz, "%s: %s", tmp, w < 0 ? strerror(errno) : "short write");
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, cfg->snapshot_path) < 0) {
		snprintf(err, errsz, "%s: %s", cfg->snapshot_path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void
mxd_config_free(struct mxd_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	rptspool_config_free(cfg);
	mxd_config_list_addrs_free(cfg->listen, cfg->nlisten);
	free(cfg->user);
	free(cfg->spool_dir);
	free(cfg->trusted);
	free(cfg->relay_next_hop);
	for (size_t i = 0; i < cfg->ndomains; i++) {
		free(cfg->domains[i].name);
		free(cfg->domains[i].next_hop);
		rcpt_check_clear(&cfg->domains[i].rcpt);
	}
	free(cfg->domains);
	free(cfg->recipient_delimiter);
	mxd_config_list_certs_free(cfg->certs, cfg->ncerts);
	https_config_free(cfg);
	mxd_identity_config_free(cfg);
	mxd_keyswitch_config_free(cfg);
	mxd_config_control_free(cfg);
	free(cfg->control_authority);
	free(cfg->control_host_id);
	free(cfg->control_cert);
	free(cfg->control_key);
	free(cfg->control_ca);
	free(cfg->snapshot_path);
	free(cfg->tlsrpt_sender);
	free(cfg->resolver);
	free(cfg->ca_file);
	free(cfg->sts_cache_dir);
	for (size_t i = 0; i < cfg->ndest_limits; i++)
		free(cfg->dest_limits[i].name);
	free(cfg->dest_limits);
	for (size_t i = 0; i < cfg->npolicies; i++) {
		free(cfg->policies[i].domain);
		free(cfg->policies[i].mode);
	}
	free(cfg->policies);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].sender_domain);
		free(cfg->routes[i].recipient_domain);
		free(cfg->routes[i].transport);
	}
	free(cfg->routes);
	for (size_t i = 0; i < cfg->nsasl; i++) {
		free(cfg->sasl[i].server);
		free(cfg->sasl[i].user);
		if (cfg->sasl[i].password) {
			explicit_bzero(cfg->sasl[i].password, strlen(cfg->sasl[i].password));
			free(cfg->sasl[i].password);
		}
	}
	free(cfg->sasl);
	free(cfg);
}

const struct mxd_domain *
mxd_config_domain(const struct mxd_config *cfg, const char *domain)
{
	size_t len = strlen(domain);
	/* A trailing dot names the same domain. */
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (dnsname_equal(domain, len, cfg->domains[i].name))
			return &cfg->domains[i];
	return NULL;
}

void
mxd_config_log_rcpt_checks(const struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->ndomains; i++) {
		const struct mxd_domain *d = &cfg->domains[i];
		if (d->rcpt.mode == RCPT_CHECK_UNSET)
			log_warnx("event=recipient_check_missing domain=%s risk=backscatter "
			    "hint=\"any local part is accepted; set recipients or recipient_check "
			    "(docs/mxd.md#recipient-checks)\"", d->name);
		else
			log_info("event=recipient_check domain=%s mode=%s recipients=%zu", d->name,
			    rcpt_check_mode_name(d->rcpt.mode),
			    d->rcpt.set ? rcpt_set_count(d->rcpt.set) : (size_t)0);
	}
}

int
mxd_config_trusted(const struct mxd_config *cfg, const struct sockaddr *sa)
{
	for (size_t i = 0; i < cfg->ntrusted; i++)
		if (netaddr_cidr_match(&cfg->trusted[i], sa))
			return 1;
	return 0;
}

/* Does a route's domain match? "" matches any. */
static int
mxd_route_domain_match(const char *want, const char *addr)
{
	if (want[0] == '\0')
		return 1;
	const char *dom = addr ? smtp_parser_domain(addr) : NULL;
	return dom != NULL && strcasecmp(dom, want) == 0;
}

const struct mxd_nexthop *
mxd_config_route(const struct mxd_config *cfg, const char *sender, const char *rcpt,
    int attempt, const char **name)
{
	const char *dom = smtp_parser_domain(rcpt);
	const struct mxd_domain *d = dom ? mxd_config_domain(cfg, dom) : NULL;
	if (d) {
		*name = d->next_hop;
		return &d->nh;
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct mxd_route *rt = &cfg->routes[i];
		if (mxd_route_domain_match(rt->sender_domain, sender) &&
		    mxd_route_domain_match(rt->recipient_domain, rcpt) &&
		    attempt >= rt->min_attempt) {
			*name = rt->transport;
			return &rt->nh;
		}
	}
	if (cfg->relay_next_hop) {
		*name = cfg->relay_next_hop;
		return &cfg->relay_nh;
	}
	*name = NULL;
	return NULL;
}

const struct mxd_tls_policy *
mxd_config_tls_policy(const struct mxd_config *cfg, const char *dest)
{
	const struct mxd_tls_policy *best = NULL;
	size_t bestlen = 0, dl = strlen(dest);
	if (dl > 0 && dest[dl - 1] == '.')
		dl--;	/* a root-terminated name */
	for (size_t i = 0; i < cfg->npolicies; i++) {
		const struct mxd_tls_policy *p = &cfg->policies[i];
		size_t pl = strlen(p->domain);
		if (p->domain[0] != '.') {
			if (pl == dl && strncasecmp(p->domain, dest, dl) == 0)
				return p;	/* an exact entry wins */
			continue;
		}
		/* ".example.org": a subdomain; the longest such entry wins. */
		if (dl > pl && strncasecmp(dest + dl - pl, p->domain, pl) == 0 && pl > bestlen) {
			best = p;
			bestlen = pl;
		}
	}
	return best;
}

const struct mxd_sasl *
mxd_config_sasl(const struct mxd_config *cfg, const char *host, int port)
{
	for (size_t i = 0; i < cfg->nsasl; i++) {
		char h[256];
		int p;
		if (netaddr_split_hostport(cfg->sasl[i].server, h, sizeof(h), &p) == 0 &&
		    p == port && strcasecmp(h, host) == 0)
			return &cfg->sasl[i];
	}
	return NULL;
}
