/* The RFC 3461 SMTP parameters' syntax, without I/O and without the spool:
 * the SMTP parser checks what a client sends with it, the spool what it
 * reads back, the DSN builder what it quotes. */
#ifndef MXD_DSN_PARAM_H
#define MXD_DSN_PARAM_H

#include <stddef.h>

/* RFC 3461 DSN parameters. RET of MAIL FROM: */
#define DSN_RET_NONE		0	/* not given */
#define DSN_RET_FULL		1
#define DSN_RET_HDRS		2
/* NOTIFY of RCPT TO, as bits; 0 means not given. NEVER stands alone. */
#define DSN_NOTIFY_SUCCESS	0x01u
#define DSN_NOTIFY_FAILURE	0x02u
#define DSN_NOTIFY_DELAY	0x04u
#define DSN_NOTIFY_NEVER	0x08u
#define DSN_ENVID_MAX		100	/* RFC 3461 4.4 */
#define DSN_ORCPT_MAX		500	/* RFC 3461 4.2 */

/* RFC 3461 4: xtext is 1* of "!".."~" without "+" and "=", or "+" and two
 * upper-case hex digits. Returns 1 when s[0..len) is that (and not empty). */
int dsn_xtext_ok(const char *s, size_t len);
/* ENVID: xtext of at most DSN_ENVID_MAX characters. */
int dsn_envid_ok(const char *s, size_t len);
/* ORCPT: "addr-type;xtext", addr-type an atom, at most DSN_ORCPT_MAX in all. */
int dsn_orcpt_ok(const char *s, size_t len);
/* NOTIFY: "NEVER" or a comma list of SUCCESS, FAILURE, DELAY (any case).
 * Returns 0 with the DSN_NOTIFY_* bits in *out, -1 when malformed. */
int dsn_notify_parse(const char *s, size_t len, unsigned *out);
/* The NOTIFY value for bits ("SUCCESS,FAILURE", "NEVER"; "" for 0). */
void dsn_notify_format(unsigned notify, char *out, size_t outsz);
/* Decode xtext into out. Returns 0 when the result is printable US-ASCII
 * that fits; -1 otherwise (then the xtext form is what may be shown). */
int dsn_xtext_decode(const char *s, char *out, size_t outsz);
#endif
