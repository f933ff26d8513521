/* The DNS controld generates for a hosted domain (controld/dnsgen.c): the
 * records, the MTA-STS policy and its id, and the errors shown before
 * anything is published. Every record is also parsed by ldns, as a zone
 * file reader or an RFC 2136 server would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ldns/ldns.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dnsgen.h"
#include "sts.h"

#define KEY_A	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY_B	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_C	"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define KEY_D	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define ED25519_B64	"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

/* Two hosts serving example.test, each with a certificate for its MX name
 * and mta-sts.example.test, a current and a next key. Host "h2" is also
 * reached as mail.example.net (a CNAME to it the operator declared). The
 * hosts are given out of order on purpose. */
struct fx {
	struct dnsgen_domain d;
	struct dnsgen_host h[2];
	struct dnsgen_cert c[2];
	char	*addrs1[2], *addrs2[1];
	char	*names1[2], *names2[3];
	char	*aliases2[1];
	struct dnsgen_dkim k[2];
	struct dnsgen_result r;
};

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->addrs1[0] = "2001:db8::1";
	f->addrs1[1] = "192.0.2.1";
	f->addrs2[0] = "192.0.2.2";
	f->names1[0] = "mx1.fleet.test";
	f->names1[1] = "mta-sts.example.test";
	f->names2[0] = "MX2.fleet.test";
	f->names2[1] = "mail.example.net";
	f->names2[2] = "mta-sts.example.test";
	f->aliases2[0] = "mail.example.net";
	f->c[0] = (struct dnsgen_cert){ KEY_A, f->names1, 2, 0 };
	f->c[1] = (struct dnsgen_cert){ KEY_C, f->names2, 3, 0 };
	f->h[0] = (struct dnsgen_host){ .host_id = "h2", .mx_name = "MX2.fleet.test",
	    .addrs = f->addrs2, .naddrs = 1, .aliases = f->aliases2, .naliases = 1,
	    .certs = &f->c[1], .ncerts = 1, .next_spki = KEY_D };
	f->h[1] = (struct dnsgen_host){ .host_id = "h1", .mx_name = "mx1.fleet.test",
	    .addrs = f->addrs1, .naddrs = 2, .certs = &f->c[0], .ncerts = 1,
	    .next_spki = KEY_B };
	f->k[0] = (struct dnsgen_dkim){ "s2026", "ed25519", ED25519_B64, DNSGEN_DKIM_ACTIVE };
	f->k[1] = (struct dnsgen_dkim){ "s2027", "ed25519", ED25519_B64, DNSGEN_DKIM_NEXT };
	f->d = (struct dnsgen_domain){ .name = "example.test", .ttl = 3600,
	    .hosts = f->h, .nhosts = 2, .sts_mode = "enforce", .sts_max_age = 604800,
	    .tlsrpt_rua = "", .spf = "", .dmarc = "", .dkim = f->k, .ndkim = 2 };
}

static void
gen_ok(struct fx *f)
{
	char err[256] = "";
	if (dnsgen_domain(&f->d, &f->r, err, sizeof(err)) != 0)
		fail_msg("dnsgen_domain failed: %s", err);
}

/* f and g give the same records, policy and id. */
static void
assert_same_output(struct fx *f, struct fx *g)
{
	gen_ok(f);
	gen_ok(g);
	assert_int_equal(f->r.nrrs, g->r.nrrs);
	for (size_t i = 0; i < f->r.nrrs; i++) {
		assert_string_equal(f->r.rrs[i].owner, g->r.rrs[i].owner);
		assert_string_equal(f->r.rrs[i].type, g->r.rrs[i].type);
		assert_string_equal(f->r.rrs[i].rdata, g->r.rrs[i].rdata);
	}
	assert_string_equal(f->r.sts_policy, g->r.sts_policy);
	assert_string_equal(f->r.sts_id, g->r.sts_id);
	dnsgen_result_free(&f->r);
	dnsgen_result_free(&g->r);
}

static size_t
count_rr(const struct dnsgen_result *r, const char *owner, const char *type)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nrrs; i++)
		if (strcmp(r->rrs[i].owner, owner) == 0 && strcmp(r->rrs[i].type, type) == 0)
			n++;
	return n;
}

static void
assert_rr(const struct dnsgen_result *r, const char *owner, const char *type,
    const char *rdata)
{
	for (size_t i = 0; i < r->nrrs; i++)
		if (strcmp(r->rrs[i].owner, owner) == 0 && strcmp(r->rrs[i].type, type) == 0 &&
		    strcmp(r->rrs[i].rdata, rdata) == 0)
			return;
	fail_msg("no record %s %s %s", owner, type, rdata);
}

static const struct dnsgen_error *
find_error(const struct dnsgen_result *r, const char *code, const char *subject)
{
	for (size_t i = 0; i < r->nerrors; i++)
		if (strcmp(r->errors[i].code, code) == 0 &&
		    (subject == NULL || strcmp(r->errors[i].subject, subject) == 0))
			return &r->errors[i];
	return NULL;
}

static void
assert_error(const struct dnsgen_result *r, const char *code, const char *subject,
    const char *severity)
{
	const struct dnsgen_error *e = find_error(r, code, subject);
	if (e == NULL)
		fail_msg("no error %s for %s", code, subject ? subject : "(any)");
	assert_string_equal(e->severity, severity);
	assert_true(strlen(e->what) > 10 && strlen(e->why) > 10 && strlen(e->fix) > 10);
}

/* The rr as ldns reads it from a zone file line. */
static ldns_rr *
ldns_parse(const struct dnsgen_rr *rr)
{
	char line[4096];
	ldns_rr *out = NULL;
	snprintf(line, sizeof(line), "%s %u IN %s %s", rr->owner, rr->ttl, rr->type, rr->rdata);
	ldns_status st = ldns_rr_new_frm_str(&out, line, 0, NULL, NULL);
	if (st != LDNS_STATUS_OK)
		fail_msg("ldns refuses \"%s\": %s", line, ldns_get_errorstr_by_id(st));
	return out;
}

/* A TXT record's strings joined, each checked to be at most 255 bytes. */
static char *
txt_joined(const struct dnsgen_rr *rr, size_t *nstrings)
{
	ldns_rr *l = ldns_parse(rr);
	size_t total = 0;
	char *s = calloc(1, 65536);
	assert_non_null(s);
	*nstrings = ldns_rr_rd_count(l);
	for (size_t i = 0; i < ldns_rr_rd_count(l); i++) {
		ldns_rdf *rdf = ldns_rr_rdf(l, i);
		const uint8_t *p = ldns_rdf_data(rdf);
		assert_true(ldns_rdf_size(rdf) >= 1 && p[0] == ldns_rdf_size(rdf) - 1);
		assert_true(p[0] <= 255);
		memcpy(s + total, p + 1, p[0]);
		total += p[0];
	}
	ldns_rr_free(l);
	return s;
}

static const struct dnsgen_rr *
only_rr(const struct dnsgen_result *r, const char *owner, const char *type)
{
	const struct dnsgen_rr *found = NULL;
	assert_int_equal(count_rr(r, owner, type), 1);
	for (size_t i = 0; i < r->nrrs; i++)
		if (strcmp(r->rrs[i].owner, owner) == 0 && strcmp(r->rrs[i].type, type) == 0)
			found = &r->rrs[i];
	return found;
}

static void
test_host_with_current_and_next_key_yields_two_tlsa(void **state)
{
	struct fx f;
	fx_init(&f);
	gen_ok(&f);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA"), 2);
	assert_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA", "3 1 1 " KEY_A);
	assert_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA", "3 1 1 " KEY_B);
	assert_rr(&f.r, "_25._tcp.mx2.fleet.test.", "TLSA", "3 1 1 " KEY_C);
	assert_rr(&f.r, "_25._tcp.mx2.fleet.test.", "TLSA", "3 1 1 " KEY_D);
	assert_null(find_error(&f.r, "next-key-missing", NULL));
	dnsgen_result_free(&f.r);
}

static void
test_next_key_equal_to_served_key_yields_one_tlsa(void **state)
{
	struct fx f;
	fx_init(&f);
	f.h[1].next_spki = KEY_A;
	gen_ok(&f);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA"), 1);
	dnsgen_result_free(&f.r);
}

static void
test_host_without_next_key_warns_that_a_key_change_breaks_dane(void **state)
{
	struct fx f;
	fx_init(&f);
	f.h[1].next_spki = "";
	f.h[0].next_spki = NULL;
	gen_ok(&f);
	assert_error(&f.r, "next-key-missing", "h1", "warning");
	assert_error(&f.r, "next-key-missing", "h2", "warning");
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA"), 1);
	dnsgen_result_free(&f.r);
}

static void
test_one_mx_per_host_sorted_lower_case_preference_10(void **state)
{
	struct fx f;
	fx_init(&f);
	gen_ok(&f);
	assert_int_equal(count_rr(&f.r, "example.test.", "MX"), 2);
	assert_rr(&f.r, "example.test.", "MX", "10 mx1.fleet.test.");
	assert_rr(&f.r, "example.test.", "MX", "10 mx2.fleet.test.");
	assert_rr(&f.r, "mx1.fleet.test.", "A", "192.0.2.1");
	assert_rr(&f.r, "mx1.fleet.test.", "AAAA", "2001:db8::1");
	assert_rr(&f.r, "mx2.fleet.test.", "A", "192.0.2.2");
	/* owner, then type, then rdata */
	for (size_t i = 1; i < f.r.nrrs; i++) {
		const struct dnsgen_rr *a = &f.r.rrs[i - 1], *b = &f.r.rrs[i];
		int c = strcmp(a->owner, b->owner);
		if (c == 0)
			c = strcmp(a->type, b->type);
		if (c == 0)
			c = strcmp(a->rdata, b->rdata);
		if (c >= 0)
			fail_msg("record %zu (%s %s) not after %s %s", i, b->owner, b->type,
			    a->owner, a->type);
	}
	for (size_t i = 0; i < f.r.nrrs; i++) {
		assert_int_equal(f.r.rrs[i].ttl, 3600);
		assert_true(strlen(f.r.rrs[i].why) > 0);
	}
	dnsgen_result_free(&f.r);
}

static void
test_output_does_not_depend_on_input_order(void **state)
{
	struct fx f, g;
	fx_init(&f);
	fx_init(&g);
	struct dnsgen_host tmp = g.h[0];
	g.h[0] = g.h[1];
	g.h[1] = tmp;
	g.addrs1[0] = "192.0.2.1";
	g.addrs1[1] = "2001:DB8:0::1";
	assert_same_output(&f, &g);
}

static void
test_policy_lists_an_alias_and_the_cname_target(void **state)
{
	struct fx f;
	fx_init(&f);
	gen_ok(&f);
	assert_string_equal(f.r.sts_policy,
	    "version: STSv1\r\n"
	    "mode: enforce\r\n"
	    "mx: mail.example.net\r\n"
	    "mx: mx1.fleet.test\r\n"
	    "mx: mx2.fleet.test\r\n"
	    "max_age: 604800\r\n");
	/* the project's own MTA-STS parser accepts it and matches each MX */
	struct sts_policy *p = NULL;
	char err[STS_ERR_MAX];
	assert_int_equal(sts_policy_parse(f.r.sts_policy, strlen(f.r.sts_policy), &p, err,
	    sizeof(err)), STS_OK);
	assert_true(sts_mx_match(p, "mail.example.net"));
	assert_true(sts_mx_match(p, "mx2.fleet.test"));
	sts_policy_free(p);
	dnsgen_result_free(&f.r);
}

static void
test_mta_sts_record_carries_the_policy_id(void **state)
{
	struct fx f;
	char id[33], want[64];
	fx_init(&f);
	f.d.sts_mode = "testing";
	gen_ok(&f);
	dnsgen_sts_id(f.r.sts_policy, id);
	assert_string_equal(f.r.sts_id, id);
	assert_int_equal(strlen(id), 32);
	assert_non_null(strstr(f.r.sts_policy, "mode: testing\r\n"));
	snprintf(want, sizeof(want), "\"v=STSv1; id=%s\"", id);
	assert_rr(&f.r, "_mta-sts.example.test.", "TXT", want);
	/* the policy host is every serving host */
	assert_int_equal(count_rr(&f.r, "mta-sts.example.test.", "A"), 2);
	assert_rr(&f.r, "mta-sts.example.test.", "AAAA", "2001:db8::1");
	struct sts_txt t;
	char err[STS_ERR_MAX];
	size_t n;
	char *txt = txt_joined(only_rr(&f.r, "_mta-sts.example.test.", "TXT"), &n);
	assert_int_equal(sts_txt_parse_record(txt, strlen(txt), &t, err, sizeof(err)), STS_OK);
	assert_string_equal(t.id, id);
	free(txt);
	dnsgen_result_free(&f.r);
}

static void
test_sts_id_is_hex_of_the_first_16_bytes_of_sha256(void **state)
{
	char id[33];
	dnsgen_sts_id("abc", id);
	assert_string_equal(id, "ba7816bf8f01cfea414140de5dae2223");
}

static void
test_id_changes_when_an_alias_is_added_not_when_a_ttl_changes(void **state)
{
	struct fx f;
	char before[33];
	fx_init(&f);
	gen_ok(&f);
	strcpy(before, f.r.sts_id);
	dnsgen_result_free(&f.r);

	f.d.ttl = 300;
	gen_ok(&f);
	assert_string_equal(f.r.sts_id, before);
	assert_int_equal(f.r.rrs[0].ttl, 300);
	dnsgen_result_free(&f.r);

	char *aliases1[] = { "smtp.example.org" };
	char *names1[] = { "mx1.fleet.test", "smtp.example.org", "mta-sts.example.test" };
	f.h[1].aliases = aliases1;
	f.h[1].naliases = 1;
	f.c[0].names = names1;
	f.c[0].nnames = 3;
	gen_ok(&f);
	assert_string_not_equal(f.r.sts_id, before);
	assert_non_null(strstr(f.r.sts_policy, "mx: smtp.example.org\r\n"));
	assert_int_equal(f.r.nerrors, 0);
	dnsgen_result_free(&f.r);
}

static void
test_certificate_lacking_an_alias_yields_cert_name_missing(void **state)
{
	struct fx f;
	fx_init(&f);
	f.c[1].nnames = 1;		/* only MX2.fleet.test */
	gen_ok(&f);
	assert_error(&f.r, "cert-name-missing", "h2: mail.example.net", "error");
	const struct dnsgen_error *e = find_error(&f.r, "cert-name-missing",
	    "h2: mail.example.net");
	assert_non_null(strstr(e->what, "h2"));
	assert_non_null(strstr(e->what, "mail.example.net"));
	assert_non_null(strstr(e->fix, "subjectAltNames"));
	assert_error(&f.r, "cert-name-missing", "h2: mta-sts.example.test", "error");
	assert_null(find_error(&f.r, "cert-name-missing", "h2: mx2.fleet.test"));
	assert_null(find_error(&f.r, "cert-name-missing", "h1: mx1.fleet.test"));
	/* the records are still generated, so the operator sees what is meant */
	assert_non_null(f.r.sts_policy);
	assert_rr(&f.r, "example.test.", "MX", "10 mx2.fleet.test.");
	dnsgen_result_free(&f.r);
}

static void
test_wildcard_certificate_covers_every_name_of_one_label(void **state)
{
	struct fx f;
	char *wild[] = { "*.fleet.test", "*.example.test", "mail.example.net" };
	fx_init(&f);
	f.c[0].names = wild;
	f.c[0].nnames = 2;
	f.c[1].names = wild;
	f.c[1].nnames = 3;
	gen_ok(&f);
	assert_null(find_error(&f.r, "cert-name-missing", NULL));
	assert_int_equal(f.r.nerrors, 0);
	assert_non_null(f.r.sts_policy);
	f.c[0].nnames = 1;		/* *.fleet.test does not cover mta-sts.example.test */
	dnsgen_result_free(&f.r);
	gen_ok(&f);
	assert_error(&f.r, "cert-name-missing", "h1: mta-sts.example.test", "error");
	dnsgen_result_free(&f.r);
}

static void
test_wildcard_covers_one_label_not_two_nor_the_parent(void **state)
{
	assert_true(dnsgen_name_covers("*.fleet.test", "mx1.fleet.test"));
	assert_true(dnsgen_name_covers("*.Fleet.Test.", "MX1.fleet.test"));
	assert_false(dnsgen_name_covers("*.fleet.test", "a.b.fleet.test"));
	assert_false(dnsgen_name_covers("*.fleet.test", "fleet.test"));
	assert_false(dnsgen_name_covers("*.fleet.test", ".fleet.test"));
	assert_false(dnsgen_name_covers("mx*.fleet.test", "mx1.fleet.test"));
	assert_false(dnsgen_name_covers("*mx.fleet.test", "amx.fleet.test"));
	assert_false(dnsgen_name_covers("a.*.fleet.test", "a.b.fleet.test"));
	assert_false(dnsgen_name_covers("*", "test"));
	assert_false(dnsgen_name_covers("*.test", "fleet.test"));
	assert_true(dnsgen_name_covers("mx1.fleet.test", "MX1.FLEET.TEST."));
	assert_false(dnsgen_name_covers("mx1.fleet.test", "mx10.fleet.test"));
	assert_false(dnsgen_name_covers("", ""));
}

static void
test_mode_none_gives_no_policy_and_no_mta_sts_record(void **state)
{
	struct fx f;
	fx_init(&f);
	f.d.sts_mode = "none";
	f.c[1].nnames = 2;		/* lacks mta-sts.example.test: not needed now */
	gen_ok(&f);
	assert_null(f.r.sts_policy);
	assert_string_equal(f.r.sts_id, "");
	assert_int_equal(count_rr(&f.r, "_mta-sts.example.test.", "TXT"), 0);
	assert_int_equal(count_rr(&f.r, "mta-sts.example.test.", "A"), 0);
	assert_int_equal(count_rr(&f.r, "mta-sts.example.test.", "AAAA"), 0);
	assert_int_equal(f.r.nerrors, 0);
	/* everything else is still there */
	assert_int_equal(count_rr(&f.r, "example.test.", "MX"), 2);
	assert_int_equal(count_rr(&f.r, "_smtp._tls.example.test.", "TXT"), 1);
	dnsgen_result_free(&f.r);
}

static void
test_defaults_for_tlsrpt_spf_dmarc_and_dkim(void **state)
{
	struct fx f;
	fx_init(&f);
	gen_ok(&f);
	assert_rr(&f.r, "_smtp._tls.example.test.", "TXT",
	    "\"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"");
	assert_rr(&f.r, "_smtp._tls.mx1.fleet.test.", "TXT",
	    "\"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"");
	assert_rr(&f.r, "_smtp._tls.mx2.fleet.test.", "TXT",
	    "\"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"");
	assert_rr(&f.r, "example.test.", "TXT",
	    "\"v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 ip6:2001:db8::1 -all\"");
	assert_rr(&f.r, "_dmarc.example.test.", "TXT",
	    "\"v=DMARC1; p=none; rua=mailto:dmarc@example.test\"");
	assert_rr(&f.r, "s2026._domainkey.example.test.", "TXT",
	    "\"v=DKIM1; k=ed25519; p=" ED25519_B64 "\"");
	assert_rr(&f.r, "s2027._domainkey.example.test.", "TXT",
	    "\"v=DKIM1; k=ed25519; p=" ED25519_B64 "\"");
	assert_int_equal(f.r.nerrors, 0);
	dnsgen_result_free(&f.r);
}

static void
test_operator_settings_replace_the_defaults(void **state)
{
	struct fx f;
	fx_init(&f);
	f.d.tlsrpt_rua = "mailto:tls@reports.example,https://r.example/tlsrpt";
	f.d.spf = "v=spf1 include:_spf.example.net ~all";
	f.d.dmarc = "v=DMARC1; p=reject";
	gen_ok(&f);
	assert_rr(&f.r, "_smtp._tls.example.test.", "TXT",
	    "\"v=TLSRPTv1; rua=mailto:tls@reports.example,https://r.example/tlsrpt\"");
	assert_rr(&f.r, "example.test.", "TXT", "\"v=spf1 include:_spf.example.net ~all\"");
	assert_rr(&f.r, "_dmarc.example.test.", "TXT", "\"v=DMARC1; p=reject\"");
	assert_int_equal(f.r.nerrors, 0);
	dnsgen_result_free(&f.r);
}

static void
test_txt_escapes_quote_and_backslash(void **state)
{
	struct fx f;
	const char *dmarc = "v=DMARC1; p=none; rua=mailto:\"d\\m\"@example.test";
	size_t n;
	fx_init(&f);
	f.d.dmarc = (char *)dmarc;
	gen_ok(&f);
	char *s = txt_joined(only_rr(&f.r, "_dmarc.example.test.", "TXT"), &n);
	assert_string_equal(s, dmarc);
	free(s);
	dnsgen_result_free(&f.r);
}

static char *
rsa2048_spki_b64(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	unsigned char *der = NULL;
	assert_non_null(k);
	int len = i2d_PUBKEY(k, &der);
	assert_true(len > 256);
	char *b64 = calloc(1, (size_t)len * 2 + 4);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return b64;
}

static void
test_rsa_2048_dkim_key_is_split_in_strings_of_at_most_255_bytes(void **state)
{
	struct fx f;
	char *b64 = rsa2048_spki_b64(), want[2048];
	size_t n;
	fx_init(&f);
	f.k[0] = (struct dnsgen_dkim){ "rsa1", "rsa", b64, DNSGEN_DKIM_ACTIVE };
	gen_ok(&f);
	char *s = txt_joined(only_rr(&f.r, "rsa1._domainkey.example.test.", "TXT"), &n);
	snprintf(want, sizeof(want), "v=DKIM1; k=rsa; p=%s", b64);
	assert_string_equal(s, want);
	assert_true(strlen(want) > 255);
	assert_int_equal(n, (strlen(want) + 254) / 255);
	free(s);
	free(b64);
	dnsgen_result_free(&f.r);
}

static void
test_every_generated_record_parses_with_ldns(void **state)
{
	struct fx f;
	fx_init(&f);
	gen_ok(&f);
	assert_true(f.r.nrrs >= 20);
	for (size_t i = 0; i < f.r.nrrs; i++) {
		ldns_rr *l = ldns_parse(&f.r.rrs[i]);
		char *owner = ldns_rdf2str(ldns_rr_owner(l));
		assert_string_equal(owner, f.r.rrs[i].owner);
		free(owner);
		ldns_rr_free(l);
	}
	dnsgen_result_free(&f.r);
}

static int
any_record_mentions(const struct dnsgen_result *r, const char *s)
{
	for (size_t i = 0; i < r->nrrs; i++)
		if (strstr(r->rrs[i].owner, s) || strstr(r->rrs[i].rdata, s))
			return 1;
	return r->sts_policy != NULL && strstr(r->sts_policy, s) != NULL;
}

static void
test_hostile_host_name_yields_bad_host_data_and_no_record(void **state)
{
	struct fx f;
	char longname[310];
	memset(longname, 'a', 300);
	memcpy(longname + 300, ".evil", 6);
	fx_init(&f);
	f.h[1].mx_name = "evil\n.example";
	f.h[0].mx_name = longname;
	gen_ok(&f);
	assert_error(&f.r, "bad-host-data", NULL, "error");
	assert_false(any_record_mentions(&f.r, "evil"));
	assert_error(&f.r, "no-hosts", NULL, "error");
	for (size_t i = 0; i < f.r.nerrors; i++) {
		assert_null(strchr(f.r.errors[i].subject, '\n'));
		assert_null(strchr(f.r.errors[i].what, '\n'));
		assert_true(strlen(f.r.errors[i].subject) < 200);
	}
	dnsgen_result_free(&f.r);
}

static void
test_hostile_address_key_and_alias_are_skipped(void **state)
{
	struct fx f;
	char *addrs[] = { "192.0.2.1\"; evil", "192.0.2.7", "999.1.1.1" };
	char *names[] = { "mx1.fleet.test", "evil\".fleet.test", "mta-sts.example.test" };
	fx_init(&f);
	f.h[1].addrs = addrs;
	f.h[1].naddrs = 3;
	f.h[1].next_spki = "EVIL" KEY_B;
	f.c[1].spki_sha256 = KEY_C "00";
	f.c[0].names = names;
	f.c[0].nnames = 3;
	gen_ok(&f);
	assert_error(&f.r, "bad-host-data", NULL, "error");
	assert_false(any_record_mentions(&f.r, "evil"));
	assert_false(any_record_mentions(&f.r, "999.1"));
	assert_false(any_record_mentions(&f.r, KEY_C));
	assert_rr(&f.r, "mx1.fleet.test.", "A", "192.0.2.7");
	assert_int_equal(count_rr(&f.r, "mx1.fleet.test.", "A"), 1);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA"), 1);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx2.fleet.test.", "TLSA"), 1);
	dnsgen_result_free(&f.r);
}

static void
test_underscore_names_are_not_host_names(void **state)
{
	struct fx f;
	char *aliases[] = { "_x.example.net" };
	fx_init(&f);
	f.h[1].mx_name = "mx_1.fleet.test";
	f.h[0].aliases = aliases;
	gen_ok(&f);
	assert_error(&f.r, "bad-host-data", "h1: mx_1.fleet.test", "error");
	assert_error(&f.r, "bad-setting", "h2: _x.example.net", "error");
	assert_false(any_record_mentions(&f.r, "mx_1"));
	assert_false(any_record_mentions(&f.r, "_x."));
	dnsgen_result_free(&f.r);
}

static void
test_no_host_serving_the_domain_is_an_error(void **state)
{
	struct fx f;
	fx_init(&f);
	f.d.nhosts = 0;
	gen_ok(&f);
	assert_error(&f.r, "no-hosts", "example.test", "error");
	assert_int_equal(count_rr(&f.r, "example.test.", "MX"), 0);
	assert_null(f.r.sts_policy);
	assert_string_equal(f.r.sts_id, "");
	assert_int_equal(count_rr(&f.r, "_mta-sts.example.test.", "TXT"), 0);
	assert_rr(&f.r, "example.test.", "TXT", "\"v=spf1 -all\"");
	dnsgen_result_free(&f.r);
}

static void
test_host_without_name_or_address_is_an_error(void **state)
{
	struct fx f;
	fx_init(&f);
	f.h[0].mx_name = "";
	f.h[1].naddrs = 0;
	gen_ok(&f);
	assert_error(&f.r, "host-no-name", "h2", "error");
	dnsgen_result_free(&f.r);
	f.h[0].host_id = "";		/* the subject still names something */
	gen_ok(&f);
	assert_error(&f.r, "host-no-name", "(empty)", "error");
	assert_error(&f.r, "host-no-address", "h1", "error");
	assert_int_equal(count_rr(&f.r, "example.test.", "MX"), 0);
	assert_error(&f.r, "no-hosts", "example.test", "error");
	dnsgen_result_free(&f.r);
}

static void
test_bad_settings_are_errors_and_never_published(void **state)
{
	struct fx f;
	fx_init(&f);
	f.k[0].public_b64 = "not base64!";
	f.k[1].selector = "bad selector";
	f.d.spf = "v=spf1 -all\r\nevil";
	gen_ok(&f);
	assert_error(&f.r, "bad-setting", NULL, "error");
	assert_int_equal(count_rr(&f.r, "s2026._domainkey.example.test.", "TXT"), 0);
	assert_false(any_record_mentions(&f.r, "evil"));
	assert_false(any_record_mentions(&f.r, "bad selector"));
	/* the default SPF stands in */
	assert_rr(&f.r, "example.test.", "TXT",
	    "\"v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 ip6:2001:db8::1 -all\"");
	dnsgen_result_free(&f.r);
}

static void
test_unusable_domain_name_is_refused(void **state)
{
	struct fx f;
	char err[256] = "";
	fx_init(&f);
	f.d.name = "exa mple.test";
	assert_int_equal(dnsgen_domain(&f.d, &f.r, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	f.d.name = NULL;
	assert_int_equal(dnsgen_domain(&f.d, &f.r, err, sizeof(err)), -1);
	/* a name valid itself whose _smtp._tls owner would be too long */
	char longname[260];
	memset(longname, 'a', 250);
	memcpy(longname + 50, ".", 1);
	memcpy(longname + 100, ".", 1);
	memcpy(longname + 150, ".", 1);
	memcpy(longname + 200, ".", 1);
	longname[250] = '\0';
	f.d.name = longname;
	assert_int_equal(dnsgen_domain(&f.d, &f.r, err, sizeof(err)), -1);
}

static void
test_retired_key_gets_no_tlsa(void **state)
{
	struct fx f;
	char *retired[] = { KEY_C };
	fx_init(&f);
	f.h[1].retired_spki = retired;
	f.h[1].nretired = 1;
	gen_ok(&f);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx1.fleet.test.", "TLSA"), 2);
	assert_rr(&f.r, "_25._tcp.mx2.fleet.test.", "TLSA", "3 1 1 " KEY_C);
	assert_int_equal(count_rr(&f.r, "_25._tcp.mx2.fleet.test.", "TLSA"), 2);
	dnsgen_result_free(&f.r);
}

static void
test_bad_mode_max_age_and_rua_fall_back_to_their_defaults(void **state)
{
	struct fx f;
	fx_init(&f);
	f.d.sts_mode = "enforcing";
	f.d.sts_max_age = 31557601;
	f.d.tlsrpt_rua = "ftp://reports.example.test";
	gen_ok(&f);
	assert_error(&f.r, "bad-setting", "sts_mode", "error");
	assert_error(&f.r, "bad-setting", "sts_max_age", "error");
	assert_error(&f.r, "bad-setting", "tlsrpt_rua", "error");
	assert_non_null(strstr(f.r.sts_policy, "mode: enforce\r\n"));
	assert_non_null(strstr(f.r.sts_policy, "max_age: 604800\r\n"));
	assert_rr(&f.r, "_smtp._tls.example.test.", "TXT",
	    "\"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\"");
	assert_false(any_record_mentions(&f.r, "ftp:"));
	dnsgen_result_free(&f.r);
}

static void
test_domain_name_case_and_final_dot_do_not_change_the_records(void **state)
{
	struct fx f, g;
	fx_init(&f);
	fx_init(&g);
	g.d.name = "Example.TEST.";
	assert_same_output(&f, &g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_with_current_and_next_key_yields_two_tlsa),
		cmocka_unit_test(test_next_key_equal_to_served_key_yields_one_tlsa),
		cmocka_unit_test(test_host_without_next_key_warns_that_a_key_change_breaks_dane),
		cmocka_unit_test(test_one_mx_per_host_sorted_lower_case_preference_10),
		cmocka_unit_test(test_output_does_not_depend_on_input_order),
		cmocka_unit_test(test_policy_lists_an_alias_and_the_cname_target),
		cmocka_unit_test(test_mta_sts_record_carries_the_policy_id),
		cmocka_unit_test(test_sts_id_is_hex_of_the_first_16_bytes_of_sha256),
		cmocka_unit_test(test_id_changes_when_an_alias_is_added_not_when_a_ttl_changes),
		cmocka_unit_test(test_certificate_lacking_an_alias_yields_cert_name_missing),
		cmocka_unit_test(test_wildcard_certificate_covers_every_name_of_one_label),
		cmocka_unit_test(test_wildcard_covers_one_label_not_two_nor_the_parent),
		cmocka_unit_test(test_mode_none_gives_no_policy_and_no_mta_sts_record),
		cmocka_unit_test(test_defaults_for_tlsrpt_spf_dmarc_and_dkim),
		cmocka_unit_test(test_operator_settings_replace_the_defaults),
		cmocka_unit_test(test_txt_escapes_quote_and_backslash),
		cmocka_unit_test(test_rsa_2048_dkim_key_is_split_in_strings_of_at_most_255_bytes),
		cmocka_unit_test(test_every_generated_record_parses_with_ldns),
		cmocka_unit_test(test_hostile_host_name_yields_bad_host_data_and_no_record),
		cmocka_unit_test(test_hostile_address_key_and_alias_are_skipped),
		cmocka_unit_test(test_underscore_names_are_not_host_names),
		cmocka_unit_test(test_no_host_serving_the_domain_is_an_error),
		cmocka_unit_test(test_host_without_name_or_address_is_an_error),
		cmocka_unit_test(test_bad_settings_are_errors_and_never_published),
		cmocka_unit_test(test_unusable_domain_name_is_refused),
		cmocka_unit_test(test_retired_key_gets_no_tlsa),
		cmocka_unit_test(test_bad_mode_max_age_and_rua_fall_back_to_their_defaults),
		cmocka_unit_test(test_domain_name_case_and_final_dot_do_not_change_the_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
