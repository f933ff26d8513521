#include "pki.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static EVP_PKEY *
pki_new_key(void)
{
	/* P-256: small, fast, and every TLS 1.3 stack takes it. */
	return EVP_EC_gen("P-256");
}

static int
pki_write_key(const char *path, EVP_PKEY *key, char *err, size_t errsz)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	int ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	if (f)
		fclose(f);
	else
		close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, errsz, "%s: cannot write key", path);
		return -1;
	}
	return 0;
}

static int
pki_write_cert(const char *path, X509 *x, char *err, size_t errsz)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	int ok = f && PEM_write_X509(f, x) == 1;
	if (f)
		fclose(f);
	else
		close(fd);
	if (!ok) {
		unlink(path);
		snprintf(err, errsz, "%s: cannot write certificate", path);
		return -1;
	}
	return 0;
}

static int
pki_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static X509 *
pki_new_cert(EVP_PKEY *key, const char *cn, const char *ou, int days)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1) {
		X509_free(x);
		return NULL;
	}
	serial[0] &= 0x7f;	/* positive */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	/* A little slack for clocks that run behind. */
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"mxfleet", -1, -1, 0);
	if (ou)
		X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	return x;
}

static void
pki_path(char *out, size_t outsz, const char *dir, const char *name, const char *ext)
{
	snprintf(out, outsz, "%s/%s.%s", dir, name, ext);
}

int
pki_init(const char *dir, const char *name, int days, char *err, size_t errsz)
{
	char kp[4096], cp[4096];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errsz, "%s: %s", dir, strerror(errno));
		return -1;
	}
	pki_path(kp, sizeof(kp), dir, "ca", "key");
	pki_path(cp, sizeof(cp), dir, "ca", "pem");
	if (access(kp, F_OK) == 0 || access(cp, F_OK) == 0) {
		snprintf(err, errsz, "%s: a CA exists already; not overwriting it", dir);
		return -1;
	}
	EVP_PKEY *key = pki_new_key();
	X509 *x = key ? pki_new_cert(key, name, "ca", days) : NULL;
	int rc = -1;
	if (x == NULL) {
		snprintf(err, errsz, "cannot generate the CA key");
		goto out;
	}
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (pki_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    pki_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    pki_add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(x, key, EVP_sha256()) == 0) {
		snprintf(err, errsz, "cannot sign the CA certificate");
		goto out;
	}
	if (pki_write_key(kp, key, err, errsz) < 0)
		goto out;
	if (pki_write_cert(cp, x, err, errsz) < 0) {
		unlink(kp);
		goto out;
	}
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

static int
pki_load_ca(const char *dir, X509 **ca, EVP_PKEY **cakey, char *err, size_t errsz)
{
	char kp[4096], cp[4096];
	pki_path(kp, sizeof(kp), dir, "ca", "key");
	pki_path(cp, sizeof(cp), dir, "ca", "pem");
	FILE *f = fopen(cp, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s (run 'mailctl pki init %s' first)", cp, strerror(errno), dir);
		return -1;
	}
	*ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(kp, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s", kp, strerror(errno));
		X509_free(*ca);
		return -1;
	}
	*cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*ca == NULL || *cakey == NULL || X509_check_private_key(*ca, *cakey) != 1) {
		snprintf(err, errsz, "%s: the CA certificate and key do not load or do not match", dir);
		X509_free(*ca);
		EVP_PKEY_free(*cakey);
		return -1;
	}
	return 0;
}

static int
pki_name_ok(const char *name)
{
	if (name[0] == '\0' || strlen(name) > 253)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_'))
			return 0;
	return 1;
}

int
pki_issue(const char *dir, const char *name, enum pki_role role, const char *const *ips,
    size_t nips, int days, char *err, size_t errsz)
{
	char kp[4096], cp[4096], san[2048];
	X509 *ca = NULL;
	EVP_PKEY *cakey = NULL, *key = NULL;
	X509 *x = NULL;
	int rc = -1;

	if (!pki_name_ok(name)) {
		snprintf(err, errsz, "'%s' is not a host name (letters, digits, '-', '.', '_')", name);
		return -1;
	}
	pki_path(kp, sizeof(kp), dir, name, "key");
	pki_path(cp, sizeof(cp), dir, name, "pem");
	if (access(kp, F_OK) == 0 || access(cp, F_OK) == 0) {
		snprintf(err, errsz, "%s: a certificate for %s exists already; not overwriting it", dir, name);
		return -1;
	}
	if (pki_load_ca(dir, &ca, &cakey, err, errsz) < 0)
		return -1;
	key = pki_new_key();
	x = key ? pki_new_cert(key, name, role == PKI_ADMIN ? "admin" : "host", days) : NULL;
	if (x == NULL) {
		snprintf(err, errsz, "cannot generate a key");
		goto out;
	}
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	size_t o = (size_t)snprintf(san, sizeof(san), "DNS:%s", name);
	for (size_t i = 0; i < nips && o < sizeof(san); i++)
		o += (size_t)snprintf(san + o, sizeof(san) - o, ",IP:%s", ips[i]);
	if (pki_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    pki_add_ext(x, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    pki_add_ext(x, ca, NID_ext_key_usage, role == PKI_ADMIN ? "clientAuth" :
	    "serverAuth,clientAuth") < 0 ||
	    pki_add_ext(x, ca, NID_subject_alt_name, san) < 0 ||
	    pki_add_ext(x, ca, NID_authority_key_identifier, "keyid") < 0) {
		snprintf(err, errsz, "bad certificate extension (an IP address that is not one?)");
		goto out;
	}
	if (X509_sign(x, cakey, EVP_sha256()) == 0) {
		snprintf(err, errsz, "cannot sign the certificate");
		goto out;
	}
	if (pki_write_key(kp, key, err, errsz) < 0)
		goto out;
	if (pki_write_cert(cp, x, err, errsz) < 0) {
		unlink(kp);
		goto out;
	}
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	return rc;
}

int
pki_describe(const char *path, char *cn, size_t cnsz, enum pki_role *role, time_t *not_after,
    char *err, size_t errsz)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		snprintf(err, errsz, "%s: not a PEM certificate", path);
		return -1;
	}
	char ou[64] = "";
	X509_NAME *n = X509_get_subject_name(x);
	if (X509_NAME_get_text_by_NID(n, NID_commonName, cn, (int)cnsz) < 0)
		cn[0] = '\0';
	X509_NAME_get_text_by_NID(n, NID_organizationalUnitName, ou, sizeof(ou));
	*role = strcmp(ou, "admin") == 0 ? PKI_ADMIN : PKI_HOST;
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		*not_after = timegm(&tm);
	else
		*not_after = 0;
	X509_free(x);
	return 0;
}
