/* dnsupdate_diff, the I/O-free half of an RFC 2136 push, on hostile record
 * text. The input is lines: the first names the zone; "+LINE" is a desired
 * record, "=LINE" a live one, "~OWNER TYPE" a managed pair; other lines are
 * ignored. Never crash or leak; a refusal says why in one line of printable
 * ASCII; the difference never holds more than it was given; and the diff of
 * the desired records against themselves as the live ones is empty (a second
 * push sends nothing). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsupdate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *desired[MAX_LINES], *live[MAX_LINES];
	struct dnsupdate_pair managed[MAX_LINES];
	size_t nd = 0, nl = 0, nm = 0;
	struct dnsupdate_result r;
	char *text, *zone, *save = NULL;

	if (size > 8192)
		return 0;
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	zone = strtok_r(text, "\n", &save);
	if (zone == NULL) {
		free(text);
		return 0;
	}
	for (char *l; (l = strtok_r(NULL, "\n", &save)) != NULL;) {
		if (l[0] == '+' && nd < MAX_LINES)
			desired[nd++] = l + 1;
		else if (l[0] == '=' && nl < MAX_LINES)
			live[nl++] = l + 1;
		else if (l[0] == '~' && nm < MAX_LINES) {
			char *sp = strchr(l, ' ');
			if (sp == NULL)
				continue;
			*sp = '\0';
			managed[nm].owner = l + 1;
			managed[nm++].type = sp + 1;
		}
	}
	enum dnsupdate_status st = dnsupdate_diff(zone, desired, nd, managed, nm, live, nl, &r);
	if (st != DNSUPDATE_OK) {
		if (st != DNSUPDATE_EINVAL || r.error[0] == '\0' || r.n_added || r.n_deleted)
			abort();
		for (const char *p = r.error; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
	} else if (r.n_added > nd || r.n_deleted > nl) {
		abort();
	}
	dnsupdate_result_free(&r);
	if (st == DNSUPDATE_OK) {
		if (dnsupdate_diff(zone, desired, nd, managed, nm, desired, nd, &r) != DNSUPDATE_OK ||
		    r.n_added != 0 || r.n_deleted != 0)
			abort();
		dnsupdate_result_free(&r);
	}
	free(text);
	return 0;
}
