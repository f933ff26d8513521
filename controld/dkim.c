/* controld: DKIM key pairs and selector names (dkim.h). */
#include "dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "xmalloc.h"

static void
dkim_openssl_err(const char *what, char *err, size_t errsz)
{
	unsigned long e = ERR_get_error();
	char msg[256];

	ERR_error_string_n(e, msg, sizeof(msg));
	snprintf(err, errsz, "dkim: %s: %s", what, e ? msg : "failed");
	ERR_clear_error();
}

static char *
dkim_private_pem(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *data, *pem = NULL;
	long n;

	if (b == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
	    (n = BIO_get_mem_data(b, &data)) > 0)
		pem = xstrndup(data, (size_t)n);
	BIO_free(b);
	return pem;
}

static char *
dkim_public_b64(EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	char *b64;

	if (n <= 0)
		return NULL;
	b64 = xmalloc(4 * (((size_t)n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	OPENSSL_free(der);
	return b64;
}

int
dkim_key_generate(struct dkim_key *out, char *err, size_t errsz)
{
	EVP_PKEY *pk;

	memset(out, 0, sizeof(*out));
	if ((pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS)) == NULL) {
		dkim_openssl_err("RSA key generation", err, errsz);
		return -1;
	}
	out->key_type = "rsa";
	out->private_pem = dkim_private_pem(pk);
	out->public_b64 = dkim_public_b64(pk);
	EVP_PKEY_free(pk);
	if (out->private_pem == NULL || out->public_b64 == NULL) {
		dkim_openssl_err("encoding the key", err, errsz);
		dkim_key_free(out);
		return -1;
	}
	return 0;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k->private_pem != NULL) {
		OPENSSL_cleanse(k->private_pem, strlen(k->private_pem));
		free(k->private_pem);
	}
	free(k->public_b64);
	memset(k, 0, sizeof(*k));
}

static int
dkim_taken(const char *sel, char *const *taken, size_t ntaken)
{
	for (size_t i = 0; i < ntaken; i++)
		if (strcmp(taken[i], sel) == 0)
			return 1;
	return 0;
}

void
dkim_selector(time_t now, char *const *taken, size_t ntaken, char *out)
{
	char day[16];
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y%m%d", &tm);
	snprintf(out, DKIM_SELECTOR_MAX, "mxf%s", day);
	/* ntaken + 2 candidates: at least one is free. */
	for (size_t n = 2; dkim_taken(out, taken, ntaken) && n <= ntaken + 2; n++)
		snprintf(out, DKIM_SELECTOR_MAX, "mxf%s-%zu", day, n);
}
