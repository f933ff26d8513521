/* A certificate's identity as DNS publishes it (issue 11, item 1): the SPKI
 * SHA-256 equals what the openssl CLI computes for the same certificate
 * (TLSA 3 1 1 data), the names are the DNS SANs (the CN only without any),
 * the expiry and key type are the certificate's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlsid.h"

static char dir[] = "/tmp/test_tlsid.XXXXXX";

/* Run cmd under sh; its first output line into out. */
static void
run(const char *cmd, char *out, size_t outsz)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	if (fgets(out, (int)outsz, p) == NULL)
		out[0] = '\0';
	assert_int_equal(pclose(p), 0);
	out[strcspn(out, " \n")] = '\0';
}

/* A self-signed certificate NAME.pem / NAME.key made by the openssl CLI. */
static void
make_cert(const char *name, const char *newkey, const char *subj, const char *san)
{
	char cmd[1024], out[64];
	snprintf(cmd, sizeof(cmd), "cd %s && openssl req -x509 -newkey %s -nodes -keyout %s.key"
	    " -out %s.pem -days 3 -subj '%s' %s%s 2>/dev/null && echo ok", dir, newkey, name, name,
	    subj, san ? "-addext subjectAltName=" : "", san ? san : "");
	run(cmd, out, sizeof(out));
	assert_string_equal(out, "ok");
}

/* What an operator computes for a TLSA 3 1 1 record. */
static void
cli_spki(const char *name, char *out, size_t outsz)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "openssl x509 -in %s/%s.pem -pubkey -noout | openssl pkey"
	    " -pubin -outform DER | sha256sum", dir, name);
	run(cmd, out, outsz);
}

static int64_t
cli_not_after(const char *name)
{
	char cmd[512], out[64];
	snprintf(cmd, sizeof(cmd), "date -u -d \"$(openssl x509 -in %s/%s.pem -noout -enddate |"
	    " cut -d= -f2)\" +%%s", dir, name);
	run(cmd, out, sizeof(out));
	return strtoll(out, NULL, 10);
}

static void
describe(const char *name, struct tlsid_cert *c)
{
	char path[256], err[256];
	X509 *x = NULL;
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	assert_int_equal(tlsid_read_cert(path, &x, err, sizeof(err)), 0);
	assert_int_equal(tlsid_cert_describe(x, c, err, sizeof(err)), 0);
	X509_free(x);
}

static void
test_rsa_certificate_spki_matches_openssl_cli(void **state)
{
	struct tlsid_cert c;
	char want[128];
	make_cert("rsa", "rsa:2048", "/CN=ignored.test",
	    "DNS:mx1.example.test,DNS:MTA-STS.Example.Test,IP:192.0.2.1");
	describe("rsa", &c);
	cli_spki("rsa", want, sizeof(want));
	assert_int_equal(strlen(want), 64);
	assert_string_equal(c.spki, want);
	assert_true(tlsid_spki_valid(c.spki));
	assert_string_equal(c.key_type, "rsa");
	assert_int_equal(c.not_after, cli_not_after("rsa"));
	/* The DNS SANs only, lower-cased; the CN and the IP SAN are not names. */
	assert_int_equal(c.nnames, 2);
	assert_string_equal(c.names[0], "mx1.example.test");
	assert_string_equal(c.names[1], "mta-sts.example.test");
	tlsid_cert_clear(&c);
}

static void
test_ec_certificate_without_sans_is_named_by_its_cn(void **state)
{
	struct tlsid_cert c;
	char want[128];
	make_cert("ec", "ec -pkeyopt ec_paramgen_curve:P-256", "/O=Test/CN=MX2.example.test", NULL);
	describe("ec", &c);
	cli_spki("ec", want, sizeof(want));
	assert_string_equal(c.spki, want);
	assert_string_equal(c.key_type, "ec");
	assert_int_equal(c.not_after, cli_not_after("ec"));
	assert_int_equal(c.nnames, 1);
	assert_string_equal(c.names[0], "mx2.example.test");
	tlsid_cert_clear(&c);
}

/* A key's SPKI (the next key: no certificate yet) is the certificate's
 * SPKI once one is issued for it. */
static void
test_private_key_spki_matches_its_certificate(void **state)
{
	char path[256], err[256], got[TLSID_SPKI_HEX], cert_spki[128], cmd[512], want[128];
	EVP_PKEY *k = NULL;
	snprintf(path, sizeof(path), "%s/ec.key", dir);
	assert_int_equal(tlsid_read_key(path, &k, err, sizeof(err)), 0);
	assert_int_equal(tlsid_spki_sha256(k, got), 0);
	EVP_PKEY_free(k);
	cli_spki("ec", cert_spki, sizeof(cert_spki));
	assert_string_equal(got, cert_spki);
	snprintf(cmd, sizeof(cmd), "openssl pkey -in %s -pubout -outform DER | sha256sum", path);
	run(cmd, want, sizeof(want));
	assert_string_equal(got, want);
}

/* A key that is not one, or needs a passphrase, is refused with the path
 * named, and nothing waits on a terminal for a passphrase. */
static void
test_unreadable_or_encrypted_key_is_refused_naming_the_file(void **state)
{
	char path[256], err[256], cmd[512], out[64];
	EVP_PKEY *k = NULL;
	snprintf(path, sizeof(path), "%s/garbage.key", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	assert_int_equal(tlsid_read_key(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "not an unencrypted PEM private key"));

	snprintf(cmd, sizeof(cmd), "cd %s && openssl genpkey -algorithm EC -pkeyopt"
	    " ec_paramgen_curve:P-256 -aes256 -pass pass:secret -out enc.key </dev/null && echo ok",
	    dir);
	run(cmd, out, sizeof(out));
	snprintf(path, sizeof(path), "%s/enc.key", dir);
	assert_int_equal(tlsid_read_key(path, &k, err, sizeof(err)), -1);

	snprintf(path, sizeof(path), "%s/absent.key", dir);
	assert_int_equal(tlsid_read_key(path, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	snprintf(path, sizeof(path), "%s/garbage.key", dir);
	X509 *x = NULL;
	assert_int_equal(tlsid_read_cert(path, &x, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a PEM certificate"));
}

static void
test_spki_text_must_be_64_lower_case_hex_digits(void **state)
{
	char ok[65];
	memset(ok, 'a', 64);
	ok[64] = '\0';
	assert_true(tlsid_spki_valid(ok));
	ok[3] = 'A';
	assert_false(tlsid_spki_valid(ok));
	ok[3] = 'g';
	assert_false(tlsid_spki_valid(ok));
	ok[3] = 'a';
	ok[63] = '\0';
	assert_false(tlsid_spki_valid(ok));
	assert_false(tlsid_spki_valid(""));
}

static int
setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_certificate_spki_matches_openssl_cli),
		cmocka_unit_test(test_ec_certificate_without_sans_is_named_by_its_cn),
		cmocka_unit_test(test_private_key_spki_matches_its_certificate),
		cmocka_unit_test(test_unreadable_or_encrypted_key_is_refused_naming_the_file),
		cmocka_unit_test(test_spki_text_must_be_64_lower_case_hex_digits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
