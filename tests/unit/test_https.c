/* The MTA-STS policy host without sockets (mxd/https/): what a request head
 * gets as an answer (http_req.c, https_answer.c) and the configuration keys
 * mta_sts_listen and mta_sts_certs (https_config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "http_req.h"
#include "https_answer.h"
#include "https_config.h"
#include "log.h"
#include "mxd_config.h"

#define ALPHA	"version: STSv1\r\nmode: enforce\r\nmx: mx.alpha.test\r\nmax_age: 86400\r\n"

static struct mxd_mta_sts alpha = {
	"alpha.test", "mta-sts.alpha.test", ALPHA, sizeof(ALPHA) - 1, "1"
};

/* The answer to req as a string (static), its status in *status. */
static const char *
answer(const char *req, int *status)
{
	static char text[16384];
	struct mxd_config cfg;
	struct https_answer_info info;
	struct buf out;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mta_sts = &alpha;
	cfg.nmta_sts = 1;
	buf_init(&out);
	if (https_answer(&cfg, req, strlen(req), &out, &info) == 0) {
		buf_free(&out);
		*status = 0;
		return "";
	}
	snprintf(text, sizeof(text), "%s", out.data);
	buf_free(&out);
	*status = info.status;
	return text;
}

static int
status_of(const char *req)
{
	int status;
	answer(req, &status);
	return status;
}

static void
test_policy_is_answered_as_text_plain_with_its_exact_bytes(void **state)
{
	int status;
	const char *a = answer("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\nAccept: */*\r\n\r\n", &status);
	assert_int_equal(status, 200);
	assert_string_equal(a, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 66\r\nConnection: close\r\n\r\n" ALPHA);
	assert_int_equal(strlen(ALPHA), 66);
}

static void
test_host_matches_without_port_case_or_final_dot(void **state)
{
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "host:MTA-STS.Alpha.TEST.:8443 \r\n\r\n"), 200);
	const char *a;
	int status;
	a = answer("HEAD /.well-known/mta-sts.txt HTTP/1.0\r\nHost: mta-sts.alpha.test\r\n\r\n",
	    &status);
	assert_int_equal(status, 200);
	assert_null(strstr(a, "STSv1"));
	assert_non_null(strstr(a, "Content-Length: 66\r\n"));
}

static void
test_other_host_path_or_method_is_refused(void **state)
{
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.beta.test\r\n\r\n"), 404);
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: alpha.test\r\n\r\n"), 404);
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt?x HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\n\r\n"), 404);
	assert_int_equal(status_of("GET https://mta-sts.alpha.test/.well-known/mta-sts.txt "
	    "HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n\r\n"), 404);
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: [::1]:443\r\n\r\n"), 404);
	int status;
	const char *a = answer("POST /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\nContent-Length: 1\r\n\r\nx", &status);
	assert_int_equal(status, 405);
	assert_non_null(strstr(a, "\r\nAllow: GET, HEAD\r\n"));
	assert_null(strstr(a, "STSv1"));
}

static void
test_malformed_heads_are_400(void **state)
{
	static const char *const bad[] = {
		"GET /.well-known/mta-sts.txt HTTP/1.1\nHost: mta-sts.alpha.test\n\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta\rsts.alpha.test\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n"
		    "Host: mta-sts.alpha.test\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost : mta-sts.alpha.test\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n"
		    " folded\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test:44x\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test/x\r\n\r\n",
		"GET  /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/1.1 \r\nHost: mta-sts.alpha.test\r\n\r\n",
		"GET /.well-known/mta-sts.txt HTTP/11\r\nHost: mta-sts.alpha.test\r\n\r\n",
		"\r\nGET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int got = status_of(bad[i]);
		if (got != 400)
			fail_msg("case %zu: %d, not 400", i, got);
	}
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/2.0\r\n"
	    "Host: mta-sts.alpha.test\r\n\r\n"), 505);
}

static void
test_head_waits_for_its_end_and_stops_at_8_kib(void **state)
{
	assert_int_equal(status_of("GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\n"), 0);
	char big[HTTP_REQ_HEAD_MAX + 64];
	int n = snprintf(big, sizeof(big), "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\nX-Big: ");
	memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(status_of(big), 431);
	/* A head of exactly the cap is still read. */
	n = snprintf(big, sizeof(big), "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
	    "Host: mta-sts.alpha.test\r\nX-Big: ");
	memset(big + n, 'a', HTTP_REQ_HEAD_MAX - (size_t)n - 4);
	memcpy(big + HTTP_REQ_HEAD_MAX - 4, "\r\n\r\n", 5);
	assert_int_equal(strlen(big), HTTP_REQ_HEAD_MAX);
	assert_int_equal(status_of(big), 200);
}

/* mxd_config_load of text, with snap (if not NULL) as the cached
 * snapshot: it is merged when text has a control section. */
static struct mxd_config *
load_with(const char *text, const Mxfleet__V1__ConfigSnapshot *snap, char *err, size_t errsz)
{
	char dir[] = "/tmp/test-https.XXXXXX", path[64], spath[64];
	struct mxd_config *cfg = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/mxd.conf", dir);
	snprintf(spath, sizeof(spath), "%s/config-snapshot.pb", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "spool_dir = \"%s\";\n%s", dir, text);
	fclose(f);
	if (snap) {
		size_t len = mxfleet__v1__config_snapshot__get_packed_size(snap);
		uint8_t *b = malloc(len + 1);
		mxfleet__v1__config_snapshot__pack(snap, b);
		f = fopen(spath, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(b, 1, len, f), len);
		fclose(f);
		free(b);
	}
	if (mxd_config_load(path, &cfg, err, errsz) < 0)
		cfg = NULL;
	unlink(spath);
	unlink(path);
	rmdir(dir);
	return cfg;
}

static struct mxd_config *
load(const char *text, char *err, size_t errsz)
{
	return load_with(text, NULL, err, errsz);
}

static void
test_snapshot_policies_are_served_by_mta_sts_host_name(void **state)
{
	Mxfleet__V1__MtaStsPolicy p[4] = {
		MXFLEET__V1__MTA_STS_POLICY__INIT, MXFLEET__V1__MTA_STS_POLICY__INIT,
		MXFLEET__V1__MTA_STS_POLICY__INIT, MXFLEET__V1__MTA_STS_POLICY__INIT,
	};
	Mxfleet__V1__MtaStsPolicy *pp[4] = { &p[0], &p[1], &p[2], &p[3] };
	Mxfleet__V1__ConfigSnapshot snap = MXFLEET__V1__CONFIG_SNAPSHOT__INIT;
	char err[600];

	p[0].domain = "alpha.test", p[0].policy = ALPHA, p[0].id = "a1";
	p[1].domain = "Beta.Test.", p[1].policy = "beta", p[1].id = "b1";
	p[2].domain = "bad domain", p[2].policy = "x", p[2].id = "x";
	p[3].domain = "ALPHA.test", p[3].policy = "second", p[3].id = "a2";
	snap.version = 3;
	snap.mta_sts = pp;
	snap.n_mta_sts = 4;
	struct mxd_config *cfg = load_with("control = { server = \"127.0.0.1:7443\"; "
	    "cert = \"c\"; key = \"k\"; ca = \"a\"; };\n", &snap, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->nmta_sts, 2);
	const struct mxd_mta_sts *m = https_config_policy(cfg, "mta-sts.alpha.test");
	assert_non_null(m);
	assert_string_equal(m->policy, ALPHA);
	assert_int_equal(m->len, strlen(ALPHA));
	assert_string_equal(m->id, "a1");
	m = https_config_policy(cfg, "mta-sts.beta.test");
	assert_non_null(m);
	assert_string_equal(m->domain, "beta.test");
	assert_null(https_config_policy(cfg, "alpha.test"));
	mxd_config_free(cfg);

	/* Standalone (no control section): no snapshot, nothing served. */
	cfg = load_with("", &snap, err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->nmta_sts, 0);
	mxd_config_free(cfg);
}

static void
test_mta_sts_listen_defaults_to_listen_on_443_and_empty_turns_it_off(void **state)
{
	char err[600];
	struct mxd_config *cfg = load("listen = [ \"127.0.0.1:2525\", \"[::1]:25\" ];\n",
	    err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->nmta_sts_listen, 2);
	assert_string_equal(cfg->mta_sts_listen[0], "127.0.0.1:443");
	assert_string_equal(cfg->mta_sts_listen[1], "[::1]:443");
	mxd_config_free(cfg);

	cfg = load("mta_sts_listen = [];\n", err, sizeof(err));
	assert_non_null(cfg);
	assert_int_equal(cfg->nmta_sts_listen, 0);
	assert_int_equal(cfg->mta_sts_listen_set, 1);
	mxd_config_free(cfg);

	cfg = load("mta_sts_listen = [ \"127.0.0.1:8443\" ];\nmta_sts_certs = ( { cert = \"c\"; "
	    "key = \"k\"; } );\n", err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->mta_sts_listen[0], "127.0.0.1:8443");
	assert_int_equal(cfg->nmta_sts_certs, 1);
	assert_string_equal(cfg->mta_sts_certs[0].key, "k");
	mxd_config_free(cfg);
}

static void
test_bad_mta_sts_keys_are_refused_with_their_line(void **state)
{
	char err[600];
	assert_null(load("mta_sts_listen = [ \"mta-sts.example.org:443\" ];\n", err, sizeof(err)));
	assert_non_null(strstr(err, "mta_sts_listen"));
	assert_non_null(strstr(err, "expected IPv4:PORT"));
	assert_null(load("mta_sts_certs = ( { cert = \"c\"; } );\n", err, sizeof(err)));
	assert_non_null(strstr(err, "both cert and key are required"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_is_answered_as_text_plain_with_its_exact_bytes),
		cmocka_unit_test(test_host_matches_without_port_case_or_final_dot),
		cmocka_unit_test(test_other_host_path_or_method_is_refused),
		cmocka_unit_test(test_malformed_heads_are_400),
		cmocka_unit_test(test_head_waits_for_its_end_and_stops_at_8_kib),
		cmocka_unit_test(test_mta_sts_listen_defaults_to_listen_on_443_and_empty_turns_it_off),
		cmocka_unit_test(test_bad_mta_sts_keys_are_refused_with_their_line),
		cmocka_unit_test(test_snapshot_policies_are_served_by_mta_sts_host_name),
	};
	log_init("test_https", LOG_LEVEL_ERROR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
