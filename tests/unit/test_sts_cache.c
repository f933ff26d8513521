/* MTA-STS policy cache (RFC 8461 5.1, 10.2): scenarios in the style of
 * Unbound's replay tests. A fake clock the test moves by hand, a fake fetcher
 * that serves a scripted policy (or fails) and counts its calls, and the TXT
 * answer each delivery would have seen; each step checks which policy the
 * delivery gets and whether the network was touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <unistd.h>

#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"

#define T0	1700000000	/* the scenario's start, seconds */
#define DAY	86400

#define POLICY_A \
	"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 86400\r\n"
#define POLICY_B \
	"version: STSv1\r\nmode: enforce\r\nmx: *.example.net\r\nmax_age: 604800\r\n"

/* ---- the scripted world ---- */

struct world {
	char			 dir[64];
	int64_t			 now;
	/* the fetcher */
	int			 calls;
	const char		*serve;		/* body to serve; NULL: fail */
	enum sts_fetch_result	 fail_as;
	struct sts_cache	*cache;
};

static int64_t
fake_clock(void *arg)
{
	return ((struct world *)arg)->now;
}

static void
fake_fetch(void *arg, const char *domain, struct sts_fetch_out *out)
{
	struct world *w = arg;
	char err[STS_ERR_MAX];

	w->calls++;
	memset(out, 0, sizeof(*out));
	if (w->serve == NULL) {
		out->result = w->fail_as;
		snprintf(out->reason, sizeof(out->reason), "mta-sts.%s: connection refused",
		    domain);
		return;
	}
	out->body = strdup(w->serve);
	out->body_len = strlen(w->serve);
	if (sts_policy_parse(out->body, out->body_len, &out->policy, err, sizeof(err)) != STS_OK) {
		out->result = STS_FETCH_INVALID;
		snprintf(out->reason, sizeof(out->reason), "%s", err);
	}
}

static void
open_cache(struct world *w)
{
	char err[256];
	assert_int_equal(sts_cache_open(w->dir, fake_clock, w, &w->cache, err, sizeof(err)), 0);
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	snprintf(w->dir, sizeof(w->dir), "/tmp/test_sts_cache.XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	w->now = T0;
	w->fail_as = STS_FETCH_ERROR;
	open_cache(w);
	*state = w;
	return 0;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	struct world *w = *state;
	sts_cache_close(w->cache);
	nftw(w->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(w);
	return 0;
}

static struct sts_txt_lookup
txt_id(const char *id)
{
	struct sts_txt_lookup t = { .state = STS_TXT_FOUND };
	snprintf(t.id, sizeof(t.id), "%s", id);
	return t;
}

static const struct sts_txt_lookup txt_none = { .state = STS_TXT_NONE };
static const struct sts_txt_lookup txt_failed = { .state = STS_TXT_FAILED };

/* One delivery to example.com: the decision, checked for source and, if a
 * policy applies, its first mx pattern. */
static void
deliver(struct world *w, struct sts_txt_lookup t, enum sts_source want_src,
    const char *want_mx, const char *want_id, struct sts_decision *keep)
{
	struct sts_decision d;

	sts_cache_decide(w->cache, "example.com", &t, fake_fetch, w, &d);
	assert_int_equal(d.source, want_src);
	if (want_mx == NULL) {
		assert_null(d.policy);
	} else {
		assert_non_null(d.policy);
		assert_true(d.policy->n_mx >= 1);
		assert_string_equal(d.policy->mx[0], want_mx);
		assert_string_equal(d.id, want_id);
	}
	if (keep != NULL)
		*keep = d;
	else
		sts_decision_free(&d);
}

/* ---- scenarios ---- */

static void
test_first_delivery_fetches_and_caches(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", &d);
	assert_int_equal(w->calls, 1);
	assert_int_equal(d.fetched, 1);
	assert_int_equal(d.fetch_result, STS_FETCH_OK);
	assert_int_equal(d.expires_at, T0 + DAY);
	sts_decision_free(&d);

	struct sts_cache_entry e;
	assert_true(sts_cache_get(w->cache, "Example.COM.", &e));
	assert_string_equal(e.domain, "example.com");
	assert_string_equal(e.id, "a1");
	assert_int_equal(e.fetched_at, T0);
	assert_int_equal(e.expires_at, T0 + DAY);
	assert_int_equal(e.text_len, strlen(POLICY_A));
	assert_memory_equal(e.text, POLICY_A, e.text_len);
	sts_cache_entry_free(&e);
}

static void
test_same_id_within_max_age_does_not_fetch(void **state)
{
	struct world *w = *state;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->serve = POLICY_B;	/* would be noticed if fetched */
	w->now = T0 + DAY - 1;
	deliver(w, txt_id("a1"), STS_SOURCE_CACHE, "mx1.example.com", "a1", NULL);
	assert_int_equal(w->calls, 1);
}

static void
test_id_change_refetches_new_policy(void **state)
{
	struct world *w = *state;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->now = T0 + 3600;
	w->serve = POLICY_B;
	deliver(w, txt_id("b2"), STS_SOURCE_FETCHED, "*.example.net", "b2", NULL);
	assert_int_equal(w->calls, 2);
	/* And the new one is what is cached now, with its own max_age. */
	w->now = T0 + 3 * DAY;
	deliver(w, txt_id("b2"), STS_SOURCE_CACHE, "*.example.net", "b2", NULL);
	assert_int_equal(w->calls, 2);
}

static void
test_id_change_with_failed_refetch_keeps_old_policy(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->now = T0 + 3600;
	w->serve = NULL;
	deliver(w, txt_id("b2"), STS_SOURCE_STALE, "mx1.example.com", "a1", &d);
	assert_int_equal(d.fetched, 1);
	assert_int_equal(d.fetch_result, STS_FETCH_ERROR);
	assert_non_null(strstr(d.reason, "connection refused"));
	sts_decision_free(&d);
	/* Every delivery retries the fetch until it works. */
	w->serve = POLICY_B;
	deliver(w, txt_id("b2"), STS_SOURCE_FETCHED, "*.example.net", "b2", NULL);
	assert_int_equal(w->calls, 3);
}

static void
test_id_change_with_invalid_new_policy_keeps_old_policy(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->serve = "version: STSv1\r\nmode: bogus\r\n";
	deliver(w, txt_id("b2"), STS_SOURCE_STALE, "mx1.example.com", "a1", &d);
	assert_int_equal(d.fetch_result, STS_FETCH_INVALID);
	assert_string_equal(sts_fetch_result_type(d.fetch_result), "sts-policy-invalid");
	sts_decision_free(&d);
}

static void
test_expired_policy_is_refetched(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->now = T0 + DAY;	/* expires_at is exclusive */
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", &d);
	assert_int_equal(w->calls, 2);
	assert_int_equal(d.expires_at, T0 + 2 * DAY);
	sts_decision_free(&d);
}

static void
test_expired_policy_and_failed_fetch_is_no_policy(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->now = T0 + DAY + 1;
	w->serve = NULL;
	w->fail_as = STS_FETCH_WEBPKI;
	deliver(w, txt_id("a1"), STS_SOURCE_NONE, NULL, NULL, &d);
	assert_int_equal(d.fetched, 1);
	assert_int_equal(d.fetch_result, STS_FETCH_WEBPKI);
	assert_string_equal(sts_fetch_result_type(d.fetch_result), "sts-webpki-invalid");
	assert_string_not_equal(d.reason, "");
	sts_decision_free(&d);
}

static void
test_no_txt_record_keeps_cached_policy(void **state)
{
	struct world *w = *state;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->now = T0 + DAY / 2;
	deliver(w, txt_none, STS_SOURCE_CACHE, "mx1.example.com", "a1", NULL);
	deliver(w, txt_failed, STS_SOURCE_CACHE, "mx1.example.com", "a1", NULL);
	assert_int_equal(w->calls, 1);
	/* Once it has expired, no record means no policy, and no fetch. */
	w->now = T0 + DAY;
	deliver(w, txt_none, STS_SOURCE_NONE, NULL, NULL, NULL);
	assert_int_equal(w->calls, 1);
}

static void
test_no_txt_record_and_nothing_cached_does_not_fetch(void **state)
{
	struct world *w = *state;

	w->serve = POLICY_A;
	deliver(w, txt_none, STS_SOURCE_NONE, NULL, NULL, NULL);
	deliver(w, txt_failed, STS_SOURCE_NONE, NULL, NULL, NULL);
	assert_int_equal(w->calls, 0);
}

static void
test_cache_survives_restart(void **state)
{
	struct world *w = *state;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	sts_cache_close(w->cache);
	open_cache(w);		/* the "restarted" process, same directory */
	w->now = T0 + 7200;
	w->serve = NULL;
	deliver(w, txt_id("a1"), STS_SOURCE_CACHE, "mx1.example.com", "a1", NULL);
	assert_int_equal(w->calls, 1);
	assert_int_equal(sts_cache_corrupt_count(w->cache), 0);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
test_corrupt_cache_file_is_ignored_and_counted(void **state)
{
	struct world *w = *state;
	char path[128];
	struct sts_cache_entry e;
	static const char *const bad[] = {
		"",
		"garbage\n",
		"mxfleet-sts-cache 1\ndomain example.com\nid a1\nfetched 1\nexpires 99999999999\n"
		    "length 500\n\nversion: STSv1\r\n",		/* truncated */
		"mxfleet-sts-cache 1\ndomain other.org\nid a1\nfetched 1\nexpires 99999999999\n"
		    "length 3\n\nabc",				/* someone else's */
		"mxfleet-sts-cache 1\ndomain example.com\nid a1\nfetched 1\nexpires 99999999999\n"
		    "length 3\n\nabc",				/* not a policy */
		"mxfleet-sts-cache 1\ndomain example.com\nid a-1\nfetched 1\nexpires 99999999999\n"
		    "length 3\n\nabc",				/* bad id */
	};

	snprintf(path, sizeof(path), "%s/example.com.sts", w->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]));
		assert_false(sts_cache_get(w->cache, "example.com", &e));
		assert_int_equal(sts_cache_corrupt_count(w->cache), i + 1);
	}
	/* The delivery fetches as if nothing were cached, and repairs the file. */
	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	deliver(w, txt_id("a1"), STS_SOURCE_CACHE, "mx1.example.com", "a1", NULL);
	assert_int_equal(w->calls, 1);
}

static void
test_proactive_refresh_lists_policies_past_half_life(void **state)
{
	struct world *w = *state;
	char **due;
	size_t n;
	struct sts_decision d;

	w->serve = POLICY_A;	/* max_age 1 day */
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);
	w->serve = POLICY_B;	/* max_age 7 days */
	sts_cache_decide(w->cache, "example.net", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "n1" }, fake_fetch, w, &d);
	assert_int_equal(d.source, STS_SOURCE_FETCHED);
	sts_decision_free(&d);

	w->now = T0 + DAY / 2 - 1;
	assert_int_equal(sts_cache_due(w->cache, &due), 0);
	sts_cache_list_free(due, 0);

	w->now = T0 + DAY / 2;
	n = sts_cache_due(w->cache, &due);
	assert_int_equal(n, 1);
	assert_string_equal(due[0], "example.com");
	sts_cache_list_free(due, n);

	/* Refresh with the same id: fetched anyway, max_age restarts. */
	w->serve = POLICY_A;
	sts_cache_refresh(w->cache, "example.com", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "a1" }, fake_fetch, w, &d);
	assert_int_equal(d.source, STS_SOURCE_FETCHED);
	assert_int_equal(d.expires_at, T0 + DAY / 2 + DAY);
	sts_decision_free(&d);
	assert_int_equal(w->calls, 3);
	assert_int_equal(sts_cache_due(w->cache, &due), 0);
	sts_cache_list_free(due, 0);

	/* A failed refresh leaves the entry due, and still applied. */
	w->now = T0 + DAY + 1;
	w->serve = NULL;
	sts_cache_refresh(w->cache, "example.com", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "a1" }, fake_fetch, w, &d);
	assert_int_equal(d.source, STS_SOURCE_STALE);
	assert_int_equal(d.fetch_result, STS_FETCH_ERROR);
	sts_decision_free(&d);
	n = sts_cache_due(w->cache, &due);
	assert_int_equal(n, 1);
	sts_cache_list_free(due, n);

	/* Expired entries are not due: they are simply gone. */
	w->now = T0 + 10 * DAY;
	assert_int_equal(sts_cache_due(w->cache, &due), 0);
	sts_cache_list_free(due, 0);
}

static void
test_recheck_before_bounce(void **state)
{
	struct world *w = *state;
	struct sts_decision d;

	w->serve = POLICY_A;
	deliver(w, txt_id("a1"), STS_SOURCE_FETCHED, "mx1.example.com", "a1", NULL);

	/* Same id, or no record: the failure may bounce; nothing fetched. */
	assert_int_equal(sts_cache_recheck(w->cache, "example.com", "a1", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "a1" }, fake_fetch, w, &d), STS_RECHECK_UNCHANGED);
	sts_decision_free(&d);
	assert_int_equal(sts_cache_recheck(w->cache, "example.com", "a1", &txt_none,
	    fake_fetch, w, &d), STS_RECHECK_UNCHANGED);
	sts_decision_free(&d);
	assert_int_equal(w->calls, 1);

	/* New id, fetch fails: do not bounce. */
	w->serve = NULL;
	assert_int_equal(sts_cache_recheck(w->cache, "example.com", "a1", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "b2" }, fake_fetch, w, &d), STS_RECHECK_FETCH_FAILED);
	assert_null(d.policy);
	assert_int_equal(d.fetch_result, STS_FETCH_ERROR);
	sts_decision_free(&d);

	/* New id, fetched: retry under the new policy, which is now cached. */
	w->serve = POLICY_B;
	assert_int_equal(sts_cache_recheck(w->cache, "example.com", "a1", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "b2" }, fake_fetch, w, &d), STS_RECHECK_CHANGED);
	assert_non_null(d.policy);
	assert_string_equal(d.policy->mx[0], "*.example.net");
	assert_string_equal(d.id, "b2");
	sts_decision_free(&d);
	assert_int_equal(w->calls, 3);
	deliver(w, txt_id("b2"), STS_SOURCE_CACHE, "*.example.net", "b2", NULL);
	assert_int_equal(w->calls, 3);
}

static void
test_invalid_domain_is_never_cached(void **state)
{
	struct world *w = *state;
	struct sts_decision d;
	struct sts_cache_entry e;

	w->serve = POLICY_A;
	sts_cache_decide(w->cache, "../etc", &(struct sts_txt_lookup){
	    .state = STS_TXT_FOUND, .id = "a1" }, fake_fetch, w, &d);
	/* The policy applies to this delivery; nothing was written. */
	assert_int_equal(d.source, STS_SOURCE_FETCHED);
	sts_decision_free(&d);
	assert_false(sts_cache_get(w->cache, "../etc", &e));
	assert_int_equal(sts_cache_put(w->cache, "a/b", "x", "", 0, NULL), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_first_delivery_fetches_and_caches),
		T(test_same_id_within_max_age_does_not_fetch),
		T(test_id_change_refetches_new_policy),
		T(test_id_change_with_failed_refetch_keeps_old_policy),
		T(test_id_change_with_invalid_new_policy_keeps_old_policy),
		T(test_expired_policy_is_refetched),
		T(test_expired_policy_and_failed_fetch_is_no_policy),
		T(test_no_txt_record_keeps_cached_policy),
		T(test_no_txt_record_and_nothing_cached_does_not_fetch),
		T(test_cache_survives_restart),
		T(test_corrupt_cache_file_is_ignored_and_counted),
		T(test_proactive_refresh_lists_policies_past_half_life),
		T(test_recheck_before_bounce),
		T(test_invalid_domain_is_never_cached),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
