/* The scheduler process (mxd-qmgr): owns the queue, hands transactions to
 * its delivery agents (mxd-smtp, deliver.c), records their results in the
 * spool files and sends the DSNs. qmgr.c is its loop; qmgr_queue.c the
 * queue-control socket; qmgr_dsn.c the DSNs; qmgr_sched.c the schedule. */
#ifndef MXD_QMGR_H
#define MXD_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "mxd.h"
#include "mxd_config.h"
#include "outcome.h"
#include "qmgr_sched.h"
#include "spool.h"

struct pollfd;
struct qmgr_job;
struct qmgr_qlist;

/* One delivery agent, as the scheduler sees it. */
struct qmgr_agent {
	pid_t		 pid;
	int		 fd;		/* its end of the socketpair; -1: gone */
	struct buf	 in;		/* bytes of an answer not complete yet */
	struct qmgr_job	*job;		/* the job it runs; NULL: idle */
	char		 dest[300];	/* its last destination (its cached
					   connection, if still open) */
	int		 cls;		/* and that destination's class */
	int64_t		 idle_since;	/* seconds; when it went idle */
	int		 retire;	/* a reload: no new job, closed when idle */
	int		 reaped;	/* its process is collected: never kill its pid */
};

struct qmgr {
	struct mxd_config	*cfg;
	struct mxd_config	*cfg_orig;	/* the master's: not freed here */
	struct spool		*sp;
	int			 notify_fd;
	struct qmgr_sched	*sched;
	struct outcome_sink	 outcomes;	/* the agents' outbound records */
	struct deliver_tls	 tls;		/* the agents' SSL contexts */
	struct qmgr_agent	*agents;
	size_t			 nagents, capagents;
	size_t			 active_msgs;	/* messages in flight */
	int			 stopping;	/* SIGTERM: what is cut short is due at once */
	char			 pipebuf[4096];
	size_t			 pipelen;
	int			 qctl_fd;	/* listening; -1: none */
	char			 qctl_path[108];	/* sun_path: spool_dir/queue.sock */
	struct qmgr_qlist	*qlists;	/* listings being sent */
};

/* qmgr_queue.c: the queue-control socket, spool_dir/queue.sock
 * (docs/mxd.md#queue-control). open never fails the process: without the
 * socket it logs a warning and qctl_fd stays -1. serve answers the
 * connections waiting on qctl_fd, each within a bounded time. A listing
 * is streamed: pollfds gives the sockets to wait on for POLLOUT (p NULL:
 * their number), stream sends the next slice of each, once per turn of
 * the loop. forget closes the sockets in a forked agent. */
void qmgr_queue_open(struct qmgr *q);
void qmgr_queue_serve(struct qmgr *q);
size_t qmgr_queue_pollfds(const struct qmgr *q, struct pollfd *p);
void qmgr_queue_stream(struct qmgr *q);
void qmgr_queue_forget(struct qmgr *q);
void qmgr_queue_close(struct qmgr *q);

#endif
