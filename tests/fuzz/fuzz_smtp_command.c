/* Command lines as a client sends them: verb, path, parameters, and server
 * reply lines as the delivery client reads them. None may crash or read out
 * of bounds, and a parsed path must fit its limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parser.h"
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SMTP_LINE_MAX)
		return 0;
	char *line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';

	struct smtp_cmd c;
	smtp_parser_command(line, size, &c);
	char addr[SMTP_PATH_MAX + 1];
	const char *params;
	for (int utf8 = 0; utf8 < 2; utf8++) {
		if (smtp_parser_path(c.args, "FROM:", 1, utf8, addr, sizeof(addr), &params) == 0) {
			if (strlen(addr) + 2 > SMTP_PATH_MAX)
				abort();
			struct smtp_param p[SMTP_PARAMS_MAX];
			smtp_parser_params(params, p, SMTP_PARAMS_MAX);
		}
		if (smtp_parser_path(c.args, "TO:", 0, utf8, addr, sizeof(addr), &params) == 0 &&
		    addr[0] == '\0')
			abort();	/* an empty recipient is never valid */
	}
	smtp_parser_helo_ok(c.args);
	smtp_parser_domain(line);
	int code, more;
	const char *text;
	if (smtp_reply_line(line, size, &code, &more, &text) == 0 &&
	    (code < 200 || code > 599))
		abort();
	free(line);
	return 0;
}
