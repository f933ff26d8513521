/* A host's stored rollover state (controld/rollover.h) as read back from
 * PostgreSQL: a row edited by hand, cut short, or from another version.
 * Decoding must refuse or accept, never crash, leak or read past the input;
 * a refusal says why in one printable line and leaves the state zeroed.
 * What is accepted is canonical: encoding it gives the input back. And the
 * state machine keeps it storable: stepping an accepted state with
 * observations drawn from the input always succeeds, and every state it
 * reaches encodes to text that decodes again, with a printable status. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rollover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void
check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			abort();
}

static void
check_storable(const struct rollover *r)
{
	char *text = rollover_encode(r), err[ROLLOVER_ERR_MAX];
	struct rollover back;

	if (strlen(text) >= ROLLOVER_TEXT_MAX ||
	    rollover_decode(text, strlen(text), &back, err, sizeof(err)) != 0)
		abort();
	check_printable(back.status);
	free(text);
}

/* Observations from the bits of h: two servers, the host's report. */
static void
step_all(struct rollover *r, uint64_t h)
{
	struct rollover_server_obs ns[2];
	const char *served[2];
	struct rollover_obs o;
	struct rollover_action a;
	int64_t now = r->last_obs;

	for (int i = 0; i < 16; i++, h = h * 6364136223846793005ull + 1442695040888963407ull) {
		for (int s = 0; s < 2; s++)
			ns[s] = (struct rollover_server_obs){ s ? "ns2" : "ns1",
			    (int)(h >> (s * 4) & 1) | (int)(h >> 20 & 1), (int)(h >> (s * 4 + 1) & 1),
			    (int)(h >> (s * 4 + 2) & 1), (uint32_t)(h >> 32) >> (h >> 8 & 31) };
		served[0] = h >> 10 & 1 ? r->old_spki : r->new_spki;
		served[1] = h >> 11 & 1 ? r->new_spki : KEY_A;
		o = (struct rollover_obs){ ns, (size_t)(h >> 12 & 3) % 3, (uint32_t)(h >> 14 & 1023),
		    served, (size_t)(h >> 24 & 3) % 3,
		    h >> 26 & 1 ? r->new_spki : h >> 27 & 1 ? KEY_A : "", (int)(h >> 28 & 1),
		    h >> 29 & 1 ? "/etc/mxd/next.crt\n" : NULL };
		/* Forwards mostly, sometimes back. */
		now += (int64_t)(h >> 40 & 4095) - (h >> 30 & 1 ? 2048 : 0);
		if (now < 0)
			now = 0;
		if (now >= ROLLOVER_TIME_MAX)
			now = ROLLOVER_TIME_MAX - 1;
		if (rollover_step(r, &o, now, &a) != 0)
			abort();
		if (a.what != ROLLOVER_NOTHING && a.what != ROLLOVER_PUSH &&
		    a.what != ROLLOVER_SWITCH_HOST)
			abort();
		if ((r->state == ROLLOVER_DONE) != (a.next_check == 0))
			abort();
		check_storable(r);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rollover r;
	char err[ROLLOVER_ERR_MAX] = "", *text;
	uint64_t h = 14695981039346656037ull;

	if (rollover_decode((const char *)data, size, &r, err, sizeof(err)) != 0) {
		if (err[0] == '\0' || strlen(err) >= sizeof(err) || r.host[0] != '\0' ||
		    r.state != 0)
			abort();
		check_printable(err);
		return 0;
	}
	text = rollover_encode(&r);
	if (strlen(text) != size || memcmp(text, data, size) != 0)
		abort();
	free(text);
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;
	step_all(&r, h);
	return 0;
}
