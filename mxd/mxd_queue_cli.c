/* mxd -c FILE queue ...: the queue control client (mxd_queue_cli.h). */
#include "mxd_queue_cli.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "queue_cmd.h"
#include "timeutil.h"

/* The scheduler answers between turns of its loop, and streams a listing
 * (100,000 messages: some 15 MB) a slice per turn: the limit is on silence,
 * not on the whole answer (docs/mxd.md#queue-control). */
#define MXD_QUEUE_TIMEOUT_MS	60000

/* The request line for "queue list|retry ID|retry all|drop ID", checked
 * with the server's own parser; -1 for a usage error. */
static int
mxd_queue_request(int argc, char **argv, char *line, size_t size)
{
	struct queue_cmd cmd;
	const char *err;

	if (argc == 1 && strcmp(argv[0], "list") == 0)
		snprintf(line, size, "LIST");
	else if (argc == 2 && strcmp(argv[0], "retry") == 0)
		snprintf(line, size, "RETRY %s", argv[1]);
	else if (argc == 2 && strcmp(argv[0], "drop") == 0)
		snprintf(line, size, "DROP %s", argv[1]);
	else
		return -1;
	if (queue_cmd_parse(line, strlen(line), &cmd, &err) < 0) {
		fprintf(stderr, "mxd: queue %s: %s\n", argv[0], err);
		exit(2);
	}
	return 0;
}

static int
mxd_queue_connect(const char *path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "mxd: %s: path too long for a unix socket\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "mxd: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	int e = errno;
	close(fd);
	if (e == ENOENT)
		fprintf(stderr, "mxd: %s does not exist: mxd is not running with this "
		    "configuration (or its scheduler could not create the socket: see its log)\n",
		    path);
	else if (e == ECONNREFUSED)
		fprintf(stderr, "mxd: %s: connection refused: mxd's scheduler is not "
		    "running\n", path);
	else if (e == EACCES || e == EPERM)
		fprintf(stderr, "mxd: %s: %s: run this as root or as mxd's user\n", path, strerror(e));
	else
		fprintf(stderr, "mxd: %s: %s\n", path, strerror(e));
	return -1;
}

/* The whole answer, up to the server's close; -1 on error, or when the
 * server sent nothing for MXD_QUEUE_TIMEOUT_MS. */
static int
mxd_queue_exchange(int fd, const char *req, struct buf *ans)
{
	char tmp[65536];
	uint64_t deadline = timeutil_mono_ms() + MXD_QUEUE_TIMEOUT_MS;

	snprintf(tmp, sizeof(tmp), "%s\n", req);
	if (send(fd, tmp, strlen(tmp), MSG_NOSIGNAL) != (ssize_t)strlen(tmp)) {
		fprintf(stderr, "mxd: sending the request: %s\n", strerror(errno));
		return -1;
	}
	for (;;) {
		uint64_t now = timeutil_mono_ms();
		struct pollfd p = { fd, POLLIN, 0 };
		int n = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			fprintf(stderr, "mxd: %s for %d s: mxd's scheduler is busy "
			    "or stuck\n", ans->len ? "the answer stalled" : "no answer",
			    MXD_QUEUE_TIMEOUT_MS / 1000);
			return -1;
		}
		ssize_t r = n < 0 ? -1 : read(fd, tmp, sizeof(tmp));
		if (r == 0 || (r < 0 && errno == ECONNRESET && ans->len > 0))
			return 0;	/* the answer is checked for its last line */
		if (r < 0) {
			fprintf(stderr, "mxd: reading the answer: %s\n", strerror(errno));
			return -1;
		}
		buf_append(ans, tmp, (size_t)r);
		deadline = timeutil_mono_ms() + MXD_QUEUE_TIMEOUT_MS;
	}
}

/* "3m05s" */
static void
mxd_queue_duration(char *out, size_t size, long long s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, size, "%llds", s);
	else if (s < 3600)
		snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, size, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

/* Next key=value of a MSG line, in place: values in quotes lose them and
 * their \" and \\ escapes; \xHH stays as it is (nothing the server escaped
 * reaches the terminal raw). Returns 0 at the end of the line. */
static int
mxd_queue_field(char **pp, char **key, char **val)
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

static void
mxd_queue_print_msg(char *line, time_t now)
{
	char *key, *val, *p = line;
	const char *id = "?", *from = NULL, *reply = NULL, *error = NULL;
	long long age = -1, next = 0;
	int attempts = 0;
	struct buf to;
	char a[32], n[32];

	buf_init(&to);
	while (mxd_queue_field(&p, &key, &val)) {
		if (strcmp(key, "id") == 0)
			id = val;
		else if (strcmp(key, "age") == 0)
			age = atoll(val);
		else if (strcmp(key, "attempts") == 0)
			attempts = atoi(val);
		else if (strcmp(key, "next") == 0)
			next = atoll(val);
		else if (strcmp(key, "from") == 0)
			from = val;
		else if (strcmp(key, "rcpt") == 0)
			buf_printf(&to, "  to:   <%s>\n", val);
		else if (strcmp(key, "last_reply") == 0)
			reply = val;
		else if (strcmp(key, "error") == 0)
			error = val;
	}
	mxd_queue_duration(a, sizeof(a), age);
	mxd_queue_duration(n, sizeof(n), next - (long long)now);
	printf("%s  age %s  attempts %d  next %s%s\n", id, age < 0 ? "?" : a, attempts,
	    next <= (long long)now ? "now" : "in ", next <= (long long)now ? "" : n);
	if (from)
		printf("  from: <%s>\n", from);
	if (to.len)
		fputs(to.data, stdout);
	if (error)
		printf("  error: %s\n", error);
	if (reply)
		printf("  last reply: %s\n", reply);
	buf_free(&to);
}

/* Print the answer; 0 when it ended in OK. */
static int
mxd_queue_print(const char *sub, struct buf *ans)
{
	time_t now = time(NULL);
	int listed = 0;
	char *save = NULL;

	if (ans->len == 0 || ans->data[ans->len - 1] != '\n') {
		fprintf(stderr, "mxd: queue %s: incomplete answer from mxd's scheduler\n", sub);
		return 1;
	}
	for (char *line = strtok_r(ans->data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "MSG ", 4) == 0) {
			if (listed++)
				printf("\n");
			mxd_queue_print_msg(line + 4, now);
		} else if (strncmp(line, "OK", 2) == 0) {
			if (strcmp(sub, "list") == 0)
				printf("%s-- %d message%s queued\n", listed ? "\n" : "", listed,
				    listed == 1 ? "" : "s");
			else
				printf("mxd: %s\n", line[2] == ' ' ? line + 3 : line);
			return 0;
		} else if (strncmp(line, "ERR", 3) == 0) {
			fprintf(stderr, "mxd: queue %s: %s\n", sub, line[3] == ' ' ? line + 4 : line);
			return 1;
		}
	}
	fprintf(stderr, "mxd: queue %s: incomplete answer from mxd's scheduler\n", sub);
	return 1;
}

int
mxd_queue_main(const struct mxd_config *cfg, int argc, char **argv)
{
	char req[QUEUE_CMD_LINE_MAX], path[4200];
	struct buf ans;

	if (mxd_queue_request(argc, argv, req, sizeof(req)) < 0)
		return MXD_QUEUE_USAGE;
	snprintf(path, sizeof(path), "%s/%s", cfg->spool_dir, QUEUE_CMD_SOCK);
	int fd = mxd_queue_connect(path);
	if (fd < 0)
		return 1;
	buf_init(&ans);
	int rc = mxd_queue_exchange(fd, req, &ans) < 0 ? 1 : mxd_queue_print(argv[0], &ans);
	close(fd);
	buf_free(&ans);
	return rc;
}
