/* DKIM keys controld makes for a hosted domain (RFC 6376): an RSA-2048 key
 * pair, the private key as PEM (PKCS#8) for the signers, the public key as
 * the base64 of its SubjectPublicKeyInfo DER, the p= of the DKIM TXT record
 * (RFC 6376 3.6.1). Selectors are named after the day a key is made,
 * "mxf<YYYYMMDD>", "-2", "-3"... when that name is taken, so an operator
 * reading the zone sees how old each key is.
 *
 * The private key is a secret: it goes to PostgreSQL (dkim_keys.private_pem)
 * and nowhere else, never into a log line or an answer to mailctl. */
#ifndef CONTROLD_DKIM_H
#define CONTROLD_DKIM_H

#include <stddef.h>
#include <time.h>

#define DKIM_RSA_BITS		2048
#define DKIM_SELECTOR_MAX	32

struct dkim_key {
	char	*private_pem;
	char	*public_b64;
	const char *key_type;		/* "rsa" (k=) */
};

/* 0, or -1 with what OpenSSL said in err. Release with dkim_key_free,
 * which wipes the private key. */
int dkim_key_generate(struct dkim_key *out, char *err, size_t errsz);
void dkim_key_free(struct dkim_key *k);

/* The selector for a key made at now (UTC day) that is none of the taken
 * ones: "mxf20261205", else "mxf20261205-2", "-3"... out holds at least
 * DKIM_SELECTOR_MAX bytes. */
void dkim_selector(time_t now, char *const *taken, size_t ntaken, char *out);

#endif
