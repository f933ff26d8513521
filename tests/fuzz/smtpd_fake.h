/* A scripted peer for the I/O-free SMTP server (mxd/smtpd/smtpd_core.h): it plays
 * the client's bytes in chunks, stands in for the spool (each message
 * succeeds or fails where a byte of the script says), completes STARTTLS
 * handshakes, and checks on every step what must hold whatever the client
 * sends:
 *   - no reply before its command: a step that replies has consumed a whole
 *     command line, the end of DATA or the end of a BDAT chunk (or an
 *     overlong line, answered 500 once);
 *   - never a 250 to the end of DATA or to BDAT LAST from the input side:
 *     the only "queued" 250 comes from a commit that succeeded, and a failed
 *     commit gets no 250;
 *   - nothing survives STARTTLS: no bytes pipelined after it are read, and
 *     afterwards there is no EHLO, no transaction, no open message;
 *   - the spool is used in order (begin, write*, commit | abort) and what is
 *     committed has no bare CR or LF.
 * A broken rule prints what happened and aborts. Used by
 * tests/fuzz/fuzz_smtp_conversation.c and tests/unit/test_smtpd_core.c. */
#ifndef MXFLEET_TESTS_SMTPD_FAKE_H
#define MXFLEET_TESTS_SMTPD_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "smtpd_core.h"

/* How message number k fares: decide[k % ndecide] % 8 is one of these;
 * anything else (and no decide bytes at all) succeeds. A failing spool call
 * returns ENOSPC when bit 3 of the byte is set, else EIO. */
enum smtpd_fake_fate {
	SMTPD_FAKE_BEGIN_FAILS = 0,	/* io->msg_begin fails */
	SMTPD_FAKE_WRITE_FAILS = 1,	/* every io->msg_write fails */
	SMTPD_FAKE_FINISH_FAILS = 2,	/* io->msg_commit fails at once */
	SMTPD_FAKE_COMMIT_FAILS = 3,	/* the commit ends with an error */
};

struct smtpd_fake {
	struct smtpd_core	*core;
	const struct smtpd_core_info *info;
	struct buf		 replies;	/* every byte the server sent */
	struct buf		 committed;	/* contents committed, each followed by "\0" */
	int			 ncommitted;
	int			 nqueued_replies;
	int			 closed;	/* io->close was called */
	int			 starttls;	/* handshakes completed */
	size_t			 discarded;	/* plaintext dropped at STARTTLS */

	/* spool model */
	const uint8_t		*decide;
	size_t			 ndecide;
	int			 nmsgs;		/* io->msg_begin calls */
	int			 fate;		/* of the open message */
	int			 err;		/* the errno its failing call returns */
	int			 msg_open;
	int			 commit_pending;
	struct buf		 msg;
};

void smtpd_fake_init(struct smtpd_fake *f, const struct mxd_config *cfg, int trusted,
    int tls_available, const uint8_t *decide, size_t ndecide);
/* The same, with the core writing to the spool every flush_bytes. */
void smtpd_fake_init_flush(struct smtpd_fake *f, const struct mxd_config *cfg, int trusted,
    int tls_available, const uint8_t *decide, size_t ndecide, size_t flush_bytes);
void smtpd_fake_free(struct smtpd_fake *f);

/* Play the client's bytes: chunk i is chunks[i % nchunks] + 1 bytes long
 * (nchunks 0: all at once). Commits end as soon as the server waits for
 * them; STARTTLS handshakes complete when the 220 is out. */
void smtpd_fake_play(struct smtpd_fake *f, const char *in, size_t len,
    const uint8_t *chunks, size_t nchunks);

/* Load an mxd configuration from text (a temporary file); aborts on error. */
struct mxd_config *smtpd_fake_config(const char *text);

#endif
