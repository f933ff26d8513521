/* The RFC 3461 SMTP parameters' syntax (ENVID, ORCPT, NOTIFY, xtext): a
 * leaf shared by the SMTP parser, the spool and the DSN builder. */
#include "dsn_param.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int
dsn_hexdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

int
dsn_xtext_ok(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= len || !dsn_hexdigit(s[i + 1]) || !dsn_hexdigit(s[i + 2]))
				return 0;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=')
			return 0;
	}
	return 1;
}

int
dsn_envid_ok(const char *s, size_t len)
{
	return len <= DSN_ENVID_MAX && dsn_xtext_ok(s, len);
}

int
dsn_orcpt_ok(const char *s, size_t len)
{
	const char *semi = memchr(s, ';', len);
	if (len > DSN_ORCPT_MAX || semi == NULL || semi == s)
		return 0;
	/* addr-type: an atom (RFC 5322 atext), as "rfc822" or "utf-8". */
	for (const char *p = s; p < semi; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\0' || !(isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
			return 0;
	}
	return dsn_xtext_ok(semi + 1, len - (size_t)(semi + 1 - s));
}

static const struct {
	const char	*name;
	unsigned	 bit;
} dsn_notify_names[] = {
	{ "SUCCESS", DSN_NOTIFY_SUCCESS }, { "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY }, { "NEVER", DSN_NOTIFY_NEVER },
};

int
dsn_notify_parse(const char *s, size_t len, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i <= len) {
		size_t j = i;
		while (j < len && s[j] != ',')
			j++;
		unsigned bit = 0;
		for (size_t k = 0; k < sizeof(dsn_notify_names) / sizeof(dsn_notify_names[0]); k++) {
			const char *n = dsn_notify_names[k].name;
			if (strlen(n) == j - i && strncasecmp(s + i, n, j - i) == 0)
				bit = dsn_notify_names[k].bit;
		}
		if (bit == 0)
			return -1;	/* unknown or empty item */
		bits |= bit;
		i = j + 1;
	}
	/* RFC 3461 4.1: NEVER excludes the others. */
	if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
		return -1;
	*out = bits;
	return 0;
}

void
dsn_notify_format(unsigned notify, char *out, size_t outsz)
{
	size_t len = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	for (size_t k = 0; k < sizeof(dsn_notify_names) / sizeof(dsn_notify_names[0]); k++) {
		if (!(notify & dsn_notify_names[k].bit))
			continue;
		int w = snprintf(out + len, outsz - len, "%s%s", len ? "," : "",
		    dsn_notify_names[k].name);
		if (w < 0 || (size_t)w >= outsz - len) {
			out[len] = '\0';
			return;
		}
		len += (size_t)w;
	}
}

int
dsn_xtext_decode(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '+' && dsn_hexdigit(s[1]) && dsn_hexdigit(s[2])) {
			char hex[3] = { s[1], s[2], '\0' };
			c = (unsigned char)strtoul(hex, NULL, 16);
			s += 2;
		}
		/* Shown in a header field: nothing that could end or fold it. */
		if (c < ' ' || c > '~' || n + 1 >= outsz)
			return -1;
		out[n++] = (char)c;
	}
	if (outsz == 0)
		return -1;
	out[n] = '\0';
	return 0;
}

