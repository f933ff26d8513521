/* Recipient verification (recipient_check "verify", as Postfix's
 * reject_unverified_recipient): the cache of probe answers, without I/O.
 *
 * Used by rcpt_prober.c (one cache per SMTP worker, its probes on the
 * worker's loop) for the RCPT hook of smtpd_core.c (io->rcpt_verify).
 *
 * The use at RCPT, for a domain in mode verify:
 *   KNOWN    -> 250; UNKNOWN -> 550 5.1.1 User unknown (nothing spooled,
 *               nothing bounced);
 *   MISS     -> the lookup marked the address pending: start one probe,
 *               suspend the session, and report the probe's result with
 *               rcpt_verify_cache_done; answer as KNOWN/UNKNOWN, or
 *               450 4.1.1 when the probe could not complete (FAILED);
 *   PENDING  -> another session's probe for this address is in flight:
 *               wait for it (rcpt_prober.c does); never 250: that would
 *               let an unknown recipient through while the next hop is
 *               slow, and it would bounce later.
 *
 * Answers are kept per address (ASCII case ignored): a positive one for
 * positive_ttl seconds, a negative one for negative_ttl; a failed probe
 * leaves nothing, so the next RCPT probes again. A pending mark lapses after
 * pending_ttl seconds, so a probe that never reports cannot block an address
 * for good. At most max_entries addresses are kept; at the bound the one
 * stored longest ago goes first. Lookups are O(1) (a hash table).
 *
 * Time comes from the clock given to rcpt_verify_cache_new (seconds), so a
 * test moves it by hand. One cache per SMTP worker; not thread-safe. */
#ifndef MXD_RCPT_VERIFY_H
#define MXD_RCPT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t (*rcpt_verify_clock_fn)(void *arg);

struct rcpt_verify_opts {
	int	positive_ttl;	/* seconds; 0: 86400 */
	int	negative_ttl;	/* seconds; 0: 3600 */
	int	pending_ttl;	/* seconds; 0: 60 */
	size_t	max_entries;	/* 0: 100000 */
};

enum rcpt_verify_status {
	RCPT_VERIFY_MISS,	/* no answer: the caller probes (marked pending) */
	RCPT_VERIFY_PENDING,	/* a probe for it is in flight */
	RCPT_VERIFY_KNOWN,	/* the next hop accepted it */
	RCPT_VERIFY_UNKNOWN,	/* the next hop refused it with 5xx */
};

enum rcpt_probe_result {
	RCPT_PROBE_ACCEPTED,	/* 2xx to RCPT */
	RCPT_PROBE_REJECTED,	/* 5xx to RCPT */
	RCPT_PROBE_FAILED,	/* 4xx, no connection, timeout, a broken dialogue */
};

struct rcpt_verify_cache;

struct rcpt_verify_cache *rcpt_verify_cache_new(const struct rcpt_verify_opts *o,
    rcpt_verify_clock_fn clock, void *clock_arg);
void rcpt_verify_cache_free(struct rcpt_verify_cache *c);

/* What is known of addr now; MISS also marks it pending (see above). */
enum rcpt_verify_status rcpt_verify_cache_lookup(struct rcpt_verify_cache *c,
    const char *addr);
/* The probe that a MISS started has ended. */
void rcpt_verify_cache_done(struct rcpt_verify_cache *c, const char *addr,
    enum rcpt_probe_result r);
/* Addresses held (answers and pending marks, expired ones not yet reused). */
size_t rcpt_verify_cache_count(const struct rcpt_verify_cache *c);

#endif
