/* Reading the TLS reports other domains send us (tlsrpt.h): gzip or plain
 * JSON in, a struct tlsrpt_report out. Tolerant of what real senders write,
 * strict about cost: the inflated size, the arrays and each string are
 * capped, and every refusal names the JSON path where it happened.
 *
 * Choices the header leaves open:
 * - gzip members laid end to end are inflated as one text (RFC 1952 2.2, as
 *   gunzip does); any other byte after the last member is refused, since a
 *   report with a tail is not what its sender wrote.
 * - Duplicate member names are refused: which of two counts is the real
 *   one is not ours to guess.
 * - A string we keep that holds a NUL (\u0000) is refused: a C string would
 *   silently end there and "example.com\u0000.evil" become "example.com".
 *   Strings we do not read may hold one.
 * - A count may be a JSON integer, a JSON number with nothing after the
 *   point (7.0) or a string of digits, and must fit PostgreSQL's bigint. */
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "log.h"
#include "tlsrpt.h"
#include "xmalloc.h"

#define TLSRPT_PARSE_INFLATED_MAX	(4u << 20)
#define TLSRPT_PARSE_POLICIES_MAX	1000
#define TLSRPT_PARSE_FAILURES_MAX	10000
#define TLSRPT_PARSE_STRINGS_MAX	1000
/* Some 60 MB of jansson tree at worst ("[[],[],...]"); a real report
 * spends 14 bytes or more on each value, so one under max_inflated's
 * default fits. */
#define TLSRPT_PARSE_VALUES_MAX		300000
/* One kept string: a TLSA record of a whole certificate in hex fits. */
#define TLSRPT_PARSE_STRING_MAX		8192
#define TLSRPT_PARSE_PATH_MAX		96
/* Bytes of the input a reason shows. */
#define TLSRPT_PARSE_QUOTE		32
#define TLSRPT_PARSE_FIRST_OUT		(64u << 10)

struct tlsrpt_parse_ctx {
	struct tlsrpt_parse_limits	 lim;
	char				*err;
	size_t				 errlen;
};

/* "path: reason", cut to the caller's buffer; returns code. */
static int __attribute__((format(printf, 4, 5)))
tlsrpt_parse_fail(struct tlsrpt_parse_ctx *c, int code, const char *path, const char *fmt, ...)
{
	char msg[TLSRPT_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err != NULL && c->errlen > 0)
		snprintf(c->err, c->errlen, "%s%s%s", path, path[0] != '\0' ? ": " : "", msg);
	return code;
}

static void
tlsrpt_parse_path(char *dst, const char *path, const char *key)
{
	snprintf(dst, TLSRPT_PARSE_PATH_MAX, "%s%s%s", path, path[0] != '\0' ? "." : "", key);
}

static void
tlsrpt_parse_index(char *dst, const char *path, size_t i)
{
	snprintf(dst, TLSRPT_PARSE_PATH_MAX, "%s[%zu]", path, i);
}

/* ---- gzip ------------------------------------------------------------ */

/* Grows the output by doubling, never past cap + 1 bytes: one byte more
 * than the cap is how an inflate that goes on is told from one that ends
 * right at it. */
static void
tlsrpt_parse_grow(unsigned char **buf, size_t *size, size_t cap)
{
	size_t n = *size > (cap + 1) / 2 ? cap + 1 : *size * 2;
	*buf = xreallocarray(*buf, n, 1);
	*size = n;
}

/* After a member's end: 1 to go on with the next member, 0 at the end of
 * the input, or a refusal. */
static int
tlsrpt_parse_member_end(struct tlsrpt_parse_ctx *c, z_stream *z, const unsigned char *in,
    size_t len)
{
	size_t pos = (size_t)(z->next_in - in);

	if (pos == len)
		return 0;
	if (len - pos >= 2 && in[pos] == 0x1f && in[pos + 1] == 0x8b) {
		if (inflateReset(z) != Z_OK)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_GZIP, "", "gzip: cannot restart inflate");
		return 1;
	}
	return tlsrpt_parse_fail(c, TLSRPT_PARSE_GZIP, "",
	    "gzip: %zu bytes of trailing data after the last member", len - pos);
}

/* Inflates every member of in into *out (*outlen bytes), holding at most
 * the cap + 1 bytes. */
static int
tlsrpt_parse_inflate(struct tlsrpt_parse_ctx *c, z_stream *z, const unsigned char *in,
    size_t len, unsigned char **out, size_t *outlen)
{
	size_t cap = c->lim.max_inflated, size = 0, used = 0;

	for (;;) {
		size_t pos = (size_t)(z->next_in - in);
		if (z->avail_in == 0 && pos < len)
			z->avail_in = len - pos > UINT_MAX ? UINT_MAX : (uInt)(len - pos);
		if (used == size) {
			if (size == 0) {
				size = cap + 1 < TLSRPT_PARSE_FIRST_OUT ? cap + 1 : TLSRPT_PARSE_FIRST_OUT;
				*out = xmalloc(size);
			} else
				tlsrpt_parse_grow(out, &size, cap);
		}
		uInt room = size - used > UINT_MAX ? UINT_MAX : (uInt)(size - used);
		z->next_out = *out + used;
		z->avail_out = room;
		int zr = inflate(z, Z_NO_FLUSH);
		used += room - z->avail_out;
		*outlen = used;
		if (used > cap)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_TOO_BIG, "",
			    "inflated report over the limit of %zu bytes", cap);
		if (zr == Z_STREAM_END) {
			int more = tlsrpt_parse_member_end(c, z, in, len);
			if (more <= 0)
				return more;
		} else if (zr == Z_BUF_ERROR && z->avail_out > 0)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_GZIP, "", "gzip: truncated");
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_GZIP, "", "gzip: corrupt (%s)",
			    z->msg != NULL ? z->msg : zError(zr));
	}
}

static int
tlsrpt_parse_gunzip(struct tlsrpt_parse_ctx *c, const unsigned char *in, size_t len,
    unsigned char **out, size_t *outlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	*out = NULL;
	*outlen = 0;
	/* 15 + 16: a gzip wrapper only, no bare zlib or deflate. */
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_GZIP, "", "gzip: cannot start inflate");
	z.next_in = (unsigned char *)(uintptr_t)in;
	rc = tlsrpt_parse_inflate(c, &z, in, len, out, outlen);
	inflateEnd(&z);
	if (rc != 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- JSON values ----------------------------------------------------- */

/* A member that is absent or null: NULL. */
static json_t *
tlsrpt_parse_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* obj.key as a required object; p gets its path. */
static int
tlsrpt_parse_object(struct tlsrpt_parse_ctx *c, json_t *obj, const char *path, const char *key,
    char *p, json_t **out)
{
	tlsrpt_parse_path(p, path, key);
	*out = tlsrpt_parse_member(obj, key);
	if (*out == NULL)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "missing");
	if (!json_is_object(*out))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not an object");
	return 0;
}

/* A string we keep: no NUL inside, not over the cap. */
static int
tlsrpt_parse_keep(struct tlsrpt_parse_ctx *c, json_t *v, const char *path, char **out)
{
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);

	if (n > TLSRPT_PARSE_STRING_MAX)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_TOO_BIG, path,
		    "%zu bytes, over the limit of %d", n, TLSRPT_PARSE_STRING_MAX);
	if (memchr(s, '\0', n) != NULL)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "holds a NUL character");
	*out = xstrndup(s, n);
	return 0;
}

/* obj.key as a string; absent or null leaves *out NULL unless required. */
static int
tlsrpt_parse_string(struct tlsrpt_parse_ctx *c, json_t *obj, const char *path, const char *key,
    int required, char **out)
{
	char p[TLSRPT_PARSE_PATH_MAX];
	json_t *v = tlsrpt_parse_member(obj, key);

	tlsrpt_parse_path(p, path, key);
	if (v == NULL)
		return required ? tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "missing") : 0;
	if (!json_is_string(v))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not a string");
	return tlsrpt_parse_keep(c, v, p, out);
}

/* An array member's size, checked against max; *arr NULL when absent. */
static int
tlsrpt_parse_array(struct tlsrpt_parse_ctx *c, json_t *obj, const char *path, const char *key,
    size_t max, json_t **arr, size_t *n)
{
	char p[TLSRPT_PARSE_PATH_MAX];

	tlsrpt_parse_path(p, path, key);
	*arr = tlsrpt_parse_member(obj, key);
	*n = 0;
	if (*arr == NULL)
		return 0;
	if (!json_is_array(*arr))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not an array");
	*n = json_array_size(*arr);
	if (*n > max)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_TOO_BIG, p,
		    "%zu entries, over the limit of %zu", *n, max);
	return 0;
}

/* policy-string and mx-host: an array of strings, or one string as some
 * senders write mx-host (RFC 8460 before erratum 6241). */
static int
tlsrpt_parse_strings(struct tlsrpt_parse_ctx *c, json_t *obj, const char *path, const char *key,
    char ***v, size_t *n)
{
	char p[TLSRPT_PARSE_PATH_MAX], pi[TLSRPT_PARSE_PATH_MAX];
	json_t *m = tlsrpt_parse_member(obj, key), *arr;
	size_t count;
	int rc;

	tlsrpt_parse_path(p, path, key);
	if (json_is_string(m)) {
		*v = xcalloc(1, sizeof(**v));
		*n = 1;
		return tlsrpt_parse_keep(c, m, p, &(*v)[0]);
	}
	if (m != NULL && !json_is_array(m))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not a string or an array");
	if ((rc = tlsrpt_parse_array(c, obj, path, key, c->lim.max_strings, &arr, &count)) != 0)
		return rc;
	if (count == 0)
		return 0;
	*v = xcalloc(count, sizeof(**v));
	*n = count;
	for (size_t i = 0; i < count; i++) {
		json_t *e = json_array_get(arr, i);
		tlsrpt_parse_index(pi, p, i);
		if (!json_is_string(e))
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, pi, "not a string");
		if ((rc = tlsrpt_parse_keep(c, e, pi, &(*v)[i])) != 0)
			return rc;
	}
	return 0;
}

/* ---- counts ---------------------------------------------------------- */

/* A count as a string: 1*DIGIT, below 2^63. */
static int
tlsrpt_parse_count_text(struct tlsrpt_parse_ctx *c, json_t *v, const char *path, uint64_t *out)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	char q[LOG_QUOTE_SIZE(TLSRPT_PARSE_QUOTE)];
	uint64_t x = 0;

	log_quote(q, sizeof(q), s, n, TLSRPT_PARSE_QUOTE);
	if (n >= 2 && s[0] == '-' && s[1] >= '0' && s[1] <= '9')
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "negative (%s)", q);
	if (n == 0)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "not an integer (%s)", q);
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "not an integer (%s)", q);
		x = x * 10 + (uint64_t)(s[i] - '0');
		if (x > INT64_MAX)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path,
			    "not an integer below 2^63 (%s)", q);
	}
	*out = x;
	return 0;
}

/* obj.key as a count: required, an integer from 0 to 2^63 - 1. */
static int
tlsrpt_parse_count(struct tlsrpt_parse_ctx *c, json_t *obj, const char *path, const char *key,
    uint64_t *out)
{
	char p[TLSRPT_PARSE_PATH_MAX];
	json_t *v = tlsrpt_parse_member(obj, key);

	tlsrpt_parse_path(p, path, key);
	if (v == NULL)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "missing");
	if (json_is_string(v))
		return tlsrpt_parse_count_text(c, v, p, out);
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "negative (%lld)", (long long)i);
		*out = (uint64_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d < 0)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "negative (%g)", d);
		/* 2^63 is exact in a double; below it the cast is defined. */
		if (!(d < 9223372036854775808.0) || d != (double)(int64_t)d)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not an integer (%g)", d);
		*out = (uint64_t)(int64_t)d;
		return 0;
	}
	return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not an integer");
}

/* ---- date-time ------------------------------------------------------- */

/* n digits at s as a number, or -1. */
static int
tlsrpt_parse_digits(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int
tlsrpt_parse_mday_ok(int y, int m, int d)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (m < 1 || m > 12 || d < 1)
		return 0;
	return d <= days[m - 1] + (m == 2 && leap);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
tlsrpt_parse_days(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The zone after the time: Z, +hh:mm, +hhmm, or nothing (UTC). Offset in
 * seconds east, or -1 when malformed. */
static int
tlsrpt_parse_zone(const char *s, size_t n, int *off)
{
	int hh, mm;

	*off = 0;
	if (n == 0 || (n == 1 && (s[0] == 'Z' || s[0] == 'z')))
		return 0;
	if (s[0] != '+' && s[0] != '-')
		return -1;
	if (n == 6 && s[3] == ':')
		mm = tlsrpt_parse_digits(s + 4, 2);
	else if (n == 5)
		mm = tlsrpt_parse_digits(s + 3, 2);
	else
		return -1;
	hh = tlsrpt_parse_digits(s + 1, 2);
	if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
		return -1;
	*off = (s[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
	return 0;
}

/* RFC 3339 date-time, read tolerantly: 't' or ' ' for 'T', fractional
 * seconds dropped, no zone read as UTC. A leap second counts as the next
 * minute's first. */
static int
tlsrpt_parse_datetime(const char *s, size_t n, time_t *t)
{
	int y, mo, d, h, mi, sec, off;
	size_t i = 19;

	if (n < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return -1;
	y = tlsrpt_parse_digits(s, 4);
	mo = tlsrpt_parse_digits(s + 5, 2);
	d = tlsrpt_parse_digits(s + 8, 2);
	h = tlsrpt_parse_digits(s + 11, 2);
	mi = tlsrpt_parse_digits(s + 14, 2);
	sec = tlsrpt_parse_digits(s + 17, 2);
	if (y < 0 || !tlsrpt_parse_mday_ok(y, mo, d) || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 60)
		return -1;
	if (i < n && s[i] == '.') {
		size_t start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return -1;
	}
	if (tlsrpt_parse_zone(s + i, n - i, &off) != 0)
		return -1;
	*t = (time_t)(tlsrpt_parse_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off);
	return 0;
}

static int
tlsrpt_parse_time(struct tlsrpt_parse_ctx *c, json_t *range, const char *key, time_t *t)
{
	char p[TLSRPT_PARSE_PATH_MAX], q[LOG_QUOTE_SIZE(TLSRPT_PARSE_QUOTE)];
	json_t *v = tlsrpt_parse_member(range, key);

	tlsrpt_parse_path(p, "date-range", key);
	if (v == NULL)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "missing");
	if (!json_is_string(v))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "not a string");
	if (tlsrpt_parse_datetime(json_string_value(v), json_string_length(v), t) != 0)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, p, "%s is not an RFC 3339 date-time",
		    log_quote(q, sizeof(q), json_string_value(v), json_string_length(v),
		    TLSRPT_PARSE_QUOTE));
	return 0;
}

/* date-range is required: a report that says no day cannot be counted. */
static int
tlsrpt_parse_date_range(struct tlsrpt_parse_ctx *c, json_t *root, struct tlsrpt_report *r)
{
	char p[TLSRPT_PARSE_PATH_MAX];
	json_t *range;
	int rc;

	if ((rc = tlsrpt_parse_object(c, root, "", "date-range", p, &range)) != 0 ||
	    (rc = tlsrpt_parse_time(c, range, "start-datetime", &r->begin)) != 0 ||
	    (rc = tlsrpt_parse_time(c, range, "end-datetime", &r->end)) != 0)
		return rc;
	if (r->end < r->begin)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, "date-range",
		    "end-datetime before start-datetime");
	return 0;
}

/* ---- the report ------------------------------------------------------ */

/* A failure-details entry's members besides the count, in RFC 8460 4.4's
 * order: which are required, and where each goes. */
static const struct {
	const char	*key;
	int		 required;
	size_t		 off;
} tlsrpt_parse_failure_strings[] = {
	{ "result-type", 1, offsetof(struct tlsrpt_failure, result_type) },
	{ "sending-mta-ip", 0, offsetof(struct tlsrpt_failure, sending_mta_ip) },
	{ "receiving-mx-hostname", 0, offsetof(struct tlsrpt_failure, receiving_mx_hostname) },
	{ "receiving-mx-helo", 0, offsetof(struct tlsrpt_failure, receiving_mx_helo) },
	{ "receiving-ip", 0, offsetof(struct tlsrpt_failure, receiving_ip) },
	{ "additional-information", 0, offsetof(struct tlsrpt_failure, additional_information) },
	{ "failure-reason-code", 0, offsetof(struct tlsrpt_failure, failure_reason_code) },
};

static int
tlsrpt_parse_failure(struct tlsrpt_parse_ctx *c, json_t *fd, const char *path,
    struct tlsrpt_failure *f)
{
	size_t n = sizeof(tlsrpt_parse_failure_strings) / sizeof(tlsrpt_parse_failure_strings[0]);
	int rc;

	if (!json_is_object(fd))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "not an object");
	for (size_t i = 0; i < n; i++) {
		char **dst = (char **)(void *)((char *)f + tlsrpt_parse_failure_strings[i].off);
		if ((rc = tlsrpt_parse_string(c, fd, path, tlsrpt_parse_failure_strings[i].key,
		    tlsrpt_parse_failure_strings[i].required, dst)) != 0)
			return rc;
	}
	return tlsrpt_parse_count(c, fd, path, "failed-session-count", &f->failed_session_count);
}

/* The policy object of a policies[] entry. */
static int
tlsrpt_parse_policy_desc(struct tlsrpt_parse_ctx *c, json_t *entry, const char *path,
    struct tlsrpt_policy *p)
{
	char pp[TLSRPT_PARSE_PATH_MAX];
	json_t *pol;
	int rc;

	if ((rc = tlsrpt_parse_object(c, entry, path, "policy", pp, &pol)) != 0 ||
	    (rc = tlsrpt_parse_string(c, pol, pp, "policy-type", 1, &p->policy_type)) != 0 ||
	    (rc = tlsrpt_parse_strings(c, pol, pp, "policy-string", &p->policy_string,
	    &p->n_policy_string)) != 0 ||
	    (rc = tlsrpt_parse_string(c, pol, pp, "policy-domain", 0, &p->policy_domain)) != 0)
		return rc;
	return tlsrpt_parse_strings(c, pol, pp, "mx-host", &p->mx_host, &p->n_mx_host);
}

static int
tlsrpt_parse_summary(struct tlsrpt_parse_ctx *c, json_t *entry, const char *path,
    struct tlsrpt_policy *p)
{
	char ps[TLSRPT_PARSE_PATH_MAX];
	json_t *sum;
	int rc;

	if ((rc = tlsrpt_parse_object(c, entry, path, "summary", ps, &sum)) != 0 ||
	    (rc = tlsrpt_parse_count(c, sum, ps, "total-successful-session-count",
	    &p->total_success)) != 0)
		return rc;
	return tlsrpt_parse_count(c, sum, ps, "total-failure-session-count", &p->total_failure);
}

static int
tlsrpt_parse_policy(struct tlsrpt_parse_ctx *c, json_t *entry, const char *path,
    struct tlsrpt_policy *p)
{
	char pf[TLSRPT_PARSE_PATH_MAX], pi[TLSRPT_PARSE_PATH_MAX];
	json_t *arr;
	size_t n;
	int rc;

	if (!json_is_object(entry))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, path, "not an object");
	if ((rc = tlsrpt_parse_policy_desc(c, entry, path, p)) != 0 ||
	    (rc = tlsrpt_parse_summary(c, entry, path, p)) != 0 ||
	    (rc = tlsrpt_parse_array(c, entry, path, "failure-details", c->lim.max_failures,
	    &arr, &n)) != 0)
		return rc;
	if (n == 0)
		return 0;
	/* All-zero entries free cleanly, so a refusal halfway frees all. */
	p->failures = xcalloc(n, sizeof(*p->failures));
	p->n_failures = n;
	tlsrpt_parse_path(pf, path, "failure-details");
	for (size_t i = 0; i < n; i++) {
		tlsrpt_parse_index(pi, pf, i);
		if ((rc = tlsrpt_parse_failure(c, json_array_get(arr, i), pi, &p->failures[i])) != 0)
			return rc;
	}
	return 0;
}

static int
tlsrpt_parse_report(struct tlsrpt_parse_ctx *c, json_t *root, struct tlsrpt_report *r)
{
	char pi[TLSRPT_PARSE_PATH_MAX];
	json_t *arr, *contact;
	size_t n;
	int rc;

	if (!json_is_object(root))
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, "", "the report is not a JSON object");
	if ((rc = tlsrpt_parse_string(c, root, "", "organization-name", 0,
	    &r->organization_name)) != 0 ||
	    (rc = tlsrpt_parse_date_range(c, root, r)) != 0 ||
	    (rc = tlsrpt_parse_string(c, root, "", "report-id", 0, &r->report_id)) != 0)
		return rc;
	/* contact-info that is not a string is dropped (tlsrpt.h). */
	contact = tlsrpt_parse_member(root, "contact-info");
	if (json_is_string(contact) &&
	    (rc = tlsrpt_parse_keep(c, contact, "contact-info", &r->contact_info)) != 0)
		return rc;
	if ((rc = tlsrpt_parse_array(c, root, "", "policies", c->lim.max_policies, &arr, &n)) != 0)
		return rc;
	if (arr == NULL)
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_SHAPE, "policies", "missing");
	if (n == 0)
		return 0;
	r->policies = xcalloc(n, sizeof(*r->policies));
	r->n_policies = n;
	for (size_t i = 0; i < n; i++) {
		tlsrpt_parse_index(pi, "policies", i);
		if ((rc = tlsrpt_parse_policy(c, json_array_get(arr, i), pi, &r->policies[i])) != 0)
			return rc;
	}
	return 0;
}

/* ---- entry ----------------------------------------------------------- */

/* jansson builds the whole tree before we see it, at some 200 bytes and a
 * microsecond or two per container: 4 MiB of "[]," would cost 300 MB. So
 * the values are counted first, from the text: in JSON every value but the
 * first comes right after a ':', a ',' or a '[' outside strings, which
 * bounds their number from above. */
static int
tlsrpt_parse_count_values(struct tlsrpt_parse_ctx *c, const char *text, size_t len)
{
	size_t values = 1;
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = 0;
		} else if (ch == '"')
			in_string = 1;
		else if ((ch == ':' || ch == ',' || ch == '[') && ++values > c->lim.max_values)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_TOO_BIG, "",
			    "more than %zu JSON values", c->lim.max_values);
	}
	return 0;
}

static int
tlsrpt_parse_json(struct tlsrpt_parse_ctx *c, const char *text, size_t len,
    struct tlsrpt_report *r)
{
	char q[LOG_QUOTE_SIZE(80)];
	json_error_t je;
	json_t *root;
	int rc;

	/* A UTF-8 byte order mark, which jansson does not skip. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		text += 3;
		len -= 3;
	}
	if ((rc = tlsrpt_parse_count_values(c, text, len)) != 0)
		return rc;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (root == NULL) {
		/* jansson's text may quote a token of the input. */
		log_quote(q, sizeof(q), je.text, strnlen(je.text, sizeof(je.text)), 80);
		if (json_error_code(&je) == json_error_stack_overflow)
			return tlsrpt_parse_fail(c, TLSRPT_PARSE_TOO_BIG, "",
			    "JSON nested deeper than %d levels", JSON_PARSER_MAX_DEPTH);
		return tlsrpt_parse_fail(c, TLSRPT_PARSE_JSON, "", "not JSON: line %d column %d: %s",
		    je.line, je.column, q);
	}
	rc = tlsrpt_parse_report(c, root, r);
	json_decref(root);
	return rc;
}

static void
tlsrpt_parse_limits_of(const struct tlsrpt_parse_limits *lim, struct tlsrpt_parse_limits *l)
{
	memset(l, 0, sizeof(*l));
	if (lim != NULL)
		*l = *lim;
	if (l->max_inflated == 0)
		l->max_inflated = TLSRPT_PARSE_INFLATED_MAX;
	if (l->max_inflated > SIZE_MAX - 1)
		l->max_inflated = SIZE_MAX - 1;
	if (l->max_policies == 0)
		l->max_policies = TLSRPT_PARSE_POLICIES_MAX;
	if (l->max_failures == 0)
		l->max_failures = TLSRPT_PARSE_FAILURES_MAX;
	if (l->max_strings == 0)
		l->max_strings = TLSRPT_PARSE_STRINGS_MAX;
	if (l->max_values == 0)
		l->max_values = TLSRPT_PARSE_VALUES_MAX;
}

int
tlsrpt_parse(const void *data, size_t len, const struct tlsrpt_parse_limits *lim,
    struct tlsrpt_report *out, char *err, size_t errlen)
{
	struct tlsrpt_parse_ctx c = { .err = err, .errlen = errlen };
	struct tlsrpt_report r;
	const unsigned char *in = data;
	unsigned char *plain = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	tlsrpt_parse_limits_of(lim, &c.lim);
	if (len >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
		if ((rc = tlsrpt_parse_gunzip(&c, in, len, &plain, &len)) != 0)
			return rc;
		in = plain;
	} else if (len > c.lim.max_inflated)
		return tlsrpt_parse_fail(&c, TLSRPT_PARSE_TOO_BIG, "",
		    "report of %zu bytes, over the limit of %zu bytes", len, c.lim.max_inflated);
	rc = tlsrpt_parse_json(&c, (const char *)in, len, &r);
	free(plain);
	if (rc != 0) {
		tlsrpt_report_free(&r);
		return rc;
	}
	*out = r;
	return TLSRPT_PARSE_OK;
}
