#include "pki.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
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
	if (o < sizeof(san))
		o += (size_t)snprintf(san + o, sizeof(san) - o, ",URI:%s",
		    role == PKI_ADMIN ? PKI_ROLE_URI_ADMIN : PKI_ROLE_URI_HOST);
	if (o >= sizeof(san)) {
		snprintf(err, errsz, "too many --ip addresses");
		goto out;
	}
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
pki_cert_info(const char *path, struct pki_cert_info *info, char *err, size_t errsz)
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
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, info->cn,
	    (int)sizeof(info->cn)) < 0)
		info->cn[0] = '\0';
	info->role = pki_cert_role(x);
	pki_cert_serial(x, info->serial, sizeof(info->serial));
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		info->not_after = timegm(&tm);
	else
		info->not_after = 0;
	X509_free(x);
	return 0;
}

int
pki_describe(const char *path, char *cn, size_t cnsz, enum pki_role *role, time_t *not_after,
    char *err, size_t errsz)
{
	struct pki_cert_info info;
	if (pki_cert_info(path, &info, err, errsz) < 0)
		return -1;
	snprintf(cn, cnsz, "%s", info.cn);
	*role = info.role;
	*not_after = info.not_after;
	return 0;
}

enum pki_role
pki_cert_role(X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int host = 0, admin = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_URI)
			continue;
		const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;
		size_t n = (size_t)ASN1_STRING_length(u);
		const char *d = (const char *)ASN1_STRING_get0_data(u);
		if (n == strlen(PKI_ROLE_URI_HOST) && memcmp(d, PKI_ROLE_URI_HOST, n) == 0)
			host = 1;
		else if (n == strlen(PKI_ROLE_URI_ADMIN) && memcmp(d, PKI_ROLE_URI_ADMIN, n) == 0)
			admin = 1;
	}
	GENERAL_NAMES_free(names);
	/* Both roles in one certificate is no role: nothing issues that. */
	if (host == admin)
		return PKI_NONE;
	return admin ? PKI_ADMIN : PKI_HOST;
}

const char *
pki_role_name(enum pki_role role)
{
	return role == PKI_HOST ? "host" : role == PKI_ADMIN ? "admin" : "none";
}

void
pki_cert_serial(X509 *x, char *out, size_t outsz)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	out[0] = '\0';
	if (hex && pki_serial_ok(hex))
		snprintf(out, outsz, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
}

int
pki_serial_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= PKI_SERIAL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

int
pki_count_certs(const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	int n = 0;
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		X509_free(x);
		n++;
	}
	ERR_clear_error();	/* the read that ended the loop */
	fclose(f);
	return n;
}

/* ---- revoked serials ---- */

struct pki_revoked {
	char	**serials;	/* sorted, strcmp */
	size_t	  n;
};

struct pki_revoked *
pki_revoked_new(void)
{
	return xcalloc(1, sizeof(struct pki_revoked));
}

static void
pki_revoked_clear(struct pki_revoked *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->serials[i]);
	free(r->serials);
	r->serials = NULL;
	r->n = 0;
}

void
pki_revoked_free(struct pki_revoked *r)
{
	if (r == NULL)
		return;
	pki_revoked_clear(r);
	free(r);
}

static int
pki_serial_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
pki_revoked_take(struct pki_revoked *r, char **serials, size_t n)
{
	if (n > 0)
		qsort(serials, n, sizeof(*serials), pki_serial_cmp);
	int changed = n != r->n;
	for (size_t i = 0; !changed && i < n; i++)
		changed = strcmp(serials[i], r->serials[i]) != 0;
	pki_revoked_clear(r);
	r->serials = serials;
	r->n = n;
	return changed;
}

int
pki_revoked_has(const struct pki_revoked *r, const char *serial)
{
	return r->n > 0 && bsearch(&serial, r->serials, r->n, sizeof(*r->serials),
	    pki_serial_cmp) != NULL;
}

size_t
pki_revoked_count(const struct pki_revoked *r)
{
	return r->n;
}

/* ---- enforcing them at the handshake ---- */

static int pki_revoked_idx = -1;

/* Why x (a verified fleet certificate) is refused now, or NULL. */
static const char *
pki_refusal(X509 *x, const struct pki_revoked *r, char *serial, size_t serialsz)
{
	pki_cert_serial(x, serial, serialsz);
	if (r && pki_revoked_has(r, serial))
		return "revoked";
	if (pki_cert_role(x) == PKI_NONE)
		return "no_role";
	return NULL;
}

static void
pki_log_refusal(X509 *x, const char *serial, const char *why)
{
	char cn[256] = "", q[LOG_QUOTE_SIZE(100)];
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	log_warnx("event=tls_peer_refused cn=%s serial=%s reason=%s",
	    log_quote(q, sizeof(q), cn, strlen(cn), 100), serial[0] ? serial : "-", why);
}

static int
pki_verify_cb(int ok, X509_STORE_CTX *store)
{
	/* Only the leaf, and only once the chain itself (CA, dates) is good. */
	if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct pki_revoked *r = ssl ?
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), pki_revoked_idx) : NULL;
	X509 *x = X509_STORE_CTX_get_current_cert(store);
	char serial[PKI_SERIAL_MAX];
	const char *why = pki_refusal(x, r, serial, sizeof(serial));
	if (why == NULL)
		return 1;
	pki_log_refusal(x, serial, why);
	X509_STORE_CTX_set_error(store, strcmp(why, "revoked") == 0 ?
	    X509_V_ERR_CERT_REVOKED : X509_V_ERR_INVALID_PURPOSE);
	return 0;
}

void
pki_server_enforce(SSL_CTX *ctx, const struct pki_revoked *r)
{
	if (pki_revoked_idx < 0)
		pki_revoked_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX_set_ex_data(ctx, pki_revoked_idx, (void *)r);
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), pki_verify_cb);
}

int
pki_peer_refused(SSL *ssl, const struct pki_revoked *r)
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	char serial[PKI_SERIAL_MAX];
	const char *why = x ? pki_refusal(x, r, serial, sizeof(serial)) : NULL;
	if (why)
		pki_log_refusal(x, serial, why);
	return why != NULL;
}
