/* Host and domain names as mxfleet accepts them from an operator: LDH
 * labels (RFC 1035 2.3.1, RFC 1123 2.1: letters, digits, hyphens, no hyphen
 * at either end of a label), 1..63 octets each, at most 253 octets in all
 * (without the trailing dot). Internationalized names are written in their
 * A-label form (xn--...). */
#ifndef MXFLEET_DNSNAME_H
#define MXFLEET_DNSNAME_H

#include <stddef.h>

#define DNSNAME_MAX	253
#define DNSNAME_LABEL_MAX	63

/* 0 if name is such a name (one trailing dot allowed), else -1 with why
 * (one line, for an operator) in why. */
int dnsname_check(const char *name, char *why, size_t whysz);

/* Whether the first len octets of a and the string b name the same domain:
 * ASCII case ignored, one trailing dot on either side ignored; an empty name
 * equals nothing. */
int dnsname_equal(const char *a, size_t len, const char *b);

#endif
