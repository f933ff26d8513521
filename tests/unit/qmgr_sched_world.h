/* The scripted world of the scheduler scenarios (test_qmgr_sched.c,
 * test_qmgr_sched_dest.c): a fake clock, job tokens, helpers. */
#ifndef TEST_QMGR_SCHED_WORLD_H
#define TEST_QMGR_SCHED_WORLD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <strings.h>
#include <time.h>

#include "qmgr_sched.h"

#define T0		1700000000	/* the scenario's start, seconds */
#define DEAD_AFTER	3
#define DEAD_TIME	300
#define MANY		50		/* more jobs than any window here */
#define CEILING		20		/* the window ceiling unless a test says */

/* ---- the scripted world ---- */

struct world {
	int64_t			 now;
	struct qmgr_limits	 lim;
	struct qmgr_sched	*s;
};

/* A job as the caller would queue it: the tests only look at its identity. */
struct job {
	char	dest;
	int	n;
};

static inline int64_t
fake_clock(void *arg)
{
	return ((struct world *)arg)->now;
}

static inline void
open_sched(struct world *w)
{
	char err[256] = "";

	if (w->s != NULL)
		qmgr_sched_free(w->s);
	w->s = NULL;
	assert_int_equal(qmgr_sched_new(&w->lim, fake_clock, w, &w->s, err, sizeof(err)), 0);
	assert_non_null(w->s);
}

/* A fresh scheduler whose destinations start at `initial` jobs at once. */
static inline void
reopen_with_initial(struct world *w, int initial)
{
	w->lim.initial_concurrency = initial;
	open_sched(w);
}

static inline int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->now = T0;
	w->lim.initial_concurrency = 2;
	w->lim.dead_after = DEAD_AFTER;
	w->lim.dead_time = DEAD_TIME;
	w->lim.class_agents[QMGR_CLASS_NEXTHOP] = 100;
	w->lim.class_agents[QMGR_CLASS_MX] = 100;
	open_sched(w);
	*state = w;
	return 0;
}

/* Frees the scheduler with whatever it still holds (messages in the heap and
 * in flight, destinations with queued jobs): ASan's leak check sees the rest. */
static inline int
teardown(void **state)
{
	struct world *w = *state;

	qmgr_sched_free(w->s);
	free(w);
	return 0;
}

static inline void
queue_jobs(struct world *w, struct qmgr_dest *d, struct job *jobs, int n, char tag)
{
	for (int i = 0; i < n; i++) {
		jobs[i].dest = tag;
		jobs[i].n = i;
		qmgr_sched_job_add(w->s, d, &jobs[i]);
	}
}

/* A destination of class c (ceiling CEILING) with n jobs queued, tagged. */
static inline struct qmgr_dest *
queued_dest(struct world *w, const char *name, enum qmgr_class c, struct job *jobs, int n,
    char tag)
{
	struct qmgr_dest *d = qmgr_sched_dest(w->s, name, c, CEILING);

	assert_non_null(d);
	queue_jobs(w, d, jobs, n, tag);
	assert_int_equal(qmgr_dest_queued(d), n);
	return d;
}

/* The next pick of class c starts a job at d (not dead); returns the job. */
static inline struct job *
starts(struct world *w, enum qmgr_class c, struct qmgr_dest *d)
{
	struct qmgr_pick p;

	memset(&p, 0, sizeof(p));
	assert_int_equal(qmgr_sched_pick(w->s, c, &p), 1);
	assert_ptr_equal(p.dest, d);
	assert_int_equal(p.dead, 0);
	assert_non_null(p.job);
	return p.job;
}

/* The next pick of class c hands back one of d's jobs marked dead. */
static inline struct job *
handed_back_dead(struct world *w, enum qmgr_class c, struct qmgr_dest *d)
{
	struct qmgr_pick p;

	memset(&p, 0, sizeof(p));
	assert_int_equal(qmgr_sched_pick(w->s, c, &p), 1);
	assert_ptr_equal(p.dest, d);
	assert_int_equal(p.dead, 1);
	assert_non_null(p.job);
	return p.job;
}

/* Nothing of class c can start now, and the pick is left untouched. */
static inline void
nothing_starts(struct world *w, enum qmgr_class c)
{
	struct qmgr_pick p, before;

	memset(&p, 0xA5, sizeof(p));
	before = p;
	assert_int_equal(qmgr_sched_pick(w->s, c, &p), 0);
	assert_memory_equal(&p, &before, sizeof(p));
}

/* How many jobs of class c start before the pick says none: each must be a
 * started job (not dead). */
static inline int
start_all(struct world *w, enum qmgr_class c)
{
	struct qmgr_pick p;
	int n = 0;

	while (qmgr_sched_pick(w->s, c, &p) == 1) {
		assert_int_equal(p.dead, 0);
		n++;
		assert_true(n <= 100000);
	}
	return n;
}

/* One job of d starts and fails to reach a server; returns job_done's answer. */
static inline int
attempt_unreached(struct world *w, enum qmgr_class c, struct qmgr_dest *d)
{
	starts(w, c, d);
	return qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED);
}

/* xorshift64: the same pseudo-random sequence on every run. */
static inline uint64_t
next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static inline void
count_one(struct qmgr_dest *d, void *arg)
{
	(void)d;
	(*(int *)arg)++;
}

static inline int
dest_count(struct world *w)
{
	int n = 0;

	qmgr_sched_dest_foreach(w->s, count_one, &n);
	return n;
}

#endif
