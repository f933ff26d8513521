/* What a TLS certificate or key says about a host's identity, as DNS
 * publishes it: the DNS names it covers, the SHA-256 of its
 * SubjectPublicKeyInfo (the data of a TLSA 3 1 1 record, RFC 7671 5.1 /
 * RFC 7218), its expiry and its key type.
 *
 * No I/O except reading the PEM files tlsid_read_cert and tlsid_read_key
 * are given. mxd describes the certificates it serves and its next key with
 * it (HostIdentity); controld's DNS checks compare what a live server shows
 * with the same functions, and validate what hosts send with
 * tlsid_spki_valid. */
#ifndef MXFLEET_TLSID_H
#define MXFLEET_TLSID_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#define TLSID_SPKI_HEX		65	/* 64 lower-case hex digits and a NUL */
#define TLSID_MAX_NAMES		64	/* names kept per certificate */
#define TLSID_NAME_MAX		253	/* a DNS name, without the trailing dot */

struct tlsid_cert {
	char	**names;	/* DNS subjectAltNames, lower-cased; the CN if none */
	size_t	  nnames;
	size_t	  names_dropped;	/* past TLSID_MAX_NAMES, or not printable */
	char	  spki[TLSID_SPKI_HEX];
	int64_t	  not_after;	/* unix seconds; 0: unreadable */
	char	  key_type[16];	/* "rsa", "ec", "ed25519", "ed448", "dsa", "other" */
};

/* Describe x into out (released with tlsid_cert_clear). 0, or -1 with the
 * reason in err: x has no public key, or it cannot be encoded. */
int tlsid_cert_describe(X509 *x, struct tlsid_cert *out, char *err, size_t errsz);
void tlsid_cert_clear(struct tlsid_cert *c);

/* SHA-256 of the DER SubjectPublicKeyInfo of key (i2d_PUBKEY), as 64
 * lower-case hex digits into out. 0, or -1 when key cannot be encoded. */
int tlsid_spki_sha256(EVP_PKEY *key, char out[TLSID_SPKI_HEX]);
/* "rsa", "ec", "ed25519", "ed448", "dsa" or "other". */
const char *tlsid_key_type(const EVP_PKEY *key);
/* Whether s is 64 lower-case hex digits, as tlsid_spki_sha256 writes. */
int tlsid_spki_valid(const char *s);

/* The first certificate of a PEM file (the leaf of a chain). 0, or -1 with
 * "PATH: why" in err. */
int tlsid_read_cert(const char *path, X509 **out, char *err, size_t errsz);
/* A PEM private key (unencrypted). 0, or -1 with "PATH: why" in err. */
int tlsid_read_key(const char *path, EVP_PKEY **out, char *err, size_t errsz);

#endif
