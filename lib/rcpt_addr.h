/* One entry of a hosted domain's recipient list ("alice" or
 * "alice@example.org"), checked and brought to the form the list stores:
 * the local part alone, ASCII letters in lower case. Shared by mxd (its
 * config file and controld's snapshot) and controld (mailctl domain
 * recipients), so both refuse the same entries for the same reason.
 *
 * Local parts compare ignoring ASCII case (what operators expect, and what
 * every common mailbox store does); bytes above 0x7f are compared as they
 * are. A quoted local part ("john doe"@...) is not supported in a list: its
 * space is refused. */
#ifndef MXFLEET_RCPT_ADDR_H
#define MXFLEET_RCPT_ADDR_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.1 says 64; VERP and SRS style local parts run longer,
 * and the list is only compared against, so allow a path's worth. */
#define RCPT_ADDR_LOCAL_MAX	255

/* Put entry's local part, lower-cased, in out (RCPT_ADDR_LOCAL_MAX + 1
 * bytes at least). An entry with '@' must name domain (ASCII case ignored,
 * a trailing dot allowed). 0, or -1 with why set to a phrase that
 * completes "<entry>: ...". */
int rcpt_addr_local(const char *entry, const char *domain, char *out, size_t outsz,
    char *why, size_t whysz);

/* ASCII lower case of c; other bytes unchanged. */
static inline unsigned char
rcpt_addr_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

#endif
