/* mxd: mail to the TLSRPT addresses, kept until controld has it (rptspool.h). */
#include "rptspool.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mxd_config.h"
#include "xmalloc.h"

#define RPTSPOOL_MAGIC	"mxd-tlsrpt 1\n"
#define RPTSPOOL_HEAD_MAX 2048

static int
rptspool_cmp(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

void
rptspool_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s)
{
	rptspool_config_free(cfg);
	if (s->n_tlsrpt_addresses == 0)
		return;
	cfg->tlsrpt_addresses = xcalloc(s->n_tlsrpt_addresses, sizeof(char *));
	for (size_t i = 0; i < s->n_tlsrpt_addresses; i++) {
		const char *a = s->tlsrpt_addresses[i];
		if (a[0] == '\0' || strchr(a, '@') == NULL || strlen(a) > 320)
			continue;
		cfg->tlsrpt_addresses[cfg->ntlsrpt_addresses++] = xstrdup(a);
	}
	qsort(cfg->tlsrpt_addresses, cfg->ntlsrpt_addresses, sizeof(char *), rptspool_cmp);
}

void
rptspool_config_free(struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->ntlsrpt_addresses; i++)
		free(cfg->tlsrpt_addresses[i]);
	free(cfg->tlsrpt_addresses);
	cfg->tlsrpt_addresses = NULL;
	cfg->ntlsrpt_addresses = 0;
}

int
rptspool_is_address(const struct mxd_config *cfg, const char *addr)
{
	if (cfg->ntlsrpt_addresses == 0)
		return 0;
	return bsearch(&addr, cfg->tlsrpt_addresses, cfg->ntlsrpt_addresses, sizeof(char *),
	    rptspool_cmp) != NULL;
}

static int
rptspool_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The temporary file written and synced: 0, or an errno. */
static int
rptspool_write_tmp(int dirfd, const char *tmp, const char *head, size_t hlen, const void *msg,
    size_t len)
{
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), e;

	if (fd < 0)
		return errno;
	if (rptspool_write_all(fd, head, hlen) < 0 || rptspool_write_all(fd, msg, len) < 0 ||
	    fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return e;
	}
	if (close(fd) < 0) {
		e = errno;
		unlinkat(dirfd, tmp, 0);
		return e;
	}
	return 0;
}

int
rptspool_store(const char *spool_dir, const char *name, const char *from, const char *rcpt,
    time_t received, const void *msg, size_t len, char *err, size_t errsz)
{
	char dir[4096], tmp[RPTSPOOL_NAME_MAX + 8], *head;
	int dirfd, e;

	snprintf(dir, sizeof(dir), "%s/%s", spool_dir, RPTSPOOL_DIR);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		e = errno;
		snprintf(err, errsz, "mkdir %s: %s", dir, strerror(e));
		return e;
	}
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		e = errno;
		snprintf(err, errsz, "open %s: %s", dir, strerror(e));
		return e;
	}
	snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
	head = xasprintf(RPTSPOOL_MAGIC "from %s\nto %s\nreceived %lld\n\n", from, rcpt,
	    (long long)received);
	if ((e = rptspool_write_tmp(dirfd, tmp, head, strlen(head), msg, len)) != 0)
		snprintf(err, errsz, "write %s/%s: %s", dir, tmp, strerror(e));
	else if (renameat(dirfd, tmp, dirfd, name) < 0 || fsync(dirfd) < 0) {
		e = errno;
		snprintf(err, errsz, "rename or fsync in %s: %s", dir, strerror(e));
		unlinkat(dirfd, tmp, 0);
		unlinkat(dirfd, name, 0);
	}
	free(head);
	close(dirfd);
	return e;
}

/* The value of header line "key " at *p, NUL-terminated in place. */
static char *
rptspool_line(char **p, char *end, const char *key)
{
	size_t k = strlen(key);
	char *nl = memchr(*p, '\n', (size_t)(end - *p)), *v;

	if (nl == NULL || (size_t)(nl - *p) < k || memcmp(*p, key, k) != 0)
		return NULL;
	v = *p + k;
	*nl = '\0';
	*p = nl + 1;
	return v;
}

int
rptspool_read(int dirfd, const char *name, struct rptspool_mail *out, char *err, size_t errsz)
{
	struct stat st;
	char *p, *end, *v;
	ssize_t n;
	size_t got = 0;
	int fd;

	memset(out, 0, sizeof(*out));
	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errsz, "open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size > (off_t)RPTSPOOL_MAX + RPTSPOOL_HEAD_MAX) {
		snprintf(err, errsz, "%lld bytes: over the limit", (long long)st.st_size);
		close(fd);
		return -1;
	}
	out->data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size && (n = read(fd, out->data + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	p = (char *)out->data;
	end = p + got;
	if (got < strlen(RPTSPOOL_MAGIC) || memcmp(p, RPTSPOOL_MAGIC, strlen(RPTSPOOL_MAGIC)) != 0 ||
	    (p += strlen(RPTSPOOL_MAGIC), (out->from = rptspool_line(&p, end, "from ")) == NULL) ||
	    (out->rcpt = rptspool_line(&p, end, "to ")) == NULL ||
	    (v = rptspool_line(&p, end, "received ")) == NULL || p >= end || *p != '\n') {
		snprintf(err, errsz, "not a report file of mxd (or cut short)");
		rptspool_mail_free(out);
		return -1;
	}
	out->received = strtoll(v, NULL, 10);
	out->msg = (uint8_t *)p + 1;
	out->len = (size_t)(end - p - 1);
	return 0;
}

void
rptspool_mail_free(struct rptspool_mail *m)
{
	free(m->data);
	memset(m, 0, sizeof(*m));
}
