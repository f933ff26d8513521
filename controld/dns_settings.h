/* controld: the DNS settings of a hosted domain as mailctl sends them
 * (DomainDns; docs/dns.md "Settings"), checked before anything reaches the
 * database: names, the MTA-STS mode and max_age, the TTL, aliases, the
 * TLSRPT rua list, SPF and DMARC texts. No I/O: fuzzed from packed
 * DomainDns messages (tests/fuzz/fuzz_dns_settings.c). Whether the domain
 * is hosted and the hosts known is the database's to say (db_dns.h). */
#ifndef CONTROLD_DNS_SETTINGS_H
#define CONTROLD_DNS_SETTINGS_H

#include <stddef.h>

#include "mxfleet.pb-c.h"

#define DNS_SETTINGS_TEXT_MAX	1024	/* spf, dmarc, tlsrpt_rua */

/* 0, or -1 with what is wrong (one line, naming the field) in msg.
 * Normalizes in place: the domain and the alias names lower case without
 * a final dot. */
int dns_settings_check(Mxfleet__V1__DomainDns *d, char *msg, size_t msgsz);

#endif
