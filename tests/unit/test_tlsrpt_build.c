/* The TLS report we send (RFC 8460 4 with erratum 6241, 5.1): the exact
 * JSON a receiving domain gets, what is left out, what is refused and why,
 * the gzip it can gunzip, and the file name it sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "tlsrpt.h"
#include "../reports/tlsrpt_sample.h"

static const char want_sample[] =
	"{\"organization-name\":\"mxfleet.example\","
	"\"date-range\":{\"start-datetime\":\"2024-01-01T00:00:00Z\","
	"\"end-datetime\":\"2024-01-01T23:59:59Z\"},"
	"\"contact-info\":\"tlsrpt@mxfleet.example\","
	"\"report-id\":\"20240101.recipient.example@mxfleet.example\","
	"\"policies\":["
	"{\"policy\":{\"policy-type\":\"sts\","
	"\"policy-string\":[\"version: STSv1\",\"mode: enforce\","
	"\"mx: mx1.recipient.example\",\"max_age: 604800\"],"
	"\"policy-domain\":\"recipient.example\",\"mx-host\":[\"mx1.recipient.example\"]},"
	"\"summary\":{\"total-successful-session-count\":120,\"total-failure-session-count\":5},"
	"\"failure-details\":["
	"{\"result-type\":\"certificate-expired\",\"sending-mta-ip\":\"192.0.2.10\","
	"\"receiving-mx-hostname\":\"mx1.recipient.example\",\"receiving-ip\":\"198.51.100.7\","
	"\"failed-session-count\":3},"
	"{\"result-type\":\"validation-failure\",\"sending-mta-ip\":\"2001:db8::25\","
	"\"receiving-mx-hostname\":\"mx1.recipient.example\","
	"\"receiving-mx-helo\":\"mx1-helo.recipient.example\",\"receiving-ip\":\"198.51.100.7\","
	"\"failed-session-count\":2,\"additional-information\":\"https://mxfleet.example/tls/1\","
	"\"failure-reason-code\":\"X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY\"}]},"
	"{\"policy\":{\"policy-type\":\"tlsa\","
	"\"policy-string\":[\"3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6\"],"
	"\"policy-domain\":\"recipient.example\","
	"\"mx-host\":[\"mx1.recipient.example\",\"mx2.recipient.example\"]},"
	"\"summary\":{\"total-successful-session-count\":40,\"total-failure-session-count\":0}},"
	"{\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"other.example\"},"
	"\"summary\":{\"total-successful-session-count\":7,\"total-failure-session-count\":1},"
	"\"failure-details\":[{\"result-type\":\"starttls-not-supported\","
	"\"sending-mta-ip\":\"192.0.2.11\",\"receiving-mx-hostname\":\"mx.other.example\","
	"\"failed-session-count\":1}]}]}";

static char *
build_ok(const struct tlsrpt_report *r, size_t *len)
{
	char err[TLSRPT_ERR_MAX] = "";
	char *json = NULL;

	if (tlsrpt_build_json(r, &json, len, err, sizeof(err)) != 0)
		fail_msg("report refused: %s", err);
	assert_non_null(json);
	assert_int_equal(*len, strlen(json));
	return json;
}

static void
build_refused(const struct tlsrpt_report *r, const char *want)
{
	char err[TLSRPT_ERR_MAX] = "";
	char *json = (char *)1;
	size_t len = 1;

	if (tlsrpt_build_json(r, &json, &len, err, sizeof(err)) != -1)
		fail_msg("report accepted, wanted a refusal with \"%s\"", want);
	assert_null(json);
	assert_int_equal(len, 0);
	if (strstr(err, want) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err, want);
}

static void
test_report_is_the_rfc8460_json_byte_for_byte(void **state)
{
	struct tlsrpt_report r;
	struct tlsrpt_policy pols[3];
	size_t len;
	char *json;

	(void)state;
	tlsrpt_sample_full(&r, pols);
	json = build_ok(&r, &len);
	assert_string_equal(json, want_sample);
	free(json);
}

static void
test_two_builds_of_one_report_are_identical(void **state)
{
	struct tlsrpt_report r;
	struct tlsrpt_policy pols[3];
	size_t l1, l2;
	char *a, *b;

	(void)state;
	tlsrpt_sample_full(&r, pols);
	a = build_ok(&r, &l1);
	b = build_ok(&r, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(a, b, l1);
	free(a);
	free(b);
}

static void
test_empty_arrays_and_unset_fields_are_left_out_never_null(void **state)
{
	struct tlsrpt_failure f = { .result_type = "dnssec-invalid", .sending_mta_ip = "",
		.failed_session_count = 9 };
	struct tlsrpt_policy p = { .policy_type = "tlsa", .policy_domain = "d.example",
		.total_failure = 9, .failures = &f, .n_failures = 1 };
	struct tlsrpt_report r = { .organization_name = "o", .begin = DAY0,
		.end = DAY0 + 86400, .contact_info = "mailto:x@o.example", .report_id = "id1",
		.policies = &p, .n_policies = 1 };
	size_t len;
	char *json;

	(void)state;
	json = build_ok(&r, &len);
	assert_string_equal(json,
	    "{\"organization-name\":\"o\",\"date-range\":{\"start-datetime\":\"2024-01-01T00:00:00Z\","
	    "\"end-datetime\":\"2024-01-02T00:00:00Z\"},\"contact-info\":\"mailto:x@o.example\","
	    "\"report-id\":\"id1\",\"policies\":[{\"policy\":{\"policy-type\":\"tlsa\","
	    "\"policy-domain\":\"d.example\"},\"summary\":{\"total-successful-session-count\":0,"
	    "\"total-failure-session-count\":9},\"failure-details\":[{\"result-type\":"
	    "\"dnssec-invalid\",\"failed-session-count\":9}]}]}");
	assert_null(strstr(json, "null"));
	free(json);
}

static void
test_report_missing_a_required_member_is_refused(void **state)
{
	struct tlsrpt_report r;
	struct tlsrpt_policy pols[3];

	(void)state;
	tlsrpt_sample_full(&r, pols);
	r.organization_name = NULL;
	build_refused(&r, "organization-name");
	tlsrpt_sample_full(&r, pols);
	r.contact_info = NULL;
	build_refused(&r, "contact-info");
	tlsrpt_sample_full(&r, pols);
	r.report_id = "";
	build_refused(&r, "report-id");
	tlsrpt_sample_full(&r, pols);
	r.n_policies = 0;
	build_refused(&r, "no policies");
	tlsrpt_sample_full(&r, pols);
	r.end = r.begin;
	build_refused(&r, "not before end");
	tlsrpt_sample_full(&r, pols);
	r.begin = r.end + 1;
	build_refused(&r, "not before end");
}

static void
test_policy_or_failure_missing_a_required_member_is_refused(void **state)
{
	struct tlsrpt_report r;
	struct tlsrpt_policy pols[3];
	struct tlsrpt_failure f;
	char bad_utf8[] = "mx\xff.example";
	char *bad_mx[] = { bad_utf8 };

	(void)state;
	tlsrpt_sample_full(&r, pols);
	pols[1].policy_type = NULL;
	build_refused(&r, "policies[1]: no policy-type");
	tlsrpt_sample_full(&r, pols);
	pols[1].policy_type = "dane";
	build_refused(&r, "policies[1]: policy-type \"dane\"");
	tlsrpt_sample_full(&r, pols);
	pols[2].policy_domain = NULL;
	build_refused(&r, "policies[2]: no policy-domain");
	tlsrpt_sample_full(&r, pols);
	f = npf_failures[0];
	f.result_type = NULL;
	pols[2].failures = &f;
	build_refused(&r, "policies[2].failure-details[0]: no result-type");
	f.result_type = "tls-failed";
	build_refused(&r, "result-type \"tls-failed\" is not one of RFC 8460 4.3");
	tlsrpt_sample_full(&r, pols);
	pols[0].mx_host = bad_mx;
	build_refused(&r, "mx-host[0] is not valid UTF-8");
	tlsrpt_sample_full(&r, pols);
	pols[1].total_success = UINT64_MAX;
	build_refused(&r, "total-successful-session-count");
}

/* What a receiver does: gunzip (zlib with the gzip wrapper). */
static unsigned char *
gunzip(const unsigned char *gz, size_t gzlen, size_t want_len)
{
	z_stream zs;
	unsigned char *out = malloc(want_len + 1);

	assert_non_null(out);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)gz;
	zs.avail_in = (uInt)gzlen;
	zs.next_out = out;
	zs.avail_out = (uInt)want_len + 1;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(zs.total_out, want_len);
	assert_int_equal(zs.avail_in, 0);
	inflateEnd(&zs);
	return out;
}

static void
test_gzip_is_real_gzip_that_inflates_to_the_json(void **state)
{
	struct tlsrpt_report r;
	struct tlsrpt_policy pols[3];
	char err[TLSRPT_ERR_MAX] = "";
	unsigned char *gz, *gz2, *back;
	size_t len, gzlen, gzlen2;
	char *json;

	(void)state;
	tlsrpt_sample_full(&r, pols);
	json = build_ok(&r, &len);
	assert_int_equal(tlsrpt_gzip(json, len, &gz, &gzlen, err, sizeof(err)), 0);
	assert_true(gzlen > 18);
	assert_int_equal(gz[0], 0x1f);	/* RFC 1952 magic */
	assert_int_equal(gz[1], 0x8b);
	assert_int_equal(gz[2], 8);	/* deflate */
	back = gunzip(gz, gzlen, len);
	assert_memory_equal(back, json, len);
	assert_int_equal(tlsrpt_gzip(json, len, &gz2, &gzlen2, err, sizeof(err)), 0);
	assert_int_equal(gzlen, gzlen2);
	assert_memory_equal(gz, gz2, gzlen);
	free(back);
	free(gz);
	free(gz2);
	free(json);
}

static void
test_gzip_round_trips_empty_and_large_input(void **state)
{
	char err[TLSRPT_ERR_MAX] = "";
	size_t n = 3 * 1024 * 1024, gzlen;
	unsigned char *big = malloc(n), *gz, *back;
	uint32_t x = 12345;

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		big[i] = (unsigned char)(x >> 24);
	}
	assert_int_equal(tlsrpt_gzip(big, n, &gz, &gzlen, err, sizeof(err)), 0);
	back = gunzip(gz, gzlen, n);
	assert_memory_equal(back, big, n);
	free(back);
	free(gz);
	assert_int_equal(tlsrpt_gzip("", 0, &gz, &gzlen, err, sizeof(err)), 0);
	back = gunzip(gz, gzlen, 0);
	free(back);
	free(gz);
	free(big);
}

static void
test_filename_is_rfc8460_5_1(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(tlsrpt_filename("mxfleet.example", "recipient.example", DAY0,
	    DAY0 + 86400, NULL, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "mxfleet.example!recipient.example!1704067200!1704153600.json.gz");
	assert_int_equal(tlsrpt_filename("mxfleet.example", "recipient.example", DAY0,
	    DAY0 + 86400, "a1B2", 1, out, sizeof(out)), 0);
	assert_string_equal(out,
	    "mxfleet.example!recipient.example!1704067200!1704153600!a1B2.json.gz");
	assert_int_equal(tlsrpt_filename("mxfleet.example", "recipient.example", DAY0,
	    DAY0 + 86400, "7", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "mxfleet.example!recipient.example!1704067200!1704153600!7.json");
}

static void
filename_refused(const char *sub, const char *dom, time_t b, time_t e, const char *uid,
    size_t outlen)
{
	char out[256] = "junk";

	assert_true(outlen <= sizeof(out));
	if (tlsrpt_filename(sub, dom, b, e, uid, 1, out, outlen) != -1)
		fail_msg("accepted \"%s\"", out);
	if (outlen > 0)
		assert_string_equal(out, "");
}

static void
test_filename_refuses_what_is_not_a_safe_rfc_name(void **state)
{
	(void)state;
	filename_refused("evil!x", "recipient.example", DAY0, DAY0 + 1, NULL, 256);
	filename_refused("mxfleet.example", "../etc/passwd", DAY0, DAY0 + 1, NULL, 256);
	filename_refused("mxfleet.example", "a/b", DAY0, DAY0 + 1, NULL, 256);
	filename_refused("", "recipient.example", DAY0, DAY0 + 1, NULL, 256);
	filename_refused("mxfleet.example", NULL, DAY0, DAY0 + 1, NULL, 256);
	filename_refused("mxfleet.example", "recipient.example", DAY0, DAY0 + 1, "a-b", 256);
	filename_refused("mxfleet.example", "recipient.example", DAY0, DAY0 + 1, "", 256);
	filename_refused("mxfleet.example", "recipient.example", DAY0, DAY0, NULL, 256);
	filename_refused("mxfleet.example", "recipient.example", -5, DAY0, NULL, 256);
	/* 63 bytes and the NUL do not fit in 63 */
	filename_refused("mxfleet.example", "recipient.example", DAY0, DAY0 + 86400, NULL, 63);
	filename_refused("mxfleet.example", "recipient.example", DAY0, DAY0 + 86400, NULL, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_is_the_rfc8460_json_byte_for_byte),
		cmocka_unit_test(test_two_builds_of_one_report_are_identical),
		cmocka_unit_test(test_empty_arrays_and_unset_fields_are_left_out_never_null),
		cmocka_unit_test(test_report_missing_a_required_member_is_refused),
		cmocka_unit_test(test_policy_or_failure_missing_a_required_member_is_refused),
		cmocka_unit_test(test_gzip_is_real_gzip_that_inflates_to_the_json),
		cmocka_unit_test(test_gzip_round_trips_empty_and_large_input),
		cmocka_unit_test(test_filename_is_rfc8460_5_1),
		cmocka_unit_test(test_filename_refuses_what_is_not_a_safe_rfc_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
