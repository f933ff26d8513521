/* The delivery scheduler's memory (mxd/qmgr/qmgr_sched.h): scenarios in the style
 * of test_sts_cache.c. A fake clock the test moves by hand, jobs that are
 * plain tokens of the test, and after each step what the queue manager would
 * do next: which message is due, which job starts, whether a destination is
 * dead, how wide its window is. Nothing here sleeps or depends on the
 * machine's speed, except the one timed scale run (CPU time, a generous
 * bound). */
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

static int64_t
fake_clock(void *arg)
{
	return ((struct world *)arg)->now;
}

static void
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
static void
reopen_with_initial(struct world *w, int initial)
{
	w->lim.initial_concurrency = initial;
	open_sched(w);
}

static int
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
static int
teardown(void **state)
{
	struct world *w = *state;

	qmgr_sched_free(w->s);
	free(w);
	return 0;
}

static void
queue_jobs(struct world *w, struct qmgr_dest *d, struct job *jobs, int n, char tag)
{
	for (int i = 0; i < n; i++) {
		jobs[i].dest = tag;
		jobs[i].n = i;
		qmgr_sched_job_add(w->s, d, &jobs[i]);
	}
}

/* A destination of class c (ceiling CEILING) with n jobs queued, tagged. */
static struct qmgr_dest *
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
static struct job *
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
static struct job *
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
static void
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
static int
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
static int
attempt_unreached(struct world *w, enum qmgr_class c, struct qmgr_dest *d)
{
	starts(w, c, d);
	return qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED);
}

/* xorshift64: the same pseudo-random sequence on every run. */
static uint64_t
next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
count_one(struct qmgr_dest *d, void *arg)
{
	(void)d;
	(*(int *)arg)++;
}

static int
dest_count(struct world *w)
{
	int n = 0;

	qmgr_sched_dest_foreach(w->s, count_one, &n);
	return n;
}

/* ---- the scheduler itself ---- */

static void
test_new_rejects_out_of_range_limits(void **state)
{
	(void)state;
	static const struct {
		const char	*what;		/* a word the message must contain */
		struct qmgr_limits lim;
	} bad[] = {
		{ "concurrency", { 0, 3, 300, { 10, 10 } } },
		{ "concurrency", { -1, 3, 300, { 10, 10 } } },
		{ "dead", { 2, 0, 300, { 10, 10 } } },
		{ "dead", { 2, -5, 300, { 10, 10 } } },
		{ "dead", { 2, 3, 0, { 10, 10 } } },
		{ "dead", { 2, 3, -1, { 10, 10 } } },
		/* a class with no agents would never deliver: a config error */
		{ "agent", { 2, 3, 300, { 0, 10 } } },
		{ "agent", { 2, 3, 300, { 10, 0 } } },
		{ "agent", { 2, 3, 300, { 10, -1 } } },
	};
	static const struct qmgr_limits least = { 1, 1, 1, { 1, 1 } };
	struct qmgr_sched *s;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = NULL;
		err[0] = '\0';
		assert_int_equal(qmgr_sched_new(&bad[i].lim, NULL, NULL, &s, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
		if (strstr(err, bad[i].what) == NULL)
			fail_msg("limits #%zu: error \"%s\" does not name \"%s\"", i, err,
			    bad[i].what);
	}
	/* The least values in range are accepted. */
	s = NULL;
	assert_int_equal(qmgr_sched_new(&least, NULL, NULL, &s, err, sizeof(err)), 0);
	assert_non_null(s);
	qmgr_sched_free(s);
}

static void
test_clock_is_the_injected_one_and_defaults_to_time(void **state)
{
	struct world *w = *state;
	struct qmgr_sched *s = NULL;
	char err[256];
	int64_t before, now;

	assert_int_equal(qmgr_sched_now(w->s), T0);
	w->now += 12345;
	assert_int_equal(qmgr_sched_now(w->s), T0 + 12345);

	assert_int_equal(qmgr_sched_new(&w->lim, NULL, NULL, &s, err, sizeof(err)), 0);
	before = time(NULL);
	now = qmgr_sched_now(s);
	assert_true(now >= before && now <= time(NULL));
	qmgr_sched_free(s);
}

/* ---- messages ---- */

static void
test_message_add_find_remove(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *m;
	int added = -1;

	assert_int_equal(qmgr_sched_count(w->s), 0);
	assert_null(qmgr_sched_find(w->s, "A1"));
	m = qmgr_sched_add(w->s, "A1", T0 + 10, &added);
	assert_non_null(m);
	assert_int_equal(added, 1);
	assert_string_equal(m->id, "A1");
	assert_int_equal(m->due, T0 + 10);
	assert_int_equal(m->inflight, 0);
	assert_null(m->owner);
	assert_ptr_equal(qmgr_sched_find(w->s, "A1"), m);
	assert_null(qmgr_sched_find(w->s, "A2"));
	assert_int_equal(qmgr_sched_count(w->s), 1);

	qmgr_sched_add(w->s, "A2", T0 + 5, &added);
	assert_int_equal(added, 1);
	assert_int_equal(qmgr_sched_count(w->s), 2);

	qmgr_sched_remove(w->s, m);
	assert_null(qmgr_sched_find(w->s, "A1"));
	assert_non_null(qmgr_sched_find(w->s, "A2"));
	assert_int_equal(qmgr_sched_count(w->s), 1);
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 5);
}

static void
test_adding_a_known_id_returns_it_unchanged(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *m, *again;
	int added = -1;

	m = qmgr_sched_add(w->s, "DUP", T0 + 100, &added);
	assert_int_equal(added, 1);
	m->attempts = 4;

	/* A rescan finds the file again with another due time: the scheduler
	 * keeps what it knows. */
	again = qmgr_sched_add(w->s, "DUP", T0 + 1, &added);
	assert_ptr_equal(again, m);
	assert_int_equal(added, 0);
	assert_int_equal(m->due, T0 + 100);
	assert_int_equal(m->attempts, 4);
	assert_int_equal(qmgr_sched_count(w->s), 1);
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 100);

	/* Also while it is in flight: it stays in flight. */
	w->now = T0 + 100;
	assert_ptr_equal(qmgr_sched_take_due(w->s), m);
	again = qmgr_sched_add(w->s, "DUP", T0, &added);
	assert_ptr_equal(again, m);
	assert_int_equal(added, 0);
	assert_null(qmgr_sched_take_due(w->s));
	assert_int_equal(qmgr_sched_count(w->s), 1);
}

static void
test_take_due_returns_earliest_first_and_nothing_early(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *a, *b, *c;

	c = qmgr_sched_add(w->s, "C", T0 + 30, &(int){ 0 });
	a = qmgr_sched_add(w->s, "A", T0 + 10, &(int){ 0 });
	b = qmgr_sched_add(w->s, "B", T0 + 20, &(int){ 0 });

	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 10);
	assert_null(qmgr_sched_take_due(w->s));		/* now = T0 */
	w->now = T0 + 9;
	assert_null(qmgr_sched_take_due(w->s));
	w->now = T0 + 10;				/* due <= now */
	assert_ptr_equal(qmgr_sched_take_due(w->s), a);
	assert_null(qmgr_sched_take_due(w->s));
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 20);

	/* Long after both were due: still earliest first, then nothing. */
	w->now = T0 + 1000;
	assert_ptr_equal(qmgr_sched_take_due(w->s), b);
	assert_ptr_equal(qmgr_sched_take_due(w->s), c);
	assert_null(qmgr_sched_take_due(w->s));
	assert_int_equal(qmgr_sched_next_due(w->s), INT64_MAX);
}

static void
test_message_in_flight_is_not_taken_again_until_set_due(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *m, *other;

	m = qmgr_sched_add(w->s, "M", T0, &(int){ 0 });
	other = qmgr_sched_add(w->s, "OTHER", T0 + 500, &(int){ 0 });
	assert_ptr_equal(qmgr_sched_take_due(w->s), m);

	/* In flight: still known and counted, never due. */
	w->now = T0 + 400;
	assert_null(qmgr_sched_take_due(w->s));
	assert_ptr_equal(qmgr_sched_find(w->s, "M"), m);
	assert_int_equal(qmgr_sched_count(w->s), 2);
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 500);

	/* Settled (deferred) to T0 + 450: due again then, before OTHER. */
	qmgr_sched_set_due(w->s, m, T0 + 450);
	assert_int_equal(m->due, T0 + 450);
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 450);
	assert_null(qmgr_sched_take_due(w->s));
	w->now = T0 + 600;
	assert_ptr_equal(qmgr_sched_take_due(w->s), m);
	assert_ptr_equal(qmgr_sched_take_due(w->s), other);
	assert_null(qmgr_sched_take_due(w->s));
}

static void
test_set_due_moves_a_waiting_message(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *a, *b, *c;

	a = qmgr_sched_add(w->s, "A", T0 + 10, &(int){ 0 });
	b = qmgr_sched_add(w->s, "B", T0 + 20, &(int){ 0 });
	c = qmgr_sched_add(w->s, "C", T0 + 30, &(int){ 0 });

	qmgr_sched_set_due(w->s, c, T0 + 1);	/* `queue retry`: earlier */
	qmgr_sched_set_due(w->s, a, T0 + 100);	/* later */
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 1);
	w->now = T0 + 1000;
	assert_ptr_equal(qmgr_sched_take_due(w->s), c);
	assert_ptr_equal(qmgr_sched_take_due(w->s), b);
	assert_ptr_equal(qmgr_sched_take_due(w->s), a);
	assert_null(qmgr_sched_take_due(w->s));
	assert_int_equal(qmgr_sched_count(w->s), 3);
}

static void
test_remove_of_a_message_in_flight_forgets_it(void **state)
{
	struct world *w = *state;
	struct qmgr_msg *m, *other;

	m = qmgr_sched_add(w->s, "GONE", T0, &(int){ 0 });
	other = qmgr_sched_add(w->s, "STAYS", T0 + 10, &(int){ 0 });
	assert_ptr_equal(qmgr_sched_take_due(w->s), m);
	qmgr_sched_remove(w->s, m);
	assert_null(qmgr_sched_find(w->s, "GONE"));
	assert_int_equal(qmgr_sched_count(w->s), 1);
	assert_int_equal(qmgr_sched_next_due(w->s), T0 + 10);
	w->now = T0 + 10;
	assert_ptr_equal(qmgr_sched_take_due(w->s), other);
	assert_null(qmgr_sched_take_due(w->s));

	/* The id can come back (a new message with a reused name). */
	int added = 0;
	assert_non_null(qmgr_sched_add(w->s, "GONE", T0 + 20, &added));
	assert_int_equal(added, 1);
}

/* Removing waiting messages from anywhere in the heap, and moving others,
 * keeps the order of the rest: 2,000 messages with random due times (a fixed
 * seed), about half removed and a tenth moved, then all taken. */
#define SHUFFLE_N	2000

static void
test_remove_of_waiting_messages_keeps_the_order(void **state)
{
	struct world *w = *state;
	static struct qmgr_msg *m[SHUFFLE_N];
	static char gone[SHUFFLE_N], seen[SHUFFLE_N];
	uint64_t x = 0x2545F4914F6CDD1Dull;
	char id[16];
	int left = SHUFFLE_N;

	memset(gone, 0, sizeof(gone));
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < SHUFFLE_N; i++) {
		next_random(&x);
		snprintf(id, sizeof(id), "R%d", i);
		m[i] = qmgr_sched_add(w->s, id, T0 + (int64_t)(x % 1000), &(int){ 0 });
	}
	for (int i = 0; i < SHUFFLE_N; i++) {
		next_random(&x);
		if (x % 2 == 0) {
			qmgr_sched_remove(w->s, m[i]);
			gone[i] = 1;
			left--;
		} else if (x % 10 == 1) {
			qmgr_sched_set_due(w->s, m[i], T0 + (int64_t)((x >> 8) % 1000));
		}
	}
	assert_int_equal(qmgr_sched_count(w->s), left);
	w->now = T0 + 1000;
	int64_t last = INT64_MIN;
	int n = 0;
	for (struct qmgr_msg *t; (t = qmgr_sched_take_due(w->s)) != NULL; n++) {
		int i = atoi(t->id + 1);

		assert_true(n < left);
		if (t->due < last)
			fail_msg("take %d: due %lld after %lld", n, (long long)t->due,
			    (long long)last);
		assert_false(gone[i]);
		assert_false(seen[i]);
		seen[i] = 1;
		last = t->due;
	}
	assert_int_equal(n, left);
}

struct visits {
	int	seen[MANY];
	int	other;
};

static void
visit(struct qmgr_msg *m, void *arg)
{
	struct visits *v = arg;
	int i = atoi(m->id + 1);

	if (m->id[0] == 'V' && i >= 0 && i < MANY)
		v->seen[i]++;
	else
		v->other++;
}

static void
test_foreach_visits_each_message_once(void **state)
{
	struct world *w = *state;
	struct visits v;
	char id[16];

	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof(id), "V%d", i);
		qmgr_sched_add(w->s, id, T0 + i, &(int){ 0 });
	}
	/* Ten are in flight: `queue list` shows them too. */
	w->now = T0 + 9;
	for (int i = 0; i < 10; i++)
		assert_non_null(qmgr_sched_take_due(w->s));
	memset(&v, 0, sizeof(v));
	qmgr_sched_foreach(w->s, visit, &v);
	for (int i = 0; i < MANY; i++)
		assert_int_equal(v.seen[i], 1);
	assert_int_equal(v.other, 0);
	assert_int_equal(qmgr_sched_count(w->s), MANY);
}

/* CPU seconds this thread spent since *a (CLOCK_THREAD_CPUTIME_ID): other
 * processes on a loaded machine do not count, as they would on a wall clock. */
static double
elapsed(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/* 100,000 messages with random due times (a fixed seed) are added, each
 * found by id, then all taken in due order, then removed. Only the
 * scheduler's calls are timed, in CPU time of this thread, and the checks
 * come after. O(n log n) takes about 0.35 s (1 s under ASan+UBSan), on an
 * idle machine as with a load average of 20; O(n^2) would take minutes. The
 * bound leaves a margin of five or more for a slower machine. */
#define SCALE_N		100000
#if defined(__SANITIZE_ADDRESS__)
#define SCALE_BOUND	6.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCALE_BOUND	6.0
#endif
#endif
#ifndef SCALE_BOUND
#define SCALE_BOUND	2.0
#endif

struct scale_run {
	char		 id[SCALE_N][12];
	int64_t		 due[SCALE_N];
	int		 added[SCALE_N];
	struct qmgr_msg	*taken[SCALE_N];
	int64_t		 taken_due[SCALE_N];
	size_t		 ntaken, found;
	size_t		 count_after_add, count_after_remove;
	double		 secs[4];	/* add, find, take, remove */
};

static void
scale_prepare(struct scale_run *r)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;

	for (int i = 0; i < SCALE_N; i++) {
		snprintf(r->id[i], sizeof(r->id[i]), "S%08d", i);
		r->due[i] = T0 + (int64_t)(next_random(&x) % 86400);
	}
}

/* The timed part: the scheduler's calls and nothing else. */
static void
scale_run(struct world *w, struct scale_run *r)
{
	struct timespec t;
	struct qmgr_msg *m;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	for (int i = 0; i < SCALE_N; i++)
		qmgr_sched_add(w->s, r->id[i], r->due[i], &r->added[i]);
	r->count_after_add = qmgr_sched_count(w->s);
	r->secs[0] = elapsed(&t);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	for (int i = 0; i < SCALE_N; i++)
		r->found += qmgr_sched_find(w->s, r->id[i]) != NULL;
	r->secs[1] = elapsed(&t);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	w->now = T0 + 86400;
	while (r->ntaken < SCALE_N && (m = qmgr_sched_take_due(w->s)) != NULL) {
		r->taken[r->ntaken] = m;
		r->taken_due[r->ntaken++] = m->due;
	}
	r->secs[2] = elapsed(&t);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	for (size_t i = 0; i < r->ntaken; i++)
		qmgr_sched_remove(w->s, r->taken[i]);
	r->count_after_remove = qmgr_sched_count(w->s);
	r->secs[3] = elapsed(&t);
}

static void
test_hundred_thousand_messages_come_out_in_due_order_quickly(void **state)
{
	struct world *w = *state;
	struct scale_run *r = calloc(1, sizeof(*r));
	double secs;

	assert_non_null(r);
	scale_prepare(r);
	scale_run(w, r);
	secs = r->secs[0] + r->secs[1] + r->secs[2] + r->secs[3];
	print_message("%d messages added, found, taken in due order and removed in %.3f s of CPU "
	    "(add %.3f, find %.3f, take %.3f, remove %.3f; bound %.1f s)\n", SCALE_N, secs,
	    r->secs[0], r->secs[1], r->secs[2], r->secs[3], SCALE_BOUND);

	for (int i = 0; i < SCALE_N; i++)
		assert_int_equal(r->added[i], 1);
	assert_int_equal(r->count_after_add, SCALE_N);
	assert_int_equal(r->found, SCALE_N);
	assert_int_equal(r->ntaken, SCALE_N);
	for (size_t i = 1; i < r->ntaken; i++)
		if (r->taken_due[i] < r->taken_due[i - 1])
			fail_msg("take %zu: due %lld after %lld", i, (long long)r->taken_due[i],
			    (long long)r->taken_due[i - 1]);
	assert_int_equal(r->count_after_remove, 0);
	assert_null(qmgr_sched_take_due(w->s));
	assert_int_equal(qmgr_sched_next_due(w->s), INT64_MAX);
	assert_true(secs < SCALE_BOUND);
	free(r);
}

/* ---- destinations: the concurrency window ---- */

static void
test_destination_names_compare_without_case(void **state)
{
	struct world *w = *state;
	struct qmgr_dest *d;

	d = qmgr_sched_dest(w->s, "Example.COM", QMGR_CLASS_MX, CEILING);
	assert_non_null(d);
	assert_ptr_equal(qmgr_sched_dest(w->s, "example.com", QMGR_CLASS_MX, CEILING), d);
	assert_int_equal(strcasecmp(qmgr_dest_name(d), "example.com"), 0);
	assert_int_equal(qmgr_dest_class(d), QMGR_CLASS_MX);
	assert_int_equal(qmgr_dest_window(d), w->lim.initial_concurrency);
	assert_int_equal(qmgr_dest_active(d), 0);
	assert_int_equal(qmgr_dest_queued(d), 0);
	assert_int_equal(qmgr_dest_failures(d), 0);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
	assert_int_equal(dest_count(w), 1);
}

static void
test_window_starts_at_initial_concurrency(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	reopen_with_initial(w, 3);
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(qmgr_dest_queued(d), MANY);
	assert_int_equal(qmgr_dest_window(d), 3);

	/* Jobs start in the order queued, three of them. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(starts(w, QMGR_CLASS_MX, d)->n, i);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_dest_active(d), 3);
	assert_int_equal(qmgr_dest_queued(d), MANY - 3);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 3);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_NEXTHOP), 0);
	/* The other class has nothing. */
	nothing_starts(w, QMGR_CLASS_NEXTHOP);
}

static void
test_reached_grows_the_window_by_one(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);

	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_dest_window(d), 3);
	assert_int_equal(qmgr_dest_active(d), 1);
	/* The freed slot and one more. */
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
	assert_int_equal(qmgr_dest_active(d), 3);

	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_dest_window(d), 5);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 4);
	assert_int_equal(qmgr_dest_active(d), 5);
	assert_int_equal(qmgr_dest_failures(d), 0);
}

static void
test_window_never_exceeds_the_ceiling(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	d = qmgr_sched_dest(w->s, "example.com", QMGR_CLASS_MX, 4);
	queue_jobs(w, d, jobs, MANY, 'A');
	for (int i = 0; i < 20; i++) {
		start_all(w, QMGR_CLASS_MX);
		assert_true(qmgr_dest_active(d) <= 4);
		assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
		assert_true(qmgr_dest_window(d) <= 4);
	}
	assert_int_equal(qmgr_dest_window(d), 4);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);
	assert_int_equal(qmgr_dest_active(d), 4);

	/* A ceiling below initial_concurrency caps a new destination too. */
	struct qmgr_dest *low = qmgr_sched_dest(w->s, "low.example", QMGR_CLASS_MX, 1);
	struct job one[2];
	queue_jobs(w, low, one, 2, 'L');
	assert_int_equal(qmgr_dest_window(low), 1);
	starts(w, QMGR_CLASS_MX, low);
	nothing_starts(w, QMGR_CLASS_MX);
}

static void
test_unreached_shrinks_the_window_never_below_one(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	w->lim.initial_concurrency = 4;
	w->lim.dead_after = 1000;	/* this test is about the window only */
	open_sched(w);
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 4);

	/* Each failure takes a slot away: nothing new starts. */
	for (int want = 3; want >= 1; want--) {
		assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 0);
		assert_int_equal(qmgr_dest_window(d), want);
		nothing_starts(w, QMGR_CLASS_MX);
	}
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 0);
	assert_int_equal(qmgr_dest_window(d), 1);
	assert_int_equal(qmgr_dest_failures(d), 4);

	/* At one it stays one: one job at a time keeps trying. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);
		assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 0);
		assert_int_equal(qmgr_dest_window(d), 1);
	}
	assert_false(qmgr_dest_dead(w->s, d, NULL));
}

static void
test_no_feedback_leaves_window_and_failures(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	reopen_with_initial(w, 3);
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(attempt_unreached(w, QMGR_CLASS_MX, d), 0);
	assert_int_equal(qmgr_dest_window(d), 2);
	assert_int_equal(qmgr_dest_failures(d), 1);

	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	assert_int_equal(qmgr_dest_window(d), 2);
	assert_int_equal(qmgr_dest_failures(d), 1);
	assert_int_equal(qmgr_dest_active(d), 0);
	/* The slots are free again, no more. */
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
}

/* ---- classes and round robin ---- */

static void
test_class_agent_limit_caps_a_wide_window(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	w->lim.class_agents[QMGR_CLASS_NEXTHOP] = 3;
	reopen_with_initial(w, 10);
	d = queued_dest(w, "[relay.example]:25", QMGR_CLASS_NEXTHOP, jobs, MANY, 'N');
	assert_int_equal(qmgr_dest_window(d), 10);
	assert_int_equal(start_all(w, QMGR_CLASS_NEXTHOP), 3);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_NEXTHOP), 3);
	assert_int_equal(qmgr_dest_active(d), 3);
	nothing_starts(w, QMGR_CLASS_NEXTHOP);

	/* One finishes: one more starts, the class stays at its limit. */
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(start_all(w, QMGR_CLASS_NEXTHOP), 1);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_NEXTHOP), 3);
}

/* The next hop class is full (its peer stalls every connection); mail for
 * a remote domain starts all the same, and the other way round. */
static void
test_a_full_class_never_blocks_the_other(void **state)
{
	struct world *w = *state;
	struct job hop[MANY], mx[MANY];
	struct qmgr_dest *h, *d;

	w->lim.class_agents[QMGR_CLASS_NEXTHOP] = 3;
	w->lim.class_agents[QMGR_CLASS_MX] = 5;
	reopen_with_initial(w, 10);
	h = queued_dest(w, "[relay.example]:25", QMGR_CLASS_NEXTHOP, hop, MANY, 'N');
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, mx, MANY, 'M');

	assert_int_equal(start_all(w, QMGR_CLASS_NEXTHOP), 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(starts(w, QMGR_CLASS_MX, d)->dest, 'M');
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_NEXTHOP), 3);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 5);

	/* A finished next hop job frees a next hop agent, not an MX one. */
	assert_int_equal(qmgr_sched_job_done(w->s, h, QMGR_FB_REACHED), 0);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(starts(w, QMGR_CLASS_NEXTHOP, h)->dest, 'N');
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	nothing_starts(w, QMGR_CLASS_NEXTHOP);
	assert_int_equal(starts(w, QMGR_CLASS_MX, d)->dest, 'M');
}

static void
test_round_robin_small_destination_is_not_behind_a_big_one(void **state)
{
	struct world *w = *state;
	struct job big[100], small[1];
	struct qmgr_dest *a, *b;
	struct qmgr_pick p;
	int at = -1;

	reopen_with_initial(w, 20);
	a = queued_dest(w, "big.example", QMGR_CLASS_MX, big, 100, 'A');
	b = queued_dest(w, "small.example", QMGR_CLASS_MX, small, 1, 'B');
	for (int i = 0; i < 2; i++) {
		assert_int_equal(qmgr_sched_pick(w->s, QMGR_CLASS_MX, &p), 1);
		assert_int_equal(p.dead, 0);
		if (p.job == &small[0]) {
			assert_ptr_equal(p.dest, b);
			at = i;
		} else {
			assert_ptr_equal(p.dest, a);
		}
	}
	if (at < 0)
		fail_msg("small.example's one job did not start in the first two picks");
	assert_int_equal(qmgr_dest_active(b), 1);
	assert_int_equal(qmgr_dest_queued(b), 0);
}

/* Three destinations with jobs: three picks in a row visit all three. */
static void
test_round_robin_takes_turns(void **state)
{
	struct world *w = *state;
	struct job ja[10], jb[10], jc[10];
	int seen[3] = { 0 };

	reopen_with_initial(w, 10);
	queued_dest(w, "a.example", QMGR_CLASS_MX, ja, 10, 'A');
	queued_dest(w, "b.example", QMGR_CLASS_MX, jb, 10, 'B');
	queued_dest(w, "c.example", QMGR_CLASS_MX, jc, 10, 'C');
	for (int round = 0; round < 3; round++) {
		struct qmgr_pick p[3];

		memset(seen, 0, sizeof(seen));
		for (int i = 0; i < 3; i++) {
			assert_int_equal(qmgr_sched_pick(w->s, QMGR_CLASS_MX, &p[i]), 1);
			seen[((struct job *)p[i].job)->dest - 'A']++;
		}
		assert_int_equal(seen[0], 1);
		assert_int_equal(seen[1], 1);
		assert_int_equal(seen[2], 1);
	}
}

/* ---- dead destinations ---- */

/* Fails d dead_after times in a row; returns the time it is dead until. */
static int64_t
kill_dest(struct world *w, enum qmgr_class c, struct qmgr_dest *d)
{
	int64_t until = 0;

	for (int i = 1; i < w->lim.dead_after; i++) {
		assert_int_equal(attempt_unreached(w, c, d), 0);
		assert_int_equal(qmgr_dest_failures(d), i);
		assert_false(qmgr_dest_dead(w->s, d, NULL));
	}
	assert_int_equal(attempt_unreached(w, c, d), 1);
	assert_true(qmgr_dest_dead(w->s, d, &until));
	assert_int_equal(until, w->now + w->lim.dead_time);
	return until;
}

static void
test_failures_in_a_row_make_a_destination_dead(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, MANY, 'D');
	w->now = T0 + 7;
	kill_dest(w, QMGR_CLASS_MX, d);
	assert_int_equal(qmgr_dest_active(d), 0);

	/* Its jobs come back marked dead, one per pick, in order, and none of
	 * them counts as started. */
	for (int i = DEAD_AFTER; i < MANY; i++) {
		assert_int_equal(handed_back_dead(w, QMGR_CLASS_MX, d)->n, i);
		assert_int_equal(qmgr_dest_active(d), 0);
		assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 0);
	}
	assert_int_equal(qmgr_dest_queued(d), 0);
	nothing_starts(w, QMGR_CLASS_MX);
}

static void
test_a_reached_server_resets_the_failure_count(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	d = queued_dest(w, "flaky.example", QMGR_CLASS_MX, jobs, MANY, 'F');
	for (int i = 1; i < DEAD_AFTER; i++)
		assert_int_equal(attempt_unreached(w, QMGR_CLASS_MX, d), 0);
	assert_int_equal(qmgr_dest_failures(d), DEAD_AFTER - 1);
	starts(w, QMGR_CLASS_MX, d);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_dest_failures(d), 0);

	/* dead_after - 1 more failures are not enough now. */
	for (int i = 1; i < DEAD_AFTER; i++)
		assert_int_equal(attempt_unreached(w, QMGR_CLASS_MX, d), 0);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
	starts(w, QMGR_CLASS_MX, d);
	assert_int_equal(qmgr_dest_active(d), 1);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 1);
	assert_true(qmgr_dest_dead(w->s, d, NULL));
}

/* dead_time after it died, one job goes out as a probe and the others wait
 * for its result; before then, none does. */
static void
test_dead_destination_lets_one_probe_through_after_dead_time(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;
	int64_t until;

	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, MANY, 'D');
	until = kill_dest(w, QMGR_CLASS_MX, d);

	w->now = until - 1;
	assert_true(qmgr_dest_dead(w->s, d, NULL));
	assert_int_equal(handed_back_dead(w, QMGR_CLASS_MX, d)->n, DEAD_AFTER);

	w->now = until;
	size_t queued = qmgr_dest_queued(d);
	assert_int_equal(starts(w, QMGR_CLASS_MX, d)->n, DEAD_AFTER + 1);
	assert_int_equal(qmgr_dest_active(d), 1);
	/* The others wait: neither started nor handed back. */
	nothing_starts(w, QMGR_CLASS_MX);
	w->now += 1000;
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_dest_queued(d), queued - 1);
	assert_int_equal(qmgr_dest_active(d), 1);
}

static void
test_probe_reached_makes_the_destination_alive(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;
	int win;

	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, MANY, 'D');
	w->now = kill_dest(w, QMGR_CLASS_MX, d);
	starts(w, QMGR_CLASS_MX, d);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 2);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
	assert_int_equal(qmgr_dest_failures(d), 0);

	/* More than one job at a time again, and the window grows anew. */
	win = qmgr_dest_window(d);
	assert_true(win >= 2);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), win);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_dest_window(d), win + 1);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
}

/* A greeted connection grows the window at once (a slow transaction does
 * not hold the growth back); the job's end then changes nothing more; a
 * probe of a dead destination that is greeted makes it alive. */
static void
test_progress_grows_the_window_before_the_job_ends(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	d = queued_dest(w, "slow.example", QMGR_CLASS_MX, jobs, MANY, 'S');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);	/* the initial window */
	assert_int_equal(qmgr_sched_job_progress(w->s, d), 0);
	assert_int_equal(qmgr_dest_window(d), 3);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);	/* before any job ended */
	assert_int_equal(qmgr_sched_job_progress(w->s, d), 0);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);
	/* The ends of those jobs, reported without a second growth. */
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	assert_int_equal(qmgr_dest_window(d), 4);

	/* Dead, then its probe is greeted: alive (2). */
	struct qmgr_dest *e;
	struct job more[MANY];
	e = queued_dest(w, "down.example", QMGR_CLASS_NEXTHOP, more, MANY, 'D');
	w->now = kill_dest(w, QMGR_CLASS_NEXTHOP, e);
	starts(w, QMGR_CLASS_NEXTHOP, e);
	assert_int_equal(qmgr_sched_job_progress(w->s, e), 2);
	assert_false(qmgr_dest_dead(w->s, e, NULL));
	assert_int_equal(qmgr_dest_failures(e), 0);
}

static void
test_probe_unreached_makes_it_dead_for_another_dead_time(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;
	int64_t until, until2;

	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, MANY, 'D');
	until = kill_dest(w, QMGR_CLASS_MX, d);
	w->now = until + 40;
	starts(w, QMGR_CLASS_MX, d);
	w->now += 5;			/* the probe took its time */
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 1);
	assert_true(qmgr_dest_dead(w->s, d, &until2));
	assert_int_equal(until2, w->now + DEAD_TIME);

	/* Dead again: the queue drains as deferrals, nothing starts. */
	w->now = until2 - 1;
	assert_int_equal(handed_back_dead(w, QMGR_CLASS_MX, d)->n, DEAD_AFTER + 1);
	assert_int_equal(qmgr_dest_active(d), 0);

	/* Then one more probe, which reaches a server. */
	w->now = until2;
	starts(w, QMGR_CLASS_MX, d);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 2);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
}

/* A dead remote domain next to a live one: the dead one's jobs are handed
 * back as deferrals, the live one's start, in the same picks. */
static void
test_dead_destination_does_not_hold_a_live_one(void **state)
{
	struct world *w = *state;
	struct job dj[MANY], lj[5];
	struct qmgr_dest *dead, *live;
	struct qmgr_pick p;
	int started = 0, deferred = 0;

	dead = queued_dest(w, "down.example", QMGR_CLASS_MX, dj, 10, 'D');
	kill_dest(w, QMGR_CLASS_MX, dead);
	live = queued_dest(w, "up.example", QMGR_CLASS_MX, lj, 5, 'L');

	while (qmgr_sched_pick(w->s, QMGR_CLASS_MX, &p) == 1) {
		struct job *j = p.job;

		if (j->dest == 'D') {
			assert_ptr_equal(p.dest, dead);
			assert_int_equal(p.dead, 1);
			deferred++;
		} else {
			assert_ptr_equal(p.dest, live);
			assert_int_equal(p.dead, 0);
			started++;
		}
		assert_true(started + deferred <= 15);
	}
	assert_int_equal(deferred, 10 - DEAD_AFTER);
	assert_int_equal(started, 2);			/* live's window */
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 2);
}

/* The class is at its agent limit; a dead destination's jobs still come back
 * as deferrals (they need no agent), so they do not wait for one. */
static void
test_dead_jobs_are_handed_back_while_the_class_is_full(void **state)
{
	struct world *w = *state;
	struct job dj[10], lj[5];
	struct qmgr_dest *dead, *live;

	w->lim.class_agents[QMGR_CLASS_NEXTHOP] = 1;
	open_sched(w);
	dead = queued_dest(w, "[down.example]", QMGR_CLASS_NEXTHOP, dj, 10, 'D');
	kill_dest(w, QMGR_CLASS_NEXTHOP, dead);
	live = queued_dest(w, "[up.example]", QMGR_CLASS_NEXTHOP, lj, 5, 'L');

	/* Round robin may hand back dead jobs before live's first job starts;
	 * once it has, the class is full and only dead jobs come out. */
	int deferred = 0, started = 0;
	struct qmgr_pick p;
	while (qmgr_sched_pick(w->s, QMGR_CLASS_NEXTHOP, &p) == 1) {
		if (p.dead) {
			assert_ptr_equal(p.dest, dead);
			assert_int_equal(((struct job *)p.job)->n, DEAD_AFTER + deferred);
			deferred++;
		} else {
			assert_ptr_equal(p.dest, live);
			started++;
		}
		assert_true(deferred + started <= 15);
	}
	assert_int_equal(started, 1);
	assert_int_equal(deferred, 10 - DEAD_AFTER);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_NEXTHOP), 1);
	assert_int_equal(qmgr_dest_queued(live), 4);
}

/* `queue retry`: a dead destination is alive at once, with no failures
 * counted, and its queued jobs start (up to its window) instead of coming
 * back as deferrals; a dead one with nothing queued is alive too. */
static void
test_queue_retry_revives_dead_destinations(void **state)
{
	struct world *w = *state;
	struct job dj[MANY], ej[DEAD_AFTER];
	struct qmgr_dest *d, *e;

	e = queued_dest(w, "empty.example", QMGR_CLASS_MX, ej, DEAD_AFTER, 'E');
	kill_dest(w, QMGR_CLASS_MX, e);
	assert_int_equal(qmgr_dest_queued(e), 0);
	d = queued_dest(w, "down.example", QMGR_CLASS_MX, dj, MANY, 'D');
	kill_dest(w, QMGR_CLASS_MX, d);

	qmgr_sched_revive_all(w->s);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
	assert_int_equal(qmgr_dest_failures(d), 0);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), qmgr_dest_window(d));
	assert_int_equal(qmgr_dest_active(d), qmgr_dest_window(d));
	/* e had nothing left and may be forgotten: asked for again by name. */
	e = qmgr_sched_dest(w->s, "empty.example", QMGR_CLASS_MX, CEILING);
	assert_false(qmgr_dest_dead(w->s, e, NULL));
	assert_int_equal(qmgr_dest_failures(e), 0);
}

/* ---- forgetting ---- */

static void
test_idle_destination_is_forgotten_and_starts_afresh(void **state)
{
	struct world *w = *state;
	struct job jobs[2];
	struct qmgr_dest *d;

	d = queued_dest(w, "once.example", QMGR_CLASS_MX, jobs, 2, 'O');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(qmgr_dest_window(d), 3);	/* one still in flight */
	assert_int_equal(dest_count(w), 1);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	/* d may be gone now: not touched again. */
	assert_int_equal(dest_count(w), 0);

	d = qmgr_sched_dest(w->s, "once.example", QMGR_CLASS_MX, CEILING);
	assert_int_equal(qmgr_dest_window(d), w->lim.initial_concurrency);
	assert_int_equal(qmgr_dest_active(d), 0);
	assert_int_equal(qmgr_dest_failures(d), 0);
	assert_int_equal(dest_count(w), 1);
}

/* Failures are forgotten with the destination too (one failure, fewer than
 * dead_after, and then nothing left). */
static void
test_idle_destination_forgets_its_failures(void **state)
{
	struct world *w = *state;
	struct job jobs[1];
	struct qmgr_dest *d;

	d = queued_dest(w, "once.example", QMGR_CLASS_MX, jobs, 1, 'O');
	starts(w, QMGR_CLASS_MX, d);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_UNREACHED), 0);
	assert_int_equal(dest_count(w), 0);
	d = qmgr_sched_dest(w->s, "once.example", QMGR_CLASS_MX, CEILING);
	assert_int_equal(qmgr_dest_failures(d), 0);
	assert_int_equal(qmgr_dest_window(d), w->lim.initial_concurrency);
}

static void
test_dead_destination_is_not_forgotten_before_its_time(void **state)
{
	struct world *w = *state;
	struct job jobs[DEAD_AFTER];
	struct qmgr_dest *d;
	int64_t until, until2;

	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, DEAD_AFTER, 'D');
	until = kill_dest(w, QMGR_CLASS_MX, d);
	/* Nothing queued, nothing in flight, but dead: still known. */
	assert_int_equal(qmgr_dest_queued(d), 0);
	assert_int_equal(qmgr_dest_active(d), 0);
	assert_int_equal(dest_count(w), 1);

	/* New mail for it before its time is deferred, not tried. */
	w->now = until - 1;
	d = qmgr_sched_dest(w->s, "down.example", QMGR_CLASS_MX, CEILING);
	assert_true(qmgr_dest_dead(w->s, d, &until2));
	assert_int_equal(until2, until);
	struct job late[1];
	queue_jobs(w, d, late, 1, 'D');
	assert_ptr_equal(handed_back_dead(w, QMGR_CLASS_MX, d), &late[0]);
	assert_int_equal(dest_count(w), 1);
}

/* A dead destination whose mail was all handed back is forgotten by the
 * sweep once another dead_time has passed after its own (else thousands
 * of dead domains would stay in memory and in every pick's walk); before
 * that it is kept, so returning mail meets the probe. */
static void
test_sweep_forgets_dead_destinations_after_their_time(void **state)
{
	struct world *w = *state;
	struct job jobs[DEAD_AFTER];
	struct qmgr_dest *d;

	d = queued_dest(w, "gone.example", QMGR_CLASS_MX, jobs, DEAD_AFTER, 'G');
	int64_t until = kill_dest(w, QMGR_CLASS_MX, d);
	qmgr_sched_sweep(w->s);
	assert_int_equal(dest_count(w), 1);	/* still dead: kept */
	w->now = until;
	qmgr_sched_sweep(w->s);
	assert_int_equal(dest_count(w), 1);	/* mail coming back meets the probe */
	w->now = until + DEAD_TIME;
	qmgr_sched_sweep(w->s);
	assert_int_equal(dest_count(w), 0);
	/* Mail for it later starts afresh: alive, at the initial window. */
	d = qmgr_sched_dest(w->s, "gone.example", QMGR_CLASS_MX, CEILING);
	assert_false(qmgr_dest_dead(w->s, d, NULL));
	assert_int_equal(qmgr_dest_failures(d), 0);
}

/* ---- queue control and reload ---- */

struct filter_ctx {
	int	calls;
	int	seen[2][11];
};

static int
drop_even(void *job, void *arg)
{
	struct filter_ctx *f = arg;
	struct job *j = job;

	f->calls++;
	f->seen[j->dest - 'A'][j->n]++;
	return j->n % 2 == 0;
}

static void
test_job_filter_drops_exactly_the_chosen_queued_jobs(void **state)
{
	struct world *w = *state;
	struct job ja[10], jb[11];
	struct qmgr_dest *a, *b;
	struct filter_ctx f;
	struct qmgr_pick p;
	int got[2][11];

	reopen_with_initial(w, 20);
	a = queued_dest(w, "a.example", QMGR_CLASS_MX, ja, 10, 'A');
	/* B's last job (10) is dropped too: the end of a FIFO goes as well. */
	b = queued_dest(w, "[b.example]", QMGR_CLASS_NEXTHOP, jb, 9, 'B');
	/* A's job 0 is in flight: not queued, so not the filter's. */
	assert_ptr_equal(starts(w, QMGR_CLASS_MX, a), &ja[0]);

	memset(&f, 0, sizeof(f));
	qmgr_sched_job_filter(w->s, drop_even, &f);
	assert_int_equal(f.calls, 9 + 9);
	assert_int_equal(f.seen[0][0], 0);
	for (int i = 1; i < 10; i++)
		assert_int_equal(f.seen[0][i], 1);
	for (int i = 0; i < 9; i++)
		assert_int_equal(f.seen[1][i], 1);
	assert_int_equal(qmgr_dest_queued(a), 5);	/* 1 3 5 7 9 */
	assert_int_equal(qmgr_dest_queued(b), 4);	/* 1 3 5 7 */
	assert_int_equal(qmgr_dest_active(a), 1);

	/* A job queued after the filter goes at the end of what is left. */
	jb[10].dest = 'B';
	jb[10].n = 10;
	qmgr_sched_job_add(w->s, b, &jb[10]);

	/* Exactly the odd ones start, in order, then B's new one. */
	memset(got, 0, sizeof(got));
	for (enum qmgr_class c = 0; c < QMGR_NCLASS; c++) {
		int last = -1;

		while (qmgr_sched_pick(w->s, c, &p) == 1) {
			struct job *j = p.job;

			assert_int_equal(p.dead, 0);
			assert_true(j->n > last);
			last = j->n;
			got[j->dest - 'A'][j->n]++;
		}
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(got[0][i], i % 2);
	for (int i = 0; i < 9; i++)
		assert_int_equal(got[1][i], i % 2);
	assert_int_equal(got[1][10], 1);
}

static int
keep_all(void *job, void *arg)
{
	(void)job;
	(*(int *)arg)++;
	return 0;
}

static void
test_job_filter_keeping_all_changes_nothing(void **state)
{
	struct world *w = *state;
	struct job ja[10];
	struct qmgr_dest *a;
	int calls = 0;

	a = queued_dest(w, "a.example", QMGR_CLASS_MX, ja, 10, 'A');
	qmgr_sched_job_filter(w->s, keep_all, &calls);
	assert_int_equal(calls, 10);
	assert_int_equal(qmgr_dest_queued(a), 10);
	assert_ptr_equal(starts(w, QMGR_CLASS_MX, a), &ja[0]);
	assert_ptr_equal(starts(w, QMGR_CLASS_MX, a), &ja[1]);
}

static void
test_lower_class_limit_takes_effect_at_the_next_pick(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	reopen_with_initial(w, 5);
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 5);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);

	w->lim.class_agents[QMGR_CLASS_MX] = 2;
	qmgr_sched_set_limits(w->s, &w->lim);
	/* 4 in flight, limit 2: nothing starts until fewer than 2 run. */
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_NONE), 0);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 1);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);
	assert_int_equal(qmgr_sched_class_active(w->s, QMGR_CLASS_MX), 2);

	/* A higher limit, likewise. */
	w->lim.class_agents[QMGR_CLASS_MX] = 4;
	qmgr_sched_set_limits(w->s, &w->lim);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 2);
}

static void
test_lower_ceiling_shrinks_the_window_at_once(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;

	reopen_with_initial(w, 5);
	d = queued_dest(w, "example.com", QMGR_CLASS_MX, jobs, MANY, 'A');
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 5);

	/* A reload sets the ceiling to 2 (the same destination, found again). */
	assert_ptr_equal(qmgr_sched_dest(w->s, "example.com", QMGR_CLASS_MX, 2), d);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_true(qmgr_dest_window(d) <= 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	/* 2 in flight, window at most 2 however many reached. */
	assert_true(qmgr_dest_window(d) <= 2);
	nothing_starts(w, QMGR_CLASS_MX);
	assert_int_equal(qmgr_sched_job_done(w->s, d, QMGR_FB_REACHED), 0);
	assert_int_equal(start_all(w, QMGR_CLASS_MX), 1);
	assert_int_equal(qmgr_dest_window(d), 2);
}

static void
test_new_initial_concurrency_applies_to_new_destinations(void **state)
{
	struct world *w = *state;
	struct qmgr_dest *d;

	w->lim.initial_concurrency = 7;
	qmgr_sched_set_limits(w->s, &w->lim);
	d = qmgr_sched_dest(w->s, "fresh.example", QMGR_CLASS_MX, CEILING);
	assert_int_equal(qmgr_dest_window(d), 7);
}

/* New dead_after and dead_time apply to the next failures. */
static void
test_new_dead_limits_apply_to_the_next_failures(void **state)
{
	struct world *w = *state;
	struct job jobs[MANY];
	struct qmgr_dest *d;
	int64_t until;

	w->lim.dead_after = 1;
	w->lim.dead_time = 60;
	qmgr_sched_set_limits(w->s, &w->lim);
	d = queued_dest(w, "down.example", QMGR_CLASS_MX, jobs, MANY, 'D');
	assert_int_equal(attempt_unreached(w, QMGR_CLASS_MX, d), 1);
	assert_true(qmgr_dest_dead(w->s, d, &until));
	assert_int_equal(until, w->now + 60);
}

/* ---- backoff ---- */

/* A message deferred again and again, as the scheduler treats it (due at
 * now + backoff after each attempt), with retry_min 300 and retry_max 4000:
 * attempts come at +300, +600, +1200, +2400, then every 4000 s, and never
 * a second early. */
static void
test_deferred_message_backs_off_doubling_up_to_retry_max(void **state)
{
	struct world *w = *state;
	static const int64_t waits[] = { 300, 600, 1200, 2400, 4000, 4000 };
	struct qmgr_msg *m = qmgr_sched_add(w->s, "backoff1", w->now, NULL);

	for (size_t k = 0; k < sizeof(waits) / sizeof(waits[0]); k++) {
		assert_ptr_equal(qmgr_sched_take_due(w->s), m);
		m->attempts++;
		int64_t wait = qmgr_sched_backoff(300, 4000, m->attempts);
		assert_int_equal(wait, waits[k]);
		qmgr_sched_set_due(w->s, m, w->now + wait);
		w->now += wait - 1;
		assert_null(qmgr_sched_take_due(w->s));	/* not a second early */
		w->now += 1;
	}
	assert_ptr_equal(qmgr_sched_take_due(w->s), m);
}

/* retry_min above retry_max is refused by the configuration; equal values
 * give a fixed interval, and huge attempt counts do not overflow. */
static void
test_backoff_is_bounded_for_any_attempt_count(void **state)
{
	(void)state;
	assert_int_equal(qmgr_sched_backoff(60, 60, 1), 60);
	assert_int_equal(qmgr_sched_backoff(60, 60, 50), 60);
	assert_int_equal(qmgr_sched_backoff(1, 864000, 1000000), 864000);
	assert_int_equal(qmgr_sched_backoff(300, 14400, 1), 300);
	assert_int_equal(qmgr_sched_backoff(300, 14400, 7), 14400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_new_rejects_out_of_range_limits),
		T(test_clock_is_the_injected_one_and_defaults_to_time),
		T(test_message_add_find_remove),
		T(test_adding_a_known_id_returns_it_unchanged),
		T(test_take_due_returns_earliest_first_and_nothing_early),
		T(test_message_in_flight_is_not_taken_again_until_set_due),
		T(test_set_due_moves_a_waiting_message),
		T(test_remove_of_a_message_in_flight_forgets_it),
		T(test_remove_of_waiting_messages_keeps_the_order),
		T(test_foreach_visits_each_message_once),
		T(test_hundred_thousand_messages_come_out_in_due_order_quickly),
		T(test_destination_names_compare_without_case),
		T(test_window_starts_at_initial_concurrency),
		T(test_reached_grows_the_window_by_one),
		T(test_window_never_exceeds_the_ceiling),
		T(test_unreached_shrinks_the_window_never_below_one),
		T(test_no_feedback_leaves_window_and_failures),
		T(test_class_agent_limit_caps_a_wide_window),
		T(test_a_full_class_never_blocks_the_other),
		T(test_round_robin_small_destination_is_not_behind_a_big_one),
		T(test_round_robin_takes_turns),
		T(test_failures_in_a_row_make_a_destination_dead),
		T(test_a_reached_server_resets_the_failure_count),
		T(test_dead_destination_lets_one_probe_through_after_dead_time),
		T(test_probe_reached_makes_the_destination_alive),
		T(test_probe_unreached_makes_it_dead_for_another_dead_time),
		T(test_dead_destination_does_not_hold_a_live_one),
		T(test_dead_jobs_are_handed_back_while_the_class_is_full),
		T(test_queue_retry_revives_dead_destinations),
		T(test_idle_destination_is_forgotten_and_starts_afresh),
		T(test_idle_destination_forgets_its_failures),
		T(test_dead_destination_is_not_forgotten_before_its_time),
		T(test_job_filter_drops_exactly_the_chosen_queued_jobs),
		T(test_job_filter_keeping_all_changes_nothing),
		T(test_lower_class_limit_takes_effect_at_the_next_pick),
		T(test_lower_ceiling_shrinks_the_window_at_once),
		T(test_new_initial_concurrency_applies_to_new_destinations),
		T(test_new_dead_limits_apply_to_the_next_failures),
		T(test_deferred_message_backs_off_doubling_up_to_retry_max),
		T(test_backoff_is_bounded_for_any_attempt_count),
		T(test_sweep_forgets_dead_destinations_after_their_time),
		T(test_progress_grows_the_window_before_the_job_ends),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
