/* MTA-STS policy cache: one file per domain, and the per-delivery decision. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"
#include "xmalloc.h"

#define STS_CACHE_MAGIC		"mxfleet-sts-cache 1"
#define STS_CACHE_SUFFIX	".sts"
/* Header lines plus the policy: anything bigger is not ours. */
#define STS_CACHE_FILE_MAX	(STS_POLICY_MAX + 1024)

struct sts_cache {
	char			*dir;
	sts_clock_fn		 clock;
	void			*clock_arg;
	atomic_uint_least64_t	 corrupt;
	atomic_uint		 tmp_seq;
};

static int64_t
sts_cache_now(struct sts_cache *c)
{
	return c->clock ? c->clock(c->clock_arg) : (int64_t)time(NULL);
}

/* Lower case, without the final dot, and only characters a host name has:
 * the name becomes a file name. 0 on success. */
static int
sts_cache_domain_norm(const char *in, char out[STS_DOMAIN_MAX + 1])
{
	size_t n = strlen(in);

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > STS_DOMAIN_MAX || in[0] == '.')
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.')
			return -1;
		if (ch == '.' && i > 0 && in[i - 1] == '.')
			return -1;
		out[i] = (char)tolower(ch);
	}
	out[n] = '\0';
	return 0;
}

int
sts_cache_open(const char *dir, sts_clock_fn clock, void *clock_arg,
    struct sts_cache **out, char *err, size_t errsz)
{
	struct sts_cache *c;
	struct stat st;

	*out = NULL;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errsz, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "%s: not a directory", dir);
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->dir = xstrdup(dir);
	c->clock = clock;
	c->clock_arg = clock_arg;
	atomic_init(&c->corrupt, 0);
	atomic_init(&c->tmp_seq, 0);
	*out = c;
	return 0;
}

void
sts_cache_close(struct sts_cache *c)
{
	if (c == NULL)
		return;
	free(c->dir);
	free(c);
}

uint64_t
sts_cache_corrupt_count(const struct sts_cache *c)
{
	return atomic_load(&((struct sts_cache *)c)->corrupt);
}

void
sts_cache_entry_free(struct sts_cache_entry *e)
{
	if (e == NULL)
		return;
	sts_policy_free(e->policy);
	free(e->text);
	memset(e, 0, sizeof(*e));
}

/* ---- the file ----
 *
 *	mxfleet-sts-cache 1\n
 *	domain <domain>\n
 *	id <id>\n
 *	fetched <seconds>\n
 *	expires <seconds>\n
 *	length <bytes>\n
 *	\n
 *	<the policy, exactly length bytes>
 */

/* Read the whole file (at most STS_CACHE_FILE_MAX). 1 read, 0 absent, -1 bad. */
static int
sts_cache_slurp(const char *path, struct buf *b)
{
	char chunk[4096];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return errno == ENOENT ? 0 : -1;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (b->len + (size_t)n > STS_CACHE_FILE_MAX) {
			close(fd);
			return -1;
		}
		buf_append(b, chunk, (size_t)n);
	}
	close(fd);
	return 1;
}

/* One "key value\n" header line at *p; value copied into val (valsz). */
static int
sts_cache_field(const char **p, const char *end, const char *key, char *val, size_t valsz)
{
	size_t kl = strlen(key);
	const char *nl;

	if ((size_t)(end - *p) <= kl || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ')
		return -1;
	*p += kl + 1;
	if ((nl = memchr(*p, '\n', (size_t)(end - *p))) == NULL)
		return -1;
	if ((size_t)(nl - *p) >= valsz || nl == *p)
		return -1;
	memcpy(val, *p, (size_t)(nl - *p));
	val[nl - *p] = '\0';
	*p = nl + 1;
	return 0;
}

static int
sts_cache_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 0)
		return -1;
	*out = v;
	return 0;
}

static int
sts_cache_decode(const struct buf *b, const char *domain, struct sts_cache_entry *e)
{
	const char *p = b->data, *end = b->data + b->len;
	char v[STS_DOMAIN_MAX + 2], perr[STS_ERR_MAX];
	int64_t len;
	struct sts_txt t;

	if (b->len < sizeof(STS_CACHE_MAGIC) ||
	    memcmp(p, STS_CACHE_MAGIC "\n", sizeof(STS_CACHE_MAGIC)) != 0)
		return -1;
	p += sizeof(STS_CACHE_MAGIC);
	if (sts_cache_field(&p, end, "domain", v, sizeof(v)) == -1 || strcmp(v, domain) != 0)
		return -1;
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	if (sts_cache_field(&p, end, "id", e->id, sizeof(e->id)) == -1)
		return -1;
	/* The id must be one the TXT parser accepts. */
	snprintf(v, sizeof(v), "v=STSv1; id=%s", e->id);
	if (sts_txt_parse_record(v, strlen(v), &t, perr, sizeof(perr)) != STS_OK)
		return -1;
	if (sts_cache_field(&p, end, "fetched", v, sizeof(v)) == -1 ||
	    sts_cache_int(v, &e->fetched_at) == -1)
		return -1;
	if (sts_cache_field(&p, end, "expires", v, sizeof(v)) == -1 ||
	    sts_cache_int(v, &e->expires_at) == -1 || e->expires_at < e->fetched_at)
		return -1;
	if (sts_cache_field(&p, end, "length", v, sizeof(v)) == -1 ||
	    sts_cache_int(v, &len) == -1 || len > STS_POLICY_MAX)
		return -1;
	if (p >= end || *p++ != '\n' || end - p != len)
		return -1;
	if (sts_policy_parse(p, (size_t)len, &e->policy, perr, sizeof(perr)) != STS_OK)
		return -1;
	e->text = xstrndup(p, (size_t)len);
	e->text_len = (size_t)len;
	return 0;
}

static char *
sts_cache_path(const struct sts_cache *c, const char *domain)
{
	return xasprintf("%s/%s" STS_CACHE_SUFFIX, c->dir, domain);
}

int
sts_cache_get(struct sts_cache *c, const char *domain, struct sts_cache_entry *e)
{
	char norm[STS_DOMAIN_MAX + 1], *path;
	struct buf b;
	int rc;

	memset(e, 0, sizeof(*e));
	if (sts_cache_domain_norm(domain, norm) == -1)
		return 0;
	path = sts_cache_path(c, norm);
	buf_init(&b);
	rc = sts_cache_slurp(path, &b);
	if (rc == 1 && sts_cache_decode(&b, norm, e) == -1)
		rc = -1;
	if (rc == -1) {
		atomic_fetch_add(&c->corrupt, 1);
		log_warnx("sts_cache: ignoring unreadable cache file %s", path);
		sts_cache_entry_free(e);
	}
	buf_free(&b);
	free(path);
	return rc == 1;
}

static int
sts_cache_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
sts_cache_put(struct sts_cache *c, const char *domain, const char *id,
    const char *text, size_t len, const struct sts_policy *p)
{
	char norm[STS_DOMAIN_MAX + 1], *path, *tmp;
	int64_t now = sts_cache_now(c);
	struct buf b;
	int fd, rc = -1, dfd;

	if (p == NULL || sts_cache_domain_norm(domain, norm) == -1 || len > STS_POLICY_MAX)
		return -1;
	buf_init(&b);
	buf_printf(&b, STS_CACHE_MAGIC "\ndomain %s\nid %s\nfetched %" PRId64
	    "\nexpires %" PRId64 "\nlength %zu\n\n", norm, id, now,
	    now + (int64_t)p->max_age, len);
	buf_append(&b, text, len);

	path = sts_cache_path(c, norm);
	tmp = xasprintf("%s/.%s.%ld.%u.tmp", c->dir, norm, (long)getpid(),
	    atomic_fetch_add(&c->tmp_seq, 1));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warn("sts_cache: %s", tmp);
		goto out;
	}
	if (sts_cache_write_all(fd, b.data, b.len) == -1 || fsync(fd) == -1) {
		log_warn("sts_cache: write %s", tmp);
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("sts_cache: rename %s", path);
		unlink(tmp);
		goto out;
	}
	if ((dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	free(tmp);
	free(path);
	buf_free(&b);
	return rc;
}

/* ---- decisions ---- */

void
sts_decision_free(struct sts_decision *d)
{
	if (d == NULL)
		return;
	sts_policy_free(d->policy);
	d->policy = NULL;
}

/* Apply e (moved into d) with the given source. */
static void
sts_decision_from_entry(struct sts_decision *d, struct sts_cache_entry *e,
    enum sts_source src)
{
	d->policy = e->policy;
	e->policy = NULL;
	snprintf(d->id, sizeof(d->id), "%s", e->id);
	d->expires_at = e->expires_at;
	d->source = src;
}

/* Fetch domain under TXT id; on success cache it and apply it. 1 on success. */
static int
sts_cache_fetch_apply(struct sts_cache *c, const char *domain, const char *id,
    sts_fetch_fn fetch, void *fetch_arg, struct sts_decision *d)
{
	struct sts_fetch_out fo;

	memset(&fo, 0, sizeof(fo));
	d->fetched = 1;
	fetch(fetch_arg, domain, &fo);
	d->fetch_result = fo.result;
	if (fo.result == STS_FETCH_OK && fo.policy == NULL) {
		d->fetch_result = STS_FETCH_INVALID;
		snprintf(fo.reason, sizeof(fo.reason), "fetch returned no policy");
	}
	if (d->fetch_result != STS_FETCH_OK) {
		snprintf(d->reason, sizeof(d->reason), "%s", fo.reason);
		log_info("sts_cache: domain=%s fetch failed: %s: %s", domain,
		    sts_fetch_result_type(d->fetch_result), fo.reason);
		sts_fetch_out_free(&fo);
		return 0;
	}
	sts_cache_put(c, domain, id, fo.body ? fo.body : "", fo.body ? fo.body_len : 0,
	    fo.policy);
	d->policy = fo.policy;
	fo.policy = NULL;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->expires_at = sts_cache_now(c) + (int64_t)d->policy->max_age;
	d->source = STS_SOURCE_FETCHED;
	sts_fetch_out_free(&fo);
	return 1;
}

static void
sts_cache_decide_internal(struct sts_cache *c, const char *domain,
    const struct sts_txt_lookup *txt, int force, sts_fetch_fn fetch, void *fetch_arg,
    struct sts_decision *d)
{
	struct sts_cache_entry e;
	int live;

	memset(d, 0, sizeof(*d));
	live = sts_cache_get(c, domain, &e) && sts_cache_now(c) < e.expires_at;

	if (txt->state == STS_TXT_FOUND) {
		if (live && !force && strcmp(e.id, txt->id) == 0)
			sts_decision_from_entry(d, &e, STS_SOURCE_CACHE);
		else if (!sts_cache_fetch_apply(c, domain, txt->id, fetch, fetch_arg, d) &&
		    live)
			sts_decision_from_entry(d, &e, STS_SOURCE_STALE);
	} else if (live && !force) {
		/* 5.1: a missing or failed TXT record does not remove a policy. */
		sts_decision_from_entry(d, &e, STS_SOURCE_CACHE);
	}
	sts_cache_entry_free(&e);
}

void
sts_cache_decide(struct sts_cache *c, const char *domain, const struct sts_txt_lookup *txt,
    sts_fetch_fn fetch, void *fetch_arg, struct sts_decision *d)
{
	sts_cache_decide_internal(c, domain, txt, 0, fetch, fetch_arg, d);
}

void
sts_cache_refresh(struct sts_cache *c, const char *domain, const struct sts_txt_lookup *txt,
    sts_fetch_fn fetch, void *fetch_arg, struct sts_decision *d)
{
	struct sts_cache_entry e;

	sts_cache_decide_internal(c, domain, txt, 1, fetch, fetch_arg, d);
	if (d->source == STS_SOURCE_NONE && txt->state != STS_TXT_FOUND &&
	    sts_cache_get(c, domain, &e)) {
		if (sts_cache_now(c) < e.expires_at)
			sts_decision_from_entry(d, &e, STS_SOURCE_CACHE);
		sts_cache_entry_free(&e);
	}
}

enum sts_recheck
sts_cache_recheck(struct sts_cache *c, const char *domain, const char *applied_id,
    const struct sts_txt_lookup *txt, sts_fetch_fn fetch, void *fetch_arg,
    struct sts_decision *d)
{
	memset(d, 0, sizeof(*d));
	if (txt->state != STS_TXT_FOUND ||
	    (applied_id != NULL && strcmp(applied_id, txt->id) == 0))
		return STS_RECHECK_UNCHANGED;
	if (sts_cache_fetch_apply(c, domain, txt->id, fetch, fetch_arg, d))
		return STS_RECHECK_CHANGED;
	return STS_RECHECK_FETCH_FAILED;
}

/* ---- proactive refresh ---- */

size_t
sts_cache_due(struct sts_cache *c, char ***out)
{
	size_t n = 0, cap = 0, sl = strlen(STS_CACHE_SUFFIX);
	int64_t now = sts_cache_now(c);
	struct dirent *de;
	char **list = NULL;
	DIR *dp;

	*out = NULL;
	if ((dp = opendir(c->dir)) == NULL) {
		log_warn("sts_cache: opendir %s", c->dir);
		return 0;
	}
	while ((de = readdir(dp)) != NULL) {
		char name[STS_DOMAIN_MAX + 1];
		struct sts_cache_entry e;
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l <= sl || l - sl > STS_DOMAIN_MAX ||
		    strcmp(de->d_name + l - sl, STS_CACHE_SUFFIX) != 0)
			continue;
		memcpy(name, de->d_name, l - sl);
		name[l - sl] = '\0';
		if (!sts_cache_get(c, name, &e))
			continue;
		if (now < e.expires_at &&
		    now >= e.fetched_at + (e.expires_at - e.fetched_at) / 2) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				list = xreallocarray(list, cap, sizeof(*list));
			}
			list[n++] = xstrdup(e.domain);
		}
		sts_cache_entry_free(&e);
	}
	closedir(dp);
	*out = list;
	return n;
}

void
sts_cache_list_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
