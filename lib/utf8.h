/* RFC 3629 UTF-8: one decoder for every parser that meets it (MTA-STS
 * policy lines, SMTPUTF8 addresses in DSNs). */
#ifndef MXFLEET_UTF8_H
#define MXFLEET_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The sequence at s (n bytes available, n >= 1): its length with the code
 * point in *cp, or -1 when it is no well-formed sequence (overlong,
 * surrogate, above U+10FFFF, cut short). ASCII is a sequence of 1. */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Are all n bytes well-formed UTF-8? */
int utf8_valid(const unsigned char *s, size_t n);

#endif
