/* DSNs: the full multi-line reply is quoted, and the report is RFC 3464;
 * the RFC 3461 parameters are checked, passed on and honoured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "../fuzz/dsn_wellformed.h"

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
	    "550-5.1.1 first line\n550-5.1.1 second line\n550 5.1.1 last line\n",
	    DSN_ACTION_FAILED, NULL };
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

static void
test_dsn_xtext_envid_and_orcpt_syntax(void **state)
{
	assert_true(dsn_xtext_ok("abc", 3));
	assert_true(dsn_xtext_ok("a+2Bb+3D", 8));
	assert_false(dsn_xtext_ok("", 0));
	assert_false(dsn_xtext_ok("a+2b", 4));		/* hex digits are upper case */
	assert_false(dsn_xtext_ok("a+2", 3));		/* cut short */
	assert_false(dsn_xtext_ok("a=b", 3));
	assert_false(dsn_xtext_ok("a b", 3));
	assert_false(dsn_xtext_ok("caf\xc3\xa9", 5));

	char envid[DSN_ENVID_MAX + 2];
	memset(envid, 'x', sizeof(envid));
	assert_true(dsn_envid_ok(envid, DSN_ENVID_MAX));
	assert_false(dsn_envid_ok(envid, DSN_ENVID_MAX + 1));

	assert_true(dsn_orcpt_ok("rfc822;a@b", 10));
	assert_true(dsn_orcpt_ok("utf-8;a+2Bx@b", 13));
	assert_false(dsn_orcpt_ok("rfc822", 6));	/* no address */
	assert_false(dsn_orcpt_ok(";a@b", 4));		/* no type */
	assert_false(dsn_orcpt_ok("rfc822;", 7));
	assert_false(dsn_orcpt_ok("rf(c;a@b", 8));	/* type not an atom */
	char orcpt[DSN_ORCPT_MAX + 2];
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'a', sizeof(orcpt) - 7);
	assert_true(dsn_orcpt_ok(orcpt, DSN_ORCPT_MAX));
	assert_false(dsn_orcpt_ok(orcpt, DSN_ORCPT_MAX + 1));
}

static void
test_dsn_notify_parse_and_format(void **state)
{
	unsigned n = 0;
	char out[64];

	assert_int_equal(dsn_notify_parse("success,Failure", 15, &n), 0);
	assert_int_equal(n, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_int_equal(dsn_notify_parse("NEVER", 5, &n), 0);
	assert_int_equal(n, DSN_NOTIFY_NEVER);
	assert_int_equal(dsn_notify_parse("DELAY", 5, &n), 0);
	assert_int_equal(n, DSN_NOTIFY_DELAY);
	assert_int_equal(dsn_notify_parse("NEVER,SUCCESS", 13, &n), -1);
	assert_int_equal(dsn_notify_parse("SUCCESS,", 8, &n), -1);
	assert_int_equal(dsn_notify_parse("", 0, &n), -1);
	assert_int_equal(dsn_notify_parse("SOMETIMES", 9, &n), -1);

	dsn_notify_format(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS, out, sizeof(out));
	assert_string_equal(out, "SUCCESS,DELAY");
	dsn_notify_format(DSN_NOTIFY_NEVER, out, sizeof(out));
	assert_string_equal(out, "NEVER");
	dsn_notify_format(0, out, sizeof(out));
	assert_string_equal(out, "");
}

static void
test_dsn_xtext_decode_only_when_safe(void **state)
{
	char out[64];
	assert_int_equal(dsn_xtext_decode("a+2Bb+3Dc", out, sizeof(out)), 0);
	assert_string_equal(out, "a+b=c");
	/* A CR LF would end the header field it is shown in. */
	assert_int_equal(dsn_xtext_decode("a+0D+0AInjected: x", out, sizeof(out)), -1);
	assert_int_equal(dsn_xtext_decode("toolong", out, 4), -1);
}

static void
make_env(struct spool_env *env)
{
	memset(env, 0, sizeof(*env));
	strcpy(env->id, "ABC123");
	env->from = strdup("sender@example.test");
	env->created = 1700000000;
}

static void
test_dsn_params_passed_on(void **state)
{
	struct spool_env env;
	char out[700];

	make_env(&env);
	spool_env_add_rcpt(&env, "plain@example.test");
	spool_env_add_rcpt_dsn(&env, "both@example.test", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
	    "rfc822;orig+2Bx@example.test");
	spool_env_add_rcpt_dsn(&env, "never@example.test", DSN_NOTIFY_NEVER, NULL);

	dsn_mail_params(&env, out, sizeof(out));
	assert_string_equal(out, "");
	env.ret = DSN_RET_HDRS;
	env.envid = strdup("QQ314159");
	dsn_mail_params(&env, out, sizeof(out));
	assert_string_equal(out, " RET=HDRS ENVID=QQ314159");
	env.ret = DSN_RET_FULL;
	dsn_mail_params(&env, out, sizeof(out));
	assert_string_equal(out, " RET=FULL ENVID=QQ314159");
	/* Too small for ENVID: it is left out whole, never cut. */
	dsn_mail_params(&env, out, 16);
	assert_string_equal(out, " RET=FULL");

	dsn_rcpt_params(&env, 0, out, sizeof(out));
	assert_string_equal(out, "");
	dsn_rcpt_params(&env, 1, out, sizeof(out));
	assert_string_equal(out, " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Bx@example.test");
	dsn_rcpt_params(&env, 2, out, sizeof(out));
	assert_string_equal(out, " NOTIFY=NEVER");
	dsn_rcpt_params(&env, 3, out, sizeof(out));	/* no such recipient */
	assert_string_equal(out, "");
	spool_env_free(&env);
}

static void
test_dsn_notify_decides_which_notices(void **state)
{
	struct spool_env env;

	make_env(&env);
	spool_env_add_rcpt(&env, "default@x");
	spool_env_add_rcpt_dsn(&env, "never@x", DSN_NOTIFY_NEVER, NULL);
	spool_env_add_rcpt_dsn(&env, "success@x", DSN_NOTIFY_SUCCESS, NULL);
	spool_env_add_rcpt_dsn(&env, "failure@x", DSN_NOTIFY_FAILURE, NULL);
	spool_env_add_rcpt_dsn(&env, "all@x", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE |
	    DSN_NOTIFY_DELAY, NULL);
	/* default, never, success, failure, all */
	const int failed[] = { 1, 0, 0, 1, 1 };
	const int delayed[] = { 1, 0, 0, 0, 1 };
	const int success[] = { 0, 0, 1, 0, 1 };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(dsn_wanted(&env, i, DSN_ACTION_FAILED), failed[i]);
		assert_int_equal(dsn_wanted(&env, i, DSN_ACTION_DELAYED), delayed[i]);
		assert_int_equal(dsn_wanted(&env, i, DSN_ACTION_DELIVERED), success[i]);
		assert_int_equal(dsn_wanted(&env, i, DSN_ACTION_RELAYED), success[i]);
	}
	spool_env_free(&env);
	/* An envelope built without the DSN arrays: as if nothing was given. */
	char *rcpts[] = { "a@x" };
	memset(&env, 0, sizeof(env));
	env.rcpts = rcpts;
	env.nrcpts = 1;
	assert_true(dsn_wanted(&env, 0, DSN_ACTION_FAILED));
	assert_false(dsn_wanted(&env, 0, DSN_ACTION_DELIVERED));
}

static void
assert_wellformed(const struct buf *out, size_t n, int utf8_text)
{
	const char *why = dsn_wellformed(out->data, out->len, n, utf8_text);
	if (why)
		fail_msg("DSN not well-formed: %s\n%.*s", why, (int)out->len, out->data);
}

/* A spooled message's content in a file, as dsn_build reads it. */
static int
content_fd(const char *content, size_t len)
{
	char path[] = "/tmp/mxd-dsn-test.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	return fd;
}

static const char *const CONTENT =
    "Subject: the original\r\nMessage-ID: <orig@example.test>\r\n\r\nthe body line\r\n";

/* The notice about a message of content[0..len), checked well-formed. */
static void
build_from(struct buf *out, struct spool_env *env, const struct dsn_rcpt *r, size_t n,
    const char *content, size_t len)
{
	int fd = content_fd(content, len);
	env->size = len;
	buf_init(out);
	dsn_build(out, "mx.example.test", env, r, n, fd, 0);
	close(fd);
	assert_wellformed(out, n, env->smtputf8);
}

static void
build(struct buf *out, struct spool_env *env, const struct dsn_rcpt *r, size_t n)
{
	build_from(out, env, r, n, CONTENT, strlen(CONTENT));
}

static void
test_dsn_failure_quotes_envid_and_orcpt_decoded(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.envid = strdup("QQ+2B314159");
	spool_env_add_rcpt_dsn(&env, "gone@example.test", DSN_NOTIFY_FAILURE,
	    "rfc822;first+2Blast@example.org");
	struct dsn_rcpt r = { "gone@example.test", "5.1.1", "sink.example.test",
	    "550 5.1.1 no such user", DSN_ACTION_FAILED, env.orcpt[0] };
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "Original-Envelope-Id: QQ+314159\r\n"));
	assert_non_null(strstr(out.data, "\r\nOriginal-Recipient: rfc822; first+last@example.org\r\n"
	    "Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\n"));
	/* No RET: the headers come back, as always. */
	assert_non_null(strstr(out.data, "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Subject: the original\r\nMessage-ID: <orig@example.test>\r\n"));
	assert_null(strstr(out.data, "the body line"));
	buf_free(&out);
	spool_env_free(&env);
}

static void
test_dsn_undecodable_values_stay_xtext(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.envid = strdup("a+0D+0AX-Injected:+20yes");
	spool_env_add_rcpt_dsn(&env, "gone@example.test", 0, "rfc822;x+0A@example.org");
	struct dsn_rcpt r = { "gone@example.test", "5.1.1", NULL, "550 5.1.1 no",
	    DSN_ACTION_FAILED, env.orcpt[0] };
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "Original-Envelope-Id: a+0D+0AX-Injected:+20yes\r\n"));
	assert_non_null(strstr(out.data, "Original-Recipient: rfc822; x+0A@example.org\r\n"));
	assert_null(strstr(out.data, "\r\nX-Injected"));
	buf_free(&out);
	spool_env_free(&env);
}

static void
test_dsn_ret_full_returns_the_whole_message(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.ret = DSN_RET_FULL;
	spool_env_add_rcpt(&env, "gone@example.test");
	struct dsn_rcpt r = { "gone@example.test", "5.1.1", NULL, "550 5.1.1 no",
	    DSN_ACTION_FAILED, NULL };
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "Content-Type: message/rfc822\r\n\r\n"
	    "Subject: the original\r\nMessage-ID: <orig@example.test>\r\n\r\nthe body line\r\n"));
	assert_null(strstr(out.data, "text/rfc822-headers"));
	buf_free(&out);

	/* RET=FULL concerns failures: a delay notice returns the headers. */
	r.action = DSN_ACTION_DELAYED;
	r.status = "4.4.1";
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "Action: delayed\r\n"));
	assert_non_null(strstr(out.data, "text/rfc822-headers"));
	assert_null(strstr(out.data, "the body line"));
	buf_free(&out);

	/* RET=HDRS: the headers only. */
	env.ret = DSN_RET_HDRS;
	r.action = DSN_ACTION_FAILED;
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "text/rfc822-headers"));
	assert_null(strstr(out.data, "the body line"));
	buf_free(&out);

	/* RFC 8689 5: a REQUIRETLS message's body never goes back in a notice
	 * that may travel without TLS, whatever RET says. */
	env.ret = DSN_RET_FULL;
	env.requiretls = 1;
	build(&out, &env, &r, 1);
	assert_non_null(strstr(out.data, "Action: failed\r\n"));
	assert_non_null(strstr(out.data, "text/rfc822-headers"));
	assert_non_null(strstr(out.data, "Subject: the original\r\n"));
	assert_null(strstr(out.data, "the body line"));
	buf_free(&out);
	spool_env_free(&env);
}

static void
test_dsn_success_notice_says_delivered_or_relayed(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.ret = DSN_RET_FULL;
	spool_env_add_rcpt_dsn(&env, "box@example.test", DSN_NOTIFY_SUCCESS, NULL);
	spool_env_add_rcpt_dsn(&env, "far@example.test", DSN_NOTIFY_SUCCESS, "rfc822;far@example.test");
	struct dsn_rcpt r[2] = {
		{ "box@example.test", "2.0.0", "localhost", "250 2.0.0 stored",
		    DSN_ACTION_DELIVERED, NULL },
		{ "far@example.test", "2.0.0", "next.example.test", "250 2.0.0 queued",
		    DSN_ACTION_RELAYED, env.orcpt[1] },
	};
	build(&out, &env, r, 2);
	assert_non_null(strstr(out.data, "Subject: Successful Mail Delivery Report\r\n"));
	assert_non_null(strstr(out.data, "Final-Recipient: rfc822; box@example.test\r\n"
	    "Action: delivered\r\nStatus: 2.0.0\r\n"));
	assert_non_null(strstr(out.data, "Original-Recipient: rfc822; far@example.test\r\n"
	    "Final-Recipient: rfc822; far@example.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
	    "Remote-MTA: dns; next.example.test\r\n"));
	/* Never the whole message in a success notice, RET=FULL or not. */
	assert_null(strstr(out.data, "the body line"));
	assert_null(strstr(out.data, "Undelivered"));
	buf_free(&out);
	spool_env_free(&env);
}

/* RFC 6533 3: an SMTPUTF8 address in message/delivery-status. */
static void
test_dsn_address_field_utf8_addr_xtext(void **state)
{
	static const struct {
		const char *addr, *want;
	} cases[] = {
		{ "user@example.test", "rfc822; user@example.test" },
		{ "a+b=c@example.test", "rfc822; a+b=c@example.test" },
		{ "j\xc3\xbcrgen@example.test", "utf-8; j\\x{FC}rgen@example.test" },
		{ "\xe5\xb1\xb1+x=y\\z@\xe4\xbe\x8b.test",
		    "utf-8; \\x{5C71}\\x{2B}x\\x{3D}y\\x{5C}z@\\x{4F8B}.test" },
		{ "\xf0\x9f\x93\xa7@example.test", "utf-8; \\x{1F4E7}@example.test" },
		/* Not UTF-8 (overlong, surrogate, cut short): byte by byte. */
		{ "\xc0\xafx@e", "utf-8; \\x{C0}\\x{AF}x@e" },
		{ "\xed\xa0\x80@e", "utf-8; \\x{ED}\\x{A0}\\x{80}@e" },
		{ "a\xe4\xbe", "utf-8; a\\x{E4}\\x{BE}" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out;
		buf_init(&out);
		dsn_address_field(&out, cases[i].addr);
		buf_appendc(&out, '\0');
		assert_string_equal(out.data, cases[i].want);
		buf_free(&out);
	}
}

/* The value of the first field "name" in out, unfolded as RFC 5322 2.2.3
 * says (every CRLF before white space removed), into a fresh string. */
static char *
field_unfolded(const struct buf *out, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "\r\n%s:", name);
	const char *p = strstr(out->data, key);
	assert_non_null(p);
	p += strlen(key);
	char *v = calloc(1, out->len + 1);
	size_t n = 0;
	for (; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n') {
			if (p[2] != ' ' && p[2] != '\t')
				break;
			p++;
			continue;
		}
		v[n++] = *p;
	}
	return v;
}

static void
repeat(struct buf *b, const char *s, int times)
{
	for (int i = 0; i < times; i++)
		buf_appends(b, s);
}

/* The longest line's length, without its CRLF. */
static size_t
longest_line(const struct buf *out)
{
	size_t max = 0, start = 0;
	for (size_t i = 0; i < out->len; i++)
		if (out->data[i] == '\n') {
			if (i - 1 - start > max)
				max = i - 1 - start;
			start = i + 1;
		}
	return max;
}

/* A failure notice about gone@example.test, refused with reply, for a
 * message of content[0..len). */
static void
build_refusal_of(struct buf *out, struct spool_env *env, const char *reply,
    const char *content, size_t len)
{
	spool_env_add_rcpt(env, "gone@example.test");
	struct dsn_rcpt r = { "gone@example.test", "5.1.1", "next.example.test", reply,
	    DSN_ACTION_FAILED, NULL };
	build_from(out, env, &r, 1, content, len);
}

static void
build_refusal(struct buf *out, struct spool_env *env, const char *reply)
{
	build_refusal_of(out, env, reply, CONTENT, strlen(CONTENT));
}

static void
test_dsn_diagnostic_code_strips_bare_cr(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	/* A next hop's reply with a bare CR: without care it ends the
	 * Diagnostic-Code field and the text line, and starts a field of its
	 * own ("X-Injected"). */
	build_refusal(&out, &env, "550-5.1.1 first\rX-Injected: yes\n550 5.1.1 second\r\r\n");
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] == '\r')
			assert_true(i + 1 < out.len && out.data[i + 1] == '\n');
	assert_null(strstr(out.data, "\nX-Injected"));
	char *diag = field_unfolded(&out, "Diagnostic-Code");
	assert_string_equal(diag, " smtp; 550-5.1.1 first\\x{0D}X-Injected: yes    550 5.1.1 second\\x{0D}");
	free(diag);
	assert_non_null(strstr(out.data, "\r\n    550-5.1.1 first\\x{0D}X-Injected: yes\r\n"));
	buf_free(&out);
	spool_env_free(&env);
}

static void
test_dsn_reply_control_characters_are_escaped(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	build_refusal(&out, &env, "550 5.1.1 bell\a esc\x1b[2J del\x7f vt\v ff\f");
	for (size_t i = 0; i < out.len; i++) {
		unsigned char c = (unsigned char)out.data[i];
		assert_true(c >= 0x20 || c == '\r' || c == '\n' || c == '\t');
		assert_true(c != 0x7f);
	}
	const char *want = "550 5.1.1 bell\\x{07} esc\\x{1B}[2J del\\x{7F} vt\\x{0B} ff\\x{0C}";
	char *diag = field_unfolded(&out, "Diagnostic-Code");
	assert_non_null(strstr(diag, want));
	free(diag);
	assert_non_null(strstr(out.data, want));	/* the text part too */
	buf_free(&out);
	spool_env_free(&env);
}

static void
test_dsn_lines_never_exceed_998_octets(void **state)
{
	struct spool_env env;
	struct buf out, reply, rcpt, mta;

	make_env(&env);
	buf_init(&reply);
	buf_init(&rcpt);
	buf_init(&mta);
	/* A reply line of 3000 octets without white space, and one of words. */
	buf_appends(&reply, "550-5.1.1 ");
	repeat(&reply, "x", 3000);
	buf_appends(&reply, "\n550 5.1.1");
	repeat(&reply, " word", 500);
	/* A recipient whose utf-8-addr-xtext is six times its length. */
	buf_appends(&rcpt, "\xc3\xa9");
	repeat(&rcpt, "+", 240);
	buf_appends(&rcpt, "@example.test");
	repeat(&mta, "abcdefghi.", 120);
	buf_appends(&mta, "test");
	spool_env_add_rcpt(&env, rcpt.data);
	struct dsn_rcpt r = { rcpt.data, "5.1.1", mta.data, reply.data, DSN_ACTION_FAILED, NULL };
	build(&out, &env, &r, 1);
	assert_true(longest_line(&out) <= 998);
	/* Folded where there is white space, so unfolding gives the words back. */
	char *diag = field_unfolded(&out, "Diagnostic-Code");
	assert_non_null(strstr(diag, reply.data + 3015));
	free(diag);
	/* Where there is none, cut between two characters, none lost. */
	char *fr = field_unfolded(&out, "Final-Recipient");
	size_t plus = 0;
	for (const char *p = fr; (p = strstr(p, "\\x{2B}")) != NULL; p++)
		plus++;
	assert_int_equal(plus, 240);
	free(fr);
	buf_free(&out);
	buf_free(&reply);
	buf_free(&rcpt);
	buf_free(&mta);
	spool_env_free(&env);
}

static void
test_dsn_returned_header_lines_fit_998_octets(void **state)
{
	struct spool_env env;
	struct buf out, content;

	make_env(&env);
	buf_init(&content);
	buf_appends(&content, "Subject: long");
	repeat(&content, " word", 400);
	buf_appends(&content, "\r\nX-Blob: ");
	repeat(&content, "b", 2500);
	buf_appends(&content, "\r\n\r\nbody\r\n");
	build_refusal_of(&out, &env, "550 5.1.1 no", content.data, content.len);
	assert_true(longest_line(&out) <= 998);
	assert_non_null(strstr(out.data, "Subject: long word word"));
	buf_free(&out);
	buf_free(&content);
	spool_env_free(&env);
}

static void
test_dsn_8bit_reply_is_escaped_in_an_ascii_dsn(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	build_refusal(&out, &env, "550 5.1.1 Empf\xc3\xa4nger unbekannt \xff");
	for (size_t i = 0; i < out.len; i++)
		assert_true((unsigned char)out.data[i] < 0x80);
	assert_non_null(strstr(out.data, "    550 5.1.1 Empf\\x{E4}nger unbekannt \\x{FF}\r\n"));
	char *diag = field_unfolded(&out, "Diagnostic-Code");
	assert_string_equal(diag, " smtp; 550 5.1.1 Empf\\x{E4}nger unbekannt \\x{FF}");
	free(diag);
	buf_free(&out);
	spool_env_free(&env);
}

/* RFC 6531/6533: a notice that travels as SMTPUTF8 may show a UTF-8 reply
 * in its text part (declared 8bit); the delivery-status stays ASCII. */
static void
test_dsn_utf8_reply_kept_in_the_text_of_an_smtputf8_dsn(void **state)
{
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.smtputf8 = 1;
	build_refusal(&out, &env, "550 5.1.1 Empf\xc3\xa4nger unbekannt \xff \xc2\x85");
	assert_non_null(strstr(out.data, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"));
	/* Not UTF-8, or a C1 control (NEL): escaped all the same. */
	assert_non_null(strstr(out.data, "    550 5.1.1 Empf\xc3\xa4nger unbekannt \\x{FF} \\x{85}\r\n"));
	char *diag = field_unfolded(&out, "Diagnostic-Code");
	assert_string_equal(diag, " smtp; 550 5.1.1 Empf\\x{E4}nger unbekannt \\x{FF} \\x{85}");
	free(diag);
	buf_free(&out);
	spool_env_free(&env);
}

static void
boundary_of(const struct buf *out, char *b, size_t bsz)
{
	const char *p = strstr(out->data, "boundary=\"");
	assert_non_null(p);
	p += 10;
	size_t n = strcspn(p, "\"");
	assert_true(n < bsz);
	memcpy(b, p, n);
	b[n] = '\0';
}

static void
test_dsn_boundary_is_unpredictable(void **state)
{
	struct spool_env env;
	struct buf a, b;
	char ba[80], bb[80];

	make_env(&env);
	build_refusal(&a, &env, "550 5.1.1 no");
	build_refusal(&b, &env, "550 5.1.1 no");
	boundary_of(&a, ba, sizeof(ba));
	boundary_of(&b, bb, sizeof(bb));
	/* Two notices about one message in one second: different boundaries,
	 * built from nothing a sender knows (queue id, time, host name). */
	assert_string_not_equal(ba, bb);
	assert_null(strstr(ba, env.id));
	assert_null(strstr(ba, "example"));
	assert_true(strlen(ba) >= 32);
	buf_free(&a);
	buf_free(&b);
	spool_env_free(&env);
}

/* The spool keeps what DATA brought, NUL included; mail must not carry
 * NUL (RFC 5322 2.3), so such a message comes back as its headers. */
static void
test_dsn_message_with_nul_comes_back_as_headers(void **state)
{
	static const char content[] = "Subject: nul\r\n\r\nbefore\0after\r\n";
	struct spool_env env;
	struct buf out;

	make_env(&env);
	env.ret = DSN_RET_FULL;
	build_refusal_of(&out, &env, "550 5.1.1 no", content, sizeof(content) - 1);
	assert_null(memchr(out.data, '\0', out.len));
	assert_non_null(strstr(out.data, "Content-Type: text/rfc822-headers\r\n\r\nSubject: nul\r\n"));
	buf_free(&out);
	spool_env_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dsn_quotes_every_reply_line),
		cmocka_unit_test(test_dsn_status_from_reply),
		cmocka_unit_test(test_dsn_xtext_envid_and_orcpt_syntax),
		cmocka_unit_test(test_dsn_notify_parse_and_format),
		cmocka_unit_test(test_dsn_xtext_decode_only_when_safe),
		cmocka_unit_test(test_dsn_params_passed_on),
		cmocka_unit_test(test_dsn_notify_decides_which_notices),
		cmocka_unit_test(test_dsn_failure_quotes_envid_and_orcpt_decoded),
		cmocka_unit_test(test_dsn_undecodable_values_stay_xtext),
		cmocka_unit_test(test_dsn_ret_full_returns_the_whole_message),
		cmocka_unit_test(test_dsn_success_notice_says_delivered_or_relayed),
		cmocka_unit_test(test_dsn_address_field_utf8_addr_xtext),
		cmocka_unit_test(test_dsn_diagnostic_code_strips_bare_cr),
		cmocka_unit_test(test_dsn_reply_control_characters_are_escaped),
		cmocka_unit_test(test_dsn_lines_never_exceed_998_octets),
		cmocka_unit_test(test_dsn_returned_header_lines_fit_998_octets),
		cmocka_unit_test(test_dsn_8bit_reply_is_escaped_in_an_ascii_dsn),
		cmocka_unit_test(test_dsn_utf8_reply_kept_in_the_text_of_an_smtputf8_dsn),
		cmocka_unit_test(test_dsn_boundary_is_unpredictable),
		cmocka_unit_test(test_dsn_message_with_nul_comes_back_as_headers),
	};
	return cmocka_run_group_tests_name("dsn", tests, NULL, NULL);
}
