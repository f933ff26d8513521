/* RFC 2136 UPDATE with TSIG for the records a caller manages: see dnsupdate.h.
 *
 * Three parts: the plan (the caller's records and pairs checked and parsed,
 * then the difference against the live records: no I/O, dnsupdate_diff), the
 * exchange (one TCP connection to the primary, every message TSIG-signed and
 * every answer's TSIG verified, all under one deadline), and dnsupdate_push
 * that reads the live RRsets, diffs and sends. ldns builds, signs and parses
 * the messages; the socket is ours for the hard bound (as in dns.c). */
#include "dnsupdate.h"
#include "netaddr.h"
#include "netio.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DNSUPDATE_FUDGE		300	/* seconds of clock skew TSIG tolerates */
#define DNSUPDATE_MAX_MSG	65535

/* ------------------------------------------------------------------ results */

static enum dnsupdate_status __attribute__((format(printf, 3, 4)))
fail(struct dnsupdate_result *out, enum dnsupdate_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
	/* Errors quote the caller's records and names: keep them one printable
	 * line whatever those held. */
	for (char *p = out->error; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	out->status = st;
	return st;
}

const char *
dnsupdate_status_str(enum dnsupdate_status st)
{
	switch (st) {
	case DNSUPDATE_OK:		return "ok";
	case DNSUPDATE_EINVAL:		return "invalid";
	case DNSUPDATE_ENET:		return "network";
	case DNSUPDATE_ETSIG:		return "tsig";
	case DNSUPDATE_EREFUSED:	return "refused";
	case DNSUPDATE_ESERVER:		return "server";
	}
	return "?";
}

void
dnsupdate_result_free(struct dnsupdate_result *res)
{
	for (size_t i = 0; i < res->n_added; i++)
		free(res->added[i]);
	for (size_t i = 0; i < res->n_deleted; i++)
		free(res->deleted[i]);
	free(res->added);
	free(res->deleted);
	res->added = res->deleted = NULL;
	res->n_added = res->n_deleted = 0;
}

static void
lines_from(const ldns_rr_list *l, char ***lines, size_t *n)
{
	*n = ldns_rr_list_rr_count(l);
	*lines = *n ? xcalloc(*n, sizeof(**lines)) : NULL;
	for (size_t i = 0; i < *n; i++) {
		char *s = ldns_rr2str(ldns_rr_list_rr(l, i));
		if (s == NULL)
			s = xstrdup("(unprintable record)");
		s[strcspn(s, "\n")] = '\0';
		(*lines)[i] = s;
	}
}

/* ------------------------------------------------------------------ the plan */

struct pair {
	ldns_rdf	*owner;
	ldns_rr_type	type;
};

struct plan {
	ldns_rdf	*zone;
	ldns_rr_list	*desired;
	struct pair	*pairs;
	size_t		npairs;
	ldns_rr_list	*add;
	ldns_rr_list	*del;
};

static void
plan_free(struct plan *p)
{
	ldns_rdf_deep_free(p->zone);
	ldns_rr_list_deep_free(p->desired);
	for (size_t i = 0; i < p->npairs; i++)
		ldns_rdf_deep_free(p->pairs[i].owner);
	free(p->pairs);
	ldns_rr_list_deep_free(p->add);
	ldns_rr_list_deep_free(p->del);
	memset(p, 0, sizeof(*p));
}

/* What the primary maintains itself (RFC 2136 3.4.1.3, RFC 4035): never ours. */
static int
type_reserved(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_SOA || t == LDNS_RR_TYPE_DNSKEY || t == LDNS_RR_TYPE_RRSIG ||
	    t == LDNS_RR_TYPE_NSEC || t == LDNS_RR_TYPE_NSEC3 ||
	    t == LDNS_RR_TYPE_NSEC3PARAM || t == LDNS_RR_TYPE_ANY;
}

static int
in_zone(const ldns_rdf *name, const ldns_rdf *zone)
{
	return ldns_dname_compare(name, zone) == 0 || ldns_dname_is_subdomain(name, zone);
}

static int
pair_find(const struct plan *p, const ldns_rdf *owner, ldns_rr_type type)
{
	for (size_t i = 0; i < p->npairs; i++)
		if (p->pairs[i].type == type && ldns_dname_compare(p->pairs[i].owner, owner) == 0)
			return 1;
	return 0;
}

/* Check an owner and a type the caller gave; what (for the error) names it. */
static enum dnsupdate_status
check_name(const struct plan *p, const char *text, const ldns_rdf *owner, ldns_rr_type type,
    const char *what, struct dnsupdate_result *out)
{
	size_t len = strlen(text);
	char zone[LDNS_MAX_DOMAINLEN + 1];

	if (len == 0 || text[len - 1] != '.')
		return fail(out, DNSUPDATE_EINVAL, "%s: owner %.255s is not absolute (no final dot)",
		    what, text);
	if (!in_zone(owner, p->zone)) {
		char *z = ldns_rdf2str(p->zone);
		snprintf(zone, sizeof(zone), "%s", z ? z : "?");
		free(z);
		return fail(out, DNSUPDATE_EINVAL, "%s: owner %.255s is outside the zone %s",
		    what, text, zone);
	}
	if (type_reserved(type))
		return fail(out, DNSUPDATE_EINVAL, "%s: type %s is kept by the primary, not managed",
		    what, ldns_rr_descript(type) ? ldns_rr_descript(type)->_name : "?");
	return DNSUPDATE_OK;
}

static void
pair_add(struct plan *p, const ldns_rdf *owner, ldns_rr_type type)
{
	if (pair_find(p, owner, type))
		return;
	p->pairs = xreallocarray(p->pairs, p->npairs + 1, sizeof(*p->pairs));
	p->pairs[p->npairs].owner = ldns_rdf_clone(owner);
	ldns_dname2canonical(p->pairs[p->npairs].owner);
	p->pairs[p->npairs].type = type;
	p->npairs++;
}

/* One presentation line into an IN record; NULL with the reason in out. */
static ldns_rr *
parse_rr(const char *line, const char *what, size_t i, struct dnsupdate_result *out)
{
	ldns_rr *rr = NULL;
	ldns_status s = ldns_rr_new_frm_str(&rr, line, LDNS_DEFAULT_TTL, NULL, NULL);

	if (s != LDNS_STATUS_OK) {
		fail(out, DNSUPDATE_EINVAL, "%s record %zu: %s: %.200s", what, i + 1,
		    ldns_get_errorstr_by_id(s), line);
		return NULL;
	}
	if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
		fail(out, DNSUPDATE_EINVAL, "%s record %zu: class is not IN: %.200s", what, i + 1,
		    line);
		ldns_rr_free(rr);
		return NULL;
	}
	return rr;
}

static int
rr_in(const ldns_rr_list *l, const ldns_rr *rr, int ttl_too)
{
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++) {
		const ldns_rr *x = ldns_rr_list_rr(l, i);
		/* ldns_rr_compare: owner case-insensitive, class, type, canonical
		 * RDATA (names lower-cased); not the TTL. */
		if (ldns_rr_compare(x, rr) == 0 && (!ttl_too || ldns_rr_ttl(x) == ldns_rr_ttl(rr)))
			return 1;
	}
	return 0;
}

static enum dnsupdate_status
plan_init(struct plan *p, const char *zone, const char *const *desired, size_t n_desired,
    const struct dnsupdate_pair *managed, size_t n_managed, struct dnsupdate_result *out)
{
	char what[64];

	memset(p, 0, sizeof(*p));
	p->desired = ldns_rr_list_new();
	p->add = ldns_rr_list_new();
	p->del = ldns_rr_list_new();
	if (zone == NULL || ldns_str2rdf_dname(&p->zone, zone) != LDNS_STATUS_OK)
		return fail(out, DNSUPDATE_EINVAL, "zone %.255s is not a domain name",
		    zone ? zone : "(none)");
	for (size_t i = 0; i < n_desired; i++) {
		ldns_rr *rr = parse_rr(desired[i], "desired", i, out);
		if (rr == NULL)
			return out->status;
		snprintf(what, sizeof(what), "desired record %zu", i + 1);
		char owner[LDNS_MAX_DOMAINLEN + 2];
		snprintf(owner, sizeof(owner), "%.*s", (int)strcspn(desired[i], " \t"), desired[i]);
		if (check_name(p, owner, ldns_rr_owner(rr), ldns_rr_get_type(rr), what, out)) {
			ldns_rr_free(rr);
			return out->status;
		}
		pair_add(p, ldns_rr_owner(rr), ldns_rr_get_type(rr));
		if (rr_in(p->desired, rr, 0))
			ldns_rr_free(rr);	/* the same record twice: once is enough */
		else
			ldns_rr_list_push_rr(p->desired, rr);
	}
	for (size_t i = 0; i < n_managed; i++) {
		ldns_rdf *owner = NULL;
		ldns_rr_type type = managed[i].type ? ldns_get_rr_type_by_name(managed[i].type) : 0;
		snprintf(what, sizeof(what), "managed pair %zu", i + 1);
		if (managed[i].owner == NULL ||
		    ldns_str2rdf_dname(&owner, managed[i].owner) != LDNS_STATUS_OK)
			return fail(out, DNSUPDATE_EINVAL, "%s: owner is not a domain name", what);
		if (type == 0) {
			ldns_rdf_deep_free(owner);
			return fail(out, DNSUPDATE_EINVAL, "%s: unknown type %.40s", what,
			    managed[i].type ? managed[i].type : "(none)");
		}
		enum dnsupdate_status st = check_name(p, managed[i].owner, owner, type, what, out);
		if (st == DNSUPDATE_OK)
			pair_add(p, owner, type);
		ldns_rdf_deep_free(owner);
		if (st != DNSUPDATE_OK)
			return st;
	}
	return DNSUPDATE_OK;
}

/* The difference: live records at managed pairs that are not desired (with
 * the same TTL) go, desired records not live (with the same TTL) come. */
static void
plan_diff(struct plan *p, const ldns_rr_list *live)
{
	ldns_rr_list *mine = ldns_rr_list_new();

	for (size_t i = 0; i < ldns_rr_list_rr_count(live); i++) {
		ldns_rr *rr = ldns_rr_list_rr(live, i);
		if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
		    !pair_find(p, ldns_rr_owner(rr), ldns_rr_get_type(rr)) || rr_in(mine, rr, 0))
			continue;
		ldns_rr_list_push_rr(mine, rr);
		if (!rr_in(p->desired, rr, 1))
			ldns_rr_list_push_rr(p->del, ldns_rr_clone(rr));
	}
	for (size_t i = 0; i < ldns_rr_list_rr_count(p->desired); i++) {
		ldns_rr *rr = ldns_rr_list_rr(p->desired, i);
		if (!rr_in(mine, rr, 1))
			ldns_rr_list_push_rr(p->add, ldns_rr_clone(rr));
	}
	ldns_rr_list_free(mine);	/* borrowed records */
}

static void
plan_result(const struct plan *p, struct dnsupdate_result *out)
{
	lines_from(p->add, &out->added, &out->n_added);
	lines_from(p->del, &out->deleted, &out->n_deleted);
}

enum dnsupdate_status
dnsupdate_diff(const char *zone, const char *const *desired, size_t n_desired,
    const struct dnsupdate_pair *managed, size_t n_managed, const char *const *live,
    size_t n_live, struct dnsupdate_result *out)
{
	struct plan p;
	ldns_rr_list *l = ldns_rr_list_new();

	memset(out, 0, sizeof(*out));
	if (plan_init(&p, zone, desired, n_desired, managed, n_managed, out) != DNSUPDATE_OK)
		goto done;
	for (size_t i = 0; i < n_live; i++) {
		ldns_rr *rr = parse_rr(live[i], "live", i, out);
		if (rr == NULL)
			goto done;
		ldns_rr_list_push_rr(l, rr);
	}
	plan_diff(&p, l);
	plan_result(&p, out);
done:
	ldns_rr_list_deep_free(l);
	plan_free(&p);
	return out->status;
}

/* ------------------------------------------------------------------ the exchange */

struct conn {
	int		fd;
	int64_t		deadline;	/* CLOCK_MONOTONIC, ms */
	char		desc[INET6_ADDRSTRLEN + 16];
	const char	*keyname;	/* "name." */
	const char	*secret;
	char		alg[64];	/* ldns's algorithm name */
};

static enum dnsupdate_status
conn_open(struct conn *c, const char *server, struct dnsupdate_result *out)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char host[INET6_ADDRSTRLEN];
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	memset(&ss, 0, sizeof(ss));
	if (server && inet_pton(AF_INET, server, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(53);
		sslen = sizeof(struct sockaddr_in);
	} else if (server && inet_pton(AF_INET6, server,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(53);
		sslen = sizeof(struct sockaddr_in6);
	} else if (server == NULL || netaddr_parse_hostport(server, &ss, &sslen) != 0 ||
	    netaddr_port((struct sockaddr *)&ss) == 0) {
		return fail(out, DNSUPDATE_EINVAL,
		    "primary server is not IP, IP:port or [IPv6]:port: %.100s",
		    server ? server : "(none)");
	}
	netaddr_ntop((struct sockaddr *)&ss, host, sizeof(host));
	snprintf(c->desc, sizeof(c->desc), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
	    netaddr_port((struct sockaddr *)&ss));
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(out, DNSUPDATE_ENET, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&ss, sslen) == 0)
		return DNSUPDATE_OK;
	if (errno == EINPROGRESS) {
		int w = netio_wait(c->fd, POLLOUT, c->deadline);
		if (w == 0)
			return fail(out, DNSUPDATE_ENET, "primary %s: connect: timeout", c->desc);
		if (w > 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
			return DNSUPDATE_OK;
		if (w > 0 && soerr != 0)
			errno = soerr;
	}
	return fail(out, DNSUPDATE_ENET, "primary %s: connect: %s", c->desc, strerror(errno));
}

static const char *
tsig_error_str(unsigned e)
{
	switch (e) {
	case 16: return "BADSIG (the secret does not match the server's)";
	case 17: return "BADKEY (the server does not know this key name or algorithm)";
	case 18: return "BADTIME (the clocks differ by more than the fudge)";
	case 22: return "BADTRUNC";
	}
	return "unknown TSIG error";
}

static const char *
rcode_str(ldns_pkt_rcode rc)
{
	ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)rc);
	return lt ? lt->name : "?";
}

/* The answer's TSIG: the server's verdict on ours, then ours on its MAC. */
static enum dnsupdate_status
check_tsig(const struct conn *c, ldns_pkt *a, const uint8_t *wire, size_t len,
    const ldns_rdf *qmac, struct dnsupdate_result *out)
{
	ldns_rr *t = ldns_pkt_tsig(a);

	if (t == NULL)
		return fail(out, DNSUPDATE_ETSIG, "primary %s answered %s without a TSIG: "
		    "it does not know the key %s, or the answer is not the server's", c->desc,
		    rcode_str(ldns_pkt_get_rcode(a)), c->keyname);
	if (ldns_rr_rd_count(t) >= 6) {
		unsigned e = ldns_rdf2native_int16(ldns_rr_rdf(t, 5));
		if (e != 0)
			return fail(out, DNSUPDATE_ETSIG, "primary %s rejected TSIG key %s: %s",
			    c->desc, c->keyname, tsig_error_str(e));
	}
	if (!ldns_pkt_tsig_verify(a, wire, len, c->keyname, c->secret, qmac))
		return fail(out, DNSUPDATE_ETSIG, "the TSIG of the answer from %s does not verify "
		    "with key %s (wrong secret?)", c->desc, c->keyname);
	return DNSUPDATE_OK;
}

/* Sign q, send it, read and check the answer (ID, TSIG); the rcode is the
 * caller's to judge. */
static enum dnsupdate_status
conn_exchange(struct conn *c, ldns_pkt *q, ldns_pkt **answer, struct dnsupdate_result *out)
{
	uint8_t *wire = NULL, hdr[2], *buf = NULL;
	size_t wlen = 0, alen;
	uint16_t id;
	ldns_rdf *qmac = NULL;
	enum dnsupdate_status st;

	*answer = NULL;
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id))
		id = (uint16_t)timeutil_mono_ms();
	ldns_pkt_set_id(q, id);
	if (ldns_pkt_tsig_sign(q, c->keyname, c->secret, DNSUPDATE_FUDGE, c->alg, NULL) !=
	    LDNS_STATUS_OK)
		return fail(out, DNSUPDATE_EINVAL, "cannot sign with TSIG key %s (%s): is the "
		    "secret base64?", c->keyname, c->alg);
	qmac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(q), 3));
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK || wlen > DNSUPDATE_MAX_MSG) {
		st = fail(out, DNSUPDATE_EINVAL, "the message to %s is too large (%zu bytes)",
		    c->desc, wlen);
		goto out;
	}
	hdr[0] = (uint8_t)(wlen >> 8);
	hdr[1] = (uint8_t)wlen;
	buf = xmalloc(DNSUPDATE_MAX_MSG);
	if (netio_all(c->fd, hdr, 2, 1, c->deadline) != 0 ||
	    netio_all(c->fd, wire, wlen, 1, c->deadline) != 0 ||
	    netio_all(c->fd, hdr, 2, 0, c->deadline) != 0 ||
	    netio_all(c->fd, buf, (alen = (size_t)(hdr[0] << 8 | hdr[1])), 0, c->deadline) != 0) {
		st = fail(out, DNSUPDATE_ENET, "primary %s: %s", c->desc,
		    errno == ETIMEDOUT ? "no answer within the time allowed" : strerror(errno));
		goto out;
	}
	if (ldns_wire2pkt(answer, buf, alen) != LDNS_STATUS_OK || ldns_pkt_id(*answer) != id ||
	    !ldns_pkt_qr(*answer)) {
		st = fail(out, DNSUPDATE_ESERVER, "primary %s: malformed or mismatched answer",
		    c->desc);
		goto out;
	}
	st = check_tsig(c, *answer, buf, alen, qmac, out);
out:
	if (st != DNSUPDATE_OK) {
		ldns_pkt_free(*answer);
		*answer = NULL;
	}
	ldns_rdf_deep_free(qmac);
	free(wire);
	free(buf);
	return st;
}

/* An answer's rcode as a status (NOTAUTH without a TSIG error: RFC 2136 2.2,
 * the server is not authoritative for the zone). */
static enum dnsupdate_status
check_rcode(const struct conn *c, ldns_pkt *a, const char *what, struct dnsupdate_result *out)
{
	ldns_pkt_rcode rc = ldns_pkt_get_rcode(a);

	if (rc == LDNS_RCODE_NOERROR || rc == LDNS_RCODE_NXDOMAIN)
		return DNSUPDATE_OK;
	if (rc == LDNS_RCODE_REFUSED)
		return fail(out, DNSUPDATE_EREFUSED, "primary %s refused %s (REFUSED: key %s is "
		    "not allowed to do this there)", c->desc, what, c->keyname);
	if (rc == LDNS_RCODE_NOTAUTH)
		return fail(out, DNSUPDATE_EREFUSED, "primary %s answered %s with NOTAUTH: it is "
		    "not authoritative for the zone", c->desc, what);
	return fail(out, DNSUPDATE_ESERVER, "primary %s answered %s with %s", c->desc, what,
	    rcode_str(rc));
}

static enum dnsupdate_status
conn_key(struct conn *c, const struct dnsupdate_key *k, struct dnsupdate_result *out)
{
	static const char *const algs[] = { "hmac-sha256", "hmac-sha1", "hmac-sha224",
	    "hmac-sha384", "hmac-sha512" };
	const char *a = k->algorithm ? k->algorithm : "";
	size_t alen = strlen(a);

	if (alen && a[alen - 1] == '.')
		alen--;
	c->alg[0] = '\0';
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strlen(algs[i]) == alen && strncasecmp(a, algs[i], alen) == 0)
			snprintf(c->alg, sizeof(c->alg), "%s.", algs[i]);
	if ((alen == 8 && strncasecmp(a, "hmac-md5", 8) == 0) ||
	    strcasecmp(a, "hmac-md5.sig-alg.reg.int.") == 0)
		snprintf(c->alg, sizeof(c->alg), "hmac-md5.sig-alg.reg.int.");
	if (c->alg[0] == '\0')
		return fail(out, DNSUPDATE_EINVAL, "unknown TSIG algorithm %.40s", a);
	if (k->name == NULL || !*k->name || k->secret == NULL || !*k->secret)
		return fail(out, DNSUPDATE_EINVAL, "TSIG key name and secret are required");
	ldns_rdf *raw = NULL;
	if (ldns_str2rdf_b64(&raw, k->secret) != LDNS_STATUS_OK || ldns_rdf_size(raw) == 0) {
		ldns_rdf_deep_free(raw);
		return fail(out, DNSUPDATE_EINVAL, "the secret of TSIG key %.100s is not base64",
		    k->name);
	}
	ldns_rdf_deep_free(raw);
	c->keyname = k->name;
	c->secret = k->secret;
	return DNSUPDATE_OK;
}

/* ------------------------------------------------------------------ push */

/* The live RRset at one pair, appended to live: the primary's own records
 * (AA), only those at exactly this owner and type. */
static enum dnsupdate_status
read_pair(struct conn *c, const struct pair *pr, ldns_rr_list *live, struct dnsupdate_result *out)
{
	ldns_pkt *q = ldns_pkt_query_new(ldns_rdf_clone(pr->owner), pr->type, LDNS_RR_CLASS_IN, 0);
	ldns_pkt *a = NULL;
	enum dnsupdate_status st;

	st = conn_exchange(c, q, &a, out);
	ldns_pkt_free(q);
	if (st == DNSUPDATE_OK)
		st = check_rcode(c, a, "a query", out);
	if (st == DNSUPDATE_OK && !ldns_pkt_aa(a)) {
		char *o = ldns_rdf2str(pr->owner);
		st = fail(out, DNSUPDATE_ESERVER, "primary %s is not authoritative for %s (below "
		    "a delegation, or not the zone's primary)", c->desc, o ? o : "?");
		free(o);
	}
	for (size_t i = 0; st == DNSUPDATE_OK && i < ldns_rr_list_rr_count(ldns_pkt_answer(a));
	    i++) {
		ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(a), i);
		if (ldns_rr_get_type(rr) == pr->type && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
		    ldns_dname_compare(ldns_rr_owner(rr), pr->owner) == 0)
			ldns_rr_list_push_rr(live, ldns_rr_clone(rr));
	}
	ldns_pkt_free(a);
	return st;
}

/* RFC 2136 2.5.4 deletions (class NONE, TTL 0), then 2.5.1 additions. */
static enum dnsupdate_status
send_update(struct conn *c, const struct plan *p, struct dnsupdate_result *out)
{
	ldns_rr_list *up = ldns_rr_list_new();
	ldns_pkt *q, *a = NULL;
	enum dnsupdate_status st;

	for (size_t i = 0; i < ldns_rr_list_rr_count(p->del); i++) {
		ldns_rr *rr = ldns_rr_clone(ldns_rr_list_rr(p->del, i));
		ldns_rr_set_class(rr, LDNS_RR_CLASS_NONE);
		ldns_rr_set_ttl(rr, 0);
		ldns_rr_list_push_rr(up, rr);
	}
	for (size_t i = 0; i < ldns_rr_list_rr_count(p->add); i++)
		ldns_rr_list_push_rr(up, ldns_rr_clone(ldns_rr_list_rr(p->add, i)));
	q = ldns_update_pkt_new(ldns_rdf_clone(p->zone), LDNS_RR_CLASS_IN, NULL, up, NULL);
	ldns_rr_list_deep_free(up);	/* the packet holds a copy */
	st = conn_exchange(c, q, &a, out);
	ldns_pkt_free(q);
	if (st == DNSUPDATE_OK && ldns_pkt_get_rcode(a) == LDNS_RCODE_NXDOMAIN)
		st = fail(out, DNSUPDATE_ESERVER, "primary %s answered the UPDATE with NXDOMAIN",
		    c->desc);
	if (st == DNSUPDATE_OK)
		st = check_rcode(c, a, "the UPDATE", out);
	ldns_pkt_free(a);
	return st;
}

enum dnsupdate_status
dnsupdate_push(const struct dnsupdate_request *req, struct dnsupdate_result *out)
{
	struct plan p;
	struct conn c = { .fd = -1 };
	ldns_rr_list *live = ldns_rr_list_new();
	int timeout = req->timeout_ms > 0 ? req->timeout_ms : DNSUPDATE_DEFAULT_TIMEOUT_MS;

	memset(out, 0, sizeof(*out));
	c.deadline = (int64_t)timeutil_mono_ms() + timeout;
	if (plan_init(&p, req->zone, req->desired, req->n_desired, req->managed, req->n_managed,
	    out) != DNSUPDATE_OK || conn_key(&c, &req->key, out) != DNSUPDATE_OK ||
	    conn_open(&c, req->server, out) != DNSUPDATE_OK)
		goto done;
	for (size_t i = 0; i < p.npairs; i++)
		if (read_pair(&c, &p.pairs[i], live, out) != DNSUPDATE_OK)
			goto done;
	plan_diff(&p, live);
	plan_result(&p, out);
	if (req->dry_run || (out->n_added == 0 && out->n_deleted == 0))
		goto done;
	if (send_update(&c, &p, out) == DNSUPDATE_OK)
		out->sent = 1;
done:
	if (c.fd >= 0)
		close(c.fd);
	ldns_rr_list_deep_free(live);
	plan_free(&p);
	return out->status;
}
