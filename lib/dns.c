/* DNS lookups on ldns against one validating recursive resolver: see dns.h.
 *
 * ldns builds and parses the messages; the exchange with the resolver is
 * done here rather than with ldns_resolver/ldns_send, for a hard bound on
 * the whole call (ldns waits per try and per recv, sleeps between servers and
 * marks a silent server dead inside the resolver object), a connected UDP
 * socket (answers only from the resolver's address), and a check of the ID
 * and the question of every answer. */
#include "dns.h"
#include "buf.h"
#include "netaddr.h"
#include "netio.h"
#include "xmalloc.h"

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DNS_DEFAULT_TIMEOUT_MS	2000
#define DNS_DEFAULT_TRIES	3
#define DNS_EDNS_BUFSIZE	1232	/* DNS flag day 2020 */
#define DNS_MAX_CNAMES		16
#define DNS_MAX_MSG		65535

struct dns_resolver {
	struct sockaddr_storage	ss;
	socklen_t		sslen;
	char			desc[INET6_ADDRSTRLEN + 16];	/* "127.0.0.1:53" */
	int			timeout_ms;
	int			tries;
};

/* One call (dns_mx, dns_addrs, ...): all its queries share one deadline. */
struct dns_call {
	const struct dns_resolver *r;
	int64_t			deadline;	/* CLOCK_MONOTONIC, ms */
};

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
call_init(struct dns_call *c, const struct dns_resolver *r)
{
	c->r = r;
	c->deadline = now_ms() + dns_resolver_bound_ms(r);
}

static void
st_init(struct dns_status *st)
{
	memset(st, 0, sizeof(*st));
	st->result = DNS_TEMPFAIL;
	st->sec = DNS_SEC_UNKNOWN;
	st->rcode = -1;
	st->ede = -1;
}

static void __attribute__((format(printf, 3, 4)))
st_fail(struct dns_status *st, enum dns_result res, const char *fmt, ...)
{
	va_list ap;

	st->result = res;
	st->sec = res == DNS_BOGUS ? DNS_SEC_BOGUS : DNS_SEC_UNKNOWN;
	va_start(ap, fmt);
	vsnprintf(st->error, sizeof(st->error), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ names */

int
dns_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* A domain name rdf as lower-case text without the final dot ("" for the
 * root). Escapes (\DDD, \.) that ldns writes are kept. */
static void
dname_str(const ldns_rdf *rdf, char *out, size_t outsz)
{
	char *s = ldns_rdf2str(rdf);
	size_t len;

	out[0] = '\0';
	if (s == NULL)
		return;
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.') {
		/* The final dot, unless escaped by an odd number of backslashes. */
		size_t bs = 0;
		while (bs + 1 < len && s[len - 2 - bs] == '\\')
			bs++;
		if (bs % 2 == 0)
			s[--len] = '\0';
	}
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	snprintf(out, outsz, "%s", s);
	free(s);
}

static int
dname_eq(const ldns_rdf *a, const ldns_rdf *b)
{
	return ldns_dname_compare(a, b) == 0;
}

/* ------------------------------------------------------------------ resolver */

struct dns_resolver *
dns_resolver_new(const char *nameserver, int timeout_ms, int tries, char *err, size_t errlen)
{
	struct dns_resolver *r;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	char host[INET6_ADDRSTRLEN];

	if (nameserver == NULL || *nameserver == '\0') {
		snprintf(err, errlen, "no resolver address");
		return NULL;
	}
	if (timeout_ms < 0 || tries < 0 || timeout_ms > 600000 || tries > 100) {
		snprintf(err, errlen, "resolver timeout or tries out of range");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->timeout_ms = timeout_ms ? timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	r->tries = tries ? tries : DNS_DEFAULT_TRIES;
	sin = (struct sockaddr_in *)&r->ss;
	sin6 = (struct sockaddr_in6 *)&r->ss;
	if (inet_pton(AF_INET, nameserver, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		r->sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, nameserver, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(53);
		r->sslen = sizeof(*sin6);
	} else if (netaddr_parse_hostport(nameserver, &r->ss, &r->sslen) != 0 ||
	    netaddr_port((struct sockaddr *)&r->ss) == 0) {
		snprintf(err, errlen, "resolver address is not IP, IP:port or [IPv6]:port: %.100s",
		    nameserver);
		free(r);
		return NULL;
	}
	netaddr_ntop((struct sockaddr *)&r->ss, host, sizeof(host));
	snprintf(r->desc, sizeof(r->desc), r->ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    host, netaddr_port((struct sockaddr *)&r->ss));
	return r;
}

void
dns_resolver_free(struct dns_resolver *r)
{
	free(r);
}

int
dns_resolver_bound_ms(const struct dns_resolver *r)
{
	return r->timeout_ms * r->tries;
}

/* ------------------------------------------------------------------ transport */

enum xfer { XFER_OK, XFER_TIMEOUT, XFER_ERROR };

static int
answer_matches(const uint8_t *buf, size_t len, uint16_t id)
{
	return len >= 12 && ((buf[0] << 8) | buf[1]) == id && (buf[2] & 0x80);
}

/* Send over UDP, resending every timeout_ms until the deadline; keep
 * listening for an answer to any of the sends. */
static enum xfer
xfer_udp(struct dns_call *c, const uint8_t *q, size_t qlen, uint16_t id, uint8_t *buf,
    size_t *anslen, char *err, size_t errlen)
{
	const struct dns_resolver *r = c->r;
	enum xfer res = XFER_TIMEOUT;
	int fd, sends = 0;

	fd = socket(r->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return XFER_ERROR;
	}
	if (connect(fd, (const struct sockaddr *)&r->ss, r->sslen) != 0) {
		snprintf(err, errlen, "connect to resolver %s: %s", r->desc, strerror(errno));
		close(fd);
		return XFER_ERROR;
	}
	while (now_ms() < c->deadline && sends < r->tries) {
		int64_t resend = now_ms() + r->timeout_ms;
		if (resend > c->deadline)
			resend = c->deadline;
		if (send(fd, q, qlen, 0) < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "send to resolver %s: %s", r->desc, strerror(errno));
			res = XFER_ERROR;
			goto out;
		}
		sends++;
		for (;;) {
			int w = netio_wait(fd, POLLIN, resend);
			if (w == 0)
				break;
			if (w < 0) {
				snprintf(err, errlen, "poll: %s", strerror(errno));
				res = XFER_ERROR;
				goto out;
			}
			ssize_t n = recv(fd, buf, DNS_MAX_MSG, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				snprintf(err, errlen, "resolver %s: %s", r->desc, strerror(errno));
				res = XFER_ERROR;
				goto out;
			}
			if (answer_matches(buf, (size_t)n, id)) {
				*anslen = (size_t)n;
				res = XFER_OK;
				goto out;
			}
			/* Not ours (a late answer to an earlier query on a reused
			 * port, or garbage): keep waiting. */
		}
	}
	snprintf(err, errlen, "timeout: no answer from resolver %s within %d ms (%d tries)",
	    r->desc, dns_resolver_bound_ms(r), sends);
out:
	close(fd);
	return res;
}

/* One query over TCP (after a truncated UDP answer), within the deadline. */
static enum xfer
xfer_tcp(struct dns_call *c, const uint8_t *q, size_t qlen, uint16_t id, uint8_t *buf,
    size_t *anslen, char *err, size_t errlen)
{
	const struct dns_resolver *r = c->r;
	uint8_t hdr[2];
	size_t len;
	int fd, soerr = 0;
	socklen_t sl = sizeof(soerr);

	fd = socket(r->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return XFER_ERROR;
	}
	if (connect(fd, (const struct sockaddr *)&r->ss, r->sslen) != 0) {
		if (errno != EINPROGRESS)
			goto fail;
		int w = netio_wait(fd, POLLOUT, c->deadline);
		if (w == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			goto fail;
		if (soerr != 0) {
			errno = soerr;
			goto fail;
		}
	}
	uint8_t *msg = xmalloc(qlen + 2);
	msg[0] = (uint8_t)(qlen >> 8);
	msg[1] = (uint8_t)qlen;
	memcpy(msg + 2, q, qlen);
	int rc = netio_all(fd, msg, qlen + 2, 1, c->deadline);
	free(msg);
	if (rc != 0 || netio_all(fd, hdr, 2, 0, c->deadline) != 0)
		goto fail;
	len = ((size_t)hdr[0] << 8) | hdr[1];
	if (netio_all(fd, buf, len, 0, c->deadline) != 0)
		goto fail;
	close(fd);
	if (!answer_matches(buf, len, id)) {
		snprintf(err, errlen, "resolver %s: TCP answer does not match the query", r->desc);
		return XFER_ERROR;
	}
	*anslen = len;
	return XFER_OK;
fail:
	snprintf(err, errlen, "resolver %s over TCP: %s", r->desc,
	    errno == ETIMEDOUT ? "timeout" : strerror(errno));
	close(fd);
	return errno == ETIMEDOUT ? XFER_TIMEOUT : XFER_ERROR;
}

static uint16_t
random_id(void)
{
	uint16_t id;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id))
		id = (uint16_t)((uint64_t)now_ms() * 2654435761u >> 7);
	return id;
}

/* Ask the resolver; on success *reply is the parsed answer to exactly this
 * question. Returns 0, or -1 with st filled in (DNS_TEMPFAIL). */
static int
exchange(struct dns_call *c, const ldns_rdf *qname, ldns_rr_type type, int cd,
    ldns_pkt **reply, struct dns_status *st)
{
	ldns_pkt *q, *a = NULL;
	uint8_t *wire = NULL, *buf;
	size_t wlen = 0, alen = 0;
	uint16_t id = random_id();
	char err[DNS_ERROR_MAX];
	enum xfer x;

	*reply = NULL;
	q = ldns_pkt_query_new(ldns_rdf_clone(qname), type, LDNS_RR_CLASS_IN,
	    (uint16_t)(LDNS_RD | (cd ? LDNS_CD : 0)));
	if (q == NULL) {
		st_fail(st, DNS_TEMPFAIL, "out of memory building a query");
		return -1;
	}
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_ad(q, true);	/* RFC 6840 5.7 */
	ldns_pkt_set_edns_udp_size(q, DNS_EDNS_BUFSIZE);
	ldns_pkt_set_edns_do(q, true);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		ldns_pkt_free(q);
		st_fail(st, DNS_TEMPFAIL, "cannot encode the query");
		return -1;
	}
	ldns_pkt_free(q);

	buf = xmalloc(DNS_MAX_MSG);
	x = xfer_udp(c, wire, wlen, id, buf, &alen, err, sizeof(err));
	if (x == XFER_OK && alen >= 3 && (buf[2] & 0x02))	/* TC */
		x = xfer_tcp(c, wire, wlen, id, buf, &alen, err, sizeof(err));
	free(wire);
	if (x != XFER_OK) {
		free(buf);
		st_fail(st, DNS_TEMPFAIL, "%s", err);
		return -1;
	}
	if (ldns_wire2pkt(&a, buf, alen) != LDNS_STATUS_OK) {
		free(buf);
		st_fail(st, DNS_TEMPFAIL, "resolver %s: malformed answer", c->r->desc);
		return -1;
	}
	free(buf);

	ldns_rr_list *qs = ldns_pkt_question(a);
	ldns_rr *qrr = qs && ldns_rr_list_rr_count(qs) == 1 ? ldns_rr_list_rr(qs, 0) : NULL;
	if (qrr == NULL || !dname_eq(ldns_rr_owner(qrr), qname) || ldns_rr_get_type(qrr) != type ||
	    ldns_rr_get_class(qrr) != LDNS_RR_CLASS_IN ||
	    ldns_pkt_get_opcode(a) != LDNS_PACKET_QUERY) {
		ldns_pkt_free(a);
		st_fail(st, DNS_TEMPFAIL, "resolver %s: answer to another question", c->r->desc);
		return -1;
	}
	*reply = a;
	return 0;
}

/* ------------------------------------------------------------------ answers */

static const char *
ede_name(int code)
{
	static const char *names[] = {
		"Other", "Unsupported DNSKEY Algorithm", "Unsupported DS Digest Type",
		"Stale Answer", "Forged Answer", "DNSSEC Indeterminate", "DNSSEC Bogus",
		"Signature Expired", "Signature Not Yet Valid", "DNSKEY Missing",
		"RRSIGs Missing", "No Zone Key Bit Set", "NSEC Missing", "Cached Error",
		"Not Ready", "Blocked", "Censored", "Filtered", "Prohibited",
		"Stale NXDOMAIN Answer", "Not Authoritative", "Not Supported",
		"No Reachable Authority", "Network Error", "Invalid Data",
	};
	if (code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "Unknown";
}

/* The first RFC 8914 Extended DNS Error of the answer: its code (or -1) and
 * its text, printable ASCII only. */
static int
answer_ede(ldns_pkt *a, char *text, size_t textsz)
{
	ldns_edns_option_list *opts = ldns_pkt_edns_get_option_list(a);

	text[0] = '\0';
	if (opts == NULL)
		return -1;
	for (size_t i = 0; i < ldns_edns_option_list_get_count(opts); i++) {
		ldns_edns_option *o = ldns_edns_option_list_get_option(opts, i);
		if (o == NULL || ldns_edns_get_code(o) != LDNS_EDNS_EDE)
			continue;
		size_t len = ldns_edns_get_size(o);
		const uint8_t *d = ldns_edns_get_data(o);
		if (len < 2 || d == NULL)
			continue;
		size_t j = 0;
		for (size_t k = 2; k < len && j + 1 < textsz; k++)
			text[j++] = d[k] >= 0x20 && d[k] < 0x7f ? (char)d[k] : '?';
		text[j] = '\0';
		return (d[0] << 8) | d[1];
	}
	return -1;
}

static void
ttl_min(struct dns_status *st, uint32_t ttl)
{
	if (st->ttl == 0 || ttl < st->ttl)
		st->ttl = ttl;
}

/* TTL of a negative answer: the SOA's, capped by its MINIMUM (RFC 2308). */
static void
negative_ttl(struct dns_status *st, ldns_pkt *a)
{
	ldns_rr_list *auth = ldns_pkt_authority(a);

	for (size_t i = 0; auth && i < ldns_rr_list_rr_count(auth); i++) {
		ldns_rr *rr = ldns_rr_list_rr(auth, i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) < 7)
			continue;
		uint32_t ttl = ldns_rr_ttl(rr);
		uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
		st->ttl = ttl < min ? ttl : min;
		return;
	}
}

static const char *
type_str(ldns_rr_type type, char *buf, size_t bufsz)
{
	char *s = ldns_rr_type2str(type);
	snprintf(buf, bufsz, "%s", s ? s : "?");
	free(s);
	return buf;
}

/* One lookup: name/type through the resolver, CNAMEs followed within the
 * answer. On DNS_OK *rrs holds the records (owned by the caller, to be freed
 * with ldns_rr_list_deep_free). */
static enum dns_result
lookup(struct dns_call *c, const char *name, ldns_rr_type type, struct dns_status *st,
    ldns_rr_list **rrs)
{
	ldns_rdf *qname, *cur;
	ldns_pkt *a = NULL;
	char tbuf[16], text[256];

	*rrs = NULL;
	st_init(st);
	if (!dns_name_valid(name)) {
		st_fail(st, DNS_INVALID, "invalid domain name");
		return st->result;
	}
	qname = ldns_dname_new_frm_str(name);
	if (qname == NULL) {
		st_fail(st, DNS_INVALID, "invalid domain name");
		return st->result;
	}
	if (exchange(c, qname, type, 0, &a, st) != 0) {
		ldns_rdf_deep_free(qname);
		return st->result;
	}
	st->rcode = (int)ldns_pkt_get_rcode(a);
	st->ede = answer_ede(a, text, sizeof(text));
	type_str(type, tbuf, sizeof(tbuf));

	switch (ldns_pkt_get_rcode(a)) {
	case LDNS_RCODE_NOERROR:
	case LDNS_RCODE_NXDOMAIN:
		break;
	case LDNS_RCODE_SERVFAIL: {
		ldns_pkt *cdreply = NULL;
		struct dns_status cdst;
		if (st->ede >= 1 && st->ede <= 12) {
			st_fail(st, DNS_BOGUS, "DNSSEC validation failed for %s %s: EDE %d (%s)%s%s",
			    name, tbuf, st->ede, ede_name(st->ede), text[0] ? ": " : "", text);
		} else if (st->ede >= 0) {
			st_fail(st, DNS_TEMPFAIL, "resolver %s: SERVFAIL for %s %s: EDE %d (%s)%s%s",
			    c->r->desc, name, tbuf, st->ede, ede_name(st->ede),
			    text[0] ? ": " : "", text);
		} else {
			/* No reason given: a validation failure if the same
			 * question succeeds without validation. */
			st_init(&cdst);
			if (exchange(c, qname, type, 1, &cdreply, &cdst) == 0 &&
			    (ldns_pkt_get_rcode(cdreply) == LDNS_RCODE_NOERROR ||
			    ldns_pkt_get_rcode(cdreply) == LDNS_RCODE_NXDOMAIN))
				st_fail(st, DNS_BOGUS, "DNSSEC validation failed for %s %s "
				    "(SERVFAIL, answered with checking disabled)", name, tbuf);
			else
				st_fail(st, DNS_TEMPFAIL, "resolver %s: SERVFAIL for %s %s",
				    c->r->desc, name, tbuf);
			if (cdreply)
				ldns_pkt_free(cdreply);
		}
		ldns_pkt_free(a);
		ldns_rdf_deep_free(qname);
		return st->result;
	}
	default: {
		char *rc = ldns_pkt_rcode2str(ldns_pkt_get_rcode(a));
		st_fail(st, DNS_TEMPFAIL, "resolver %s: %s for %s %s", c->r->desc,
		    rc ? rc : "error", name, tbuf);
		free(rc);
		ldns_pkt_free(a);
		ldns_rdf_deep_free(qname);
		return st->result;
	}
	}

	/* Follow the CNAME chain from the question within the answer. */
	ldns_rr_list *ans = ldns_pkt_answer(a);
	size_t nans = ans ? ldns_rr_list_rr_count(ans) : 0;
	cur = qname;
	for (int hops = 0; type != LDNS_RR_TYPE_CNAME; hops++) {
		ldns_rr *cname = NULL;
		for (size_t i = 0; i < nans; i++) {
			ldns_rr *rr = ldns_rr_list_rr(ans, i);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
			    ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN && ldns_rr_rd_count(rr) == 1 &&
			    dname_eq(ldns_rr_owner(rr), cur)) {
				cname = rr;
				break;
			}
		}
		if (cname == NULL)
			break;
		if (hops >= DNS_MAX_CNAMES) {
			st_fail(st, DNS_TEMPFAIL, "CNAME chain from %s too long or a loop", name);
			ldns_pkt_free(a);
			ldns_rdf_deep_free(qname);
			return st->result;
		}
		ttl_min(st, ldns_rr_ttl(cname));
		cur = ldns_rr_rdf(cname, 0);
	}
	dname_str(cur, st->canon, sizeof(st->canon));

	ldns_rr_list *out = ldns_rr_list_new();
	for (size_t i = 0; i < nans; i++) {
		ldns_rr *rr = ldns_rr_list_rr(ans, i);
		if (ldns_rr_get_type(rr) == type && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
		    dname_eq(ldns_rr_owner(rr), cur)) {
			ttl_min(st, ldns_rr_ttl(rr));
			ldns_rr_list_push_rr(out, ldns_rr_clone(rr));
		}
	}
	st->sec = ldns_pkt_ad(a) ? DNS_SEC_SECURE : DNS_SEC_INSECURE;
	if (ldns_pkt_get_rcode(a) == LDNS_RCODE_NXDOMAIN) {
		st->result = DNS_NXDOMAIN;
		negative_ttl(st, a);
		ldns_rr_list_deep_free(out);
	} else if (ldns_rr_list_rr_count(out) == 0) {
		st->result = DNS_NODATA;
		negative_ttl(st, a);
		ldns_rr_list_deep_free(out);
	} else {
		st->result = DNS_OK;
		*rrs = out;
	}
	ldns_pkt_free(a);
	ldns_rdf_deep_free(qname);
	return st->result;
}

/* ------------------------------------------------------------------ A / AAAA */

static enum dns_result
addrs_call(struct dns_call *c, const char *host, int families, struct dns_addr_result *out)
{
	struct dns_status parts[2];
	int nparts = 0;
	static const struct { int flag; ldns_rr_type type; int family; size_t len; } fam[] = {
		{ DNS_ADDR_V6, LDNS_RR_TYPE_AAAA, AF_INET6, 16 },
		{ DNS_ADDR_V4, LDNS_RR_TYPE_A, AF_INET, 4 },
	};

	memset(out, 0, sizeof(*out));
	st_init(&out->st);
	if ((families & DNS_ADDR_ANY) == 0) {
		st_fail(&out->st, DNS_INVALID, "no address family asked for");
		return out->st.result;
	}
	for (size_t f = 0; f < 2; f++) {
		ldns_rr_list *rrs;
		if (!(families & fam[f].flag))
			continue;
		struct dns_status *st = &parts[nparts++];
		if (lookup(c, host, fam[f].type, st, &rrs) != DNS_OK)
			continue;
		size_t n = ldns_rr_list_rr_count(rrs);
		out->addrs = xreallocarray(out->addrs, out->n + n, sizeof(*out->addrs));
		for (size_t i = 0; i < n; i++) {
			ldns_rdf *d = ldns_rr_rdf(ldns_rr_list_rr(rrs, i), 0);
			if (d == NULL || ldns_rdf_size(d) != fam[f].len)
				continue;
			struct dns_addr *a = &out->addrs[out->n++];
			memset(a, 0, sizeof(*a));
			a->family = fam[f].family;
			memcpy(a->addr, ldns_rdf_data(d), fam[f].len);
		}
		ldns_rr_list_deep_free(rrs);
	}

	/* Combine: the worst failure wins, then any address, then the denials. */
	const struct dns_status *pick = NULL;
	static const enum dns_result order[] = { DNS_BOGUS, DNS_TEMPFAIL, DNS_INVALID, DNS_OK,
	    DNS_NXDOMAIN, DNS_NODATA };
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]) && pick == NULL; o++)
		for (int i = 0; i < nparts; i++)
			if (parts[i].result == order[o]) {
				pick = &parts[i];
				break;
			}
	out->st = *pick;
	if (out->st.result == DNS_OK || out->st.result == DNS_NODATA ||
	    out->st.result == DNS_NXDOMAIN) {
		for (int i = 0; i < nparts; i++) {
			if (parts[i].sec != DNS_SEC_SECURE)
				out->st.sec = DNS_SEC_INSECURE;
			if (parts[i].ttl && (out->st.ttl == 0 || parts[i].ttl < out->st.ttl))
				out->st.ttl = parts[i].ttl;
		}
	}
	return out->st.result;
}

enum dns_result
dns_addrs(const struct dns_resolver *r, const char *host, int families,
    struct dns_addr_result *out)
{
	struct dns_call c;

	call_init(&c, r);
	return addrs_call(&c, host, families, out);
}

void
dns_addr_result_free(struct dns_addr_result *res)
{
	if (res == NULL)
		return;
	free(res->addrs);
	res->addrs = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ MX */

static int
mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	return (int)x->pref - (int)y->pref;
}

enum dns_result
dns_mx(const struct dns_resolver *r, const char *domain, struct dns_mx_result *out)
{
	struct dns_call c;
	ldns_rr_list *rrs;
	size_t n, nulls = 0;

	memset(out, 0, sizeof(*out));
	call_init(&c, r);
	lookup(&c, domain, LDNS_RR_TYPE_MX, &out->st, &rrs);

	if (out->st.result == DNS_NODATA) {
		/* RFC 5321 5.1: no MX, but an address: the domain itself. */
		struct dns_addr_result ar;
		struct dns_status mxst = out->st;
		char canon[DNS_NAME_MAX];

		snprintf(canon, sizeof(canon), "%s", mxst.canon);
		addrs_call(&c, canon[0] ? canon : domain, DNS_ADDR_ANY, &ar);
		if (ar.st.result == DNS_OK || (ar.n > 0 && ar.st.result == DNS_TEMPFAIL)) {
			out->st.result = DNS_OK;
			out->st.error[0] = '\0';
			if (mxst.sec != DNS_SEC_SECURE || ar.st.sec != DNS_SEC_SECURE)
				out->st.sec = DNS_SEC_INSECURE;
			if (ar.st.ttl && (out->st.ttl == 0 || ar.st.ttl < out->st.ttl))
				out->st.ttl = ar.st.ttl;
			out->implicit = 1;
			out->n = 1;
			out->mx = xcalloc(1, sizeof(*out->mx));
			out->mx[0].pref = 0;
			snprintf(out->mx[0].host, sizeof(out->mx[0].host), "%s", canon);
		} else if (ar.st.result == DNS_NODATA || ar.st.result == DNS_NXDOMAIN) {
			/* Neither MX nor address: NODATA, secure if all three were. */
			if (ar.st.sec != DNS_SEC_SECURE)
				out->st.sec = DNS_SEC_INSECURE;
		} else {
			/* The address lookup failed: that is the answer. */
			out->st = ar.st;
			snprintf(out->st.canon, sizeof(out->st.canon), "%s", canon);
		}
		dns_addr_result_free(&ar);
		return out->st.result;
	}
	if (out->st.result != DNS_OK)
		return out->st.result;

	n = ldns_rr_list_rr_count(rrs);
	out->mx = xcalloc(n, sizeof(*out->mx));
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		ldns_rdf *pref = ldns_rr_mx_preference(rr), *host = ldns_rr_mx_exchange(rr);
		if (ldns_rr_rd_count(rr) != 2 || pref == NULL || host == NULL ||
		    ldns_rdf_get_type(pref) != LDNS_RDF_TYPE_INT16 ||
		    ldns_rdf_get_type(host) != LDNS_RDF_TYPE_DNAME)
			continue;
		if (ldns_dname_label_count(host) == 0) {
			nulls++;	/* "MX 0 ." (RFC 7505) */
			continue;
		}
		struct dns_mx *m = &out->mx[out->n++];
		m->pref = ldns_rdf2native_int16(pref);
		dname_str(host, m->host, sizeof(m->host));
	}
	ldns_rr_list_deep_free(rrs);
	/* Stable by preference: insertion order kept for equal preferences. */
	for (size_t i = 1; i < out->n; i++)
		for (size_t j = i; j > 0 && mx_cmp(&out->mx[j - 1], &out->mx[j]) > 0; j--) {
			struct dns_mx t = out->mx[j];
			out->mx[j] = out->mx[j - 1];
			out->mx[j - 1] = t;
		}
	if (nulls > 0 && out->n == 0) {
		out->null_mx = 1;
		free(out->mx);
		out->mx = NULL;
	}
	return out->st.result;
}

void
dns_mx_result_free(struct dns_mx_result *res)
{
	if (res == NULL)
		return;
	free(res->mx);
	res->mx = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ TLSA */

enum dns_result
dns_tlsa(const struct dns_resolver *r, const char *name, struct dns_tlsa_result *out)
{
	struct dns_call c;
	ldns_rr_list *rrs;

	memset(out, 0, sizeof(*out));
	call_init(&c, r);
	if (lookup(&c, name, LDNS_RR_TYPE_TLSA, &out->st, &rrs) != DNS_OK)
		return out->st.result;
	size_t n = ldns_rr_list_rr_count(rrs);
	out->rr = xcalloc(n, sizeof(*out->rr));
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) != 4)
			continue;
		ldns_rdf *u = ldns_rr_rdf(rr, 0), *s = ldns_rr_rdf(rr, 1), *m = ldns_rr_rdf(rr, 2);
		ldns_rdf *d = ldns_rr_rdf(rr, 3);
		if (ldns_rdf_size(u) != 1 || ldns_rdf_size(s) != 1 || ldns_rdf_size(m) != 1 ||
		    ldns_rdf_size(d) == 0)
			continue;
		struct dns_tlsa *t = &out->rr[out->n++];
		t->usage = *ldns_rdf_data(u);
		t->selector = *ldns_rdf_data(s);
		t->mtype = *ldns_rdf_data(m);
		t->len = ldns_rdf_size(d);
		t->data = xmalloc(t->len);
		memcpy(t->data, ldns_rdf_data(d), t->len);
	}
	ldns_rr_list_deep_free(rrs);
	return out->st.result;
}

void
dns_tlsa_result_free(struct dns_tlsa_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->rr[i].data);
	free(res->rr);
	res->rr = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ TXT */

int
dns_txt_rdata_join(const uint8_t *rdata, size_t len, struct buf *out, char *why, size_t whysz)
{
	size_t i = 0;

	if (len == 0) {
		snprintf(why, whysz, "TXT RDATA is empty (it holds at least one character-string)");
		return -1;
	}
	while (i < len) {
		size_t l = rdata[i++];
		if (l > len - i) {
			snprintf(why, whysz, "TXT RDATA is malformed: a character-string of %zu "
			    "octets with %zu left", l, len - i);
			return -1;
		}
		buf_append(out, rdata + i, l);
		i += l;
	}
	return 0;
}

enum dns_result
dns_txt(const struct dns_resolver *r, const char *name, struct dns_txt_result *out)
{
	struct dns_call c;
	ldns_rr_list *rrs;

	memset(out, 0, sizeof(*out));
	call_init(&c, r);
	if (lookup(&c, name, LDNS_RR_TYPE_TXT, &out->st, &rrs) != DNS_OK)
		return out->st.result;
	size_t n = ldns_rr_list_rr_count(rrs);
	out->txt = xcalloc(n, sizeof(*out->txt));
	out->len = xcalloc(n, sizeof(*out->len));
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		size_t total = 0;
		for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
			ldns_rdf *s = ldns_rr_rdf(rr, k);
			if (ldns_rdf_size(s) >= 1)
				total += ldns_rdf_size(s) - 1;
		}
		char *t = xmalloc(total + 1);
		size_t pos = 0;
		for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
			/* A character-string: one length octet, then the bytes. */
			ldns_rdf *s = ldns_rr_rdf(rr, k);
			size_t sz = ldns_rdf_size(s);
			const uint8_t *d = ldns_rdf_data(s);
			if (sz < 1)
				continue;
			size_t len = d[0] < sz - 1 ? d[0] : sz - 1;
			memcpy(t + pos, d + 1, len);
			pos += len;
		}
		t[pos] = '\0';
		out->txt[out->n] = t;
		out->len[out->n] = pos;
		out->n++;
	}
	ldns_rr_list_deep_free(rrs);
	return out->st.result;
}

void
dns_txt_result_free(struct dns_txt_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->txt[i]);
	free(res->txt);
	free(res->len);
	res->txt = NULL;
	res->len = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ PTR */

int
dns_reverse_name(const char *ip, const char *root, char *out, size_t outsz)
{
	unsigned char a[16];
	struct buf b;
	int rc = 0;

	buf_init(&b);
	if (inet_pton(AF_INET, ip, a) == 1) {
		for (int i = 3; i >= 0; i--)
			buf_printf(&b, "%u.", a[i]);
		buf_printf(&b, "%s", root ? root : "in-addr.arpa");
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		for (int i = 15; i >= 0; i--)
			buf_printf(&b, "%x.%x.", a[i] & 0xf, a[i] >> 4);
		buf_printf(&b, "%s", root ? root : "ip6.arpa");
	} else
		rc = -1;
	if (rc == 0 && b.len + 1 > outsz)
		rc = -1;
	if (rc == 0) {
		memcpy(out, b.data, b.len);
		out[b.len] = '\0';
	}
	buf_free(&b);
	return rc;
}

enum dns_result
dns_ptr(const struct dns_resolver *r, const char *name, struct dns_name_result *out)
{
	struct dns_call c;
	ldns_rr_list *rrs;

	memset(out, 0, sizeof(*out));
	call_init(&c, r);
	if (lookup(&c, name, LDNS_RR_TYPE_PTR, &out->st, &rrs) != DNS_OK)
		return out->st.result;
	size_t n = ldns_rr_list_rr_count(rrs);
	out->names = xcalloc(n, sizeof(*out->names));
	for (size_t i = 0; i < n; i++) {
		ldns_rdf *d = ldns_rr_rdf(ldns_rr_list_rr(rrs, i), 0);
		if (d == NULL || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME)
			continue;
		dname_str(d, out->names[out->n], sizeof(out->names[out->n]));
		out->n++;
	}
	ldns_rr_list_deep_free(rrs);
	return out->st.result;
}

void
dns_name_result_free(struct dns_name_result *res)
{
	if (res == NULL)
		return;
	free(res->names);
	res->names = NULL;
	res->n = 0;
}

/* ------------------------------------------------------------------ strings */

const char *
dns_result_str(enum dns_result res)
{
	switch (res) {
	case DNS_OK:		return "ok";
	case DNS_NODATA:	return "nodata";
	case DNS_NXDOMAIN:	return "nxdomain";
	case DNS_BOGUS:		return "bogus";
	case DNS_TEMPFAIL:	return "tempfail";
	case DNS_INVALID:	return "invalid";
	}
	return "unknown";
}

const char *
dns_sec_str(enum dns_sec sec)
{
	switch (sec) {
	case DNS_SEC_INSECURE:	return "insecure";
	case DNS_SEC_SECURE:	return "secure";
	case DNS_SEC_BOGUS:	return "bogus";
	case DNS_SEC_UNKNOWN:	return "unknown";
	}
	return "unknown";
}
