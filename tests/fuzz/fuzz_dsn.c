/* DSNs built from hostile input (dsn_build): the next hop's reply text,
 * recipients, the sender, ENVID, ORCPT, status, the remote MTA's name and
 * the original message are all the attacker's. Whatever they hold, the
 * notice must be well-formed mail (dsn_wellformed.h): CRLF line ends only,
 * no NUL, lines of at most 998 octets, header sections of fields and
 * continuation lines, a MIME boundary only on its delimiter lines, and a
 * message/delivery-status part of per-message fields, a blank line, and
 * one block of per-recipient fields for each recipient (RFC 3464 2.1).
 *
 * Input: byte 0 = flags (bits 0-1 RET, 2 SMTPUTF8, 3 BODY=8BITMIME, 4
 * REQUIRETLS, 5 ENVID given, 6 original readable); byte 1 = kind (bits
 * 0-1: failed, delayed, delivered, relayed) and recipients - 1 (bits 2-3);
 * then NUL-separated fields: sender, ENVID, original message, and per
 * recipient: address, status, remote MTA ("" = none), reply (lines
 * separated by LF), ORCPT ("" = none). Missing fields are empty. The
 * original's lines get CRLF ends, as the spool holds them (the SMTP server
 * refuses bare CR and LF). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsn.h"
#include "dsn_wellformed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RCPTS_MAX	4
#define FIELDS		(3 + 5 * RCPTS_MAX)

static int content_fd = -1;

/* The original as the spool holds it: every line ended by CRLF. */
static size_t
spool_content(const char *s, struct buf *out)
{
	buf_reset(out);
	while (*s) {
		size_t n = strcspn(s, "\r\n");
		buf_append(out, s, n);
		buf_appends(out, "\r\n");
		s += n;
		if (*s == '\r')
			s++;
		if (*s == '\n')
			s++;
	}
	return out->len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (content_fd < 0 && (content_fd = memfd_create("fuzz_dsn", 0)) < 0)
		abort();

	/* Split the rest into NUL-terminated fields. */
	char *text = malloc(size - 2 + 1);
	memcpy(text, data + 2, size - 2);
	text[size - 2] = '\0';
	const char *f[FIELDS];
	char *p = text, *end = text + (size - 2);
	for (size_t i = 0; i < FIELDS; i++) {
		f[i] = p < end ? p : "";
		if (p < end)
			p += strlen(p) + 1;
	}

	unsigned flags = data[0];
	struct spool_env env;
	memset(&env, 0, sizeof(env));
	strcpy(env.id, "FUZZ0000001");
	env.created = 1700000000;
	env.from = (char *)f[0];
	env.ret = (int)(flags & 3) % 3;
	env.smtputf8 = (flags >> 2) & 1;
	env.body8bit = (flags >> 3) & 1;
	env.requiretls = (flags >> 4) & 1;
	env.envid = (flags >> 5) & 1 ? (char *)f[1] : NULL;

	struct buf content;
	buf_init(&content);
	env.size = spool_content(f[2], &content);
	int fd = -1;
	if ((flags >> 6) & 1) {
		if (ftruncate(content_fd, 0) < 0 ||
		    pwrite(content_fd, content.data ? content.data : "", content.len, 0) !=
		    (ssize_t)content.len)
			abort();
		fd = content_fd;
	}

	size_t n = 1 + ((data[1] >> 2) & 3);
	struct dsn_rcpt r[RCPTS_MAX];
	char *rcpts[RCPTS_MAX];
	for (size_t i = 0; i < n; i++) {
		const char *const *g = f + 3 + 5 * i;
		r[i].rcpt = g[0];
		rcpts[i] = (char *)g[0];
		r[i].status = g[1];
		r[i].remote_mta = g[2][0] ? g[2] : NULL;
		r[i].reply = g[3];
		r[i].action = (enum dsn_action)(data[1] & 3);
		r[i].orcpt = g[4][0] ? g[4] : NULL;
	}
	env.rcpts = rcpts;
	env.nrcpts = n;

	struct buf out;
	buf_init(&out);
	dsn_build(&out, "mx.example.test", &env, r, n, fd, 0);
	const char *why = dsn_wellformed(out.data, out.len, n, env.smtputf8);
	if (why) {
		fprintf(stderr, "fuzz_dsn: not well-formed: %s\n%.*s\n", why, (int)out.len, out.data);
		abort();
	}
	buf_free(&out);
	buf_free(&content);
	free(text);
	return 0;
}
