/* A TLS report as another domain sends it to ours (tlsrpt_parse, tlsrpt.h):
 * any bytes are read or refused, never a crash, a leak or an unbounded
 * allocation. A refusal leaves the report zeroed and says why in one
 * printable line; a report that is read holds what the header promises
 * (required members present, arrays and strings within the limits, counts
 * below 2^63, end not before begin). The same text gzipped reads the same,
 * and a report read under tight limits reads the same under the defaults. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tlsrpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STRING_MAX	8192	/* tlsrpt_parse.c's cap on one kept string */

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
strs_eq(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i], b[i]))
			return 0;
	return 1;
}

static int
failure_eq(const struct tlsrpt_failure *a, const struct tlsrpt_failure *b)
{
	return str_eq(a->result_type, b->result_type) &&
	    str_eq(a->sending_mta_ip, b->sending_mta_ip) &&
	    str_eq(a->receiving_mx_hostname, b->receiving_mx_hostname) &&
	    str_eq(a->receiving_mx_helo, b->receiving_mx_helo) &&
	    str_eq(a->receiving_ip, b->receiving_ip) &&
	    str_eq(a->additional_information, b->additional_information) &&
	    str_eq(a->failure_reason_code, b->failure_reason_code) &&
	    a->failed_session_count == b->failed_session_count;
}

static int
policy_eq(const struct tlsrpt_policy *a, const struct tlsrpt_policy *b)
{
	if (!str_eq(a->policy_type, b->policy_type) || !str_eq(a->policy_domain, b->policy_domain) ||
	    !strs_eq(a->policy_string, a->n_policy_string, b->policy_string, b->n_policy_string) ||
	    !strs_eq(a->mx_host, a->n_mx_host, b->mx_host, b->n_mx_host) ||
	    a->total_success != b->total_success || a->total_failure != b->total_failure ||
	    a->n_failures != b->n_failures)
		return 0;
	for (size_t i = 0; i < a->n_failures; i++)
		if (!failure_eq(&a->failures[i], &b->failures[i]))
			return 0;
	return 1;
}

static int
report_eq(const struct tlsrpt_report *a, const struct tlsrpt_report *b)
{
	if (!str_eq(a->organization_name, b->organization_name) ||
	    !str_eq(a->contact_info, b->contact_info) || !str_eq(a->report_id, b->report_id) ||
	    a->begin != b->begin || a->end != b->end || a->n_policies != b->n_policies)
		return 0;
	for (size_t i = 0; i < a->n_policies; i++)
		if (!policy_eq(&a->policies[i], &b->policies[i]))
			return 0;
	return 1;
}

static void
check_str(const char *s, int required)
{
	if (s == NULL) {
		if (required)
			abort();
		return;
	}
	if (strlen(s) > STRING_MAX)
		abort();
}

static void
check_strs(char **v, size_t n, size_t max)
{
	if ((v == NULL) != (n == 0) || n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		check_str(v[i], 1);
}

static void
check_report(const struct tlsrpt_report *r, const struct tlsrpt_parse_limits *l)
{
	check_str(r->organization_name, 0);
	check_str(r->contact_info, 0);
	check_str(r->report_id, 0);
	if (r->end < r->begin || (r->policies == NULL) != (r->n_policies == 0) ||
	    r->n_policies > l->max_policies)
		abort();
	for (size_t i = 0; i < r->n_policies; i++) {
		const struct tlsrpt_policy *p = &r->policies[i];
		check_str(p->policy_type, 1);
		check_str(p->policy_domain, 0);
		check_strs(p->policy_string, p->n_policy_string, l->max_strings);
		check_strs(p->mx_host, p->n_mx_host, l->max_strings);
		if (p->total_success > INT64_MAX || p->total_failure > INT64_MAX ||
		    (p->failures == NULL) != (p->n_failures == 0) || p->n_failures > l->max_failures)
			abort();
		for (size_t j = 0; j < p->n_failures; j++) {
			const struct tlsrpt_failure *f = &p->failures[j];
			check_str(f->result_type, 1);
			check_str(f->sending_mta_ip, 0);
			check_str(f->receiving_mx_hostname, 0);
			check_str(f->receiving_mx_helo, 0);
			check_str(f->receiving_ip, 0);
			check_str(f->additional_information, 0);
			check_str(f->failure_reason_code, 0);
			if (f->failed_session_count > INT64_MAX)
				abort();
		}
	}
}

static int
parse(const void *data, size_t size, const struct tlsrpt_parse_limits *lim,
    const struct tlsrpt_parse_limits *eff, struct tlsrpt_report *r)
{
	static const struct tlsrpt_report zero;
	char err[TLSRPT_ERR_MAX];

	memset(err, 'x', sizeof(err));
	int rc = tlsrpt_parse(data, size, lim, r, err, sizeof(err));
	if (rc == TLSRPT_PARSE_OK) {
		check_report(r, eff);
		return rc;
	}
	if (rc < TLSRPT_PARSE_SHAPE || rc > TLSRPT_PARSE_GZIP || memcmp(r, &zero, sizeof(*r)) != 0)
		abort();
	size_t n = strnlen(err, sizeof(err));
	if (n == 0 || n == sizeof(err))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			abort();
	return rc;
}

/* data gzipped as one member, as a sender would mail it. */
static unsigned char *
gzip_of(const uint8_t *data, size_t size, size_t *outlen)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* A small window and little memory: any valid gzip will do. */
	if (deflateInit2(&z, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	size_t cap = deflateBound(&z, size);
	unsigned char *out = malloc(cap);
	if (out == NULL)
		abort();
	z.next_in = (unsigned char *)(uintptr_t)data;
	z.avail_in = (uInt)size;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct tlsrpt_parse_limits defaults = {
		4u << 20, 1000, 10000, 1000, 300000
	};
	static const struct tlsrpt_parse_limits tight = { 4096, 3, 3, 3, 200 };
	struct tlsrpt_report r, t;

	int rc = parse(data, size, NULL, &defaults, &r);

	/* Tight limits refuse more, and what they read is the same report. */
	if (parse(data, size, &tight, &tight, &t) == TLSRPT_PARSE_OK) {
		if (rc != TLSRPT_PARSE_OK || !report_eq(&r, &t))
			abort();
		tlsrpt_report_free(&t);
	}

	/* Plain text gzipped reads the same (or is refused the same way). */
	if (size < (1u << 20) && !(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
		size_t zlen;
		unsigned char *z = gzip_of(data, size, &zlen);
		int zrc = parse(z, zlen, NULL, &defaults, &t);
		if (zrc != rc || (rc == TLSRPT_PARSE_OK && !report_eq(&r, &t)))
			abort();
		if (zrc == TLSRPT_PARSE_OK)
			tlsrpt_report_free(&t);
		free(z);
	}
	if (rc == TLSRPT_PARSE_OK)
		tlsrpt_report_free(&r);
	return 0;
}
