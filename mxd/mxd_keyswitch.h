/* The host's part of a TLSA key rollover (docs/dns.md, "Rollover"): the
 * certificate for the next key, and the switch to it.
 *
 * The operator (or an ACME client) puts a certificate for the next key at
 * tls.next_cert (default: the first certificate's path and ".next"). mxd
 * reports whether it is there and fit (HostIdentity.next_cert_ready): the
 * master at each start and reload, the uploader before each heartbeat (the
 * file's stat compared, re-read only when it changed).
 *
 * When controld's snapshot carries a KeySwitch for this host to its next
 * key and the certificate is ready, the master promotes them at that
 * config load, before it builds the TLS contexts: the current certificate
 * and key are kept as "<cert>.prev"/"<key>.prev", the next ones renamed over
 * the first certificate's files, and the identity build that follows
 * creates a new next key. The reload's new workers serve the new
 * certificate; the old ones finish their sessions on the old one.
 *
 * Files are renamed, never rewritten: a reloading master (not root) needs
 * write access to their directories, else it says so and the next start
 * (root) switches. A switch cut between its two renames (the key moved, the
 * certificate not) is completed at the next load. */
#ifndef MXD_KEYSWITCH_H
#define MXD_KEYSWITCH_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "conf.h"
#include "mxd_config.h"
#include "mxfleet.pb-c.h"
#include "tlsid.h"

/* tls.next_cert. */
int mxd_keyswitch_config(struct mxd_config *cfg, const config_setting_t *tls,
    struct conf_err *err);
void mxd_keyswitch_config_free(struct mxd_config *cfg);
/* The snapshot's key switches for any host (the master picks its own). */
void mxd_keyswitch_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s);

/* tls.next_cert, else the first certificate's path and ".next"; NULL when
 * there is neither (malloc'd). */
char *mxd_keyswitch_next_cert_path(const struct mxd_config *cfg);

/* Whether path exists, as the master (CAP_DAC_READ_SEARCH) sees it. */
int mxd_keyswitch_exists(const char *path);

/* Whether the certificate at path is ready for the next key next_spki at
 * now: a PEM chain whose leaf's public key is next_spki and that is valid
 * now. 1 ready; 0 not, with what is missing in why; -1 the file cannot be
 * read for lack of permission (why says so). */
int mxd_keyswitch_cert_ready(const char *path, const char *next_spki, time_t now, char *why,
    size_t whysz);

/* The uploader's view of the next certificate between two identities. */
struct mxd_next_cert_watch {
	struct stat	st;		/* of the file last read; st_ino 0: none */
	char		spki[TLSID_SPKI_HEX];	/* the next key it was compared with */
	int		matches;	/* its leaf is the next key's */
	int64_t		not_before, not_after;
	char		why[300];
};
/* Bring id->next_cert_ready up to date at now: the file is read again only
 * when its stat or the next key changed; validity is checked every time.
 * 1 when the answer changed (logged), else 0. */
int mxd_keyswitch_watch(struct mxd_next_cert_watch *w, Mxfleet__V1__HostIdentity *id,
    time_t now);

/* The master, at start (not -n) and at each reload, before the TLS
 * contexts: finish a cut switch, then switch if the snapshot says so and
 * the certificate is ready. Logs what it did (key_switched,
 * key_switch_waiting, key_switch_failed); the files are what TLS loads
 * next either way. */
void mxd_keyswitch_apply(const struct mxd_config *cfg, time_t now);

/* mxd -c FILE csr: a PEM certificate request for the next key on out, CN
 * the host name, subjectAltNames the host name and the names of the first
 * certificate. 0, or -1 with one line in err (no next key, unreadable). */
int mxd_keyswitch_csr(const struct mxd_config *cfg, FILE *out, char *err, size_t errsz);

#endif
