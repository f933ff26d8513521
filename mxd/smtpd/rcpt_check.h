/* Which recipients of a hosted domain mxd accepts at RCPT time.
 *
 * Why: a recipient accepted at RCPT and refused later by the next hop turns
 * into a DSN to the envelope sender, who is unverified: anyone could make
 * the fleet mail anyone (backscatter), with RET=FULL the whole message. So a
 * hosted domain says, per domain, what RCPT checks (docs/mxd.md, "Recipient
 * checks"):
 *   unset   nothing configured: any local part (mxd warns at startup)
 *   any     the operator's choice: any local part (a catch-all next hop)
 *   list    only the local parts of a list: from mxd.conf (recipients,
 *           recipients_file) or from controld's snapshot
 *   verify  a probe RCPT to the next hop (mxd.conf, or a snapshot; controld
 *           cannot store it yet): not decided here but by
 *           smtpd_core.c's io->rcpt_verify (rcpt_prober.h, rcpt_verify.h,
 *           rcpt_probe.h); rcpt_check_verdict says ACCEPT for it
 *
 * No I/O: the list is built once per configuration load (mxd_config.c),
 * sealed, then only read by the SMTP workers (fork copies). A lookup is a
 * binary search, O(log n) in the list's size, without allocation. Local
 * parts compare ignoring ASCII case (lib/rcpt_addr.h); with a recipient
 * delimiter ("+"), user+tag matches a listed user when user+tag itself is
 * not listed (Postfix's recipient_delimiter). */
#ifndef MXD_RCPT_CHECK_H
#define MXD_RCPT_CHECK_H

#include <stddef.h>

enum rcpt_check_mode {
	RCPT_CHECK_UNSET = 0,
	RCPT_CHECK_ANY,
	RCPT_CHECK_LIST,
	RCPT_CHECK_VERIFY,
};

enum rcpt_verdict {
	RCPT_ACCEPT,
	RCPT_UNKNOWN,		/* 550 5.1.1 User unknown */
};

struct rcpt_set;

struct rcpt_check {
	enum rcpt_check_mode	 mode;
	struct rcpt_set		*set;	/* RCPT_CHECK_LIST only; owned */
};

/* "any", "list", "verify" to a mode; -1 for anything else. */
int rcpt_check_mode_parse(const char *s);
const char *rcpt_check_mode_name(enum rcpt_check_mode mode);

/* A set of local parts: add (already normalized by rcpt_addr_local), seal
 * once (sorts, drops duplicates), then look up. Adding after sealing, or
 * looking up before, is a bug (panic). */
struct rcpt_set *rcpt_set_new(void);
void rcpt_set_add(struct rcpt_set *set, const char *local);
void rcpt_set_seal(struct rcpt_set *set);
size_t rcpt_set_count(const struct rcpt_set *set);
/* Is the local part local[0..len) in the set, ignoring ASCII case? */
int rcpt_set_has(const struct rcpt_set *set, const char *local, size_t len);
void rcpt_set_free(struct rcpt_set *set);

/* Replace c's mode and set (taking set; NULL unless mode is LIST). */
void rcpt_check_set(struct rcpt_check *c, enum rcpt_check_mode mode, struct rcpt_set *set);
void rcpt_check_clear(struct rcpt_check *c);

/* The verdict for addr ("local@domain", the domain being c's) at RCPT.
 * delimiters: recipient delimiter characters, NULL or "" for none. */
enum rcpt_verdict rcpt_check_verdict(const struct rcpt_check *c, const char *addr,
    const char *delimiters);

#endif
