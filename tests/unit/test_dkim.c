/* controld/dkim.c: the DKIM keys controld makes for a hosted domain and
 * the selectors they are published under. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim.h"

#define DAY_20261205	((time_t)1796428800)	/* 2026-12-05T00:00:00Z */

static void
test_selector_is_named_after_the_utc_day(void **state)
{
	char sel[DKIM_SELECTOR_MAX];

	(void)state;
	dkim_selector(DAY_20261205 + 86399, NULL, 0, sel);
	assert_string_equal(sel, "mxf20261205");
	dkim_selector(DAY_20261205 + 86400, NULL, 0, sel);
	assert_string_equal(sel, "mxf20261206");
}

static void
test_selector_taken_that_day_gets_the_next_number(void **state)
{
	char *taken[] = { "mxf20261205", "mxf20261204", "mxf20261205-2" };
	char sel[DKIM_SELECTOR_MAX];

	(void)state;
	dkim_selector(DAY_20261205, taken, 2, sel);
	assert_string_equal(sel, "mxf20261205-2");
	dkim_selector(DAY_20261205, taken, 3, sel);
	assert_string_equal(sel, "mxf20261205-3");
}

/* p= is the base64 of the SubjectPublicKeyInfo of the private key's pair. */
static void
test_generated_key_publishes_the_public_half_of_its_rsa_2048_pair(void **state)
{
	struct dkim_key k;
	char err[300];
	unsigned char *der = NULL;
	int n;

	(void)state;
	assert_int_equal(dkim_key_generate(&k, err, sizeof(err)), 0);
	assert_string_equal(k.key_type, "rsa");
	assert_non_null(strstr(k.private_pem, "-----BEGIN PRIVATE KEY-----"));
	BIO *b = BIO_new_mem_buf(k.private_pem, -1);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bits(pk), 2048);
	n = i2d_PUBKEY(pk, &der);
	assert_true(n > 0);
	char *b64 = malloc(4 * ((size_t)n + 2) / 3 + 1);
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	assert_string_equal(k.public_b64, b64);
	free(b64);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	BIO_free(b);
	dkim_key_free(&k);
	assert_null(k.private_pem);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selector_is_named_after_the_utc_day),
		cmocka_unit_test(test_selector_taken_that_day_gets_the_next_number),
		cmocka_unit_test(test_generated_key_publishes_the_public_half_of_its_rsa_2048_pair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
