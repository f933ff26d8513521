/* lib/dkim_sign.c: the DKIM-Signature a receiving domain checks on our TLS
 * reports. Relaxed canonicalization as RFC 6376 3.4.2/3.4.4 defines it,
 * a signature that covers exactly the bytes a verifier hashes (checked
 * with OpenSSL against canonical text written out by hand), headers taken
 * bottom-up with oversigning, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "dkim_sign.h"

#define T0	((time_t)1704067200)	/* 2024-01-01T00:00:00Z */

static EVP_PKEY *rsa2048;
static char *rsa2048_pem;

static char *
key_pem(EVP_PKEY *pk, const EVP_CIPHER *enc)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *pem;
	long n;

	assert_int_equal(PEM_write_bio_PrivateKey(b, pk, enc, NULL, 0, NULL,
	    enc != NULL ? "secret" : NULL), 1);
	n = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)n);
	BIO_free(b);
	return pem;
}

static int
setup_key(void **state)
{
	(void)state;
	rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (rsa2048 == NULL)
		return -1;
	rsa2048_pem = key_pem(rsa2048, NULL);
	return 0;
}

static int
teardown_key(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa2048);
	free(rsa2048_pem);
	return 0;
}

typedef void canon_fn(const char *, size_t, struct buf *);

static void
assert_canon(canon_fn *fn, const char *in, const char *want)
{
	struct buf b;

	buf_init(&b);
	fn(in, strlen(in), &b);
	buf_appendc(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

#define assert_canon_body(in, want)	assert_canon(dkim_sign_canon_body, in, want)
#define assert_canon_header(in, want)	assert_canon(dkim_sign_canon_header, in, want)

/* The example of RFC 6376 3.4.5. */
static void
test_relaxed_body_is_the_rfc6376_example(void **state)
{
	(void)state;
	assert_canon_body(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void
test_relaxed_body_folds_wsp_runs_and_drops_wsp_at_line_ends(void **state)
{
	(void)state;
	assert_canon_body("a  \t b\t\r\n\t x \r\n", "a b\r\n x\r\n");
	assert_canon_body("tab\there\r\n", "tab here\r\n");
}

static void
test_relaxed_body_drops_trailing_empty_lines_but_keeps_inner_ones(void **state)
{
	(void)state;
	assert_canon_body("x\r\n\r\n  \r\n\t\r\n", "x\r\n");
	assert_canon_body("a\r\n\r\n \r\nb\r\n", "a\r\n\r\n\r\nb\r\n");
}

/* RFC 6376 3.4.4 (with erratum 3664's reading): an empty body is empty;
 * a last line without CRLF gets one. */
static void
test_relaxed_body_empty_stays_empty_and_last_line_gets_crlf(void **state)
{
	(void)state;
	assert_canon_body("", "");
	assert_canon_body("\r\n\r\n", "");
	assert_canon_body(" \t ", "");
	assert_canon_body("abc", "abc\r\n");
}

/* The two header fields of RFC 6376 3.4.5. */
static void
test_relaxed_header_is_the_rfc6376_example(void **state)
{
	(void)state;
	assert_canon_header("A: X", "a:X\r\n");
	assert_canon_header("B : Y\t\r\n\tZ  ", "b:Y Z\r\n");
}

static void
test_relaxed_header_lowercases_the_name_and_unfolds_the_value(void **state)
{
	(void)state;
	assert_canon_header("SUBJect:\t hello \r\n   world\t", "subject:hello world\r\n");
	assert_canon_header("X-Empty:   ", "x-empty:\r\n");
	assert_canon_header("TLS-Report-Domain:recipient.example",
	    "tls-report-domain:recipient.example\r\n");
}

static char *
sign_ok(const char *msg, const char *const *headers, const char *const *oversign)
{
	struct dkim_sign_params p = { .domain = "mxfleet.example", .selector = "mxf20240101",
		.key_pem = rsa2048_pem, .headers = headers, .oversign = oversign, .now = T0 };
	char err[DKIM_SIGN_ERR_MAX] = "";
	char *sig = NULL;

	if (dkim_sign(&p, msg, strlen(msg), &sig, err, sizeof(err)) != 0)
		fail_msg("refused: %s", err);
	return sig;
}

/* The value of tag name in the signature, with folding removed. */
static char *
tag(const char *sig, const char *name)
{
	char key[16];
	const char *p;
	char *v, *o;

	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(sig, key);
	if (p == NULL) {
		snprintf(key, sizeof(key), "\t%s=", name);
		p = strstr(sig, key);
	}
	assert_non_null(p);
	p += strlen(key);
	v = o = calloc(1, strlen(p) + 1);
	for (; *p != '\0' && *p != ';'; p++)
		if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
			*o++ = *p;
	return v;
}

static void
assert_tag(const char *sig, const char *name, const char *want)
{
	char *v = tag(sig, name);

	assert_string_equal(v, want);
	free(v);
}

static void
assert_folded(const char *sig)
{
	assert_true(strncmp(sig, "DKIM-Signature: ", 16) == 0);
	assert_true(strlen(sig) > 2 && strcmp(sig + strlen(sig) - 2, "\r\n") == 0);
	for (const char *l = sig; *l != '\0';) {
		const char *e = strstr(l, "\r\n");

		assert_non_null(e);
		assert_true(e - l <= DKIM_SIGN_FOLD);
		assert_null(memchr(l, '\n', (size_t)(e - l)));
		l = e + 2;
		if (*l != '\0')
			assert_int_equal(*l, '\t');	/* every further line is a continuation */
	}
}

/* What a verifier hashes for the signature itself: relaxed, b= empty, no
 * final CRLF. Our header has single spaces and "CRLF TAB" folds only, so
 * relaxed form is: name lowercased, each fold one SP. */
static void
append_sig_canon(struct buf *h, const char *sig)
{
	const char *b = strstr(sig, "b=");

	while (b != NULL && b > sig && b[-1] != '\t' && b[-1] != ' ')
		b = strstr(b + 1, "b=");
	assert_non_null(b);
	buf_appends(h, "dkim-signature:");
	for (const char *p = sig + strlen("DKIM-Signature: "); p < b + 2; p++) {
		if (p[0] == '\r' && p[1] == '\n' && p[2] == '\t') {
			buf_appendc(h, ' ');
			p += 2;
		} else {
			buf_appendc(h, *p);
		}
	}
}

/* The b= signature verifies over canon_headers plus the signature header. */
static void
assert_signature_covers(const char *sig, const char *canon_headers)
{
	struct buf h;
	char *b64 = tag(sig, "b");
	unsigned char raw[1024];
	int n;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	buf_init(&h);
	buf_appends(&h, canon_headers);
	append_sig_canon(&h, sig);
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
	assert_int_equal(n, 258);	/* 256 bytes, padding counted by DecodeBlock */
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, rsa2048), 1);
	assert_int_equal(EVP_DigestVerify(ctx, raw, 256, (unsigned char *)h.data, h.len), 1);
	EVP_MD_CTX_free(ctx);
	buf_free(&h);
	free(b64);
}

static const char two_tags_msg[] =
	"From: TLS Reports <tlsrpt@mxfleet.example>\r\n"
	"To: tlsrpt@recipient.example\r\n"
	"X-Tag: one\r\n"
	"Subject:  Report   Domain\r\n\tfolded\r\n"
	"X-Tag: two\r\n"
	"\r\n"
	"body  line \r\n\r\n";

/* RFC 6376 5.4.2: the last X-Tag is hashed first; oversigned names get an
 * h= entry that matches no header, so adding one breaks the signature. */
static void
test_signature_takes_headers_bottom_up_and_oversigns(void **state)
{
	const char *const headers[] = { "To", "subject", "X-Tag", NULL };
	const char *const oversign[] = { "Subject", NULL };
	char *sig;

	(void)state;
	sig = sign_ok(two_tags_msg, headers, oversign);
	assert_tag(sig, "h", "from:from:to:subject:subject:x-tag:x-tag");
	assert_signature_covers(sig,
	    "from:TLS Reports <tlsrpt@mxfleet.example>\r\n"
	    "to:tlsrpt@recipient.example\r\n"
	    "subject:Report Domain folded\r\n"
	    "x-tag:two\r\n"
	    "x-tag:one\r\n");
	free(sig);
}

static void
test_signature_tags_are_the_callers_and_the_clock(void **state)
{
	char *sig;

	(void)state;
	sig = sign_ok(two_tags_msg, NULL, NULL);
	assert_folded(sig);
	assert_tag(sig, "v", "1");
	assert_tag(sig, "a", "rsa-sha256");
	assert_tag(sig, "c", "relaxed/relaxed");
	assert_tag(sig, "d", "mxfleet.example");
	assert_tag(sig, "s", "mxf20240101");
	assert_tag(sig, "t", "1704067200");
	assert_tag(sig, "h", "from:from");
	/* sha256("body line\r\n") */
	assert_tag(sig, "bh", "GVz/CG5ZsAtKynLk6yzbqFfB4F5h3X5ZmXt9rc6jZRI=");
	assert_signature_covers(sig, "from:TLS Reports <tlsrpt@mxfleet.example>\r\n");
	free(sig);
}

static void
test_empty_body_hashes_as_empty_and_long_h_folds(void **state)
{
	const char *const headers[] = { "To", "Subject", "Date", "Message-ID",
		"MIME-Version", "Content-Type", "TLS-Report-Domain", "TLS-Report-Submitter",
		"TLS-Required", NULL };
	char *sig;

	(void)state;
	sig = sign_ok("From: a@mxfleet.example\r\n\r\n", headers, headers);
	assert_folded(sig);
	assert_tag(sig, "bh", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	assert_tag(sig, "h", "from:from:to:subject:date:message-id:mime-version:"
	    "content-type:tls-report-domain:tls-report-submitter:tls-required");
	assert_signature_covers(sig, "from:a@mxfleet.example\r\n");
	free(sig);
	/* no empty line at all: all header, empty body */
	sig = sign_ok("From: a@mxfleet.example\r\n", NULL, NULL);
	assert_tag(sig, "bh", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(sig);
}

static void
assert_refused(const struct dkim_sign_params *p, const char *msg, const char *why)
{
	char err[DKIM_SIGN_ERR_MAX] = "";
	char *sig = (char *)1;

	assert_int_equal(dkim_sign(p, msg, strlen(msg), &sig, err, sizeof(err)), -1);
	assert_null(sig);
	if (strstr(err, why) == NULL)
		fail_msg("err \"%s\" does not say \"%s\"", err, why);
	/* nothing of the key ever shows in a reason */
	assert_null(strstr(err, "MII"));
	assert_null(strstr(err, "BEGIN"));
}

static void
test_message_without_from_or_with_bare_newlines_is_refused(void **state)
{
	struct dkim_sign_params p = { .domain = "mxfleet.example", .selector = "s1",
		.key_pem = rsa2048_pem, .now = T0 };

	(void)state;
	assert_refused(&p, "To: b@recipient.example\r\nSubject: x\r\n\r\nbody\r\n", "no From");
	assert_refused(&p, "Subject: From: a@b\r\n\r\n", "no From");
	assert_refused(&p, "From: a@mxfleet.example\n\r\nbody\r\n", "bare LF");
	assert_refused(&p, "From: a@mxfleet.example\r\n\r\nbody\nmore\r\n", "bare LF");
	assert_refused(&p, "From: a@mxfleet.example\r\n\r\nbody\rmore\r\n", "bare CR");
	assert_refused(&p, "From: a@mxfleet.example\r\nno colon here\r\n\r\n", "not \"name: value\"");
	assert_refused(&p, " From: a@mxfleet.example\r\n\r\n", "continuation");
}

static void
test_tags_that_would_break_out_are_refused(void **state)
{
	struct dkim_sign_params p = { .domain = "mxfleet.example; s=evil",
		.selector = "s1", .key_pem = rsa2048_pem, .now = T0 };
	const char *msg = "From: a@mxfleet.example\r\n\r\n";
	const char *const bad_name[] = { "Sub;ject", NULL };
	const char *const colon_name[] = { "X:Y", NULL };

	(void)state;
	assert_refused(&p, msg, "d= (signing domain) holds byte 0x3b");
	p.domain = "mxfleet.example";
	p.selector = "s1\r\nBcc: x@y";
	assert_refused(&p, msg, "s= (selector) holds byte 0x0d");
	p.selector = "";
	assert_refused(&p, msg, "s= (selector) is empty");
	p.selector = "s1";
	p.domain = "mxfleet..example";
	assert_refused(&p, msg, "empty label");
	p.domain = "mxfleet.example";
	p.headers = bad_name;
	assert_refused(&p, msg, "holds byte 0x3b");
	p.headers = colon_name;
	assert_refused(&p, msg, "holds byte 0x3a");
}

static void
test_keys_that_are_not_rsa_1024_or_more_are_refused(void **state)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768);
	char *ec_pem = key_pem(ec, NULL), *small_pem = key_pem(small, NULL);
	char *enc_pem = key_pem(rsa2048, EVP_aes_256_cbc());
	struct dkim_sign_params p = { .domain = "mxfleet.example", .selector = "s1",
		.now = T0 };
	const char *msg = "From: a@mxfleet.example\r\n\r\n";

	(void)state;
	p.key_pem = ec_pem;
	assert_refused(&p, msg, "not RSA");
	p.key_pem = small_pem;
	assert_refused(&p, msg, "has 768 bits, fewer than 1024");
	p.key_pem = enc_pem;
	assert_refused(&p, msg, "reading the private key");
	p.key_pem = "-----BEGIN PRIVATE KEY-----\nMIIgarbage\n-----END PRIVATE KEY-----\n";
	assert_refused(&p, msg, "reading the private key");
	p.key_pem = NULL;
	assert_refused(&p, msg, "no private key");
	EVP_PKEY_free(ec);
	EVP_PKEY_free(small);
	free(ec_pem);
	free(small_pem);
	free(enc_pem);
}

static void
test_rsa_1024_is_accepted(void **state)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	char *pem = key_pem(k, NULL);
	struct dkim_sign_params p = { .domain = "mxfleet.example", .selector = "s1",
		.key_pem = pem, .now = T0 };
	const char *msg = "From: a@mxfleet.example\r\n\r\n";
	char err[DKIM_SIGN_ERR_MAX] = "", *sig = NULL;

	(void)state;
	assert_int_equal(dkim_sign(&p, msg, strlen(msg), &sig, err, sizeof(err)), 0);
	assert_folded(sig);
	free(sig);
	EVP_PKEY_free(k);
	free(pem);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relaxed_body_is_the_rfc6376_example),
		cmocka_unit_test(test_relaxed_body_folds_wsp_runs_and_drops_wsp_at_line_ends),
		cmocka_unit_test(test_relaxed_body_drops_trailing_empty_lines_but_keeps_inner_ones),
		cmocka_unit_test(test_relaxed_body_empty_stays_empty_and_last_line_gets_crlf),
		cmocka_unit_test(test_relaxed_header_is_the_rfc6376_example),
		cmocka_unit_test(test_relaxed_header_lowercases_the_name_and_unfolds_the_value),
		cmocka_unit_test(test_signature_takes_headers_bottom_up_and_oversigns),
		cmocka_unit_test(test_signature_tags_are_the_callers_and_the_clock),
		cmocka_unit_test(test_empty_body_hashes_as_empty_and_long_h_folds),
		cmocka_unit_test(test_message_without_from_or_with_bare_newlines_is_refused),
		cmocka_unit_test(test_tags_that_would_break_out_are_refused),
		cmocka_unit_test(test_keys_that_are_not_rsa_1024_or_more_are_refused),
		cmocka_unit_test(test_rsa_1024_is_accepted),
	};

	return cmocka_run_group_tests(tests, setup_key, teardown_key);
}
