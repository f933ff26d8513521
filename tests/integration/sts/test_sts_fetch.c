/* lib/sts_fetch.c against a real HTTPS server on loopback with a test CA,
 * started by sts_https_server.py (run as "sts_https_server.py test_sts_fetch"):
 * the port in STS_TEST_PORT, the CA in STS_TEST_CA. Each case is a policy
 * domain <case>.test the server answers for in one way; the fetch connects to
 * 127.0.0.1 but checks the certificate for mta-sts.<case>.test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"

static struct sts_fetch_opts opts;

static enum sts_fetch_result
fetch(const char *domain, struct sts_fetch_out *out)
{
	enum sts_fetch_result r = sts_fetch(domain, &opts, out);
	print_message("%s: %s %ld %s\n", domain,
	    r == STS_FETCH_OK ? "ok" : sts_fetch_result_type(r), out->http_status,
	    out->reason);
	return r;
}

/* The fetch fails with result type want and a reason containing why. */
static void
fetch_fails(const char *domain, enum sts_fetch_result want, const char *why)
{
	struct sts_fetch_out out;

	assert_int_equal(fetch(domain, &out), want);
	assert_int_equal(out.result, want);
	assert_null(out.policy);
	if (strstr(out.reason, why) == NULL)
		fail_msg("%s: reason \"%s\" lacks \"%s\"", domain, out.reason, why);
	sts_fetch_out_free(&out);
}

static void
test_good_policy_is_fetched_and_parsed(void **state)
{
	struct sts_fetch_out out;

	assert_int_equal(fetch("good.test", &out), STS_FETCH_OK);
	assert_int_equal(out.http_status, 200);
	assert_string_equal(out.reason, "");
	assert_non_null(out.policy);
	assert_int_equal(out.policy->mode, STS_MODE_ENFORCE);
	assert_int_equal(out.policy->max_age, 86400);
	assert_int_equal(out.policy->n_mx, 2);
	assert_string_equal(out.policy->mx[1], "*.good.test");
	assert_non_null(out.body);
	assert_int_equal(out.body_len, strlen(out.body));
	assert_non_null(strstr(out.body, "mx: mx1.good.test\r\n"));
	assert_null(sts_fetch_result_type(out.result));
	sts_fetch_out_free(&out);

	/* The final dot and upper case are the same domain. */
	assert_int_equal(fetch("GOOD.test.", &out), STS_FETCH_OK);
	sts_fetch_out_free(&out);
}

static void
test_text_plain_with_charset_is_accepted(void **state)
{
	struct sts_fetch_out out;

	assert_int_equal(fetch("charset.test", &out), STS_FETCH_OK);
	sts_fetch_out_free(&out);
}

static void
test_wrong_content_type_is_fetch_error(void **state)
{
	fetch_fails("ctype.test", STS_FETCH_ERROR, "Content-Type \"text/html\"");
	assert_string_equal(sts_fetch_result_type(STS_FETCH_ERROR), "sts-policy-fetch-error");
}

static void
test_redirect_is_not_followed(void **state)
{
	struct sts_fetch_out out;

	assert_int_equal(fetch("redirect.test", &out), STS_FETCH_ERROR);
	assert_int_equal(out.http_status, 301);
	assert_non_null(strstr(out.reason, "redirect"));
	sts_fetch_out_free(&out);
}

static void
test_http_error_status_is_fetch_error(void **state)
{
	fetch_fails("notfound.test", STS_FETCH_ERROR, "HTTP 404");
}

static void
test_oversized_policy_is_aborted(void **state)
{
	/* With a Content-Length, and streamed without one. */
	fetch_fails("big.test", STS_FETCH_ERROR, "larger than 65536");
	fetch_fails("bigstream.test", STS_FETCH_ERROR, "larger than 65536");
}

static void
test_certificate_without_the_name_is_webpki_invalid(void **state)
{
	fetch_fails("wrongname.test", STS_FETCH_WEBPKI, "mta-sts.wrongname.test");
	assert_string_equal(sts_fetch_result_type(STS_FETCH_WEBPKI), "sts-webpki-invalid");
}

static void
test_certificate_from_untrusted_ca_is_webpki_invalid(void **state)
{
	const char *ca = opts.ca_file;

	opts.ca_file = getenv("STS_TEST_OTHER_CA");
	assert_non_null(opts.ca_file);
	fetch_fails("good.test", STS_FETCH_WEBPKI, "mta-sts.good.test");
	opts.ca_file = NULL;	/* the system's CAs do not know the test CA */
	fetch_fails("good.test", STS_FETCH_WEBPKI, "mta-sts.good.test");
	opts.ca_file = ca;
}

static void
test_invalid_policy_is_policy_invalid(void **state)
{
	struct sts_fetch_out out;

	assert_int_equal(fetch("invalid.test", &out), STS_FETCH_INVALID);
	assert_null(out.policy);
	assert_non_null(out.body);	/* kept for the report */
	assert_string_equal(sts_fetch_result_type(out.result), "sts-policy-invalid");
	assert_non_null(strstr(out.reason, "max_age"));
	sts_fetch_out_free(&out);
}

static void
test_slow_server_times_out(void **state)
{
	struct timespec a, b;
	long saved = opts.timeout_ms;

	opts.timeout_ms = 1000;
	clock_gettime(CLOCK_MONOTONIC, &a);
	fetch_fails("slow.test", STS_FETCH_ERROR, "imeout");
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true(b.tv_sec - a.tv_sec < 4);
	opts.timeout_ms = saved;
}

static void
test_connection_refused_is_fetch_error(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	unsigned saved = opts.connect_port;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was just free: bound, never listened on, closed. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	opts.connect_port = ntohs(sin.sin_port);
	fetch_fails("good.test", STS_FETCH_ERROR, "mta-sts.good.test");
	opts.connect_port = saved;
}

static void
test_invalid_domain_is_refused_without_network(void **state)
{
	fetch_fails("evil.test/x?", STS_FETCH_ERROR, "invalid policy domain");
	fetch_fails("", STS_FETCH_ERROR, "invalid policy domain");
}

/* The cache's fetch callback is sts_fetch: fetched once, then cached. */
static void
test_cache_fetches_over_https_then_serves_from_disk(void **state)
{
	char dir[] = "/tmp/test_sts_fetch.XXXXXX", path[64], err[256];
	struct sts_txt_lookup txt = { .state = STS_TXT_FOUND, .id = "20240101" };
	struct sts_cache *c;
	struct sts_decision d;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(sts_cache_open(dir, NULL, NULL, &c, err, sizeof(err)), 0);
	sts_cache_decide(c, "good.test", &txt, sts_fetch_cb, &opts, &d);
	assert_int_equal(d.source, STS_SOURCE_FETCHED);
	assert_int_equal(d.policy->n_mx, 2);
	sts_decision_free(&d);
	sts_cache_decide(c, "good.test", &txt, sts_fetch_cb, &opts, &d);
	assert_int_equal(d.source, STS_SOURCE_CACHE);
	sts_decision_free(&d);
	/* Another domain whose certificate is wrong: nothing cached, no policy. */
	snprintf(txt.id, sizeof(txt.id), "20240202");
	sts_cache_decide(c, "wrongname.test", &txt, sts_fetch_cb, &opts, &d);
	assert_int_equal(d.source, STS_SOURCE_NONE);
	assert_int_equal(d.fetch_result, STS_FETCH_WEBPKI);
	sts_decision_free(&d);
	sts_cache_close(c);
	snprintf(path, sizeof(path), "%s/good.test.sts", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const char *port = getenv("STS_TEST_PORT");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_policy_is_fetched_and_parsed),
		cmocka_unit_test(test_text_plain_with_charset_is_accepted),
		cmocka_unit_test(test_wrong_content_type_is_fetch_error),
		cmocka_unit_test(test_redirect_is_not_followed),
		cmocka_unit_test(test_http_error_status_is_fetch_error),
		cmocka_unit_test(test_oversized_policy_is_aborted),
		cmocka_unit_test(test_certificate_without_the_name_is_webpki_invalid),
		cmocka_unit_test(test_certificate_from_untrusted_ca_is_webpki_invalid),
		cmocka_unit_test(test_invalid_policy_is_policy_invalid),
		cmocka_unit_test(test_slow_server_times_out),
		cmocka_unit_test(test_connection_refused_is_fetch_error),
		cmocka_unit_test(test_invalid_domain_is_refused_without_network),
		cmocka_unit_test(test_cache_fetches_over_https_then_serves_from_disk),
	};

	if (port == NULL || getenv("STS_TEST_CA") == NULL) {
		fprintf(stderr, "run me through sts_https_server.py\n");
		return 2;
	}
	opts.ca_file = getenv("STS_TEST_CA");
	opts.connect_host = "127.0.0.1";
	opts.connect_port = (unsigned)atoi(port);
	opts.timeout_ms = 10000;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
