#include "outcome.h"
#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int
outcome_channel_new(int fds[2], uint64_t **dropped)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	/* Room for a burst while the uploader is busy with an fsync. */
	int sz = 4 << 20;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	void *p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	*dropped = p;
	**dropped = 0;
	return 0;
}

void
outcome_emit(struct outcome_sink *s, const Mxfleet__V1__Outcome *o)
{
	uint8_t buf[OUTCOME_MAX_RECORD];
	int truncated;
	if (s->fd < 0)
		return;
	size_t n = outcome_pack_bounded(o, buf, sizeof(buf), &truncated);
	if (n == 0) {
		__atomic_add_fetch(s->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	if (truncated)
		log_info("event=outcome_truncated sid=%.64s bytes=%zu", o->session_id,
		    mxfleet__v1__outcome__get_packed_size(o));
	if (send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		__atomic_add_fetch(s->dropped, 1, __ATOMIC_RELAXED);
}

/* The memory a cut copy of a record owns, freed together. */
struct outcome_cut {
	void	**arrays;
	size_t	  narrays;
};

static void *
outcome_cut_keep(struct outcome_cut *c, void *p)
{
	c->arrays = xreallocarray(c->arrays, c->narrays + 1, sizeof(*c->arrays));
	c->arrays[c->narrays++] = p;
	return p;
}

/* s itself when it is short enough, else a copy of its first bytes (whole
 * UTF-8 characters) followed by OUTCOME_TRUNCATED, cap bytes in all. */
static char *
outcome_cut_str(struct outcome_cut *c, char *s, size_t cap)
{
	size_t len = s ? strlen(s) : 0, mark = sizeof(OUTCOME_TRUNCATED) - 1;
	if (len <= cap || cap <= mark)
		return s;
	size_t keep = cap - mark;
	while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
		keep--;
	char *t = outcome_cut_keep(c, xmalloc(keep + mark + 1));
	memcpy(t, s, keep);
	memcpy(t + keep, OUTCOME_TRUNCATED, mark + 1);
	return t;
}

/* The first items of a list, each cut to cap; past max items, the rest is
 * replaced by one "[N more truncated]". */
static char **
outcome_cut_list(struct outcome_cut *c, char **v, size_t n, size_t *nout, size_t cap,
    size_t max)
{
	size_t keep = n > max ? max : n;
	char **out = outcome_cut_keep(c, xcalloc(keep + 1, sizeof(*out)));
	for (size_t i = 0; i < keep; i++)
		out[i] = outcome_cut_str(c, v[i], cap);
	if (n > keep) {
		char *more = outcome_cut_keep(c, xmalloc(48));
		snprintf(more, 48, "[%zu more truncated]", n - keep);
		out[keep++] = more;
	}
	*nout = keep;
	return out;
}

static void
outcome_cut_free(struct outcome_cut *c)
{
	for (size_t i = 0; i < c->narrays; i++)
		free(c->arrays[i]);
	free(c->arrays);
	memset(c, 0, sizeof(*c));
}

/* A copy of o whose policy results hold strings of at most cap bytes and
 * lists of at most max items; the copy's memory is c's. */
static void
outcome_cut(struct outcome_cut *c, const Mxfleet__V1__Outcome *o, Mxfleet__V1__Outcome *copy,
    size_t cap, size_t max)
{
	*copy = *o;
	copy->policy_results = outcome_cut_keep(c, xcalloc(o->n_policy_results + 1,
	    sizeof(*copy->policy_results)));
	for (size_t i = 0; i < o->n_policy_results; i++) {
		Mxfleet__V1__PolicyResult *p = outcome_cut_keep(c, xmalloc(sizeof(*p)));
		*p = *o->policy_results[i];
		p->policy_strings = outcome_cut_list(c, p->policy_strings, p->n_policy_strings,
		    &p->n_policy_strings, cap, max);
		p->mx_host = outcome_cut_list(c, p->mx_host, p->n_mx_host, &p->n_mx_host, cap, max);
		p->policy_domain = outcome_cut_str(c, p->policy_domain, cap);
		p->receiving_mx_hostname = outcome_cut_str(c, p->receiving_mx_hostname, cap);
		p->receiving_mx_helo = outcome_cut_str(c, p->receiving_mx_helo, cap);
		p->failure_reason_code = outcome_cut_str(c, p->failure_reason_code, cap);
		p->additional_information = outcome_cut_str(c, p->additional_information, cap);
		copy->policy_results[i] = p;
	}
	copy->remote_ehlo = outcome_cut_str(c, o->remote_ehlo, cap);
	copy->remote_ptr = outcome_cut_str(c, o->remote_ptr, cap);
	copy->tls_fail_reason = outcome_cut_str(c, o->tls_fail_reason, cap);
}

size_t
outcome_pack_bounded(const Mxfleet__V1__Outcome *o, uint8_t *out, size_t max, int *truncated)
{
	size_t n = mxfleet__v1__outcome__get_packed_size(o);
	*truncated = 0;
	if (n <= max)
		return mxfleet__v1__outcome__pack(o, out);
	/* Halve both bounds until it fits: a few rounds, and only for the rare
	 * record (a huge MTA-STS policy) that needs it. */
	for (size_t cap = 2048, items = 256; cap >= 32; cap /= 2, items = items > 8 ? items / 2 : 8) {
		struct outcome_cut c = { 0 };
		Mxfleet__V1__Outcome copy;
		outcome_cut(&c, o, &copy, cap, items);
		n = mxfleet__v1__outcome__get_packed_size(&copy);
		if (n <= max)
			n = mxfleet__v1__outcome__pack(&copy, out);
		outcome_cut_free(&c);
		if (n <= max) {
			*truncated = 1;
			return n;
		}
	}
	return 0;
}

uint64_t
outcome_take_dropped(uint64_t *dropped)
{
	return __atomic_exchange_n(dropped, 0, __ATOMIC_RELAXED);
}

size_t
outcome_append_seq(uint8_t *out, const uint8_t *rec, size_t len, uint64_t seq)
{
	memcpy(out, rec, len);
	size_t n = len;
	/* field 20, wire type 0 (varint): tag (20 << 3) = 160 as a varint */
	out[n++] = 0xa0;
	out[n++] = 0x01;
	do {
		uint8_t b = seq & 0x7f;
		seq >>= 7;
		out[n++] = seq ? (uint8_t)(b | 0x80) : b;
	} while (seq);
	return n;
}
