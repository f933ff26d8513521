/* The day and the id of a TLS report we send (controld/db_tlsrpt.h): which
 * day strings an operator may give mailctl reports preview, the UTC second
 * each starts at, and the report-id a receiver sees. No database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "db_tlsrpt.h"

static void
test_day_starts_at_utc_midnight(void **state)
{
	time_t t;

	(void)state;
	assert_int_equal(db_tlsrpt_day("1970-01-01", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(db_tlsrpt_day("2024-01-01", &t), 0);
	assert_int_equal(t, 1704067200);
	assert_int_equal(db_tlsrpt_day("2024-02-29", &t), 0);	/* a leap day */
	assert_int_equal(t, 1709164800);
	assert_int_equal(db_tlsrpt_day("9999-12-31", &t), 0);
}

static void
test_day_refuses_what_is_not_a_date(void **state)
{
	static const char *const bad[] = {
		"2023-02-29", "2024-02-30", "2024-04-31", "2024-13-01", "2024-00-10",
		"2024-01-00", "1969-12-31", "2024-1-01", "2024-01-1", "24-01-01",
		"2024/01/01", "2024-01-01T00:00:00Z", "2024-01-01 ", "yesterday", "",
		"+024-01-01", "2024-0a-01",
	};
	time_t t = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (db_tlsrpt_day(bad[i], &t) != -1)
			fail_msg("\"%s\" was taken for a day", bad[i]);
		assert_int_equal(t, 42);
	}
}

static void
test_report_id_names_day_domain_kind_and_submitter(void **state)
{
	char *a = db_tlsrpt_report_id(1704067200, "example.com", TLSRPT_KIND_DOMAIN,
	    "mxfleet.example");
	char *b = db_tlsrpt_report_id(1704067200, "mx.example.com", TLSRPT_KIND_HOST,
	    "mxfleet.example");

	(void)state;
	assert_string_equal(a, "2024-01-01_example.com_domain@mxfleet.example");
	assert_string_equal(b, "2024-01-01_mx.example.com_host@mxfleet.example");
	free(a);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_day_starts_at_utc_midnight),
		cmocka_unit_test(test_day_refuses_what_is_not_a_date),
		cmocka_unit_test(test_report_id_names_day_domain_kind_and_submitter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
