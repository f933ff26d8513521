/* controld's database workers (dbq.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dbq.h"
#include "log.h"
#include "xmalloc.h"

struct dbq_worker {
	struct dbq	*q;
	pthread_t	 thread;
	struct db	*db;	/* this worker's connection; NULL until it needs one */
	/* After a failed connect: no new attempt before retry_at (monotonic
	 * ms); the wait doubles per failure, DBQ_RECONNECT_MIN_MS ..
	 * DBQ_RECONNECT_MAX_MS, and a job meanwhile fails at once with
	 * last_err. */
	long long	 retry_at, backoff_ms;
	char		 last_err[400];
};

struct dbq {
	struct dbq_opts		 o;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	pthread_cond_t		 gone_cv;	/* a worker ended */
	int			 alive;		/* workers not ended */
	struct dbq_job		*head, *tail;		/* waiting for a worker */
	struct dbq_job		*done_head, *done_tail;	/* finished, for the loop */
	size_t			 queued, busy, connected;
	int			 stopping;
	int			 pipe[2];		/* worker -> loop: "jobs are done" */
	struct event		*ev;
	struct dbq_worker	*w;
	int			 nw;
};

static void
dbq_lock(struct dbq *q)
{
	if (pthread_mutex_lock(&q->mu) != 0)
		abort();
}

static void
dbq_unlock(struct dbq *q)
{
	if (pthread_mutex_unlock(&q->mu) != 0)
		abort();
}

static long long
dbq_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connect failed (err) or a job left the connection broken: wait longer
 * before the next attempt. */
static void
dbq_worker_backoff(struct dbq_worker *w, const char *err)
{
	w->backoff_ms = w->backoff_ms == 0 ? DBQ_RECONNECT_MIN_MS :
	    w->backoff_ms * 2 > DBQ_RECONNECT_MAX_MS ? DBQ_RECONNECT_MAX_MS : w->backoff_ms * 2;
	w->retry_at = dbq_now_ms() + w->backoff_ms;
	snprintf(w->last_err, sizeof(w->last_err), "%s", err);
}

static void
dbq_worker_disconnect(struct dbq_worker *w)
{
	db_close(w->db);
	w->db = NULL;
	dbq_lock(w->q);
	w->q->connected--;
	dbq_unlock(w->q);
}

/* Have an open connection, on a server that takes writes: open one if the
 * worker has none, open a new one if the last job left it broken (the
 * server went away, a failover) or found it read-only. libpq tries every
 * host of the connection string, so a new connection lands on the primary
 * of the moment. */
static int
dbq_worker_connect(struct dbq_worker *w, struct dbq_job *j)
{
	struct dbq *q = w->q;
	long long now;

	if (w->db != NULL && db_connected(w->db))
		return 0;
	if (w->db != NULL)
		dbq_worker_disconnect(w);
	if ((now = dbq_now_ms()) < w->retry_at) {
		snprintf(j->err, sizeof(j->err), "not connected (next attempt in %lld ms): %s",
		    w->retry_at - now, w->last_err);
		return -1;
	}
	if (db_open(&w->db, q->o.conninfo, j->err, sizeof(j->err)) != DB_OK) {
		w->db = NULL;
		dbq_worker_backoff(w, j->err);
		return -1;
	}
	if (db_set_statement_timeout(w->db, q->o.statement_timeout_ms) != DB_OK) {
		snprintf(j->err, sizeof(j->err), "%s", db_errmsg(w->db));
		db_close(w->db);
		w->db = NULL;
		dbq_worker_backoff(w, j->err);
		return -1;
	}
	w->backoff_ms = 0;
	w->retry_at = 0;
	dbq_lock(q);
	q->connected++;
	dbq_unlock(q);
	return 0;
}

static void
dbq_worker_run(struct dbq_worker *w, struct dbq_job *j)
{
	j->err[0] = '\0';
	if (dbq_worker_connect(w, j) < 0) {
		j->rc = DB_ECONN;
		return;
	}
	j->rc = j->work(w->db, j);
	if (j->rc != DB_OK && j->err[0] == '\0')
		snprintf(j->err, sizeof(j->err), "%s", db_errmsg(w->db));
	/* The job's own reconnect (db_call) failed too: the next job waits
	 * for the backoff rather than trying again at once. */
	if (!db_connected(w->db))
		dbq_worker_backoff(w, j->err[0] ? j->err : db_errmsg(w->db));
	else
		w->backoff_ms = w->retry_at = 0;
}

/* Hand a finished job to the loop; one byte wakes it when the list was
 * empty (the loop takes the whole list at once). */
static void
dbq_post(struct dbq *q, struct dbq_job *j)
{
	j->next = NULL;
	dbq_lock(q);
	int wake = q->done_head == NULL;
	if (q->done_tail)
		q->done_tail->next = j;
	else
		q->done_head = j;
	q->done_tail = j;
	dbq_unlock(q);
	if (wake) {
		char b = 1;
		while (write(q->pipe[1], &b, 1) < 0 && errno == EINTR)
			;
	}
}

static void *
dbq_worker_main(void *arg)
{
	struct dbq_worker *w = arg;
	struct dbq *q = w->q;

	for (;;) {
		dbq_lock(q);
		while (!q->stopping && q->head == NULL)
			if (pthread_cond_wait(&q->cv, &q->mu) != 0)
				abort();
		if (q->stopping) {
			dbq_unlock(q);
			break;
		}
		struct dbq_job *j = q->head;
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->queued--;
		q->busy++;
		dbq_unlock(q);

		dbq_worker_run(w, j);
		dbq_lock(q);
		q->busy--;
		dbq_unlock(q);
		dbq_post(q, j);
	}
	if (w->db)
		db_close(w->db);
	dbq_lock(q);
	q->alive--;
	pthread_cond_broadcast(&q->gone_cv);
	dbq_unlock(q);
	return NULL;
}

static struct dbq_job *
dbq_take_done(struct dbq *q)
{
	dbq_lock(q);
	struct dbq_job *j = q->done_head;
	q->done_head = q->done_tail = NULL;
	dbq_unlock(q);
	return j;
}

static void
dbq_run_done(struct dbq_job *j)
{
	while (j) {
		struct dbq_job *next = j->next;
		j->done(j);
		j = next;
	}
}

static void
dbq_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dbq *q = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	dbq_run_done(dbq_take_done(q));
}

int
dbq_new(struct dbq **out, struct event_base *base, const struct dbq_opts *o,
    char *err, size_t errsz)
{
	struct dbq *q = xcalloc(1, sizeof(*q));
	q->o = *o;
	q->o.conninfo = xstrdup(o->conninfo);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->gone_cv, NULL);
	if (pipe2(q->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		free((char *)q->o.conninfo);
		free(q);
		return -1;
	}
	q->ev = event_new(base, q->pipe[0], EV_READ | EV_PERSIST, dbq_wake_cb, q);
	event_add(q->ev, NULL);
	q->w = xcalloc((size_t)o->workers, sizeof(*q->w));
	for (int i = 0; i < o->workers; i++) {
		q->w[i].q = q;
		int e = pthread_create(&q->w[i].thread, NULL, dbq_worker_main, &q->w[i]);
		if (e != 0) {
			snprintf(err, errsz, "database worker %d: %s", i, strerror(e));
			dbq_free(q, 0);
			return -1;
		}
		q->nw++;
		dbq_lock(q);
		q->alive++;
		dbq_unlock(q);
	}
	*out = q;
	return 0;
}

static void
dbq_append(struct dbq *q, struct dbq_job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
}

int
dbq_submit(struct dbq *q, struct dbq_job *j)
{
	dbq_lock(q);
	if (q->queued >= q->o.max_queued) {
		dbq_unlock(q);
		return -1;
	}
	dbq_append(q, j);
	pthread_cond_signal(&q->cv);
	dbq_unlock(q);
	return 0;
}

void
dbq_submit_first(struct dbq *q, struct dbq_job *j)
{
	dbq_lock(q);
	j->next = q->head;
	q->head = j;
	if (q->tail == NULL)
		q->tail = j;
	q->queued++;
	pthread_cond_signal(&q->cv);
	dbq_unlock(q);
}

void
dbq_stats(struct dbq *q, struct dbq_stats *out)
{
	dbq_lock(q);
	out->queued = q->queued;
	out->busy = q->busy;
	out->connected = q->connected;
	dbq_unlock(q);
}

/* Wait up to wait_ms for every worker to end; 0 when they did. */
static int
dbq_wait_workers(struct dbq *q, int wait_ms)
{
	struct timespec until;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	dbq_lock(q);
	while (q->alive > 0 && rc == 0)
		rc = pthread_cond_timedwait(&q->gone_cv, &q->mu, &until);
	int left = q->alive;
	size_t busy = q->busy;
	dbq_unlock(q);
	if (left == 0)
		return 0;
	log_warnx("event=db_workers_stuck workers=%d busy=%zu reason=\"the database did not "
	    "answer within %d ms; stopping without them\"", left, busy, wait_ms);
	return -1;
}

int
dbq_free(struct dbq *q, int wait_ms)
{
	if (q == NULL)
		return 0;
	dbq_lock(q);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv);
	dbq_unlock(q);
	if (dbq_wait_workers(q, wait_ms) < 0)
		return -1;	/* q stays: a stuck worker may still post to it */
	for (int i = 0; i < q->nw; i++)
		pthread_join(q->w[i].thread, NULL);
	/* Finished first, in order; then what no worker took. A done callback
	 * may queue more (a job that waited for another): round again. */
	for (;;) {
		struct dbq_job *d = dbq_take_done(q), *j;
		dbq_lock(q);
		j = q->head;
		q->head = q->tail = NULL;
		q->queued = 0;
		dbq_unlock(q);
		if (d == NULL && j == NULL)
			break;
		dbq_run_done(d);
		for (struct dbq_job *next; j; j = next) {
			next = j->next;
			j->rc = DB_ECONN;
			snprintf(j->err, sizeof(j->err), "controld is stopping");
			j->done(j);
		}
	}
	event_free(q->ev);
	close(q->pipe[0]);
	close(q->pipe[1]);
	pthread_cond_destroy(&q->cv);
	pthread_cond_destroy(&q->gone_cv);
	pthread_mutex_destroy(&q->mu);
	free(q->w);
	free((char *)q->o.conninfo);
	free(q);
	return 0;
}
