/* controld/tlsrpt_mail.c: what the mail carrying a TLS report refuses to
 * write. No input (the rua address comes from someone else's DNS) can add
 * a header or a MIME part; the signing domain must be the reporting one.
 * The accepted mail itself is checked by tests/reports/test_report_mail.py
 * with python3-dkim and Python's email package. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim.h"
#include "tlsrpt_mail.h"
#include "../reports/tlsrpt_sample.h"

#define SENT	(DAY0 + 86400 + 600)

static struct dkim_key key;

static int
setup_key(void **state)
{
	char err[TLSRPT_ERR_MAX];

	(void)state;
	return dkim_key_generate(&key, err, sizeof(err));
}

static int
teardown_key(void **state)
{
	(void)state;
	dkim_key_free(&key);
	return 0;
}

static struct tlsrpt_mail
good_mail(void)
{
	return (struct tlsrpt_mail){ .from = "tlsrpt-noreply@mxfleet.example",
		.to = "tlsrpt@recipient.example", .submitter = "mxfleet.example",
		.policy_domain = "recipient.example", .nonce = 42, .now = SENT,
		.dkim_domain = "mxfleet.example", .dkim_selector = "mxf20240102",
		.dkim_key_pem = key.private_pem };
}

static void
assert_refused(const struct tlsrpt_report *r, const struct tlsrpt_mail *m, const char *why)
{
	char err[TLSRPT_ERR_MAX] = "", *out = (char *)1;
	size_t len = 7;

	assert_int_equal(tlsrpt_mail_compose(r, m, &out, &len, err, sizeof(err)), -1);
	assert_null(out);
	assert_int_equal(len, 0);
	if (strstr(err, why) == NULL)
		fail_msg("err \"%s\" does not say \"%s\"", err, why);
	assert_null(strchr(err, '\n'));
}

static void
test_good_mail_is_composed(void **state)
{
	struct tlsrpt_policy pols[3];
	struct tlsrpt_report r;
	struct tlsrpt_mail m = good_mail();
	char err[TLSRPT_ERR_MAX] = "", *out = NULL;
	size_t len = 0;

	(void)state;
	tlsrpt_sample_full(&r, pols);
	if (tlsrpt_mail_compose(&r, &m, &out, &len, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	assert_int_equal(strlen(out), len);
	assert_true(strncmp(out, "DKIM-Signature: ", 16) == 0);
	assert_non_null(strstr(out, "\r\nSubject: Report Domain: recipient.example "
	    "Submitter: mxfleet.example\r\n Report-ID: "
	    "<20240101.recipient.example@mxfleet.example>\r\n"));
	assert_non_null(strstr(out, "\r\nTLS-Required: No\r\n"));
	free(out);
}

/* Each input that lands in a header, with a CRLF and a header after it. */
static void
test_crlf_in_any_header_input_is_refused(void **state)
{
	static const char inj[] = "\r\nBcc: victim@elsewhere.example";
	struct tlsrpt_policy pols[3];
	struct tlsrpt_report r;
	struct tlsrpt_mail m;
	char buf[128];

	(void)state;
	tlsrpt_sample_full(&r, pols);
#define INJECT(field, base, why) do { \
		m = good_mail(); \
		snprintf(buf, sizeof(buf), "%s%s", base, inj); \
		m.field = buf; \
		assert_refused(&r, &m, why); \
	} while (0)
	INJECT(from, "tlsrpt@mxfleet.example", "From is not an address");
	INJECT(to, "tlsrpt@recipient.example", "To (the rua address) is not an address");
	INJECT(submitter, "mxfleet.example", "the submitter is not a domain name");
	INJECT(policy_domain, "recipient.example", "the policy domain is not a domain name");
	INJECT(message_id, "<a@mxfleet.example>", "Message-ID is not in <>");
	INJECT(dkim_domain, "mxfleet.example", "the DKIM domain is not a domain name");
	INJECT(dkim_selector, "s1", "s= (selector) holds byte 0x0d");
	INJECT(unique_id, "u1", "no RFC 8460 file name");
#undef INJECT
	m = good_mail();
	snprintf(buf, sizeof(buf), "20240101@mxfleet.example%s", inj);
	r.report_id = buf;
	assert_refused(&r, &m, "the report-id is not of the form left@right");
}

/* What a published rua or a caller might hold that is not a bare address. */
static void
test_addresses_that_are_not_bare_dot_atom_are_refused(void **state)
{
	static const char *const bad[] = {
		"Reports <tlsrpt@recipient.example>", "tlsrpt@recipient.example, x@y.example",
		"\"tls rpt\"@recipient.example", "tlsrpt@recipient.example (comment)",
		"tlsrpt@", "@recipient.example", "tls..rpt@recipient.example",
		"tlsrpt@-recipient.example", "tlsrpt@recipient..example",
		"tlsrpt@b\xc3\xbc" "cher.example", "tlsrpt@[192.0.2.1]", "",
	};
	struct tlsrpt_policy pols[3];
	struct tlsrpt_report r;
	struct tlsrpt_mail m = good_mail();

	(void)state;
	tlsrpt_sample_full(&r, pols);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.to = bad[i];
		assert_refused(&r, &m, "To (the rua address) is not an address");
	}
	m.to = NULL;
	assert_refused(&r, &m, "To (the rua address) is not an address");
}

/* RFC 8460 3: signed by the reporting domain. */
static void
test_dkim_domain_not_aligned_with_from_is_refused(void **state)
{
	struct tlsrpt_policy pols[3];
	struct tlsrpt_report r;
	struct tlsrpt_mail m = good_mail();

	(void)state;
	tlsrpt_sample_full(&r, pols);
	m.dkim_domain = "other.example";
	assert_refused(&r, &m, "the DKIM domain is neither From's domain nor a parent");
	m.from = "tlsrpt@evilmxfleet.example";
	m.dkim_domain = "mxfleet.example";
	assert_refused(&r, &m, "the DKIM domain is neither From's domain nor a parent");
	m = good_mail();
	m.dkim_key_pem = "not a key";
	assert_refused(&r, &m, "reading the private key");
}

static void
test_report_the_builder_refuses_is_refused(void **state)
{
	struct tlsrpt_policy pols[3];
	struct tlsrpt_report r;
	struct tlsrpt_mail m = good_mail();

	(void)state;
	tlsrpt_sample_full(&r, pols);
	r.report_id = NULL;
	assert_refused(&r, &m, "the report has no report-id");
	r.report_id = "no-at-sign";
	assert_refused(&r, &m, "the report-id is not of the form left@right");
	tlsrpt_sample_full(&r, pols);
	r.organization_name = NULL;
	assert_refused(&r, &m, "organization-name");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_mail_is_composed),
		cmocka_unit_test(test_crlf_in_any_header_input_is_refused),
		cmocka_unit_test(test_addresses_that_are_not_bare_dot_atom_are_refused),
		cmocka_unit_test(test_dkim_domain_not_aligned_with_from_is_refused),
		cmocka_unit_test(test_report_the_builder_refuses_is_refused),
	};

	return cmocka_run_group_tests(tests, setup_key, teardown_key);
}
