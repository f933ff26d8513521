/* SMTP replies as a client reads them (smtp_reply.h). */
#include "smtp_reply.h"
#include "xmalloc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	buf_init(&r->text);
}

void
smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	r->code = 0;
}

void
smtp_reply_set_error(struct smtp_reply *r, const char *fmt, ...)
{
	va_list ap;
	char tmp[512];
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	r->code = 0;
	buf_reset(&r->text);
	buf_appends(&r->text, tmp);
}

const char *
smtp_reply_oneline(const struct smtp_reply *r, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < r->text.len && o + 4 < outsz; i++) {
		char ch = r->text.data[i];
		if (ch == '\r')
			continue;
		if (ch == '\n') {
			if (i + 1 < r->text.len) {
				memcpy(out + o, " / ", 3);
				o += 3;
			}
			continue;
		}
		out[o++] = ch;
	}
	out[o] = '\0';
	return out;
}

void
smtp_reply_parser_init(struct smtp_reply_parser *p, struct smtp_reply *r)
{
	p->r = r;
	p->lines = 0;
	r->code = 0;
	buf_reset(&r->text);
}

int
smtp_reply_parse(struct smtp_reply_parser *p, const char *buf, size_t len, size_t *consumed)
{
	struct smtp_reply *r = p->r;
	size_t pos = 0;
	int rc = SMTP_REPLY_MORE;

	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		if (nl == NULL) {
			/* Without its LF yet, a line this long can not end in time. */
			if (len - pos >= SMTP_REPLY_LINE_MAX)
				rc = SMTP_REPLY_ELONG;
			break;
		}
		size_t n = (size_t)(nl - line);
		if (n >= SMTP_REPLY_LINE_MAX) {
			rc = SMTP_REPLY_ELONG;
			break;
		}
		if (n > 0 && line[n - 1] == '\r')
			n--;
		int code, more;
		const char *text;
		if (smtp_reply_line(line, n, &code, &more, &text) < 0) {
			rc = SMTP_REPLY_ESYNTAX;
			break;
		}
		if (r->code != 0 && code != r->code) {
			rc = SMTP_REPLY_ECODE;
			break;
		}
		if (more && ++p->lines > SMTP_REPLY_LINES_MAX) {
			rc = SMTP_REPLY_ELINES;
			break;
		}
		r->code = code;
		/* Keep the reply for DSNs, but bounded: a server can not make us
		 * hold megabytes of text. */
		if (r->text.len < SMTP_REPLY_TEXT_MAX) {
			buf_append(&r->text, line, n);
			buf_append(&r->text, "\n", 1);
		}
		pos = (size_t)(nl - buf) + 1;
		if (!more) {
			rc = SMTP_REPLY_DONE;
			break;
		}
	}
	if (rc < 0)
		r->code = 0;
	*consumed = pos;
	return rc;
}

const char *
smtp_reply_strerror(int rc)
{
	switch (rc) {
	case SMTP_REPLY_ESYNTAX:
		return "not a reply line";
	case SMTP_REPLY_ECODE:
		return "code differs from the first line's";
	case SMTP_REPLY_ELONG:
		return "line too long";
	case SMTP_REPLY_ELINES:
		return "too many lines";
	}
	return "unknown error";
}

int
smtp_reply_line(const char *line, size_t len, int *code, int *more, const char **text)
{
	if (len < 3)
		return -1;
	for (int i = 0; i < 3; i++)
		if (line[i] < '0' || line[i] > '9')
			return -1;
	if (line[0] < '2' || line[0] > '5')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3) {
		*more = 0;
		*text = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*more = line[3] == '-';
	*text = line + 4;
	return 0;
}
