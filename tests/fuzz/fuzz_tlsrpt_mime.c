/* A received mail, as controld reads a TLS report out of it
 * (controld/tlsrpt_mime.c). Never crash, leak or read outside the input;
 * a refusal says why in printable text; an accepted mail has a report no
 * longer than the mail, a lower-case media type, and header values that
 * are one line of well-formed UTF-8 without control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt_mime.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_text(const char *s)
{
	if (s == NULL)
		return;
	size_t n = strlen(s);
	if (n > TLSRPT_MIME_HEADER_MAX || !utf8_valid((const unsigned char *)s, n))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
	if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TLSRPT_MIME_ERR_MAX];
	struct tlsrpt_mime m;

	if (tlsrpt_mime_extract(data, size, &m, err, sizeof(err)) < 0) {
		if (err[0] == '\0' || m.report != NULL)
			abort();
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20)
				abort();
		return 0;
	}
	if (m.report == NULL || m.report_len > size || m.content_type == NULL)
		abort();
	for (const char *p = m.content_type; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	check_text(m.from);
	check_text(m.message_id);
	check_text(m.subject);
	check_text(m.report_domain);
	check_text(m.report_submitter);
	tlsrpt_mime_free(&m);
	return 0;
}
