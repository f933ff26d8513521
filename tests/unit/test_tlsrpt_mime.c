/* The report inside a received TLS report mail (controld/tlsrpt_mime.c):
 * the forms senders send (RFC 8460 5.3 multipart/report, nested, generic
 * types with a report file name, the whole message as the report, LF line
 * ends, quoted-printable) are read, and malformed mail is refused with a
 * reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "tlsrpt_mime.h"
#include "xmalloc.h"

#define JSON	"{\"organization-name\":\"Example\",\"report-id\":\"r1\"}"
/* base64 of JSON, in two lines as a mailer folds it */
#define JSON_B64 "eyJvcmdhbml6YXRpb24tbmFtZSI6IkV4YW1wbGUiLCJyZXBvcnQt\r\n" \
	"aWQiOiJyMSJ9\r\n"

static const char rfc8460_mail[] =
	"From: tlsrpt@mail.sender.example\r\n"
	"Date: Fri, 04 Dec 2026 01:23:45 +0000\r\n"
	"Subject: Report Domain: example.net\r\n"
	"  Submitter: mail.sender.example\r\n"
	"  Report-ID: <2026.12.04T00.00.00Z+example.net@mail.sender.example>\r\n"
	"TLS-Report-Domain: example.net\r\n"
	"TLS-Report-Submitter: mail.sender.example\r\n"
	"Message-ID: <r1@mail.sender.example>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	"\tboundary=\"----=_Part_1\"\r\n"
	"\r\n"
	"This is a multipart message in MIME format.\r\n"
	"\r\n"
	"------=_Part_1\r\n"
	"Content-Type: text/plain; charset=\"us-ascii\"\r\n"
	"\r\n"
	"This is an aggregate TLS report from mail.sender.example\r\n"
	"\r\n"
	"------=_Part_1\r\n"
	"Content-Type: application/tlsrpt+gzip\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"Content-Disposition: attachment;\r\n"
	"\tfilename=\"mail.sender.example!example.net!1764806400!1764892799.json.gz\"\r\n"
	"\r\n"
	JSON_B64
	"------=_Part_1--\r\n"
	"epilogue\r\n";

static void
extract_ok(const char *msg, size_t len, struct tlsrpt_mime *m)
{
	char err[TLSRPT_MIME_ERR_MAX];

	if (tlsrpt_mime_extract(msg, len, m, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
}

static void
extract_fails(const char *msg, size_t len, const char *why)
{
	char err[TLSRPT_MIME_ERR_MAX];
	struct tlsrpt_mime m;

	assert_int_equal(tlsrpt_mime_extract(msg, len, &m, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, why);
	assert_null(m.report);
	assert_null(m.from);
}

static void
assert_report(const struct tlsrpt_mime *m, const char *type, const char *bytes)
{
	assert_string_equal(m->content_type, type);
	assert_int_equal(m->report_len, strlen(bytes));
	assert_memory_equal(m->report, bytes, m->report_len);
}

static void
test_rfc8460_multipart_report_gives_the_decoded_part_and_headers(void **state)
{
	struct tlsrpt_mime m;
	(void)state;

	extract_ok(rfc8460_mail, sizeof(rfc8460_mail) - 1, &m);
	assert_report(&m, "application/tlsrpt+gzip", JSON);
	assert_string_equal(m.from, "tlsrpt@mail.sender.example");
	assert_string_equal(m.message_id, "<r1@mail.sender.example>");
	assert_string_equal(m.subject, "Report Domain: example.net Submitter: mail.sender.example "
	    "Report-ID: <2026.12.04T00.00.00Z+example.net@mail.sender.example>");
	assert_string_equal(m.report_domain, "example.net");
	assert_string_equal(m.report_submitter, "mail.sender.example");
	tlsrpt_mime_free(&m);
}

static char *
replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	assert_non_null(at);
	struct buf b;
	buf_init(&b);
	buf_append(&b, s, (size_t)(at - s));
	buf_append(&b, to, strlen(to));
	buf_append(&b, at + strlen(from), strlen(at + strlen(from)));
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static void
test_lf_line_ends_and_missing_close_delimiter_are_read(void **state)
{
	struct tlsrpt_mime m;
	struct buf b;
	(void)state;

	buf_init(&b);
	for (const char *p = rfc8460_mail; *p; p++)
		if (*p != '\r')
			buf_append(&b, p, 1);
	char *lf = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	char *cut = replace(lf, "------=_Part_1--\nepilogue\n", "");
	extract_ok(cut, strlen(cut), &m);
	assert_report(&m, "application/tlsrpt+gzip", JSON);
	assert_string_equal(m.report_domain, "example.net");
	tlsrpt_mime_free(&m);
	free(cut);
	free(lf);
}

static void
test_nested_multipart_and_generic_type_with_report_file_name(void **state)
{
	static const char msg[] =
		"From: a@b.example\r\n"
		"Content-Type: multipart/mixed; boundary=outer\r\n"
		"\r\n"
		"--outer\r\n"
		"Content-Type: multipart/report; report-type=tlsrpt; boundary=\"inner\"\r\n"
		"\r\n"
		"--inner\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"hello\r\n"
		"--inner\r\n"
		"Content-Type: application/octet-stream; name=\"x!y!1!2.json.gz\"\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		JSON_B64
		"--inner--\r\n"
		"--outer--\r\n";
	struct tlsrpt_mime m;
	(void)state;

	extract_ok(msg, sizeof(msg) - 1, &m);
	assert_report(&m, "application/octet-stream", JSON);
	assert_null(m.report_domain);
	tlsrpt_mime_free(&m);
}

static void
test_whole_message_json_and_quoted_printable(void **state)
{
	static const char single[] =
		"From: a@b.example\r\n"
		"Content-Type: application/tlsrpt+json\r\n"
		"\r\n"
		JSON;
	static const char qp[] =
		"From: a@b.example\r\n"
		"Content-Type: application/json\r\n"
		"Content-Disposition: attachment; filename=report.json\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"{\"organization-name\"=3A\"Exam=\r\n"
		"ple\",\"report-id\":\"r1\"}";
	struct tlsrpt_mime m;
	(void)state;

	extract_ok(single, sizeof(single) - 1, &m);
	assert_report(&m, "application/tlsrpt+json", JSON);
	tlsrpt_mime_free(&m);
	extract_ok(qp, sizeof(qp) - 1, &m);
	assert_report(&m, "application/json", JSON);
	tlsrpt_mime_free(&m);
}

/* RFC 2046 5.1.1: a body part may be headers alone, or nothing; a ';'
 * inside a quoted parameter value is not a separator. */
static void
test_empty_parts_and_quoted_semicolons_are_read(void **state)
{
	static const char msg[] =
		"From: a@b.example\r\n"
		"Content-Type: multipart/report; report-type=\"x; boundary=evil\"; boundary=\"real\"\r\n"
		"\r\n"
		"--real\r\n"
		"--real\r\n"
		"Content-Type: text/plain\r\n"
		"--real\r\n"
		"Content-Type: application/tlsrpt+json\r\n"
		"\r\n"
		JSON "\r\n"
		"--real--\r\n";
	struct tlsrpt_mime m;
	(void)state;

	extract_ok(msg, sizeof(msg) - 1, &m);
	assert_report(&m, "application/tlsrpt+json", JSON);
	tlsrpt_mime_free(&m);
}

static void
test_mail_without_a_report_or_with_two_is_refused(void **state)
{
	static const char plain[] = "From: a@b.example\r\nSubject: hi\r\n\r\nno report here\r\n";
	static const char generic[] =
		"From: a@b.example\r\n"
		"Content-Type: application/octet-stream; name=\"invoice.pdf\"\r\n"
		"\r\n"
		"%PDF";
	(void)state;

	extract_fails(plain, sizeof(plain) - 1, "no report part");
	extract_fails(generic, sizeof(generic) - 1, "no report part");
	char *two = replace(rfc8460_mail, "Content-Type: text/plain; charset=\"us-ascii\"\r\n",
	    "Content-Type: application/tlsrpt+json\r\n");
	extract_fails(two, strlen(two), "more than one report part");
	free(two);
}

static void
test_bad_encodings_and_structure_are_refused(void **state)
{
	static const char noend[] = "From: a@b.example\r\nContent-Type: text/plain\r\n";
	static const char noboundary[] =
		"From: a@b.example\r\nContent-Type: multipart/report\r\n\r\nbody\r\n";
	(void)state;

	char *bad64 = replace(rfc8460_mail, "aWQiOiJyMSJ9", "aWQi*OiJyMSJ9");
	extract_fails(bad64, strlen(bad64), "base64 does not decode");
	free(bad64);
	char *cte = replace(rfc8460_mail, "Transfer-Encoding: base64", "Transfer-Encoding: x-uue");
	extract_fails(cte, strlen(cte), "unknown transfer encoding \"x-uue\"");
	free(cte);
	extract_fails(noend, sizeof(noend) - 1, "has no end");
	extract_fails(noboundary, sizeof(noboundary) - 1, "without a usable boundary");
}

static void
test_deep_nesting_and_too_many_parts_are_refused(void **state)
{
	struct buf b;
	(void)state;

	/* TLSRPT_MIME_DEPTH + 1 multiparts inside each other. */
	buf_init(&b);
	buf_append(&b, "From: a@b.example\r\n", 19);
	for (int i = 0; i <= TLSRPT_MIME_DEPTH + 1; i++) {
		char line[128];
		int n = snprintf(line, sizeof(line),
		    "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
		buf_append(&b, line, (size_t)n);
	}
	buf_append(&b, "Content-Type: application/tlsrpt+json\r\n\r\n" JSON "\r\n",
	    strlen("Content-Type: application/tlsrpt+json\r\n\r\n" JSON "\r\n"));
	extract_fails((const char *)b.data, b.len, "nested deeper than");
	buf_free(&b);

	buf_init(&b);
	const char *head = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n";
	buf_append(&b, head, strlen(head));
	for (int i = 0; i < TLSRPT_MIME_PARTS + 1; i++)
		buf_append(&b, "--x\r\nContent-Type: text/plain\r\n\r\nx\r\n",
		    strlen("--x\r\nContent-Type: text/plain\r\n\r\nx\r\n"));
	buf_append(&b, "--x--\r\n", 7);
	extract_fails((const char *)b.data, b.len, "more than 64 parts");
	buf_free(&b);
}

static void
test_header_text_is_one_clean_line(void **state)
{
	static const char msg[] =
		"From: \"A\x01\" <a@b.example>\r\n"
		"TLS-Report-Domain: bad\xff\xfe" "domain\r\n"
		"Subject: caf\xc3\xa9\r\n"
		"Content-Type: application/tlsrpt+json\r\n"
		"\r\n"
		JSON;
	struct tlsrpt_mime m;
	(void)state;

	extract_ok(msg, sizeof(msg) - 1, &m);
	assert_string_equal(m.from, "\"A \" <a@b.example>");
	assert_string_equal(m.report_domain, "bad??domain");
	assert_string_equal(m.subject, "caf\xc3\xa9");
	tlsrpt_mime_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8460_multipart_report_gives_the_decoded_part_and_headers),
		cmocka_unit_test(test_lf_line_ends_and_missing_close_delimiter_are_read),
		cmocka_unit_test(test_nested_multipart_and_generic_type_with_report_file_name),
		cmocka_unit_test(test_whole_message_json_and_quoted_printable),
		cmocka_unit_test(test_empty_parts_and_quoted_semicolons_are_read),
		cmocka_unit_test(test_mail_without_a_report_or_with_two_is_refused),
		cmocka_unit_test(test_bad_encodings_and_structure_are_refused),
		cmocka_unit_test(test_deep_nesting_and_too_many_parts_are_refused),
		cmocka_unit_test(test_header_text_is_one_clean_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
