/* The fleet's private CA: one self-signed CA that issues host certificates
 * (for mxd and controld, server and client use) and admin certificates (for
 * mailctl). controld trusts only this CA on its gRPC port. */
#ifndef MXFLEET_PKI_H
#define MXFLEET_PKI_H

#include <stddef.h>
#include <time.h>

enum pki_role { PKI_HOST, PKI_ADMIN };

/* Create DIR/ca.pem and DIR/ca.key (0600). Refuses to overwrite. */
int pki_init(const char *dir, const char *name, int days, char *err, size_t errsz);
/* Issue NAME's key and certificate into DIR/NAME.pem and DIR/NAME.key, signed
 * by DIR's CA. Hosts get subjectAltName DNS:NAME (plus the given IPs), admins
 * an OU=admin subject. Refuses to overwrite. */
int pki_issue(const char *dir, const char *name, enum pki_role role, const char *const *ips,
    size_t nips, int days, char *err, size_t errsz);
/* CN, role (from the OU) and expiry of a certificate file. */
int pki_describe(const char *path, char *cn, size_t cnsz, enum pki_role *role,
    time_t *not_after, char *err, size_t errsz);

#endif
