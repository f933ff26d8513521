/* Group commit for the spool. Sessions hand finished messages to one thread
 * per process; it makes every message waiting at that moment durable with one
 * flush (syncfs for a batch, fdatasync for one), renames them into queue/,
 * fsyncs the directory once, and posts completions back to the event loop.
 * Under load many sessions share one disk flush instead of queueing for one
 * each. */
#ifndef MXD_SPOOL_COMMIT_H
#define MXD_SPOOL_COMMIT_H

#include "spool.h"

struct spool_committer;
struct spool_commit_job;

/* ok: 1 when the message is durable in queue/, 0 when it could not be made so. */
typedef void (*spool_commit_cb)(void *arg, int ok, const char *id);

/* notify_fd: a pipe to the delivery process ("ID\n" per committed message), or -1. */
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
