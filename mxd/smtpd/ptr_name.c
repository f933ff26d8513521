/* The client's reverse-DNS name: what is used of a PTR answer (ptr_name.h). */
#include "ptr_name.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int
ptr_name_clean(const char *raw, char *out, size_t outsz)
{
	char why[128];
	size_t len;

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	if (raw == NULL || dnsname_check(raw, why, sizeof(why)) < 0)
		return -1;
	len = strlen(raw);
	if (len > 0 && raw[len - 1] == '.')
		len--;
	if (len == 0 || len >= outsz)
		return -1;
	const char *last = memrchr(raw, '.', len);
	last = last ? last + 1 : raw;
	if (strspn(last, "0123456789") == (size_t)(raw + len - last))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = raw[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

int
ptr_name_client(const struct sockaddr *sa, unsigned char addr[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(addr, a6->s6_addr + 12, 4);
		return AF_INET;
	}
	memcpy(addr, a6->s6_addr, 16);
	return AF_INET6;
}

int
ptr_name_confirms(const void *addrs, int n, size_t alen, const unsigned char *addr)
{
	const unsigned char *p = addrs;

	for (int i = 0; i < n; i++)
		if (memcmp(p + (size_t)i * alen, addr, alen) == 0)
			return 1;
	return 0;
}
