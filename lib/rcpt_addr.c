#include "rcpt_addr.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dnsname.h"
#include "utf8.h"

static int
rcpt_addr_fail(char *why, size_t whysz, const char *what)
{
	snprintf(why, whysz, "%s", what);
	return -1;
}

int
rcpt_addr_local(const char *entry, const char *domain, char *out, size_t outsz,
    char *why, size_t whysz)
{
	const char *at = strrchr(entry, '@');
	size_t len = at ? (size_t)(at - entry) : strlen(entry);

	if (at && !dnsname_equal(at + 1, strlen(at + 1), domain)) {
		snprintf(why, whysz, "not an address of %s", domain);
		return -1;
	}
	if (len == 0)
		return rcpt_addr_fail(why, whysz, "empty local part");
	if (len > RCPT_ADDR_LOCAL_MAX || len >= outsz)
		return rcpt_addr_fail(why, whysz, "local part longer than 255 octets");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)entry[i];
		if (c <= ' ' || c == 0x7f || c == '@')
			return rcpt_addr_fail(why, whysz,
			    "space, control character or '@' in the local part");
		out[i] = (char)rcpt_addr_lower(c);
	}
	out[len] = '\0';
	if (!utf8_valid((const unsigned char *)out, len))
		return rcpt_addr_fail(why, whysz, "local part is not UTF-8");
	return 0;
}
