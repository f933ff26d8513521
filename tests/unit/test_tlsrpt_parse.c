/* Reading the TLS reports other domains send us (RFC 8460 4, tlsrpt.h):
 * what real senders write is read, hostile input is refused with a reason
 * that names the place, and nothing is kept from a refused report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <cmocka.h>
#include <zlib.h>

#include "tlsrpt.h"
#include "xmalloc.h"

#define DAY_2024_10_23	1729641600
#define DAY_2024_10_24	1729728000
#define DAY_2024_01_01	1704067200

/* Microsoft's reports of 23 and 24 October 2024 to ueber.net, as the
 * receiving domain got them: no mx-host, the TLSA records as one string
 * holding a JSON array, failure details without sending-mta-ip. */
#define MS_TLSA_POLICY \
	"{\"policy\":{\"policy-type\":\"tlsa\",\"policy-string\":[" \
	"\"[\\\"3 1 1 5C046FF012891B5F0D6176024C5C25FF486A7C12B8000FDF8B418AB3ECF6D309\\\"," \
	"\\\"3 1 1 CEC87FB33D2A7499CA78E824E59B77531AC1FDEC7378FC81FCE7E5D213A364AB\\\"]\"]," \
	"\"policy-domain\":\"ueber.net\"},"
#define MS_STS_POLICY \
	"{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\"," \
	"\"mode: enforce\",\"mx: mail.axillis.nl\",\"max_age: 604800\"]," \
	"\"policy-domain\":\"ueber.net\"},"

static const char ms_good[] =
	"{\n\"organization-name\": \"Microsoft Corporation\",\n"
	"\"date-range\": {\n\"start-datetime\": \"2024-10-23T00:00:00Z\",\n"
	"\"end-datetime\": \"2024-10-23T23:59:59Z\"\n},\n"
	"\"contact-info\": \"tlsrpt-noreply@microsoft.com\",\n"
	"\"report-id\": \"133742711803146449+ueber.net\",\n"
	"\"policies\": [\n" MS_TLSA_POLICY
	"\"summary\":{\"total-successful-session-count\":7,\"total-failure-session-count\":0}},\n"
	MS_STS_POLICY
	"\"summary\":{\"total-successful-session-count\":7,\"total-failure-session-count\":0}}\n"
	"]\n}\n";

static const char ms_failing[] =
	"{\n\"organization-name\": \"Microsoft Corporation\",\n"
	"\"date-range\": {\n\"start-datetime\": \"2024-10-24T00:00:00Z\",\n"
	"\"end-datetime\": \"2024-10-24T23:59:59Z\"\n},\n"
	"\"contact-info\": \"tlsrpt-noreply@microsoft.com\",\n"
	"\"report-id\": \"133743605086584199+ueber.net\",\n"
	"\"policies\": [\n" MS_TLSA_POLICY
	"\"summary\":{\"total-successful-session-count\":2,\"total-failure-session-count\":0}},\n"
	MS_STS_POLICY
	"\"summary\":{\"total-successful-session-count\":2,\"total-failure-session-count\":6},\n"
	"\"failure-details\":[\n"
	"{\"result-type\":\"validation-failure\",\"receiving-mx-hostname\":\"mail.axillis.nl\","
	"\"receiving-ip\":\"2a02:2770:12:0:21a:4aff:fee0:fa47\",\"failed-session-count\":3,"
	"\"failure-reason-code\":\"VALIDATION_FAILURE\"},\n"
	"{\"result-type\":\"validation-failure\",\"receiving-mx-hostname\":\"mail.axillis.nl\","
	"\"receiving-ip\":\"84.22.96.237\",\"failed-session-count\":3,"
	"\"failure-reason-code\":\"VALIDATION_FAILURE\"}\n"
	"]}\n]\n}\n";

/* Google's layout: mx-host arrays, a report-id made of the date and the
 * policy domain, sending-mta-ip in the failure details. */
static const char google[] =
	"{\"organization-name\":\"Google Inc.\","
	"\"date-range\":{\"start-datetime\":\"2024-01-01T00:00:00Z\","
	"\"end-datetime\":\"2024-01-01T23:59:59Z\"},"
	"\"contact-info\":\"smtp-tls-reporting@google.com\","
	"\"report-id\":\"2024-01-01T00:00:00Z_example.com\","
	"\"policies\":[{\"policy\":{\"policy-type\":\"sts\","
	"\"policy-string\":[\"version: STSv1\",\"mode: enforce\",\"mx: mx1.example.com\","
	"\"mx: mx2.example.com\",\"max_age: 86400\"],"
	"\"policy-domain\":\"example.com\",\"mx-host\":[\"mx1.example.com\",\"mx2.example.com\"]},"
	"\"summary\":{\"total-successful-session-count\":1024,\"total-failure-session-count\":3},"
	"\"failure-details\":[{\"result-type\":\"certificate-host-mismatch\","
	"\"sending-mta-ip\":\"209.85.220.41\",\"receiving-mx-hostname\":\"mx2.example.com\","
	"\"receiving-ip\":\"192.0.2.25\",\"failed-session-count\":3}]},"
	"{\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"example.org\"},"
	"\"summary\":{\"total-successful-session-count\":5,\"total-failure-session-count\":0}}]}";

/* ---- helpers ---------------------------------------------------------- */

static unsigned char *
gz(const void *data, size_t len, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, len);
	unsigned char *out = malloc(cap);
	assert_non_null(out);
	z.next_in = (unsigned char *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* A reason is one printable line that fits in TLSRPT_ERR_MAX. */
static void
assert_reason_is_a_line(const char *err)
{
	size_t n = strlen(err);
	if (n == 0 || n >= TLSRPT_ERR_MAX)
		fail_msg("reason of %zu bytes", n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			fail_msg("reason \"%s\" holds byte 0x%02x", err, (unsigned char)err[i]);
}

static void
parse_ok_lim(const void *data, size_t len, const struct tlsrpt_parse_limits *lim,
    struct tlsrpt_report *r)
{
	char err[TLSRPT_ERR_MAX] = "";
	int rc = tlsrpt_parse(data, len, lim, r, err, sizeof(err));
	if (rc != TLSRPT_PARSE_OK)
		fail_msg("refused (%d): %s", rc, err);
}

static void
parse_ok(const void *data, size_t len, struct tlsrpt_report *r)
{
	parse_ok_lim(data, len, NULL, r);
}

static void
parse_bad_lim(const void *data, size_t len, const struct tlsrpt_parse_limits *lim,
    int want_rc, const char *want)
{
	struct tlsrpt_report r, zero;
	char err[TLSRPT_ERR_MAX] = "";

	memset(&r, 0x5a, sizeof(r));
	memset(&zero, 0, sizeof(zero));
	int rc = tlsrpt_parse(data, len, lim, &r, err, sizeof(err));
	if (rc != want_rc)
		fail_msg("%.60s: got %d, wanted %d (%s)", (const char *)data, rc, want_rc, err);
	assert_memory_equal(&r, &zero, sizeof(r));
	assert_reason_is_a_line(err);
	if (strstr(err, want) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err, want);
}

static void
parse_bad(const char *json, int want_rc, const char *want)
{
	parse_bad_lim(json, strlen(json), NULL, want_rc, want);
}

/* A report of one policy whose date-range and policy members are given. */
static char *
report_with(const char *range, const char *policy)
{
	static char buf[1 << 20];
	int n = snprintf(buf, sizeof(buf),
	    "{\"organization-name\":\"Example\",\"report-id\":\"r1\",\"date-range\":%s,"
	    "\"policies\":[%s]}", range, policy);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

#define RANGE_OK	"{\"start-datetime\":\"2024-10-24T00:00:00Z\"," \
			"\"end-datetime\":\"2024-10-24T23:59:59Z\"}"
#define SUMMARY_OK	"\"summary\":{\"total-successful-session-count\":1," \
			"\"total-failure-session-count\":0}"

static char *
policy_with(const char *policy_members, const char *rest)
{
	static char buf[1 << 20];
	int n = snprintf(buf, sizeof(buf), "{\"policy\":{\"policy-type\":\"sts\"%s%s}%s}",
	    policy_members[0] ? "," : "", policy_members, rest);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	return report_with(RANGE_OK, buf);
}

/* ---- what real senders send ------------------------------------------- */

static void
check_ms_failing(const struct tlsrpt_report *r)
{
	assert_string_equal(r->organization_name, "Microsoft Corporation");
	assert_int_equal(r->begin, DAY_2024_10_24);
	assert_int_equal(r->end, DAY_2024_10_24 + 86399);
	assert_string_equal(r->contact_info, "tlsrpt-noreply@microsoft.com");
	assert_string_equal(r->report_id, "133743605086584199+ueber.net");
	assert_int_equal(r->n_policies, 2);

	const struct tlsrpt_policy *tlsa = &r->policies[0];
	assert_string_equal(tlsa->policy_type, "tlsa");
	assert_int_equal(tlsa->n_policy_string, 1);
	assert_string_equal(tlsa->policy_string[0],
	    "[\"3 1 1 5C046FF012891B5F0D6176024C5C25FF486A7C12B8000FDF8B418AB3ECF6D309\","
	    "\"3 1 1 CEC87FB33D2A7499CA78E824E59B77531AC1FDEC7378FC81FCE7E5D213A364AB\"]");
	assert_string_equal(tlsa->policy_domain, "ueber.net");
	assert_null(tlsa->mx_host);
	assert_int_equal(tlsa->n_mx_host, 0);
	assert_int_equal(tlsa->total_success, 2);
	assert_int_equal(tlsa->total_failure, 0);
	assert_null(tlsa->failures);
	assert_int_equal(tlsa->n_failures, 0);

	const struct tlsrpt_policy *sts = &r->policies[1];
	assert_string_equal(sts->policy_type, "sts");
	assert_int_equal(sts->n_policy_string, 4);
	assert_string_equal(sts->policy_string[2], "mx: mail.axillis.nl");
	assert_int_equal(sts->n_mx_host, 0);
	assert_int_equal(sts->total_success, 2);
	assert_int_equal(sts->total_failure, 6);
	assert_int_equal(sts->n_failures, 2);
	const struct tlsrpt_failure *f = &sts->failures[1];
	assert_string_equal(f->result_type, "validation-failure");
	assert_null(f->sending_mta_ip);
	assert_string_equal(f->receiving_mx_hostname, "mail.axillis.nl");
	assert_null(f->receiving_mx_helo);
	assert_string_equal(f->receiving_ip, "84.22.96.237");
	assert_null(f->additional_information);
	assert_string_equal(f->failure_reason_code, "VALIDATION_FAILURE");
	assert_int_equal(f->failed_session_count, 3);
	assert_string_equal(sts->failures[0].receiving_ip, "2a02:2770:12:0:21a:4aff:fee0:fa47");
}

static void
test_reads_microsofts_reports_without_mx_host(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	parse_ok(ms_failing, strlen(ms_failing), &r);
	check_ms_failing(&r);
	tlsrpt_report_free(&r);

	parse_ok(ms_good, strlen(ms_good), &r);
	assert_int_equal(r.begin, DAY_2024_10_23);
	assert_int_equal(r.policies[1].total_success, 7);
	assert_int_equal(r.policies[1].n_failures, 0);
	tlsrpt_report_free(&r);
}

static void
parse_gz_ok(const char *json, struct tlsrpt_report *r)
{
	size_t n;
	unsigned char *z = gz(json, strlen(json), &n);
	parse_ok(z, n, r);
	free(z);
}

static void
test_reads_gzipped_reports_as_mailed(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	parse_gz_ok(ms_failing, &r);
	check_ms_failing(&r);
	tlsrpt_report_free(&r);

	parse_gz_ok(ms_good, &r);
	assert_string_equal(r.report_id, "133742711803146449+ueber.net");
	tlsrpt_report_free(&r);
}

static void
test_reads_googles_layout_with_mx_host_arrays(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	parse_gz_ok(google, &r);
	assert_string_equal(r.organization_name, "Google Inc.");
	assert_string_equal(r.contact_info, "smtp-tls-reporting@google.com");
	assert_string_equal(r.report_id, "2024-01-01T00:00:00Z_example.com");
	assert_int_equal(r.begin, DAY_2024_01_01);
	assert_int_equal(r.end, DAY_2024_01_01 + 86399);
	assert_int_equal(r.n_policies, 2);
	const struct tlsrpt_policy *p = &r.policies[0];
	assert_int_equal(p->n_policy_string, 5);
	assert_string_equal(p->policy_string[4], "max_age: 86400");
	assert_int_equal(p->n_mx_host, 2);
	assert_string_equal(p->mx_host[0], "mx1.example.com");
	assert_string_equal(p->mx_host[1], "mx2.example.com");
	assert_int_equal(p->total_success, 1024);
	assert_int_equal(p->n_failures, 1);
	assert_string_equal(p->failures[0].result_type, "certificate-host-mismatch");
	assert_string_equal(p->failures[0].sending_mta_ip, "209.85.220.41");
	assert_string_equal(p->failures[0].receiving_ip, "192.0.2.25");
	assert_null(p->failures[0].failure_reason_code);
	assert_string_equal(r.policies[1].policy_type, "no-policy-found");
	assert_string_equal(r.policies[1].policy_domain, "example.org");
	assert_null(r.policies[1].policy_string);
	assert_int_equal(r.policies[1].n_policy_string, 0);
	tlsrpt_report_free(&r);
}

static void
test_mx_host_may_be_a_single_string(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	const char *j = policy_with("\"mx-host\":\"*.mail.example.com\"", "," SUMMARY_OK);
	parse_ok(j, strlen(j), &r);
	assert_int_equal(r.policies[0].n_mx_host, 1);
	assert_string_equal(r.policies[0].mx_host[0], "*.mail.example.com");
	tlsrpt_report_free(&r);

	j = policy_with("\"mx-host\":[]", "," SUMMARY_OK);
	parse_ok(j, strlen(j), &r);
	assert_int_equal(r.policies[0].n_mx_host, 0);
	assert_null(r.policies[0].mx_host);
	tlsrpt_report_free(&r);
}

static void
test_policy_fetch_errors_need_no_addresses(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	const char *j = policy_with("\"policy-domain\":\"example.com\"",
	    ",\"summary\":{\"total-successful-session-count\":0,\"total-failure-session-count\":4},"
	    "\"failure-details\":[{\"result-type\":\"sts-policy-fetch-error\","
	    "\"failed-session-count\":4,\"additional-information\":"
	    "\"https://mta-sts.example.com/.well-known/mta-sts.txt\"}]");
	parse_ok(j, strlen(j), &r);
	const struct tlsrpt_failure *f = &r.policies[0].failures[0];
	assert_string_equal(f->result_type, "sts-policy-fetch-error");
	assert_null(f->sending_mta_ip);
	assert_null(f->receiving_ip);
	assert_null(f->receiving_mx_hostname);
	assert_string_equal(f->additional_information,
	    "https://mta-sts.example.com/.well-known/mta-sts.txt");
	assert_int_equal(f->failed_session_count, 4);
	assert_int_equal(r.policies[0].total_failure, 4);
	tlsrpt_report_free(&r);
}

static time_t
begin_of(const char *start)
{
	char range[256];
	struct tlsrpt_report r;
	snprintf(range, sizeof(range),
	    "{\"start-datetime\":\"%s\",\"end-datetime\":\"2030-01-01T00:00:00Z\"}", start);
	const char *j = report_with(range, "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK "}");
	parse_ok(j, strlen(j), &r);
	time_t t = r.begin;
	tlsrpt_report_free(&r);
	return t;
}

static void
test_date_times_without_zone_are_utc_and_offsets_apply(void **state)
{
	(void)state;
	assert_int_equal(begin_of("2024-10-24T00:00:00Z"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T00:00:00"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T02:00:00+02:00"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-23T19:30:00-04:30"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T05:30:00+0530"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24t00:00:00z"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24 00:00:00Z"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T00:00:00.000Z"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T00:00:00.9999999+00:00"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-10-24T00:00:00.5"), DAY_2024_10_24);
	assert_int_equal(begin_of("2024-02-29T00:00:00Z"), 1709164800);
	assert_int_equal(begin_of("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(begin_of("2000-03-01T00:00:00Z"), 951868800);
}

static void
test_refuses_date_times_that_are_not_dates(void **state)
{
	static const char *bad[] = {
		"", "2024-10-24", "2024-10-24T00:00Z", "24-10-24T00:00:00Z",
		"2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2023-02-29T00:00:00Z",
		"2024-04-31T00:00:00Z", "2024-10-24T24:00:00Z", "2024-10-24T00:60:00Z",
		"2024-10-24T00:00:61Z", "2024-10-24T00:00:00.Z", "2024-10-24T00:00:00+2:00",
		"2024-10-24T00:00:00+24:00", "2024-10-24T00:00:00Z junk", "2024-1O-24T00:00:00Z",
		"+2024-10-24T00:00:00Z", "2024-10-24T00:00:00+02:00:00",
	};
	char range[256];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(range, sizeof(range),
		    "{\"start-datetime\":\"%s\",\"end-datetime\":\"2030-01-01T00:00:00Z\"}", bad[i]);
		parse_bad(report_with(range, "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK "}"),
		    TLSRPT_PARSE_SHAPE, "date-range.start-datetime: ");
	}
	parse_bad(report_with("{\"start-datetime\":1729728000,\"end-datetime\":\"2030-01-01T00:00:00Z\"}",
	    "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK "}"),
	    TLSRPT_PARSE_SHAPE, "date-range.start-datetime: not a string");
	parse_bad(report_with("{\"start-datetime\":\"2024-10-24T00:00:00Z\"}",
	    "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK "}"),
	    TLSRPT_PARSE_SHAPE, "date-range.end-datetime: missing");
	parse_bad(report_with("{\"start-datetime\":\"2024-10-24T00:00:00Z\","
	    "\"end-datetime\":\"2024-10-23T23:59:59Z\"}",
	    "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK "}"),
	    TLSRPT_PARSE_SHAPE, "date-range: end-datetime before start-datetime");
	parse_bad("{\"policies\":[]}", TLSRPT_PARSE_SHAPE, "date-range: missing");
}

static void
test_counts_may_be_numbers_in_strings(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	const char *j = policy_with("",
	    ",\"summary\":{\"total-successful-session-count\":\"1024\","
	    "\"total-failure-session-count\":\"007\"},"
	    "\"failure-details\":[{\"result-type\":\"starttls-not-supported\","
	    "\"failed-session-count\":\"9223372036854775807\"},"
	    "{\"result-type\":\"certificate-expired\",\"failed-session-count\":5.0}]");
	parse_ok(j, strlen(j), &r);
	assert_int_equal(r.policies[0].total_success, 1024);
	assert_int_equal(r.policies[0].total_failure, 7);
	assert_true(r.policies[0].failures[0].failed_session_count == INT64_MAX);
	assert_int_equal(r.policies[0].failures[1].failed_session_count, 5);
	tlsrpt_report_free(&r);
}

static void
test_absent_and_null_optional_members_are_left_out(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	/* contact-info absent, or not a string, is dropped (tlsrpt.h). */
	const char *j = "{\"date-range\":" RANGE_OK ",\"contact-info\":[\"a@example.com\"],"
	    "\"policies\":[{\"policy\":{\"policy-type\":\"tlsa\",\"mx-host\":null,"
	    "\"policy-string\":null,\"policy-domain\":null}," SUMMARY_OK
	    ",\"failure-details\":null}]}";
	parse_ok(j, strlen(j), &r);
	assert_null(r.organization_name);
	assert_null(r.contact_info);
	assert_null(r.report_id);
	assert_int_equal(r.n_policies, 1);
	assert_null(r.policies[0].policy_domain);
	assert_null(r.policies[0].mx_host);
	assert_null(r.policies[0].policy_string);
	assert_null(r.policies[0].failures);
	tlsrpt_report_free(&r);

	j = "{\"date-range\":" RANGE_OK ",\"contact-info\":42,\"policies\":[]}";
	parse_ok(j, strlen(j), &r);
	assert_null(r.contact_info);
	assert_int_equal(r.n_policies, 0);
	assert_null(r.policies);
	tlsrpt_report_free(&r);
}

static void
test_unknown_members_are_ignored(void **state)
{
	struct tlsrpt_report r;
	char deep[4200];
	(void)state;

	/* A thousand levels of nesting in a member we do not read. */
	size_t n = 0;
	for (int i = 0; i < 1000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 1000; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	char *j = malloc(8192);
	assert_non_null(j);
	snprintf(j, 8192, "{\"x-vendor\":{\"a\":[1,2,{}]},\"deep\":%s,\"nul\":\"a\\u0000b\","
	    "\"date-range\":{\"start-datetime\":\"2024-10-24T00:00:00Z\",\"tz\":\"CET\","
	    "\"end-datetime\":\"2024-10-24T23:59:59Z\"},"
	    "\"policies\":[{\"policy\":{\"policy-type\":\"sts\",\"policy-version\":2},"
	    "\"summary\":{\"total-successful-session-count\":1,\"total-failure-session-count\":1,"
	    "\"total-sessions\":2},\"extra\":true,\"failure-details\":[{\"result-type\":"
	    "\"validation-failure\",\"failed-session-count\":1,\"x\":null}]}]}", deep);
	parse_ok(j, strlen(j), &r);
	assert_int_equal(r.begin, DAY_2024_10_24);
	assert_int_equal(r.policies[0].total_failure, 1);
	assert_int_equal(r.policies[0].n_failures, 1);
	tlsrpt_report_free(&r);
	free(j);
}

static void
test_bom_and_surrounding_whitespace_are_skipped(void **state)
{
	struct tlsrpt_report r;
	size_t len = strlen(ms_failing), n;
	char *j = malloc(len + 16);
	(void)state;

	assert_non_null(j);
	memcpy(j, "\xef\xbb\xbf \r\n\t", 7);
	memcpy(j + 7, ms_failing, len);
	memcpy(j + 7 + len, " \r\n", 3);
	parse_ok(j, len + 10, &r);
	check_ms_failing(&r);
	tlsrpt_report_free(&r);

	unsigned char *z = gz(j, len + 10, &n);
	parse_ok(z, n, &r);
	check_ms_failing(&r);
	tlsrpt_report_free(&r);
	free(z);
	free(j);
}

/* ---- hostile input ---------------------------------------------------- */

static void
test_refuses_truncated_or_corrupt_gzip(void **state)
{
	size_t n;
	(void)state;

	unsigned char *z = gz(ms_failing, strlen(ms_failing), &n);
	for (size_t cut = 2; cut < n; cut++)
		parse_bad_lim(z, cut, NULL, TLSRPT_PARSE_GZIP, "gzip");
	parse_bad_lim(z, 2, NULL, TLSRPT_PARSE_GZIP, "truncated");
	parse_bad_lim(z, n - 1, NULL, TLSRPT_PARSE_GZIP, "truncated");

	/* A flipped bit in the CRC-32 of the trailer. */
	z[n - 6] ^= 0x01;
	parse_bad_lim(z, n, NULL, TLSRPT_PARSE_GZIP, "gzip");
	z[n - 6] ^= 0x01;
	/* A flipped compression method in the header. */
	z[2] = 7;
	parse_bad_lim(z, n, NULL, TLSRPT_PARSE_GZIP, "gzip");
	free(z);
}

static void
test_concatenated_gzip_members_are_joined_trailing_garbage_refused(void **state)
{
	struct tlsrpt_report r;
	size_t len = strlen(ms_failing), half = len / 2, n1, n2;
	(void)state;

	unsigned char *a = gz(ms_failing, half, &n1);
	unsigned char *b = gz(ms_failing + half, len - half, &n2);
	unsigned char *both = malloc(n1 + n2 + 8);
	assert_non_null(both);
	memcpy(both, a, n1);
	memcpy(both + n1, b, n2);
	parse_ok(both, n1 + n2, &r);
	check_ms_failing(&r);
	tlsrpt_report_free(&r);

	memcpy(both + n1 + n2, "\n", 1);
	parse_bad_lim(both, n1 + n2 + 1, NULL, TLSRPT_PARSE_GZIP, "trailing");
	memcpy(both + n1 + n2, "\0\0\0\0", 4);
	parse_bad_lim(both, n1 + n2 + 4, NULL, TLSRPT_PARSE_GZIP, "trailing");
	/* Half a report is not a report. */
	parse_bad_lim(a, n1, NULL, TLSRPT_PARSE_JSON, "not JSON");
	free(a);
	free(b);
	free(both);
}

static long
max_rss_kib(void)
{
	struct rusage ru;
	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

static void
test_zip_bomb_stops_at_the_inflated_cap(void **state)
{
	static unsigned char zeros[1 << 20];
	size_t cap = 1 << 20, n = 0;
	unsigned char *bomb = malloc(cap);
	z_stream z;
	(void)state;

	/* 100 MiB of zeros, gzipped into about 100 KiB without ever holding
	 * the 100 MiB. */
	assert_non_null(bomb);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_out = bomb;
	z.avail_out = (uInt)cap;
	for (int i = 0; i < 100; i++) {
		z.next_in = zeros;
		z.avail_in = sizeof(zeros);
		assert_int_equal(deflate(&z, i == 99 ? Z_FINISH : Z_NO_FLUSH), i == 99 ? Z_STREAM_END : Z_OK);
		assert_int_equal(z.avail_in, 0);
	}
	n = cap - z.avail_out;
	deflateEnd(&z);
	assert_true(n < 200 * 1024);

	long before = max_rss_kib();
	clock_t t0 = clock();
	parse_bad_lim(bomb, n, NULL, TLSRPT_PARSE_TOO_BIG, "over the limit of 4194304 bytes");
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	long grown = max_rss_kib() - before;
	/* 4 MiB of output at most, well short of the 100 MiB inflated, and no
	 * time spent inflating the other 96 MiB. */
	if (grown > 32 * 1024)
		fail_msg("resident set grew by %ld KiB", grown);
	if (secs > 5.0)
		fail_msg("took %.1f s", secs);

	struct tlsrpt_parse_limits lim = { .max_inflated = 1000 };
	parse_bad_lim(bomb, n, &lim, TLSRPT_PARSE_TOO_BIG, "over the limit of 1000 bytes");
	free(bomb);
}

static void
test_inflated_size_limit_is_exact(void **state)
{
	struct tlsrpt_report r;
	size_t len = strlen(ms_failing), n;
	struct tlsrpt_parse_limits lim = { .max_inflated = len };
	(void)state;

	parse_ok_lim(ms_failing, len, &lim, &r);
	tlsrpt_report_free(&r);
	unsigned char *z = gz(ms_failing, len, &n);
	parse_ok_lim(z, n, &lim, &r);
	tlsrpt_report_free(&r);

	lim.max_inflated = len - 1;
	parse_bad_lim(ms_failing, len, &lim, TLSRPT_PARSE_TOO_BIG, "over the limit");
	parse_bad_lim(z, n, &lim, TLSRPT_PARSE_TOO_BIG, "over the limit");
	free(z);
}

static void
test_refuses_what_is_not_json(void **state)
{
	(void)state;
	parse_bad("", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("   ", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("not json", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{\"policies\":[1,2}", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{\"a\":1}{\"b\":2}", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{\"a\":\"\x01\x02\x7f\"}", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{\"a\":\"\xc3\x28\"}", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("\xef\xbb\xbf", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("\x1f", TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("\x01\x02\x03\x80\xff garbage", TLSRPT_PARSE_JSON, "not JSON");
	/* Which total would count is not ours to guess. */
	parse_bad("{\"a\":1,\"a\":2}", TLSRPT_PARSE_JSON, "duplicate");
	/* A raw NUL byte is not JSON. */
	parse_bad_lim("{\"a\":\"x\0y\"}", 11, NULL, TLSRPT_PARSE_JSON, "not JSON");
	parse_bad("{\"a\":1e400}", TLSRPT_PARSE_JSON, "not JSON");
}

static void
test_refuses_wrong_shapes_naming_the_path(void **state)
{
	(void)state;
	parse_bad("[]", TLSRPT_PARSE_SHAPE, "not a JSON object");
	parse_bad("{\"date-range\":" RANGE_OK "}", TLSRPT_PARSE_SHAPE, "policies: missing");
	parse_bad("{\"date-range\":" RANGE_OK ",\"policies\":{}}", TLSRPT_PARSE_SHAPE,
	    "policies: not an array");
	parse_bad("{\"date-range\":[],\"policies\":[]}", TLSRPT_PARSE_SHAPE,
	    "date-range: not an object");
	parse_bad(report_with(RANGE_OK, "{\"policy\":{\"policy-type\":\"sts\"}," SUMMARY_OK
	    "},\"sts\""), TLSRPT_PARSE_SHAPE, "policies[1]: not an object");
	parse_bad(report_with(RANGE_OK, "{" SUMMARY_OK "}"), TLSRPT_PARSE_SHAPE,
	    "policies[0].policy: missing");
	parse_bad(report_with(RANGE_OK, "{\"policy\":{}," SUMMARY_OK "}"), TLSRPT_PARSE_SHAPE,
	    "policies[0].policy.policy-type: missing");
	parse_bad(report_with(RANGE_OK, "{\"policy\":{\"policy-type\":null}," SUMMARY_OK "}"),
	    TLSRPT_PARSE_SHAPE, "policies[0].policy.policy-type: missing");
	parse_bad(report_with(RANGE_OK, "{\"policy\":{\"policy-type\":1}," SUMMARY_OK "}"),
	    TLSRPT_PARSE_SHAPE, "policies[0].policy.policy-type: not a string");
	parse_bad(policy_with("", ""), TLSRPT_PARSE_SHAPE, "policies[0].summary: missing");
	parse_bad(policy_with("", ",\"summary\":7"), TLSRPT_PARSE_SHAPE,
	    "policies[0].summary: not an object");
	parse_bad(policy_with("", ",\"summary\":{\"total-successful-session-count\":1}"),
	    TLSRPT_PARSE_SHAPE, "policies[0].summary.total-failure-session-count: missing");
	parse_bad(policy_with("\"mx-host\":[\"a.example\",7]", "," SUMMARY_OK),
	    TLSRPT_PARSE_SHAPE, "policies[0].policy.mx-host[1]: not a string");
	parse_bad(policy_with("\"policy-string\":{}", "," SUMMARY_OK), TLSRPT_PARSE_SHAPE,
	    "policies[0].policy.policy-string: not a string or an array");
	parse_bad(policy_with("", "," SUMMARY_OK ",\"failure-details\":{}"), TLSRPT_PARSE_SHAPE,
	    "policies[0].failure-details: not an array");
	parse_bad(policy_with("", "," SUMMARY_OK ",\"failure-details\":[{\"result-type\":"
	    "\"validation-failure\",\"failed-session-count\":1},{\"failed-session-count\":1}]"),
	    TLSRPT_PARSE_SHAPE, "policies[0].failure-details[1].result-type: missing");
	parse_bad(policy_with("", "," SUMMARY_OK ",\"failure-details\":[{\"result-type\":"
	    "\"validation-failure\"}]"),
	    TLSRPT_PARSE_SHAPE, "policies[0].failure-details[0].failed-session-count: missing");
	parse_bad(policy_with("", "," SUMMARY_OK ",\"failure-details\":[{\"result-type\":"
	    "\"validation-failure\",\"failed-session-count\":1,\"receiving-ip\":[]}]"),
	    TLSRPT_PARSE_SHAPE, "policies[0].failure-details[0].receiving-ip: not a string");
	parse_bad("{\"organization-name\":{},\"date-range\":" RANGE_OK ",\"policies\":[]}",
	    TLSRPT_PARSE_SHAPE, "organization-name: not a string");
	parse_bad("{\"report-id\":42,\"date-range\":" RANGE_OK ",\"policies\":[]}",
	    TLSRPT_PARSE_SHAPE, "report-id: not a string");
}

static void
bad_count(const char *value, const char *want)
{
	char summary[256], path_want[256];
	snprintf(summary, sizeof(summary), ",\"summary\":{\"total-successful-session-count\":1,"
	    "\"total-failure-session-count\":%s}", value);
	snprintf(path_want, sizeof(path_want),
	    "policies[0].summary.total-failure-session-count: %s", want);
	parse_bad(policy_with("", summary), TLSRPT_PARSE_SHAPE, path_want);
}

static void
test_refuses_counts_that_are_negative_or_not_integers(void **state)
{
	(void)state;
	bad_count("-3", "negative");
	bad_count("\"-3\"", "negative");
	bad_count("-0.5", "negative");
	bad_count("3.5", "not an integer");
	bad_count("1e19", "not an integer");
	bad_count("\"3.0\"", "not an integer");
	bad_count("\"\"", "not an integer");
	bad_count("\" 3\"", "not an integer");
	bad_count("\"3 \"", "not an integer");
	bad_count("\"0x10\"", "not an integer");
	bad_count("\"9223372036854775808\"", "not an integer");
	bad_count("\"99999999999999999999999\"", "not an integer");
	bad_count("true", "not an integer");
	bad_count("null", "missing");
	bad_count("[3]", "not an integer");
	/* The reason shows a bounded prefix of what was sent. */
	bad_count("\"1234567890123456789012345678901234567890123456789012345678901234567890\"",
	    "not an integer");
}

static char *
array_of(size_t n, const char *elem)
{
	size_t el = strlen(elem), len = n * (el + 1) + 3;
	char *s = malloc(len);
	assert_non_null(s);
	size_t o = 0;
	s[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			s[o++] = ',';
		memcpy(s + o, elem, el);
		o += el;
	}
	s[o++] = ']';
	s[o] = '\0';
	return s;
}

static void
test_refuses_arrays_over_the_limits(void **state)
{
	struct tlsrpt_report r;
	char *a, *j, *p;
	(void)state;

	/* Defaults: 1000 policies, 10000 failure details per policy, 1000
	 * policy-string or mx-host entries. */
	a = array_of(1001, "{}");
	j = xasprintf("{\"date-range\":" RANGE_OK ",\"policies\":%s}", a);
	parse_bad(j, TLSRPT_PARSE_TOO_BIG, "policies: 1001 entries, over the limit of 1000");
	free(j);
	free(a);

	a = array_of(10001, "{\"result-type\":\"validation-failure\",\"failed-session-count\":1}");
	p = xasprintf("," SUMMARY_OK ",\"failure-details\":%s", a);
	parse_bad(policy_with("", p), TLSRPT_PARSE_TOO_BIG,
	    "policies[0].failure-details: 10001 entries, over the limit of 10000");
	free(p);
	free(a);

	a = array_of(1001, "\"mx.example\"");
	p = xasprintf("\"mx-host\":%s", a);
	parse_bad(policy_with(p, "," SUMMARY_OK), TLSRPT_PARSE_TOO_BIG,
	    "policies[0].policy.mx-host: 1001 entries, over the limit of 1000");
	free(p);
	p = xasprintf("\"policy-string\":%s", a);
	parse_bad(policy_with(p, "," SUMMARY_OK), TLSRPT_PARSE_TOO_BIG,
	    "policies[0].policy.policy-string: 1001 entries, over the limit of 1000");
	free(p);
	free(a);

	/* The limits the caller sets, and right at them. */
	struct tlsrpt_parse_limits lim = { .max_policies = 2, .max_failures = 2, .max_strings = 4 };
	parse_ok_lim(ms_failing, strlen(ms_failing), &lim, &r);
	assert_int_equal(r.n_policies, 2);
	tlsrpt_report_free(&r);
	lim.max_strings = 3;
	parse_bad_lim(ms_failing, strlen(ms_failing), &lim, TLSRPT_PARSE_TOO_BIG,
	    "policies[1].policy.policy-string: 4 entries, over the limit of 3");
	lim.max_strings = 4;
	lim.max_failures = 1;
	parse_bad_lim(ms_failing, strlen(ms_failing), &lim, TLSRPT_PARSE_TOO_BIG,
	    "policies[1].failure-details: 2 entries, over the limit of 1");
	lim.max_failures = 2;
	lim.max_policies = 1;
	parse_bad_lim(ms_failing, strlen(ms_failing), &lim, TLSRPT_PARSE_TOO_BIG,
	    "policies: 2 entries, over the limit of 1");
}

static void
test_many_small_values_are_refused_before_they_cost_memory(void **state)
{
	struct tlsrpt_report r;
	(void)state;

	/* 400000 empty arrays: 1.2 MB of text, but some 80 MB once jansson
	 * has built them. */
	char *a = array_of(400000, "[]");
	long before = max_rss_kib();
	parse_bad(a, TLSRPT_PARSE_TOO_BIG, "more than 300000 JSON values");
	if (max_rss_kib() - before > 16 * 1024)
		fail_msg("resident set grew by %ld KiB", max_rss_kib() - before);
	free(a);

	/* Commas, colons and brackets inside strings, escaped quotes among
	 * them, are not values. */
	char *s = array_of(2000, "\\\",:[");
	size_t sl = strlen(s);
	s[0] = '"';
	s[sl - 1] = '"';
	char *u = array_of(100, s);
	char *j = xasprintf("{\"x\":%s,\"date-range\":" RANGE_OK ",\"policies\":[]}", u);
	parse_ok(j, strlen(j), &r);
	tlsrpt_report_free(&r);
	free(j);
	free(u);
	free(s);

	struct tlsrpt_parse_limits lim = { .max_values = 10 };
	parse_bad_lim(ms_failing, strlen(ms_failing), &lim, TLSRPT_PARSE_TOO_BIG,
	    "more than 10 JSON values");
}

static void
test_deep_nesting_is_refused_without_crashing(void **state)
{
	/* Past the count of values, so that jansson's depth limit is what
	 * stops them. */
	struct tlsrpt_parse_limits lim = { .max_values = 1000000 };
	size_t n = 400000;
	char *j = malloc(n * 5 + 64);
	(void)state;

	assert_non_null(j);
	memset(j, '[', n);
	j[n] = '\0';
	parse_bad_lim(j, n, &lim, TLSRPT_PARSE_TOO_BIG, "nested deeper than 2048 levels");
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(j + o, "{\"a\":", 5);
		o += 5;
	}
	j[o] = '\0';
	parse_bad_lim(j, o, &lim, TLSRPT_PARSE_TOO_BIG, "nested deeper than 2048 levels");
	parse_bad(j, TLSRPT_PARSE_TOO_BIG, "more than 300000 JSON values");
	o = (size_t)sprintf(j, "{\"policies\":[],\"x\":");
	memset(j + o, '[', 3000);
	memset(j + o + 3000, ']', 3000);
	strcpy(j + o + 6000, "}");
	parse_bad(j, TLSRPT_PARSE_TOO_BIG, "nested");
	free(j);
}

static void
test_nul_in_a_kept_string_is_refused_not_truncated(void **state)
{
	(void)state;
	/* "example.com\0.evil" must not become "example.com". */
	parse_bad(policy_with("\"policy-domain\":\"example.com\\u0000.evil\"", "," SUMMARY_OK),
	    TLSRPT_PARSE_SHAPE, "policies[0].policy.policy-domain: holds a NUL character");
	parse_bad(policy_with("\"mx-host\":[\"ok.example\",\"mx.example\\u0000\"]", "," SUMMARY_OK),
	    TLSRPT_PARSE_SHAPE, "policies[0].policy.mx-host[1]: holds a NUL character");
	parse_bad(policy_with("", ",\"summary\":{\"total-successful-session-count\":\"1\\u0000\","
	    "\"total-failure-session-count\":0}"), TLSRPT_PARSE_SHAPE,
	    "policies[0].summary.total-successful-session-count: not an integer");
	parse_bad("{\"contact-info\":\"a@example.com\\u0000\",\"date-range\":" RANGE_OK
	    ",\"policies\":[]}", TLSRPT_PARSE_SHAPE, "contact-info: holds a NUL character");
	/* A key with a NUL is beyond what jansson reads. */
	parse_bad("{\"a\\u0000\":1}", TLSRPT_PARSE_JSON, "not JSON");
}

static void
test_overlong_strings_are_refused_and_not_quoted(void **state)
{
	size_t n = 8193;
	char *big = malloc(n + 64);
	(void)state;

	assert_non_null(big);
	strcpy(big, "\"policy-domain\":\"");
	size_t o = strlen(big);
	memset(big + o, 'a', n);
	strcpy(big + o + n, "\"");
	char err[TLSRPT_ERR_MAX];
	struct tlsrpt_report r;
	const char *j = policy_with(big, "," SUMMARY_OK);
	assert_int_equal(tlsrpt_parse(j, strlen(j), NULL, &r, err, sizeof(err)),
	    TLSRPT_PARSE_TOO_BIG);
	assert_non_null(strstr(err,
	    "policies[0].policy.policy-domain: 8193 bytes, over the limit of 8192"));
	assert_null(strstr(err, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));

	/* 8192 bytes are fine. */
	big[o + n - 1] = '"';
	big[o + n] = '\0';
	j = policy_with(big, "," SUMMARY_OK);
	parse_ok(j, strlen(j), &r);
	assert_int_equal(strlen(r.policies[0].policy_domain), 8192);
	tlsrpt_report_free(&r);
	free(big);
}

static void
test_small_err_buffers_are_cut_and_terminated(void **state)
{
	struct tlsrpt_report r;
	char err[8];
	(void)state;

	memset(err, 'x', sizeof(err));
	assert_int_equal(tlsrpt_parse("[]", 2, NULL, &r, err, sizeof(err)), TLSRPT_PARSE_SHAPE);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(tlsrpt_parse("[]", 2, NULL, &r, NULL, 0), TLSRPT_PARSE_SHAPE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_microsofts_reports_without_mx_host),
		cmocka_unit_test(test_reads_gzipped_reports_as_mailed),
		cmocka_unit_test(test_reads_googles_layout_with_mx_host_arrays),
		cmocka_unit_test(test_mx_host_may_be_a_single_string),
		cmocka_unit_test(test_policy_fetch_errors_need_no_addresses),
		cmocka_unit_test(test_date_times_without_zone_are_utc_and_offsets_apply),
		cmocka_unit_test(test_refuses_date_times_that_are_not_dates),
		cmocka_unit_test(test_counts_may_be_numbers_in_strings),
		cmocka_unit_test(test_absent_and_null_optional_members_are_left_out),
		cmocka_unit_test(test_unknown_members_are_ignored),
		cmocka_unit_test(test_bom_and_surrounding_whitespace_are_skipped),
		cmocka_unit_test(test_refuses_truncated_or_corrupt_gzip),
		cmocka_unit_test(test_concatenated_gzip_members_are_joined_trailing_garbage_refused),
		cmocka_unit_test(test_zip_bomb_stops_at_the_inflated_cap),
		cmocka_unit_test(test_inflated_size_limit_is_exact),
		cmocka_unit_test(test_refuses_what_is_not_json),
		cmocka_unit_test(test_refuses_wrong_shapes_naming_the_path),
		cmocka_unit_test(test_refuses_counts_that_are_negative_or_not_integers),
		cmocka_unit_test(test_refuses_arrays_over_the_limits),
		cmocka_unit_test(test_many_small_values_are_refused_before_they_cost_memory),
		cmocka_unit_test(test_deep_nesting_is_refused_without_crashing),
		cmocka_unit_test(test_nul_in_a_kept_string_is_refused_not_truncated),
		cmocka_unit_test(test_overlong_strings_are_refused_and_not_quoted),
		cmocka_unit_test(test_small_err_buffers_are_cut_and_terminated),
	};
	return cmocka_run_group_tests_name("tlsrpt_parse", tests, NULL, NULL);
}
