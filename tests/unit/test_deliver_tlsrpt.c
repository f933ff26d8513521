/* What an outbound session's record tells the TLS reports besides its
 * result (mxd/smtp/deliver_tlsrpt.h): which sessions carried reports (left
 * out of reports: no reports about reports), and the failure text a
 * receiving domain reads as failure-reason-code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "deliver_tlsrpt.h"

static void
test_report_sender_is_exempt_in_any_case(void **state)
{
	(void)state;
	assert_true(deliver_tlsrpt_sender_is("tlsrpt-noreply@mxfleet.example",
	    "tlsrpt-noreply@mxfleet.example"));
	assert_true(deliver_tlsrpt_sender_is("TLSRPT-NoReply@MXFLEET.example",
	    "tlsrpt-noreply@mxfleet.example"));
}

static void
test_other_senders_and_unset_sender_are_not_exempt(void **state)
{
	(void)state;
	assert_false(deliver_tlsrpt_sender_is("alice@mxfleet.example",
	    "tlsrpt-noreply@mxfleet.example"));
	/* a bounce (null sender) is not a report, even with nothing set */
	assert_false(deliver_tlsrpt_sender_is("", "tlsrpt-noreply@mxfleet.example"));
	assert_false(deliver_tlsrpt_sender_is("", ""));
	assert_false(deliver_tlsrpt_sender_is("alice@mxfleet.example", ""));
	assert_false(deliver_tlsrpt_sender_is("alice@mxfleet.example", NULL));
	assert_false(deliver_tlsrpt_sender_is("tlsrpt-noreply@mxfleet.example.evil",
	    "tlsrpt-noreply@mxfleet.example"));
}

static void
test_reason_joins_tls_error_and_mxd_error(void **state)
{
	char out[DELIVER_TLSRPT_REASON_MAX + 1];

	(void)state;
	deliver_tlsrpt_reason(out, sizeof(out), "certificate verify failed",
	    "451 4.7.5 TLS policy verify for example.org: mx.example.org: handshake failed");
	assert_string_equal(out, "certificate verify failed: 451 4.7.5 TLS policy verify for "
	    "example.org: mx.example.org: handshake failed");
	/* the error text already names the TLS error: said once */
	deliver_tlsrpt_reason(out, sizeof(out), "eof",
	    "451 4.7.5 MTA-STS policy of example.org: mx: validation-failure (eof)");
	assert_string_equal(out, "451 4.7.5 MTA-STS policy of example.org: mx: validation-failure (eof)");
	deliver_tlsrpt_reason(out, sizeof(out), "eof", NULL);
	assert_string_equal(out, "eof");
	deliver_tlsrpt_reason(out, sizeof(out), NULL, "TLSA lookup failed");
	assert_string_equal(out, "TLSA lookup failed");
	deliver_tlsrpt_reason(out, sizeof(out), "", "");
	assert_string_equal(out, "");
}

static void
test_reason_is_printable_and_bounded(void **state)
{
	char out[DELIVER_TLSRPT_REASON_MAX + 1], big[2000];

	(void)state;
	/* a remote reply's control bytes and non-ASCII never reach a report */
	deliver_tlsrpt_reason(out, sizeof(out), NULL, "550\r\n  5.7.1\tno\x01 \xc3\xa9t\x7f ");
	assert_string_equal(out, "550 5.7.1 no? ??t?");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	deliver_tlsrpt_reason(out, sizeof(out), "eof", big);
	assert_int_equal(strlen(out), DELIVER_TLSRPT_REASON_MAX);
	assert_memory_equal(out, "eof: xxx", 8);
	/* a smaller buffer cuts more, never overflows */
	char small[8];
	deliver_tlsrpt_reason(small, sizeof(small), "eof", big);
	assert_string_equal(small, "eof: xx");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_sender_is_exempt_in_any_case),
		cmocka_unit_test(test_other_senders_and_unset_sender_are_not_exempt),
		cmocka_unit_test(test_reason_joins_tls_error_and_mxd_error),
		cmocka_unit_test(test_reason_is_printable_and_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
