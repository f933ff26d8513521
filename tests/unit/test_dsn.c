/* DSNs: the full multi-line reply is quoted, and the report is RFC 3464. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dsn.h"

static void
test_dsn_quotes_every_reply_line(void **state)
{
	struct spool_env env;
	char *rcpts[] = { "gone@example.test" };
	memset(&env, 0, sizeof(env));
	strcpy(env.id, "ABC123");
	env.from = "sender@example.test";
	env.rcpts = rcpts;
	env.nrcpts = 1;
	struct dsn_rcpt r = { "gone@example.test", "5.1.1", "smtp:127.0.0.1:26",
	    "550-5.1.1 first line\n550-5.1.1 second line\n550 5.1.1 last line\n", 0 };
	struct buf out;
	buf_init(&out);
	dsn_build(&out, "mx.example.test", &env, &r, 1, -1, 0);
	assert_non_null(strstr(out.data, "Content-Type: multipart/report; report-type=delivery-status"));
	assert_non_null(strstr(out.data, "Content-Type: message/delivery-status"));
	assert_non_null(strstr(out.data, "    550-5.1.1 first line\r\n    550-5.1.1 second line\r\n    550 5.1.1 last line\r\n"));
	assert_non_null(strstr(out.data, "Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
	assert_non_null(strstr(out.data, "Diagnostic-Code: smtp; 550-5.1.1 first line\r\n    550-5.1.1 second line\r\n    550 5.1.1 last line\r\n"));
	assert_non_null(strstr(out.data, "To: <sender@example.test>"));
	/* No bare LF anywhere: it is relayed with DATA. */
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] == '\n')
			assert_true(i > 0 && out.data[i - 1] == '\r');
	buf_free(&out);
}

static void
test_dsn_status_from_reply(void **state)
{
	char s[16];
	dsn_status_from_reply("550 5.1.1 no such user", 550, s, sizeof(s));
	assert_string_equal(s, "5.1.1");
	dsn_status_from_reply("550-5.7.26 unauthenticated\n550 5.7.26 x", 550, s, sizeof(s));
	assert_string_equal(s, "5.7.26");
	dsn_status_from_reply("554 Transaction failed", 554, s, sizeof(s));
	assert_string_equal(s, "5.0.0");
	dsn_status_from_reply("451 try later", 451, s, sizeof(s));
	assert_string_equal(s, "4.0.0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_quotes_every_reply_line),
		cmocka_unit_test(test_dsn_status_from_reply),
	};
	return cmocka_run_group_tests_name("dsn", tests, NULL, NULL);
}
