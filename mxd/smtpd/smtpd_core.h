/* The SMTP server's conversation without I/O: bytes in through
 * smtpd_core_feed, replies and spool events out through callbacks (as
 * nghttp2's session). Phases, pipelining, DATA and BDAT chunk boundaries,
 * STARTTLS resets and the per-session limits all live here, so whole
 * conversations are fuzzed (tests/fuzz/fuzz_smtp_conversation.c) and
 * unit-tested (tests/unit/test_smtpd_core.c) without a socket.
 *
 * smtp_session.c is the glue: it owns the socket, the bufferevents, TLS, the
 * spool file and the commit thread, and calls in here.
 *
 * Who calls what:
 *   smtpd_core_new          once, at accept (after the glue sent its greeting)
 *   smtpd_core_feed         in a loop while it returns 1, handing the start
 *                           of the unread input: all of it, or a piece that
 *                           holds a whole line (LF) or more than SMTP_LINE_MAX
 *                           bytes (SMTPD_CORE_WINDOW is a good size to make
 *                           contiguous); drain *used bytes after each call
 *   smtpd_core_commit_done  when the spool commit started by io->msg_commit ended
 *   smtpd_core_verify_done  when the probe io->rcpt_verify waits for ended
 *   smtpd_core_tls_started / smtpd_core_tls_established  around the handshake
 *                           that io->starttls asked for
 *   smtpd_core_shutdown     the daemon stops: 421 and close
 * Callbacks never free the core; io->close only asks the glue to close once
 * the replies have left. */
#ifndef MXD_SMTPD_CORE_H
#define MXD_SMTPD_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "mxd_config.h"
#include "smtp_parser.h"
#include "spool.h"

/* How much input to make contiguous when a line spans pieces: more than a
 * command line (SMTP_LINE_MAX), with room to spare for pipelining. */
#define SMTPD_CORE_WINDOW	65536

enum smtpd_core_phase {
	SMTPD_PHASE_INIT,		/* waiting for EHLO/HELO */
	SMTPD_PHASE_READY,		/* EHLO done, no transaction */
	SMTPD_PHASE_MAIL,		/* MAIL accepted (RCPTs may follow) */
	SMTPD_PHASE_DATA,		/* reading DATA content */
	SMTPD_PHASE_BDAT,		/* reading a BDAT chunk */
	SMTPD_PHASE_COMMIT,		/* waiting for the spool to be durable */
	SMTPD_PHASE_STARTTLS_FLUSH,	/* 220 sent, waiting for it to leave */
	SMTPD_PHASE_TLS,		/* TLS handshake */
	SMTPD_PHASE_VERIFY,		/* RCPT waits for a recipient probe */
};

/* What io->rcpt_verify knows of a recipient of a verify-mode domain. */
enum smtpd_core_verify {
	SMTPD_VERIFY_KNOWN,	/* 250 */
	SMTPD_VERIFY_UNKNOWN,	/* 550 5.1.1 User unknown */
	SMTPD_VERIFY_FAILED,	/* 450 4.1.1: the probe could not complete */
	SMTPD_VERIFY_WAIT,	/* a probe runs: smtpd_core_verify_done follows */
};

enum smtpd_core_starttls {
	SMTPD_STARTTLS_NONE, SMTPD_STARTTLS_OFFERED, SMTPD_STARTTLS_ATTEMPTED,
	SMTPD_STARTTLS_ESTABLISHED,
};

/* What the glue (logs, outcome record, shutdown) may read; only the core
 * writes it. */
struct smtpd_core_info {
	enum smtpd_core_phase	 phase;
	enum smtpd_core_starttls starttls;
	int			 esmtp;
	int			 tls;		/* the session is under TLS */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	int			 errors;
	int			 junk;		/* EHLO/HELO/NOOP/RSET/VRFY/HELP since the last message */
	int			 closing;	/* a final reply was sent; read nothing more */
	int			 in_txn;	/* MAIL accepted, transaction open */
	int			 messages;	/* accepted (committed) */
	int			 rcpts_total;
	size_t			 nrcpts;	/* in the open transaction */
};

struct smtpd_core_io {
	/* Reply bytes, whole lines with CRLF, to be sent in order. */
	void	(*send)(void *arg, const char *data, size_t len);
	/* Idle timeout from now on (command or data). */
	void	(*set_timeout)(void *arg, int seconds);
	/* The spool calls return 0, or the errno of a failure (ENOSPC and
	 * EDQUOT are answered 452 4.3.1, anything else 451 4.3.0; never 5xx:
	 * the sender keeps the mail and retries).
	 * Open a message file: set env->id and env->created, write the
	 * envelope. */
	int	(*msg_begin)(void *arg, struct spool_env *env);
	/* Append content to the open message. The core remembers the first
	 * failure and refuses the message at its end. */
	int	(*msg_write)(void *arg, const char *data, size_t len);
	/* Finish the message file and start making it durable. 0: the commit
	 * runs, smtpd_core_commit_done follows; an errno: failed now, no
	 * commit (the core aborts the message). */
	int	(*msg_commit)(void *arg);
	/* Forget the open message file, or an unfinished commit. */
	void	(*msg_abort)(void *arg);
	/* The 220 to STARTTLS is queued: read nothing more in plaintext and
	 * start the handshake once it has left. */
	void	(*starttls)(void *arg);
	/* A final reply is queued: close once it has left. */
	void	(*close)(void *arg);
	/* recipient_check "verify" (rcpt_verify.h): what is known of addr, a
	 * recipient of dom. WAIT: the core reads nothing more until
	 * smtpd_core_verify_done. NULL: every such recipient gets 450. */
	enum smtpd_core_verify (*rcpt_verify)(void *arg, const struct mxd_domain *dom,
	    const char *addr);
};

struct smtpd_core_params {
	const struct mxd_config	*cfg;
	const char		*sid;		/* for logs */
	const char		*ip;		/* client address: logs, Received */
	int			 trusted;	/* may relay */
	int			 tls_available;	/* STARTTLS can be offered */
	size_t			 flush_bytes;	/* content buffered before a spool
						   write; 0: 64 KiB (tests use less) */
};

struct smtpd_core;

/* Returns 0 and the core in *out. */
int smtpd_core_new(const struct smtpd_core_params *p, const struct smtpd_core_io *io,
    void *arg, struct smtpd_core **out);
void smtpd_core_free(struct smtpd_core *c);
const struct smtpd_core_info *smtpd_core_info(const struct smtpd_core *c);

/* Consume input: at most one command line, or content up to the end of DATA
 * or of the current BDAT chunk. *used is how much of data to drain. Returns
 * 1 when it moved on (used bytes or changed state: call again), 0 when it
 * needs more input or is waiting (commit, STARTTLS, closing). */
int smtpd_core_feed(struct smtpd_core *c, const char *data, size_t len, size_t *used);

/* The commit started by io->msg_commit ended: error 0 when the message is
 * durable (id is its queue id), else the errno of the step that failed. */
void smtpd_core_commit_done(struct smtpd_core *c, int error, const char *id);

/* The probe that io->rcpt_verify answered WAIT for ended: r is KNOWN,
 * UNKNOWN or FAILED. The pending RCPT is answered; the glue feeds again. */
void smtpd_core_verify_done(struct smtpd_core *c, enum smtpd_core_verify r);

/* The handshake begins: whatever was pipelined after STARTTLS is the glue's
 * to throw away (it is never fed). */
void smtpd_core_tls_started(struct smtpd_core *c);
/* RFC 3207 4.2: everything learnt before TLS is forgotten; EHLO again. */
void smtpd_core_tls_established(struct smtpd_core *c, const char *version,
    const char *cipher);

/* The client's confirmed reverse-DNS name (ptr_lookup.h), for the Received:
 * headers of the messages that begin from now on. */
void smtpd_core_set_client_name(struct smtpd_core *c, const char *name);

/* Tell the client we stop (421 4.3.2) and close. */
void smtpd_core_shutdown(struct smtpd_core *c);
/* A reply the glue decides (greeting, refusals, timeouts). */
void smtpd_core_reply(struct smtpd_core *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
