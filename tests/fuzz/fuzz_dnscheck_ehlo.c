/* What dns check reads from a server during its live STARTTLS: the reply to
 * EHLO, taken by the delivery client's parser, then searched for the
 * STARTTLS keyword (dnscheck_probe_has_starttls); and the TXT text it
 * compares, unquoted from presentation form (dnscheck_txt_unquote). The
 * search must stay inside the text and agree with a plain line-by-line
 * reading; the unquoted text is never longer than its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnscheck_int.h"
#include "smtp_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The same question answered the slow way: a line of "ddd" + sep + STARTTLS,
 * optionally followed by spaces or a CR. */
static int
slow_has_starttls(const char *t, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '\n')
			continue;
		size_t l = i - start;
		const char *p = t + start;
		if (l >= 12 && strncasecmp(p + 4, "STARTTLS", 8) == 0 &&
		    (l == 12 || p[12] == ' ' || p[12] == '\r'))
			return 1;
		start = i + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	struct smtp_reply_parser p;
	size_t used = 0;
	char *copy;

	/* Exactly size bytes: the search must not read past them. */
	copy = malloc(size ? size : 1);
	if (size)
		memcpy(copy, data, size);
	if (dnscheck_probe_has_starttls(copy, size) != slow_has_starttls(copy, size))
		abort();
	free(copy);

	smtp_reply_init(&r);
	smtp_reply_parser_init(&p, &r);
	if (smtp_reply_parse(&p, (const char *)data, size, &used) == SMTP_REPLY_DONE &&
	    dnscheck_probe_has_starttls(r.text.data, r.text.len) !=
	    slow_has_starttls(r.text.data, r.text.len))
		abort();
	smtp_reply_free(&r);

	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *u = dnscheck_txt_unquote(copy);
	if (strlen(u) > strlen(copy))
		abort();
	free(u);
	free(copy);
	return 0;
}
