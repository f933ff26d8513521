/* The client's reverse-DNS name as mxd records it (the outcome's
 * remote_ptr, the session log, the Received: header): the pure decisions of
 * ptr_lookup.c, without DNS, so they are unit-tested alone
 * (tests/unit/test_ptr_name.c).
 *
 * A PTR answer is remote text: it is used only when it is a hostname
 * (lib/dnsname.h) that does not read as an address, and only once its own
 * A/AAAA records hold the client's address (forward-confirmed reverse DNS,
 * as Postfix's reject_unknown_client_hostname): anyone may publish a PTR
 * naming someone else's domain, only that domain's owner can confirm it. */
#ifndef MXD_PTR_NAME_H
#define MXD_PTR_NAME_H

#include <stddef.h>
#include <sys/socket.h>

#include "dnsname.h"

#define PTR_NAME_SIZE	(DNSNAME_MAX + 1)

/* 0 and the name in out (lower case, without the final dot) when raw is a
 * hostname: LDH labels (dnsname_check) whose last one is not all digits (a
 * PTR "192.0.2.1" would pose as an address, Postfix refuses it too). Else
 * -1 and out is "". */
int ptr_name_clean(const char *raw, char *out, size_t outsz);

/* The client's address as DNS holds it: AF_INET and 4 bytes, or AF_INET6
 * and 16; an IPv4-mapped IPv6 address (a dual-stack listener) is IPv4.
 * -1 for any other family. */
int ptr_name_client(const struct sockaddr *sa, unsigned char addr[16]);

/* Whether one of the n addresses at addrs (each alen bytes: 4 for A
 * records, 16 for AAAA) is addr. */
int ptr_name_confirms(const void *addrs, int n, size_t alen, const unsigned char *addr);

#endif
