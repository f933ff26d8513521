/* controld: a key rollover's look at one authoritative server (rollover_dns.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "netaddr.h"
#include "rollover_dns.h"

/* "IP", "IP:port" or "[IPv6]:port" (port 53 when none). */
static int
rollover_server_addr(const char *server, struct sockaddr_storage *ss)
{
	socklen_t len;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, server, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons(53);
		return 0;
	}
	if (inet_pton(AF_INET6, server, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons(53);
		return 0;
	}
	if (netaddr_parse_hostport(server, ss, &len) != 0 || netaddr_port((struct sockaddr *)ss) == 0)
		return -1;
	return 0;
}

static void
rollover_hex(const uint8_t *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
rollover_dns_tlsa(const ldns_pkt *pkt, const struct rollover *r, struct rollover_server_obs *o)
{
	ldns_rr_list *l = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_TLSA, LDNS_SECTION_ANSWER);
	char hex[2 * 32 + 1];

	for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(l, i);
		if (ldns_rr_rd_count(rr) != 4 || ldns_rdf_size(ldns_rr_rdf(rr, 3)) != 32 ||
		    ldns_rdf2native_int8(ldns_rr_rdf(rr, 0)) != 3 ||
		    ldns_rdf2native_int8(ldns_rr_rdf(rr, 1)) != 1 ||
		    ldns_rdf2native_int8(ldns_rr_rdf(rr, 2)) != 1)
			continue;
		rollover_hex(ldns_rdf_data(ldns_rr_rdf(rr, 3)), 32, hex);
		o->has_old |= strcmp(hex, r->old_spki) == 0;
		o->has_new |= strcmp(hex, r->new_spki) == 0;
		if (ldns_rr_ttl(rr) > o->ttl)
			o->ttl = ldns_rr_ttl(rr);
	}
	ldns_rr_list_deep_free(l);
}

void
rollover_dns_answer(const ldns_pkt *pkt, const struct rollover *r, struct rollover_server_obs *o)
{
	if (pkt == NULL || !ldns_pkt_aa(pkt) || ldns_pkt_qr(pkt) == 0 ||
	    (ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR &&
	    ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NXDOMAIN))
		return;
	o->answered = 1;
	rollover_dns_tlsa(pkt, r, o);
}

void
rollover_dns_ask(const char *server, const char *owner, const struct rollover *r, int timeout_s,
    struct rollover_server_obs *o)
{
	struct sockaddr_storage ss;
	struct timeval tv = { timeout_s, 0 };
	ldns_pkt *pkt = NULL;
	ldns_rdf *name = NULL;
	uint16_t port;

	memset(o, 0, sizeof(*o));
	o->name = server;
	if (rollover_server_addr(server, &ss) < 0)
		return;
	ldns_resolver *res = ldns_resolver_new();
	ldns_rdf *ns = ldns_sockaddr_storage2rdf(&ss, &port);
	if (res == NULL || ns == NULL || ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK)
		goto out;
	ldns_resolver_set_port(res, port);
	ldns_resolver_set_recursive(res, false);
	ldns_resolver_set_dnssec(res, false);
	ldns_resolver_set_retry(res, 2);
	ldns_resolver_set_timeout(res, tv);
	ldns_resolver_set_fallback(res, true);
	if ((name = ldns_dname_new_frm_str(owner)) == NULL ||
	    ldns_resolver_send(&pkt, res, name, LDNS_RR_TYPE_TLSA, LDNS_RR_CLASS_IN, 0) !=
	    LDNS_STATUS_OK)
		goto out;
	rollover_dns_answer(pkt, r, o);
out:
	ldns_pkt_free(pkt);
	ldns_rdf_deep_free(name);
	ldns_rdf_deep_free(ns);
	if (res)
		ldns_resolver_deep_free(res);
}

