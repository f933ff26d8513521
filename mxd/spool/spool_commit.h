/* Group commit for the spool. Sessions hand finished messages to one thread
 * per process; it makes every message waiting at that moment durable with one
 * flush (syncfs for a batch, fdatasync for one), renames them into queue/
 * under hidden names (queue/.ID), fsyncs the directory once, reveals them
 * (queue/ID) and posts completions back to the event loop. Under load many
 * sessions share one disk flush instead of queueing for one each.
 *
 * One outcome per message, never both: error = 0 (the session says 250)
 * only when the file and the directory fsync succeeded; otherwise an errno
 * (the session's 4xx: 452 4.3.1 for ENOSPC and EDQUOT, 451 4.3.0 else) and
 * the file is removed before the completion is posted, wherever it was:
 * tmp/ID, or queue/.ID when the rename succeeded but the directory fsync
 * failed. The second case is the one that matters: keeping the renamed file
 * and answering 451 would deliver a message whose sender was told to retry
 * (a duplicate), and answering 250 would claim a durability the kernel just
 * denied - after a failed fsync a later one may succeed without the lost
 * metadata ever reaching the disk, so retrying it proves nothing. Unlinking
 * hands the message back to the sender, who still has it. The hidden name
 * is what makes "never delivered" hold while the fsync is in flight: the
 * scheduler's rescan skips dot names, so it can not pick the file up
 * between the rename and the unlink. What is left is a crash after the
 * failed fsync that loses the unlink but keeps the rename: the file is
 * then revealed - by spool_recover at start, or by spool_recover_pid when
 * the master reaps the dead process - and delivered once more than asked,
 * the duplicate the design allows, never a loss. A crash after a good
 * fsync is the same duplicate: the client never got its 250. */
#ifndef MXD_SPOOL_COMMIT_H
#define MXD_SPOOL_COMMIT_H

#include "spool.h"

struct spool_committer;
struct spool_commit_job;

/* error: 0 when the message is durable in queue/; else the errno of the
 * step that failed (ENOSPC: the disk is full), and its file is gone. */
typedef void (*spool_commit_cb)(void *arg, int error, const char *id);

/* notify_fd: a pipe to the scheduler ("ID\n" per committed message), or -1. */
int spool_committer_new(struct spool *sp, int notify_fd, struct spool_committer **out);
void spool_committer_free(struct spool_committer *c);
/* Readable when completions are ready; then call spool_committer_dispatch. */
int spool_committer_fd(const struct spool_committer *c);
void spool_committer_dispatch(struct spool_committer *c);
/* Takes ownership of m (finished with spool_msg_finish). */
struct spool_commit_job *spool_commit(struct spool_committer *c, struct spool_msg *m,
    spool_commit_cb cb, void *arg);
/* The session went away: the message is still committed, nobody is told. */
void spool_commit_cancel(struct spool_commit_job *j);

#endif
