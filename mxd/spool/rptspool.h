/* Mail to the fleet's TLSRPT addresses (ConfigSnapshot.tlsrpt_addresses;
 * docs/reports.md, "Receiving"): not queued for relay but kept, one file per
 * recipient, in <spool_dir>/reports/ until the uploader has handed it to
 * controld (Collector.SubmitReport) and controld has acknowledged it.
 *
 * A file is written as the spool writes a message: a hidden temporary name,
 * fsync, rename, fsync of the directory; the SMTP server says 250 only after
 * that. Its name is unique on the host (the message's spool id and the
 * recipient's index) and is the id controld stores the mail under, so a
 * resend after a lost ack is stored once. Layout: four header lines
 *   mxd-tlsrpt 1 / from <sender> / to <recipient> / received <unix seconds>
 * then an empty line and the message bytes (our Received: line first). */
#ifndef MXD_RPTSPOOL_H
#define MXD_RPTSPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mxfleet.pb-c.h"

#define RPTSPOOL_DIR		"reports"
/* The largest report mail taken: under controld's default max_message
 * (4 MiB) with room for the rest of the request. */
#define RPTSPOOL_MAX		((4u << 20) - 65536)
#define RPTSPOOL_NAME_MAX	96

struct mxd_config;

/* The snapshot's addresses into cfg (sorted, lower case). */
void rptspool_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s);
void rptspool_config_free(struct mxd_config *cfg);
/* Is addr one of them (ASCII case ignored)? */
int rptspool_is_address(const struct mxd_config *cfg, const char *addr);

/* Store msg for rcpt durably as <spool_dir>/reports/<name>: 0, or an errno
 * (the file is then gone) with err set. */
int rptspool_store(const char *spool_dir, const char *name, const char *from, const char *rcpt,
    time_t received, const void *msg, size_t len, char *err, size_t errsz);

/* A stored file read back: 0, or -1 with err (a file that is not ours). */
struct rptspool_mail {
	char		*from, *rcpt;
	int64_t		 received;
	uint8_t		*data;		/* the whole file; msg points into it */
	const uint8_t	*msg;
	size_t		 len;
};
int rptspool_read(int dirfd, const char *name, struct rptspool_mail *out, char *err,
    size_t errsz);
void rptspool_mail_free(struct rptspool_mail *m);

#endif
