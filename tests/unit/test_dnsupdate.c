/* lib/dnsupdate.c without a name server: the difference between live and
 * desired records (dnsupdate_diff), the checks of what a caller hands in, the
 * refusals dnsupdate_push makes before it connects to anything, and its bound
 * against a loopback socket that never answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dnsupdate.h"

#define ZONE	"example.test."
#define N(a)	(sizeof(a) / sizeof((a)[0]))

/* Does lines (presentation form, tabs) hold a record whose words are want's? */
static int
has_line(char **lines, size_t n, const char *want)
{
	char a[1024], b[1024];

	snprintf(b, sizeof(b), "%s", want);
	for (char *p = b; *p; p++)
		if (*p == '\t')
			*p = ' ';
	for (size_t i = 0; i < n; i++) {
		snprintf(a, sizeof(a), "%s", lines[i]);
		for (char *p = a; *p; p++)
			if (*p == '\t')
				*p = ' ';
		if (strcasecmp(a, b) == 0)
			return 1;
	}
	return 0;
}

static void
test_diff_adds_desired_records_missing_from_the_zone(void **state)
{
	(void)state;
	const char *desired[] = {
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 192.0.2.1",
	};
	const char *live[] = { "example.test. 300 IN MX 10 mx1.example.test." };
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, N(desired), NULL, 0, live, N(live), &r),
	    DNSUPDATE_OK);
	assert_int_equal(r.n_added, 1);
	assert_int_equal(r.n_deleted, 0);
	assert_true(has_line(r.added, r.n_added, "mx1.example.test. 300 IN A 192.0.2.1"));
	assert_string_equal(r.error, "");
	dnsupdate_result_free(&r);
}

static void
test_diff_is_empty_when_live_equals_desired_up_to_case(void **state)
{
	(void)state;
	const char *desired[] = {
		"example.test. 300 IN MX 10 mx1.example.test.",
		"_mta-sts.example.test. 300 IN TXT \"v=STSv1; id=20240101\"",
	};
	const char *live[] = {
		"_MTA-STS.Example.TEST. 300 IN TXT \"v=STSv1; id=20240101\"",
		"EXAMPLE.test. 300 IN MX 10 MX1.example.TEST.",
	};
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, N(desired), NULL, 0, live, N(live), &r),
	    DNSUPDATE_OK);
	assert_int_equal(r.n_added, 0);
	assert_int_equal(r.n_deleted, 0);
	dnsupdate_result_free(&r);
}

static void
test_diff_treats_a_ttl_change_as_delete_and_add(void **state)
{
	(void)state;
	const char *desired[] = { "mx1.example.test. 60 IN A 192.0.2.1" };
	const char *live[] = { "mx1.example.test. 300 IN A 192.0.2.1" };
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, 1, NULL, 0, live, 1, &r), DNSUPDATE_OK);
	assert_int_equal(r.n_added, 1);
	assert_int_equal(r.n_deleted, 1);
	assert_true(has_line(r.added, 1, "mx1.example.test. 60 IN A 192.0.2.1"));
	assert_true(has_line(r.deleted, 1, "mx1.example.test. 300 IN A 192.0.2.1"));
	dnsupdate_result_free(&r);
}

static void
test_diff_replaces_a_changed_rdata_and_keeps_the_rest_of_the_rrset(void **state)
{
	(void)state;
	const char *desired[] = {
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 "
		"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	};
	const char *live[] = {
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 "
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	};
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, 2, NULL, 0, live, 2, &r), DNSUPDATE_OK);
	assert_int_equal(r.n_added, 1);
	assert_int_equal(r.n_deleted, 1);
	assert_non_null(strstr(r.added[0], "cccccccc"));
	assert_non_null(strstr(r.deleted[0], "bbbbbbbb"));
	dnsupdate_result_free(&r);
}

static void
test_diff_deletes_a_managed_pair_no_longer_desired(void **state)
{
	(void)state;
	const char *desired[] = { "example.test. 300 IN MX 10 mx1.example.test." };
	const struct dnsupdate_pair managed[] = { { "_smtp._tls.mx2.example.test.", "TXT" } };
	const char *live[] = {
		"example.test. 300 IN MX 10 mx1.example.test.",
		"_smtp._tls.mx2.example.test. 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@example.test\"",
	};
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, 1, managed, 1, live, 2, &r), DNSUPDATE_OK);
	assert_int_equal(r.n_added, 0);
	assert_int_equal(r.n_deleted, 1);
	assert_non_null(strstr(r.deleted[0], "TLSRPTv1"));
	dnsupdate_result_free(&r);
}

static void
test_diff_leaves_records_at_unmanaged_pairs_alone(void **state)
{
	(void)state;
	const char *desired[] = { "example.test. 300 IN MX 10 mx1.example.test." };
	const char *live[] = {
		"example.test. 300 IN MX 10 mx1.example.test.",
		"example.test. 300 IN TXT \"google-site-verification=abc\"",	/* other type */
		"www.example.test. 300 IN MX 10 other.example.test.",		/* other owner */
	};
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, 1, NULL, 0, live, N(live), &r),
	    DNSUPDATE_OK);
	assert_int_equal(r.n_added, 0);
	assert_int_equal(r.n_deleted, 0);
	dnsupdate_result_free(&r);
}

static void
test_diff_keeps_long_txt_strings_intact(void **state)
{
	(void)state;
	char line[1200];
	const char *desired[1] = { line };
	struct dnsupdate_result r;
	char a[256], b[201];

	memset(a, 'k', 255);
	a[255] = '\0';
	memset(b, 'm', 200);
	b[200] = '\0';
	snprintf(line, sizeof(line), "sel._domainkey.example.test. 300 IN TXT \"%s\" \"%s\"", a, b);
	assert_int_equal(dnsupdate_diff(ZONE, desired, 1, NULL, 0, NULL, 0, &r), DNSUPDATE_OK);
	assert_int_equal(r.n_added, 1);
	assert_non_null(strstr(r.added[0], a));
	assert_non_null(strstr(r.added[0], b));
	dnsupdate_result_free(&r);
}

static void
expect_invalid(const char *desired_line, const struct dnsupdate_pair *pair, const char *why)
{
	const char *desired[1] = { desired_line };
	struct dnsupdate_result r;

	assert_int_equal(dnsupdate_diff(ZONE, desired, desired_line ? 1 : 0, pair, pair ? 1 : 0,
	    NULL, 0, &r), DNSUPDATE_EINVAL);
	if (strstr(r.error, why) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", r.error, why);
	assert_int_equal(r.n_added + r.n_deleted, 0);
	dnsupdate_result_free(&r);
}

static void
test_diff_refuses_what_it_must_not_manage(void **state)
{
	(void)state;
	const struct dnsupdate_pair outside = { "mx.other.test.", "A" };
	const struct dnsupdate_pair soa = { "example.test.", "SOA" };
	const struct dnsupdate_pair badtype = { "example.test.", "NOSUCHTYPE" };

	expect_invalid("mx.other.test. 300 IN A 192.0.2.1", NULL, "outside the zone");
	expect_invalid("notexample.test. 300 IN A 192.0.2.1", NULL, "outside the zone");
	expect_invalid("mx1 300 IN A 192.0.2.1", NULL, "not absolute");
	expect_invalid("mx1.example.test. 300 IN A 300.0.2.1", NULL, "desired record 1");
	expect_invalid("mx1.example.test. 300 CH A 192.0.2.1", NULL, "class is not IN");
	expect_invalid(NULL, &outside, "outside the zone");
	expect_invalid(NULL, &soa, "kept by the primary");
	expect_invalid(NULL, &badtype, "unknown type");
}

static void
test_push_refuses_a_bad_key_or_server_before_sending(void **state)
{
	(void)state;
	const char *desired[] = { "mx1.example.test. 300 IN A 192.0.2.1" };
	struct dnsupdate_request req = {
		.zone = ZONE, .server = "127.0.0.1:1",
		.key = { "k.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" },
		.desired = desired, .n_desired = 1, .timeout_ms = 2000,
	};
	struct dnsupdate_result r;

	req.key.algorithm = "hmac-whirlpool";
	assert_int_equal(dnsupdate_push(&req, &r), DNSUPDATE_EINVAL);
	assert_non_null(strstr(r.error, "unknown TSIG algorithm"));
	dnsupdate_result_free(&r);

	req.key.algorithm = "HMAC-SHA256.";
	req.key.secret = "not base64 !!";
	assert_int_equal(dnsupdate_push(&req, &r), DNSUPDATE_EINVAL);
	assert_non_null(strstr(r.error, "not base64"));
	assert_null(strstr(r.error, "not base64 !!"));	/* the secret is never echoed */
	dnsupdate_result_free(&r);

	req.key.secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
	req.server = "primary.example.test";
	assert_int_equal(dnsupdate_push(&req, &r), DNSUPDATE_EINVAL);
	assert_non_null(strstr(r.error, "primary server is not IP"));
	dnsupdate_result_free(&r);
}

/* A loopback TCP socket bound to a free port, listening or not; its
 * "127.0.0.1:port" in addr. */
static int
loopback_socket(int listening, char *addr, size_t addrsz)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (listening)
		assert_int_equal(listen(fd, 4), 0);
	snprintf(addr, addrsz, "127.0.0.1:%d", ntohs(sin.sin_port));
	return fd;
}

static void
test_push_to_a_silent_server_ends_within_its_bound(void **state)
{
	(void)state;
	const char *desired[] = { "mx1.example.test. 300 IN A 192.0.2.1" };
	char addr[64];
	struct dnsupdate_request req = {
		.zone = ZONE, .server = addr,
		.key = { "k.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" },
		.desired = desired, .n_desired = 1, .timeout_ms = 300,
	};
	struct dnsupdate_result r;
	struct timespec t0, t1;

	/* Nobody listening: refused at once. */
	int fd = loopback_socket(0, addr, sizeof(addr));
	assert_int_equal(dnsupdate_push(&req, &r), DNSUPDATE_ENET);
	assert_non_null(strstr(r.error, "connect"));
	dnsupdate_result_free(&r);
	close(fd);

	/* Connected (the kernel accepts), never answered: the bound ends it. */
	fd = loopback_socket(1, addr, sizeof(addr));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dnsupdate_push(&req, &r), DNSUPDATE_ENET);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(r.error, "no answer within the time allowed"));
	assert_int_equal(r.sent, 0);
	dnsupdate_result_free(&r);
	close(fd);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 3000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff_adds_desired_records_missing_from_the_zone),
		cmocka_unit_test(test_diff_is_empty_when_live_equals_desired_up_to_case),
		cmocka_unit_test(test_diff_treats_a_ttl_change_as_delete_and_add),
		cmocka_unit_test(test_diff_replaces_a_changed_rdata_and_keeps_the_rest_of_the_rrset),
		cmocka_unit_test(test_diff_deletes_a_managed_pair_no_longer_desired),
		cmocka_unit_test(test_diff_leaves_records_at_unmanaged_pairs_alone),
		cmocka_unit_test(test_diff_keeps_long_txt_strings_intact),
		cmocka_unit_test(test_diff_refuses_what_it_must_not_manage),
		cmocka_unit_test(test_push_refuses_a_bad_key_or_server_before_sending),
		cmocka_unit_test(test_push_to_a_silent_server_ends_within_its_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
