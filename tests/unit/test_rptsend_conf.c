/* When controld sends a TLS report and when it stops trying
 * (controld/rptsend_conf.h; docs/reports.md, "Sending"): the reports.send
 * group as an operator writes it, the retry schedule on a fake clock, and
 * where a delivery falls in the sending window. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rptsend_conf.h"

/* The send group of a config text; 0 or -1 with err. */
static int
load(const char *text, struct rptsend_config *cfg, struct conf_err *err)
{
	config_t c;
	int rc;

	config_init(&c);
	assert_int_equal(config_read_string(&c, text), CONFIG_TRUE);
	rc = rptsend_config_load(config_lookup(&c, "send"), cfg, err);
	config_destroy(&c);
	return rc;
}

static void
test_defaults_send_a_day_over_four_hours_and_give_up_after_a_day(void **state)
{
	struct rptsend_config cfg;
	struct conf_err err;

	(void)state;
	assert_int_equal(rptsend_config_load(NULL, &cfg, &err), 0);
	assert_int_equal(cfg.enabled, 0);
	assert_int_equal(cfg.nsubmit, 0);
	assert_int_equal(cfg.window, 14400);
	assert_int_equal(cfg.give_up, 86400);
	assert_int_equal(cfg.report_without_failures, 1);
	rptsend_config_free(&cfg);
}

static void
test_operator_settings_are_read_and_mistakes_named(void **state)
{
	struct rptsend_config cfg;
	struct conf_err err;

	(void)state;
	assert_int_equal(load("send = { enabled = true; submit = [\"127.0.0.1:25\", "
	    "\"[::1]:2525\"]; window = 0; https_ca_file = \"/etc/ca.pem\"; "
	    "report_without_failures = false; };", &cfg, &err), 0);
	assert_int_equal(cfg.enabled, 1);
	assert_int_equal(cfg.nsubmit, 2);
	assert_string_equal(cfg.submit[1], "[::1]:2525");
	assert_string_equal(cfg.https_ca_file, "/etc/ca.pem");
	assert_int_equal(cfg.report_without_failures, 0);
	rptsend_config_free(&cfg);

	assert_int_equal(load("send = { submit = [\"mx.example\"]; };", &cfg, &err), -1);
	assert_non_null(strstr(err.msg, "expected host:port"));
	assert_int_equal(load("send = { give_up = 0; };", &cfg, &err), -1);
	assert_non_null(strstr(err.msg, "give_up"));
	assert_int_equal(load("send = { retries = 3; };", &cfg, &err), -1);
	assert_non_null(strstr(err.msg, "retries"));
}

static void
test_retry_delay_doubles_up_to_retry_max_then_gives_up_a_day_after_the_first_try(void **state)
{
	struct rptsend_config cfg;
	struct conf_err err;
	time_t t0 = 1704067200, now = t0, next, first = 0;
	static const long long want[] = { 600, 1200, 2400, 4800, 7200, 7200, 7200 };

	(void)state;
	assert_int_equal(rptsend_config_load(NULL, &cfg, &err), 0);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(rptsend_config_retry(&cfg, i, first, now, &next), 0);
		assert_int_equal(next - now, want[i]);
		first = t0;
		now = next;
	}
	/* the try just under 24 h after the first is retried; at 24 h, failed */
	assert_int_equal(rptsend_config_retry(&cfg, 20, t0, t0 + 86399, &next), 0);
	assert_int_equal(rptsend_config_retry(&cfg, 20, t0, t0 + 86400, &next), 1);
	rptsend_config_free(&cfg);
}

static void
test_deliveries_spread_over_the_window_the_same_on_every_replica(void **state)
{
	struct rptsend_config cfg;
	struct conf_err err;
	time_t t0 = 1704067200, a, b;
	char uri[64];
	int spread = 0;

	(void)state;
	assert_int_equal(rptsend_config_load(NULL, &cfg, &err), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(uri, sizeof(uri), "mailto:tlsrpt@d%d.example", i);
		a = rptsend_config_due(&cfg, "2024-01-01_example.com_domain@m.example", uri, t0);
		b = rptsend_config_due(&cfg, "2024-01-01_example.com_domain@m.example", uri, t0);
		assert_int_equal(a, b);
		assert_true(a >= t0 && a < t0 + cfg.window);
		spread += a != t0;
	}
	assert_true(spread > 40);
	cfg.window = 0;		/* send-now, or no spreading: due at once */
	assert_int_equal(rptsend_config_due(&cfg, "x@y", "https://r.example/", t0), t0);
	rptsend_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_send_a_day_over_four_hours_and_give_up_after_a_day),
		cmocka_unit_test(test_operator_settings_are_read_and_mistakes_named),
		cmocka_unit_test(test_retry_delay_doubles_up_to_retry_max_then_gives_up_a_day_after_the_first_try),
		cmocka_unit_test(test_deliveries_spread_over_the_window_the_same_on_every_replica),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
