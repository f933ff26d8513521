/* mxd -c FILE queue ...: the queue control client (mxd_queue_cli.h). */
#include "mxd_queue_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "queue_client.h"
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

static void
mxd_queue_print_msg(char *line, time_t now)
{
	struct queue_client_msg m;
	char a[32], n[32];

	queue_client_parse_msg(line, &m);
	timeutil_duration(a, sizeof(a), m.age);
	timeutil_duration(n, sizeof(n), m.next - (long long)now);
	printf("%s  age %s  attempts %d  next %s%s\n", m.id, m.age < 0 ? "?" : a, m.attempts,
	    m.next <= (long long)now ? "now" : "in ", m.next <= (long long)now ? "" : n);
	if (m.from)
		printf("  from: <%s>\n", m.from);
	for (size_t i = 0; i < m.nrcpts && i < QUEUE_CLIENT_RCPTS; i++)
		printf("  to:   <%s>\n", m.rcpts[i]);
	if (m.nrcpts > QUEUE_CLIENT_RCPTS)
		printf("  to:   ... and %zu more\n", m.nrcpts - QUEUE_CLIENT_RCPTS);
	if (m.error)
		printf("  error: %s\n", m.error);
	if (m.last_reply)
		printf("  last reply: %s\n", m.last_reply);
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
	char req[QUEUE_CMD_LINE_MAX], err[4400];
	struct buf ans;

	if (mxd_queue_request(argc, argv, req, sizeof(req)) < 0)
		return MXD_QUEUE_USAGE;
	buf_init(&ans);
	int rc;
	if (queue_client_run(cfg->spool_dir, req, MXD_QUEUE_TIMEOUT_MS, &ans, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxd: %s\n", err);
		rc = 1;
	} else
		rc = mxd_queue_print(argv[0], &ans);
	buf_free(&ans);
	return rc;
}
