/* The TLSRPT record (RFC 8460 3): which records count, the rua list and its
 * URIs, and the reason given for everything refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tlsrpt_txt.h"

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

static struct tlsrpt_txt *
rec_ok(const char *rec)
{
	struct tlsrpt_txt *t = NULL;
	char err[TLSRPT_TXT_ERR_MAX] = "";
	if (tlsrpt_txt_parse_record(rec, strlen(rec), &t, err, sizeof(err)) != TLSRPT_TXT_OK)
		fail_msg("\"%s\" rejected: %s", rec, err);
	assert_non_null(t);
	return t;
}

static void
rec_bad(const char *rec, int want_rc, const char *want)
{
	struct tlsrpt_txt *t = (struct tlsrpt_txt *)1;
	char err[TLSRPT_TXT_ERR_MAX] = "";
	int rc = tlsrpt_txt_parse_record(rec, strlen(rec), &t, err, sizeof(err));
	if (rc != want_rc)
		fail_msg("\"%s\": got %d, wanted %d (%s)", rec, rc, want_rc, err);
	assert_null(t);
	if (strstr(err, want) == NULL)
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", rec, err, want);
}

static void
test_accepts_the_rfc_examples(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1;rua=mailto:reports@example.com");
	assert_int_equal(t->n_rua, 1);
	assert_int_equal(t->n_usable, 1);
	assert_int_equal(t->rua[0].scheme, TLSRPT_TXT_MAILTO);
	assert_string_equal(t->rua[0].uri, "mailto:reports@example.com");
	assert_string_equal(t->rua[0].target, "reports@example.com");
	tlsrpt_txt_free(t);

	t = rec_ok("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt");
	assert_int_equal(t->n_rua, 1);
	assert_int_equal(t->rua[0].scheme, TLSRPT_TXT_HTTPS);
	assert_string_equal(t->rua[0].target, "https://reporting.example.com/v1/tlsrpt");
	assert_string_equal(tlsrpt_txt_scheme_name(t->rua[0].scheme), "https");
	tlsrpt_txt_free(t);
}

static void
test_several_uris_are_separated_by_commas_with_optional_whitespace(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1 ; rua=mailto:a@example.com , \t"
	    "https://r.example.net:8443/x?y=1#f,mailto:b@example.org ; ");
	assert_int_equal(t->n_rua, 3);
	assert_int_equal(t->n_usable, 3);
	assert_string_equal(t->rua[0].target, "a@example.com");
	assert_string_equal(t->rua[1].uri, "https://r.example.net:8443/x?y=1#f");
	assert_string_equal(t->rua[2].target, "b@example.org");
	tlsrpt_txt_free(t);
}

static void
test_schemes_are_case_insensitive(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; rua=MAILTO:a@example.com,HTTPS://x.example/");
	assert_int_equal(t->rua[0].scheme, TLSRPT_TXT_MAILTO);
	assert_int_equal(t->rua[1].scheme, TLSRPT_TXT_HTTPS);
	tlsrpt_txt_free(t);
}

static void
test_mailto_address_is_percent_decoded_without_hfields(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; rua=mailto:tls%2Brpt%21x@example.com"
	    "?subject=TLS%20report");
	assert_string_equal(t->rua[0].uri, "mailto:tls%2Brpt%21x@example.com?subject=TLS%20report");
	assert_string_equal(t->rua[0].target, "tls+rpt!x@example.com");
	tlsrpt_txt_free(t);
	t = rec_ok("v=TLSRPTv1; rua=mailto:postmaster@[192.0.2.1]");
	assert_string_equal(t->rua[0].target, "postmaster@[192.0.2.1]");
	tlsrpt_txt_free(t);
}

static void
test_https_accepts_ip_literals_ports_and_userinfo(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; rua=https://[2001:db8::1]:443/r,"
	    "https://u:p@r.example,https://r.example:/");
	assert_int_equal(t->n_usable, 3);
	tlsrpt_txt_free(t);
}

static void
test_extension_fields_are_ignored(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; ext_1=a:b/c; rua=mailto:a@example.com; z.9-=1;");
	assert_int_equal(t->n_rua, 1);
	tlsrpt_txt_free(t);
}

static void
test_first_rua_field_wins_and_a_later_one_must_still_be_valid(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; rua=mailto:first@example.com; "
	    "rua=https://second.example/");
	assert_int_equal(t->n_rua, 1);
	assert_string_equal(t->rua[0].target, "first@example.com");
	tlsrpt_txt_free(t);
	rec_bad("v=TLSRPTv1; rua=mailto:first@example.com; rua=mailto:x@y!1m", TLSRPT_TXT_SYNTAX,
	    "'!'");
}

static void
test_exclamation_size_limits_are_not_part_of_tlsrpt(void **state)
{
	/* The ABNF requires '!' to be percent-encoded: DMARC's "!10m" suffix
	 * is a malformed URI here, not a size limit. */
	rec_bad("v=TLSRPTv1; rua=mailto:tlsrpt@example.com!10m", TLSRPT_TXT_SYNTAX,
	    "'!' must be written %21");
	rec_bad("v=TLSRPTv1; rua=https://r.example/a!b", TLSRPT_TXT_SYNTAX, "'!'");
}

static void
test_uris_with_other_schemes_are_kept_but_not_usable(void **state)
{
	struct tlsrpt_txt *t = rec_ok("v=TLSRPTv1; rua=http://r.example/,mailto:a@example.com");
	assert_int_equal(t->n_rua, 2);
	assert_int_equal(t->n_usable, 1);
	assert_int_equal(t->rua[0].scheme, TLSRPT_TXT_OTHER);
	assert_null(t->rua[0].target);
	assert_string_equal(tlsrpt_txt_scheme_name(t->rua[0].scheme), "other");
	tlsrpt_txt_free(t);
	rec_bad("v=TLSRPTv1; rua=http://r.example/", TLSRPT_TXT_UNSUPPORTED,
	    "no mailto: or https: URI (\"http://r.example/\"");
	t = rec_ok("v=TLSRPTv1; rua=httpz://r.example/,mailtx:a@example.com,https://r.example/");
	assert_int_equal(t->rua[0].scheme, TLSRPT_TXT_OTHER);
	assert_int_equal(t->rua[1].scheme, TLSRPT_TXT_OTHER);
	assert_int_equal(t->n_usable, 1);
	assert_string_equal(tlsrpt_txt_scheme_name(t->rua[2].scheme), "https");
	assert_string_equal(tlsrpt_txt_scheme_name(TLSRPT_TXT_MAILTO), "mailto");
	tlsrpt_txt_free(t);
}

static void
test_rejects_malformed_records_with_a_reason(void **state)
{
	static const struct {
		const char *rec, *why;
	} bad[] = {
		{ "v=TLSRPTv1", "no rua field" },
		{ "v=TLSRPTv1;", "no rua field" },
		{ "v=TLSRPTv1; RUA=mailto:a@example.com", "no rua field" },	/* %s"rua=" */
		{ "rua=mailto:a@example.com; v=TLSRPTv1", "does not begin with v=TLSRPTv1" },
		{ "v=tlsrptv1; rua=mailto:a@example.com", "does not begin with v=TLSRPTv1" },
		{ "v=TLSRPTv10; rua=mailto:a@example.com", "does not begin with v=TLSRPTv1" },
		{ "v=TLSRPTv1 rua=mailto:a@example.com", "expected ';'" },
		{ "v=TLSRPTv1;; rua=mailto:a@example.com", "empty field" },
		{ "v=TLSRPTv1; rua", "not name=value" },
		{ "v=TLSRPTv1; rua = mailto:a@example.com", "valid name" },
		{ "v=TLSRPTv1; rua=", "followed directly by a URI" },
		{ "v=TLSRPTv1; rua= mailto:a@example.com", "followed directly by a URI" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com,", "empty URI" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com,,https://r.example/", "empty URI" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com https://r.example/", "whitespace" },
		{ "v=TLSRPTv1; rua=a@example.com", "does not begin with a scheme" },
		{ "v=TLSRPTv1; rua=:x", "does not begin with a scheme" },
		{ "v=TLSRPTv1; rua=mailto:", "no address" },
		{ "v=TLSRPTv1; rua=mailto:?subject=x", "no address" },
		{ "v=TLSRPTv1; rua=mailto:nobody", "not local-part@domain" },
		{ "v=TLSRPTv1; rua=mailto:@example.com", "not local-part@domain" },
		{ "v=TLSRPTv1; rua=mailto:a@", "not local-part@domain" },
		{ "v=TLSRPTv1; rua=mailto:a@ex_ample.com", "not a host name" },
		{ "v=TLSRPTv1; rua=mailto:a@[192.0.2.1", "not closed" },
		{ "v=TLSRPTv1; rua=mailto:a%2Cb@example.com", "more than one address" },
		{ "v=TLSRPTv1; rua=mailto:a%20b@example.com", "space, control" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com#x", "no fragment" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com%4", "two hex digits" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com%zz", "two hex digits" },
		{ "v=TLSRPTv1; rua=https:/r.example/", "begins https://" },
		{ "v=TLSRPTv1; rua=https://", "no host" },
		{ "v=TLSRPTv1; rua=https:///path", "no host" },
		{ "v=TLSRPTv1; rua=https://:443/", "no host" },
		{ "v=TLSRPTv1; rua=https://r.example:99999/", "port" },
		{ "v=TLSRPTv1; rua=https://r.example:44x/", "port" },
		{ "v=TLSRPTv1; rua=https://r.example:1234567/", "port" },
		{ "v=TLSRPTv1; rua=https://r]x.example/", "not a host name" },
		{ "v=TLSRPTv1; rua=https://[2001:db8::1/", "not closed" },
		{ "v=TLSRPTv1; rua=https://[2001:db8::1]x/", "junk after" },
		{ "v=TLSRPTv1; rua=https://r.example/a<b", "'<' is not allowed" },
		{ "v=TLSRPTv1; rua=https://r.example/#a#b", "more than one '#'" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com; ext=a b", "extension value" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com; ext=a=b", "extension value" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com; =x", "valid name" },
		{ "v=TLSRPTv1; rua=mailto:a@example.com; x\x7f=1", "control character" },
		{ "v=TLSRPTv1; rua=mailto:j\xc3\xb6rg@example.com", "US-ASCII" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rec_bad(bad[i].rec, TLSRPT_TXT_SYNTAX, bad[i].why);
}

static void
test_long_untrusted_text_is_cut_in_the_reason(void **state)
{
	char rec[512] = "v=TLSRPTv1; rua=https://r.example/";
	memset(rec + strlen(rec), 'a', 200);
	strcat(rec, "<");
	struct tlsrpt_txt *t;
	char err[TLSRPT_TXT_ERR_MAX];
	assert_int_equal(tlsrpt_txt_parse_record(rec, strlen(rec), &t, err, sizeof(err)),
	    TLSRPT_TXT_SYNTAX);
	assert_non_null(strstr(err, "aaa...\": '<' is not allowed"));
	assert_true(strlen(err) < 150);
}

static void
test_at_most_32_uris(void **state)
{
	char rec[2048] = "v=TLSRPTv1; rua=";
	for (int i = 0; i < 32; i++) {
		char u[64];
		snprintf(u, sizeof(u), "%smailto:r%d@example.com", i ? "," : "", i);
		strcat(rec, u);
	}
	struct tlsrpt_txt *t = rec_ok(rec);
	assert_int_equal(t->n_rua, 32);
	tlsrpt_txt_free(t);
	strcat(rec, ",mailto:one-too-many@example.com");
	rec_bad(rec, TLSRPT_TXT_SYNTAX, "more than 32 URIs");
}

static void
test_rdata_strings_are_joined_without_spaces(void **state)
{
	uint8_t rd[512];
	const char *parts[] = { "v=TLSRPTv1; rua=mailto:tls", "rpt@exam", "ple.com" };
	struct tlsrpt_txt *t;
	char err[TLSRPT_TXT_ERR_MAX];
	size_t len = rdata_of(rd, sizeof(rd), parts, 3);
	assert_int_equal(tlsrpt_txt_parse_rdata(rd, len, &t, err, sizeof(err)), TLSRPT_TXT_OK);
	assert_string_equal(t->rua[0].target, "tlsrpt@example.com");
	tlsrpt_txt_free(t);
	assert_int_equal(tlsrpt_txt_parse_rdata(rd, len - 1, &t, err, sizeof(err)),
	    TLSRPT_TXT_SYNTAX);
	assert_null(t);
	assert_non_null(strstr(err, "malformed"));
	assert_int_equal(tlsrpt_txt_parse_rdata(rd, 0, &t, err, sizeof(err)), TLSRPT_TXT_SYNTAX);
	assert_non_null(strstr(err, "empty"));
}

static void
test_select_discards_other_records_and_needs_exactly_one(void **state)
{
	uint8_t a[128], b[128], c[128];
	const char *sa[] = { "v=spf1 -all" }, *sb[] = { "v=TLSRPTv1; rua=mailto:r@example.com" },
	    *sc[] = { "v=TLSRPTv10; rua=mailto:x@example.com" };
	struct tlsrpt_txt_rdata rrs[3] = {
		{ a, rdata_of(a, sizeof(a), sa, 1) },
		{ b, rdata_of(b, sizeof(b), sb, 1) },
		{ c, rdata_of(c, sizeof(c), sc, 1) },
	};
	struct tlsrpt_txt *t;
	char err[TLSRPT_TXT_ERR_MAX];
	assert_int_equal(tlsrpt_txt_select_rdata(rrs, 3, &t, err, sizeof(err)), TLSRPT_TXT_OK);
	assert_string_equal(t->rua[0].target, "r@example.com");
	tlsrpt_txt_free(t);

	assert_int_equal(tlsrpt_txt_select_rdata(rrs, 1, &t, err, sizeof(err)), TLSRPT_TXT_NO_RECORD);
	assert_null(t);
	assert_int_equal(tlsrpt_txt_select_rdata(NULL, 0, &t, err, sizeof(err)), TLSRPT_TXT_NO_RECORD);

	/* A second record, even a broken one, means the domain has none. */
	const char *others[] = { "v=TLSRPTv1; rua=https://r.example/", "v=TLSRPTv1",
	    "v=TLSRPTv1 ;rua=x" };
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		rrs[2].len = rdata_of(c, sizeof(c), &others[i], 1);
		assert_int_equal(tlsrpt_txt_select_rdata(rrs, 3, &t, err, sizeof(err)),
		    TLSRPT_TXT_MULTIPLE);
		assert_null(t);
		assert_non_null(strstr(err, "exactly one"));
	}

	/* One record that is invalid: no TLSRPT either, with the reason. */
	const char *broken[] = { "v=TLSRPTv1; rua=mailto:x@y!10m" };
	rrs[1].len = rdata_of(b, sizeof(b), broken, 1);
	assert_int_equal(tlsrpt_txt_select_rdata(rrs, 2, &t, err, sizeof(err)), TLSRPT_TXT_SYNTAX);
	assert_non_null(strstr(err, "'!'"));
	struct tlsrpt_txt_rdata bad = { (const uint8_t *)"\x30v=TLSRPTv1", 11 };
	assert_int_equal(tlsrpt_txt_select_rdata(&bad, 1, &t, err, sizeof(err)), TLSRPT_TXT_SYNTAX);
	assert_non_null(strstr(err, "TXT RR 1 of 1"));
}

static void
test_select_records_takes_each_rr_already_concatenated(void **state)
{
	const char *recs[] = { "v=TLSRPTv1; rua=mailto:r@example.com", "v=DKIM1; p=" };
	size_t lens[] = { strlen(recs[0]), strlen(recs[1]) };
	struct tlsrpt_txt *t;
	char err[TLSRPT_TXT_ERR_MAX];
	assert_int_equal(tlsrpt_txt_select_records(recs, lens, 2, &t, err, sizeof(err)),
	    TLSRPT_TXT_OK);
	assert_string_equal(t->rua[0].target, "r@example.com");
	tlsrpt_txt_free(t);
	assert_int_equal(tlsrpt_txt_select_records(recs + 1, lens + 1, 1, &t, err, sizeof(err)),
	    TLSRPT_TXT_NO_RECORD);
	recs[1] = "v=TLSRPTv1;rua=https://r.example/";
	lens[1] = strlen(recs[1]);
	assert_int_equal(tlsrpt_txt_select_records(recs, lens, 2, &t, err, sizeof(err)),
	    TLSRPT_TXT_MULTIPLE);
	assert_null(t);
	/* The length bounds a record: a NUL inside is refused, not an end. */
	const char nul[] = "v=TLSRPTv1;\0rua=mailto:r@example.com";
	recs[0] = nul;
	lens[0] = sizeof(nul) - 1;
	assert_int_equal(tlsrpt_txt_select_records(recs, lens, 1, &t, err, sizeof(err)),
	    TLSRPT_TXT_SYNTAX);
	assert_non_null(strstr(err, "control character (0x00)"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_the_rfc_examples),
		cmocka_unit_test(test_several_uris_are_separated_by_commas_with_optional_whitespace),
		cmocka_unit_test(test_schemes_are_case_insensitive),
		cmocka_unit_test(test_mailto_address_is_percent_decoded_without_hfields),
		cmocka_unit_test(test_https_accepts_ip_literals_ports_and_userinfo),
		cmocka_unit_test(test_extension_fields_are_ignored),
		cmocka_unit_test(test_first_rua_field_wins_and_a_later_one_must_still_be_valid),
		cmocka_unit_test(test_exclamation_size_limits_are_not_part_of_tlsrpt),
		cmocka_unit_test(test_uris_with_other_schemes_are_kept_but_not_usable),
		cmocka_unit_test(test_rejects_malformed_records_with_a_reason),
		cmocka_unit_test(test_long_untrusted_text_is_cut_in_the_reason),
		cmocka_unit_test(test_at_most_32_uris),
		cmocka_unit_test(test_rdata_strings_are_joined_without_spaces),
		cmocka_unit_test(test_select_discards_other_records_and_needs_exactly_one),
		cmocka_unit_test(test_select_records_takes_each_rr_already_concatenated),
	};
	return cmocka_run_group_tests_name("tlsrpt_txt", tests, NULL, NULL);
}
