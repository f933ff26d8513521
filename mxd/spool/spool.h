/* The durable spool: one file per message (envelope header, then content).
 *
 * A message is written to tmp/ID, fsync'd, renamed to queue/.ID, the
 * directory fsync'd, and renamed to queue/ID; only then may the session say
 * 250. A file in queue/ is complete by construction; one in tmp/ at start
 * never got a 250 and is removed. A queue file that does not parse is moved
 * to corrupt/, never lost. */
#ifndef MXD_SPOOL_H
#define MXD_SPOOL_H

#include "dsn_param.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SPOOL_ID_MAX	32

struct spool;

/* Where one recipient stands, kept in its queue file and updated in place
 * (a fixed-width "status" line after the recipient's lines), so that the
 * outcome of an attempt can be recorded on a full disk: a recipient done
 * is never sent again, one returned is never sent again while its DSN
 * waits for space. */
#define SPOOL_RCPT_TODO		'-'	/* not finished: deliver it */
#define SPOOL_RCPT_DONE		'D'	/* delivered, or returned with its DSN
					   queued (or none due) */
#define SPOOL_RCPT_BOUNCED	'B'	/* returned (5xx, expiry), its DSN not
					   queued yet: code, mta, reply for it */
/* The status line's value: "state=S code=DDD len=DDD " and the stored text
 * (the MTA, a space, the reply with CR, LF, '%' and other bytes outside
 * printable ASCII as %XX), padded with spaces; a longer reply is cut and
 * ends in " [...]". */
#define SPOOL_STATUS_LEN	384

struct spool_rcpt_status {
	char		  state;	/* SPOOL_RCPT_* */
	int		  code;		/* BOUNCED: reply code, 0 when none came */
	char		 *mta;		/* BOUNCED: remote MTA name, NULL: none */
	char		 *reply;	/* BOUNCED: reply text, lines split by \n */
	off_t		  off;		/* the value's file offset; 0: the file has
					   no status line for it (written by an
					   older mxd) */
};

struct spool_env {
	char		  id[SPOOL_ID_MAX];
	time_t		  created;
	char		 *from;		/* "" for the null sender */
	char		**rcpts;
	size_t		  nrcpts;
	int		  requiretls;
	int		  smtputf8;
	int		  body8bit;
	uint64_t	  size;		/* content bytes */
	/* DSN (RFC 3461), as received. The per-recipient arrays run parallel
	 * to rcpts; either may be NULL (nothing given for anyone). */
	char		 *envid;	/* xtext, NULL when not given */
	int		  ret;		/* DSN_RET_* */
	unsigned	 *notify;	/* DSN_NOTIFY_* bits, 0: not given */
	char		**orcpt;	/* "addr-type;xtext", NULL: not given */
	/* Each recipient's status (parallel to rcpts; NULL: all TODO). */
	struct spool_rcpt_status *status;
	/* The delivery schedule, kept across restarts: attempts made, when
	 * the next is due (0: at once), whether the sender got the delay
	 * notice. A fixed-width line written with the message, then updated
	 * in place (spool_set_progress); sched_off is its file offset, 0 when
	 * the file has none (written by an older mxd: spool_rewrite adds it). */
	int		  attempts;
	time_t		  next_attempt;
	int		  delay_notified;
	off_t		  sched_off;
};

struct spool_msg;	/* a message being written */

int spool_open(struct spool **out, const char *dir, uid_t uid, gid_t gid,
    char *err, size_t errsz);
void spool_free(struct spool *sp);
const char *spool_dir(const struct spool *sp);
int spool_queue_fd(const struct spool *sp);

void spool_env_free(struct spool_env *env);
void spool_env_add_rcpt(struct spool_env *env, const char *rcpt);
/* A recipient with its NOTIFY bits (0: not given) and ORCPT (NULL: none). */
void spool_env_add_rcpt_dsn(struct spool_env *env, const char *rcpt, unsigned notify,
    const char *orcpt);
/* Recipient i's NOTIFY bits and ORCPT, safe when the arrays are absent. */
unsigned spool_env_notify(const struct spool_env *env, size_t i);
const char *spool_env_orcpt(const struct spool_env *env, size_t i);
/* Recipient i's status, safe when the array is absent (TODO). */
char spool_env_state(const struct spool_env *env, size_t i);
/* Set recipient i's status; mta and reply are copied for BOUNCED only. */
void spool_env_set_status(struct spool_env *env, size_t i, char state, int code,
    const char *mta, const char *reply);
/* Keep, in place, the recipients whose keep[i] is non-zero (with their DSN
 * parameters and status); the others are freed. */
void spool_env_keep(struct spool_env *env, const int *keep);
/* Fill env->id with a fresh unique id: the time, a field from the pid of
 * the process that made it (spool_id_pid) and a counter. */
void spool_new_id(char *id, size_t idsz);
/* The pid field of the ids pid makes. Two live processes may share it
 * (pids above 0xfFFFF); then spool_recover_pid must not run for either. */
unsigned spool_id_pid(pid_t pid);

/* Writing. begin creates tmp/ID and writes the envelope; write buffers
 * content; finish flushes it and records the size; commit (spool_commit.h)
 * makes it durable; abort removes whatever file it has (tmp/ID or queue/.ID;
 * never a revealed queue/ID). begin returns -1 with errno. The first write,
 * finish, sync or publish error sticks: every later call fails at once with
 * the same errno (a message with a hole in it is never written, whatever
 * the disk does meanwhile), and spool_msg_error returns it (0: none), so the
 * session can say 452 4.3.1 for ENOSPC and EDQUOT. */
int spool_msg_begin(struct spool *sp, const struct spool_env *env, struct spool_msg **out);
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
int spool_msg_finish(struct spool_msg *m);
int spool_msg_error(const struct spool_msg *m);
void spool_msg_abort(struct spool_msg *m);
const char *spool_msg_id(const struct spool_msg *m);
uint64_t spool_msg_size(const struct spool_msg *m);
/* The durable steps, blocking, in this order: sync fsyncs the file;
 * publish renames it to queue/.ID, a name that scans and recovery pass
 * over; spool_sync_queue fsyncs the queue directory (once per batch); only
 * when that succeeded, reveal renames it to queue/ID, where the delivery
 * process finds it. A crash before reveal leaves queue/.ID, which
 * spool_recover (at start) or spool_recover_pid (when the master reaps the
 * dead process) reveals: it was durable. On a failure the caller aborts. */
int spool_msg_sync(struct spool_msg *m, int do_fsync);
int spool_msg_publish(struct spool_msg *m);
int spool_sync_queue(struct spool *sp);
int spool_msg_reveal(struct spool_msg *m);
void spool_msg_free(struct spool_msg *m);
/* Durably write a whole message at once (DSNs). Fills env->id. Returns -1
 * with errno, and no file left, when it could not be made durable. */
int spool_inject(struct spool *sp, struct spool_env *env, const char *content, size_t len);
/* The same without any fsync, for tools that fill a spool fast
 * (tests/bench/queue/spoolfill) and sync the file system once at the end. */
int spool_inject_unsynced(struct spool *sp, struct spool_env *env, const char *content,
    size_t len);

/* Reading. Opens queue/ID and parses the envelope; *fd is positioned at the
 * content start (content_off). Returns 0, -1 on I/O error (errno), -2 when the
 * file is corrupt. */
int spool_read(struct spool *sp, const char *id, struct spool_env *env, int *fd,
    off_t *content_off);
/* Parse an envelope header from memory (the fuzzable part of spool_read).
 * Returns the header length, 0 if incomplete, -1 if malformed. */
long spool_parse_env(const char *p, size_t len, struct spool_env *env);
/* Replace the envelope with env's, through a copy of the whole file (it
 * needs the space of one more copy): for files without the status and
 * schedule lines, which it adds. */
int spool_rewrite(struct spool *sp, const struct spool_env *env, int fd, off_t content_off);
/* Whether env's file has a status line for every recipient and a schedule
 * line, so spool_set_progress can store them without new disk space. */
int spool_env_in_place(const struct spool_env *env);
/* Store every recipient's status and the schedule (attempts, next_attempt,
 * delay_notified) in the queue file, in place: no new disk space, so it
 * works on a full disk. No fsync: a crash can lose the last update, and
 * then a recipient is tried again (a duplicate or a second DSN), a retry
 * comes early or a delay notice twice - never a loss. -1 with errno on I/O
 * error, EINVAL when the file lacks the lines (spool_env_in_place). */
int spool_set_progress(struct spool *sp, const struct spool_env *env);
int spool_remove(struct spool *sp, const char *id);
int spool_quarantine(struct spool *sp, const char *id);

/* Start-up recovery: remove tmp/ leftovers, reveal queue/.ID files (a crash
 * between a commit's directory fsync and its reveal), call cb for every
 * queued id. */
int spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg), void *arg);
/* A process that wrote messages died: the same for what it left in flight,
 * without waiting for a restart - its tmp/ID files are removed, its
 * queue/.ID files revealed (cb for each), as spool_recover would. Only
 * while no live process shares its pid field (spool_id_pid). Returns the
 * number revealed, -1 when a directory can not be read. */
int spool_recover_pid(struct spool *sp, pid_t pid, void (*cb)(const char *id, void *arg),
    void *arg);
/* List queue/ ids (for periodic rescans). */
int spool_scan(struct spool *sp, void (*cb)(const char *id, void *arg), void *arg);

#endif
