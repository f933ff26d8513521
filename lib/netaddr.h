/* Socket addresses as operators write them: "IPv4:port", "[IPv6]:port", CIDR. */
#ifndef MXFLEET_NETADDR_H
#define MXFLEET_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct netaddr_cidr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	int		prefix;
};

/* Parse "1.2.3.4:25" or "[::1]:25". Returns 0 or -1. */
int netaddr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Split "host:port", "1.2.3.4:port" or "[v6]:port" (brackets removed) without
 * resolving anything. Port 1..65535. Returns 0 or -1. */
int netaddr_split_hostport(const char *s, char *host, size_t hostsz, int *port);
/* Parse "10.0.0.0/8", "::1/128" or a bare address (full prefix). 0 or -1. */
int netaddr_parse_cidr(const char *s, struct netaddr_cidr *out);
/* Does the address match? IPv4-mapped IPv6 addresses match IPv4 networks. */
int netaddr_cidr_match(const struct netaddr_cidr *c, const struct sockaddr *sa);
/* "1.2.3.4" or "2001:db8::1" (no port) into out; returns out. */
char *netaddr_ntop(const struct sockaddr *sa, char *out, size_t outsz);
int netaddr_port(const struct sockaddr *sa);

#endif
