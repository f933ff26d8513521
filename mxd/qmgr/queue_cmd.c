/* The queue-control request parser: checking a request, apart from acting on
 * it (qmgr/qmgr_queue.c). */
#include "queue_cmd.h"

#include <string.h>
#include <strings.h>

#define QUEUE_CMD_MAXWORDS	3	/* one more than any request has */

struct queue_cmd_word {
	const char	*p;
	size_t		 len;
};

static const struct {
	const char		*name;
	enum queue_cmd_verb	 verb;	/* RETRY becomes RETRY_ALL with "ALL" */
	int			 nargs;
	const char		*usage;
} queue_cmd_table[] = {
	{ "LIST",	QUEUE_CMD_LIST,		0, "usage: LIST" },
	{ "RETRY",	QUEUE_CMD_RETRY,	1, "usage: RETRY <id>|ALL" },
	{ "DROP",	QUEUE_CMD_DROP,		1, "usage: DROP <id>" },
	{ "STAT",	QUEUE_CMD_STAT,		0, "usage: STAT" },
};

int
queue_cmd_id_ok(const char *s, size_t len)
{
	if (len == 0 || len >= SPOOL_ID_MAX || s[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Split on spaces and tabs; returns the number of words, at most max. */
static size_t
queue_cmd_split(const char *p, size_t len, struct queue_cmd_word *w, size_t max)
{
	size_t n = 0, i = 0;
	while (i < len && n < max) {
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == len)
			break;
		w[n].p = p + i;
		while (i < len && p[i] != ' ' && p[i] != '\t')
			i++;
		w[n].len = (size_t)((p + i) - w[n].p);
		n++;
	}
	return n;
}

int
queue_cmd_parse(const char *line, size_t len, struct queue_cmd *out, const char **err)
{
	struct queue_cmd_word w[QUEUE_CMD_MAXWORDS];

	memset(out, 0, sizeof(*out));
	if (len > QUEUE_CMD_LINE_MAX) {
		*err = "line too long";
		return -1;
	}
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) || memchr(line, '\n', len) || memchr(line, '\r', len)) {
		*err = "malformed request";
		return -1;
	}
	size_t n = queue_cmd_split(line, len, w, QUEUE_CMD_MAXWORDS);
	if (n == 0) {
		*err = "empty request";
		return -1;
	}
	for (size_t i = 0; i < sizeof(queue_cmd_table) / sizeof(queue_cmd_table[0]); i++) {
		const char *name = queue_cmd_table[i].name;
		if (w[0].len != strlen(name) || strncasecmp(w[0].p, name, w[0].len) != 0)
			continue;
		if (n != (size_t)queue_cmd_table[i].nargs + 1) {
			*err = queue_cmd_table[i].usage;
			return -1;
		}
		out->verb = queue_cmd_table[i].verb;
		if (n == 1)
			return 0;
		if (out->verb == QUEUE_CMD_RETRY && w[1].len == 3 && strncasecmp(w[1].p, "ALL", 3) == 0) {
			out->verb = QUEUE_CMD_RETRY_ALL;
			return 0;
		}
		if (!queue_cmd_id_ok(w[1].p, w[1].len)) {
			*err = "malformed message id";
			return -1;
		}
		memcpy(out->id, w[1].p, w[1].len);
		out->id[w[1].len] = '\0';
		return 0;
	}
	*err = "unknown command";
	return -1;
}
