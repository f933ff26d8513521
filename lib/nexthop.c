#include "nexthop.h"
#include "netaddr.h"

#include <stdio.h>
#include <string.h>

int
mxd_nexthop_parse(const char *s, struct mxd_nexthop *nh, int allow_mx, char *err, size_t errsz)
{
	static const struct {
		const char		*prefix;
		enum mxd_nexthop_proto	 proto;
		int			 port;	/* default; 0: the port is required */
	} kinds[] = {
		{ "smtp:", MXD_NH_SMTP, 25 },
		{ "submission:", MXD_NH_SUBMISSION, 587 },
		{ "lmtp:", MXD_NH_LMTP, 0 },
	};
	const char *rest = NULL;

	memset(nh, 0, sizeof(*nh));
	if (allow_mx && strcmp(s, "mx") == 0) {
		nh->proto = MXD_NH_MX;
		return 0;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t l = strlen(kinds[i].prefix);
		if (strncmp(s, kinds[i].prefix, l) == 0) {
			nh->proto = kinds[i].proto;
			nh->port = kinds[i].port;
			rest = s + l;
			break;
		}
	}
	if (rest == NULL)
		goto bad;
	if (nh->proto == MXD_NH_LMTP && strncmp(rest, "unix:", 5) == 0) {
		rest += 5;
		if (rest[0] != '/' || strlen(rest) >= sizeof(nh->path))
			goto bad;
		nh->is_unix = 1;
		snprintf(nh->path, sizeof(nh->path), "%s", rest);
		return 0;
	}
	if (netaddr_split_hostport(rest, nh->host, sizeof(nh->host), &nh->port) == 0)
		return 0;
	/* A bare host name takes the protocol's port. */
	if (nh->port != 0 && rest[0] != '\0' && rest[0] != '[' && strchr(rest, ':') == NULL &&
	    strlen(rest) < sizeof(nh->host) && strspn(rest, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == strlen(rest)) {
		snprintf(nh->host, sizeof(nh->host), "%s", rest);
		return 0;
	}
bad:
	snprintf(err, errsz, "expected smtp:HOST[:PORT], submission:HOST[:PORT], lmtp:HOST:PORT, "
	    "lmtp:unix:/PATH%s", allow_mx ? " or mx" : "");
	memset(nh, 0, sizeof(*nh));
	return -1;
}
