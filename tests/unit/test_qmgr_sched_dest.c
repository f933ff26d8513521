/* The delivery scheduler's destinations (mxd/qmgr/qmgr_sched.h): windows,
 * classes and round robin, dead destinations, forgetting, queue control
 * and reload, replayed on the fake clock of qmgr_sched_world.h. */
#include "qmgr_sched_world.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
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
		T(test_sweep_forgets_dead_destinations_after_their_time),
		T(test_progress_grows_the_window_before_the_job_ends),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
