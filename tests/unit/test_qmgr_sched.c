/* The delivery scheduler's memory (mxd/qmgr/qmgr_sched.h): scenarios in the style
 * of test_sts_cache.c. A fake clock the test moves by hand, jobs that are
 * plain tokens of the test, and after each step what the queue manager would
 * do next: which message is due, which job starts, whether a destination is
 * dead, how wide its window is. Nothing here sleeps or depends on the
 * machine's speed, except the one timed scale run (CPU time, a generous
 * bound). */
#include "qmgr_sched_world.h"

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
		T(test_deferred_message_backs_off_doubling_up_to_retry_max),
		T(test_backoff_is_bounded_for_any_attempt_count),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
