/* The inbound TLS view without a database (controld/inbound_tls.h): which
 * sender domain a session counts for, how grouped rows become the report
 * an operator reads, and the failure-rate warning given once per crossing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inbound_tls.h"

#define NOT_OFFERED	MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED
#define OFFERED		MXFLEET__V1__START_TLS__STARTTLS_OFFERED
#define FAILED		MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED
#define ESTABLISHED	MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED

static void
assert_domain(const char *ptr, const char *ip, const char *want)
{
	char d[INBOUND_TLS_DOMAIN_MAX];
	inbound_tls_sender_domain(ptr, ip, d, sizeof(d));
	assert_string_equal(d, want);
}

static void
test_ptr_domain_is_the_last_two_labels(void **state)
{
	(void)state;
	assert_domain("mail-db8eur05on2100.outbound.protection.outlook.com", "", "outlook.com");
	assert_domain("mail-wr1-f41.google.com.", "", "google.com");
	assert_domain("MX1.Example.NET", "", "example.net");
	assert_domain("example.org", "", "example.org");
	assert_domain("localhost", "", "localhost");
}

static void
test_ptr_domain_keeps_three_labels_under_country_second_levels(void **state)
{
	(void)state;
	assert_domain("mx1.mail.example.co.uk", "", "example.co.uk");
	assert_domain("smtp.example.com.au.", "", "example.com.au");
	assert_domain("a.b.example.ne.jp", "", "example.ne.jp");
	/* Only under a two-letter code: "co.com" is a name, not a suffix. */
	assert_domain("mx.shop.co.com", "", "co.com");
	assert_domain("co.uk", "", "co.uk");
}

static void
test_no_ptr_groups_by_network(void **state)
{
	(void)state;
	assert_domain("", "192.0.2.77", "192.0.2.0/24");
	assert_domain(".", "198.51.100.1", "198.51.100.0/24");
	assert_domain("", "2001:db8:1:2::25", "2001:db8:1::/48");
	assert_domain("", "not-an-address", INBOUND_TLS_NO_PTR);
	assert_domain("", NULL, INBOUND_TLS_NO_PTR);
}

static void
test_by_names_round_trip(void **state)
{
	enum inbound_tls_by by;
	(void)state;
	assert_int_equal(inbound_tls_by_parse("", &by), 0);
	assert_int_equal(by, INBOUND_TLS_BY_SENDER_DOMAIN);
	const char *names[] = { "sender-domain", "remote-ip", "stage", "host" };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(inbound_tls_by_parse(names[i], &by), 0);
		assert_string_equal(inbound_tls_by_name(by), names[i]);
	}
	assert_int_equal(inbound_tls_by_parse("domain", &by), -1);
}

static void
add(struct inbound_tls_agg *a, const char *key, const char *ip, int st, const char *stage,
    const char *reason, uint64_t n)
{
	struct inbound_tls_row r = { key, ip, st, stage, reason,
	    st == ESTABLISHED ? "TLSv1.3" : "", st == ESTABLISHED ? "TLS_AES_256_GCM_SHA384" : "", n };
	inbound_tls_agg_add(a, &r);
}

static const Mxfleet__V1__InboundTlsGroup *
group(const Mxfleet__V1__InboundTlsReport *r, const char *key)
{
	for (size_t i = 0; i < r->n_groups; i++)
		if (strcmp(r->groups[i]->key, key) == 0)
			return r->groups[i];
	fail_msg("no group %s", key);
	return NULL;
}

/* Two PTR names of one provider fold into its domain, and the provider
 * whose handshakes fail comes first however few sessions it has. */
static void
test_failing_provider_is_listed_first(void **state)
{
	(void)state;
	struct inbound_tls_agg *a = inbound_tls_agg_new(INBOUND_TLS_BY_SENDER_DOMAIN);
	add(a, "mx1.big.example", "192.0.2.1", ESTABLISHED, "", "", 50);
	add(a, "o1.aborts.example", "198.51.100.1", FAILED, "in:finished,out:finished", "eof", 2);
	add(a, "o2.aborts.example", "198.51.100.2", FAILED, "in:finished,out:finished", "eof", 1);
	add(a, "o2.aborts.example", "198.51.100.2", FAILED, "in:client_hello,out:server_hello",
	    "alert_received:unknown_CA", 1);
	add(a, "o2.aborts.example", "198.51.100.2", ESTABLISHED, "", "", 4);
	add(a, "", "203.0.113.9", NOT_OFFERED, "", "", 3);
	add(a, "", "203.0.113.10", OFFERED, "", "", 2);
	Mxfleet__V1__InboundTlsReport *r = inbound_tls_agg_finish(a, 1000);

	assert_string_equal(r->by, "sender-domain");
	assert_int_equal(r->since_unix, 1000);
	assert_int_equal(r->n_groups, 3);
	assert_string_equal(r->groups[0]->key, "aborts.example");
	const Mxfleet__V1__InboundTlsGroup *g = r->groups[0];
	assert_int_equal(g->sessions, 8);
	assert_int_equal(g->attempted, 8);
	assert_int_equal(g->established, 4);
	assert_int_equal(g->failed, 4);
	assert_int_equal(g->n_failures, 2);
	assert_string_equal(g->failures[0]->stage, "in:finished,out:finished");
	assert_string_equal(g->failures[0]->reason, "eof");
	assert_int_equal(g->failures[0]->sessions, 3);
	assert_int_equal(g->failures[1]->sessions, 1);
	g = group(r, "203.0.113.0/24");
	assert_int_equal(g->sessions, 5);
	assert_int_equal(g->not_offered, 3);
	assert_int_equal(g->offered, 2);
	assert_int_equal(g->attempted, 0);
	assert_int_equal(group(r, "big.example")->established, 50);
	assert_int_equal(r->n_versions, 1);
	assert_string_equal(r->versions[0]->name, "TLSv1.3");
	assert_int_equal(r->versions[0]->sessions, 54);
	assert_int_equal(r->n_ciphers, 1);
	assert_int_equal(r->ciphers[0]->sessions, 54);
	inbound_tls_report_free(r);
}

static void
test_by_stage_puts_sessions_without_failure_apart(void **state)
{
	(void)state;
	struct inbound_tls_agg *a = inbound_tls_agg_new(INBOUND_TLS_BY_STAGE);
	add(a, "in:finished,out:finished", "", FAILED, "in:finished,out:finished", "eof", 2);
	add(a, "", "", ESTABLISHED, "", "", 5);
	add(a, "", "", OFFERED, "", "", 1);
	Mxfleet__V1__InboundTlsReport *r = inbound_tls_agg_finish(a, 0);
	assert_int_equal(r->n_groups, 2);
	assert_string_equal(r->groups[0]->key, "in:finished,out:finished");
	assert_int_equal(r->groups[0]->failed, 2);
	assert_int_equal(group(r, INBOUND_TLS_NO_FAILURE)->sessions, 6);
	inbound_tls_report_free(r);
}

static void
test_empty_window_is_an_empty_report(void **state)
{
	(void)state;
	Mxfleet__V1__InboundTlsReport *r = inbound_tls_agg_finish(
	    inbound_tls_agg_new(INBOUND_TLS_BY_HOST), 5);
	assert_int_equal(r->n_groups, 0);
	assert_int_equal(r->n_versions, 0);
	assert_string_equal(r->by, "host");
	inbound_tls_report_free(r);
}

/* ---- the alarm ---- */

struct calls {
	char	crossed[8][64];
	int	ncrossed;
	char	recovered[8][64];
	int	nrecovered;
};

static void
on_crossed(const Mxfleet__V1__InboundTlsGroup *g, void *arg)
{
	struct calls *c = arg;
	snprintf(c->crossed[c->ncrossed++], 64, "%s", g->key);
}

static void
on_recovered(const char *domain, void *arg)
{
	struct calls *c = arg;
	snprintf(c->recovered[c->nrecovered++], 64, "%s", domain);
}

static Mxfleet__V1__InboundTlsReport *
window(uint64_t failed, uint64_t established)
{
	struct inbound_tls_agg *a = inbound_tls_agg_new(INBOUND_TLS_BY_SENDER_DOMAIN);
	if (failed)
		add(a, "o1.aborts.example", "", FAILED, "in:finished,out:finished", "eof", failed);
	if (established)
		add(a, "o1.aborts.example", "", ESTABLISHED, "", "", established);
	add(a, "mx.fine.example", "", ESTABLISHED, "", "", 100);
	return inbound_tls_agg_finish(a, 0);
}

static void
poll_window(struct inbound_tls_alarm *al, struct calls *c, uint64_t failed, uint64_t ok)
{
	struct inbound_tls_alarm_cb cb = { on_crossed, on_recovered, c };
	Mxfleet__V1__InboundTlsReport *r = window(failed, ok);
	inbound_tls_alarm_update(al, r, 0.5, 4, &cb);
	inbound_tls_report_free(r);
}

static void
test_warning_once_per_crossing(void **state)
{
	struct inbound_tls_alarm al = { 0 };
	struct calls c = { 0 };
	(void)state;

	poll_window(&al, &c, 1, 1);	/* 50 %, but under min_attempts */
	assert_int_equal(c.ncrossed, 0);
	poll_window(&al, &c, 3, 1);	/* 75 % of 4: over */
	assert_int_equal(c.ncrossed, 1);
	assert_string_equal(c.crossed[0], "aborts.example");
	poll_window(&al, &c, 4, 1);	/* still over: not again */
	poll_window(&al, &c, 5, 5);	/* exactly the threshold: over */
	assert_int_equal(c.ncrossed, 1);
	poll_window(&al, &c, 1, 9);	/* 10 %: recovered */
	assert_int_equal(c.nrecovered, 1);
	assert_string_equal(c.recovered[0], "aborts.example");
	poll_window(&al, &c, 9, 1);	/* over again: a new crossing */
	assert_int_equal(c.ncrossed, 2);
	poll_window(&al, &c, 0, 0);	/* gone from the window: forgotten */
	assert_int_equal(c.nrecovered, 2);
	assert_int_equal(al.nover, 0);
	inbound_tls_alarm_free(&al);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ptr_domain_is_the_last_two_labels),
		cmocka_unit_test(test_ptr_domain_keeps_three_labels_under_country_second_levels),
		cmocka_unit_test(test_no_ptr_groups_by_network),
		cmocka_unit_test(test_by_names_round_trip),
		cmocka_unit_test(test_failing_provider_is_listed_first),
		cmocka_unit_test(test_by_stage_puts_sessions_without_failure_apart),
		cmocka_unit_test(test_empty_window_is_an_empty_report),
		cmocka_unit_test(test_warning_once_per_crossing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
