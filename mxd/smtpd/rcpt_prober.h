/* Recipient verification probes (recipient_check "verify"), the I/O: one
 * SMTP worker's cache (rcpt_verify.h) and the probes it runs on its libevent
 * loop, each a non-blocking connection to the domain's next hop (LMTP or
 * SMTP, unix or TCP) playing the dialogue of rcpt_probe.h in plaintext, with
 * a deadline for the whole probe (recipient_verify.timeout).
 *
 * One prober per worker process: answers are not shared between workers (a
 * worker that never saw an address probes it once itself). Sessions of one
 * worker asking for the same address while its probe runs wait for that one
 * probe. */
#ifndef MXD_RCPT_PROBER_H
#define MXD_RCPT_PROBER_H

#include "mxd_config.h"
#include "rcpt_verify.h"

struct event_base;
struct rcpt_prober;
struct rcpt_prober_wait;

/* A probe a session waits for has ended. */
typedef void (*rcpt_prober_cb)(void *arg, enum rcpt_probe_result r);

struct rcpt_prober *rcpt_prober_new(struct event_base *base, const struct mxd_config *cfg);
/* Ends the probes in flight; their waiters are not called. */
void rcpt_prober_free(struct rcpt_prober *p);

/* What is known of addr (a recipient of dom): KNOWN or UNKNOWN from the
 * cache; MISS or PENDING: a probe runs (started now, or another session's),
 * *wait is set and cb(arg, result) follows unless rcpt_prober_cancel(*wait)
 * comes first. */
enum rcpt_verify_status rcpt_prober_check(struct rcpt_prober *p, const struct mxd_domain *dom,
    const char *addr, rcpt_prober_cb cb, void *arg, struct rcpt_prober_wait **wait);
/* The session no longer waits (it closed); the probe goes on for the cache. */
void rcpt_prober_cancel(struct rcpt_prober_wait *w);

#endif
