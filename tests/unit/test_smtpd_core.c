/* The SMTP server's conversation without a socket (mxd/smtpd/smtpd_core.c): what a
 * client sees for pipelined commands, DATA and BDAT split anywhere, spool
 * failures, STARTTLS and the session limits. Driven by the scripted peer of
 * tests/fuzz/smtpd_fake.h, which also checks its invariants on every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtpd_fake.h"

static struct mxd_config *cfg;

#define ENVELOPE "EHLO c.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"

static void
play(struct smtpd_fake *f, const char *in, const uint8_t *fate, size_t nfate,
    const uint8_t *chunks, size_t nchunks)
{
	smtpd_fake_init(f, cfg, 0, 1, fate, nfate);
	smtpd_fake_play(f, in, strlen(in), chunks, nchunks);
	buf_appendc(&f->replies, '\0');
}

/* The envelope, one BDAT chunk of n copies of line, then tail: a string. */
static char *
big_bdat(struct buf *in, const char *line, int n, const char *tail)
{
	buf_init(in);
	buf_printf(in, ENVELOPE "BDAT %zu\r\n", strlen(line) * (size_t)n);
	for (int i = 0; i < n; i++)
		buf_appends(in, line);
	buf_appends(in, tail);
	buf_appendc(in, '\0');
	return in->data;
}

/* The final reply lines' codes, in order: "250 250 354 250". */
static char *
codes(const struct smtpd_fake *f)
{
	static char out[4096];
	size_t n = 0;
	const char *p = f->replies.data;
	out[0] = '\0';
	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		if (p[3] == ' ' && n + 5 < sizeof(out)) {
			memcpy(out + n, p, 3);
			n += 3;
			out[n++] = ' ';
			out[n] = '\0';
		}
		p = eol ? eol + 2 : NULL;
	}
	if (n)
		out[n - 1] = '\0';
	return out;
}

static void
test_pipelined_commands_are_answered_in_order(void **state)
{
	struct smtpd_fake f;
	play(&f, ENVELOPE "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nNOOP\r\nQUIT\r\n", NULL, 0,
	    NULL, 0);
	assert_string_equal(codes(&f), "250 250 250 354 250 250 221");
	assert_int_equal(f.ncommitted, 1);
	assert_true(f.closed);
	smtpd_fake_free(&f);
}

static void
test_end_of_data_is_answered_only_once_the_commit_succeeded(void **state)
{
	struct smtpd_fake f;
	const char *in = ENVELOPE "DATA\r\nhi\r\n.\r\nNOOP\r\n";
	size_t used, off = 0;

	smtpd_fake_init(&f, cfg, 0, 1, NULL, 0);
	while (smtpd_core_feed(f.core, in + off, strlen(in) - off, &used))
		off += used;
	assert_int_equal(f.info->phase, SMTPD_PHASE_COMMIT);
	assert_true(f.commit_pending);
	assert_null(strstr(f.replies.data, "queued"));
	/* The NOOP pipelined behind the dot waits for the commit. */
	assert_string_equal(in + off, "NOOP\r\n");
	smtpd_core_commit_done(f.core, 0, "Q1");
	buf_appendc(&f.replies, '\0');
	assert_non_null(strstr(f.replies.data, "250 2.0.0 Ok: queued as Q1\r\n"));
	assert_int_equal(f.info->messages, 1);
	smtpd_fake_free(&f);
}

static void
test_failed_commit_is_answered_451_not_250(void **state)
{
	static const uint8_t commit_fails[] = { SMTPD_FAKE_COMMIT_FAILS };
	struct smtpd_fake f;
	play(&f, ENVELOPE "DATA\r\nhi\r\n.\r\n", commit_fails, 1, NULL, 0);
	assert_string_equal(codes(&f), "250 250 250 354 451");
	assert_int_equal(f.ncommitted, 0);
	assert_int_equal(f.info->messages, 0);
	smtpd_fake_free(&f);
}

static void
test_spool_errors_are_temporary_failures_never_250_or_5xx(void **state)
{
	/* begin fails with ENOSPC, finish with EIO (bit 3: ENOSPC). */
	static const uint8_t fates[] = { SMTPD_FAKE_BEGIN_FAILS | 8, SMTPD_FAKE_FINISH_FAILS };
	struct smtpd_fake f;
	play(&f, ENVELOPE "DATA\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
	    "DATA\r\nhi\r\n.\r\n", fates, 2, NULL, 0);
	/* Refused at DATA (no 354; the transaction stays open, so the second
	 * MAIL is nested), then at the end of the message. */
	assert_string_equal(codes(&f), "250 250 250 452 503 250 354 451");
	assert_non_null(strstr(f.replies.data, "452 4.3.1 Insufficient system storage\r\n"));
	assert_int_equal(f.ncommitted, 0);
	smtpd_fake_free(&f);
}

static void
test_write_error_mid_message_is_reported_at_its_end(void **state)
{
	static const uint8_t write_fails[] = { SMTPD_FAKE_WRITE_FAILS | 8 };
	static const uint8_t chunks[] = { 200 };
	struct buf in;
	struct smtpd_fake f;
	/* 77000 bytes: more than the core buffers, so it writes mid-chunk. */
	play(&f, big_bdat(&in, "012345678\r\n", 7000, "BDAT 2 LAST\r\n\r\nNOOP\r\n"),
	    write_fails, 1, chunks, 1);
	buf_free(&in);
	/* The chunk is acknowledged; the message is refused at LAST, 452. */
	assert_string_equal(codes(&f), "250 250 250 250 452 250");
	assert_int_equal(f.ncommitted, 0);
	smtpd_fake_free(&f);
}

static void
test_bdat_chunks_split_anywhere_give_one_message(void **state)
{
	static const uint8_t bytewise[] = { 0 };
	const char *in = ENVELOPE "BDAT 5\r\nhi\r\nxBDAT 0\r\nBDAT 3 LAST\r\nyz\n";
	struct smtpd_fake whole, split;
	play(&whole, in, NULL, 0, NULL, 0);
	play(&split, in, NULL, 0, bytewise, 1);
	/* A bare LF in the last chunk: refused, whole or byte by byte. */
	assert_string_equal(codes(&whole), "250 250 250 250 250 550");
	assert_string_equal(codes(&whole), codes(&split));
	smtpd_fake_free(&whole);
	smtpd_fake_free(&split);

	in = ENVELOPE "BDAT 5\r\nhi\r\nxBDAT 4 LAST\r\nyz\r\n";
	play(&whole, in, NULL, 0, NULL, 0);
	play(&split, in, NULL, 0, bytewise, 1);
	assert_string_equal(codes(&whole), "250 250 250 250 250");
	assert_int_equal(whole.ncommitted, 1);
	assert_int_equal(split.ncommitted, 1);
	assert_int_equal(whole.committed.len, split.committed.len);
	assert_memory_equal(whole.committed.data, split.committed.data, whole.committed.len);
	assert_non_null(memmem(whole.committed.data, whole.committed.len, "hi\r\nxyz\r\n", 9));
	smtpd_fake_free(&whole);
	smtpd_fake_free(&split);
}

static void
test_bdat_message_ending_in_crlf_is_not_extended_after_a_spool_write(void **state)
{
	struct buf in;
	struct smtpd_fake f;
	/* A chunk ending in CRLF, just big enough to be written out as a
	 * whole; then LAST arrives empty. */
	play(&f, big_bdat(&in, "0123456789abcd\r\n", 4096, "BDAT 0 LAST\r\n"), NULL, 0, NULL, 0);
	buf_free(&in);
	assert_string_equal(codes(&f), "250 250 250 250 250");
	assert_int_equal(f.ncommitted, 1);
	/* committed: Received header, the content, then the "\0" separator. */
	assert_true(f.committed.len > 65536 + 1);
	/* It ends as sent (the literal's NUL is the separator). */
	assert_memory_equal(f.committed.data + f.committed.len - 18, "\n0123456789abcd\r\n", 18);
	smtpd_fake_free(&f);
}

static void
test_starttls_forgets_helo_transaction_and_pipelined_commands(void **state)
{
	struct smtpd_fake f;
	play(&f, "EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<evil@example.test>\r\n", NULL, 0,
	    NULL, 0);
	assert_string_equal(codes(&f), "250 220");
	assert_int_equal(f.starttls, 1);
	assert_true(f.discarded > 0);	/* the pipelined MAIL was never read */
	assert_string_equal(f.info->helo, "");
	assert_int_equal(f.info->in_txn, 0);
	/* After the handshake the client starts over: MAIL before EHLO is refused. */
	size_t used;
	size_t r0 = f.replies.len;
	assert_int_equal(smtpd_core_feed(f.core, "MAIL FROM:<a@example.test>\r\n", 28, &used), 1);
	assert_int_equal(used, 28);
	assert_non_null(memmem(f.replies.data + r0, f.replies.len - r0,
	    "503 5.5.1 Error: send HELO/EHLO first", 37));
	smtpd_fake_free(&f);
}

static void
test_junk_commands_past_the_limit_end_the_session_with_421(void **state)
{
	struct buf in;
	struct smtpd_fake f;
	buf_init(&in);
	for (int i = 0; i < cfg->junk_commands + 5; i++)
		buf_appends(&in, "NOOP\r\n");
	buf_appendc(&in, '\0');
	play(&f, in.data, NULL, 0, NULL, 0);
	buf_free(&in);
	assert_true(f.closed);
	assert_int_equal(f.info->junk, cfg->junk_commands + 1);
	assert_non_null(strstr(f.replies.data, "421 4.7.0 mx.unit.test Error: too many junk commands"));
	smtpd_fake_free(&f);
}

static void
test_accepted_message_forgives_junk_commands(void **state)
{
	struct buf in;
	struct smtpd_fake f;
	buf_init(&in);
	for (int m = 0; m < 3; m++) {
		for (int i = 0; i < cfg->junk_commands - 2; i++)
			buf_appends(&in, "RSET\r\n");
		buf_appends(&in, ENVELOPE "DATA\r\nhi\r\n.\r\n");
	}
	buf_appendc(&in, '\0');
	play(&f, in.data, NULL, 0, NULL, 0);
	buf_free(&in);
	assert_false(f.closed);
	assert_int_equal(f.ncommitted, 3);
	smtpd_fake_free(&f);
}

static void
test_overlong_line_is_answered_500_once_and_the_session_goes_on(void **state)
{
	static const uint8_t chunks[] = { 99 };
	struct buf in;
	struct smtpd_fake f;
	buf_init(&in);
	buf_appends(&in, "EHLO ");
	for (int i = 0; i < 5000; i++)
		buf_appendc(&in, 'a');
	buf_appends(&in, "\r\nNOOP\r\n");
	buf_appendc(&in, '\0');
	play(&f, in.data, NULL, 0, chunks, 1);
	buf_free(&in);
	assert_string_equal(codes(&f), "500 250");
	assert_int_equal(f.info->errors, 1);
	smtpd_fake_free(&f);
}

static void
test_errors_past_the_limit_end_the_session_with_421(void **state)
{
	struct smtpd_fake f;
	play(&f, "FOO\r\nFOO\r\nFOO\r\nNOOP\r\n", NULL, 0, NULL, 0);
	/* The third error is answered, then the session ends. */
	assert_string_equal(codes(&f), "502 502 502 421");
	assert_true(f.closed);
	smtpd_fake_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_commands_are_answered_in_order),
		cmocka_unit_test(test_end_of_data_is_answered_only_once_the_commit_succeeded),
		cmocka_unit_test(test_failed_commit_is_answered_451_not_250),
		cmocka_unit_test(test_spool_errors_are_temporary_failures_never_250_or_5xx),
		cmocka_unit_test(test_write_error_mid_message_is_reported_at_its_end),
		cmocka_unit_test(test_bdat_chunks_split_anywhere_give_one_message),
		cmocka_unit_test(test_bdat_message_ending_in_crlf_is_not_extended_after_a_spool_write),
		cmocka_unit_test(test_starttls_forgets_helo_transaction_and_pipelined_commands),
		cmocka_unit_test(test_junk_commands_past_the_limit_end_the_session_with_421),
		cmocka_unit_test(test_accepted_message_forgives_junk_commands),
		cmocka_unit_test(test_overlong_line_is_answered_500_once_and_the_session_goes_on),
		cmocka_unit_test(test_errors_past_the_limit_end_the_session_with_421),
	};
	log_init("test_smtpd_core", LOG_LEVEL_ERROR, 0);
	cfg = smtpd_fake_config(
	    "hostname = \"mx.unit.test\";\n"
	    "domains = ( { name = \"example.test\"; next_hop = \"smtp:[192.0.2.25]:25\"; } );\n"
	    "tls = { certificates = ( { cert = \"/nonexistent.pem\"; key = \"/nonexistent.key\"; } ); };\n"
	    "limits = { errors = 3; junk_commands = 10; };\n");
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	mxd_config_free(cfg);
	return rc;
}
