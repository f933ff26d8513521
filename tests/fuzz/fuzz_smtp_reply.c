/* Server replies as the delivery client reads them (smtp_reply_parse). The
 * first byte is how many bytes arrive per read, the second how many times the
 * rest is repeated (to reach the line and length limits); the rest is what
 * the server sent. Fed in one piece or read by read, the parser must end the
 * same way: same status, same bytes taken, same code and text. It must never
 * take a partial line, keep more text than its limit, or report a code that
 * is not a reply code. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX	(256 * 1024)

static void
check(int rc, const char *in, size_t len, size_t used, const struct smtp_reply *r)
{
	if (used > len)
		abort();
	if (rc == SMTP_REPLY_DONE && (used == 0 || in[used - 1] != '\n' ||
	    r->code < 200 || r->code > 599))
		abort();
	if (rc == SMTP_REPLY_MORE && used > 0 && in[used - 1] != '\n')
		abort();
	if (rc < 0 && (rc < SMTP_REPLY_ELINES || r->code != 0))
		abort();
	if (r->text.len > SMTP_REPLY_TEXT_MAX + SMTP_REPLY_LINE_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t step = (size_t)data[0] + 1;
	size_t times = (size_t)1 << (data[1] % 16);
	const char *body = (const char *)data + 2;
	size_t blen = size - 2;
	if (blen == 0 || blen * times > INPUT_MAX)
		times = 1;
	size_t len = blen * times;
	char *in = malloc(len + 1);
	for (size_t i = 0; i < times; i++)
		memcpy(in + i * blen, body, blen);

	struct smtp_reply whole, pieces;
	struct smtp_reply_parser p;
	size_t used;
	smtp_reply_init(&whole);
	smtp_reply_parser_init(&p, &whole);
	int rc = smtp_reply_parse(&p, in, len, &used);
	check(rc, in, len, used, &whole);

	/* Read by read, as smtp_client_read_reply does: what was taken is gone,
	 * the rest waits for more. */
	size_t pos = 0, end = step < len ? step : len, u;
	int rc2;
	smtp_reply_init(&pieces);
	smtp_reply_parser_init(&p, &pieces);
	for (;;) {
		rc2 = smtp_reply_parse(&p, in + pos, end - pos, &u);
		check(rc2, in + pos, end - pos, u, &pieces);
		pos += u;
		if (rc2 != SMTP_REPLY_MORE || end == len)
			break;
		end = end + step < len ? end + step : len;
	}
	if (rc2 != rc || pos != used || pieces.code != whole.code ||
	    pieces.text.len != whole.text.len ||
	    (whole.text.len > 0 && memcmp(pieces.text.data, whole.text.data, whole.text.len) != 0))
		abort();

	/* A complete reply leaves the next one for the next parser. */
	if (rc == SMTP_REPLY_DONE && used < len) {
		smtp_reply_parser_init(&p, &pieces);
		smtp_reply_parse(&p, in + used, len - used, &u);
	}
	smtp_reply_free(&whole);
	smtp_reply_free(&pieces);
	free(in);
	return 0;
}
