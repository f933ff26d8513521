/* One recipient verification probe, no I/O (see rcpt_probe.h). */
#include "rcpt_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parser.h"
#include "xmalloc.h"

void
rcpt_probe_init(struct rcpt_probe *p, const char *name, const char *addr, int lmtp)
{
	memset(p, 0, sizeof(*p));
	p->step = RCPT_PROBE_GREETING;
	p->result = RCPT_PROBE_FAILED;
	p->addr = xstrdup(addr);
	p->hello = xasprintf("%s %s", lmtp ? "LHLO" : "EHLO", name);
	buf_init(&p->out);
	smtp_reply_init(&p->reply);
	smtp_reply_parser_init(&p->parser, &p->reply);
}

void
rcpt_probe_free(struct rcpt_probe *p)
{
	free(p->addr);
	free(p->hello);
	buf_free(&p->out);
	smtp_reply_free(&p->reply);
}

static void
rcpt_probe_send(struct rcpt_probe *p, const char *line)
{
	buf_appends(&p->out, line);
	buf_appends(&p->out, "\r\n");
}

static void
rcpt_probe_end(struct rcpt_probe *p, enum rcpt_probe_result r, const char *what)
{
	char line[sizeof(p->why)];
	p->result = r;
	p->step = RCPT_PROBE_DONE;
	snprintf(p->why, sizeof(p->why), "%s: %s", what,
	    smtp_reply_oneline(&p->reply, line, sizeof(line)));
	rcpt_probe_send(p, "QUIT");
}

/* The reply to the current step is complete: the next command, or the end. */
static void
rcpt_probe_step(struct rcpt_probe *p)
{
	static const char *const step_name[] = {
		[RCPT_PROBE_GREETING] = "greeting", [RCPT_PROBE_HELLO] = "hello",
		[RCPT_PROBE_MAIL] = "MAIL", [RCPT_PROBE_RCPT] = "RCPT",
	};
	static const int want[] = {
		[RCPT_PROBE_GREETING] = 220, [RCPT_PROBE_HELLO] = 250, [RCPT_PROBE_MAIL] = 250,
	};
	int code = p->reply.code;
	char *cmd;

	if (p->step == RCPT_PROBE_RCPT) {
		rcpt_probe_end(p, code < 300 ? RCPT_PROBE_ACCEPTED : code >= 500 ?
		    RCPT_PROBE_REJECTED : RCPT_PROBE_FAILED, step_name[p->step]);
		return;
	}
	if (code != want[p->step]) {
		rcpt_probe_end(p, RCPT_PROBE_FAILED, step_name[p->step]);
		return;
	}
	if (p->step == RCPT_PROBE_GREETING)
		rcpt_probe_send(p, p->hello);
	else if (p->step == RCPT_PROBE_HELLO)
		/* An internationalized address needs SMTPUTF8 on MAIL (RFC 6531);
		 * a next hop without it refuses MAIL: FAILED, not a verdict. */
		rcpt_probe_send(p, smtp_parser_has_utf8(p->addr) ? "MAIL FROM:<> SMTPUTF8" :
		    "MAIL FROM:<>");
	else {
		cmd = xasprintf("RCPT TO:<%s>", p->addr);
		rcpt_probe_send(p, cmd);
		free(cmd);
	}
	p->step++;
}

int
rcpt_probe_input(struct rcpt_probe *p, const char *buf, size_t len, size_t *consumed)
{
	size_t pos = 0, used;

	while (p->step != RCPT_PROBE_DONE && pos < len) {
		int rc = smtp_reply_parse(&p->parser, buf + pos, len - pos, &used);
		pos += used;
		if (rc == SMTP_REPLY_MORE)
			break;
		if (rc < 0) {
			rcpt_probe_fail(p, "the next hop's reply does not parse");
			break;
		}
		rcpt_probe_step(p);
		smtp_reply_parser_init(&p->parser, &p->reply);
	}
	if (p->step == RCPT_PROBE_DONE)
		pos = len;	/* what follows the deciding reply does not matter */
	*consumed = pos;
	return p->step == RCPT_PROBE_DONE;
}

const char *
rcpt_probe_output(const struct rcpt_probe *p, size_t *len)
{
	*len = p->out.len;
	return p->out.len ? p->out.data : "";
}

void
rcpt_probe_sent(struct rcpt_probe *p, size_t n)
{
	buf_consume(&p->out, n < p->out.len ? n : p->out.len);
}

void
rcpt_probe_fail(struct rcpt_probe *p, const char *why)
{
	if (p->step == RCPT_PROBE_DONE)
		return;
	p->result = RCPT_PROBE_FAILED;
	p->step = RCPT_PROBE_DONE;
	snprintf(p->why, sizeof(p->why), "%s", why);
}
