/* A certificate's and a key's identity as DNS publishes it (tlsid.h). */
#include "tlsid.h"
#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int
tlsid_spki_sha256(EVP_PKEY *key, char out[TLSID_SPKI_HEX])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len = i2d_PUBKEY(key, &der);
	out[0] = '\0';
	if (len <= 0)
		return -1;
	int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
	OPENSSL_free(der);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

const char *
tlsid_key_type(const EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:	return "rsa";
	case EVP_PKEY_EC:	return "ec";
	case EVP_PKEY_ED25519:	return "ed25519";
	case EVP_PKEY_ED448:	return "ed448";
	case EVP_PKEY_DSA:	return "dsa";
	default:		return "other";
	}
}

int
tlsid_spki_valid(const char *s)
{
	size_t n = 0;
	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

/* A name as the certificate holds it (bytes, maybe with a NUL inside),
 * lower-cased; -1 when it could not be a DNS name (wildcards included). */
static int
tlsid_name_add(struct tlsid_cert *c, const unsigned char *d, int len)
{
	if (len <= 0 || len > TLSID_NAME_MAX || c->nnames >= TLSID_MAX_NAMES)
		return -1;
	for (int i = 0; i < len; i++)
		if (d[i] <= 0x20 || d[i] >= 0x7f)
			return -1;
	char *s = xmalloc((size_t)len + 1);
	for (int i = 0; i < len; i++)
		s[i] = (char)tolower(d[i]);
	s[len] = '\0';
	c->names = xreallocarray(c->names, c->nnames + 1, sizeof(*c->names));
	c->names[c->nnames++] = s;
	return 0;
}

/* The DNS subjectAltNames; the CN only when there is none (RFC 6125 6.4.4). */
static void
tlsid_names(X509 *x, struct tlsid_cert *c)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int ndns = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		ndns++;
		if (tlsid_name_add(c, ASN1_STRING_get0_data(g->d.dNSName),
		    ASN1_STRING_length(g->d.dNSName)) < 0)
			c->names_dropped++;
	}
	GENERAL_NAMES_free(gens);
	if (ndns > 0)
		return;
	X509_NAME *subj = X509_get_subject_name(x);
	int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx < 0)
		return;
	unsigned char *utf8 = NULL;
	int len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
	if (len >= 0 && tlsid_name_add(c, utf8, len) < 0)
		c->names_dropped++;
	OPENSSL_free(utf8);
}

int
tlsid_cert_describe(X509 *x, struct tlsid_cert *out, char *err, size_t errsz)
{
	memset(out, 0, sizeof(*out));
	EVP_PKEY *key = X509_get0_pubkey(x);
	if (key == NULL || tlsid_spki_sha256(key, out->spki) < 0) {
		snprintf(err, errsz, "the certificate's public key cannot be read");
		return -1;
	}
	snprintf(out->key_type, sizeof(out->key_type), "%s", tlsid_key_type(key));
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		out->not_after = (int64_t)timegm(&tm);
	tlsid_names(x, out);
	return 0;
}

void
tlsid_cert_clear(struct tlsid_cert *c)
{
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	memset(c, 0, sizeof(*c));
}

/* Never a passphrase prompt on the terminal: an encrypted key is refused. */
static int
tlsid_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* The first PEM object of path that read() takes; NULL with err set. */
static void *
tlsid_read_pem(const char *path, void *(*read)(FILE *), const char *what, char *err,
    size_t errsz)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return NULL;
	}
	void *obj = read(f);
	fclose(f);
	ERR_clear_error();
	if (obj == NULL)
		snprintf(err, errsz, "%s: not %s", path, what);
	return obj;
}

static void *
tlsid_pem_x509(FILE *f)
{
	return PEM_read_X509(f, NULL, NULL, NULL);
}

static void *
tlsid_pem_key(FILE *f)
{
	return PEM_read_PrivateKey(f, NULL, tlsid_no_passphrase, NULL);
}

int
tlsid_read_cert(const char *path, X509 **out, char *err, size_t errsz)
{
	*out = tlsid_read_pem(path, tlsid_pem_x509, "a PEM certificate", err, errsz);
	return *out ? 0 : -1;
}

int
tlsid_read_key(const char *path, EVP_PKEY **out, char *err, size_t errsz)
{
	*out = tlsid_read_pem(path, tlsid_pem_key, "an unencrypted PEM private key", err, errsz);
	return *out ? 0 : -1;
}
