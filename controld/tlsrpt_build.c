/* Building the TLS report we send (tlsrpt.h): the RFC 8460 4 JSON with
 * erratum 6241, its gzip (RFC 1952) and its RFC 8460 5.1 file name. No I/O.
 *
 * The JSON's members come in the order of the RFC's schema (4.4), so two
 * builds of the same report are the same bytes (a re-sent report must be the
 * same file, and tests compare bytes). A report that would not be what the
 * RFC asks for is refused, never sent half-right: a receiver's parser is
 * stricter than ours. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zlib.h>

#include "tlsrpt.h"
#include "xmalloc.h"

#if JSON_INTEGER_IS_LONG_LONG
#define TLSRPT_BUILD_INT_MAX	LLONG_MAX
#else
#define TLSRPT_BUILD_INT_MAX	LONG_MAX
#endif

/* RFC 8460 4.3: what we send is always one of these. */
static const char *const tlsrpt_build_result_types[] = {
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure",
	"tlsa-invalid", "dnssec-invalid", "dane-required",
	"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
};

/* RFC 8460 4.4 policy-type. */
static const char *const tlsrpt_build_policy_types[] = {
	"tlsa", "sts", "no-policy-found",
};

static int __attribute__((format(printf, 3, 4)))
tlsrpt_build_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
tlsrpt_build_in(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

static int
tlsrpt_build_empty(const char *s)
{
	return s == NULL || *s == '\0';
}

/* jansson returns NULL only when out of memory (containers, integers):
 * the same as our x* allocators, we abort. */
static json_t *
tlsrpt_build_must(json_t *j)
{
	if (j == NULL)
		abort();
	return j;
}

static void
tlsrpt_build_put(json_t *obj, const char *key, json_t *val)
{
	if (json_object_set_new(obj, key, tlsrpt_build_must(val)) != 0)
		abort();
}

/* A string member; json_string refuses what is not UTF-8. */
static int
tlsrpt_build_str(json_t *obj, const char *key, const char *val, char *err, size_t errlen)
{
	json_t *s = json_string(val);

	if (s == NULL)
		return tlsrpt_build_fail(err, errlen, "%s is not valid UTF-8", key);
	tlsrpt_build_put(obj, key, s);
	return 0;
}

/* An optional string member: left out when NULL or empty (the RFC's
 * optional members are omitted, never null). */
static int
tlsrpt_build_opt(json_t *obj, const char *key, const char *val, char *err, size_t errlen)
{
	if (tlsrpt_build_empty(val))
		return 0;
	return tlsrpt_build_str(obj, key, val, err, errlen);
}

static int
tlsrpt_build_count(json_t *obj, const char *key, uint64_t n, char *err, size_t errlen)
{
	if (n > (uint64_t)TLSRPT_BUILD_INT_MAX)
		return tlsrpt_build_fail(err, errlen, "%s %llu is too large", key,
		    (unsigned long long)n);
	tlsrpt_build_put(obj, key, json_integer((json_int_t)n));
	return 0;
}

/* An array of strings, left out when empty (policy-string, mx-host). */
static int
tlsrpt_build_strings(json_t *obj, const char *key, char *const *v, size_t n,
    char *err, size_t errlen)
{
	json_t *a;

	if (n == 0)
		return 0;
	if (v == NULL)
		return tlsrpt_build_fail(err, errlen, "%s: %zu entries but no array", key, n);
	a = tlsrpt_build_must(json_array());
	for (size_t i = 0; i < n; i++) {
		json_t *s = v[i] != NULL ? json_string(v[i]) : NULL;

		if (s == NULL) {
			json_decref(a);
			return tlsrpt_build_fail(err, errlen, "%s[%zu] is %s", key, i,
			    v[i] == NULL ? "missing" : "not valid UTF-8");
		}
		if (json_array_append_new(a, s) != 0)
			abort();
	}
	tlsrpt_build_put(obj, key, a);
	return 0;
}

/* RFC 3339 5.6 in UTC with "Z", four-digit years only. */
static int
tlsrpt_build_datetime(json_t *obj, const char *key, time_t t, char *err, size_t errlen)
{
	struct tm tm;
	char buf[32];

	if (t < 0 || gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return tlsrpt_build_fail(err, errlen, "%s %lld is outside 1970-9999", key,
		    (long long)t);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return tlsrpt_build_str(obj, key, buf, err, errlen);
}

/* One failure-details entry, members in the order of RFC 8460 4.4. */
static json_t *
tlsrpt_build_failure(const struct tlsrpt_failure *f, size_t pi, size_t fi,
    char *err, size_t errlen)
{
	json_t *o;
	char where[64];

	snprintf(where, sizeof(where), "policies[%zu].failure-details[%zu]", pi, fi);
	if (tlsrpt_build_empty(f->result_type)) {
		tlsrpt_build_fail(err, errlen, "%s: no result-type", where);
		return NULL;
	}
	if (!tlsrpt_build_in(f->result_type, tlsrpt_build_result_types,
	    sizeof(tlsrpt_build_result_types) / sizeof(tlsrpt_build_result_types[0]))) {
		tlsrpt_build_fail(err, errlen, "%s: result-type \"%.40s\" is not one of RFC 8460 4.3",
		    where, f->result_type);
		return NULL;
	}
	o = tlsrpt_build_must(json_object());
	if (tlsrpt_build_str(o, "result-type", f->result_type, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "sending-mta-ip", f->sending_mta_ip, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "receiving-mx-hostname", f->receiving_mx_hostname, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "receiving-mx-helo", f->receiving_mx_helo, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "receiving-ip", f->receiving_ip, err, errlen) != 0 ||
	    tlsrpt_build_count(o, "failed-session-count", f->failed_session_count, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "additional-information", f->additional_information, err, errlen) != 0 ||
	    tlsrpt_build_opt(o, "failure-reason-code", f->failure_reason_code, err, errlen) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The "policy" object of one policies[] entry. */
static json_t *
tlsrpt_build_policy_obj(const struct tlsrpt_policy *p, size_t pi, char *err, size_t errlen)
{
	json_t *o;

	if (tlsrpt_build_empty(p->policy_type)) {
		tlsrpt_build_fail(err, errlen, "policies[%zu]: no policy-type", pi);
		return NULL;
	}
	if (!tlsrpt_build_in(p->policy_type, tlsrpt_build_policy_types,
	    sizeof(tlsrpt_build_policy_types) / sizeof(tlsrpt_build_policy_types[0]))) {
		tlsrpt_build_fail(err, errlen, "policies[%zu]: policy-type \"%.40s\" is not "
		    "tlsa, sts or no-policy-found", pi, p->policy_type);
		return NULL;
	}
	if (tlsrpt_build_empty(p->policy_domain)) {
		tlsrpt_build_fail(err, errlen, "policies[%zu]: no policy-domain", pi);
		return NULL;
	}
	o = tlsrpt_build_must(json_object());
	if (tlsrpt_build_str(o, "policy-type", p->policy_type, err, errlen) != 0 ||
	    tlsrpt_build_strings(o, "policy-string", p->policy_string, p->n_policy_string,
	    err, errlen) != 0 ||
	    tlsrpt_build_str(o, "policy-domain", p->policy_domain, err, errlen) != 0 ||
	    tlsrpt_build_strings(o, "mx-host", p->mx_host, p->n_mx_host, err, errlen) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* One policies[] entry: policy, summary, failure-details (omitted when
 * there are none). */
static json_t *
tlsrpt_build_policy(const struct tlsrpt_policy *p, size_t pi, char *err, size_t errlen)
{
	json_t *o, *pol, *sum, *fd;

	if ((pol = tlsrpt_build_policy_obj(p, pi, err, errlen)) == NULL)
		return NULL;
	o = tlsrpt_build_must(json_object());
	tlsrpt_build_put(o, "policy", pol);
	sum = tlsrpt_build_must(json_object());
	tlsrpt_build_put(o, "summary", sum);
	if (tlsrpt_build_count(sum, "total-successful-session-count", p->total_success,
	    err, errlen) != 0 ||
	    tlsrpt_build_count(sum, "total-failure-session-count", p->total_failure,
	    err, errlen) != 0)
		goto fail;
	if (p->n_failures == 0)
		return o;
	if (p->failures == NULL) {
		tlsrpt_build_fail(err, errlen, "policies[%zu]: %zu failures but no array",
		    pi, p->n_failures);
		goto fail;
	}
	fd = tlsrpt_build_must(json_array());
	tlsrpt_build_put(o, "failure-details", fd);
	for (size_t i = 0; i < p->n_failures; i++) {
		json_t *f = tlsrpt_build_failure(&p->failures[i], pi, i, err, errlen);

		if (f == NULL || json_array_append_new(fd, f) != 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* The top-level members up to policies, in the order of RFC 8460 4.4. */
static int
tlsrpt_build_head(json_t *root, const struct tlsrpt_report *r, char *err, size_t errlen)
{
	json_t *range;

	if (tlsrpt_build_empty(r->organization_name))
		return tlsrpt_build_fail(err, errlen, "no organization-name");
	if (tlsrpt_build_empty(r->contact_info))
		return tlsrpt_build_fail(err, errlen, "no contact-info (a string is required)");
	if (tlsrpt_build_empty(r->report_id))
		return tlsrpt_build_fail(err, errlen, "no report-id");
	if (r->begin >= r->end)
		return tlsrpt_build_fail(err, errlen, "date-range: start %lld is not before end %lld",
		    (long long)r->begin, (long long)r->end);
	if (r->n_policies == 0 || r->policies == NULL)
		return tlsrpt_build_fail(err, errlen, "no policies");
	if (tlsrpt_build_str(root, "organization-name", r->organization_name, err, errlen) != 0)
		return -1;
	range = tlsrpt_build_must(json_object());
	tlsrpt_build_put(root, "date-range", range);
	if (tlsrpt_build_datetime(range, "start-datetime", r->begin, err, errlen) != 0 ||
	    tlsrpt_build_datetime(range, "end-datetime", r->end, err, errlen) != 0)
		return -1;
	if (tlsrpt_build_str(root, "contact-info", r->contact_info, err, errlen) != 0 ||
	    tlsrpt_build_str(root, "report-id", r->report_id, err, errlen) != 0)
		return -1;
	return 0;
}

int
tlsrpt_build_json(const struct tlsrpt_report *r, char **json, size_t *len,
    char *err, size_t errlen)
{
	json_t *root, *pols;
	char *out;

	*json = NULL;
	*len = 0;
	if (r == NULL)
		return tlsrpt_build_fail(err, errlen, "no report");
	root = tlsrpt_build_must(json_object());
	if (tlsrpt_build_head(root, r, err, errlen) != 0)
		goto fail;
	pols = tlsrpt_build_must(json_array());
	tlsrpt_build_put(root, "policies", pols);
	for (size_t i = 0; i < r->n_policies; i++) {
		json_t *p = tlsrpt_build_policy(&r->policies[i], i, err, errlen);

		if (p == NULL || json_array_append_new(pols, p) != 0)
			goto fail;
	}
	out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(root);
	if (out == NULL)
		abort();
	/* jansson allocates with malloc (no json_set_alloc_funcs in this
	 * tree), so the caller frees *json with free(). */
	*json = out;
	*len = strlen(out);
	return 0;
fail:
	json_decref(root);
	return -1;
}

/* ---- gzip ---------------------------------------------------------------- */

int
tlsrpt_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen,
    char *err, size_t errlen)
{
	z_stream zs;
	unsigned char *buf;
	size_t cap;
	int rc;

	*out = NULL;
	*outlen = 0;
	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16: a gzip wrapper (RFC 1952) with mtime 0 and no
	 * name, so the same report gives the same bytes. */
	if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return tlsrpt_build_fail(err, errlen, "gzip: deflateInit2 failed");
	cap = deflateBound(&zs, (uLong)len);
	buf = xmalloc(cap);
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.next_out = buf;
	/* Fed in pieces a uInt can count; deflateBound makes room for all. */
	do {
		size_t in_left = len - (size_t)((const unsigned char *)zs.next_in -
		    (const unsigned char *)data);
		size_t out_left = cap - (size_t)(zs.next_out - buf);

		zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
		zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
		rc = deflate(&zs, in_left > zs.avail_in ? Z_NO_FLUSH : Z_FINISH);
	} while (rc == Z_OK);
	deflateEnd(&zs);
	if (rc != Z_STREAM_END) {
		free(buf);
		return tlsrpt_build_fail(err, errlen, "gzip: deflate failed (%d)", rc);
	}
	*out = buf;
	*outlen = (size_t)(zs.next_out - buf);
	return 0;
}

/* ---- File name (RFC 8460 5.1) -------------------------------------------- */

/* A file name part: one or more letters, digits and the bytes in extra.
 * sender and policy-domain are domains (letters, digits, '-', '.', and '_'
 * as some DNS names have), unique-id = 1*(ALPHA / DIGIT): nothing that
 * could be a path or another '!'. */
static int
tlsrpt_build_part_ok(const char *s, const char *extra)
{
	if (tlsrpt_build_empty(s))
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(extra, c) != NULL))
			return 0;
	}
	return 1;
}

int
tlsrpt_filename(const char *submitter, const char *policy_domain, time_t begin,
    time_t end, const char *unique_id, int gz, char *out, size_t outlen)
{
	int n;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (out == NULL || !tlsrpt_build_part_ok(submitter, "-._") ||
	    !tlsrpt_build_part_ok(policy_domain, "-._") ||
	    (unique_id != NULL && !tlsrpt_build_part_ok(unique_id, "")) ||
	    begin < 0 || end <= begin)
		return -1;
	n = snprintf(out, outlen, "%s!%s!%lld!%lld%s%s.json%s", submitter, policy_domain,
	    (long long)begin, (long long)end, unique_id != NULL ? "!" : "",
	    unique_id != NULL ? unique_id : "", gz ? ".gz" : "");
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}
