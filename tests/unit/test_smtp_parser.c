/* The I/O-free SMTP parser: commands, paths, parameters, and the DATA/BDAT
 * state machines that decide where a message ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_parser.h"
#include "smtp_reply.h"
#include "spool.h"

static void
test_command_verbs_are_case_insensitive(void **state)
{
	struct smtp_cmd c;
	smtp_parser_command("ehlo client.example", 19, &c);
	assert_int_equal(c.verb, SMTP_CMD_EHLO);
	assert_string_equal(c.args, "client.example");
	smtp_parser_command("MaIl FROM:<a@b>", 15, &c);
	assert_int_equal(c.verb, SMTP_CMD_MAIL);
	assert_string_equal(c.args, "FROM:<a@b>");
	smtp_parser_command("STARTTLS", 8, &c);
	assert_int_equal(c.verb, SMTP_CMD_STARTTLS);
	assert_string_equal(c.args, "");
}

static void
test_command_unknown_and_prefixes_are_not_verbs(void **state)
{
	struct smtp_cmd c;
	smtp_parser_command("MAILX FROM:<a@b>", 16, &c);
	assert_int_equal(c.verb, SMTP_CMD_UNKNOWN);
	smtp_parser_command("", 0, &c);
	assert_int_equal(c.verb, SMTP_CMD_UNKNOWN);
	smtp_parser_command("DAT", 3, &c);
	assert_int_equal(c.verb, SMTP_CMD_UNKNOWN);
}

static void
test_path_accepts_common_forms(void **state)
{
	char addr[300];
	const char *params;
	assert_int_equal(smtp_parser_path("FROM:<user@example.org>", "FROM:", 1, 0, addr,
	    sizeof(addr), &params), 0);
	assert_string_equal(addr, "user@example.org");
	assert_string_equal(params, "");
	/* A space after the colon is a common client habit. */
	assert_int_equal(smtp_parser_path("FROM: <a.b+c@x.example> SIZE=100 BODY=8BITMIME", "FROM:",
	    1, 0, addr, sizeof(addr), &params), 0);
	assert_string_equal(addr, "a.b+c@x.example");
	assert_string_equal(params, "SIZE=100 BODY=8BITMIME");
	assert_int_equal(smtp_parser_path("FROM:<>", "FROM:", 1, 0, addr, sizeof(addr), &params), 0);
	assert_string_equal(addr, "");
	assert_int_equal(smtp_parser_path("TO:<\"john doe\"@example.org>", "TO:", 0, 0, addr,
	    sizeof(addr), &params), 0);
	assert_string_equal(addr, "\"john doe\"@example.org");
	assert_int_equal(smtp_parser_path("TO:<@relay.example,@r2.example:u@d.example>", "TO:", 0, 0,
	    addr, sizeof(addr), &params), 0);
	assert_string_equal(addr, "u@d.example");
	assert_int_equal(smtp_parser_path("TO:<u@[192.0.2.1]>", "TO:", 0, 0, addr, sizeof(addr),
	    &params), 0);
	assert_int_equal(smtp_parser_path("TO:<Postmaster>", "TO:", 0, 0, addr, sizeof(addr),
	    &params), 0);
	assert_string_equal(addr, "Postmaster");
}

static void
test_path_rejects_malformed(void **state)
{
	char addr[300];
	const char *params;
	const char *bad[] = {
		"FROM:user@example.org", "FROM:<user@example.org", "FROM:<user@>", "FROM:<@example.org>",
		"FROM:<us er@example.org>", "FROM:<user@exa mple.org>", "FROM:<user@-bad.org>",
		"FROM:<user@example.org>junk", "TO:<>", "FROM:<a@b..c>", "FROM:<a\r@b>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *kw = bad[i][0] == 'T' ? "TO:" : "FROM:";
		int rc = smtp_parser_path(bad[i], kw, kw[0] == 'F', 0, addr, sizeof(addr), &params);
		if (rc >= 0)
			fail_msg("accepted bad path %s", bad[i]);
	}
}

static void
test_path_too_long_and_utf8(void **state)
{
	char addr[600], line[700];
	const char *params;
	memset(line, 0, sizeof(line));
	strcpy(line, "TO:<");
	memset(line + 4, 'a', 65);
	strcat(line, "@example.org>");
	assert_int_equal(smtp_parser_path(line, "TO:", 0, 0, addr, sizeof(addr), &params),
	    SMTP_PARSE_TOO_LONG);
	assert_int_equal(smtp_parser_path("TO:<j\xc3\xb6rg@example.org>", "TO:", 0, 0, addr,
	    sizeof(addr), &params), SMTP_PARSE_NEED_UTF8);
	assert_int_equal(smtp_parser_path("TO:<j\xc3\xb6rg@example.org>", "TO:", 0, 1, addr,
	    sizeof(addr), &params), 0);
}

static void
test_params_parse_and_reject(void **state)
{
	struct smtp_param p[SMTP_PARAMS_MAX];
	int n = smtp_parser_params("size=123 BODY=8BITMIME SMTPUTF8", p, SMTP_PARAMS_MAX);
	assert_int_equal(n, 3);
	assert_string_equal(p[0].key, "SIZE");
	assert_string_equal(p[0].value, "123");
	assert_true(p[2].has_value == 0);
	assert_int_equal(smtp_parser_params("SIZE=", p, SMTP_PARAMS_MAX), -1);
	assert_int_equal(smtp_parser_params("=x", p, SMTP_PARAMS_MAX), -1);
	assert_int_equal(smtp_parser_params("A B C D E F G H I", p, SMTP_PARAMS_MAX), -1);
	assert_int_equal(smtp_parser_params("", p, SMTP_PARAMS_MAX), 0);
}

/* Parse one command's parameters and run them through the DSN checks as
 * the session does; returns the first non-zero result. */
static int
dsn_mail(const char *text, int *ret, const char **envid, struct smtp_param *p)
{
	int n = smtp_parser_params(text, p, SMTP_PARAMS_MAX);
	assert_true(n > 0);
	*ret = DSN_RET_NONE;
	*envid = NULL;
	for (int i = 0; i < n; i++) {
		int rc = smtp_parser_dsn_mail(&p[i], ret, envid);
		if (rc != 1)
			return rc;
	}
	return 1;
}

static int
dsn_rcpt(const char *text, unsigned *notify, const char **orcpt, struct smtp_param *p)
{
	int n = smtp_parser_params(text, p, SMTP_PARAMS_MAX);
	assert_true(n > 0);
	*notify = 0;
	*orcpt = NULL;
	for (int i = 0; i < n; i++) {
		int rc = smtp_parser_dsn_rcpt(&p[i], notify, orcpt);
		if (rc != 1)
			return rc;
	}
	return 1;
}

static void
test_mail_dsn_parameters_ret_and_envid(void **state)
{
	struct smtp_param p[SMTP_PARAMS_MAX];
	const char *envid;
	int ret;

	assert_int_equal(dsn_mail("RET=hdrs ENVID=QQ+2B314159", &ret, &envid, p), 1);
	assert_int_equal(ret, DSN_RET_HDRS);
	assert_string_equal(envid, "QQ+2B314159");	/* case kept: it is the sender's */
	assert_int_equal(dsn_mail("RET=FULL", &ret, &envid, p), 1);
	assert_int_equal(ret, DSN_RET_FULL);
	assert_null(envid);

	assert_int_equal(dsn_mail("RET=FULL RET=HDRS", &ret, &envid, p), SMTP_PARSE_DUPLICATE);
	assert_int_equal(dsn_mail("ENVID=a ENVID=a", &ret, &envid, p), SMTP_PARSE_DUPLICATE);
	assert_int_equal(dsn_mail("RET=ALL", &ret, &envid, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_mail("RET", &ret, &envid, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_mail("ENVID", &ret, &envid, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_mail("ENVID=a+2g", &ret, &envid, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_mail("ENVID=a=b", &ret, &envid, p), SMTP_PARSE_SYNTAX);
	/* Not a DSN parameter: left to the caller. */
	assert_int_equal(dsn_mail("SIZE=10", &ret, &envid, p), 0);

	char text[160] = "ENVID=";
	memset(text + 6, 'e', DSN_ENVID_MAX);
	assert_int_equal(dsn_mail(text, &ret, &envid, p), 1);
	strcat(text, "e");	/* 101 characters */
	assert_int_equal(dsn_mail(text, &ret, &envid, p), SMTP_PARSE_SYNTAX);
}

static void
test_rcpt_dsn_parameters_notify_and_orcpt(void **state)
{
	struct smtp_param p[SMTP_PARAMS_MAX];
	const char *orcpt;
	unsigned notify;

	assert_int_equal(dsn_rcpt("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@example.org",
	    &notify, &orcpt, p), 1);
	assert_int_equal(notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_string_equal(orcpt, "rfc822;a+2Bb@example.org");
	assert_int_equal(dsn_rcpt("notify=never", &notify, &orcpt, p), 1);
	assert_int_equal(notify, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_rcpt("NOTIFY=DELAY,SUCCESS", &notify, &orcpt, p), 1);
	assert_int_equal(notify, DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS);

	assert_int_equal(dsn_rcpt("NOTIFY=NEVER,FAILURE", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("NOTIFY=SOMETIMES", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("NOTIFY=SUCCESS,,DELAY", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("NOTIFY", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("NOTIFY=DELAY NOTIFY=DELAY", &notify, &orcpt, p),
	    SMTP_PARSE_DUPLICATE);
	assert_int_equal(dsn_rcpt("ORCPT=rfc822;a@b ORCPT=rfc822;a@b", &notify, &orcpt, p),
	    SMTP_PARSE_DUPLICATE);
	assert_int_equal(dsn_rcpt("ORCPT=a@b", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("ORCPT=rfc822;a+zz@b", &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_int_equal(dsn_rcpt("FOO=1", &notify, &orcpt, p), 0);

	/* ORCPT up to 500 characters, and past that refused by name (the
	 * parameter parser holds it, so the reply can say which one). */
	char text[SMTP_LINE_MAX];
	strcpy(text, "ORCPT=rfc822;");
	size_t at = strlen(text);
	memset(text + at, 'o', DSN_ORCPT_MAX - 7);
	text[at + DSN_ORCPT_MAX - 7] = '\0';
	assert_int_equal(dsn_rcpt(text, &notify, &orcpt, p), 1);
	assert_int_equal(strlen(orcpt), DSN_ORCPT_MAX);
	strcat(text, "o");
	assert_int_equal(dsn_rcpt(text, &notify, &orcpt, p), SMTP_PARSE_SYNTAX);
	assert_string_equal(p[0].key, "ORCPT");
}

/* Feed a whole DATA stream at once and byte by byte: both must agree. */
static void
data_run(const char *in, size_t len, struct smtp_data *out_d, struct buf *out, size_t *used)
{
	struct smtp_data d2;
	struct buf o2;
	smtp_data_init(out_d, 0);
	buf_init(out);
	*used = smtp_data_feed(out_d, in, len, out);

	smtp_data_init(&d2, 0);
	buf_init(&o2);
	size_t u2 = 0;
	for (size_t i = 0; i < len && d2.state != SMTP_DATA_END; i++)
		u2 += smtp_data_feed(&d2, in + i, 1, &o2);
	assert_int_equal(u2, *used);
	assert_int_equal(d2.flags, out_d->flags);
	assert_int_equal(d2.state, out_d->state);
	assert_int_equal(o2.len, out->len);
	if (o2.len)
		assert_memory_equal(o2.data, out->data, o2.len);
	buf_free(&o2);
}

static void
test_data_ends_only_at_crlf_dot_crlf(void **state)
{
	const char in[] = "Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<next@x>\r\n";
	struct smtp_data d;
	struct buf out;
	size_t used;
	data_run(in, sizeof(in) - 1, &d, &out, &used);
	assert_int_equal(d.state, SMTP_DATA_END);
	assert_int_equal(d.flags, 0);
	assert_int_equal(used, strlen("Subject: x\r\n\r\nbody\r\n.\r\n"));
	assert_string_equal(out.data, "Subject: x\r\n\r\nbody\r\n");
	buf_free(&out);
}

static void
test_data_unstuffs_leading_dots(void **state)
{
	const char in[] = "..hidden\r\n...two\r\n.\r\n";
	struct smtp_data d;
	struct buf out;
	size_t used;
	data_run(in, sizeof(in) - 1, &d, &out, &used);
	assert_int_equal(d.state, SMTP_DATA_END);
	assert_string_equal(out.data, ".hidden\r\n..two\r\n");
	buf_free(&out);
}

static void
test_data_empty_message(void **state)
{
	struct smtp_data d;
	struct buf out;
	size_t used;
	data_run(".\r\n", 3, &d, &out, &used);
	assert_int_equal(d.state, SMTP_DATA_END);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

/* Every smuggling variant: not an end, and the message is marked bad. */
static void
test_data_rejects_every_false_end_of_data(void **state)
{
	static const struct { const char *in; unsigned flag; } v[] = {
		{ "a\n.\nMAIL FROM:<x>\r\n", SMTP_DATA_BARE_LF },		/* <LF>.<LF> */
		{ "a\r.\rMAIL FROM:<x>\r\n", SMTP_DATA_BARE_CR },		/* <CR>.<CR> */
		{ "a\n.\r\nMAIL FROM:<x>\r\n", SMTP_DATA_BARE_LF },		/* <LF>.<CRLF> */
		{ "a\r\n.\nMAIL FROM:<x>\r\n", SMTP_DATA_BARE_LF },		/* <CRLF>.<LF> */
		{ "a\r\n.\rMAIL FROM:<x>\r\n", SMTP_DATA_BARE_CR },		/* <CRLF>.<CR> */
		{ "a\r.\r\nMAIL FROM:<x>\r\n", SMTP_DATA_BARE_CR },		/* <CR>.<CRLF> */
		{ "a\r\r\n.\r\r\nMAIL\r\n", SMTP_DATA_BARE_CR },
		{ "bare lf\nline\r\n", SMTP_DATA_BARE_LF },
		{ "bare cr\rline\r\n", SMTP_DATA_BARE_CR },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct smtp_data d;
		struct buf out;
		size_t used;
		data_run(v[i].in, strlen(v[i].in), &d, &out, &used);
		if (d.state == SMTP_DATA_END)
			fail_msg("variant %zu taken as end of data", i);
		assert_int_equal(used, strlen(v[i].in));
		assert_true(d.flags & v[i].flag);
		buf_free(&out);
		/* The real end still ends it, and the message stays bad. */
		struct smtp_data d2;
		struct buf o2;
		smtp_data_init(&d2, 0);
		buf_init(&o2);
		smtp_data_feed(&d2, v[i].in, strlen(v[i].in), &o2);
		smtp_data_feed(&d2, "\r\n.\r\n", 5, &o2);
		assert_int_equal(d2.state, SMTP_DATA_END);
		assert_true(d2.flags & v[i].flag);
		buf_free(&o2);
	}
}

static void
test_data_size_cap_marks_too_big(void **state)
{
	struct smtp_data d;
	struct buf out;
	smtp_data_init(&d, 10);
	buf_init(&out);
	const char in[] = "0123456789abcdef\r\n.\r\n";
	smtp_data_feed(&d, in, sizeof(in) - 1, &out);
	assert_int_equal(d.state, SMTP_DATA_END);
	assert_true(d.flags & SMTP_DATA_TOO_BIG);
	assert_true(out.len <= 10);
	buf_free(&out);
}

static void
test_bdat_rejects_bare_lf_and_trailing_cr(void **state)
{
	struct smtp_bdat b;
	struct buf out;
	smtp_bdat_init(&b, 0);
	buf_init(&out);
	smtp_bdat_feed(&b, "line\r", 5, &out);
	smtp_bdat_feed(&b, "\nnext\r\n", 7, &out);	/* CRLF split across chunks */
	smtp_bdat_finish(&b);
	assert_int_equal(b.flags, 0);
	assert_string_equal(out.data, "line\r\nnext\r\n");

	smtp_bdat_init(&b, 0);
	buf_reset(&out);
	smtp_bdat_feed(&b, "a\nb", 3, &out);
	assert_true(b.flags & SMTP_DATA_BARE_LF);

	smtp_bdat_init(&b, 0);
	smtp_bdat_feed(&b, "a\r", 2, &out);
	smtp_bdat_finish(&b);
	assert_true(b.flags & SMTP_DATA_BARE_CR);
	buf_free(&out);
}

static void
test_reply_lines(void **state)
{
	int code, more;
	const char *text;
	assert_int_equal(smtp_reply_line("250-PIPELINING", 14, &code, &more, &text), 0);
	assert_int_equal(code, 250);
	assert_true(more);
	assert_string_equal(text, "PIPELINING");
	assert_int_equal(smtp_reply_line("550 5.1.1 no", 12, &code, &more, &text), 0);
	assert_int_equal(code, 550);
	assert_false(more);
	assert_int_equal(smtp_reply_line("250", 3, &code, &more, &text), 0);
	assert_int_equal(smtp_reply_line("25", 2, &code, &more, &text), -1);
	assert_int_equal(smtp_reply_line("abc def", 7, &code, &more, &text), -1);
	assert_int_equal(smtp_reply_line("250x", 4, &code, &more, &text), -1);
	assert_int_equal(smtp_reply_line("650 x", 5, &code, &more, &text), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_verbs_are_case_insensitive),
		cmocka_unit_test(test_command_unknown_and_prefixes_are_not_verbs),
		cmocka_unit_test(test_path_accepts_common_forms),
		cmocka_unit_test(test_path_rejects_malformed),
		cmocka_unit_test(test_path_too_long_and_utf8),
		cmocka_unit_test(test_params_parse_and_reject),
		cmocka_unit_test(test_mail_dsn_parameters_ret_and_envid),
		cmocka_unit_test(test_rcpt_dsn_parameters_notify_and_orcpt),
		cmocka_unit_test(test_data_ends_only_at_crlf_dot_crlf),
		cmocka_unit_test(test_data_unstuffs_leading_dots),
		cmocka_unit_test(test_data_empty_message),
		cmocka_unit_test(test_data_rejects_every_false_end_of_data),
		cmocka_unit_test(test_data_size_cap_marks_too_big),
		cmocka_unit_test(test_bdat_rejects_bare_lf_and_trailing_cr),
		cmocka_unit_test(test_reply_lines),
	};
	return cmocka_run_group_tests_name("smtp_parser", tests, NULL, NULL);
}
