/* controld: the inbound TLS view without I/O (inbound_tls.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbound_tls.h"
#include "xmalloc.h"

static const char *const inbound_tls_by_names[] = {
	[INBOUND_TLS_BY_SENDER_DOMAIN] = "sender-domain",
	[INBOUND_TLS_BY_REMOTE_IP] = "remote-ip",
	[INBOUND_TLS_BY_STAGE] = "stage",
	[INBOUND_TLS_BY_HOST] = "host",
};

int
inbound_tls_by_parse(const char *s, enum inbound_tls_by *out)
{
	if (s[0] == '\0') {
		*out = INBOUND_TLS_BY_SENDER_DOMAIN;
		return 0;
	}
	for (size_t i = 0; i < sizeof(inbound_tls_by_names) / sizeof(inbound_tls_by_names[0]); i++)
		if (strcmp(s, inbound_tls_by_names[i]) == 0) {
			*out = (enum inbound_tls_by)i;
			return 0;
		}
	return -1;
}

const char *
inbound_tls_by_name(enum inbound_tls_by by)
{
	return inbound_tls_by_names[by];
}

/* ---- the sender domain ---- */

/* Second-level labels under which country codes register names
 * (example.co.uk, example.com.au, example.ne.jp): the common ones. */
static const char *const inbound_tls_sld[] = {
	"ac", "co", "com", "edu", "go", "gov", "ltd", "ne", "net", "or", "org", "plc", NULL
};

static int
inbound_tls_is_sld(const char *label, size_t len)
{
	for (size_t i = 0; inbound_tls_sld[i]; i++)
		if (strlen(inbound_tls_sld[i]) == len && memcmp(inbound_tls_sld[i], label, len) == 0)
			return 1;
	return 0;
}

/* The network of an address without a PTR name; -1 if ip is no address. */
static int
inbound_tls_network(const char *ip, char *out, size_t outsz)
{
	unsigned char a[16];
	char buf[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(out, outsz, "%u.%u.%u.0/24", a[0], a[1], a[2]);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		memset(a + 6, 0, 10);
		if (inet_ntop(AF_INET6, a, buf, sizeof(buf)) == NULL)
			return -1;
		snprintf(out, outsz, "%s/48", buf);
		return 0;
	}
	return -1;
}

void
inbound_tls_sender_domain(const char *ptr, const char *ip, char *out, size_t outsz)
{
	char name[INBOUND_TLS_DOMAIN_MAX];
	size_t len = strlen(ptr);
	const char *dot[3] = { NULL, NULL, NULL };	/* the last three dots, last first */
	int ndots = 0;

	while (len > 0 && ptr[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof(name)) {
		if (ip == NULL || inbound_tls_network(ip, out, outsz) < 0)
			snprintf(out, outsz, "%s", INBOUND_TLS_NO_PTR);
		return;
	}
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)ptr[i]);
	name[len] = '\0';
	for (char *p = name + len; p-- > name && ndots < 3;)
		if (*p == '.')
			dot[ndots++] = p;
	const char *start = ndots >= 2 ? dot[1] + 1 : name;
	/* start: the last two labels; one more when they are "co.uk"-like. */
	if (ndots >= 2 && strlen(dot[0] + 1) == 2 &&
	    inbound_tls_is_sld(dot[1] + 1, (size_t)(dot[0] - dot[1] - 1)))
		start = ndots >= 3 ? dot[2] + 1 : name;
	snprintf(out, outsz, "%s", start);
}

/* ---- folding grouped rows into a report ---- */

struct inbound_tls_entry {
	char		*key, *stage, *reason;
	int		 starttls;
	uint64_t	 sessions;
};

struct inbound_tls_names {
	Mxfleet__V1__InboundTlsCount	**v;
	size_t				  n, cap;
};

struct inbound_tls_agg {
	enum inbound_tls_by		 by;
	struct inbound_tls_entry	*e;
	size_t				 n, cap;
	struct inbound_tls_names	 versions, ciphers;
};

struct inbound_tls_agg *
inbound_tls_agg_new(enum inbound_tls_by by)
{
	struct inbound_tls_agg *a = xcalloc(1, sizeof(*a));
	a->by = by;
	return a;
}

static void
inbound_tls_names_add(struct inbound_tls_names *l, const char *name, uint64_t n)
{
	if (name[0] == '\0')
		return;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i]->name, name) == 0) {
			l->v[i]->sessions += n;
			return;
		}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	Mxfleet__V1__InboundTlsCount *c = xmalloc(sizeof(*c));
	mxfleet__v1__inbound_tls_count__init(c);
	c->name = xstrdup(name);
	c->sessions = n;
	l->v[l->n++] = c;
}

/* The group a row belongs to. */
static char *
inbound_tls_key(const struct inbound_tls_agg *a, const struct inbound_tls_row *r)
{
	char d[INBOUND_TLS_DOMAIN_MAX];

	switch (a->by) {
	case INBOUND_TLS_BY_SENDER_DOMAIN:
		inbound_tls_sender_domain(r->key, r->ip, d, sizeof(d));
		return xstrdup(d);
	case INBOUND_TLS_BY_STAGE:
		if (r->starttls != MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED)
			return xstrdup(INBOUND_TLS_NO_FAILURE);
		return xstrdup(r->key[0] ? r->key : "unknown");
	default:
		return xstrdup(r->key[0] ? r->key : "-");
	}
}

void
inbound_tls_agg_add(struct inbound_tls_agg *a, const struct inbound_tls_row *r)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		a->e = xreallocarray(a->e, a->cap, sizeof(*a->e));
	}
	struct inbound_tls_entry *e = &a->e[a->n++];
	e->key = inbound_tls_key(a, r);
	e->starttls = r->starttls;
	e->stage = xstrdup(r->stage[0] ? r->stage : "unknown");
	e->reason = xstrdup(r->reason[0] ? r->reason : "unknown");
	e->sessions = r->sessions;
	if (r->starttls == MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED) {
		inbound_tls_names_add(&a->versions, r->version, r->sessions);
		inbound_tls_names_add(&a->ciphers, r->cipher, r->sessions);
	}
}

static int
inbound_tls_entry_cmp(const void *x, const void *y)
{
	const struct inbound_tls_entry *a = x, *b = y;
	int c = strcmp(a->key, b->key);
	if (c == 0)
		c = strcmp(a->stage, b->stage);
	if (c == 0)
		c = strcmp(a->reason, b->reason);
	return c;
}

#define CMP_DESC(a, b)	((a) < (b) ? 1 : (a) > (b) ? -1 : 0)

static int
inbound_tls_group_cmp(const void *x, const void *y)
{
	const Mxfleet__V1__InboundTlsGroup *a = *(Mxfleet__V1__InboundTlsGroup *const *)x;
	const Mxfleet__V1__InboundTlsGroup *b = *(Mxfleet__V1__InboundTlsGroup *const *)y;
	int c = CMP_DESC(a->failed, b->failed);
	if (c == 0)
		c = CMP_DESC(a->attempted, b->attempted);
	if (c == 0)
		c = CMP_DESC(a->sessions, b->sessions);
	return c ? c : strcmp(a->key, b->key);
}

static int
inbound_tls_failure_cmp(const void *x, const void *y)
{
	const Mxfleet__V1__InboundTlsFailure *a = *(Mxfleet__V1__InboundTlsFailure *const *)x;
	const Mxfleet__V1__InboundTlsFailure *b = *(Mxfleet__V1__InboundTlsFailure *const *)y;
	int c = CMP_DESC(a->sessions, b->sessions);
	if (c == 0)
		c = strcmp(a->stage, b->stage);
	return c ? c : strcmp(a->reason, b->reason);
}

static int
inbound_tls_count_cmp(const void *x, const void *y)
{
	const Mxfleet__V1__InboundTlsCount *a = *(Mxfleet__V1__InboundTlsCount *const *)x;
	const Mxfleet__V1__InboundTlsCount *b = *(Mxfleet__V1__InboundTlsCount *const *)y;
	int c = CMP_DESC(a->sessions, b->sessions);
	return c ? c : strcmp(a->name, b->name);
}

/* qsort, which may not be given a NULL array even for no elements. */
static void
inbound_tls_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/* One entry into its group: counted by how STARTTLS went; a failure also
 * into the group's (stage, reason) list, which is sorted by the entries'
 * order, so an equal pair is the list's last. */
static void
inbound_tls_group_add(Mxfleet__V1__InboundTlsGroup *g, const struct inbound_tls_entry *e)
{
	g->sessions += e->sessions;
	switch (e->starttls) {
	case MXFLEET__V1__START_TLS__STARTTLS_NOT_OFFERED:
		g->not_offered += e->sessions;
		return;
	case MXFLEET__V1__START_TLS__STARTTLS_OFFERED:
		g->offered += e->sessions;
		return;
	case MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED:
		g->attempted += e->sessions;
		g->established += e->sessions;
		return;
	case MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED:
		break;
	default:
		return;
	}
	g->attempted += e->sessions;
	g->failed += e->sessions;
	Mxfleet__V1__InboundTlsFailure *f = g->n_failures ? g->failures[g->n_failures - 1] : NULL;
	if (f && strcmp(f->stage, e->stage) == 0 && strcmp(f->reason, e->reason) == 0) {
		f->sessions += e->sessions;
		return;
	}
	g->failures = xreallocarray(g->failures, g->n_failures + 1, sizeof(*g->failures));
	f = xmalloc(sizeof(*f));
	mxfleet__v1__inbound_tls_failure__init(f);
	f->stage = xstrdup(e->stage);
	f->reason = xstrdup(e->reason);
	f->sessions = e->sessions;
	g->failures[g->n_failures++] = f;
}

/* The entries, sorted by key, folded into groups. */
static void
inbound_tls_groups(struct inbound_tls_agg *a, Mxfleet__V1__InboundTlsReport *rep)
{
	Mxfleet__V1__InboundTlsGroup *g = NULL;

	inbound_tls_sort(a->e, a->n, sizeof(*a->e), inbound_tls_entry_cmp);
	rep->groups = xcalloc(a->n ? a->n : 1, sizeof(*rep->groups));
	for (size_t i = 0; i < a->n; i++) {
		if (g == NULL || strcmp(g->key, a->e[i].key) != 0) {
			g = xmalloc(sizeof(*g));
			mxfleet__v1__inbound_tls_group__init(g);
			g->key = xstrdup(a->e[i].key);
			rep->groups[rep->n_groups++] = g;
		}
		inbound_tls_group_add(g, &a->e[i]);
	}
	for (size_t i = 0; i < rep->n_groups; i++)
		inbound_tls_sort(rep->groups[i]->failures, rep->groups[i]->n_failures,
		    sizeof(*rep->groups[i]->failures), inbound_tls_failure_cmp);
	inbound_tls_sort(rep->groups, rep->n_groups, sizeof(*rep->groups), inbound_tls_group_cmp);
}

Mxfleet__V1__InboundTlsReport *
inbound_tls_agg_finish(struct inbound_tls_agg *a, int64_t since_unix)
{
	Mxfleet__V1__InboundTlsReport *rep = xmalloc(sizeof(*rep));

	mxfleet__v1__inbound_tls_report__init(rep);
	rep->since_unix = since_unix;
	rep->by = xstrdup(inbound_tls_by_name(a->by));
	inbound_tls_groups(a, rep);
	inbound_tls_sort(a->versions.v, a->versions.n, sizeof(*a->versions.v), inbound_tls_count_cmp);
	inbound_tls_sort(a->ciphers.v, a->ciphers.n, sizeof(*a->ciphers.v), inbound_tls_count_cmp);
	rep->versions = a->versions.v;
	rep->n_versions = a->versions.n;
	rep->ciphers = a->ciphers.v;
	rep->n_ciphers = a->ciphers.n;
	for (size_t i = 0; i < a->n; i++) {
		free(a->e[i].key);
		free(a->e[i].stage);
		free(a->e[i].reason);
	}
	free(a->e);
	free(a);
	return rep;
}

static void
inbound_tls_counts_free(Mxfleet__V1__InboundTlsCount **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]->name);
		free(v[i]);
	}
	free(v);
}

void
inbound_tls_report_free(Mxfleet__V1__InboundTlsReport *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_groups; i++) {
		Mxfleet__V1__InboundTlsGroup *g = r->groups[i];
		for (size_t k = 0; k < g->n_failures; k++) {
			free(g->failures[k]->stage);
			free(g->failures[k]->reason);
			free(g->failures[k]);
		}
		free(g->failures);
		free(g->key);
		free(g);
	}
	free(r->groups);
	inbound_tls_counts_free(r->versions, r->n_versions);
	inbound_tls_counts_free(r->ciphers, r->n_ciphers);
	free(r->by);
	free(r);
}

/* ---- the failure-rate alarm ---- */

static int
inbound_tls_over(const Mxfleet__V1__InboundTlsGroup *g, double threshold, uint64_t min_attempts)
{
	return g->attempted > 0 && g->attempted >= min_attempts &&
	    (double)g->failed >= threshold * (double)g->attempted;
}

static const Mxfleet__V1__InboundTlsGroup *
inbound_tls_find(const Mxfleet__V1__InboundTlsReport *rep, const char *key)
{
	for (size_t i = 0; i < rep->n_groups; i++)
		if (strcmp(rep->groups[i]->key, key) == 0)
			return rep->groups[i];
	return NULL;
}

void
inbound_tls_alarm_update(struct inbound_tls_alarm *al,
    const Mxfleet__V1__InboundTlsReport *rep, double threshold, uint64_t min_attempts,
    const struct inbound_tls_alarm_cb *cb)
{
	/* Forget the domains no longer over. */
	for (size_t i = 0; i < al->nover;) {
		const Mxfleet__V1__InboundTlsGroup *g = inbound_tls_find(rep, al->over[i]);
		if (g && inbound_tls_over(g, threshold, min_attempts)) {
			i++;
			continue;
		}
		if (cb->recovered)
			cb->recovered(al->over[i], cb->arg);
		free(al->over[i]);
		al->over[i] = al->over[--al->nover];
	}
	for (size_t i = 0; i < rep->n_groups; i++) {
		const Mxfleet__V1__InboundTlsGroup *g = rep->groups[i];
		int known = 0;
		if (!inbound_tls_over(g, threshold, min_attempts))
			continue;
		for (size_t k = 0; k < al->nover && !known; k++)
			known = strcmp(al->over[k], g->key) == 0;
		if (known)
			continue;
		al->over = xreallocarray(al->over, al->nover + 1, sizeof(*al->over));
		al->over[al->nover++] = xstrdup(g->key);
		cb->crossed(g, cb->arg);
	}
}

void
inbound_tls_alarm_free(struct inbound_tls_alarm *al)
{
	for (size_t i = 0; i < al->nover; i++)
		free(al->over[i]);
	free(al->over);
	al->over = NULL;
	al->nover = 0;
}
