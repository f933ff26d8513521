/* The fleet's private CA: one self-signed CA that issues host certificates
 * (for mxd and controld, server and client use) and admin certificates (for
 * mailctl). controld trusts only this CA on its gRPC port.
 *
 * A certificate's role is what the CA signed for that purpose: a
 * subjectAltName URI mxfleet:role:host or mxfleet:role:admin. The subject's
 * OU is text for people and decides nothing. A certificate with no role URI
 * (or with both) has PKI_NONE and is refused by controld.
 *
 * Revocation: controld keeps the revoked serials (from PostgreSQL, table
 * revoked_certificates) in a struct pki_revoked and refuses them at the
 * handshake through pki_server_enforce's verify callback. */
#ifndef MXFLEET_PKI_H
#define MXFLEET_PKI_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <time.h>

enum pki_role { PKI_HOST, PKI_ADMIN, PKI_NONE };

#define PKI_ROLE_URI_HOST	"mxfleet:role:host"
#define PKI_ROLE_URI_ADMIN	"mxfleet:role:admin"
/* A serial as text: upper-case hex, two digits per octet (BN_bn2hex), at most
 * 20 octets (RFC 5280 4.1.2.2) = 40 digits. */
#define PKI_SERIAL_MAX		41

struct pki_cert_info {
	char		cn[256];
	char		serial[PKI_SERIAL_MAX];
	enum pki_role	role;
	time_t		not_after;
};

/* Create DIR/ca.pem and DIR/ca.key (0600). Refuses to overwrite. */
int pki_init(const char *dir, const char *name, int days, char *err, size_t errsz);
/* Issue NAME's key and certificate into DIR/NAME.pem and DIR/NAME.key, signed
 * by DIR's CA. Hosts get subjectAltName DNS:NAME (plus the given IPs), admins
 * an OU=admin subject. Refuses to overwrite. */
int pki_issue(const char *dir, const char *name, enum pki_role role, const char *const *ips,
    size_t nips, int days, char *err, size_t errsz);
/* CN, role (from the role URI) and expiry of a certificate file. */
int pki_describe(const char *path, char *cn, size_t cnsz, enum pki_role *role,
    time_t *not_after, char *err, size_t errsz);
/* The same and the serial, of a certificate file. */
int pki_cert_info(const char *path, struct pki_cert_info *info, char *err, size_t errsz);

/* The role the CA signed into x; PKI_NONE when there is none or both. */
enum pki_role pki_cert_role(X509 *x);
/* "host", "admin", "none". */
const char *pki_role_name(enum pki_role role);
/* x's serial as PKI_SERIAL text; "" if it has none that fits. */
void pki_cert_serial(X509 *x, char *out, size_t outsz);
/* Whether s is serial text as PKI_SERIAL_MAX describes. */
int pki_serial_ok(const char *s);

/* How many certificates a PEM file holds (-1: unreadable). */
int pki_count_certs(const char *path, char *err, size_t errsz);

/* A set of revoked serials, replaced as a whole on every reload. */
struct pki_revoked;
struct pki_revoked *pki_revoked_new(void);
void pki_revoked_free(struct pki_revoked *r);
/* Replace the set by serials[0..n), taking over the malloc'd array and
 * strings (sorted in place). Returns 1 if the set changed. */
int pki_revoked_take(struct pki_revoked *r, char **serials, size_t n);
int pki_revoked_has(const struct pki_revoked *r, const char *serial);
size_t pki_revoked_count(const struct pki_revoked *r);

/* Make a server context refuse, at the handshake, a client certificate that
 * is revoked in r or carries no role (on top of the chain checks OpenSSL
 * does: fleet CA, validity dates). r must outlive ctx; it is read at every
 * handshake, so a replaced set applies to the next one. Each refusal is
 * logged as event=tls_peer_refused. */
void pki_server_enforce(SSL_CTX *ctx, const struct pki_revoked *r);
/* Whether an established connection's peer would be refused now (revoked
 * since its handshake). */
int pki_peer_refused(SSL *ssl, const struct pki_revoked *r);

#endif
