/* What one authoritative server serves of a host's TLSA RRset, for the key
 * rollover driver (rollover_run.c; docs/dns.md, "Rollover"): asked
 * directly, no recursion, UDP then TCP when truncated. Blocking (a DNS
 * worker's thread). */
#ifndef CONTROLD_ROLLOVER_DNS_H
#define CONTROLD_ROLLOVER_DNS_H

#include <ldns/ldns.h>

#include "rollover.h"

/* Ask server ("IP", "IP:port", "[IPv6]:port") for owner's TLSA RRset
 * (owner absolute: "_25._tcp.mx1.example.com."), each try waiting
 * timeout_s; *o filled for rollover_step (o->name is server). */
void rollover_dns_ask(const char *server, const char *owner, const struct rollover *r,
    int timeout_s, struct rollover_server_obs *o);
/* What an answer says (the server's, not checked against a question):
 * only an authoritative NOERROR or NXDOMAIN counts as answered; then its
 * TLSA 3 1 1 records holding r's old or new key, and the longest TTL of
 * them. o is zeroed by the caller. */
void rollover_dns_answer(const ldns_pkt *pkt, const struct rollover *r,
    struct rollover_server_obs *o);

#endif
