/* The queue-control socket's client (queue_client.h). */
#include "queue_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "queue_cmd.h"
#include "timeutil.h"

static int
queue_client_connect(const char *path, char *err, size_t errsz)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "%s: path too long for a unix socket", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	int e = errno;
	close(fd);
	if (e == ENOENT)
		snprintf(err, errsz, "%s does not exist: mxd is not running with this "
		    "configuration (or its scheduler could not create the socket: see its log)",
		    path);
	else if (e == ECONNREFUSED)
		snprintf(err, errsz, "%s: connection refused: mxd's scheduler is not running", path);
	else if (e == EACCES || e == EPERM)
		snprintf(err, errsz, "%s: %s: run this as root or as mxd's user", path, strerror(e));
	else
		snprintf(err, errsz, "%s: %s", path, strerror(e));
	return e == ENOENT || e == ECONNREFUSED ? -2 : -1;
}

/* The whole answer, up to the server's close; the limit is on silence, not
 * on the whole answer (a long listing streams a slice per turn). */
static int
queue_client_exchange(int fd, const char *req, int timeout_ms, struct buf *ans, char *err,
    size_t errsz)
{
	char tmp[65536];
	uint64_t deadline = timeutil_mono_ms() + (uint64_t)timeout_ms;

	snprintf(tmp, sizeof(tmp), "%s\n", req);
	if (send(fd, tmp, strlen(tmp), MSG_NOSIGNAL) != (ssize_t)strlen(tmp)) {
		snprintf(err, errsz, "sending the request: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		uint64_t now = timeutil_mono_ms();
		struct pollfd p = { fd, POLLIN, 0 };
		int n = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			snprintf(err, errsz, "%s for %d s: mxd's scheduler is busy or stuck",
			    ans->len ? "the answer stalled" : "no answer", timeout_ms / 1000);
			return -1;
		}
		ssize_t r = n < 0 ? -1 : read(fd, tmp, sizeof(tmp));
		if (r == 0 || (r < 0 && errno == ECONNRESET && ans->len > 0))
			return 0;	/* the answer is checked for its last line */
		if (r < 0) {
			snprintf(err, errsz, "reading the answer: %s", strerror(errno));
			return -1;
		}
		buf_append(ans, tmp, (size_t)r);
		deadline = timeutil_mono_ms() + (uint64_t)timeout_ms;
	}
}

int
queue_client_run(const char *spool_dir, const char *req, int timeout_ms, struct buf *ans,
    char *err, size_t errsz)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", spool_dir, QUEUE_CMD_SOCK);
	int fd = queue_client_connect(path, err, errsz);
	if (fd < 0)
		return fd;
	int rc = queue_client_exchange(fd, req, timeout_ms, ans, err, errsz);
	close(fd);
	return rc;
}

/* Next key=value of a MSG line, in place: values in quotes lose them and
 * their \" and \\ escapes; \xHH stays as it is (nothing the server escaped
 * reaches a terminal raw). Returns 0 at the end of the line. */
static int
queue_client_field(char **pp, char **key, char **val)
{
	char *p = *pp;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	*key = p;
	while (*p && *p != '=' && *p != ' ')
		p++;
	if (*p != '=') {
		*val = p;
		if (*p)
			*p++ = '\0';
		*pp = p;
		return 1;
	}
	*p++ = '\0';
	if (*p != '"') {
		*val = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		*pp = p;
		return 1;
	}
	char *o = *val = ++p;
	while (*p && *p != '"') {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		*o++ = *p++;
	}
	if (*p)
		p++;
	*o = '\0';
	*pp = p;
	return 1;
}

void
queue_client_parse_msg(char *line, struct queue_client_msg *m)
{
	char *key, *val, *p = line;

	memset(m, 0, sizeof(*m));
	m->id = "?";
	m->age = -1;
	while (queue_client_field(&p, &key, &val)) {
		if (strcmp(key, "id") == 0)
			m->id = val;
		else if (strcmp(key, "created") == 0)
			m->created = atoll(val);
		else if (strcmp(key, "age") == 0)
			m->age = atoll(val);
		else if (strcmp(key, "size") == 0)
			m->size = strtoull(val, NULL, 10);
		else if (strcmp(key, "attempts") == 0)
			m->attempts = atoi(val);
		else if (strcmp(key, "next") == 0)
			m->next = atoll(val);
		else if (strcmp(key, "state") == 0)
			m->delivering = strcmp(val, "delivering") == 0;
		else if (strcmp(key, "from") == 0)
			m->from = val;
		else if (strcmp(key, "rcpt") == 0) {
			if (m->nrcpts < QUEUE_CLIENT_RCPTS)
				m->rcpts[m->nrcpts] = val;
			m->nrcpts++;
		} else if (strcmp(key, "last_reply") == 0)
			m->last_reply = val;
		else if (strcmp(key, "error") == 0)
			m->error = val;
	}
}
