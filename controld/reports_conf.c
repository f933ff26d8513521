/* controld: the reports group of controld.conf (reports_conf.h). */
#include "reports_conf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsname.h"
#include "utf8.h"
#include "xmalloc.h"

static const char *const reports_conf_keys[] = {
	"organization_name", "contact_info", "submitter", "mail_from", "send", NULL
};

/* UTF-8 text without control characters, 1..REPORTS_CONF_TEXT_MAX bytes:
 * it goes into the report's JSON and a mail header. */
static int
reports_conf_text(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	size_t len;

	if (r != 1)
		return r;
	len = strlen(s);
	if (len == 0 || len > REPORTS_CONF_TEXT_MAX)
		return conf_error(err, config_setting_get_member(g, key), "1 to %d bytes",
		    REPORTS_CONF_TEXT_MAX);
	if (!utf8_valid((const unsigned char *)s, len))
		return conf_error(err, config_setting_get_member(g, key), "not UTF-8");
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return conf_error(err, config_setting_get_member(g, key),
			    "control characters are not allowed");
	*out = xstrdup(s);
	return 1;
}

/* RFC 8460 4.4 contact-info: a mailto: or https: URI, or an address. */
static int
reports_conf_contact(const config_setting_t *g, const char *s, struct conf_err *err)
{
	const char *at = strchr(s, '@');

	if (strncasecmp(s, "https://", 8) == 0 && s[8] != '\0' && strchr(s, ' ') == NULL)
		return 0;
	if (at != NULL && at != s && at[1] != '\0' && strchr(s, ' ') == NULL &&
	    (strncasecmp(s, "mailto:", 7) != 0 || at > s + 7))
		return 0;
	return conf_error(err, config_setting_get_member(g, "contact_info"),
	    "expected mailto:ADDRESS, https://URL or an address (tlsrpt@example.com)");
}

/* The submitter names the file (RFC 8460 5.1): a domain, kept lower case
 * without a final dot. */
static int
reports_conf_submitter(const config_setting_t *g, char *s, struct conf_err *err)
{
	char why[300];
	size_t len;

	if (dnsname_check(s, why, sizeof(why)) < 0)
		return conf_error(err, config_setting_get_member(g, "submitter"), "%s", why);
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((len = strlen(s)) > 0 && s[len - 1] == '.')
		s[len - 1] = '\0';
	return 0;
}

/* mail_from: the envelope sender and From of the reports we mail, a plain
 * ASCII local@domain (what tlsrpt_mail accepts), kept lower case; its
 * domain is the submitter or below it (the DKIM d= must align with From). */
static int
reports_conf_mail_from(const config_setting_t *g, char *s, const char *submitter,
    struct conf_err *err)
{
	const config_setting_t *m = config_setting_get_member(g, "mail_from");
	char *at = strrchr(s, '@'), why[300];

	for (char *p = s; *p; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("<>(),;:\\\"[]", *p))
			return conf_error(err, m, "expected a plain address (tlsrpt-noreply@example.com)");
		*p = (char)tolower((unsigned char)*p);
	}
	if (at == NULL || at == s || dnsname_check(at + 1, why, sizeof(why)) < 0)
		return conf_error(err, m, "expected a plain address (tlsrpt-noreply@example.com)");
	size_t dl = strlen(at + 1), sl = submitter ? strlen(submitter) : 0;
	if (submitter && !(strcmp(at + 1, submitter) == 0 || (dl > sl + 1 &&
	    at[1 + dl - sl - 1] == '.' && strcmp(at + 1 + dl - sl, submitter) == 0)))
		return conf_error(err, m, "its domain must be the submitter %s or below it (DKIM"
		    " signs as the submitter)", submitter);
	return 0;
}

/* send = { ... }: rptsend_conf.h (docs/reports.md, "Sending"). */
static int
reports_conf_send(const config_setting_t *g, struct reports_config *cfg, struct conf_err *err)
{
	config_setting_t *s;
	int r = conf_get_aggregate(g, "send", CONFIG_TYPE_GROUP, &s, err);

	return r < 0 ? -1 : rptsend_config_load(r == 1 ? s : NULL, &cfg->send, err);
}

int
reports_config_load(const config_setting_t *g, struct reports_config *cfg, struct conf_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	if (g == NULL)
		return rptsend_config_load(NULL, &cfg->send, err);
	if (conf_check_keys(g, reports_conf_keys, err) < 0 ||
	    reports_conf_text(g, "organization_name", &cfg->organization_name, err) < 0 ||
	    reports_conf_text(g, "contact_info", &cfg->contact_info, err) < 0 ||
	    reports_conf_text(g, "submitter", &cfg->submitter, err) < 0 ||
	    (cfg->contact_info && reports_conf_contact(g, cfg->contact_info, err) < 0) ||
	    (cfg->submitter && reports_conf_submitter(g, cfg->submitter, err) < 0) ||
	    reports_conf_text(g, "mail_from", &cfg->mail_from, err) < 0 ||
	    (cfg->mail_from && reports_conf_mail_from(g, cfg->mail_from, cfg->submitter,
	    err) < 0) ||
	    reports_conf_send(g, cfg, err) < 0) {
		reports_config_free(cfg);
		return -1;
	}
	return 0;
}

const char *
reports_config_missing(const struct reports_config *cfg)
{
	if (cfg->organization_name == NULL || cfg->contact_info == NULL || cfg->submitter == NULL)
		return "controld.conf: the reports group needs organization_name, contact_info "
		    "and submitter (docs/reports.md, \"Aggregation\")";
	return NULL;
}

void
reports_config_free(struct reports_config *cfg)
{
	free(cfg->organization_name);
	free(cfg->contact_info);
	free(cfg->submitter);
	free(cfg->mail_from);
	rptsend_config_free(&cfg->send);
	memset(cfg, 0, sizeof(*cfg));
}
