/* Queue-control request lines (mxd's spool_dir/queue.sock): none may crash or
 * read out of bounds; what parses names a known verb, carries an id only
 * when the verb takes one, never an id that could be a path, and reads the
 * same when written back as a request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_queue_cmd_names[QUEUE_CMD_NVERBS] = {
	[QUEUE_CMD_LIST] = "LIST",
	[QUEUE_CMD_RETRY] = "RETRY",
	[QUEUE_CMD_RETRY_ALL] = "RETRY ALL",
	[QUEUE_CMD_DROP] = "DROP",
	[QUEUE_CMD_STAT] = "STAT",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size bytes, no terminator: the parser must honour len. */
	char *line = malloc(size ? size : 1);
	memcpy(line, data, size);

	struct queue_cmd c, again;
	const char *err = NULL;
	if (queue_cmd_parse(line, size, &c, &err) < 0) {
		if (err == NULL || err[0] == '\0' || strchr(err, '\n'))
			abort();	/* every refusal is one non-empty reply line */
		free(line);
		return 0;
	}
	if ((unsigned)c.verb >= QUEUE_CMD_NVERBS)
		abort();
	size_t idlen = strnlen(c.id, sizeof(c.id));
	if (idlen == sizeof(c.id))
		abort();
	int takes_id = c.verb == QUEUE_CMD_RETRY || c.verb == QUEUE_CMD_DROP;
	if (takes_id != (idlen > 0) || (takes_id && !queue_cmd_id_ok(c.id, idlen)) ||
	    strchr(c.id, '/'))
		abort();
	char out[QUEUE_CMD_LINE_MAX + 1];
	snprintf(out, sizeof(out), "%s%s%s\r\n", fuzz_queue_cmd_names[c.verb], takes_id ? " " : "",
	    c.id);
	if (queue_cmd_parse(out, strlen(out), &again, &err) < 0 || again.verb != c.verb ||
	    strcmp(again.id, c.id) != 0)
		abort();
	free(line);
	return 0;
}
