/* The MTA-STS policy file as an HTTPS server returns it (any bytes, any
 * size). Never crash or leak; a refused policy always says why, in plain
 * printable text; an accepted one obeys RFC 8461 3.2 (max_age capped, an mx
 * list unless mode is none, every pattern a host name with at most a
 * leftmost "*."), matches its own patterns, and renders to a text that
 * parses back to the same policy and renders identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_err(const char *err)
{
	size_t n = strlen(err);
	if (n == 0 || n >= STS_ERR_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			abort();
}

static void
check_pattern(const char *mx)
{
	size_t n = strlen(mx);
	if (n == 0 || mx[n - 1] == '.' || strstr(mx, "..") != NULL || mx[0] == '.')
		abort();
	const char *star = strchr(mx, '*');
	if (star != NULL && (star != mx || mx[1] != '.' || strchr(mx + 1, '*') != NULL))
		abort();
	/* A pattern matches the host it describes. */
	char host[300];
	if (star != NULL) {
		if (n + 2 > sizeof(host))
			abort();
		host[0] = 'a';
		memcpy(host + 1, mx + 1, n);	/* "a" + ".example.com" + NUL */
		if (!sts_mx_pattern_match(mx, host))
			abort();
		/* ... and never the bare parent or two labels down. */
		if (sts_mx_pattern_match(mx, mx + 2))
			abort();
	} else if (!sts_mx_pattern_match(mx, mx))
		abort();
}

static void
same_policy(const struct sts_policy *a, const struct sts_policy *b)
{
	if (a->mode != b->mode || a->max_age != b->max_age || a->n_mx != b->n_mx)
		abort();
	for (size_t i = 0; i < a->n_mx; i++)
		if (strcmp(a->mx[i], b->mx[i]) != 0)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_policy *p = NULL, *q = NULL;
	char err[STS_ERR_MAX] = "";

	int rc = sts_policy_parse((const char *)data, size, &p, err, sizeof(err));
	if (rc != STS_OK) {
		if (p != NULL || (rc != STS_ERR_SYNTAX && rc != STS_ERR_TOO_LARGE))
			abort();
		check_err(err);
		return 0;
	}
	if (p == NULL || p->max_age > STS_MAX_AGE_MAX)
		abort();
	if (p->mode != STS_MODE_ENFORCE && p->mode != STS_MODE_TESTING && p->mode != STS_MODE_NONE)
		abort();
	if (p->n_mx == 0 && p->mode != STS_MODE_NONE)
		abort();
	for (size_t i = 0; i < p->n_mx; i++)
		check_pattern(p->mx[i]);
	size_t n;
	const char *const *lines = sts_policy_strings(p, &n);
	if (n == 0 || n < p->n_mx + 3)
		abort();
	for (size_t i = 0; i < n; i++)
		if (lines[i][0] == '\0' || strpbrk(lines[i], "\r\n") != NULL)
			abort();

	struct buf r1, r2;
	buf_init(&r1);
	buf_init(&r2);
	sts_policy_render(p, &r1);
	if (sts_policy_parse(r1.data, r1.len, &q, err, sizeof(err)) != STS_OK)
		abort();
	same_policy(p, q);
	sts_policy_render(q, &r2);
	if (r1.len != r2.len || memcmp(r1.data, r2.data, r1.len) != 0)
		abort();

	/* The input as an MX host name: matching must not misbehave either. */
	char host[256];
	size_t hl = size < sizeof(host) - 1 ? size : sizeof(host) - 1;
	memcpy(host, data, hl);
	host[hl] = '\0';
	(void)sts_mx_match(p, host);

	buf_free(&r1);
	buf_free(&r2);
	sts_policy_free(q);
	sts_policy_free(p);
	return 0;
}
