/* What a key rollover reads from an authoritative server's answer
 * (controld/rollover_dns.h): only an authoritative answer counts, a TLSA
 * 3 1 1 record names a key only by its exact SHA-256, and the TTL is the
 * longest served. Answers are built as wire bytes, as a server sends them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "rollover.h"
#include "rollover_dns.h"

#define KEY_OLD "e742715ab0901ecfd992e41a112b13784b41b228693f1d80876df66da2b6eb6d"
#define KEY_NEW "8bf026556e25434f0123456789abcdef0123456789abcdef0123456789abcdef"

#define FLAG_QR_AA	0x8400
#define FLAG_QR		0x8000

struct tlsa {
	uint8_t		 usage, selector, mtype;
	const char	*hex;
	uint32_t	 ttl;
};

static size_t
put16(uint8_t *p, size_t at, unsigned v)
{
	p[at] = (uint8_t)(v >> 8);
	p[at + 1] = (uint8_t)v;
	return at + 2;
}

/* A reply to "_25._tcp.mx1.dyn.test. TLSA" with the records given. */
static ldns_pkt *
answer(unsigned flags, unsigned rcode, const struct tlsa *rr, size_t n)
{
	static const uint8_t qname[] = "\x03_25\x04_tcp\x03mx1\x03" "dyn\x04test";
	uint8_t w[1024];
	size_t at = 0;
	ldns_pkt *pkt = NULL;

	at = put16(w, at, 0x1234);
	at = put16(w, at, flags | rcode);
	at = put16(w, at, 1);
	at = put16(w, at, (unsigned)n);
	at = put16(w, at, 0);
	at = put16(w, at, 0);
	memcpy(w + at, qname, sizeof(qname));	/* with its final root label */
	at += sizeof(qname);
	at = put16(w, at, 52);
	at = put16(w, at, 1);
	for (size_t i = 0; i < n; i++) {
		at = put16(w, at, 0xc00c);
		at = put16(w, at, 52);
		at = put16(w, at, 1);
		at = put16(w, at, rr[i].ttl >> 16);
		at = put16(w, at, rr[i].ttl & 0xffff);
		at = put16(w, at, 3 + 32);
		w[at++] = rr[i].usage;
		w[at++] = rr[i].selector;
		w[at++] = rr[i].mtype;
		for (size_t k = 0; k < 32; k++) {
			unsigned b;
			sscanf(rr[i].hex + 2 * k, "%2x", &b);
			w[at++] = (uint8_t)b;
		}
	}
	assert_int_equal(ldns_wire2pkt(&pkt, w, at), LDNS_STATUS_OK);
	return pkt;
}

static void
look(ldns_pkt *pkt, struct rollover_server_obs *o)
{
	struct rollover r;
	char err[ROLLOVER_ERR_MAX];

	assert_int_equal(rollover_start(&r, "mx1", KEY_OLD, KEY_NEW, 1000, err, sizeof(err)), 0);
	memset(o, 0, sizeof(*o));
	rollover_dns_answer(pkt, &r, o);
	ldns_pkt_free(pkt);
}

static void
test_authoritative_answer_names_both_keys_with_the_longest_ttl(void **state)
{
	struct tlsa rr[] = { { 3, 1, 1, KEY_OLD, 300 }, { 3, 1, 1, KEY_NEW, 600 } };
	struct rollover_server_obs o;

	(void)state;
	look(answer(FLAG_QR_AA, 0, rr, 2), &o);
	assert_true(o.answered);
	assert_true(o.has_old);
	assert_true(o.has_new);
	assert_int_equal(o.ttl, 600);
}

static void
test_answer_without_aa_counts_for_nothing(void **state)
{
	struct tlsa rr[] = { { 3, 1, 1, KEY_NEW, 300 } };
	struct rollover_server_obs o;

	(void)state;
	look(answer(FLAG_QR, 0, rr, 1), &o);
	assert_false(o.answered);
	assert_false(o.has_new);
}

static void
test_nxdomain_is_an_answer_without_the_keys(void **state)
{
	struct rollover_server_obs o;

	(void)state;
	look(answer(FLAG_QR_AA, 3, NULL, 0), &o);
	assert_true(o.answered);
	assert_false(o.has_old);
	assert_false(o.has_new);
}

static void
test_servfail_and_refused_are_no_answer(void **state)
{
	struct rollover_server_obs o;

	(void)state;
	look(answer(FLAG_QR_AA, 2, NULL, 0), &o);
	assert_false(o.answered);
	look(answer(FLAG_QR_AA, 5, NULL, 0), &o);
	assert_false(o.answered);
}

static void
test_only_3_1_1_records_name_a_key(void **state)
{
	struct tlsa rr[] = { { 2, 1, 1, KEY_NEW, 300 }, { 3, 0, 1, KEY_NEW, 300 },
	    { 3, 1, 2, KEY_NEW, 300 } };
	struct rollover_server_obs o;

	(void)state;
	look(answer(FLAG_QR_AA, 0, rr, 3), &o);
	assert_true(o.answered);
	assert_false(o.has_new);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authoritative_answer_names_both_keys_with_the_longest_ttl),
		cmocka_unit_test(test_answer_without_aa_counts_for_nothing),
		cmocka_unit_test(test_nxdomain_is_an_answer_without_the_keys),
		cmocka_unit_test(test_servfail_and_refused_are_no_answer),
		cmocka_unit_test(test_only_3_1_1_records_name_a_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
