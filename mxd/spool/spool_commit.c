#include "spool_commit.h"
#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct spool_commit_job {
	struct spool_commit_job	*next;
	struct spool_msg	*msg;
	spool_commit_cb		 cb;
	void			*arg;
	int			 error;		/* 0: durable */
	char			 id[SPOOL_ID_MAX];
};

struct spool_committer {
	struct spool		*sp;
	int			 notify_fd;
	int			 event_fd;
	pthread_t		 thread;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct spool_commit_job	*pending, **pending_tail;
	struct spool_commit_job	*done, **done_tail;
	int			 stop;
};

static void
spool_commit_batch(struct spool_committer *c, struct spool_commit_job *batch)
{
	int n = 0;
	for (struct spool_commit_job *j = batch; j; j = j->next)
		n++;
	int synced = 0;
	if (n > 1) {
		/* One flush of the file system covers every file in the batch. */
		if (syncfs(spool_queue_fd(c->sp)) == 0)
			synced = 1;
		else
			log_warn("event=spool_error op=syncfs");
	}
	for (struct spool_commit_job *j = batch; j; j = j->next) {
		if (spool_msg_sync(j->msg, !synced) < 0 || spool_msg_publish(j->msg) < 0)
			j->error = spool_msg_error(j->msg);
	}
	/* Renamed under hidden names: none is visible before this decides. */
	int dir_error = spool_sync_queue(c->sp) < 0 ? errno : 0;
	for (struct spool_commit_job *j = batch; j; j = j->next) {
		if (j->error == 0 && dir_error)
			j->error = dir_error;
		if (j->error == 0 && spool_msg_reveal(j->msg) < 0)
			j->error = spool_msg_error(j->msg);
		if (j->error) {
			/* Never delivered after a 451 (spool_commit.h). */
			spool_msg_abort(j->msg);
			j->msg = NULL;
			continue;
		}
		spool_msg_free(j->msg);
		j->msg = NULL;
		if (c->notify_fd >= 0) {
			char line[SPOOL_ID_MAX + 2];
			int l = snprintf(line, sizeof(line), "%s\n", j->id);
			/* Best effort: a full pipe only delays pickup until the
			 * scheduler's periodic rescan. */
			ssize_t w = write(c->notify_fd, line, (size_t)l);
			(void)w;
		}
	}
}

static void *
spool_commit_thread(void *arg)
{
	struct spool_committer *c = arg;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->pending == NULL && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->pending == NULL && c->stop)
			break;
		struct spool_commit_job *batch = c->pending;
		c->pending = NULL;
		c->pending_tail = &c->pending;
		pthread_mutex_unlock(&c->mu);

		spool_commit_batch(c, batch);

		pthread_mutex_lock(&c->mu);
		struct spool_commit_job *last = batch;
		while (last->next)
			last = last->next;
		*c->done_tail = batch;
		c->done_tail = &last->next;
		uint64_t one = 1;
		ssize_t w = write(c->event_fd, &one, sizeof(one));
		(void)w;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
spool_committer_new(struct spool *sp, int notify_fd, struct spool_committer **out)
{
	struct spool_committer *c = xcalloc(1, sizeof(*c));
	c->sp = sp;
	c->notify_fd = notify_fd;
	c->pending_tail = &c->pending;
	c->done_tail = &c->done;
	c->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->event_fd < 0) {
		free(c);
		return -1;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, spool_commit_thread, c) != 0) {
		close(c->event_fd);
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void
spool_committer_free(struct spool_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	spool_committer_dispatch(c);
	close(c->event_fd);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int
spool_committer_fd(const struct spool_committer *c)
{
	return c->event_fd;
}

void
spool_committer_dispatch(struct spool_committer *c)
{
	uint64_t v;
	ssize_t r = read(c->event_fd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&c->mu);
	struct spool_commit_job *list = c->done;
	c->done = NULL;
	c->done_tail = &c->done;
	pthread_mutex_unlock(&c->mu);
	while (list) {
		struct spool_commit_job *next = list->next;
		if (list->cb)
			list->cb(list->arg, list->error, list->id);
		free(list);
		list = next;
	}
}

struct spool_commit_job *
spool_commit(struct spool_committer *c, struct spool_msg *m, spool_commit_cb cb, void *arg)
{
	struct spool_commit_job *j = xcalloc(1, sizeof(*j));
	j->msg = m;
	j->cb = cb;
	j->arg = arg;
	snprintf(j->id, sizeof(j->id), "%s", spool_msg_id(m));
	pthread_mutex_lock(&c->mu);
	*c->pending_tail = j;
	c->pending_tail = &j->next;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return j;
}

void
spool_commit_cancel(struct spool_commit_job *j)
{
	/* Runs on the loop thread, as dispatch does: no race on cb. */
	j->cb = NULL;
}
