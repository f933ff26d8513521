/* The scheduler's memory: messages by id and due time, destinations with
 * concurrency windows (qmgr_sched.h says what and why). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "qmgr_sched.h"
#include "xmalloc.h"

#define QMGR_HASH_MIN	1024

struct qmgr_job {
	struct qmgr_job	*next;
	void		*job;
};

struct qmgr_dest {
	struct qmgr_dest *next, *prev;	/* the class's ring (round robin) */
	struct qmgr_dest *hnext;	/* by name */
	enum qmgr_class	 cls;
	int		 ceiling;
	int		 window;
	int		 active;
	int		 failures;
	int64_t		 dead_until;	/* 0: alive */
	int		 probing;	/* dead time over: one job let through */
	struct qmgr_job	*head, *tail;
	size_t		 nqueued;
	char		 name[];
};

struct qmgr_sched {
	struct qmgr_limits lim;
	qmgr_clock_fn	 clock;
	void		*clock_arg;
	/* messages */
	struct qmgr_msg	**hash;
	size_t		 nhash, nmsgs;
	struct qmgr_msg	**heap;
	size_t		 nheap, capheap;
	/* destinations */
	struct qmgr_dest **dhash;	/* QMGR_HASH_MIN buckets */
	struct qmgr_dest *ring[QMGR_NCLASS];	/* the next to serve */
	int		 class_active[QMGR_NCLASS];
};

static int
qmgr_sched_limits_ok(const struct qmgr_limits *lim, char *err, size_t errsz)
{
	const char *bad = NULL;
	if (lim->initial_concurrency < 1)
		bad = "initial_concurrency must be at least 1";
	else if (lim->dead_after < 1)
		bad = "dead_after must be at least 1";
	else if (lim->dead_time < 1)
		bad = "dead_time must be at least 1 second";
	for (int c = 0; bad == NULL && c < QMGR_NCLASS; c++)
		if (lim->class_agents[c] < 1)
			bad = "an agent limit must be at least 1";
	if (bad != NULL && err != NULL)
		snprintf(err, errsz, "%s", bad);
	return bad == NULL ? 0 : -1;
}

int
qmgr_sched_new(const struct qmgr_limits *lim, qmgr_clock_fn clock, void *clock_arg,
    struct qmgr_sched **out, char *err, size_t errsz)
{
	if (qmgr_sched_limits_ok(lim, err, errsz) < 0)
		return -1;
	struct qmgr_sched *s = xcalloc(1, sizeof(*s));
	s->lim = *lim;
	s->clock = clock;
	s->clock_arg = clock_arg;
	s->nhash = QMGR_HASH_MIN;
	s->hash = xcalloc(s->nhash, sizeof(*s->hash));
	s->dhash = xcalloc(QMGR_HASH_MIN, sizeof(*s->dhash));
	*out = s;
	return 0;
}

static void qmgr_dest_free(struct qmgr_sched *s, struct qmgr_dest *d);

void
qmgr_sched_free(struct qmgr_sched *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nhash; i++)
		for (struct qmgr_msg *m = s->hash[i], *n; m != NULL; m = n) {
			n = m->hnext;
			free(m);
		}
	for (size_t i = 0; i < QMGR_HASH_MIN; i++)
		while (s->dhash[i] != NULL)
			qmgr_dest_free(s, s->dhash[i]);
	free(s->hash);
	free(s->heap);
	free(s->dhash);
	free(s);
}

void
qmgr_sched_set_limits(struct qmgr_sched *s, const struct qmgr_limits *lim)
{
	if (qmgr_sched_limits_ok(lim, NULL, 0) == 0)
		s->lim = *lim;
}

int64_t
qmgr_sched_now(const struct qmgr_sched *s)
{
	return s->clock ? s->clock(s->clock_arg) : (int64_t)time(NULL);
}

/* ---- the id index ---- */

static size_t
qmgr_hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % n);
}

static void
qmgr_sched_rehash(struct qmgr_sched *s)
{
	size_t n = s->nhash * 4;
	struct qmgr_msg **h = xcalloc(n, sizeof(*h));
	for (size_t i = 0; i < s->nhash; i++)
		for (struct qmgr_msg *m = s->hash[i], *next; m != NULL; m = next) {
			next = m->hnext;
			size_t b = qmgr_hash(m->id, n);
			m->hnext = h[b];
			h[b] = m;
		}
	free(s->hash);
	s->hash = h;
	s->nhash = n;
}

struct qmgr_msg *
qmgr_sched_find(struct qmgr_sched *s, const char *id)
{
	for (struct qmgr_msg *m = s->hash[qmgr_hash(id, s->nhash)]; m != NULL; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* ---- the due-time heap ---- */

static void
qmgr_heap_set(struct qmgr_sched *s, size_t i, struct qmgr_msg *m)
{
	s->heap[i] = m;
	m->heap_idx = i;
}

static void
qmgr_heap_up(struct qmgr_sched *s, size_t i)
{
	struct qmgr_msg *m = s->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (s->heap[p]->due <= m->due)
			break;
		qmgr_heap_set(s, i, s->heap[p]);
		i = p;
	}
	qmgr_heap_set(s, i, m);
}

static void
qmgr_heap_down(struct qmgr_sched *s, size_t i)
{
	struct qmgr_msg *m = s->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && s->heap[c + 1]->due < s->heap[c]->due)
			c++;
		if (m->due <= s->heap[c]->due)
			break;
		qmgr_heap_set(s, i, s->heap[c]);
		i = c;
	}
	qmgr_heap_set(s, i, m);
}

static void
qmgr_heap_push(struct qmgr_sched *s, struct qmgr_msg *m)
{
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 1024;
		s->heap = xreallocarray(s->heap, s->capheap, sizeof(*s->heap));
	}
	qmgr_heap_set(s, s->nheap++, m);
	qmgr_heap_up(s, m->heap_idx);
}

static void
qmgr_heap_del(struct qmgr_sched *s, struct qmgr_msg *m)
{
	size_t i = m->heap_idx;
	if (i == SIZE_MAX)
		return;
	m->heap_idx = SIZE_MAX;
	struct qmgr_msg *last = s->heap[--s->nheap];
	if (i == s->nheap)
		return;
	qmgr_heap_set(s, i, last);
	qmgr_heap_up(s, i);
	qmgr_heap_down(s, last->heap_idx);
}

/* ---- messages ---- */

struct qmgr_msg *
qmgr_sched_add(struct qmgr_sched *s, const char *id, int64_t due, int *added)
{
	struct qmgr_msg *m = qmgr_sched_find(s, id);
	if (added != NULL)
		*added = m == NULL;
	if (m != NULL)
		return m;
	if (s->nmsgs >= s->nhash)
		qmgr_sched_rehash(s);
	m = xcalloc(1, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->due = due;
	size_t b = qmgr_hash(m->id, s->nhash);
	m->hnext = s->hash[b];
	s->hash[b] = m;
	s->nmsgs++;
	qmgr_heap_push(s, m);
	return m;
}

void
qmgr_sched_remove(struct qmgr_sched *s, struct qmgr_msg *m)
{
	qmgr_heap_del(s, m);
	for (struct qmgr_msg **pp = &s->hash[qmgr_hash(m->id, s->nhash)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			s->nmsgs--;
			break;
		}
	free(m);
}

struct qmgr_msg *
qmgr_sched_take_due(struct qmgr_sched *s)
{
	if (s->nheap == 0 || s->heap[0]->due > qmgr_sched_now(s))
		return NULL;
	struct qmgr_msg *m = s->heap[0];
	qmgr_heap_del(s, m);
	return m;
}

void
qmgr_sched_set_due(struct qmgr_sched *s, struct qmgr_msg *m, int64_t due)
{
	qmgr_heap_del(s, m);
	m->due = due;
	qmgr_heap_push(s, m);
}

int64_t
qmgr_sched_next_due(const struct qmgr_sched *s)
{
	return s->nheap > 0 ? s->heap[0]->due : INT64_MAX;
}

size_t
qmgr_sched_count(const struct qmgr_sched *s)
{
	return s->nmsgs;
}

void
qmgr_sched_foreach(struct qmgr_sched *s, void (*fn)(struct qmgr_msg *, void *), void *arg)
{
	for (size_t i = 0; i < s->nhash; i++)
		for (struct qmgr_msg *m = s->hash[i]; m != NULL; m = m->hnext)
			fn(m, arg);
}

int64_t
qmgr_sched_backoff(int retry_min, int retry_max, int attempts)
{
	int64_t delay = retry_min;
	for (int i = 1; i < attempts && delay < retry_max; i++)
		delay *= 2;
	return delay > retry_max ? retry_max : delay;
}

/* ---- destinations ---- */

static size_t
qmgr_dhash(const char *name)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *name != '\0'; name++) {
		unsigned char c = (unsigned char)*name;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211ULL;
	}
	return (size_t)(h % QMGR_HASH_MIN);
}

static void
qmgr_ring_unlink(struct qmgr_sched *s, struct qmgr_dest *d)
{
	if (d->next == d)
		s->ring[d->cls] = NULL;
	else {
		d->prev->next = d->next;
		d->next->prev = d->prev;
		if (s->ring[d->cls] == d)
			s->ring[d->cls] = d->next;
	}
}

static void
qmgr_dest_free(struct qmgr_sched *s, struct qmgr_dest *d)
{
	qmgr_ring_unlink(s, d);
	for (struct qmgr_dest **pp = &s->dhash[qmgr_dhash(d->name)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	for (struct qmgr_job *j = d->head, *n; j != NULL; j = n) {
		n = j->next;
		free(j);
	}
	free(d);
}

struct qmgr_dest *
qmgr_sched_dest(struct qmgr_sched *s, const char *name, enum qmgr_class c, int ceiling)
{
	size_t b = qmgr_dhash(name);
	struct qmgr_dest *d;
	if (ceiling < 1)
		ceiling = 1;
	for (d = s->dhash[b]; d != NULL; d = d->hnext)
		if (d->cls == c && strcasecmp(d->name, name) == 0) {
			d->ceiling = ceiling;
			if (d->window > ceiling)
				d->window = ceiling;
			return d;
		}
	size_t len = strlen(name);
	d = xcalloc(1, sizeof(*d) + len + 1);
	memcpy(d->name, name, len + 1);
	d->cls = c;
	d->ceiling = ceiling;
	d->window = s->lim.initial_concurrency < ceiling ? s->lim.initial_concurrency : ceiling;
	d->hnext = s->dhash[b];
	s->dhash[b] = d;
	/* Joins the ring just before the next to serve: it waits one turn. */
	struct qmgr_dest *r = s->ring[c];
	if (r == NULL) {
		d->next = d->prev = d;
		s->ring[c] = d;
	} else {
		d->next = r;
		d->prev = r->prev;
		r->prev->next = d;
		r->prev = d;
	}
	return d;
}

const char *
qmgr_dest_name(const struct qmgr_dest *d)
{
	return d->name;
}

enum qmgr_class
qmgr_dest_class(const struct qmgr_dest *d)
{
	return d->cls;
}

int
qmgr_dest_window(const struct qmgr_dest *d)
{
	return d->window;
}

int
qmgr_dest_ceiling(const struct qmgr_dest *d)
{
	return d->ceiling;
}

int
qmgr_dest_active(const struct qmgr_dest *d)
{
	return d->active;
}

size_t
qmgr_dest_queued(const struct qmgr_dest *d)
{
	return d->nqueued;
}

int
qmgr_dest_failures(const struct qmgr_dest *d)
{
	return d->failures;
}

int
qmgr_dest_dead(const struct qmgr_sched *s, const struct qmgr_dest *d, int64_t *until)
{
	if (until != NULL)
		*until = d->dead_until;
	return d->dead_until != 0 && qmgr_sched_now(s) < d->dead_until;
}

void
qmgr_sched_job_add(struct qmgr_sched *s, struct qmgr_dest *d, void *job)
{
	(void)s;
	struct qmgr_job *j = xcalloc(1, sizeof(*j));
	j->job = job;
	if (d->tail != NULL)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->nqueued++;
}

static void *
qmgr_dest_shift(struct qmgr_dest *d)
{
	struct qmgr_job *j = d->head;
	void *job = j->job;
	d->head = j->next;
	if (d->head == NULL)
		d->tail = NULL;
	d->nqueued--;
	free(j);
	return job;
}

/* Whether d may start a job now: dead destinations may not, except one
 * probe once their time is over. */
static int
qmgr_dest_may_start(const struct qmgr_sched *s, const struct qmgr_dest *d)
{
	if (d->dead_until != 0)
		return qmgr_sched_now(s) >= d->dead_until && d->active == 0;
	return d->active < d->window;
}

int
qmgr_sched_pick(struct qmgr_sched *s, enum qmgr_class c, struct qmgr_pick *pick)
{
	struct qmgr_dest *start = s->ring[c];
	if (start == NULL)
		return 0;
	struct qmgr_dest *d = start;
	do {
		struct qmgr_dest *next = d->next;
		if (d->head != NULL) {
			int dead = qmgr_dest_dead(s, d, NULL);
			if (dead || (s->class_active[c] < s->lim.class_agents[c] &&
			    qmgr_dest_may_start(s, d))) {
				pick->job = qmgr_dest_shift(d);
				pick->dest = d;
				pick->dead = dead;
				if (!dead) {
					d->active++;
					s->class_active[c]++;
					if (d->dead_until != 0)
						d->probing = 1;
				}
				s->ring[c] = next;	/* the next one's turn */
				return 1;
			}
		}
		d = next;
	} while (d != start);
	return 0;
}

static void
qmgr_dest_forget_idle(struct qmgr_sched *s, struct qmgr_dest *d)
{
	/* A dead one is kept another dead_time after its own: the mail that
	 * comes back to it (on its retry schedule) meets the probe and, when
	 * the probe succeeds, the log says it is alive again. */
	if (d->head == NULL && d->active == 0 && (d->dead_until == 0 ||
	    qmgr_sched_now(s) >= d->dead_until + s->lim.dead_time))
		qmgr_dest_free(s, d);
}

/* A server of d answered: no failures in a row, alive, one more slot. */
int
qmgr_sched_job_progress(struct qmgr_sched *s, struct qmgr_dest *d)
{
	(void)s;
	int ret = 0;
	d->failures = 0;
	if (d->dead_until != 0) {
		d->dead_until = 0;
		d->probing = 0;
		ret = 2;
	}
	if (d->window < d->ceiling)
		d->window++;
	return ret;
}

int
qmgr_sched_job_done(struct qmgr_sched *s, struct qmgr_dest *d, enum qmgr_feedback fb)
{
	int ret = 0;
	if (d->active > 0) {
		d->active--;
		s->class_active[d->cls]--;
	}
	switch (fb) {
	case QMGR_FB_REACHED:
		ret = qmgr_sched_job_progress(s, d);
		break;
	case QMGR_FB_UNREACHED:
		d->failures++;
		if (d->window > 1)
			d->window--;
		if (d->probing || (d->dead_until == 0 && d->failures >= s->lim.dead_after)) {
			d->dead_until = qmgr_sched_now(s) + s->lim.dead_time;
			d->probing = 0;
			ret = 1;
		}
		break;
	case QMGR_FB_NONE:
	case QMGR_FB_PROGRESS:	/* not an end: qmgr_sched_job_progress */
		break;
	}
	qmgr_dest_forget_idle(s, d);
	return ret;
}

int
qmgr_sched_class_active(const struct qmgr_sched *s, enum qmgr_class c)
{
	return s->class_active[c];
}

void
qmgr_sched_job_filter(struct qmgr_sched *s, int (*fn)(void *job, void *arg), void *arg)
{
	for (size_t i = 0; i < QMGR_HASH_MIN; i++)
		for (struct qmgr_dest *d = s->dhash[i], *dn; d != NULL; d = dn) {
			dn = d->hnext;
			struct qmgr_job **pp = &d->head, *last = NULL;
			while (*pp != NULL) {
				struct qmgr_job *j = *pp;
				if (fn(j->job, arg)) {
					*pp = j->next;
					d->nqueued--;
					free(j);
				} else {
					last = j;
					pp = &j->next;
				}
			}
			d->tail = last;
			qmgr_dest_forget_idle(s, d);
		}
}

void
qmgr_sched_dest_foreach(struct qmgr_sched *s, void (*fn)(struct qmgr_dest *, void *), void *arg)
{
	for (size_t i = 0; i < QMGR_HASH_MIN; i++)
		for (struct qmgr_dest *d = s->dhash[i], *dn; d != NULL; d = dn) {
			dn = d->hnext;
			fn(d, arg);
		}
}

void
qmgr_sched_revive_all(struct qmgr_sched *s)
{
	for (size_t i = 0; i < QMGR_HASH_MIN; i++)
		for (struct qmgr_dest *d = s->dhash[i], *dn; d != NULL; d = dn) {
			dn = d->hnext;
			d->dead_until = 0;
			d->probing = 0;
			d->failures = 0;
			qmgr_dest_forget_idle(s, d);
		}
}

void
qmgr_sched_sweep(struct qmgr_sched *s)
{
	for (size_t i = 0; i < QMGR_HASH_MIN; i++)
		for (struct qmgr_dest *d = s->dhash[i], *dn; d != NULL; d = dn) {
			dn = d->hnext;
			qmgr_dest_forget_idle(s, d);
		}
}
