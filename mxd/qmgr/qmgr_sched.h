/* The scheduler's memory: every queued message and every destination with
 * mail in flight or waiting, and the decisions made on them. No I/O: the
 * clock is injected (as lib/sts_cache.h), spool files are read and written
 * by the caller (qmgr.c), so every decision replays in a unit test with a
 * fake clock (tests/unit/test_qmgr_sched.c).
 *
 * Messages. Indexed by id (a hash table) and by next attempt (a binary
 * heap): add, find, remove and "what is due" are O(log n) or O(1), so a
 * queue of 100,000 messages is scheduled and recovered after a restart in
 * O(n log n). A message handed to delivery agents is "in flight": it leaves
 * the heap until the caller settles it with qmgr_sched_set_due or removes
 * it. Memory: sizeof(struct qmgr_msg) plus one heap slot and one hash slot
 * per message (docs/delivery.md states the figure).
 *
 * Destinations. A destination is where a transaction goes: a recipient
 * domain for direct MX delivery, a next hop as written for the others. Each
 * has a FIFO of jobs (opaque to this module: the caller's pointer) and a
 * concurrency window, as Postfix's qmgr does (SCHEDULER_README):
 *   - the window starts at initial_concurrency, grows by one for each job
 *     that reached a server, shrinks by one (never below 1) for each job
 *     that could not (no connection, no greeting, timeout), and never
 *     exceeds the destination's ceiling;
 *   - after dead_after such failures in a row the destination is dead for
 *     dead_time seconds: its jobs are handed back marked dead (the caller
 *     defers them without a connection) and no new job starts; when the
 *     time has passed one job is let through as a probe: its success makes
 *     the destination alive again, its failure makes it dead again.
 * Destinations belong to a class (configured next hops, direct MX) with its
 * own agent limit, so a stalled remote domain never takes the agents a
 * local next hop needs. Within a class, destinations take turns (round
 * robin): one destination with 10,000 jobs does not delay another's one.
 * A destination with nothing queued, nothing in flight and not dead is
 * forgotten: its window starts afresh next time. */
#ifndef MXD_QMGR_SCHED_H
#define MXD_QMGR_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spool.h"

enum qmgr_class { QMGR_CLASS_NEXTHOP, QMGR_CLASS_MX, QMGR_NCLASS };

/* What a finished job says about its destination. */
enum qmgr_feedback {
	QMGR_FB_REACHED,	/* a server answered (whatever it replied) */
	QMGR_FB_UNREACHED,	/* no connection, no greeting, or a timeout */
	QMGR_FB_NONE,		/* no connection was tried (e.g. a config deferral) */
	QMGR_FB_PROGRESS	/* not an end: a new connection was greeted
				   (qmgr_sched_job_progress) */
};

struct qmgr_limits {
	int	initial_concurrency;	/* window start (>= 1) */
	int	dead_after;		/* failures in a row (>= 1) */
	int	dead_time;		/* seconds (>= 1) */
	int	class_agents[QMGR_NCLASS];	/* jobs in flight at once per class */
};

typedef int64_t (*qmgr_clock_fn)(void *arg);

struct qmgr_msg {
	char	 id[SPOOL_ID_MAX];
	int64_t	 due;		/* next attempt (meaningless while in flight) */
	int	 attempts;
	int	 delay_notified;
	int64_t	 last_attempt;	/* 0: not tried yet */
	int	 inflight;	/* jobs not settled yet; the caller counts them */
	int	 dropped;	/* `queue drop` while in flight: remove when settled */
	char	 last_reply[256];	/* why the last attempt deferred, one line */
	void	*owner;		/* the caller's per-attempt state, NULL when idle */
	/* private to qmgr_sched.c */
	size_t	 heap_idx;	/* SIZE_MAX: not in the heap (in flight) */
	struct qmgr_msg *hnext;
};

struct qmgr_sched;
struct qmgr_dest;

/* clock NULL: time(NULL). Returns 0, or -1 with err filled when a limit is
 * out of range. */
int qmgr_sched_new(const struct qmgr_limits *lim, qmgr_clock_fn clock, void *clock_arg,
    struct qmgr_sched **out, char *err, size_t errsz);
void qmgr_sched_free(struct qmgr_sched *s);
/* New limits (a reload): windows above a lower ceiling shrink at once. */
void qmgr_sched_set_limits(struct qmgr_sched *s, const struct qmgr_limits *lim);
int64_t qmgr_sched_now(const struct qmgr_sched *s);

/* ---- messages ---- */
/* Adds id due at `due`; an id already known is returned as it is (a
 * rescan finds files the scheduler knows). *added says which. */
struct qmgr_msg *qmgr_sched_add(struct qmgr_sched *s, const char *id, int64_t due, int *added);
struct qmgr_msg *qmgr_sched_find(struct qmgr_sched *s, const char *id);
/* Forgets m (freed: do not use it after). */
void qmgr_sched_remove(struct qmgr_sched *s, struct qmgr_msg *m);
/* The earliest-due message whose time has come (due <= now), taken out of
 * the heap (in flight), or NULL. */
struct qmgr_msg *qmgr_sched_take_due(struct qmgr_sched *s);
/* Puts m back in the heap (or moves it), due at `due`. */
void qmgr_sched_set_due(struct qmgr_sched *s, struct qmgr_msg *m, int64_t due);
/* The earliest due time of the messages in the heap; INT64_MAX when none. */
int64_t qmgr_sched_next_due(const struct qmgr_sched *s);
size_t qmgr_sched_count(const struct qmgr_sched *s);
/* Every message, in no particular order (queue list); fn must not add or
 * remove messages. */
void qmgr_sched_foreach(struct qmgr_sched *s, void (*fn)(struct qmgr_msg *, void *), void *arg);

/* The wait before attempt number attempts + 1 after a deferral: retry_min
 * seconds after the first, doubling, never above retry_max (Postfix's
 * minimal/maximal_backoff_time). attempts >= 1. */
int64_t qmgr_sched_backoff(int retry_min, int retry_max, int attempts);

/* ---- destinations and jobs ---- */
/* The destination `name` (compared without case) of class c, made when
 * unknown, with its window ceiling set to `ceiling` (>= 1; a later call
 * with another ceiling changes it). */
struct qmgr_dest *qmgr_sched_dest(struct qmgr_sched *s, const char *name, enum qmgr_class c,
    int ceiling);
const char *qmgr_dest_name(const struct qmgr_dest *d);
enum qmgr_class qmgr_dest_class(const struct qmgr_dest *d);
int qmgr_dest_window(const struct qmgr_dest *d);
int qmgr_dest_ceiling(const struct qmgr_dest *d);
int qmgr_dest_active(const struct qmgr_dest *d);
size_t qmgr_dest_queued(const struct qmgr_dest *d);
/* Whether d is dead now; *until (if not NULL) gets the end of it. */
int qmgr_dest_dead(const struct qmgr_sched *s, const struct qmgr_dest *d, int64_t *until);
/* Failures in a row now. */
int qmgr_dest_failures(const struct qmgr_dest *d);

/* Queues a job (the caller's pointer) at the end of d's FIFO. */
void qmgr_sched_job_add(struct qmgr_sched *s, struct qmgr_dest *d, void *job);

struct qmgr_pick {
	void		 *job;
	struct qmgr_dest *dest;
	int		  dead;	/* d is dead: defer the job, nothing started */
};
/* The next job of class c to run, round robin over that class's
 * destinations: from a destination that is dead (handed back with dead set,
 * nothing started), or one whose jobs in flight are below its window while
 * the class is below its agent limit (then the job counts as started: in
 * flight at the destination and in the class). 0 when there is none (pick
 * untouched), 1 when *pick is filled. */
int qmgr_sched_pick(struct qmgr_sched *s, enum qmgr_class c, struct qmgr_pick *pick);
/* A started job finished: the window and failure count move as the
 * feedback says (header comment). Returns 1 when this made the destination
 * dead, 2 when it made a dead (probed) destination alive, else 0: the
 * caller logs those. d may be forgotten by this call when it has nothing
 * left. */
int qmgr_sched_job_done(struct qmgr_sched *s, struct qmgr_dest *d, enum qmgr_feedback fb);
/* A started job's new connection was greeted and its handshake done:
 * the window grows now, not when the (maybe slow) transaction ends, and a
 * dead destination being probed is alive (returns 2, else 0). The job's
 * own end then gives no second growth: report it as QMGR_FB_NONE unless
 * it failed. */
int qmgr_sched_job_progress(struct qmgr_sched *s, struct qmgr_dest *d);
/* Jobs in flight in class c. */
int qmgr_sched_class_active(const struct qmgr_sched *s, enum qmgr_class c);
/* Drops every queued (not started) job for which fn returns nonzero,
 * calling it once per queued job: the caller frees what it drops. */
void qmgr_sched_job_filter(struct qmgr_sched *s, int (*fn)(void *job, void *arg), void *arg);
/* An operator's `queue retry`: every destination alive again, with no
 * failures counted (the retry really connects). */
void qmgr_sched_revive_all(struct qmgr_sched *s);
/* Forgets the destinations with nothing queued or in flight, a dead one
 * only when another dead_time has passed after its own (its mail, back on
 * its retry schedule, meets the probe first): dead ones whose mail was all
 * handed back are otherwise kept. The caller runs it now and then
 * (O(destinations)). */
void qmgr_sched_sweep(struct qmgr_sched *s);
/* Every destination (queue list, metrics). */
void qmgr_sched_dest_foreach(struct qmgr_sched *s, void (*fn)(struct qmgr_dest *, void *),
    void *arg);

#endif
