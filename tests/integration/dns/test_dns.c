/* lib/dns.c against nsd + unbound with DNSSEC-signed test zones, started by
 * tests/tools/dnstest (run as "dnstest run test_dns"): the zones are in
 * tests/tools/dnstest.d/zones/, the resolver's address in DNSTEST_RESOLVER. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "dnstest_cmd.h"

static struct dns_resolver *res;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
has_addr(const struct dns_addr_result *ar, const char *text)
{
	struct dns_addr want = { 0 };

	if (inet_pton(AF_INET6, text, want.addr) == 1)
		want.family = AF_INET6;
	else if (inet_pton(AF_INET, text, want.addr) == 1)
		want.family = AF_INET;
	else
		fail_msg("bad address %s", text);
	for (size_t i = 0; i < ar->n; i++)
		if (ar->addrs[i].family == want.family &&
		    memcmp(ar->addrs[i].addr, want.addr, want.family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

static int
has_txt(const struct dns_txt_result *tr, const char *text)
{
	for (size_t i = 0; i < tr->n; i++)
		if (tr->len[i] == strlen(text) && memcmp(tr->txt[i], text, tr->len[i]) == 0)
			return 1;
	return 0;
}

static void
hex(const char *s, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

#define assert_status(st, res_, sec_) do {						\
	if ((st).result != (res_) || (st).sec != (sec_))				\
		fail_msg("%s: got %s/%s, want %s/%s (error: %s)", #st,			\
		    dns_result_str((st).result), dns_sec_str((st).sec),			\
		    dns_result_str(res_), dns_sec_str(sec_), (st).error);		\
} while (0)

static int
setup(void **state)
{
	const char *ns = getenv("DNSTEST_RESOLVER");
	char err[256];

	if (ns == NULL) {
		fprintf(stderr, "run me as: tests/tools/dnstest run %s\n", "test_dns");
		return -1;
	}
	res = dns_resolver_new(ns, 2000, 3, err, sizeof(err));
	if (res == NULL) {
		fprintf(stderr, "dns_resolver_new(%s): %s\n", ns, err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	dns_resolver_free(res);
	return 0;
}

/* ------------------------------------------------------------------ MX */

static void
test_mx_preference_order(void **state)
{
	struct dns_mx_result mr;
	struct dns_addr_result ar;

	assert_int_equal(dns_mx(res, "example.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_SECURE);
	assert_false(mr.null_mx);
	assert_false(mr.implicit);
	assert_int_equal(mr.n, 4);
	assert_int_equal(mr.mx[0].pref, 10);
	assert_string_equal(mr.mx[0].host, "mx1.example.test");
	assert_int_equal(mr.mx[1].pref, 20);
	assert_string_equal(mr.mx[1].host, "mx2.example.test");
	assert_int_equal(mr.mx[2].pref, 30);
	assert_string_equal(mr.mx[2].host, "mxalias.example.test");
	assert_int_equal(mr.mx[3].pref, 40);
	assert_string_equal(mr.mx[3].host, "mx.insecure.test");
	assert_string_equal(mr.st.canon, "example.test");
	assert_true(mr.st.ttl > 0 && mr.st.ttl <= 300);
	assert_string_equal(mr.st.error, "");
	dns_mx_result_free(&mr);

	/* Several addresses per host, IPv6 first, then IPv4. */
	assert_int_equal(dns_addrs(res, "mx1.example.test", DNS_ADDR_ANY, &ar), DNS_OK);
	assert_status(ar.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(ar.n, 4);
	assert_int_equal(ar.addrs[0].family, AF_INET6);
	assert_int_equal(ar.addrs[1].family, AF_INET6);
	assert_int_equal(ar.addrs[2].family, AF_INET);
	assert_int_equal(ar.addrs[3].family, AF_INET);
	assert_true(has_addr(&ar, "::1"));
	assert_true(has_addr(&ar, "2001:db8::11"));
	assert_true(has_addr(&ar, "127.0.0.11"));
	assert_true(has_addr(&ar, "127.0.0.12"));
	dns_addr_result_free(&ar);

	/* One family only. */
	assert_int_equal(dns_addrs(res, "mx2.example.test", DNS_ADDR_V4, &ar), DNS_OK);
	assert_int_equal(ar.n, 1);
	assert_true(has_addr(&ar, "127.0.0.21"));
	dns_addr_result_free(&ar);
	assert_int_equal(dns_addrs(res, "mx2.example.test", DNS_ADDR_V6, &ar), DNS_OK);
	assert_int_equal(ar.n, 1);
	assert_true(has_addr(&ar, "2001:db8::21"));
	dns_addr_result_free(&ar);

	/* A trailing dot and upper case are the same name. */
	assert_int_equal(dns_mx(res, "EXAMPLE.test.", &mr), DNS_OK);
	assert_int_equal(mr.n, 4);
	assert_string_equal(mr.mx[0].host, "mx1.example.test");
	dns_mx_result_free(&mr);
}

static void
test_mx_host_cname(void **state)
{
	struct dns_addr_result ar;

	assert_int_equal(dns_addrs(res, "mxalias.example.test", DNS_ADDR_ANY, &ar), DNS_OK);
	assert_status(ar.st, DNS_OK, DNS_SEC_SECURE);
	assert_string_equal(ar.st.canon, "mx1.example.test");
	assert_int_equal(ar.n, 4);
	assert_true(has_addr(&ar, "127.0.0.11"));
	assert_true(has_addr(&ar, "::1"));
	dns_addr_result_free(&ar);
}

static void
test_mx_domain_cname(void **state)
{
	struct dns_mx_result mr;

	assert_int_equal(dns_mx(res, "alias.example.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_SECURE);
	assert_string_equal(mr.st.canon, "example.test");
	assert_int_equal(mr.n, 4);
	assert_string_equal(mr.mx[0].host, "mx1.example.test");
	dns_mx_result_free(&mr);
}

static void
test_null_mx(void **state)
{
	struct dns_mx_result mr;

	/* RFC 7505: even with an A record, the domain accepts no mail. */
	assert_int_equal(dns_mx(res, "nullmx.example.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_SECURE);
	assert_true(mr.null_mx);
	assert_false(mr.implicit);
	assert_int_equal(mr.n, 0);
	assert_null(mr.mx);
	dns_mx_result_free(&mr);
}

static void
test_implicit_mx(void **state)
{
	struct dns_mx_result mr;

	assert_int_equal(dns_mx(res, "implicit.example.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_SECURE);
	assert_true(mr.implicit);
	assert_false(mr.null_mx);
	assert_int_equal(mr.n, 1);
	assert_int_equal(mr.mx[0].pref, 0);
	assert_string_equal(mr.mx[0].host, "implicit.example.test");
	dns_mx_result_free(&mr);

	/* An AAAA alone is enough (the A lookup is NODATA). */
	assert_int_equal(dns_mx(res, "implicit6.example.test", &mr), DNS_OK);
	assert_true(mr.implicit);
	assert_string_equal(mr.mx[0].host, "implicit6.example.test");
	dns_mx_result_free(&mr);

	/* Insecure implicit MX: the MX denial is not authenticated. */
	assert_int_equal(dns_mx(res, "mx.insecure.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_INSECURE);
	assert_true(mr.implicit);
	dns_mx_result_free(&mr);
}

static void
test_nxdomain_nodata(void **state)
{
	struct dns_mx_result mr;
	struct dns_addr_result ar;
	struct dns_tlsa_result tr;
	struct dns_txt_result xr;

	assert_int_equal(dns_mx(res, "nope.example.test", &mr), DNS_NXDOMAIN);
	assert_status(mr.st, DNS_NXDOMAIN, DNS_SEC_SECURE);
	assert_int_equal(mr.st.rcode, 3);
	assert_int_equal(mr.n, 0);
	assert_true(mr.st.ttl > 0 && mr.st.ttl <= 60);	/* the SOA minimum */
	dns_mx_result_free(&mr);

	/* The name exists: no MX and no address is NODATA, not NXDOMAIN. */
	assert_int_equal(dns_mx(res, "nodata.example.test", &mr), DNS_NODATA);
	assert_status(mr.st, DNS_NODATA, DNS_SEC_SECURE);
	assert_int_equal(mr.st.rcode, 0);
	assert_false(mr.implicit);
	dns_mx_result_free(&mr);

	assert_int_equal(dns_addrs(res, "nodata.example.test", DNS_ADDR_ANY, &ar), DNS_NODATA);
	assert_status(ar.st, DNS_NODATA, DNS_SEC_SECURE);
	dns_addr_result_free(&ar);
	assert_int_equal(dns_addrs(res, "nope.example.test", DNS_ADDR_ANY, &ar), DNS_NXDOMAIN);
	assert_status(ar.st, DNS_NXDOMAIN, DNS_SEC_SECURE);
	dns_addr_result_free(&ar);

	assert_int_equal(dns_tlsa(res, "_25._tcp.nope.example.test", &tr), DNS_NXDOMAIN);
	assert_status(tr.st, DNS_NXDOMAIN, DNS_SEC_SECURE);
	dns_tlsa_result_free(&tr);
	/* mx1 exists; no TXT there. */
	assert_int_equal(dns_txt(res, "mx1.example.test", &xr), DNS_NODATA);
	assert_status(xr.st, DNS_NODATA, DNS_SEC_SECURE);
	dns_txt_result_free(&xr);

	/* The same with NSEC3. */
	assert_int_equal(dns_mx(res, "nope.nsec3.test", &mr), DNS_NXDOMAIN);
	assert_status(mr.st, DNS_NXDOMAIN, DNS_SEC_SECURE);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_tlsa(res, "mx.nsec3.test", &tr), DNS_NODATA);
	assert_status(tr.st, DNS_NODATA, DNS_SEC_SECURE);
	dns_tlsa_result_free(&tr);

	/* Unsigned: the denial is insecure. */
	assert_int_equal(dns_mx(res, "nope.insecure.test", &mr), DNS_NXDOMAIN);
	assert_status(mr.st, DNS_NXDOMAIN, DNS_SEC_INSECURE);
	dns_mx_result_free(&mr);
}

/* ------------------------------------------------------------------ TLSA */

static void
test_tlsa_secure(void **state)
{
	struct dns_tlsa_result tr;
	unsigned char ee[32], ta[32];
	int seen_ee = 0, seen_ta = 0;

	hex("8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1", ee, 32);
	hex("0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6", ta, 32);
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx1.example.test", &tr), DNS_OK);
	assert_status(tr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(tr.n, 2);
	for (size_t i = 0; i < tr.n; i++) {
		assert_int_equal(tr.rr[i].len, 32);
		if (tr.rr[i].usage == 3) {
			assert_int_equal(tr.rr[i].selector, 1);
			assert_int_equal(tr.rr[i].mtype, 1);
			assert_memory_equal(tr.rr[i].data, ee, 32);
			seen_ee = 1;
		} else {
			assert_int_equal(tr.rr[i].usage, 2);
			assert_int_equal(tr.rr[i].selector, 0);
			assert_int_equal(tr.rr[i].mtype, 1);
			assert_memory_equal(tr.rr[i].data, ta, 32);
			seen_ta = 1;
		}
	}
	assert_true(seen_ee && seen_ta);
	dns_tlsa_result_free(&tr);

	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.nsec3.test", &tr), DNS_OK);
	assert_status(tr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(tr.n, 1);
	assert_memory_equal(tr.rr[0].data, ee, 32);
	dns_tlsa_result_free(&tr);
}

static void
test_bogus(void **state)
{
	struct dns_tlsa_result tr;
	struct dns_mx_result mr;
	struct dns_addr_result ar;

	/* Expired signatures. */
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.bogus.test", &tr), DNS_BOGUS);
	assert_status(tr.st, DNS_BOGUS, DNS_SEC_BOGUS);
	assert_int_equal(tr.st.rcode, 2);
	assert_int_equal(tr.n, 0);
	assert_non_null(strstr(tr.st.error, "DNSSEC validation failed"));
	assert_int_equal(tr.st.ede, 7);
	assert_non_null(strstr(tr.st.error, "Signature Expired"));
	dns_tlsa_result_free(&tr);

	assert_int_equal(dns_mx(res, "bogus.test", &mr), DNS_BOGUS);
	assert_status(mr.st, DNS_BOGUS, DNS_SEC_BOGUS);
	assert_int_equal(mr.n, 0);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_addrs(res, "mx.bogus.test", DNS_ADDR_ANY, &ar), DNS_BOGUS);
	assert_int_equal(ar.n, 0);
	dns_addr_result_free(&ar);
	/* Bogus denial too. */
	assert_int_equal(dns_mx(res, "nope.bogus.test", &mr), DNS_BOGUS);
	dns_mx_result_free(&mr);

	/* A DS in the parent that matches no key of the zone. */
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.badds.test", &tr), DNS_BOGUS);
	assert_status(tr.st, DNS_BOGUS, DNS_SEC_BOGUS);
	assert_true(tr.st.ede >= 1 && tr.st.ede <= 12);
	dns_tlsa_result_free(&tr);
}

static void
test_insecure(void **state)
{
	struct dns_tlsa_result tr;
	struct dns_mx_result mr;
	struct dns_addr_result ar;

	/* Records returned, not secure: DANE must not use them. */
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.insecure.test", &tr), DNS_OK);
	assert_status(tr.st, DNS_OK, DNS_SEC_INSECURE);
	assert_int_equal(tr.n, 1);
	assert_int_equal(tr.rr[0].usage, 3);
	dns_tlsa_result_free(&tr);

	assert_int_equal(dns_mx(res, "insecure.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_INSECURE);
	assert_int_equal(mr.n, 1);
	assert_string_equal(mr.mx[0].host, "mx.insecure.test");
	dns_mx_result_free(&mr);

	assert_int_equal(dns_addrs(res, "mx.insecure.test", DNS_ADDR_ANY, &ar), DNS_OK);
	assert_status(ar.st, DNS_OK, DNS_SEC_INSECURE);
	assert_int_equal(ar.n, 2);
	dns_addr_result_free(&ar);
}

static void
test_servfail_not_bogus(void **state)
{
	struct dns_mx_result mr;
	struct dns_tlsa_result tr;

	/* The resolver cannot reach lame.test.'s server: SERVFAIL, but not a
	 * DNSSEC failure, so not bogus. */
	assert_int_equal(dns_mx(res, "lame.test", &mr), DNS_TEMPFAIL);
	assert_status(mr.st, DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	assert_int_equal(mr.st.rcode, 2);
	assert_non_null(strstr(mr.st.error, "SERVFAIL"));
	dns_mx_result_free(&mr);

	/* A resolver that gives no extended error (RFC 8914): a SERVFAIL is
	 * told bogus by asking again with checking disabled. */
	dnstest("control", (const char *[]){ "unbound", "set_option", "ede:", "no", NULL });
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.bogus.test", &tr), DNS_BOGUS);
	assert_status(tr.st, DNS_BOGUS, DNS_SEC_BOGUS);
	assert_int_equal(tr.st.ede, -1);
	assert_non_null(strstr(tr.st.error, "checking disabled"));
	dns_tlsa_result_free(&tr);
	assert_int_equal(dns_mx(res, "badds.test", &mr), DNS_BOGUS);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_mx(res, "lame.test", &mr), DNS_TEMPFAIL);
	assert_int_equal(mr.st.ede, -1);
	assert_non_null(strstr(mr.st.error, "SERVFAIL"));
	dns_mx_result_free(&mr);
	dnstest("control", (const char *[]){ "unbound", "set_option", "ede:", "yes", NULL });

	/* Outside the test namespace the resolver refuses (nothing leaves
	 * loopback). */
	assert_int_equal(dns_mx(res, "example.com", &mr), DNS_TEMPFAIL);
	assert_int_equal(mr.st.rcode, 5);
	assert_non_null(strstr(mr.st.error, "REFUSED"));
	dns_mx_result_free(&mr);
}

/* ------------------------------------------------------------------ TXT */

static void
test_txt(void **state)
{
	struct dns_txt_result xr;

	/* One record in two character-strings: concatenated (RFC 8460 3). */
	assert_int_equal(dns_txt(res, "_smtp._tls.example.test", &xr), DNS_OK);
	assert_status(xr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(xr.n, 1);
	assert_string_equal(xr.txt[0], "v=TLSRPTv1; rua=mailto:tlsrpt@example.test");
	dns_txt_result_free(&xr);

	assert_int_equal(dns_txt(res, "_mta-sts.example.test", &xr), DNS_OK);
	assert_int_equal(xr.n, 1);
	assert_string_equal(xr.txt[0], "v=STSv1; id=20240101T000000;");
	dns_txt_result_free(&xr);

	/* Several records stay several. */
	assert_int_equal(dns_txt(res, "multitxt.example.test", &xr), DNS_OK);
	assert_int_equal(xr.n, 2);
	assert_true(has_txt(&xr, "first"));
	assert_true(has_txt(&xr, "second part"));
	dns_txt_result_free(&xr);

	assert_int_equal(dns_txt(res, "_mta-sts.insecure.test", &xr), DNS_OK);
	assert_status(xr.st, DNS_OK, DNS_SEC_INSECURE);
	assert_string_equal(xr.txt[0], "v=STSv1; id=insecure1;");
	dns_txt_result_free(&xr);
}

/* ------------------------------------------------------------------ zones changed by a test */

static void
test_records_added_by_test(void **state)
{
	struct dns_mx_result mr;
	struct dns_tlsa_result tr;
	struct dns_txt_result xr;
	char big[12][320];
	const char *bigargs[13];

	/* Per-case records, as the outbound tests add them. */
	assert_int_equal(dns_mx(res, "case1.example.test", &mr), DNS_NXDOMAIN);
	dns_mx_result_free(&mr);
	dnstest("add", (const char *[]){
	    "case1.example.test. 300 IN MX 5 mx.case1.example.test.",
	    "mx.case1.example.test. A 127.0.0.81",
	    "_25._tcp.mx.case1.example.test. TLSA 3 1 1 "
	    "0000000000000000000000000000000000000000000000000000000000000001",
	    "case1.insecure.test. MX 7 mx.insecure.test.",
	    NULL });
	assert_int_equal(dns_mx(res, "case1.example.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(mr.n, 1);
	assert_string_equal(mr.mx[0].host, "mx.case1.example.test");
	dns_mx_result_free(&mr);
	assert_int_equal(dns_tlsa(res, "_25._tcp.mx.case1.example.test", &tr), DNS_OK);
	assert_status(tr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(tr.rr[0].data[31], 1);
	dns_tlsa_result_free(&tr);
	assert_int_equal(dns_mx(res, "case1.insecure.test", &mr), DNS_OK);
	assert_status(mr.st, DNS_OK, DNS_SEC_INSECURE);
	dns_mx_result_free(&mr);

	/* An answer too big for UDP (1232 bytes): truncated, asked again over TCP. */
	for (int i = 0; i < 12; i++) {
		char s[201];
		memset(s, 'a' + i, 200);
		s[200] = '\0';
		snprintf(big[i], sizeof(big[i]), "big.example.test. TXT \"%s\"", s);
		bigargs[i] = big[i];
	}
	bigargs[12] = NULL;
	dnstest("add", bigargs);
	assert_int_equal(dns_txt(res, "big.example.test", &xr), DNS_OK);
	assert_status(xr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(xr.n, 12);
	for (size_t i = 0; i < xr.n; i++)
		assert_int_equal(xr.len[i], 200);
	dns_txt_result_free(&xr);

	/* Removed again: gone from the resolver's answers at once. */
	dnstest("del", (const char *[]){ "case1.example.test.", NULL });
	assert_int_equal(dns_mx(res, "case1.example.test", &mr), DNS_NODATA);
	dns_mx_result_free(&mr);
	dnstest("reset", NULL);
	assert_int_equal(dns_txt(res, "big.example.test", &xr), DNS_NXDOMAIN);
	dns_txt_result_free(&xr);
}

/* ------------------------------------------------------------------ failures */

/* PTR: the reverse name of an address (the standard tree, or under a root
 * of the caller's: the tests serve no in-addr.arpa), and its names. */
static void
test_ptr(void **state)
{
	struct dns_name_result nr;
	char rev[DNS_NAME_MAX];

	assert_int_equal(dns_reverse_name("192.0.2.10", NULL, rev, sizeof(rev)), 0);
	assert_string_equal(rev, "10.2.0.192.in-addr.arpa");
	assert_int_equal(dns_reverse_name("2001:db8::1", NULL, rev, sizeof(rev)), 0);
	assert_string_equal(rev, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(dns_reverse_name("mx.example.test", NULL, rev, sizeof(rev)), -1);
	assert_int_equal(dns_reverse_name("2001:db8::1", NULL, rev, 20), -1);

	assert_int_equal(dns_reverse_name("127.0.0.81", "rev.example.test", rev, sizeof(rev)), 0);
	assert_string_equal(rev, "81.0.0.127.rev.example.test");
	dnstest("add", (const char *[]){ "81.0.0.127.rev.example.test. PTR MX.Case2.example.test.",
	    NULL });
	assert_int_equal(dns_ptr(res, rev, &nr), DNS_OK);
	assert_status(nr.st, DNS_OK, DNS_SEC_SECURE);
	assert_int_equal(nr.n, 1);
	assert_string_equal(nr.names[0], "mx.case2.example.test");
	dns_name_result_free(&nr);
	assert_int_equal(dns_ptr(res, "82.0.0.127.rev.example.test", &nr), DNS_NXDOMAIN);
	assert_int_equal(nr.n, 0);
	dns_name_result_free(&nr);
	dnstest("reset", NULL);
}

static void
test_resolver_down_timeout(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	struct dns_resolver *dead;
	struct dns_mx_result mr;
	char addr[64], err[256];
	int64_t t0, took;
	int fd;

	/* A socket that receives and never answers: a resolver that hangs. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
	dead = dns_resolver_new(addr, 300, 2, err, sizeof(err));
	assert_non_null(dead);
	assert_int_equal(dns_resolver_bound_ms(dead), 600);

	t0 = now_ms();
	assert_int_equal(dns_mx(dead, "example.test", &mr), DNS_TEMPFAIL);
	took = now_ms() - t0;
	assert_status(mr.st, DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	assert_int_equal(mr.st.rcode, -1);
	assert_non_null(strstr(mr.st.error, "timeout"));
	assert_non_null(strstr(mr.st.error, addr));
	assert_true(took >= 550);
	assert_true(took < 1500);
	dns_mx_result_free(&mr);
	close(fd);

	/* Nothing listening: refused at once, well within the bound. */
	t0 = now_ms();
	assert_int_equal(dns_mx(dead, "example.test", &mr), DNS_TEMPFAIL);
	took = now_ms() - t0;
	assert_true(took < 1500);
	assert_true(strstr(mr.st.error, "refused") != NULL || strstr(mr.st.error, "timeout") != NULL);
	dns_mx_result_free(&mr);
	dns_resolver_free(dead);
}

static void
test_invalid(void **state)
{
	struct dns_mx_result mr;
	struct dns_txt_result xr;
	char err[256];
	char longname[300];

	assert_int_equal(dns_mx(res, "bad name", &mr), DNS_INVALID);
	assert_int_equal(mr.st.sec, DNS_SEC_UNKNOWN);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_mx(res, "a..b", &mr), DNS_INVALID);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_mx(res, "", &mr), DNS_INVALID);
	dns_mx_result_free(&mr);
	assert_int_equal(dns_txt(res, "a\\.b.example.test", &xr), DNS_INVALID);
	dns_txt_result_free(&xr);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(dns_name_valid(longname));
	assert_true(dns_name_valid("_25._tcp.mx.example.test."));

	assert_null(dns_resolver_new("resolver.example", 0, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "resolver address"));
	assert_null(dns_resolver_new("127.0.0.1:0", 0, 0, err, sizeof(err)));
	assert_null(dns_resolver_new("127.0.0.1", -1, 0, err, sizeof(err)));
	struct dns_resolver *r = dns_resolver_new("::1", 0, 0, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(dns_resolver_bound_ms(r), 6000);
	dns_resolver_free(r);
	r = dns_resolver_new("[::1]:5353", 100, 1, err, sizeof(err));
	assert_non_null(r);
	dns_resolver_free(r);
}

/* ------------------------------------------------------------------ threads */

#define THREADS	8
#define ROUNDS	25

static void *
worker(void *arg)
{
	long bad = 0;

	for (int i = 0; i < ROUNDS; i++) {
		struct dns_mx_result mr;
		struct dns_tlsa_result tr;
		if (dns_mx(res, "example.test", &mr) != DNS_OK || mr.n != 4 ||
		    mr.st.sec != DNS_SEC_SECURE || strcmp(mr.mx[0].host, "mx1.example.test") != 0)
			bad++;
		dns_mx_result_free(&mr);
		if (dns_tlsa(res, "_25._tcp.mx.bogus.test", &tr) != DNS_BOGUS)
			bad++;
		dns_tlsa_result_free(&tr);
	}
	return (void *)bad;
}

static void
test_threads_share_resolver(void **state)
{
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
	for (int i = 0; i < THREADS; i++) {
		void *bad;
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_int_equal((long)bad, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_preference_order),
		cmocka_unit_test(test_mx_host_cname),
		cmocka_unit_test(test_mx_domain_cname),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_implicit_mx),
		cmocka_unit_test(test_nxdomain_nodata),
		cmocka_unit_test(test_tlsa_secure),
		cmocka_unit_test(test_bogus),
		cmocka_unit_test(test_insecure),
		cmocka_unit_test(test_servfail_not_bogus),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_records_added_by_test),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_resolver_down_timeout),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_threads_share_resolver),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
