/* The cache of recipient verification probes (see rcpt_verify.h). */
#include "rcpt_verify.h"

#include <stdlib.h>
#include <string.h>

#include "rcpt_addr.h"
#include "xmalloc.h"

enum rcpt_verify_entry_state { RV_PENDING, RV_KNOWN, RV_UNKNOWN };

struct rcpt_verify_entry {
	struct rcpt_verify_entry	*hnext;		/* hash chain */
	struct rcpt_verify_entry	*prev, *next;	/* by time stored, oldest first */
	uint32_t			 hash;
	enum rcpt_verify_entry_state	 state;
	int64_t				 until;		/* valid before this second */
	char				 addr[];	/* lower-cased (ASCII) */
};

struct rcpt_verify_cache {
	struct rcpt_verify_opts		 o;
	rcpt_verify_clock_fn		 clock;
	void				*clock_arg;
	struct rcpt_verify_entry	**buckets;
	size_t				 nbuckets;	/* a power of two */
	struct rcpt_verify_entry	*oldest, *newest;
	size_t				 n;
};

static uint32_t
rcpt_verify_hash(const char *addr)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ rcpt_addr_lower(*p)) * 16777619u;
	return h;
}

static int
rcpt_verify_same(const char *stored, const char *addr)
{
	const unsigned char *a = (const unsigned char *)addr;
	const unsigned char *s = (const unsigned char *)stored;
	for (; *s && *a; s++, a++)
		if (*s != rcpt_addr_lower(*a))
			return 0;
	return *s == *a;
}

struct rcpt_verify_cache *
rcpt_verify_cache_new(const struct rcpt_verify_opts *o, rcpt_verify_clock_fn clock,
    void *clock_arg)
{
	struct rcpt_verify_cache *c = xcalloc(1, sizeof(*c));
	c->o = *o;
	if (c->o.positive_ttl <= 0)
		c->o.positive_ttl = 86400;
	if (c->o.negative_ttl <= 0)
		c->o.negative_ttl = 3600;
	if (c->o.pending_ttl <= 0)
		c->o.pending_ttl = 60;
	if (c->o.max_entries == 0)
		c->o.max_entries = 100000;
	c->clock = clock;
	c->clock_arg = clock_arg;
	/* About two entries per chain when full; grown never. */
	c->nbuckets = 64;
	while (c->nbuckets < c->o.max_entries / 2 && c->nbuckets < ((size_t)1 << 22))
		c->nbuckets *= 2;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

void
rcpt_verify_cache_free(struct rcpt_verify_cache *c)
{
	if (c == NULL)
		return;
	for (struct rcpt_verify_entry *e = c->oldest, *next; e; e = next) {
		next = e->next;
		free(e);
	}
	free(c->buckets);
	free(c);
}

size_t
rcpt_verify_cache_count(const struct rcpt_verify_cache *c)
{
	return c->n;
}

static struct rcpt_verify_entry **
rcpt_verify_slot(struct rcpt_verify_cache *c, const char *addr, uint32_t h)
{
	struct rcpt_verify_entry **pp = &c->buckets[h & (c->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->hnext)
		if ((*pp)->hash == h && rcpt_verify_same((*pp)->addr, addr))
			break;
	return pp;
}

static void
rcpt_verify_unlink_age(struct rcpt_verify_cache *c, struct rcpt_verify_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->newest = e->prev;
	e->prev = e->next = NULL;
}

static void
rcpt_verify_append_age(struct rcpt_verify_cache *c, struct rcpt_verify_entry *e)
{
	e->prev = c->newest;
	if (c->newest)
		c->newest->next = e;
	else
		c->oldest = e;
	c->newest = e;
}

static void
rcpt_verify_remove(struct rcpt_verify_cache *c, struct rcpt_verify_entry *e)
{
	struct rcpt_verify_entry **pp = rcpt_verify_slot(c, e->addr, e->hash);
	*pp = e->hnext;
	rcpt_verify_unlink_age(c, e);
	c->n--;
	free(e);
}

/* Store state for addr from now on, as the newest entry. */
static void
rcpt_verify_store(struct rcpt_verify_cache *c, const char *addr,
    enum rcpt_verify_entry_state state, int ttl)
{
	uint32_t h = rcpt_verify_hash(addr);
	struct rcpt_verify_entry **pp = rcpt_verify_slot(c, addr, h), *e = *pp;

	if (e == NULL) {
		if (c->n >= c->o.max_entries) {
			rcpt_verify_remove(c, c->oldest);
			pp = rcpt_verify_slot(c, addr, h);	/* the chain may have changed */
		}
		size_t len = strlen(addr);
		e = xcalloc(1, sizeof(*e) + len + 1);
		for (size_t i = 0; i < len; i++)
			e->addr[i] = (char)rcpt_addr_lower((unsigned char)addr[i]);
		e->hash = h;
		*pp = e;
		c->n++;
	} else
		rcpt_verify_unlink_age(c, e);
	rcpt_verify_append_age(c, e);
	e->state = state;
	e->until = c->clock(c->clock_arg) + ttl;
}

enum rcpt_verify_status
rcpt_verify_cache_lookup(struct rcpt_verify_cache *c, const char *addr)
{
	struct rcpt_verify_entry *e = *rcpt_verify_slot(c, addr, rcpt_verify_hash(addr));

	if (e != NULL && e->until > c->clock(c->clock_arg)) {
		static const enum rcpt_verify_status status[] = {
			[RV_PENDING] = RCPT_VERIFY_PENDING, [RV_KNOWN] = RCPT_VERIFY_KNOWN,
			[RV_UNKNOWN] = RCPT_VERIFY_UNKNOWN,
		};
		return status[e->state];
	}
	rcpt_verify_store(c, addr, RV_PENDING, c->o.pending_ttl);
	return RCPT_VERIFY_MISS;
}

void
rcpt_verify_cache_done(struct rcpt_verify_cache *c, const char *addr,
    enum rcpt_probe_result r)
{
	if (r == RCPT_PROBE_FAILED) {
		struct rcpt_verify_entry *e = *rcpt_verify_slot(c, addr, rcpt_verify_hash(addr));
		if (e != NULL)
			rcpt_verify_remove(c, e);
		return;
	}
	if (r == RCPT_PROBE_ACCEPTED)
		rcpt_verify_store(c, addr, RV_KNOWN, c->o.positive_ttl);
	else
		rcpt_verify_store(c, addr, RV_UNKNOWN, c->o.negative_ttl);
}
