/* MTA-STS (RFC 8461): the _mta-sts TXT record, the policy file, MX host
 * matching, and what a TLS report quotes from a policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "sts.h"

/* ---- helpers ---- */

/* TXT RDATA from C strings: each becomes one <character-string>. */
static size_t
rdata_of(uint8_t *out, size_t outsz, const char *const *strs, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(strs[i]);
		assert_true(l <= 255 && len + 1 + l <= outsz);
		out[len++] = (uint8_t)l;
		memcpy(out + len, strs[i], l);
		len += l;
	}
	return len;
}

static int
txt(const char *rec, struct sts_txt *t, char *err)
{
	return sts_txt_parse_record(rec, strlen(rec), t, err, STS_ERR_MAX);
}

static struct sts_policy *
policy_ok(const char *body)
{
	struct sts_policy *p = NULL;
	char err[STS_ERR_MAX] = "";
	int rc = sts_policy_parse(body, strlen(body), &p, err, sizeof(err));
	if (rc != STS_OK)
		fail_msg("policy rejected: %s", err);
	assert_non_null(p);
	return p;
}

/* The policy is refused and the reason contains want. */
static void
policy_bad(const char *body, size_t len, const char *want)
{
	struct sts_policy *p = (struct sts_policy *)1;
	char err[STS_ERR_MAX] = "";
	int rc = sts_policy_parse(body, len, &p, err, sizeof(err));
	if (rc == STS_OK)
		fail_msg("policy accepted, wanted \"%s\": %s", want, body);
	assert_null(p);
	if (strstr(err, want) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err, want);
}

#define POLICY_BAD(body, want) policy_bad((body), strlen(body), (want))

/* ---- TXT record (3.1) ---- */

static void
test_txt_accepts_the_rfc_example(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(txt("v=STSv1; id=20160831085700Z;", &t, err), STS_OK);
	assert_string_equal(t.id, "20160831085700Z");
}

static void
test_txt_allows_whitespace_around_semicolons_and_no_trailing_one(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	const char *ok[] = {
		"v=STSv1;id=abc", "v=STSv1 ; id=abc", "v=STSv1;\tid=abc;", "v=STSv1; id=abc ;  ",
		"v=STSv1; id=abc ",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (txt(ok[i], &t, err) != STS_OK)
			fail_msg("\"%s\" rejected: %s", ok[i], err);
		assert_string_equal(t.id, "abc");
	}
}

static void
test_txt_ignores_extension_fields(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(txt("v=STSv1; ext_1=foo:bar; id=X9; a.b-c=<v>", &t, err), STS_OK);
	assert_string_equal(t.id, "X9");
}

static void
test_txt_first_id_wins(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	/* 3.2: of a repeated field only the first counts. */
	assert_int_equal(txt("v=STSv1; id=first; id=second", &t, err), STS_OK);
	assert_string_equal(t.id, "first");
}

static void
test_txt_id_is_1_to_32_letters_and_digits(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(txt("v=STSv1; id=0123456789abcdefghijABCDEFGHIJKL", &t, err), STS_OK);
	assert_int_equal(strlen(t.id), 32);
	assert_int_equal(txt("v=STSv1; id=0123456789abcdefghijABCDEFGHIJKLM", &t, err),
	    STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "longer than 32"));
	assert_int_equal(txt("v=STSv1; id=2024-01-01", &t, err), STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "letters and digits"));
	assert_int_equal(txt("v=STSv1; id=", &t, err), STS_ERR_SYNTAX);
	assert_string_equal(t.id, "");
}

static void
test_txt_rejects_malformed_records_with_a_reason(void **state)
{
	static const struct {
		const char *rec, *why;
	} bad[] = {
		{ "v=STSv1", "no id field" },
		{ "v=STSv1;", "no id field" },
		{ "v=STSv1; ext=1", "no id field" },
		{ "id=1; v=STSv1", "does not begin with v=STSv1" },
		{ " v=STSv1; id=1", "does not begin with v=STSv1" },
		{ "v=stsv1; id=1", "does not begin with v=STSv1" },	/* %s: case-sensitive */
		{ "v=STSv10; id=1", "does not begin with v=STSv1" },
		{ "", "does not begin with v=STSv1" },
		{ "v=STSv1 id=1", "expected ';'" },
		{ "v=STSv1; id=1 x=2", "expected ';'" },
		{ "v=STSv1; id=abc; x", "not name=value" },
		{ "v=STSv1;; id=1", "empty field" },
		{ "v=STSv1; id = 1", "not name=value" },
		{ "v=STSv1; id=1; flag", "not name=value" },
		{ "v=STSv1; id=1; _x=1", "valid name" },
		{ "v=STSv1; id=1; x=a=b", "'=' in it" },
		{ "v=STSv1; id=1\x01", "control character" },
		{ "v=STSv1; id=1; x=caf\xc3\xa9", "US-ASCII" },
	};
	struct sts_txt t;
	char err[STS_ERR_MAX];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(t.id, 'x', sizeof(t.id));
		int rc = txt(bad[i].rec, &t, err);
		if (rc != STS_ERR_SYNTAX)
			fail_msg("\"%s\" accepted", bad[i].rec);
		/* A refused record hands out no id, even one it had read. */
		assert_string_equal(t.id, "");
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].rec, err, bad[i].why);
	}
}

static void
test_txt_rdata_strings_are_joined_without_spaces(void **state)
{
	uint8_t rd[512];
	struct sts_txt t;
	char err[STS_ERR_MAX];
	const char *split[] = { "v=STSv1; id=abc", "def" };
	size_t len = rdata_of(rd, sizeof(rd), split, 2);
	assert_int_equal(sts_txt_parse_rdata(rd, len, &t, err, sizeof(err)), STS_OK);
	assert_string_equal(t.id, "abcdef");
	/* Even the version tag may be split across strings. */
	const char *split2[] = { "v=ST", "Sv1;", " id=", "1" };
	len = rdata_of(rd, sizeof(rd), split2, 4);
	assert_int_equal(sts_txt_parse_rdata(rd, len, &t, err, sizeof(err)), STS_OK);
	assert_string_equal(t.id, "1");
}

static void
test_txt_rdata_rejects_broken_framing(void **state)
{
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_txt_parse_rdata((const uint8_t *)"", 0, &t, err, sizeof(err)),
	    STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "empty"));
	/* The length octet promises 20 bytes; 15 follow. */
	assert_int_equal(sts_txt_parse_rdata((const uint8_t *)"\x14v=STSv1; id=1;", 16, &t, err,
	    sizeof(err)), STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "malformed"));
}

static void
test_txt_select_discards_records_that_are_not_sts(void **state)
{
	uint8_t a[128], b[128], c[128];
	const char *sa[] = { "v=spf1 -all" }, *sb[] = { "v=STSv1; id=42" },
	    *sc[] = { "v=STSv10; id=7" };
	struct sts_txt_rdata rrs[3] = {
		{ a, rdata_of(a, sizeof(a), sa, 1) },
		{ b, rdata_of(b, sizeof(b), sb, 1) },
		{ c, rdata_of(c, sizeof(c), sc, 1) },
	};
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_txt_select_rdata(rrs, 3, &t, err, sizeof(err)), STS_OK);
	assert_string_equal(t.id, "42");
}

static void
test_txt_select_two_sts_records_mean_no_policy(void **state)
{
	uint8_t a[128], b[128];
	const char *sa[] = { "v=STSv1; id=1" };
	const char *others[] = { "v=STSv1; id=2", "v=STSv1", "v=STSv1 ; id=2", "v=STSv1;garbage" };
	struct sts_txt t;
	char err[STS_ERR_MAX];
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct sts_txt_rdata rrs[2] = {
			{ a, rdata_of(a, sizeof(a), sa, 1) },
			{ b, rdata_of(b, sizeof(b), &others[i], 1) },
		};
		if (sts_txt_select_rdata(rrs, 2, &t, err, sizeof(err)) != STS_ERR_MULTIPLE)
			fail_msg("with \"%s\" next to a valid record: not MULTIPLE", others[i]);
		assert_non_null(strstr(err, "exactly one"));
		assert_string_equal(t.id, "");
	}
}

static void
test_txt_select_no_sts_record_and_one_invalid_record(void **state)
{
	uint8_t a[128];
	const char *sa[] = { "v=spf1 -all" }, *bad[] = { "v=STSv1; id=not-valid" };
	struct sts_txt_rdata rr = { a, rdata_of(a, sizeof(a), sa, 1) };
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_txt_select_rdata(&rr, 1, &t, err, sizeof(err)), STS_ERR_NO_RECORD);
	assert_int_equal(sts_txt_select_rdata(NULL, 0, &t, err, sizeof(err)), STS_ERR_NO_RECORD);
	rr.len = rdata_of(a, sizeof(a), bad, 1);
	assert_int_equal(sts_txt_select_rdata(&rr, 1, &t, err, sizeof(err)), STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "letters and digits"));
	/* A broken RR in the answer: no policy, and the RR is named. */
	struct sts_txt_rdata broken = { (const uint8_t *)"\x09v=STSv1", 8 };
	assert_int_equal(sts_txt_select_rdata(&broken, 1, &t, err, sizeof(err)), STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "TXT RR 1 of 1"));
}

static void
test_txt_select_records_takes_each_rr_already_concatenated(void **state)
{
	/* What dns_txt() hands out: one string per RR, with its length. */
	const char *recs[] = { "v=spf1 -all", "v=STSv1; id=20240101", "x\0y" };
	size_t lens[] = { strlen(recs[0]), strlen(recs[1]), 3 };
	struct sts_txt t;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_txt_select_records(recs, lens, 3, &t, err, sizeof(err)), STS_OK);
	assert_string_equal(t.id, "20240101");
	assert_int_equal(sts_txt_select_records(recs, lens, 1, &t, err, sizeof(err)),
	    STS_ERR_NO_RECORD);
	recs[2] = "v=STSv1;id=2";
	lens[2] = strlen(recs[2]);
	assert_int_equal(sts_txt_select_records(recs, lens, 3, &t, err, sizeof(err)),
	    STS_ERR_MULTIPLE);
	/* The length bounds a record, not a NUL: one inside is refused. */
	const char *nul[] = { "v=STSv1; id=1\0; x=2" };
	size_t nl[] = { 19 };
	assert_int_equal(sts_txt_select_records(nul, nl, 1, &t, err, sizeof(err)),
	    STS_ERR_SYNTAX);
	assert_non_null(strstr(err, "control character (0x00)"));
}

/* ---- policy file (3.2) ---- */

static const char rfc_policy[] =
	"version: STSv1\n"
	"mode: enforce\n"
	"mx: mail.example.com\n"
	"mx: *.example.net\n"
	"mx: backupmx.example.com\n"
	"max_age: 604800\n";

static void
test_policy_accepts_the_rfc_example(void **state)
{
	struct sts_policy *p = policy_ok(rfc_policy);
	assert_int_equal(p->mode, STS_MODE_ENFORCE);
	assert_int_equal(p->max_age, 604800);
	assert_int_equal(p->max_age_capped, 0);
	assert_int_equal(p->n_mx, 3);
	assert_string_equal(p->mx[0], "mail.example.com");
	assert_string_equal(p->mx[1], "*.example.net");
	assert_string_equal(p->mx[2], "backupmx.example.com");
	sts_policy_free(p);
}

static void
test_policy_lines_end_in_crlf_or_lf_and_the_last_may_have_none(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\r\nmode: testing\nmx: a.example\r\n"
	    "max_age: 86400");
	assert_int_equal(p->mode, STS_MODE_TESTING);
	assert_int_equal(p->max_age, 86400);
	assert_int_equal(p->n_lines, 4);
	assert_string_equal(p->lines[0], "version: STSv1");
	sts_policy_free(p);
}

static void
test_policy_fields_come_in_any_order(void **state)
{
	/* 3.2 requires each field, not an order: version need not be first. */
	struct sts_policy *p = policy_ok("max_age: 1\nmx: a.example\nmode: none\nversion: STSv1\n");
	assert_int_equal(p->mode, STS_MODE_NONE);
	assert_int_equal(p->max_age, 1);
	sts_policy_free(p);
}

static void
test_policy_whitespace_after_colon_and_at_line_end_is_allowed(void **state)
{
	struct sts_policy *p = policy_ok("version:STSv1\nmode:\t enforce \t\nmx:   a.example  \n"
	    "max_age:0\r\n");
	assert_int_equal(p->mode, STS_MODE_ENFORCE);
	assert_int_equal(p->max_age, 0);
	assert_string_equal(p->mx[0], "a.example");
	sts_policy_free(p);
}

static void
test_policy_unknown_fields_are_ignored_but_kept_in_policy_strings(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: testing\nfuture_key: a value, "
	    "with spaces\nx.y-z: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\nmx: a.example\n"
	    "max_age: 60\n");
	size_t n;
	const char *const *s = sts_policy_strings(p, &n);
	assert_int_equal(n, 6);
	assert_string_equal(s[2], "future_key: a value, with spaces");
	assert_string_equal(s[3], "x.y-z: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	sts_policy_free(p);
}

static void
test_policy_first_of_a_repeated_field_wins_but_every_mx_counts(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: testing\nmode: enforce\n"
	    "max_age: 10\nmax_age: 20\nversion: STSv2\nmx: a.example\nmx: b.example\n");
	assert_int_equal(p->mode, STS_MODE_TESTING);
	assert_int_equal(p->max_age, 10);
	assert_int_equal(p->n_mx, 2);
	sts_policy_free(p);
}

static void
test_policy_mx_may_be_absent_only_in_mode_none(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: none\nmax_age: 0\n");
	assert_int_equal(p->n_mx, 0);
	assert_int_equal(sts_mx_match(p, "mx.example.com"), 0);
	sts_policy_free(p);
	POLICY_BAD("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx field");
	POLICY_BAD("version: STSv1\nmode: testing\nmax_age: 1\n", "unless mode is none");
}

static void
test_policy_rejects_a_missing_required_field(void **state)
{
	POLICY_BAD("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version field");
	POLICY_BAD("version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode field");
	POLICY_BAD("version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age field");
	POLICY_BAD("", "policy is empty");
	POLICY_BAD("\n\r\n  \n", "policy is empty");
}

static void
test_policy_field_names_and_values_are_case_sensitive(void **state)
{
	/* %s"mode" in the ABNF: "Mode:" is an unknown field, so mode is missing;
	 * the reason points at the line that was probably meant. */
	POLICY_BAD("version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 1\n",
	    "no mode field (line 2 spells it differently");
	POLICY_BAD("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
	    "line 2: mode \"Enforce\" is not enforce, testing or none");
	POLICY_BAD("version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
	    "line 1: version \"stsv1\" is not STSv1");
}

static void
test_policy_max_age_is_digits_and_is_capped_at_one_year(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: none\nmax_age: 31557600\n");
	assert_int_equal(p->max_age, STS_MAX_AGE_MAX);
	assert_int_equal(p->max_age_capped, 0);
	sts_policy_free(p);
	/* Ten digits are syntactically valid (3.2 ABNF); the value is capped. */
	p = policy_ok("version: STSv1\nmode: none\nmax_age: 9999999999\n");
	assert_int_equal(p->max_age, STS_MAX_AGE_MAX);
	assert_int_equal(p->max_age_capped, 1);
	sts_policy_free(p);
	p = policy_ok("version: STSv1\nmode: none\nmax_age: 0031557601\n");
	assert_int_equal(p->max_age, STS_MAX_AGE_MAX);
	assert_int_equal(p->max_age_capped, 1);
	sts_policy_free(p);
	POLICY_BAD("version: STSv1\nmode: none\nmax_age: 10000000000\n",
	    "line 3: max_age \"10000000000\" has more than 10 digits");
	POLICY_BAD("version: STSv1\nmode: none\nmax_age: -1\n", "is not a number of seconds");
	POLICY_BAD("version: STSv1\nmode: none\nmax_age: 1d\n", "is not a number of seconds");
	POLICY_BAD("version: STSv1\nmode: none\nmax_age: 1 000\n", "is not a number of seconds");
	POLICY_BAD("version: STSv1\nmode: none\nmax_age:\n", "line 3: max_age has no value");
}

static void
test_policy_rejects_malformed_lines_naming_the_line(void **state)
{
	POLICY_BAD("version: STSv1\nmode: enforce\n mx: a.example\nmax_age: 1\n",
	    "line 3: begins with whitespace");
	POLICY_BAD("version: STSv1\nmode : enforce\n", "line 2: \"mode \" is not a field name");
	POLICY_BAD("version: STSv1\ngarbage\n", "line 2: \"garbage\" is not a key: value line");
	POLICY_BAD("version: STSv1\n: x\n", "line 2: \"\" is not a field name");
	POLICY_BAD("version: STSv1\nmode: enforcing\n", "line 2: mode \"enforcing\"");
	POLICY_BAD("version: STSv1\nmode: enforce\rmx: a.example\n", "line 2: bare CR");
	POLICY_BAD("version: STSv1\nx: a\x01\n", "line 2: control character 0x01");
	POLICY_BAD("version: STSv1\n\nx: \xff\n", "line 3: not valid UTF-8");
	POLICY_BAD("version: STSv1\nx: \xc0\xaf\n", "line 2: not valid UTF-8");	/* overlong */
	POLICY_BAD("version: STSv1\nx: \xed\xa0\x80\n", "line 2: not valid UTF-8"); /* surrogate */
	POLICY_BAD("version: STSv1\nx: \xe2\x82\n", "line 2: not valid UTF-8");	/* cut short */
	POLICY_BAD("version: STSv1\nx: \xf4\x90\x80\x80\n", "line 2: not valid UTF-8"); /* > U+10FFFF */
	POLICY_BAD("version: STSv1\nx: a\tb\n", "line 2: a tab inside the value of x");
	static const char nul[] = "version: STSv1\nx: a\0b\n";
	policy_bad(nul, sizeof(nul) - 1, "line 2: control character 0x00");
}

static void
test_policy_mx_patterns_must_be_host_names_or_leftmost_wildcards(void **state)
{
	static const char *const bad[] = {
		"*", "*.", "**.example.com", "a.*.example.com", "*example.com", "mail.*",
		"*.*.example.com", "exa_mple.com", "-a.example.com", "a-.example.com",
		"a..example.com", ".example.com", "b\xc3\xbc" "cher.example", "mail.example.com..",
		"a b.example", "[192.0.2.1]", "mx.example.com:25", ".", "*..",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	};
	char body[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n",
		    bad[i]);
		POLICY_BAD(body, "line 3: mx \"");
	}
	/* 254 characters: one over the limit of a host name. */
	char host[300];
	memset(host, 'a', 254);
	for (size_t i = 60; i < 254; i += 61)
		host[i] = '.';
	host[254] = '\0';
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", host);
	POLICY_BAD(body, "longer than 253");
	host[253] = '\0';
	snprintf(body, sizeof(body), "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", host);
	sts_policy_free(policy_ok(body));
}

static void
test_policy_mx_accepts_names_wildcards_a_labels_and_trailing_dots(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: enforce\n"
	    "mx: *.example.com\nmx: mail.example.com.\nmx: xn--bcher-kva.example\n"
	    "mx: MX1.Example.COM\nmx: 1.2.3.example\nmx: *.com\nmx: localhost\nmax_age: 1\n");
	assert_int_equal(p->n_mx, 7);
	assert_string_equal(p->mx[1], "mail.example.com");	/* dot dropped */
	assert_string_equal(p->mx[3], "MX1.Example.COM");	/* case kept for reports */
	/* The policy-string keeps the line as published. */
	assert_string_equal(p->lines[3], "mx: mail.example.com.");
	sts_policy_free(p);
}

static void
test_policy_over_64_kib_is_refused_and_64_kib_is_not(void **state)
{
	static const char head[] = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n";
	size_t len = STS_POLICY_MAX;
	char *body = malloc(len + 1);
	memcpy(body, head, sizeof(head) - 1);
	/* Pad with unknown-field lines "p: xxx...\n" up to exactly 64 KiB. */
	size_t pos = sizeof(head) - 1;
	while (pos < len) {
		size_t line = len - pos < 100 ? len - pos : 100;
		assert_true(line >= 5);
		memset(body + pos, 'x', line);
		memcpy(body + pos, "p: ", 3);
		body[pos + line - 1] = '\n';
		pos += line;
	}
	struct sts_policy *p = NULL;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_policy_parse(body, len, &p, err, sizeof(err)), STS_OK);
	sts_policy_free(p);
	body[len] = '\n';
	assert_int_equal(sts_policy_parse(body, len + 1, &p, err, sizeof(err)), STS_ERR_TOO_LARGE);
	assert_null(p);
	assert_non_null(strstr(err, "65537 bytes"));
	free(body);
}

static void
test_policy_byte_order_mark_is_skipped(void **state)
{
	struct sts_policy *p = policy_ok("\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 5\n");
	assert_string_equal(p->lines[0], "version: STSv1");
	sts_policy_free(p);
}

static void
test_policy_render_round_trip(void **state)
{
	struct sts_policy *p = policy_ok("mx: A.example.\nx: y\nmode: testing\nmx: *.b.example\n"
	    "version: STSv1\nmax_age: 9999999999\n");
	struct buf b;
	buf_init(&b);
	sts_policy_render(p, &b);
	assert_string_equal(b.data, "version: STSv1\r\nmode: testing\r\nmx: A.example\r\n"
	    "mx: *.b.example\r\nmax_age: 31557600\r\n");
	struct sts_policy *q = policy_ok(b.data);
	assert_int_equal(q->mode, p->mode);
	assert_int_equal(q->max_age, p->max_age);
	assert_int_equal(q->n_mx, p->n_mx);
	for (size_t i = 0; i < p->n_mx; i++)
		assert_string_equal(q->mx[i], p->mx[i]);
	buf_free(&b);
	sts_policy_free(p);
	sts_policy_free(q);
}

static void
test_policy_strings_and_mx_hosts_are_what_rfc_8460_reports(void **state)
{
	/* RFC 8460 appendix B: policy-string is the policy's lines, mx-host
	 * its patterns (an array, erratum 6241). */
	struct sts_policy *p = policy_ok("version: STSv1\r\nmode: testing\r\n"
	    "mx: *.mail.company-y.example\r\nmax_age: 86400\r\n");
	size_t n;
	const char *const *s = sts_policy_strings(p, &n);
	assert_int_equal(n, 4);
	assert_string_equal(s[0], "version: STSv1");
	assert_string_equal(s[1], "mode: testing");
	assert_string_equal(s[2], "mx: *.mail.company-y.example");
	assert_string_equal(s[3], "max_age: 86400");
	const char *const *mx = sts_policy_mx_hosts(p, &n);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0], "*.mail.company-y.example");
	assert_string_equal(sts_mode_name(STS_MODE_TESTING), "testing");
	assert_string_equal(sts_mode_name(STS_MODE_ENFORCE), "enforce");
	assert_string_equal(sts_mode_name(STS_MODE_NONE), "none");
	sts_policy_free(p);
}

/* ---- MX host validation (4.1) ---- */

static void
test_mx_exact_pattern_ignores_case_and_trailing_dot(void **state)
{
	assert_true(sts_mx_pattern_match("mail.example.com", "mail.example.com"));
	assert_true(sts_mx_pattern_match("mail.example.com", "MAIL.Example.COM."));
	assert_true(sts_mx_pattern_match("Mail.Example.com.", "mail.example.com"));
	assert_false(sts_mx_pattern_match("mail.example.com", "mail.example.co"));
	assert_false(sts_mx_pattern_match("mail.example.com", "a.mail.example.com"));
	assert_false(sts_mx_pattern_match("example.com", "mail.example.com"));
	assert_false(sts_mx_pattern_match("mail.example.com", "mail.example.com.."));
}

static void
test_mx_wildcard_matches_exactly_one_leftmost_label(void **state)
{
	assert_true(sts_mx_pattern_match("*.example.com", "mail.example.com"));
	assert_true(sts_mx_pattern_match("*.example.com", "MX-1.EXAMPLE.COM."));
	assert_false(sts_mx_pattern_match("*.example.com", "example.com"));
	assert_false(sts_mx_pattern_match("*.example.com", "example.com."));
	assert_false(sts_mx_pattern_match("*.example.com", "a.b.example.com"));
	assert_false(sts_mx_pattern_match("*.example.com", ".example.com"));
	assert_false(sts_mx_pattern_match("*.example.com", "a..example.com"));
	assert_false(sts_mx_pattern_match("*.example.com", "mailexample.com"));
	assert_false(sts_mx_pattern_match("*.example.com", "mail.example.com.evil"));
	assert_false(sts_mx_pattern_match("*.example.com", "mail.notexample.com"));
	/* The MX name is data, not a pattern. */
	assert_false(sts_mx_pattern_match("*.example.com", "*.example.com"));
	assert_false(sts_mx_pattern_match("mail.example.com", ""));
	assert_false(sts_mx_pattern_match("mail.example.com", "."));
	assert_false(sts_mx_pattern_match("*.", "a."));
}

static void
test_mx_match_tries_every_pattern_of_the_policy(void **state)
{
	struct sts_policy *p = policy_ok(rfc_policy);
	assert_true(sts_mx_match(p, "mail.example.com."));
	assert_true(sts_mx_match(p, "backupmx.example.com"));
	assert_true(sts_mx_match(p, "mx7.example.net"));
	assert_false(sts_mx_match(p, "example.net"));
	assert_false(sts_mx_match(p, "mx.evil.example"));
	sts_policy_free(p);
}

/* Seed 002: the domain's MX is mx1.example.com, a CNAME to
 * host.provider.net. RFC 8461 4.1 matches "the MX record name", and 4.2
 * wants the certificate valid for that host name (7.1: it is also the SNI),
 * so the sender checks mx1.example.com against both the policy and the
 * certificate; the CNAME target plays no part. A sender that resolves the
 * CNAME and checks the target instead (as one large provider did in the
 * seed) fails a correct policy: mxd must pass the MX name, as DNS gave it
 * in the MX RDATA, to sts_mx_match, to SNI and to host name verification. */
static void
test_mx_match_uses_the_mx_record_name_not_its_cname_target(void **state)
{
	struct sts_policy *p = policy_ok("version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
	    "mx: mx2.example.com\nmax_age: 86400\n");
	assert_true(sts_mx_match(p, "mx1.example.com."));
	assert_false(sts_mx_match(p, "host.provider.net."));
	sts_policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_accepts_the_rfc_example),
		cmocka_unit_test(test_txt_allows_whitespace_around_semicolons_and_no_trailing_one),
		cmocka_unit_test(test_txt_ignores_extension_fields),
		cmocka_unit_test(test_txt_first_id_wins),
		cmocka_unit_test(test_txt_id_is_1_to_32_letters_and_digits),
		cmocka_unit_test(test_txt_rejects_malformed_records_with_a_reason),
		cmocka_unit_test(test_txt_rdata_strings_are_joined_without_spaces),
		cmocka_unit_test(test_txt_rdata_rejects_broken_framing),
		cmocka_unit_test(test_txt_select_discards_records_that_are_not_sts),
		cmocka_unit_test(test_txt_select_two_sts_records_mean_no_policy),
		cmocka_unit_test(test_txt_select_no_sts_record_and_one_invalid_record),
		cmocka_unit_test(test_txt_select_records_takes_each_rr_already_concatenated),
		cmocka_unit_test(test_policy_accepts_the_rfc_example),
		cmocka_unit_test(test_policy_lines_end_in_crlf_or_lf_and_the_last_may_have_none),
		cmocka_unit_test(test_policy_fields_come_in_any_order),
		cmocka_unit_test(test_policy_whitespace_after_colon_and_at_line_end_is_allowed),
		cmocka_unit_test(test_policy_unknown_fields_are_ignored_but_kept_in_policy_strings),
		cmocka_unit_test(test_policy_first_of_a_repeated_field_wins_but_every_mx_counts),
		cmocka_unit_test(test_policy_mx_may_be_absent_only_in_mode_none),
		cmocka_unit_test(test_policy_rejects_a_missing_required_field),
		cmocka_unit_test(test_policy_field_names_and_values_are_case_sensitive),
		cmocka_unit_test(test_policy_max_age_is_digits_and_is_capped_at_one_year),
		cmocka_unit_test(test_policy_rejects_malformed_lines_naming_the_line),
		cmocka_unit_test(test_policy_mx_patterns_must_be_host_names_or_leftmost_wildcards),
		cmocka_unit_test(test_policy_mx_accepts_names_wildcards_a_labels_and_trailing_dots),
		cmocka_unit_test(test_policy_over_64_kib_is_refused_and_64_kib_is_not),
		cmocka_unit_test(test_policy_byte_order_mark_is_skipped),
		cmocka_unit_test(test_policy_render_round_trip),
		cmocka_unit_test(test_policy_strings_and_mx_hosts_are_what_rfc_8460_reports),
		cmocka_unit_test(test_mx_exact_pattern_ignores_case_and_trailing_dot),
		cmocka_unit_test(test_mx_wildcard_matches_exactly_one_leftmost_label),
		cmocka_unit_test(test_mx_match_tries_every_pattern_of_the_policy),
		cmocka_unit_test(test_mx_match_uses_the_mx_record_name_not_its_cname_target),
	};
	return cmocka_run_group_tests_name("sts", tests, NULL, NULL);
}
