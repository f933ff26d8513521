/* The fleet PKI (issue 9, item 7): the role is the URI the CA signs, never
 * the OU text; the revoked set answers by serial and says when it changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki.h"
#include "xmalloc.h"

static void
test_issued_certificates_carry_their_role_uri(void **state)
{
	char dir[] = "/tmp/test_pki.XXXXXX", sub[64], path[128], err[512];
	struct pki_cert_info info;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/ca", dir);
	assert_int_equal(pki_init(sub, "test CA", 2, err, sizeof(err)), 0);
	assert_int_equal(pki_issue(sub, "mx1.test", PKI_HOST, NULL, 0, 2, err, sizeof(err)), 0);
	assert_int_equal(pki_issue(sub, "ops", PKI_ADMIN, NULL, 0, 2, err, sizeof(err)), 0);

	snprintf(path, sizeof(path), "%s/mx1.test.pem", sub);
	assert_int_equal(pki_cert_info(path, &info, err, sizeof(err)), 0);
	assert_int_equal(info.role, PKI_HOST);
	assert_string_equal(info.cn, "mx1.test");
	assert_true(pki_serial_ok(info.serial));
	snprintf(path, sizeof(path), "%s/ops.pem", sub);
	assert_int_equal(pki_cert_info(path, &info, err, sizeof(err)), 0);
	assert_int_equal(info.role, PKI_ADMIN);
	snprintf(path, sizeof(path), "%s/ca.pem", sub);
	assert_int_equal(pki_count_certs(path, err, sizeof(err)), 1);

	const char *files[] = { "ca.pem", "ca.key", "mx1.test.pem", "mx1.test.key", "ops.pem",
	    "ops.key" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", sub, files[i]);
		unlink(path);
	}
	rmdir(sub);
	rmdir(dir);
}

/* A certificate with OU=admin and the given SAN (NULL: none), unsigned: the
 * role is read from the extension alone. */
static X509 *
cert_with(const char *san)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8, (const unsigned char *)"admin", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"admin", -1, -1, 0);
	if (san) {
		X509V3_CTX ctx;
		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	return x;
}

static void
test_ou_admin_text_is_no_role(void **state)
{
	static const struct { const char *san; enum pki_role role; } cases[] = {
		{ NULL, PKI_NONE },
		{ "DNS:admin", PKI_NONE },
		{ "DNS:admin,URI:mxfleet:role:host", PKI_HOST },
		{ "DNS:admin,URI:mxfleet:role:admin", PKI_ADMIN },
		{ "URI:mxfleet:role:admin,URI:mxfleet:role:host", PKI_NONE },
		{ "URI:mxfleet:role:administrator", PKI_NONE },
		{ "URI:https://example.test/mxfleet:role:admin", PKI_NONE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = cert_with(cases[i].san);
		assert_int_equal(pki_cert_role(x), cases[i].role);
		X509_free(x);
	}
}

static char **
serials(size_t n, ...)
{
	va_list ap;
	char **v = xcalloc(n ? n : 1, sizeof(*v));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(va_arg(ap, const char *));
	va_end(ap);
	return v;
}

static void
test_revoked_set_answers_by_serial_and_reports_change(void **state)
{
	struct pki_revoked *r = pki_revoked_new();
	assert_false(pki_revoked_has(r, "0A"));
	assert_int_equal(pki_revoked_take(r, serials(3, "FF", "0A", "1B"), 3), 1);
	assert_true(pki_revoked_has(r, "0A"));
	assert_true(pki_revoked_has(r, "FF"));
	assert_false(pki_revoked_has(r, "0B"));
	assert_int_equal(pki_revoked_count(r), 3);
	/* The same set in another order: no change, no connections to close. */
	assert_int_equal(pki_revoked_take(r, serials(3, "1B", "FF", "0A"), 3), 0);
	assert_int_equal(pki_revoked_take(r, serials(3, "1B", "FF", "0C"), 3), 1);
	assert_false(pki_revoked_has(r, "0A"));
	assert_int_equal(pki_revoked_take(r, serials(0), 0), 1);
	assert_false(pki_revoked_has(r, "FF"));
	pki_revoked_free(r);
}

static void
test_serial_text_is_upper_hex_up_to_20_octets(void **state)
{
	assert_true(pki_serial_ok("0A1B"));
	assert_true(pki_serial_ok("1234567890ABCDEF1234567890ABCDEF12345678"));
	assert_false(pki_serial_ok(""));
	assert_false(pki_serial_ok("0a1b"));
	assert_false(pki_serial_ok("0A 1B"));
	assert_false(pki_serial_ok("1234567890ABCDEF1234567890ABCDEF123456789"));
	assert_false(pki_serial_ok("0A'; DROP TABLE x; --"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issued_certificates_carry_their_role_uri),
		cmocka_unit_test(test_ou_admin_text_is_no_role),
		cmocka_unit_test(test_revoked_set_answers_by_serial_and_reports_change),
		cmocka_unit_test(test_serial_text_is_upper_hex_up_to_20_octets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
