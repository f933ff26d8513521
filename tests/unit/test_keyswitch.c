/* mxd_keyswitch.c: when the next key's certificate counts as ready, on an
 * injected clock, and how the uploader's watch follows the file. */
#include "mxd_keyswitch.h"
#include "tlsid.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY	86400

struct fixture {
	char		 dir[64];
	char		 path[128];
	EVP_PKEY	*next, *other;
	char		 next_spki[TLSID_SPKI_HEX];
	time_t		 issued;
};

/* A self-signed certificate for key, valid [issued, issued + days). */
static void
write_cert(const char *path, EVP_PKEY *key, time_t issued, int days)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &issued);
	X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &issued);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx1.example.test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_keyswitch.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/smtp.pem.next", fx->dir);
	fx->next = EVP_EC_gen("P-256");
	fx->other = EVP_EC_gen("P-256");
	if (fx->next == NULL || fx->other == NULL || tlsid_spki_sha256(fx->next, fx->next_spki) < 0)
		return -1;
	fx->issued = time(NULL);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	unlink(fx->path);
	rmdir(fx->dir);
	EVP_PKEY_free(fx->next);
	EVP_PKEY_free(fx->other);
	free(fx);
	return 0;
}

static void
test_cert_for_the_next_key_is_ready_only_while_valid(void **state)
{
	struct fixture *fx = *state;
	char why[600];

	write_cert(fx->path, fx->next, fx->issued, 30);
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued + DAY, why,
	    sizeof(why)), 1);
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued - DAY, why,
	    sizeof(why)), 0);
	assert_non_null(strstr(why, "not valid before"));
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued + 31 * DAY,
	    why, sizeof(why)), 0);
	assert_non_null(strstr(why, "expired at"));
}

static void
test_cert_for_another_key_or_none_is_not_ready(void **state)
{
	struct fixture *fx = *state;
	char why[600];

	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued, why,
	    sizeof(why)), 0);
	assert_non_null(strstr(why, "no certificate for the next key"));
	write_cert(fx->path, fx->other, fx->issued, 30);
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued + 60, why,
	    sizeof(why)), 0);
	assert_non_null(strstr(why, "is not the next key's"));
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, "", fx->issued + 60, why,
	    sizeof(why)), 0);
	assert_non_null(strstr(why, "no next key"));
	FILE *f = fopen(fx->path, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	assert_int_equal(mxd_keyswitch_cert_ready(fx->path, fx->next_spki, fx->issued + 60, why,
	    sizeof(why)), 0);
}

static void
test_watch_follows_the_file_and_the_clock(void **state)
{
	struct fixture *fx = *state;
	struct mxd_next_cert_watch w;
	Mxfleet__V1__HostIdentity id = MXFLEET__V1__HOST_IDENTITY__INIT;

	memset(&w, 0, sizeof(w));
	id.next_cert_path = fx->path;
	id.next_spki_sha256 = fx->next_spki;
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued), 0);	/* none, none */
	write_cert(fx->path, fx->next, fx->issued, 30);
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued + 60), 1);
	assert_true(id.next_cert_ready);
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued + 120), 0);	/* unchanged */
	/* Time alone makes it unfit, without the file changing. */
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued + 31 * DAY), 1);
	assert_false(id.next_cert_ready);
	/* Replaced by one for another key (another inode): read again. */
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", fx->path);
	write_cert(tmp, fx->other, fx->issued, 30);
	assert_int_equal(rename(tmp, fx->path), 0);
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued + 60), 0);
	assert_false(id.next_cert_ready);
	assert_non_null(strstr(w.why, "is not the next key's"));
	unlink(fx->path);
	assert_int_equal(mxd_keyswitch_watch(&w, &id, fx->issued + 60), 0);
	assert_false(id.next_cert_ready);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cert_for_the_next_key_is_ready_only_while_valid,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_for_another_key_or_none_is_not_ready,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_follows_the_file_and_the_clock,
		    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
