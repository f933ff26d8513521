/* An outbound session's TLS report fields (deliver_tlsrpt.h). */
#include "deliver_tlsrpt.h"

#include <string.h>
#include <strings.h>

int
deliver_tlsrpt_sender_is(const char *sender, const char *tlsrpt_sender)
{
	if (sender == NULL || tlsrpt_sender == NULL || tlsrpt_sender[0] == '\0')
		return 0;
	return strcasecmp(sender, tlsrpt_sender) == 0;
}

/* Append s to out[*len], printable, white space runs as one space. */
static void
deliver_tlsrpt_append(char *out, size_t cap, size_t *len, const char *s)
{
	for (; *s && *len < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			if (*len > 0 && out[*len - 1] != ' ')
				out[(*len)++] = ' ';
			continue;
		}
		out[(*len)++] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
	}
}

void
deliver_tlsrpt_reason(char *out, size_t outsz, const char *tls_reason, const char *failure)
{
	size_t cap, len = 0;

	if (outsz == 0)
		return;
	cap = outsz - 1 < DELIVER_TLSRPT_REASON_MAX ? outsz - 1 : DELIVER_TLSRPT_REASON_MAX;
	if (tls_reason == NULL)
		tls_reason = "";
	if (failure == NULL)
		failure = "";
	if (tls_reason[0] && strstr(failure, tls_reason) == NULL) {
		deliver_tlsrpt_append(out, cap, &len, tls_reason);
		if (failure[0])
			deliver_tlsrpt_append(out, cap, &len, ": ");
	}
	deliver_tlsrpt_append(out, cap, &len, failure);
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
}
