/* The TLSA key rollover of one host (RFC 7671 8.1, RFC 7672 3.1): scenarios
 * in the style of Unbound's replay tests. A scripted world (two authoritative
 * servers and what each serves for the host's TLSA RRset, the host's last
 * report) and a fake clock the test moves by hand; each look steps the state
 * machine and checks the state it is in, what it asks the caller to do and
 * the line the operator sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rollover.h"

#define T0	1700000000	/* 2023-11-14 22:13:20Z */

#define OLD	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define NEW	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define NEXT	"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* ---- the scripted world ---- */

struct world {
	int64_t			 now;
	struct rollover_server_obs ns[2];
	uint32_t		 zone_ttl;
	const char		*served[2];
	size_t			 nserved;
	const char		*next;
	int			 cert_ready;
	struct rollover		 r;
	struct rollover_action	 act;
};

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char err[ROLLOVER_ERR_MAX];

	w->now = T0;
	w->ns[0] = (struct rollover_server_obs){ "ns1.example.net", 1, 1, 0, 300 };
	w->ns[1] = (struct rollover_server_obs){ "ns2.example.net", 1, 1, 0, 300 };
	w->zone_ttl = 300;
	w->served[0] = OLD;
	w->nserved = 1;
	w->next = NEW;
	w->cert_ready = 1;
	assert_int_equal(rollover_start(&w->r, "mx1", OLD, NEW, T0, err, sizeof(err)), 0);
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

static struct rollover_obs
observe(const struct world *w)
{
	return (struct rollover_obs){
		.servers = w->ns, .nservers = 2, .zone_ttl = w->zone_ttl,
		.served_spki = w->served, .nserved = w->nserved, .next_spki = w->next,
		.next_cert_ready = w->cert_ready, .next_cert_path = "/etc/mxd/next.crt",
	};
}

/* One look at the world at w->now: the state the rollover is in after it
 * and what it asks for. */
static void
look(struct world *w, enum rollover_state want, enum rollover_do want_do)
{
	struct rollover_obs o = observe(w);

	assert_int_equal(rollover_step(&w->r, &o, w->now, &w->act), 0);
	if (w->r.state != want)
		fail_msg("at T0+%lld: state %s, want %s (%s)", (long long)(w->now - T0),
		    rollover_state_name(w->r.state), rollover_state_name(want), w->r.status);
	assert_int_equal(w->act.what, want_do);
	assert_int_equal(w->r.last_obs, w->now);
	assert_null(strchr(w->r.status, '\n'));
}

static void
assert_status_has(const struct world *w, const char *s)
{
	if (strstr(w->r.status, s) == NULL)
		fail_msg("status \"%s\" lacks \"%s\"", w->r.status, s);
}

/* Both servers serve the new key's TLSA next to the old one. */
static void
push_lands(struct world *w)
{
	w->ns[0].has_new = w->ns[1].has_new = 1;
}

/* The walk up to the moment the wait starts (T0+10, ends T0+610). */
static void
to_wait(struct world *w)
{
	look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	push_lands(w);
	w->now = T0 + 10;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, T0 + 610);
}

/* ---- scenarios ---- */

static void
test_full_walk_with_300s_ttl(void **state)
{
	struct world *w = *state;
	const char *pub[2];

	assert_int_equal(rollover_published(&w->r, pub), 2);
	assert_string_equal(pub[0], OLD);
	assert_string_equal(pub[1], NEW);
	assert_null(rollover_withdrawn(&w->r));

	/* 1: not on the servers yet: push, look again after the poll. */
	look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	assert_int_equal(w->act.next_check, T0 + 60);
	assert_status_has(w, "0 of 2 servers");

	/* 2: both serve it: two TTLs from now. */
	push_lands(w);
	w->now = T0 + 10;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_from, T0 + 10);
	assert_int_equal(w->r.wait_until, T0 + 610);
	assert_int_equal(w->r.entered, T0 + 10);
	assert_int_equal(w->act.next_check, T0 + 70);
	assert_string_equal(w->r.status, "waiting 600 s more: 2 x TTL 300 since 22:13:30Z");

	w->now = T0 + 609;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->act.next_check, T0 + 610);
	assert_string_equal(w->r.status, "waiting 1 s more: 2 x TTL 300 since 22:13:30Z");

	/* 3: the wait is over: the host is told to switch until it has. */
	w->now = T0 + 610;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
	assert_int_equal(w->r.entered, T0 + 610);
	w->now = T0 + 620;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);

	/* 4: it serves the new key; no next key yet. */
	w->served[0] = NEW;
	w->next = "";
	w->now = T0 + 630;
	look(w, ROLLOVER_NEXT, ROLLOVER_NOTHING);
	assert_status_has(w, "new next key");
	assert_int_equal(rollover_published(&w->r, pub), 2);

	/* 5: a new next key: push, without the old key's TLSA. */
	w->next = NEXT;
	w->now = T0 + 640;
	look(w, ROLLOVER_RETIRE, ROLLOVER_PUSH);
	assert_string_equal(w->r.next_spki, NEXT);
	assert_int_equal(rollover_published(&w->r, pub), 1);
	assert_string_equal(pub[0], NEW);
	assert_string_equal(rollover_withdrawn(&w->r), OLD);
	assert_status_has(w, "ns1.example.net");

	/* 6: gone from both servers. */
	w->ns[0].has_old = w->ns[1].has_old = 0;
	w->now = T0 + 650;
	look(w, ROLLOVER_DONE, ROLLOVER_NOTHING);
	assert_int_equal(w->act.next_check, 0);
	assert_status_has(w, "done");
	assert_string_equal(rollover_withdrawn(&w->r), OLD);

	/* DONE stays DONE. */
	w->now = T0 + 9999;
	look(w, ROLLOVER_DONE, ROLLOVER_NOTHING);
}

static void
test_lagging_server_keeps_publish(void **state)
{
	struct world *w = *state;

	w->ns[0].has_new = 1;
	for (int i = 0; i < 60; i++) {
		w->now = T0 + i * 60;
		look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	}
	assert_status_has(w, "1 of 2 servers");
	assert_status_has(w, "ns2.example.net");

	/* No answer from ns2 confirms nothing either. */
	w->ns[1].has_new = 1;
	w->ns[1].answered = 0;
	w->now += 60;
	look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	assert_status_has(w, "did not answer");

	/* The wait counts from when the last one caught up. */
	w->ns[1].answered = 1;
	w->now += 60;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, w->now + 600);
}

static void
test_server_losing_record_during_wait_restarts_wait(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->ns[1].has_new = 0;
	w->now = T0 + 300;
	look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	assert_status_has(w, "ns2.example.net");

	w->ns[1].has_new = 1;
	w->now = T0 + 320;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_from, T0 + 320);
	assert_int_equal(w->r.wait_until, T0 + 920);
	w->now = T0 + 610;	/* where the first wait would have ended */
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	w->now = T0 + 920;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
}

static void
test_no_answer_at_end_of_wait_does_not_switch(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->ns[0].answered = 0;
	w->now = T0 + 700;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_status_has(w, "did not answer");
	assert_int_equal(w->act.next_check, T0 + 760);
	w->ns[0].answered = 1;
	w->now = T0 + 760;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
}

static void
test_wait_uses_ttl_served_not_configured(void **state)
{
	struct world *w = *state;

	/* Configured 300, served 3600 by ns2: two hours. */
	w->ns[1].ttl = 3600;
	look(w, ROLLOVER_PUBLISH, ROLLOVER_PUSH);
	push_lands(w);
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.ttl, 3600);
	assert_int_equal(w->r.wait_until, T0 + 7200);
	assert_status_has(w, "2 x TTL 3600");
	w->now = T0 + 7199;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	w->now = T0 + 7200;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
}

static void
test_longer_ttl_seen_during_wait_lengthens_it(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->ns[0].ttl = 900;
	w->now = T0 + 600;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, T0 + 10 + 1800);
	/* A shorter one later does not shorten it back. */
	w->ns[0].ttl = 60;
	w->now = T0 + 700;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, T0 + 1810);
}

static void
test_served_ttl_below_configured_waits_configured(void **state)
{
	struct world *w = *state;

	w->ns[0].ttl = w->ns[1].ttl = 60;
	to_wait(w);	/* asserts T0 + 10 + 2 x 300 */
}

static void
test_no_certificate_stays_in_switch_with_operator_message(void **state)
{
	struct world *w = *state;

	w->cert_ready = 0;
	to_wait(w);
	for (int i = 0; i < 10; i++) {
		w->now = T0 + 610 + i * 3600;
		look(w, ROLLOVER_SWITCH, ROLLOVER_NOTHING);
	}
	assert_status_has(w, "waiting for a certificate for key bbbbbbbbbbbb");
	assert_status_has(w, "/etc/mxd/next.crt");
	assert_status_has(w, "mx1");
	assert_int_equal(w->r.entered, T0 + 610);

	w->cert_ready = 1;
	w->now += 60;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
}

static void
test_host_serving_both_keys_stays_in_switch(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->now = T0 + 610;
	w->served[1] = NEW;	/* a second listener already on the new key */
	w->nserved = 2;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
	assert_status_has(w, "still the old key");
	w->served[0] = NEW;
	w->nserved = 1;
	w->now += 60;
	look(w, ROLLOVER_NEXT, ROLLOVER_NOTHING);
}

static void
test_status_stays_one_printable_line(void **state)
{
	struct world *w = *state;
	struct rollover_obs o;

	w->cert_ready = 0;
	to_wait(w);
	o = observe(w);
	o.next_cert_path = "/etc/mxd/next.crt\nstate=done\x7f";
	assert_int_equal(rollover_step(&w->r, &o, T0 + 610, &w->act), 0);
	assert_int_equal(w->r.state, ROLLOVER_SWITCH);
	assert_status_has(w, "/etc/mxd/next.crt?state=done?");
}

static void
test_host_back_on_old_key_returns_to_switch(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->now = T0 + 610;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
	w->served[0] = NEW;
	w->next = "";
	look(w, ROLLOVER_NEXT, ROLLOVER_NOTHING);
	/* Restored from a backup: the old TLSA must stay. */
	w->served[0] = OLD;
	w->next = NEW;
	w->now += 60;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
	const char *pub[2];
	assert_int_equal(rollover_published(&w->r, pub), 2);
	assert_null(rollover_withdrawn(&w->r));
}

static void
test_next_key_replaced_before_switch_is_reported(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->next = NEXT;	/* the host lost its next key and made another */
	w->now = T0 + 610;
	look(w, ROLLOVER_SWITCH, ROLLOVER_NOTHING);
	assert_status_has(w, "no longer");
	assert_status_has(w, "start again");
}

static void
test_time_going_backwards_does_not_shorten_wait(void **state)
{
	struct world *w = *state;

	to_wait(w);
	w->now = T0 - 1000;	/* the clock was stepped back */
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, T0 + 610);
	assert_status_has(w, "waiting 1610 s more");
	w->now = T0 + 609;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	w->now = T0 + 610;
	look(w, ROLLOVER_SWITCH, ROLLOVER_SWITCH_HOST);
}

/* ---- resuming from the stored text ---- */

static void
test_longest_ttl_at_latest_time_still_stores(void **state)
{
	struct world *w = *state;
	struct rollover back;
	char *text, err[ROLLOVER_ERR_MAX];

	w->now = ROLLOVER_TIME_MAX - 1;
	push_lands(w);
	w->ns[0].ttl = UINT32_MAX;
	look(w, ROLLOVER_WAIT, ROLLOVER_NOTHING);
	assert_int_equal(w->r.wait_until, ROLLOVER_TIME_MAX - 1 + 2 * (int64_t)UINT32_MAX);
	text = rollover_encode(&w->r);
	if (rollover_decode(text, strlen(text), &back, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(back.wait_until, w->r.wait_until);
	free(text);
}

/* The world at step i of a full walk (the same one as above, with a lost
 * record and a missing certificate on the way). */
static void
world_at(struct world *w, int i)
{
	static const int64_t at[] = { 0, 10, 300, 320, 500, 920, 930, 940, 950, 960, 970 };

	w->now = T0 + at[i];
	push_lands(w);
	w->ns[1].has_new = i != 2;
	w->cert_ready = i != 5;
	if (i >= 7) {
		w->served[0] = NEW;
		w->next = i >= 8 ? NEXT : "";
	}
	if (i >= 9)
		w->ns[0].has_old = w->ns[1].has_old = 0;
	if (i == 0)
		w->ns[0].has_new = w->ns[1].has_new = 0;
}

static void
test_encode_decode_at_every_state_resumes_identically(void **state)
{
	struct world *w = *state;
	int seen[ROLLOVER_DONE + 1] = { 0 };

	for (int i = 0; i < 11; i++) {
		char *text = rollover_encode(&w->r), *t1, *t2, err[ROLLOVER_ERR_MAX];
		struct rollover resumed;
		struct rollover_action a2;
		struct rollover_obs o;

		assert_true(strlen(text) < ROLLOVER_TEXT_MAX);
		if (rollover_decode(text, strlen(text), &resumed, err, sizeof(err)) != 0)
			fail_msg("step %d: %s\n%s", i, err, text);
		world_at(w, i);
		o = observe(w);
		assert_int_equal(rollover_step(&w->r, &o, w->now, &w->act), 0);
		assert_int_equal(rollover_step(&resumed, &o, w->now, &a2), 0);
		assert_int_equal(a2.what, w->act.what);
		assert_int_equal(a2.next_check, w->act.next_check);
		t1 = rollover_encode(&w->r);
		t2 = rollover_encode(&resumed);
		assert_string_equal(t1, t2);
		seen[w->r.state] = 1;
		free(text);
		free(t1);
		free(t2);
	}
	for (int s = ROLLOVER_PUBLISH; s <= ROLLOVER_DONE; s++)
		if (!seen[s])
			fail_msg("the walk never reached %s", rollover_state_name(s));
}

static void
assert_decode_fails(const char *text, size_t len, const char *want)
{
	struct rollover r;
	char err[ROLLOVER_ERR_MAX] = "";

	memset(&r, 0x5a, sizeof(r));
	if (rollover_decode(text, len, &r, err, sizeof(err)) != -1)
		fail_msg("decoded: %.*s", (int)len, text);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	assert_int_equal(r.state, 0);
	assert_string_equal(r.host, "");
}

/* s with the first occurrence of from replaced by to. */
static char *
edit(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	assert_non_null(p);
	out = malloc(strlen(s) + strlen(to) + 1);
	sprintf(out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
	return out;
}

static void
test_decode_rejects_truncated_and_garbled_text(void **state)
{
	struct world *w = *state;
	char *text, *bad;
	size_t len;

	to_wait(w);
	text = rollover_encode(&w->r);
	len = strlen(text);

	/* Every truncation, including at a line end (a key missing). */
	for (size_t n = 0; n < len; n++)
		assert_decode_fails(text, n, n == 0 ? "empty" : "");
	assert_decode_fails(text, strrchr(text, '=') - text + 1, "not ended");
	assert_decode_fails(text, strstr(text, "host=") - text, "missing host");

	static const struct { const char *from, *to, *want; } g[] = {
		{ "state=wait", "state=waiting", "line 2: state: unknown" },
		{ "state=wait", "stat=wait", "line 2: expected state=" },
		{ "host=mx1", "host=mx 1", "line 3: host" },
		{ "host=mx1", "host=", "line 3: host" },
		{ "old=aaaa", "old=Aaaa", "line 4: old" },
		{ "new=bbbb", "new=bbb", "line 5: new" },
		{ "new=" NEW, "new=" OLD, "old and new" },
		{ "next=\n", "next=" OLD "\n", "next" },
		{ "started=", "started=-", "line 7: started" },
		{ "started=", "started=+", "line 7: started" },
		{ "started=", "started=99999999999999999999", "line 7: started" },
		{ "ttl=300", "ttl=4294967296", "ttl" },
		{ "ttl=300", "ttl=0300", "ttl" },
		{ "poll=60", "poll=0", "poll" },
		{ "mxfleet-rollover=1", "mxfleet-rollover=2", "line 1" },
		{ "wait_until=1700000610", "wait_until=1700000009", "wait_until" },
	};
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		bad = edit(text, g[i].from, g[i].to);
		assert_decode_fails(bad, strlen(bad), g[i].want);
		free(bad);
	}

	/* A key twice, a line too many, a NUL, a CR. */
	bad = edit(text, "host=mx1\n", "host=mx1\nhost=mx1\n");
	assert_decode_fails(bad, strlen(bad), "line 4: expected old=");
	free(bad);
	bad = edit(text, "status=", "status=\x01");
	assert_decode_fails(bad, strlen(bad), "line 14: status: a byte that is not printable");
	free(bad);
	bad = edit(text, "status=", "x=y\nstatus=");
	assert_decode_fails(bad, strlen(bad), "expected status=");
	free(bad);
	{
		char buf[ROLLOVER_TEXT_MAX + 16];
		memcpy(buf, text, len + 1);
		strcpy(buf + len, "extra=1\n");
		assert_decode_fails(buf, strlen(buf), "after status");
		memcpy(buf, text, len + 1);
		*strstr(buf, "mx1") = '\0';
		assert_decode_fails(buf, len, "line 3");
		memcpy(buf, text, len + 1);
		*strstr(buf, "\nnew=") = '\r';
		assert_decode_fails(buf, len, "line 4");
	}
	free(text);
}

static void
test_start_refuses_without_next_key_or_same_keys(void **state)
{
	struct rollover r;
	char err[ROLLOVER_ERR_MAX];

	(void)state;
	assert_int_equal(rollover_start(&r, "mx1", OLD, "", T0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no next key"));
	assert_int_equal(rollover_start(&r, "mx1", OLD, NULL, T0, err, sizeof(err)), -1);
	assert_int_equal(rollover_start(&r, "mx1", OLD, OLD, T0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "same"));
	assert_int_equal(rollover_start(&r, "mx1", OLD, "BBBB", T0, err, sizeof(err)), -1);
	assert_int_equal(rollover_start(&r, "mx\n1", OLD, NEW, T0, err, sizeof(err)), -1);
	assert_int_equal(rollover_start(&r, "mx1", OLD, NEW, T0, err, sizeof(err)), 0);
	assert_int_equal(r.state, ROLLOVER_PUBLISH);
	assert_int_equal(r.poll, ROLLOVER_POLL_DEFAULT);
}

/* mailctl tls rollover HOST --cancel: from any state but done, the
 * rollover ends (a new one may start), says it was cancelled and where,
 * stores and reads back as such, and asks nothing more of anyone. */
static void
test_cancel_ends_the_rollover_from_any_state_but_done(void **state)
{
	struct world *w = *state;
	char err[ROLLOVER_ERR_MAX];

	to_wait(w);
	w->now = T0 + 100;
	assert_int_equal(rollover_cancel(&w->r, w->now, err, sizeof(err)), 0);
	assert_int_equal(w->r.state, ROLLOVER_DONE);
	assert_int_equal(w->r.entered, w->now);
	assert_int_equal(w->r.wait_until, 0);
	assert_status_has(w, "cancelled at ");
	assert_status_has(w, "in state wait");

	char *text = rollover_encode(&w->r);
	struct rollover back;
	assert_int_equal(rollover_decode(text, strlen(text), &back, err, sizeof(err)), 0);
	free(text);
	assert_int_equal(back.state, ROLLOVER_DONE);
	assert_string_equal(back.status, w->r.status);

	/* A later look changes nothing and asks for nothing. */
	w->now = T0 + 2000;
	look(w, ROLLOVER_DONE, ROLLOVER_NOTHING);
	assert_int_equal(w->act.next_check, 0);
	assert_status_has(w, "cancelled at ");

	/* Done is done: a second cancel is refused and changes nothing. */
	struct rollover before = w->r;
	assert_int_equal(rollover_cancel(&w->r, w->now, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "done already"));
	assert_memory_equal(&before, &w->r, sizeof(before));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_full_walk_with_300s_ttl),
		T(test_lagging_server_keeps_publish),
		T(test_server_losing_record_during_wait_restarts_wait),
		T(test_no_answer_at_end_of_wait_does_not_switch),
		T(test_wait_uses_ttl_served_not_configured),
		T(test_longer_ttl_seen_during_wait_lengthens_it),
		T(test_served_ttl_below_configured_waits_configured),
		T(test_no_certificate_stays_in_switch_with_operator_message),
		T(test_host_serving_both_keys_stays_in_switch),
		T(test_status_stays_one_printable_line),
		T(test_host_back_on_old_key_returns_to_switch),
		T(test_next_key_replaced_before_switch_is_reported),
		T(test_time_going_backwards_does_not_shorten_wait),
		T(test_longest_ttl_at_latest_time_still_stores),
		T(test_encode_decode_at_every_state_resumes_identically),
		T(test_decode_rejects_truncated_and_garbled_text),
		T(test_start_refuses_without_next_key_or_same_keys),
		T(test_cancel_ends_the_rollover_from_any_state_but_done),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
