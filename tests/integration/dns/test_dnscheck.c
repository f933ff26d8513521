/* controld/dnscheck.c against real DNS and live peers: nsd + unbound with
 * DNSSEC-signed zones (tests/tools/dnstest), an SMTP server offering
 * STARTTLS and an HTTPS server for the MTA-STS policy on 127.0.0.81-83
 * (dnscheck_peers.py). Run as
 *   dnstest run dnscheck_peers.py test_dnscheck
 *
 * Every scenario publishes the records the fleet wants for one domain
 * (chk.example.test, signed; chk.insecure.test, not), changes what it is
 * about, and checks that dns check reports exactly the findings (code and
 * subject) a user would read, and nothing else. Reverse names live under
 * rev.example.test. (dnstest serves no in-addr.arpa zone: the check's
 * reverse_root option points there.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dns.h"
#include "dnscheck.h"
#include "dnsgen.h"
#include "dnstest_cmd.h"

#define REV_ROOT	"rev.example.test"
#define NEXT_SPKI	"1111111111111111111111111111111111111111111111111111111111111111"
#define RETIRED_SPKI	"2222222222222222222222222222222222222222222222222222222222222222"
#define STS_ID		"0123456789abcdef0123456789abcdef"
#define DKIM_TXT	"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define MAX_LINES	32

static struct dns_resolver *res;
static char spki_a[65], spki_b[65];

/* One domain as the fleet wants it: one host, mx1.<d>, at 127.0.0.81,
 * serving certificate A, with a next key and a retired one. */
struct world {
	char			 d[64], mx1[96], spf[96], dmarc[160];
	char			 o_apex[96], o_dmarc[96], o_dkim[96];
	char			 q_spf[128], q_dmarc[192], q_dkim[128];
	char			 policy[256];
	char			*addrs[1], *retired[1];
	struct dnsgen_cert	 cert;
	struct dnsgen_host	 host;
	struct dnsgen_domain	 in;
	struct dnsgen_rr	 rrs[3];
	struct dnsgen_result	 want;
	char			 lines[MAX_LINES][256];
	size_t			 nlines;
};

static void
world_init(struct world *w, const char *d)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->d, sizeof(w->d), "%s", d);
	snprintf(w->mx1, sizeof(w->mx1), "mx1.%s", d);
	snprintf(w->spf, sizeof(w->spf), "v=spf1 ip4:127.0.0.81 -all");
	snprintf(w->dmarc, sizeof(w->dmarc), "v=DMARC1; p=none; rua=mailto:dmarc@%s", d);
	snprintf(w->policy, sizeof(w->policy),
	    "version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 604800\r\n", w->mx1);
	w->addrs[0] = "127.0.0.81";
	w->retired[0] = RETIRED_SPKI;
	w->cert.spki_sha256 = spki_a;
	w->host = (struct dnsgen_host){ .host_id = "h1", .mx_name = w->mx1, .addrs = w->addrs,
	    .naddrs = 1, .certs = &w->cert, .ncerts = 1, .next_spki = NEXT_SPKI,
	    .retired_spki = w->retired, .nretired = 1 };
	w->in = (struct dnsgen_domain){ .name = w->d, .ttl = 300, .hosts = &w->host,
	    .nhosts = 1, .sts_mode = "enforce", .sts_max_age = 604800 };
	/* What dnsgen_domain gives for this input, as far as the check reads
	 * it: the TXT records of SPF, DMARC and DKIM, the policy and its id. */
	snprintf(w->o_apex, sizeof(w->o_apex), "%s.", d);
	snprintf(w->o_dmarc, sizeof(w->o_dmarc), "_dmarc.%s.", d);
	snprintf(w->o_dkim, sizeof(w->o_dkim), "s1._domainkey.%s.", d);
	snprintf(w->q_spf, sizeof(w->q_spf), "\"%s\"", w->spf);
	snprintf(w->q_dmarc, sizeof(w->q_dmarc), "\"%s\"", w->dmarc);
	snprintf(w->q_dkim, sizeof(w->q_dkim), "\"%s\"", DKIM_TXT);
	w->rrs[0] = (struct dnsgen_rr){ w->o_apex, 300, "TXT", w->q_spf, "SPF" };
	w->rrs[1] = (struct dnsgen_rr){ w->o_dmarc, 300, "TXT", w->q_dmarc, "DMARC" };
	w->rrs[2] = (struct dnsgen_rr){ w->o_dkim, 300, "TXT", w->q_dkim, "DKIM" };
	w->want.rrs = w->rrs;
	w->want.nrrs = 3;
	w->want.sts_policy = w->policy;
	snprintf(w->want.sts_id, sizeof(w->want.sts_id), "%s", STS_ID);
}

static void __attribute__((format(printf, 2, 3)))
line(struct world *w, const char *fmt, ...)
{
	va_list ap;

	assert_true(w->nlines < MAX_LINES);
	va_start(ap, fmt);
	vsnprintf(w->lines[w->nlines++], sizeof(w->lines[0]), fmt, ap);
	va_end(ap);
}

/* The records of a clean zone: what the fleet wants published. */
static void
world_records(struct world *w)
{
	const char *d = w->d;

	line(w, "%s. MX 10 %s.", d, w->mx1);
	line(w, "%s. A 127.0.0.81", w->mx1);
	line(w, "_25._tcp.%s. TLSA 3 1 1 %s", w->mx1, spki_a);
	line(w, "_25._tcp.%s. TLSA 3 1 1 %s", w->mx1, NEXT_SPKI);
	line(w, "81.0.0.127.%s. PTR %s.", REV_ROOT, w->mx1);
	line(w, "mta-sts.%s. A 127.0.0.81", d);
	line(w, "_mta-sts.%s. TXT \"v=STSv1; id=%s\"", d, STS_ID);
	line(w, "_smtp._tls.%s. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\"", d, d);
	line(w, "_smtp._tls.%s. TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\"", w->mx1, d);
	line(w, "%s. TXT %s", d, w->q_spf);
	line(w, "_dmarc.%s. TXT %s", d, w->q_dmarc);
	line(w, "s1._domainkey.%s. TXT %s", d, w->q_dkim);
}

/* Leave out the records whose text starts with prefix. */
static void
drop(struct world *w, const char *prefix)
{
	size_t o = 0, before = w->nlines;

	for (size_t i = 0; i < w->nlines; i++)
		if (strncmp(w->lines[i], prefix, strlen(prefix)) != 0)
			memmove(w->lines[o++], w->lines[i], sizeof(w->lines[0]));
	w->nlines = o;
	if (o == before)
		fail_msg("drop: no record starts with %s", prefix);
}

static void
write_peer_file(const char *name, const char *text)
{
	const char *dir = getenv("DNSCHECK_PEER_DIR");
	char path[512];
	FILE *f;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Publish w's records (and nothing else), serve policy in mode. */
static void
publish(struct world *w, const char *policy, const char *mode)
{
	const char *args[MAX_LINES + 1];

	dnstest("reset", NULL);
	for (size_t i = 0; i < w->nlines; i++)
		args[i] = w->lines[i];
	args[w->nlines] = NULL;
	if (w->nlines > 0)
		dnstest("add", args);
	write_peer_file("policy.txt", policy ? policy : w->policy);
	write_peer_file("https_mode", mode ? mode : "ok");
}

static void
print_report(const struct dnscheck_report *rep)
{
	for (size_t i = 0; i < rep->nfindings; i++)
		fprintf(stderr, "  %s %s %s: %s\n", rep->findings[i].severity,
		    rep->findings[i].code, rep->findings[i].subject, rep->findings[i].what);
}

static void
check(struct world *w, struct dnscheck_report *rep)
{
	struct dnscheck_opts o = {
		.resolver = res,
		.smtp_port = (unsigned)atoi(getenv("DNSCHECK_SMTP_PORT")),
		.https_port = (unsigned)atoi(getenv("DNSCHECK_HTTPS_PORT")),
		.ca_file = getenv("DNSCHECK_CA"),
		.smtp_ms = 10000,
		.https_ms = 10000,
		.helo = "checker.example.test",
		.reverse_root = REV_ROOT,
	};
	int rc = dnscheck_domain(&w->in, &w->want, &o, rep);

	assert_int_equal(rc, (int)rep->nerrors);
	if (getenv("DNSCHECK_PRINT"))
		print_report(rep);
}

/* The report holds exactly these findings ("code subject" pairs, NULL
 * ended), in any order. */
static void
expect(const struct dnscheck_report *rep, ...)
{
	const char *want[32][2];
	size_t n = 0;
	int bad = 0;
	va_list ap;

	va_start(ap, rep);
	for (const char *code; (code = va_arg(ap, const char *)) != NULL; n++) {
		want[n][0] = code;
		want[n][1] = va_arg(ap, const char *);
	}
	va_end(ap);
	for (size_t k = 0; k < n; k++) {
		int found = 0;
		for (size_t i = 0; i < rep->nfindings && !found; i++)
			found = strcmp(rep->findings[i].code, want[k][0]) == 0 &&
			    strcmp(rep->findings[i].subject, want[k][1]) == 0;
		if (!found) {
			fprintf(stderr, "missing finding: %s %s\n", want[k][0], want[k][1]);
			bad = 1;
		}
	}
	if (rep->nfindings != n) {
		fprintf(stderr, "%zu findings, want %zu\n", rep->nfindings, n);
		bad = 1;
	}
	for (size_t i = 0; i < rep->nfindings; i++) {
		const struct dnsgen_error *f = &rep->findings[i];
		assert_true(f->what[0] && f->why[0] && f->fix[0]);
	}
	if (bad) {
		print_report(rep);
		fail_msg("the findings differ from what the scenario expects");
	}
}

/* ------------------------------------------------------------------ scenarios */

/* w: the fleet's domain d, with the records of a clean zone to publish. */
static void
fresh(struct world *w, const char *d)
{
	world_init(w, d);
	world_records(w);
}

/* Publish w's records, serve policy (NULL: the generated one) in mode
 * (NULL: "ok"), check. */
static void
run(struct world *w, const char *policy, const char *mode, struct dnscheck_report *rep)
{
	publish(w, policy, mode);
	check(w, rep);
}

static void
test_clean_zone_has_no_findings(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	run(&w, NULL, NULL, &rep);
	expect(&rep, NULL);
	dnscheck_report_free(&rep);
}

/* The seed story (002): the MX is a CNAME, the certificate lacks the
 * target's name. */
static void
test_mx_cname_without_target_in_cert(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "mx1.chk.example.test. A");
	line(&w, "mx1.chk.example.test. CNAME smol.chk.example.test.");
	line(&w, "smol.chk.example.test. A 127.0.0.81");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "mx-cname", "mx1.chk.example.test",
	    "mx-cname-cert", "smol.chk.example.test", NULL);
	assert_int_equal(rep.nerrors, 2);
	dnscheck_report_free(&rep);
}

static void
test_ptr_naming_another_host(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "81.0.0.127.");
	line(&w, "81.0.0.127.%s. PTR other.chk.example.test.", REV_ROOT);
	line(&w, "other.chk.example.test. A 127.0.0.99");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "ptr-not-confirmed", "127.0.0.81", "ptr-not-mx", "127.0.0.81", NULL);
	dnscheck_report_free(&rep);

	/* Forward-confirmed but not the MX name: a warning only. */
	drop(&w, "other.chk.example.test. A");
	line(&w, "other.chk.example.test. A 127.0.0.81");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "ptr-not-mx", "127.0.0.81", NULL);
	assert_int_equal(rep.nerrors, 0);
	assert_int_equal(rep.nwarnings, 1);
	dnscheck_report_free(&rep);

	drop(&w, "81.0.0.127.");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "ptr-missing", "127.0.0.81", NULL);
	dnscheck_report_free(&rep);
}

static void
test_sts_id_stale(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "_mta-sts.");
	line(&w, "_mta-sts.chk.example.test. TXT \"v=STSv1; id=20240101\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "sts-id-stale", "_mta-sts.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, "id=20240101"));
	assert_non_null(strstr(rep.findings[0].fix, STS_ID));
	dnscheck_report_free(&rep);
}

static void
test_sts_txt_missing_and_multiple(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	line(&w, "_mta-sts.chk.example.test. TXT \"v=STSv1; id=other1\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "sts-txt-multiple", "_mta-sts.chk.example.test", NULL);
	dnscheck_report_free(&rep);

	drop(&w, "_mta-sts.");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "sts-txt-missing", "_mta-sts.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_tlsrpt_missing_for_a_host(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "_smtp._tls.mx1.");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "tlsrpt-missing", "_smtp._tls.mx1.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_tlsrpt_two_records(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	line(&w, "_smtp._tls.chk.example.test. TXT \"v=TLSRPTv1; rua=mailto:other@x.test\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "tlsrpt-multiple", "_smtp._tls.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_tlsa_for_retired_key(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	line(&w, "_25._tcp.mx1.chk.example.test. TLSA 3 1 1 %s", RETIRED_SPKI);
	run(&w, NULL, NULL, &rep);
	expect(&rep, "tlsa-retired", "_25._tcp.mx1.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, RETIRED_SPKI));
	dnscheck_report_free(&rep);
}

static void
test_tlsa_next_key_missing(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "_25._tcp.mx1.chk.example.test. TLSA 3 1 1 " NEXT_SPKI);
	run(&w, NULL, NULL, &rep);
	expect(&rep, "tlsa-next-missing", "_25._tcp.mx1.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].fix, NEXT_SPKI));
	dnscheck_report_free(&rep);
}

/* The served key matches no TLSA: the address is another host's (serving
 * certificate B, which does not name mx1 either). */
static void
test_address_of_another_host(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "mx1.chk.example.test. A");
	line(&w, "mx1.chk.example.test. A 127.0.0.82");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "mx-address-foreign", "mx1.chk.example.test",
	    "cert-name-missing", "mx1.chk.example.test",
	    "tlsa-mismatch", "_25._tcp.mx1.chk.example.test",
	    /* the PTR of the fleet's address names mx1, which no longer
	     * resolves to it */
	    "ptr-not-confirmed", "127.0.0.81", NULL);
	for (size_t i = 0; i < rep.nfindings; i++)
		if (strcmp(rep.findings[i].code, "tlsa-mismatch") == 0)
			assert_non_null(strstr(rep.findings[i].what, spki_b));
	dnscheck_report_free(&rep);
}

static void
test_no_starttls(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	world_init(&w, "chk.example.test");
	w.addrs[0] = "127.0.0.83";
	world_records(&w);
	drop(&w, "mx1.chk.example.test. A");
	drop(&w, "81.0.0.127.");
	line(&w, "mx1.chk.example.test. A 127.0.0.83");
	line(&w, "83.0.0.127.%s. PTR mx1.chk.example.test.", REV_ROOT);
	run(&w, NULL, NULL, &rep);
	expect(&rep, "starttls-failed", "127.0.0.83", NULL);
	assert_non_null(strstr(rep.findings[0].what, "STARTTLS is not offered"));
	dnscheck_report_free(&rep);
}

static void
test_mx_not_published(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "chk.example.test. MX");
	line(&w, "chk.example.test. MX 10 mx2.chk.example.test.");
	line(&w, "mx2.chk.example.test. A 127.0.0.82");
	run(&w, NULL, NULL, &rep);
	/* mx2 is published but not in the policy, and the fleet's mx1 is not
	 * published at all. */
	expect(&rep, "mx-missing", "mx1.chk.example.test",
	    "sts-mx-unmatched", "mx2.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

/* TLSA in an unsigned zone: DANE senders ignore it. */
static void
test_tlsa_in_unsigned_zone(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.insecure.test");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "dnssec-unsigned", "_25._tcp.mx1.chk.insecure.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_bogus_zone(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	world_init(&w, "bogus.test");
	w.nlines = 0;
	run(&w, NULL, NULL, &rep);
	/* Every answer is bogus: the first finding says so for the MX. */
	assert_true(rep.nfindings > 0);
	assert_string_equal(rep.findings[0].code, "dnssec-bogus");
	assert_string_equal(rep.findings[0].subject, "bogus.test");
	for (size_t i = 0; i < rep.nfindings; i++)
		if (strcmp(rep.findings[i].code, "dnssec-bogus") != 0 &&
		    strcmp(rep.findings[i].code, "starttls-failed") != 0 &&
		    strcmp(rep.findings[i].code, "ptr-missing") != 0 &&
		    strcmp(rep.findings[i].code, "cert-name-missing") != 0) {
			print_report(&rep);
			fail_msg("unexpected %s", rep.findings[i].code);
		}
	dnscheck_report_free(&rep);
}

static void
test_policy_redirect_and_content_type(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	run(&w, NULL, "redirect", &rep);
	expect(&rep, "sts-policy-redirect", "mta-sts.chk.example.test", NULL);
	dnscheck_report_free(&rep);

	write_peer_file("https_mode", "ctype");
	check(&w, &rep);
	expect(&rep, "sts-policy-content-type", "mta-sts.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, "text/html"));
	dnscheck_report_free(&rep);

	write_peer_file("https_mode", "wrongcert");
	check(&w, &rep);
	expect(&rep, "sts-policy-cert", "mta-sts.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_policy_served_differs(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	run(&w, "version: STSv1\r\nmode: testing\r\nmx: mx9.chk.example.test\r\n"
	    "max_age: 3600\r\n", NULL, &rep);
	expect(&rep, "sts-policy-differs", "mta-sts.chk.example.test",
	    "sts-mode-testing", "mta-sts.chk.example.test",
	    "sts-max-age", "mta-sts.chk.example.test",
	    "sts-mx-unmatched", "mx1.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

static void
test_spf_dmarc_dkim(void **state)
{
	struct world w;
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "chk.example.test. TXT");
	drop(&w, "s1._domainkey.");
	drop(&w, "_dmarc.");
	line(&w, "_dmarc.chk.example.test. TXT \"v=DMARC1; p=reject\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "spf-missing", "chk.example.test",
	    "dmarc-differs", "_dmarc.chk.example.test",
	    "dkim-missing", "s1._domainkey.chk.example.test", NULL);
	dnscheck_report_free(&rep);

	line(&w, "chk.example.test. TXT \"v=spf1 -all\"");
	line(&w, "s1._domainkey.chk.example.test. TXT \"v=DKIM1; k=ed25519; p=AAAA\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "spf-differs", "chk.example.test",
	    "dmarc-differs", "_dmarc.chk.example.test",
	    "dkim-differs", "s1._domainkey.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

/* ------------------------------------------------------------------ setup */

static void
spki_of(const char *path, char out[65])
{
	FILE *f = fopen(path, "r");
	X509 *x;
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(len > 0);
	assert_true(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL));
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
	X509_free(x);
}

static int
setup(void **state)
{
	const char *ns = getenv("DNSTEST_RESOLVER");
	char err[256];

	(void)state;
	if (ns == NULL || getenv("DNSCHECK_SMTP_PORT") == NULL) {
		fprintf(stderr, "run me as: tests/tools/dnstest run "
		    "tests/integration/dns/dnscheck_peers.py test_dnscheck\n");
		return -1;
	}
	res = dns_resolver_new(ns, 2000, 3, err, sizeof(err));
	if (res == NULL) {
		fprintf(stderr, "dns_resolver_new(%s): %s\n", ns, err);
		return -1;
	}
	spki_of(getenv("DNSCHECK_CERT_A"), spki_a);
	spki_of(getenv("DNSCHECK_CERT_B"), spki_b);
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
		cmocka_unit_test(test_clean_zone_has_no_findings),
		cmocka_unit_test(test_mx_cname_without_target_in_cert),
		cmocka_unit_test(test_ptr_naming_another_host),
		cmocka_unit_test(test_sts_id_stale),
		cmocka_unit_test(test_sts_txt_missing_and_multiple),
		cmocka_unit_test(test_tlsrpt_missing_for_a_host),
		cmocka_unit_test(test_tlsrpt_two_records),
		cmocka_unit_test(test_tlsa_for_retired_key),
		cmocka_unit_test(test_tlsa_next_key_missing),
		cmocka_unit_test(test_address_of_another_host),
		cmocka_unit_test(test_no_starttls),
		cmocka_unit_test(test_mx_not_published),
		cmocka_unit_test(test_tlsa_in_unsigned_zone),
		cmocka_unit_test(test_bogus_zone),
		cmocka_unit_test(test_policy_redirect_and_content_type),
		cmocka_unit_test(test_policy_served_differs),
		cmocka_unit_test(test_spf_dmarc_dkim),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
