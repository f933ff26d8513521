/* The host's identity as controld needs it to publish this host's DNS
 * (HostIdentity, docs/dns.md#host-identity): its MX name (hostname), its
 * public addresses, the SMTP certificates it serves (names, SPKI SHA-256,
 * expiry, key type) and the SPKI SHA-256 of its pre-generated next key, so
 * that a TLSA record for the next key is published before the key is used.
 *
 * The master builds it at start and at each reload, before it gives up root
 * at start (keys are root's), creating the next key when it is absent.
 * The uploader sends it in Register and every Heartbeat; after a reload the
 * master hands the new one over a socket only the two of them hold. */
#ifndef MXD_IDENTITY_H
#define MXD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "mxd_config.h"
#include "mxfleet.pb-c.h"

/* At most this many certificates and addresses are reported (controld
 * refuses more); names per certificate: TLSID_MAX_NAMES. */
#define MXD_IDENTITY_MAX_CERTS		16
#define MXD_IDENTITY_MAX_ADDRESSES	16
/* A packed HostIdentity is far smaller; this bounds the socket message. */
#define MXD_IDENTITY_MAX_BYTES		(128u << 10)

/* Configuration: public_addresses (top level) and tls.next_key. */
int mxd_identity_config(struct mxd_config *cfg, const config_setting_t *root,
    struct conf_err *err);
void mxd_identity_config_free(struct mxd_config *cfg);
/* What mxd_identity_build does when the next key's file is absent. */
enum mxd_next_key_mode {
	MXD_NEXT_KEY_READ,	/* mxd -n: only read; log that start creates it */
	MXD_NEXT_KEY_CREATE,	/* start (root): create it; failing fails */
	MXD_NEXT_KEY_TRY,	/* reload (not root): create it if the directory lets
				   the user; else warn and report none until a start */
};

/* Build the packed HostIdentity of cfg into *out (malloc'd), *outlen; the
 * next key is created as mode says (EC P-256, 0600, written atomically)
 * and an existing one is only read, never replaced. 0, or -1 with one line
 * for the operator in err: a certificate or the next key unreadable, the
 * next key not created. */
int mxd_identity_build(const struct mxd_config *cfg, enum mxd_next_key_mode mode,
    uint8_t **out, size_t *outlen, char *err, size_t errsz);

/* The master's side of the channel to the uploader. */
int mxd_identity_channel_new(int fds[2]);
/* Send a new identity; the uploader picks it up at once. */
void mxd_identity_send(int fd, const uint8_t *msg, size_t len);
/* The uploader's side: the newest identity waiting on fd, NULL if none or
 * it does not parse (logged). */
Mxfleet__V1__HostIdentity *mxd_identity_recv(int fd);

#endif
