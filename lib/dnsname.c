#include "dnsname.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int
dnsname_equal(const char *a, size_t len, const char *b)
{
	size_t bl = strlen(b);
	if (len > 0 && a[len - 1] == '.')
		len--;
	if (bl > 0 && b[bl - 1] == '.')
		bl--;
	return len == bl && bl > 0 && strncasecmp(a, b, bl) == 0;
}

static int
dnsname_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-';
}

int
dnsname_check(const char *name, char *why, size_t whysz)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0) {
		snprintf(why, whysz, "the name is empty");
		return -1;
	}
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i < len && name[i] != '.') {
			unsigned char c = (unsigned char)name[i];
			if (c >= 0x80) {
				snprintf(why, whysz, "a name with non-ASCII characters must be given in"
				    " its A-label form (xn--...)");
				return -1;
			}
			if (!dnsname_ldh(c)) {
				snprintf(why, whysz, "a label may hold only letters, digits and hyphens,"
				    " not '%c'", c >= 0x20 && c < 0x7f ? c : '?');
				return -1;
			}
			continue;
		}
		size_t l = i - start;
		if (l == 0) {
			snprintf(why, whysz, "empty label (two dots in a row, or a leading dot)");
			return -1;
		}
		if (l > DNSNAME_LABEL_MAX) {
			snprintf(why, whysz, "a label of %zu characters, longer than %d", l,
			    DNSNAME_LABEL_MAX);
			return -1;
		}
		if (name[start] == '-' || name[i - 1] == '-') {
			snprintf(why, whysz, "a label may not begin or end with a hyphen");
			return -1;
		}
		start = i + 1;
	}
	if (len > DNSNAME_MAX) {
		snprintf(why, whysz, "the name has %zu characters, more than %d", len, DNSNAME_MAX);
		return -1;
	}
	return 0;
}
