/* A key rollover's look at an authoritative server (controld/rollover_dns.h):
 * whatever the server sends back, as ldns parses it. Reading an answer must
 * never crash, leak or read past it; what it concludes is consistent: a key
 * is seen only in an answer that counts, and stepping a rollover with that
 * observation leaves a state that encodes and decodes again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "rollover.h"
#include "rollover_dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY_OLD "e742715ab0901ecfd992e41a112b13784b41b228693f1d80876df66da2b6eb6d"
#define KEY_NEW "8bf026556e25434f0123456789abcdef0123456789abcdef0123456789abcdef"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rollover r;
	struct rollover_server_obs o;
	struct rollover_action act;
	struct rollover_obs obs;
	const char *served[1] = { KEY_OLD };
	char err[ROLLOVER_ERR_MAX];
	ldns_pkt *pkt = NULL;

	if (ldns_wire2pkt(&pkt, data, size) != LDNS_STATUS_OK)
		return 0;
	if (rollover_start(&r, "mx1", KEY_OLD, KEY_NEW, 1000, err, sizeof(err)) < 0)
		abort();
	/* The state from the last byte: the answer is read in any of them. */
	r.state = size ? (enum rollover_state)(data[size - 1] % (ROLLOVER_RETIRE + 1)) :
	    ROLLOVER_PUBLISH;
	memset(&o, 0, sizeof(o));
	o.name = "192.0.2.53";
	rollover_dns_answer(pkt, &r, &o);
	if (!o.answered && (o.has_old || o.has_new || o.ttl))
		abort();
	memset(&obs, 0, sizeof(obs));
	obs.servers = &o;
	obs.nservers = 1;
	obs.served_spki = served;
	obs.nserved = 1;
	obs.next_spki = KEY_NEW;
	if (rollover_step(&r, &obs, 2000, &act) == 0) {
		char *text = rollover_encode(&r);
		struct rollover back;
		if (rollover_decode(text, strlen(text), &back, err, sizeof(err)) != 0)
			abort();
		free(text);
	}
	ldns_pkt_free(pkt);
	return 0;
}
