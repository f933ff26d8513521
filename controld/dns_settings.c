/* controld: checking a domain's DNS settings (dns_settings.h). */
#include "dns_settings.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db_dns.h"
#include "dnsname.h"
#include "xmalloc.h"

/* ---- checking the settings ---- */

/* Operator text quoted back in a message: printable ASCII, the rest '?',
 * at most 100 characters (a message is one line). */
static const char *
dns_settings_shown(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < outsz && n < 100; s++)
		out[n++] = *s >= 0x20 && *s <= 0x7e ? *s : '?';
	out[n] = '\0';
	return out;
}

/* A name as the settings keep it: lower case, no final dot. */
static int
dns_settings_name(char *name, const char *what, char *msg, size_t msgsz)
{
	char why[300];
	size_t len;

	if (dnsname_check(name, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "%s: %s", what, why);
		return -1;
	}
	for (char *p = name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((len = strlen(name)) > 0 && name[len - 1] == '.')
		name[len - 1] = '\0';
	return 0;
}

/* Printable ASCII without '"' or '\' (it goes into a TXT record as is). */
static int
dns_settings_text(const char *s, const char *what, const char *prefix, char *msg, size_t msgsz)
{
	size_t plen = strlen(prefix);

	if (s[0] == '\0')
		return 0;
	if (strlen(s) > DNS_SETTINGS_TEXT_MAX) {
		snprintf(msg, msgsz, "%s: longer than %d characters", what, DNS_SETTINGS_TEXT_MAX);
		return -1;
	}
	for (const char *p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
			snprintf(msg, msgsz, "%s: printable ASCII only, without '\"' or '\\'", what);
			return -1;
		}
	if (plen > 0 && (strncasecmp(s, prefix, plen) != 0 || (s[plen] != '\0' &&
	    s[plen] != ' ' && s[plen] != ';'))) {
		snprintf(msg, msgsz, "%s: must begin with \"%s\" (e.g. \"%s ...\")", what, prefix,
		    prefix);
		return -1;
	}
	return 0;
}

/* One rua URI (RFC 8460 3): mailto:local@domain or https://host[:port]/... */
static int
dns_settings_rua_uri(const char *u, size_t len, char *msg, size_t msgsz)
{
	char host[300], why[300];
	const char *h, *at;
	size_t hl;

	if (len > 7 && strncasecmp(u, "mailto:", 7) == 0) {
		at = memchr(u, '@', len);
		if (at == NULL || at == u + 7) {
			snprintf(msg, msgsz, "tlsrpt_rua: %.*s: mailto: needs an address "
			    "(mailto:tlsrpt@example.com)", (int)len, u);
			return -1;
		}
		h = at + 1;
		hl = len - (size_t)(h - u);
	} else if (len > 8 && strncasecmp(u, "https://", 8) == 0) {
		h = u + 8;
		hl = strcspn(h, ":/");
		if (hl > len - 8)
			hl = len - 8;
	} else {
		snprintf(msg, msgsz, "tlsrpt_rua: %.*s: each URI is mailto:ADDRESS or https://URL",
		    (int)len, u);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(hl < 299 ? hl : 299), h);
	if (hl == 0 || hl >= sizeof(host) || dnsname_check(host, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "tlsrpt_rua: %.*s: the domain is not a domain name",
		    (int)len, u);
		return -1;
	}
	return 0;
}

/* A comma-separated list of rua URIs, no white space. */
static int
dns_settings_rua(const char *rua, char *msg, size_t msgsz)
{
	if (dns_settings_text(rua, "tlsrpt_rua", "", msg, msgsz) < 0)
		return -1;
	if (strpbrk(rua, " ;") != NULL) {
		snprintf(msg, msgsz, "tlsrpt_rua: URIs separated by commas, no spaces or ';'");
		return -1;
	}
	for (const char *p = rua; *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (dns_settings_rua_uri(p, len, msg, msgsz) < 0)
			return -1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int
dns_settings_listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* Each "name=host_id": a host name, a host the settings serve the domain
 * with (when they name hosts), each name once. */
static int
dns_settings_aliases(Mxfleet__V1__DomainDns *d, char *msg, size_t msgsz)
{
	char what[400];

	for (size_t i = 0; i < d->n_aliases; i++) {
		char *a = d->aliases[i], *eq = strchr(a, '='), shown[104], host[104];
		if (eq == NULL || eq == a || eq[1] == '\0') {
			snprintf(msg, msgsz, "alias %s: write NAME=HOST_ID (e.g. "
			    "mx.example.net=mx1)", dns_settings_shown(a, shown, sizeof(shown)));
			return -1;
		}
		*eq = '\0';
		snprintf(what, sizeof(what), "alias %s", dns_settings_shown(a, shown, sizeof(shown)));
		if (dns_settings_name(a, what, msg, msgsz) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strncmp(d->aliases[j], a, strlen(a)) == 0 && d->aliases[j][strlen(a)] == '=') {
				snprintf(msg, msgsz, "alias %.300s: given twice", a);
				return -1;
			}
		if (d->n_hosts > 0 && !dns_settings_listed(d->hosts, d->n_hosts, eq + 1)) {
			snprintf(msg, msgsz, "alias %.300s: host %s does not serve the domain "
			    "(--hosts)", a, dns_settings_shown(eq + 1, host, sizeof(host)));
			return -1;
		}
		/* Back to one string, the name normalized in place. */
		char *s = xasprintf("%s=%s", a, eq + 1);
		free(d->aliases[i]);
		d->aliases[i] = s;
	}
	return 0;
}

int
dns_settings_check(Mxfleet__V1__DomainDns *d, char *msg, size_t msgsz)
{
	const char *m = d->sts_mode;

	if (d->domain[0] == '\0') {
		snprintf(msg, msgsz, "domain: required");
		return -1;
	}
	if (dns_settings_name(d->domain, "domain", msg, msgsz) < 0)
		return -1;
	if (m[0] != '\0' && strcmp(m, "enforce") != 0 && strcmp(m, "testing") != 0 &&
	    strcmp(m, "none") != 0) {
		char shown[104];
		snprintf(msg, msgsz, "sts_mode: %s is not enforce, testing or none",
		    dns_settings_shown(m, shown, sizeof(shown)));
		return -1;
	}
	if (d->sts_max_age > DB_DNS_MAX_MAX_AGE) {
		snprintf(msg, msgsz, "sts_max_age: %u is over %u seconds (RFC 8461 3.2: at most "
		    "one year)", d->sts_max_age, DB_DNS_MAX_MAX_AGE);
		return -1;
	}
	if (d->ttl > DB_DNS_MAX_TTL) {
		snprintf(msg, msgsz, "ttl: %u is over %u seconds", d->ttl, DB_DNS_MAX_TTL);
		return -1;
	}
	for (size_t i = 0; i < d->n_hosts; i++)
		if (d->hosts[i][0] == '\0' || dns_settings_listed(d->hosts, i, d->hosts[i])) {
			snprintf(msg, msgsz, "hosts: %s", d->hosts[i][0] ? "a host is listed twice" :
			    "an empty host id");
			return -1;
		}
	if (dns_settings_aliases(d, msg, msgsz) < 0 || dns_settings_rua(d->tlsrpt_rua, msg, msgsz) < 0 ||
	    dns_settings_text(d->spf, "spf", "v=spf1", msg, msgsz) < 0 ||
	    dns_settings_text(d->dmarc, "dmarc", "v=DMARC1", msg, msgsz) < 0)
		return -1;
	return 0;
}
