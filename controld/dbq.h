/* controld's database workers: a pool of threads, each with its own
 * PostgreSQL connection (db.h: one handle, one thread), taking jobs from one
 * queue and handing each finished job back to the event loop.
 *
 * The loop never calls libpq. It submits a job; a worker opens or reopens
 * its connection when it needs one (connect_timeout included, so an
 * unreachable server costs a worker, never the loop) and a new one when
 * the last job left it broken or on a read-only server (a failover: libpq
 * picks the primary among the hosts listed), runs job->work with
 * it and posts the job back through a pipe the loop watches; job->done then
 * runs on the loop, in the order the jobs finished. A job whose worker could
 * not connect is handed back with rc DB_ECONN and work never called.
 *
 * Who may call what: dbq_new, dbq_submit*, dbq_stats and dbq_free from the
 * loop's thread only. work runs on a worker and may touch nothing but its
 * job and the db handle; done runs on the loop and owns the job (frees it).
 * dbq_free stops the workers once their current job is over and calls done
 * of every job still queued with rc DB_ECONN "controld is stopping". A
 * worker still waiting on the database after wait_ms is left behind (logged
 * as event=db_workers_stuck; the pool is not freed, the process is about to
 * exit): a frozen database must not keep controld from stopping. */
#ifndef CONTROLD_DBQ_H
#define CONTROLD_DBQ_H

#include <event2/event.h>
#include <stddef.h>

#include "db.h"

#define DBQ_DEFAULT_WORKERS	4
#define DBQ_MAX_WORKERS		64
#define DBQ_DEFAULT_MAX_QUEUED	10000
/* A worker whose connect failed waits this long before the next attempt,
 * doubling per failure up to the maximum; jobs meanwhile fail at once with
 * DB_ECONN "not connected (next attempt in N ms): WHY". */
#define DBQ_RECONNECT_MIN_MS	250
#define DBQ_RECONNECT_MAX_MS	4000

struct dbq_job {
	/* Set by the submitter. work returns a db_status; on failure the
	 * handle's db_errmsg is copied to err unless work wrote one. */
	int		(*work)(struct db *db, struct dbq_job *j);
	void		(*done)(struct dbq_job *j);
	/* Set by the pool. */
	int		 rc;
	char		 err[512];
	struct dbq_job	*next;
};

struct dbq_opts {
	const char	*conninfo;
	int		 statement_timeout_ms;	/* db_set_statement_timeout on each connection */
	int		 workers;		/* 1 .. DBQ_MAX_WORKERS */
	size_t		 max_queued;		/* jobs waiting for a worker */
};

struct dbq_stats {
	size_t		 queued;	/* waiting for a worker */
	size_t		 busy;		/* workers running a job */
	size_t		 connected;	/* workers holding a connection */
};

struct dbq;

/* Start the workers; they connect when their first job comes. -1 with err
 * set when a thread or the pipe could not be made. */
int dbq_new(struct dbq **out, struct event_base *base, const struct dbq_opts *o,
    char *err, size_t errsz);
/* Queue a job behind the others. -1 (nothing queued, done not called) when
 * max_queued jobs are waiting already. */
int dbq_submit(struct dbq *q, struct dbq_job *j);
/* Queue a job ahead of the others (a health probe must not wait behind a
 * backlog of batches); not subject to max_queued. */
void dbq_submit_first(struct dbq *q, struct dbq_job *j);
void dbq_stats(struct dbq *q, struct dbq_stats *out);
/* 0, or -1 when workers were left behind (see above). */
int dbq_free(struct dbq *q, int wait_ms);

#endif
