/* Where mail goes next: a next hop or route transport as an operator writes
 * it ("smtp:HOST[:PORT]", "submission:HOST[:PORT]", "lmtp:HOST:PORT",
 * "lmtp:unix:/PATH", "mx"). Shared by mxd (which delivers through it) and
 * controld (which refuses a transport mxd could not use). */
#ifndef MXFLEET_NEXTHOP_H
#define MXFLEET_NEXTHOP_H

#include <stddef.h>

struct dns_tlsa_result;

enum mxd_nexthop_proto {
	MXD_NH_SMTP,		/* SMTP relay, port 25 unless given */
	MXD_NH_LMTP,		/* LMTP to the final store */
	MXD_NH_SUBMISSION,	/* SMTP submission: TLS and SASL PLAIN required, port 587 */
	MXD_NH_MX,		/* the recipient domain's own MX hosts (routes only) */
};

struct mxd_nexthop {
	enum mxd_nexthop_proto	proto;
	int			is_unix;
	char			host[256];
	int			port;
	char			path[108];
	char			sni[256];	/* name for SNI when host is an address */
	int			verify;		/* check the certificate (PKIX) names verify_name,
						   or sni when that is empty */
	char			verify_name[256];	/* "secure": the domain; its
							   subdomains match too */
	const struct dns_tlsa_result *tlsa;	/* DANE: verify with these records */
};

/* Parse a next hop; "mx" only when allow_mx. 0, or -1 with err set to what
 * was expected. */
int mxd_nexthop_parse(const char *s, struct mxd_nexthop *nh, int allow_mx, char *err,
    size_t errsz);

#endif
