#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
netaddr_parse_port(const char *s)
{
	char *end;
	if (*s == '\0')
		return -1;
	long p = strtol(s, &end, 10);
	if (*end != '\0' || p < 0 || p > 65535)
		return -1;
	return (int)p;
}

int
netaddr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *portstr;
	int port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		portstr = close + 2;
		if ((port = netaddr_parse_port(portstr)) < 0)
			return -1;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if ((port = netaddr_parse_port(colon + 1)) < 0)
		return -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	*len = sizeof(*sin);
	return 0;
}

int
netaddr_split_hostport(const char *s, char *host, size_t hostsz, int *port)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s || (*port = netaddr_parse_port(colon + 1)) <= 0)
		return -1;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (h[0] == '[') {
		if (hl < 3 || h[hl - 1] != ']')
			return -1;
		h++;
		hl -= 2;
	}
	if (hl >= hostsz)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	return 0;
}

int
netaddr_parse_cidr(const char *s, struct netaddr_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	int maxbits;

	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	out->prefix = maxbits;
	if (slash) {
		char *end;
		if (slash[1] == '\0')
			return -1;
		long p = strtol(slash + 1, &end, 10);
		if (*end != '\0' || p < 0 || p > maxbits)
			return -1;
		out->prefix = (int)p;
	}
	return 0;
}

static int
netaddr_bits_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

int
netaddr_cidr_match(const struct netaddr_cidr *c, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return c->family == AF_INET &&
		    netaddr_bits_equal(c->addr, (const unsigned char *)&sin->sin_addr, c->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *a = sin6->sin6_addr.s6_addr;
		if (c->family == AF_INET6)
			return netaddr_bits_equal(c->addr, a, c->prefix);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			return netaddr_bits_equal(c->addr, a + 12, c->prefix);
	}
	return 0;
}

char *
netaddr_ntop(const struct sockaddr *sa, char *out, size_t outsz)
{
	const void *a = NULL;
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "unknown");
	return out;
}

int
netaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}
