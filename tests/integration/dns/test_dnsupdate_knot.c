/* lib/dnsupdate.c against a real primary: knot serving the DNSSEC-signed
 * dynamic zone dyn.test. (it signs what it receives), unbound validating in
 * front, both started by tests/tools/dnstest ("dnstest run test_dnsupdate_knot").
 * What is pushed must resolve through unbound with the AD bit; what is not
 * pushed must leave the zone as it was (the SOA serial on knot tells). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "dnsupdate.h"
#include "dnstest_cmd.h"


static struct dns_resolver *res;
static struct dnsupdate_request base;	/* zone, server and key of the setup */

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define TLSA_A	"8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"
#define TLSA_B	"1111111111111111111111111111111111111111111111111111111111111111"

/* Forget what unbound learnt of dyn.test., so the next lookup asks knot. */
static void
flush(void)
{
	dnstest("control", (const char *[]){ "unbound", "flush_zone", "dyn.test.", NULL });
}

/* The serial of dyn.test. on knot itself (not through the cache). */
static uint32_t
server_serial(void)
{
	const char *srv = getenv("DNSTEST_UPDATE_SERVER");
	char host[64];
	const char *colon = strrchr(srv, ':');
	ldns_resolver *r = ldns_resolver_new();
	ldns_rdf *ns, *name = ldns_dname_new_frm_str("dyn.test.");
	ldns_pkt *a;
	uint32_t serial;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - srv), srv);
	ns = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, host);
	assert_int_equal(ldns_resolver_push_nameserver(r, ns), LDNS_STATUS_OK);
	ldns_resolver_set_port(r, (uint16_t)atoi(colon + 1));
	ldns_resolver_set_recursive(r, false);
	ldns_resolver_set_usevc(r, true);
	a = ldns_resolver_query(r, name, LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0);
	assert_non_null(a);
	ldns_rr_list *soa = ldns_pkt_rr_list_by_type(a, LDNS_RR_TYPE_SOA, LDNS_SECTION_ANSWER);
	assert_non_null(soa);
	serial = ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(soa, 0), 2));
	ldns_rr_list_deep_free(soa);
	ldns_pkt_free(a);
	ldns_rdf_deep_free(name);
	ldns_rdf_deep_free(ns);
	ldns_resolver_deep_free(r);
	return serial;
}

#define assert_secure(st, res_) do {							\
	if ((st).result != (res_) || (st).sec != DNS_SEC_SECURE)			\
		fail_msg("%s: got %s/%s, want %s/secure (error: %s)", #st,		\
		    dns_result_str((st).result), dns_sec_str((st).sec),			\
		    dns_result_str(res_), (st).error);					\
} while (0)

/* The records of a mail domain D.dyn.test.: MX, the MX host's A, its TLSA
 * 3 1 1, and a DKIM-like TXT of two long strings (255 + 100 characters). */
struct rrs {
	char	mx[128], a[128], tlsa[256], txt[512];
	const char *lines[4];
};

static void
rrs_make(struct rrs *r, const char *d, const char *addr, const char *tlsa)
{
	char s1[256], s2[101];

	memset(s1, 'k', 255);
	s1[255] = '\0';
	memset(s2, 'p', 100);
	s2[100] = '\0';
	snprintf(r->mx, sizeof(r->mx), "%s.dyn.test. 300 IN MX 10 mx1.%s.dyn.test.", d, d);
	snprintf(r->a, sizeof(r->a), "mx1.%s.dyn.test. 300 IN A %s", d, addr);
	snprintf(r->tlsa, sizeof(r->tlsa), "_25._tcp.mx1.%s.dyn.test. 300 IN TLSA 3 1 1 %s", d,
	    tlsa);
	snprintf(r->txt, sizeof(r->txt), "sel._domainkey.%s.dyn.test. 300 IN TXT \"%s\" \"%s\"",
	    d, s1, s2);
	r->lines[0] = r->mx;
	r->lines[1] = r->a;
	r->lines[2] = r->tlsa;
	r->lines[3] = r->txt;
}

static enum dnsupdate_status
push(const char *const *lines, size_t n, const struct dnsupdate_pair *managed, size_t nm,
    int dry_run, struct dnsupdate_result *out)
{
	struct dnsupdate_request req = base;

	req.desired = lines;
	req.n_desired = n;
	req.managed = managed;
	req.n_managed = nm;
	req.dry_run = dry_run;
	enum dnsupdate_status st = dnsupdate_push(&req, out);
	if (st != DNSUPDATE_OK)
		fprintf(stderr, "push: %s: %s\n", dnsupdate_status_str(st), out->error);
	return st;
}

static int
has_addr(const struct dns_addr_result *ar, const char *text)
{
	unsigned char want[4];

	assert_int_equal(inet_pton(AF_INET, text, want), 1);
	for (size_t i = 0; i < ar->n; i++)
		if (ar->addrs[i].family == AF_INET && memcmp(ar->addrs[i].addr, want, 4) == 0)
			return 1;
	return 0;
}

/* Through unbound: the domain's records as rrs_make made them, all secure. */
static void
assert_published(const char *d, const char *addr, const char *tlsa_hex)
{
	char name[256];
	struct dns_mx_result mr;
	struct dns_addr_result ar;
	struct dns_tlsa_result tr;
	struct dns_txt_result xr;

	flush();
	snprintf(name, sizeof(name), "%s.dyn.test", d);
	assert_int_equal(dns_mx(res, name, &mr), DNS_OK);
	assert_secure(mr.st, DNS_OK);
	assert_int_equal(mr.n, 1);
	snprintf(name, sizeof(name), "mx1.%s.dyn.test", d);
	assert_string_equal(mr.mx[0].host, name);
	dns_mx_result_free(&mr);

	assert_int_equal(dns_addrs(res, name, DNS_ADDR_V4, &ar), DNS_OK);
	assert_secure(ar.st, DNS_OK);
	assert_int_equal(ar.n, 1);
	assert_true(has_addr(&ar, addr));
	dns_addr_result_free(&ar);

	snprintf(name, sizeof(name), "_25._tcp.mx1.%s.dyn.test", d);
	assert_int_equal(dns_tlsa(res, name, &tr), DNS_OK);
	assert_secure(tr.st, DNS_OK);
	assert_int_equal(tr.n, 1);
	assert_int_equal(tr.rr[0].usage, 3);
	assert_int_equal(tr.rr[0].selector, 1);
	assert_int_equal(tr.rr[0].mtype, 1);
	assert_int_equal(tr.rr[0].len, 32);
	char got[65];
	for (size_t i = 0; i < 32; i++)
		snprintf(got + 2 * i, 3, "%02x", tr.rr[0].data[i]);
	assert_string_equal(got, tlsa_hex);
	dns_tlsa_result_free(&tr);

	snprintf(name, sizeof(name), "sel._domainkey.%s.dyn.test", d);
	assert_int_equal(dns_txt(res, name, &xr), DNS_OK);
	assert_secure(xr.st, DNS_OK);
	assert_int_equal(xr.n, 1);
	assert_int_equal(xr.len[0], 355);
	assert_int_equal(xr.txt[0][0], 'k');
	assert_int_equal(xr.txt[0][354], 'p');
	dns_txt_result_free(&xr);
}

/* ------------------------------------------------------------------ tests */

static void
test_push_publishes_records_that_validate(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;
	uint32_t before = server_serial();

	rrs_make(&r, "one", "192.0.2.11", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 1);
	assert_int_equal(out.n_added, 4);
	assert_int_equal(out.n_deleted, 0);
	dnsupdate_result_free(&out);
	assert_true(server_serial() != before);
	assert_published("one", "192.0.2.11", TLSA_A);
}

static void
test_second_push_sends_nothing(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;

	rrs_make(&r, "two", "192.0.2.21", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 1);
	dnsupdate_result_free(&out);
	uint32_t serial = server_serial();

	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 0);
	assert_int_equal(out.n_added, 0);
	assert_int_equal(out.n_deleted, 0);
	dnsupdate_result_free(&out);
	assert_int_equal(server_serial(), serial);
	assert_published("two", "192.0.2.21", TLSA_A);
}

static void
test_change_sends_only_the_difference(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;
	struct dns_txt_result xr;

	rrs_make(&r, "three", "192.0.2.31", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	dnsupdate_result_free(&out);

	/* A new TLSA, and the DKIM TXT pair dropped (still managed: it goes). */
	const struct dnsupdate_pair gone[] = { { "sel._domainkey.three.dyn.test.", "TXT" } };
	rrs_make(&r, "three", "192.0.2.31", TLSA_B);
	assert_int_equal(push(r.lines, 3, gone, 1, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 1);
	assert_int_equal(out.n_added, 1);
	assert_non_null(strcasestr(out.added[0], TLSA_B));
	assert_int_equal(out.n_deleted, 2);
	assert_true((strcasestr(out.deleted[0], TLSA_A) && strstr(out.deleted[1], "kkkk")) ||
	    (strcasestr(out.deleted[1], TLSA_A) && strstr(out.deleted[0], "kkkk")));
	dnsupdate_result_free(&out);

	flush();
	struct dns_tlsa_result tr;
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx1.three.dyn.test", &tr), DNS_OK);
	assert_secure(tr.st, DNS_OK);
	assert_int_equal(tr.n, 1);
	assert_int_equal(tr.rr[0].data[0], 0x11);
	dns_tlsa_result_free(&tr);
	assert_int_equal(dns_txt(res, "sel._domainkey.three.dyn.test", &xr), DNS_NXDOMAIN);
	assert_int_equal(xr.st.sec, DNS_SEC_SECURE);
	dns_txt_result_free(&xr);
}

static void
test_records_of_others_are_left_alone(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;
	struct dns_addr_result ar;
	struct dns_txt_result xr;

	rrs_make(&r, "four", "192.0.2.41", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	dnsupdate_result_free(&out);
	/* Someone else: a TXT at the MX host (we manage its A only), an A
	 * elsewhere in the zone. */
	dnstest("add", (const char *[]){ "mx1.four.dyn.test. 300 IN TXT \"theirs\"",
	    "www.four.dyn.test. 300 IN A 192.0.2.99", NULL });
	uint32_t serial = server_serial();

	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 0);
	assert_int_equal(out.n_added + out.n_deleted, 0);
	dnsupdate_result_free(&out);
	assert_int_equal(server_serial(), serial);

	flush();
	assert_int_equal(dns_txt(res, "mx1.four.dyn.test", &xr), DNS_OK);
	assert_secure(xr.st, DNS_OK);
	assert_int_equal(xr.n, 1);
	assert_string_equal(xr.txt[0], "theirs");
	dns_txt_result_free(&xr);
	assert_int_equal(dns_addrs(res, "www.four.dyn.test", DNS_ADDR_V4, &ar), DNS_OK);
	assert_true(has_addr(&ar, "192.0.2.99"));
	dns_addr_result_free(&ar);
	assert_published("four", "192.0.2.41", TLSA_A);
}

static void
test_wrong_secret_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;
	struct dnsupdate_request req = base;

	rrs_make(&r, "five", "192.0.2.51", TLSA_A);
	uint32_t serial = server_serial();
	req.key.secret = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=";
	req.desired = r.lines;
	req.n_desired = 4;
	assert_int_equal(dnsupdate_push(&req, &out), DNSUPDATE_ETSIG);
	assert_int_equal(out.sent, 0);
	if (strstr(out.error, "BADSIG") == NULL || strstr(out.error, "TSIG") == NULL)
		fail_msg("error does not name the cause: %s", out.error);
	assert_null(strstr(out.error, req.key.secret));
	assert_null(strstr(out.error, base.key.secret));
	dnsupdate_result_free(&out);

	/* A key the server does not know at all. */
	req.key = base.key;
	req.key.name = "nosuchkey.";
	assert_int_equal(dnsupdate_push(&req, &out), DNSUPDATE_ETSIG);
	assert_non_null(strstr(out.error, "BADKEY"));
	dnsupdate_result_free(&out);

	assert_int_equal(server_serial(), serial);
	struct dns_mx_result mr;
	flush();
	assert_int_equal(dns_mx(res, "five.dyn.test", &mr), DNS_NXDOMAIN);
	dns_mx_result_free(&mr);
}

static void
test_dry_run_reports_the_difference_and_changes_nothing(void **state)
{
	(void)state;
	struct rrs r;
	struct dnsupdate_result out;

	rrs_make(&r, "six", "192.0.2.61", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 0, &out), DNSUPDATE_OK);
	dnsupdate_result_free(&out);
	uint32_t serial = server_serial();

	rrs_make(&r, "six", "192.0.2.62", TLSA_A);
	assert_int_equal(push(r.lines, 4, NULL, 0, 1, &out), DNSUPDATE_OK);
	assert_int_equal(out.sent, 0);
	assert_int_equal(out.n_added, 1);
	assert_int_equal(out.n_deleted, 1);
	assert_non_null(strstr(out.added[0], "192.0.2.62"));
	assert_non_null(strstr(out.deleted[0], "192.0.2.61"));
	dnsupdate_result_free(&out);
	assert_int_equal(server_serial(), serial);
	assert_published("six", "192.0.2.61", TLSA_A);
}

static void
test_ttl_change_is_published(void **state)
{
	(void)state;
	const char *v1[] = { "ttl.dyn.test. 300 IN A 192.0.2.71",
			     "ttl.dyn.test. 300 IN A 192.0.2.72" };
	const char *v2[] = { "ttl.dyn.test. 120 IN A 192.0.2.71",
			     "ttl.dyn.test. 120 IN A 192.0.2.72" };
	struct dnsupdate_result out;

	assert_int_equal(push(v1, 2, NULL, 0, 0, &out), DNSUPDATE_OK);
	dnsupdate_result_free(&out);
	assert_int_equal(push(v2, 2, NULL, 0, 0, &out), DNSUPDATE_OK);
	assert_int_equal(out.n_added, 2);
	assert_int_equal(out.n_deleted, 2);
	dnsupdate_result_free(&out);
	/* Read back from the primary: the new TTL, both addresses, nothing more. */
	assert_int_equal(push(v2, 2, NULL, 0, 1, &out), DNSUPDATE_OK);
	assert_int_equal(out.n_added + out.n_deleted, 0);
	dnsupdate_result_free(&out);
}

static void
test_owner_outside_the_zone_is_refused(void **state)
{
	(void)state;
	const char *v[] = { "mx.example.test. 300 IN A 192.0.2.81" };
	struct dnsupdate_result out;

	assert_int_equal(push(v, 1, NULL, 0, 0, &out), DNSUPDATE_EINVAL);
	assert_non_null(strstr(out.error, "outside the zone dyn.test."));
	dnsupdate_result_free(&out);
}

static int
setup(void **state)
{
	(void)state;
	const char *ns = getenv("DNSTEST_RESOLVER");
	char err[256];

	if (ns == NULL || getenv("DNSTEST_UPDATE_SERVER") == NULL) {
		fprintf(stderr, "run me as: tests/tools/dnstest run test_dnsupdate_knot\n");
		return -1;
	}
	res = dns_resolver_new(ns, 2000, 3, err, sizeof(err));
	if (res == NULL) {
		fprintf(stderr, "dns_resolver_new(%s): %s\n", ns, err);
		return -1;
	}
	base.zone = getenv("DNSTEST_ZONE_DYNAMIC");
	base.server = getenv("DNSTEST_UPDATE_SERVER");
	base.key.name = getenv("DNSTEST_TSIG_NAME");
	base.key.algorithm = getenv("DNSTEST_TSIG_ALG");
	base.key.secret = getenv("DNSTEST_TSIG_SECRET");
	base.timeout_ms = 10000;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dns_resolver_free(res);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_publishes_records_that_validate),
		cmocka_unit_test(test_second_push_sends_nothing),
		cmocka_unit_test(test_change_sends_only_the_difference),
		cmocka_unit_test(test_records_of_others_are_left_alone),
		cmocka_unit_test(test_wrong_secret_is_refused_and_changes_nothing),
		cmocka_unit_test(test_dry_run_reports_the_difference_and_changes_nothing),
		cmocka_unit_test(test_ttl_change_is_published),
		cmocka_unit_test(test_owner_outside_the_zone_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
