/* Recipient verification, the parts without I/O: the cache of answers
 * (mxd/smtpd/rcpt_verify.h), replayed against a clock the test moves (one probe per
 * address, answers kept for their TTL, failures not kept, pending marks that
 * lapse, a bound that drops the oldest), and the probe's dialogue
 * (mxd/smtpd/rcpt_probe.h) against scripted next hops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rcpt_probe.h"
#include "rcpt_verify.h"

static int64_t now = 1000000;

static int64_t
fake_clock(void *arg)
{
	return now;
}

static struct rcpt_verify_cache *
cache(size_t max)
{
	struct rcpt_verify_opts o = { .positive_ttl = 600, .negative_ttl = 60, .pending_ttl = 20,
	    .max_entries = max };
	return rcpt_verify_cache_new(&o, fake_clock, NULL);
}

static void
test_one_probe_then_the_answer_until_its_ttl(void **state)
{
	struct rcpt_verify_cache *c = cache(0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "alice@example.org"), RCPT_VERIFY_MISS);
	/* A second RCPT while the probe runs does not start another. */
	assert_int_equal(rcpt_verify_cache_lookup(c, "alice@example.org"), RCPT_VERIFY_PENDING);
	rcpt_verify_cache_done(c, "alice@example.org", RCPT_PROBE_ACCEPTED);
	assert_int_equal(rcpt_verify_cache_lookup(c, "alice@example.org"), RCPT_VERIFY_KNOWN);
	now += 599;
	assert_int_equal(rcpt_verify_cache_lookup(c, "alice@example.org"), RCPT_VERIFY_KNOWN);
	now += 1;
	assert_int_equal(rcpt_verify_cache_lookup(c, "alice@example.org"), RCPT_VERIFY_MISS);
	assert_int_equal(rcpt_verify_cache_count(c), 1);
	rcpt_verify_cache_free(c);
}

static void
test_a_refusal_is_kept_for_the_shorter_negative_ttl(void **state)
{
	struct rcpt_verify_cache *c = cache(0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "ghost@example.org"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_done(c, "ghost@example.org", RCPT_PROBE_REJECTED);
	assert_int_equal(rcpt_verify_cache_lookup(c, "ghost@example.org"), RCPT_VERIFY_UNKNOWN);
	now += 59;
	assert_int_equal(rcpt_verify_cache_lookup(c, "ghost@example.org"), RCPT_VERIFY_UNKNOWN);
	now += 1;
	assert_int_equal(rcpt_verify_cache_lookup(c, "ghost@example.org"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_free(c);
}

static void
test_a_failed_probe_leaves_nothing_so_the_next_rcpt_probes_again(void **state)
{
	struct rcpt_verify_cache *c = cache(0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "bob@example.org"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_done(c, "bob@example.org", RCPT_PROBE_FAILED);
	assert_int_equal(rcpt_verify_cache_count(c), 0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "bob@example.org"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_free(c);
}

static void
test_a_probe_that_never_reports_lapses(void **state)
{
	struct rcpt_verify_cache *c = cache(0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "carol@example.org"), RCPT_VERIFY_MISS);
	now += 19;
	assert_int_equal(rcpt_verify_cache_lookup(c, "carol@example.org"), RCPT_VERIFY_PENDING);
	now += 1;
	assert_int_equal(rcpt_verify_cache_lookup(c, "carol@example.org"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_free(c);
}

static void
test_addresses_compare_ignoring_ascii_case(void **state)
{
	struct rcpt_verify_cache *c = cache(0);
	assert_int_equal(rcpt_verify_cache_lookup(c, "Dave@Example.ORG"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_done(c, "DAVE@example.org", RCPT_PROBE_ACCEPTED);
	assert_int_equal(rcpt_verify_cache_lookup(c, "dave@example.org"), RCPT_VERIFY_KNOWN);
	assert_int_equal(rcpt_verify_cache_lookup(c, "dave@example.org.x"), RCPT_VERIFY_MISS);
	assert_int_equal(rcpt_verify_cache_count(c), 2);
	rcpt_verify_cache_free(c);
}

static void
test_the_bound_drops_the_answer_stored_longest_ago(void **state)
{
	struct rcpt_verify_cache *c = cache(3);
	const char *a[] = { "a@x.test", "b@x.test", "c@x.test", "d@x.test" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(rcpt_verify_cache_lookup(c, a[i]), RCPT_VERIFY_MISS);
		rcpt_verify_cache_done(c, a[i], RCPT_PROBE_ACCEPTED);
		assert_true(rcpt_verify_cache_count(c) <= 3);
	}
	assert_int_equal(rcpt_verify_cache_lookup(c, "b@x.test"), RCPT_VERIFY_KNOWN);
	assert_int_equal(rcpt_verify_cache_lookup(c, "c@x.test"), RCPT_VERIFY_KNOWN);
	assert_int_equal(rcpt_verify_cache_lookup(c, "d@x.test"), RCPT_VERIFY_KNOWN);
	assert_int_equal(rcpt_verify_cache_lookup(c, "a@x.test"), RCPT_VERIFY_MISS);
	assert_int_equal(rcpt_verify_cache_count(c), 3);
	/* a's pending mark pushed out b, the oldest answer now. */
	assert_int_equal(rcpt_verify_cache_lookup(c, "b@x.test"), RCPT_VERIFY_MISS);
	rcpt_verify_cache_free(c);
}

static void
test_many_addresses_each_keep_their_own_answer(void **state)
{
	enum { N = 50000 };
	struct rcpt_verify_cache *c = cache(0);
	char addr[64];
	for (int i = 0; i < N; i++) {
		snprintf(addr, sizeof(addr), "user%d@example.org", i);
		assert_int_equal(rcpt_verify_cache_lookup(c, addr), RCPT_VERIFY_MISS);
		rcpt_verify_cache_done(c, addr, i % 3 ? RCPT_PROBE_ACCEPTED : RCPT_PROBE_REJECTED);
	}
	for (int i = 0; i < N; i++) {
		snprintf(addr, sizeof(addr), "USER%d@example.org", i);
		assert_int_equal(rcpt_verify_cache_lookup(c, addr),
		    i % 3 ? RCPT_VERIFY_KNOWN : RCPT_VERIFY_UNKNOWN);
	}
	assert_int_equal(rcpt_verify_cache_count(c), N);
	rcpt_verify_cache_free(c);
}

/* ---- the probe's dialogue ---- */

/* Feed the next hop's bytes one at a time (the worst split); returns every
 * byte the probe sent, as one string (static). */
static const char *
play(struct rcpt_probe *p, const char *server)
{
	static char sent[1024];
	size_t n = 0, len, used, pending = 0;
	const char *o;

	sent[0] = '\0';
	for (size_t i = 0; server[i] != '\0'; i++) {
		/* Bytes not consumed come again with the next one. */
		size_t start = i - pending;
		rcpt_probe_input(p, server + start, pending + 1, &used);
		pending = pending + 1 - used;
		o = rcpt_probe_output(p, &len);
		assert_true(n + len < sizeof(sent));
		memcpy(sent + n, o, len);
		n += len;
		sent[n] = '\0';
		rcpt_probe_sent(p, len);
	}
	return sent;
}

static void
test_probe_accepted_recipient_is_known(void **state)
{
	struct rcpt_probe p;
	rcpt_probe_init(&p, "mx1.example.net", "alice@example.org", 0);
	const char *sent = play(&p, "220 store ESMTP\r\n250-store\r\n250 PIPELINING\r\n"
	    "250 2.1.0 ok\r\n250 2.1.5 ok\r\n221 bye\r\n");
	assert_string_equal(sent, "EHLO mx1.example.net\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<alice@example.org>\r\nQUIT\r\n");
	assert_int_equal(p.step, RCPT_PROBE_DONE);
	assert_int_equal(p.result, RCPT_PROBE_ACCEPTED);
	rcpt_probe_free(&p);
}

static void
test_probe_5xx_to_rcpt_is_unknown_4xx_is_no_verdict(void **state)
{
	struct rcpt_probe p;
	rcpt_probe_init(&p, "mx1", "ghost@example.org", 1);
	const char *sent = play(&p, "220 lmtp\r\n250 ok\r\n250 ok\r\n"
	    "550-5.1.1 no such\r\n550 5.1.1 user\r\n");
	assert_string_equal(sent, "LHLO mx1\r\nMAIL FROM:<>\r\nRCPT TO:<ghost@example.org>\r\n"
	    "QUIT\r\n");
	assert_int_equal(p.result, RCPT_PROBE_REJECTED);
	assert_string_equal(p.why, "RCPT: 550-5.1.1 no such / 550 5.1.1 user");
	rcpt_probe_free(&p);

	rcpt_probe_init(&p, "mx1", "bob@example.org", 0);
	play(&p, "220 x\r\n250 x\r\n250 x\r\n451 4.3.0 try later\r\n");
	assert_int_equal(p.result, RCPT_PROBE_FAILED);
	rcpt_probe_free(&p);
}

static void
test_probe_says_nothing_when_the_dialogue_fails_before_rcpt(void **state)
{
	static const struct { const char *server, *sent, *why; } cases[] = {
		{ "554 go away\r\n", "QUIT\r\n", "greeting: 554 go away" },
		{ "220 x\r\n502 no EHLO\r\n", "EHLO me\r\nQUIT\r\n", "hello: 502 no EHLO" },
		{ "220 x\r\n250 x\r\n553 sender\r\n", "EHLO me\r\nMAIL FROM:<>\r\nQUIT\r\n",
		  "MAIL: 553 sender" },
		{ "HTTP/1.1 400 Bad Request\r\n", "", "the next hop's reply does not parse" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rcpt_probe p;
		rcpt_probe_init(&p, "me", "alice@example.org", 0);
		assert_string_equal(play(&p, cases[i].server), cases[i].sent);
		assert_int_equal(p.step, RCPT_PROBE_DONE);
		assert_int_equal(p.result, RCPT_PROBE_FAILED);
		assert_string_equal(p.why, cases[i].why);
		rcpt_probe_free(&p);
	}
}

static void
test_probe_connection_failure_and_utf8_address(void **state)
{
	struct rcpt_probe p;
	rcpt_probe_init(&p, "me", "j\xc3\xb6rg@example.org", 0);
	const char *sent = play(&p, "220 x\r\n250 x\r\n");
	assert_string_equal(sent, "EHLO me\r\nMAIL FROM:<> SMTPUTF8\r\n");
	rcpt_probe_fail(&p, "read from 127.0.0.1:24: timed out");
	assert_int_equal(p.step, RCPT_PROBE_DONE);
	assert_int_equal(p.result, RCPT_PROBE_FAILED);
	assert_string_equal(p.why, "read from 127.0.0.1:24: timed out");
	rcpt_probe_free(&p);

	/* A failure after the verdict (the connection drops during QUIT)
	 * changes nothing. */
	rcpt_probe_init(&p, "me", "alice@example.org", 0);
	play(&p, "220 x\r\n250 x\r\n250 x\r\n250 x\r\n");
	rcpt_probe_fail(&p, "reset");
	assert_int_equal(p.result, RCPT_PROBE_ACCEPTED);
	rcpt_probe_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_probe_then_the_answer_until_its_ttl),
		cmocka_unit_test(test_a_refusal_is_kept_for_the_shorter_negative_ttl),
		cmocka_unit_test(test_a_failed_probe_leaves_nothing_so_the_next_rcpt_probes_again),
		cmocka_unit_test(test_a_probe_that_never_reports_lapses),
		cmocka_unit_test(test_addresses_compare_ignoring_ascii_case),
		cmocka_unit_test(test_the_bound_drops_the_answer_stored_longest_ago),
		cmocka_unit_test(test_many_addresses_each_keep_their_own_answer),
		cmocka_unit_test(test_probe_accepted_recipient_is_known),
		cmocka_unit_test(test_probe_5xx_to_rcpt_is_unknown_4xx_is_no_verdict),
		cmocka_unit_test(test_probe_says_nothing_when_the_dialogue_fails_before_rcpt),
		cmocka_unit_test(test_probe_connection_failure_and_utf8_address),
	};
	return cmocka_run_group_tests_name("rcpt_verify", tests, NULL, NULL);
}
