/* TLSA key rollover of one host: the state machine and its stored text. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "rollover.h"
#include "xmalloc.h"

#define ROLLOVER_MAGIC		"mxfleet-rollover=1"
/* wait_until, a time plus two TTLs, is below UNTIL_MAX: no sum here
 * overflows and whatever a step makes decodes again. */
#define ROLLOVER_UNTIL_MAX	(ROLLOVER_TIME_MAX + ROLLOVER_WAIT_TTLS * (int64_t)UINT32_MAX)
#define ROLLOVER_NAME_SHOWN	64	/* of a server name in a status line */
/* A step crosses at most every state once, each forward or back: bounded. */
#define ROLLOVER_CASCADE_MAX	12

static const char *const rollover_names[] = {
	[ROLLOVER_PUBLISH] = "publish",
	[ROLLOVER_WAIT] = "wait",
	[ROLLOVER_SWITCH] = "switch",
	[ROLLOVER_NEXT] = "next",
	[ROLLOVER_RETIRE] = "retire",
	[ROLLOVER_DONE] = "done",
};

const char *
rollover_state_name(enum rollover_state s)
{
	if ((unsigned)s > ROLLOVER_DONE)
		return "?";
	return rollover_names[s];
}

/* ---- checks shared by start, step and decode ---- */

static int
rollover_spki_ok(const char *s)
{
	if (s == NULL || strlen(s) != ROLLOVER_SPKI_LEN)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

static int
rollover_host_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > ROLLOVER_HOST_MAX)
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

static int
rollover_has(const char *const *list, size_t n, const char *spki)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] != NULL && strcmp(list[i], spki) == 0)
			return 1;
	return 0;
}

static int64_t
rollover_add(int64_t t, int64_t d)
{
	return t > INT64_MAX - d ? INT64_MAX : t + d;
}

/* "22:13:30Z" */
static const char *
rollover_hms(int64_t t, char out[16])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		snprintf(out, 16, "?");
	else
		snprintf(out, 16, "%02d:%02d:%02dZ", tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

static void
rollover_say(struct rollover *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rollover_say(struct rollover *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->status, sizeof(r->status), fmt, ap);
	va_end(ap);
	/* One printable line whatever a host reported (next_cert_path). */
	for (char *p = r->status; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
}

/* ---- start ---- */

int
rollover_start(struct rollover *r, const char *host, const char *old_spki,
    const char *new_spki, int64_t now, char *err, size_t errsz)
{
	memset(r, 0, sizeof(*r));
	if (!rollover_host_ok(host)) {
		snprintf(err, errsz, "not a host id (1 to %d of A-Z a-z 0-9 . _ -)",
		    ROLLOVER_HOST_MAX);
		return -1;
	}
	if (new_spki == NULL || *new_spki == '\0') {
		snprintf(err, errsz, "host %s has no next key: mxd makes one at start "
		    "(tls.next_key); wait for its next heartbeat", host);
		return -1;
	}
	if (!rollover_spki_ok(old_spki) || !rollover_spki_ok(new_spki)) {
		snprintf(err, errsz, "a key is not a SPKI SHA-256 (64 lower-case hex digits)");
		return -1;
	}
	if (strcmp(old_spki, new_spki) == 0) {
		snprintf(err, errsz, "host %s: the next key is the same as the served one",
		    host);
		return -1;
	}
	if (now < 0 || now >= ROLLOVER_TIME_MAX) {
		snprintf(err, errsz, "the clock says %" PRId64, now);
		return -1;
	}
	r->state = ROLLOVER_PUBLISH;
	snprintf(r->host, sizeof(r->host), "%s", host);
	memcpy(r->old_spki, old_spki, ROLLOVER_SPKI_LEN + 1);
	memcpy(r->new_spki, new_spki, ROLLOVER_SPKI_LEN + 1);
	r->started = r->entered = r->last_obs = now;
	r->poll = ROLLOVER_POLL_DEFAULT;
	rollover_say(r, "started: publishing the TLSA record of key %.12s...", new_spki);
	return 0;
}

/* ---- what the servers said ---- */

struct rollover_dns {
	size_t		 n;		/* servers asked */
	size_t		 with;		/* answered with the key's record */
	size_t		 lacking;	/* answered without it */
	size_t		 silent;	/* did not answer */
	uint32_t	 ttl;		/* longest TTL among those with it */
	char		 who[LOG_QUOTE_SIZE(ROLLOVER_NAME_SHOWN)];	/* first one
					 * that does not confirm (lacking or
					 * silent), quoted */
	int		 who_silent;
};

/* Count the servers for the old key (want_old) or the new one. */
static void
rollover_dns_count(const struct rollover_obs *o, int want_old, struct rollover_dns *d)
{
	memset(d, 0, sizeof(*d));
	d->n = o->nservers;
	for (size_t i = 0; i < o->nservers; i++) {
		const struct rollover_server_obs *s = &o->servers[i];
		int has = want_old ? s->has_old : s->has_new;
		int confirms = s->answered && (want_old ? !has : has);
		const char *name = s->name ? s->name : "?";

		if (!s->answered)
			d->silent++;
		else if (has)
			d->with++;
		else
			d->lacking++;
		if (s->answered && has && s->ttl > d->ttl)
			d->ttl = s->ttl;
		if (!confirms && d->who[0] == '\0') {
			log_quote(d->who, sizeof(d->who), name, strlen(name), ROLLOVER_NAME_SHOWN);
			d->who_silent = !s->answered;
		}
	}
}

/* Every server answered and has the new key's record. */
static int
rollover_dns_all(const struct rollover_dns *d)
{
	return d->n > 0 && d->with == d->n;
}

/* ---- the states ----
 *
 * Each returns 1 when it moved r to another state (evaluate that one with
 * the same observation), 0 when r stays, with the action in *out. */

static void
rollover_enter(struct rollover *r, enum rollover_state s, int64_t now)
{
	r->state = s;
	r->entered = now;
	if (s != ROLLOVER_WAIT)
		r->wait_from = r->wait_until = r->ttl = 0;
}

/* What every state after PUBLISH stands on, checked before each:
 *  - the new key's TLSA on every server: one that answers without it (a push
 *    that overwrote it, a restored zone) sends the rollover back to PUBLISH
 *    and the wait restarts (RFC 7671 8.1: the record must be visible before
 *    the key is used);
 *  - in NEXT and RETIRE, a host that serves the old key again (restored,
 *    rolled back by hand) needs its TLSA: back to SWITCH, which keeps it
 *    published (RFC 7672 3.1: every key presented must match a record).
 * 1 when r moved. */
static int
rollover_guard(struct rollover *r, const struct rollover_obs *o, int64_t now)
{
	struct rollover_dns nd;

	if (r->state == ROLLOVER_PUBLISH || r->state == ROLLOVER_DONE)
		return 0;
	rollover_dns_count(o, 0, &nd);
	if (nd.lacking > 0) {
		rollover_enter(r, ROLLOVER_PUBLISH, now);
		return 1;
	}
	if ((r->state == ROLLOVER_NEXT || r->state == ROLLOVER_RETIRE) &&
	    rollover_has(o->served_spki, o->nserved, r->old_spki)) {
		rollover_enter(r, ROLLOVER_SWITCH, now);
		return 1;
	}
	return 0;
}

static int
rollover_do_publish(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	struct rollover_dns nd;
	uint32_t ttl;

	rollover_dns_count(o, 0, &nd);
	if (rollover_dns_all(&nd)) {
		/* RFC 7671 8.1: a sender's resolver may hold the RRset as it was
		 * before, without the new key, for up to its TTL; the TTL is the
		 * one served, or the zone's if that is longer (the wait never
		 * rests on a lower one). Two of them: this project's margin. */
		ttl = nd.ttl > o->zone_ttl ? nd.ttl : o->zone_ttl;
		rollover_enter(r, ROLLOVER_WAIT, now);
		r->wait_from = now;
		r->ttl = ttl;
		r->wait_until = rollover_add(now, (int64_t)ROLLOVER_WAIT_TTLS * ttl);
		return 1;
	}
	out->what = ROLLOVER_PUSH;
	if (nd.n == 0)
		rollover_say(r, "publishing the TLSA record of key %.12s...: no authoritative "
		    "server to ask (does the zone have NS records?)", r->new_spki);
	else
		rollover_say(r, "publishing the TLSA record of key %.12s...: %zu of %zu servers "
		    "serve it (%s %s)", r->new_spki, nd.with, nd.n, nd.who,
		    nd.who_silent ? "did not answer" : "lacks it");
	return 0;
}

static int
rollover_do_wait(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	struct rollover_dns nd;
	char hms[16];

	rollover_dns_count(o, 0, &nd);
	/* A longer TTL seen now lengthens the wait; nothing shortens it. */
	if (nd.ttl > r->ttl) {
		int64_t until = rollover_add(r->wait_from, (int64_t)ROLLOVER_WAIT_TTLS * nd.ttl);
		r->ttl = nd.ttl;
		if (until > r->wait_until)
			r->wait_until = until;
	}
	if (now >= r->wait_until && rollover_dns_all(&nd)) {
		rollover_enter(r, ROLLOVER_SWITCH, now);
		return 1;
	}
	out->what = ROLLOVER_NOTHING;
	if (now < r->wait_until) {
		if (r->wait_until < out->next_check)
			out->next_check = r->wait_until;
		rollover_say(r, "waiting %" PRId64 " s more: %d x TTL %" PRIu32 " since %s",
		    r->wait_until - now, ROLLOVER_WAIT_TTLS, r->ttl, rollover_hms(r->wait_from, hms));
	} else {
		rollover_say(r, "the wait is over but %s did not answer: the TLSA record of key "
		    "%.12s... is not confirmed on every server", nd.n ? nd.who : "no server",
		    r->new_spki);
	}
	return 0;
}

static void
rollover_say_no_cert(struct rollover *r, const struct rollover_obs *o)
{
	rollover_say(r, "waiting for a certificate for key %.12s... (the next key of host %s): "
	    "issue one for it and put it at %s", r->new_spki, r->host,
	    o->next_cert_path && *o->next_cert_path ? o->next_cert_path :
	    "the path the host's configuration names (the host did not report it)");
}

static int
rollover_do_switch(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	int has_new = rollover_has(o->served_spki, o->nserved, r->new_spki);
	int has_old = rollover_has(o->served_spki, o->nserved, r->old_spki);

	/* The old key's TLSA goes only once no handshake presents it (RFC
	 * 7672 3.1: a DANE-EE key must match a published record). */
	if (has_new && !has_old) {
		rollover_enter(r, ROLLOVER_NEXT, now);
		return 1;
	}
	out->what = ROLLOVER_NOTHING;
	if (has_new) {
		out->what = ROLLOVER_SWITCH_HOST;
		rollover_say(r, "host %s serves key %.12s... and still the old key %.12s...: "
		    "waiting for it to stop", r->host, r->new_spki, r->old_spki);
	} else if (o->next_spki == NULL || strcmp(o->next_spki, r->new_spki) != 0) {
		/* The TLSA published is for a key the host no longer has. */
		rollover_say(r, "host %s no longer has key %.12s... as its next key (it reports "
		    "%.12s%s): cancel this rollover and start again", r->host, r->new_spki,
		    o->next_spki && *o->next_spki ? o->next_spki : "none",
		    o->next_spki && *o->next_spki ? "..." : "");
	} else if (!o->next_cert_ready) {
		rollover_say_no_cert(r, o);
	} else {
		out->what = ROLLOVER_SWITCH_HOST;
		rollover_say(r, "switching host %s to key %.12s...: waiting for it to serve it",
		    r->host, r->new_spki);
	}
	return 0;
}

static int
rollover_do_next(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	const char *next = o->next_spki;

	if (rollover_spki_ok(next) && strcmp(next, r->old_spki) != 0 &&
	    strcmp(next, r->new_spki) != 0) {
		memcpy(r->next_spki, next, ROLLOVER_SPKI_LEN + 1);
		rollover_enter(r, ROLLOVER_RETIRE, now);
		return 1;
	}
	out->what = ROLLOVER_NOTHING;
	rollover_say(r, "host %s serves key %.12s...: waiting for it to report a new next key "
	    "(mxd makes one when it has none)", r->host, r->new_spki);
	return 0;
}

static int
rollover_do_retire(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	struct rollover_dns od;
	char hms[16];

	rollover_dns_count(o, 1, &od);
	if (od.n > 0 && od.lacking == od.n) {
		rollover_enter(r, ROLLOVER_DONE, now);
		rollover_say(r, "done at %s: host %s serves key %.12s...; the TLSA record of "
		    "key %.12s... is retired", rollover_hms(now, hms), r->host, r->new_spki,
		    r->old_spki);
		return 1;
	}
	out->what = ROLLOVER_PUSH;
	rollover_say(r, "retiring the TLSA record of key %.12s...: %s%s", r->old_spki,
	    od.n ? od.who : "no authoritative server to ask",
	    od.n == 0 ? "" : od.who_silent ? " did not answer" : " still serves it");
	return 0;
}

int
rollover_cancel(struct rollover *r, int64_t now, char *err, size_t errsz)
{
	char hms[16];
	enum rollover_state was = r->state;

	if ((unsigned)was >= ROLLOVER_DONE) {
		snprintf(err, errsz, "the rollover of host %s is done already", r->host);
		return -1;
	}
	if (now < 0 || now >= ROLLOVER_TIME_MAX) {
		snprintf(err, errsz, "time %lld is out of range", (long long)now);
		return -1;
	}
	rollover_enter(r, ROLLOVER_DONE, now);
	r->last_obs = now;
	rollover_say(r, "cancelled at %s in state %s: host %s is no longer asked to switch;"
	    " the TLSA records follow the keys it reports at the next push",
	    rollover_hms(now, hms), rollover_state_name(was), r->host);
	return 0;
}

int
rollover_step(struct rollover *r, const struct rollover_obs *o, int64_t now,
    struct rollover_action *out)
{
	struct rollover saved = *r;
	int moved = 1;

	memset(out, 0, sizeof(*out));
	if ((unsigned)r->state > ROLLOVER_DONE || r->poll == 0 ||
	    (o->nservers > 0 && o->servers == NULL) ||
	    (o->nserved > 0 && o->served_spki == NULL) || now < 0 || now >= ROLLOVER_TIME_MAX)
		return -1;
	r->last_obs = now;
	out->next_check = rollover_add(now, r->poll);	/* a state may bring it closer */
	for (int i = 0; moved && i < ROLLOVER_CASCADE_MAX; i++) {
		if (rollover_guard(r, o, now))
			continue;
		switch (r->state) {
		case ROLLOVER_PUBLISH:	moved = rollover_do_publish(r, o, now, out); break;
		case ROLLOVER_WAIT:	moved = rollover_do_wait(r, o, now, out); break;
		case ROLLOVER_SWITCH:	moved = rollover_do_switch(r, o, now, out); break;
		case ROLLOVER_NEXT:	moved = rollover_do_next(r, o, now, out); break;
		case ROLLOVER_RETIRE:	moved = rollover_do_retire(r, o, now, out); break;
		case ROLLOVER_DONE:	moved = 0; out->next_check = 0; break;
		}
	}
	if (moved) {
		/* Going round in circles on one observation is a bug here. */
		*r = saved;
		return -1;
	}
	return 0;
}

/* ---- what the zone must hold ---- */

size_t
rollover_published(const struct rollover *r, const char *out[2])
{
	size_t n = 0;

	if (r->state < ROLLOVER_RETIRE)
		out[n++] = r->old_spki;
	out[n++] = r->new_spki;
	return n;
}

const char *
rollover_withdrawn(const struct rollover *r)
{
	return r->state >= ROLLOVER_RETIRE ? r->old_spki : NULL;
}

/* ---- the stored text ----
 *
 *	mxfleet-rollover=1
 *	state=<publish|wait|switch|next|retire|done>
 *	host=<host id>
 *	old=<64 hex>
 *	new=<64 hex>
 *	next=<64 hex, or nothing>
 *	started=<unix seconds>
 *	entered=<unix seconds>
 *	wait_from=<unix seconds, 0 outside WAIT>
 *	wait_until=<unix seconds, 0 outside WAIT>
 *	ttl=<seconds, 0 outside WAIT>
 *	last_obs=<unix seconds>
 *	poll=<seconds, 1 or more>
 *	status=<printable ASCII to the end of the line>
 *
 * Numbers are decimal without sign or leading zeros. */

char *
rollover_encode(const struct rollover *r)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, ROLLOVER_MAGIC "\nstate=%s\nhost=%s\nold=%s\nnew=%s\nnext=%s\n"
	    "started=%" PRId64 "\nentered=%" PRId64 "\nwait_from=%" PRId64
	    "\nwait_until=%" PRId64 "\nttl=%" PRIu32 "\nlast_obs=%" PRId64 "\npoll=%" PRIu32
	    "\nstatus=%s\n", rollover_state_name(r->state), r->host, r->old_spki, r->new_spki,
	    r->next_spki, r->started, r->entered, r->wait_from, r->wait_until, r->ttl,
	    r->last_obs, r->poll, r->status);
	return b.data;
}

enum rollover_key {
	RK_MAGIC, RK_STATE, RK_HOST, RK_OLD, RK_NEW, RK_NEXT, RK_STARTED, RK_ENTERED,
	RK_WAIT_FROM, RK_WAIT_UNTIL, RK_TTL, RK_LAST_OBS, RK_POLL, RK_STATUS, RK_COUNT
};

static const char *const rollover_keys[RK_COUNT] = {
	"mxfleet-rollover", "state", "host", "old", "new", "next", "started", "entered",
	"wait_from", "wait_until", "ttl", "last_obs", "poll", "status",
};

/* A decimal number without sign or leading zero, at most max. */
static int
rollover_num(const char *v, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;

	if (*v == '\0' || (v[0] == '0' && v[1] != '\0'))
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9' || n > (max - (uint64_t)(*v - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*out = n;
	return 0;
}

static int
rollover_time(const char *v, int64_t max, int64_t *out)
{
	uint64_t n;

	if (rollover_num(v, (uint64_t)max - 1, &n) == -1)
		return -1;
	*out = (int64_t)n;
	return 0;
}

/* One value into r; NULL, or what is wrong with it. */
static const char *
rollover_field(struct rollover *r, enum rollover_key k, const char *v)
{
	int64_t *t;
	uint64_t n;

	switch (k) {
	case RK_MAGIC:
		return strcmp(v, "1") == 0 ? NULL : "not version 1";
	case RK_STATE:
		for (int s = ROLLOVER_PUBLISH; s <= ROLLOVER_DONE; s++)
			if (strcmp(v, rollover_names[s]) == 0) {
				r->state = (enum rollover_state)s;
				return NULL;
			}
		return "unknown state";
	case RK_HOST:
		if (!rollover_host_ok(v))
			return "not a host id";
		snprintf(r->host, sizeof(r->host), "%s", v);
		return NULL;
	case RK_OLD:
	case RK_NEW:
	case RK_NEXT:
		if (!rollover_spki_ok(v) && !(k == RK_NEXT && *v == '\0'))
			return "not 64 lower-case hex digits";
		snprintf(k == RK_OLD ? r->old_spki : k == RK_NEW ? r->new_spki : r->next_spki,
		    ROLLOVER_SPKI_LEN + 1, "%s", v);
		return NULL;
	case RK_STARTED:
	case RK_ENTERED:
	case RK_WAIT_FROM:
	case RK_WAIT_UNTIL:
	case RK_LAST_OBS:
		t = k == RK_STARTED ? &r->started : k == RK_ENTERED ? &r->entered :
		    k == RK_WAIT_FROM ? &r->wait_from : k == RK_WAIT_UNTIL ? &r->wait_until :
		    &r->last_obs;
		return rollover_time(v, k == RK_WAIT_UNTIL ? ROLLOVER_UNTIL_MAX :
		    ROLLOVER_TIME_MAX, t) == -1 ? "not a time" : NULL;
	case RK_TTL:
	case RK_POLL:
		if (rollover_num(v, UINT32_MAX, &n) == -1 || (k == RK_POLL && n == 0))
			return k == RK_POLL ? "not a number of seconds from 1" :
			    "not a number of seconds";
		*(k == RK_TTL ? &r->ttl : &r->poll) = (uint32_t)n;
		return NULL;
	case RK_STATUS:
		snprintf(r->status, sizeof(r->status), "%s", v);
		return strlen(v) < sizeof(r->status) ? NULL : "too long";
	case RK_COUNT:
		break;
	}
	return "no such key";
}

/* What the fields say together; NULL when it holds. */
static const char *
rollover_consistent(const struct rollover *r)
{
	if (strcmp(r->old_spki, r->new_spki) == 0)
		return "old and new are the same key";
	if (strcmp(r->next_spki, r->old_spki) == 0 || strcmp(r->next_spki, r->new_spki) == 0)
		return "next is the old or the new key";
	if (r->state != ROLLOVER_WAIT)
		return r->wait_from || r->wait_until || r->ttl ?
		    "wait_from, wait_until, ttl set outside the wait" : NULL;
	if (r->wait_until < rollover_add(r->wait_from, (int64_t)ROLLOVER_WAIT_TTLS * r->ttl))
		return "wait_until earlier than wait_from + 2 x ttl";
	return NULL;
}

/* Line i (from 1) at *p: "key=value\n" with printable ASCII; the value is
 * copied into val. NULL, or the error (in err). */
static int
rollover_line(const char **p, const char *end, int i, char *val, size_t valsz,
    char *err, size_t errsz)
{
	const char *key = rollover_keys[i - 1], *nl, *v;
	size_t kl = strlen(key);

	if (*p == end) {
		snprintf(err, errsz, "truncated: missing %s (line %d)", key, i);
		return -1;
	}
	if ((nl = memchr(*p, '\n', (size_t)(end - *p))) == NULL) {
		snprintf(err, errsz, "line %d: not ended (truncated?)", i);
		return -1;
	}
	if ((size_t)(nl - *p) <= kl || memcmp(*p, key, kl) != 0 || (*p)[kl] != '=') {
		snprintf(err, errsz, "line %d: expected %s=", i, key);
		return -1;
	}
	for (v = *p + kl + 1; v < nl; v++)
		if (*v < 0x20 || *v > 0x7e) {
			snprintf(err, errsz, "line %d: %s: a byte that is not printable ASCII",
			    i, key);
			return -1;
		}
	v = *p + kl + 1;
	if ((size_t)(nl - v) >= valsz) {
		snprintf(err, errsz, "line %d: %s: too long", i, key);
		return -1;
	}
	memcpy(val, v, (size_t)(nl - v));
	val[nl - v] = '\0';
	*p = nl + 1;
	return 0;
}

int
rollover_decode(const char *text, size_t len, struct rollover *r, char *err, size_t errsz)
{
	const char *p = text, *end = text + len, *why;
	char val[ROLLOVER_STATUS_MAX + 1];

	memset(r, 0, sizeof(*r));
	if (len == 0 || len > ROLLOVER_TEXT_MAX) {
		snprintf(err, errsz, len ? "longer than %d bytes" : "empty", ROLLOVER_TEXT_MAX);
		return -1;
	}
	for (int i = 1; i <= RK_COUNT; i++) {
		if (rollover_line(&p, end, i, val, sizeof(val), err, errsz) == -1)
			goto bad;
		if ((why = rollover_field(r, (enum rollover_key)(i - 1), val)) != NULL) {
			snprintf(err, errsz, "line %d: %s: %s", i, rollover_keys[i - 1], why);
			goto bad;
		}
	}
	if (p != end) {
		snprintf(err, errsz, "line %d: unexpected text after status", RK_COUNT + 1);
		goto bad;
	}
	if ((why = rollover_consistent(r)) != NULL) {
		snprintf(err, errsz, "%s", why);
		goto bad;
	}
	return 0;
bad:
	memset(r, 0, sizeof(*r));
	return -1;
}
