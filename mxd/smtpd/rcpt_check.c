/* Recipient checks at RCPT (see rcpt_check.h). */
#include "rcpt_check.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rcpt_addr.h"
#include "xmalloc.h"

struct rcpt_set {
	char	**v;		/* lower-cased local parts; sorted once sealed */
	size_t	  n, cap;
	int	  sealed;
};

static const char *const rcpt_check_names[] = {
	[RCPT_CHECK_UNSET] = "unset", [RCPT_CHECK_ANY] = "any",
	[RCPT_CHECK_LIST] = "list", [RCPT_CHECK_VERIFY] = "verify",
};

int
rcpt_check_mode_parse(const char *s)
{
	for (int m = RCPT_CHECK_ANY; m <= RCPT_CHECK_VERIFY; m++)
		if (strcmp(s, rcpt_check_names[m]) == 0)
			return m;
	return -1;
}

const char *
rcpt_check_mode_name(enum rcpt_check_mode mode)
{
	return mode <= RCPT_CHECK_VERIFY ? rcpt_check_names[mode] : "?";
}

struct rcpt_set *
rcpt_set_new(void)
{
	return xcalloc(1, sizeof(struct rcpt_set));
}

void
rcpt_set_add(struct rcpt_set *set, const char *local)
{
	if (set->sealed)
		panic("rcpt_set_add after rcpt_set_seal");
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 16;
		set->v = xreallocarray(set->v, set->cap, sizeof(*set->v));
	}
	set->v[set->n++] = xstrdup(local);
}

static int
rcpt_set_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
rcpt_set_seal(struct rcpt_set *set)
{
	size_t w = 0;

	qsort(set->v, set->n, sizeof(*set->v), rcpt_set_cmp);
	for (size_t r = 0; r < set->n; r++) {
		if (w > 0 && strcmp(set->v[w - 1], set->v[r]) == 0)
			free(set->v[r]);
		else
			set->v[w++] = set->v[r];
	}
	set->n = w;
	set->sealed = 1;
}

size_t
rcpt_set_count(const struct rcpt_set *set)
{
	return set->n;
}

/* key[0..len) lower-cased against a stored (lower-case) entry, in strcmp's
 * byte order so that the binary search agrees with the sort. */
static int
rcpt_set_keycmp(const char *key, size_t len, const char *entry)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char a = rcpt_addr_lower((unsigned char)key[i]);
		unsigned char b = (unsigned char)entry[i];
		if (b == '\0' || a != b)
			return b == '\0' ? 1 : (int)a - (int)b;
	}
	return entry[len] == '\0' ? 0 : -1;
}

int
rcpt_set_has(const struct rcpt_set *set, const char *local, size_t len)
{
	size_t lo = 0, hi = set->n;

	if (!set->sealed)
		panic("rcpt_set_has before rcpt_set_seal");
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = rcpt_set_keycmp(local, len, set->v[mid]);
		if (c == 0)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

void
rcpt_set_free(struct rcpt_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i]);
	free(set->v);
	free(set);
}

void
rcpt_check_set(struct rcpt_check *c, enum rcpt_check_mode mode, struct rcpt_set *set)
{
	rcpt_set_free(c->set);
	c->mode = mode;
	c->set = set;
}

void
rcpt_check_clear(struct rcpt_check *c)
{
	rcpt_check_set(c, RCPT_CHECK_UNSET, NULL);
}

enum rcpt_verdict
rcpt_check_verdict(const struct rcpt_check *c, const char *addr, const char *delimiters)
{
	if (c->mode != RCPT_CHECK_LIST)
		return RCPT_ACCEPT;
	const char *at = strrchr(addr, '@');
	size_t len = at ? (size_t)(at - addr) : strlen(addr);
	if (c->set == NULL || len == 0)
		return RCPT_UNKNOWN;
	if (rcpt_set_has(c->set, addr, len))
		return RCPT_ACCEPT;
	if (delimiters != NULL && delimiters[0] != '\0') {
		/* user+tag: the part before the first delimiter, when not empty. */
		size_t base = strcspn(addr, delimiters);
		if (base > 0 && base < len && rcpt_set_has(c->set, addr, base))
			return RCPT_ACCEPT;
	}
	return RCPT_UNKNOWN;
}
