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

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "dnscheck.h"
#include "dnsgen.h"
#include "dnstest_cmd.h"
#include "tlsid.h"

#define REV_ROOT	"rev.example.test"
#define NEXT_SPKI	"1111111111111111111111111111111111111111111111111111111111111111"
#define RETIRED_SPKI	"2222222222222222222222222222222222222222222222222222222222222222"
#define DKIM_KEY	"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
#define MAX_LINES	32

static struct dns_resolver *res;
static char spki_a[65], spki_b[65];
static int64_t not_after_a;	/* certificate A's, unix seconds */
static int64_t check_now;	/* the check's clock; 0: the real one */

/* One domain as the fleet wants it: one host, mx1.<d>, serving certificate
 * A, with a next key and a retired one, and one DKIM key; want is what
 * controld generates for it (dnsgen_domain). */
struct world {
	char			 d[64], mx1[96];
	char			*addrs[1], *retired[1];
	struct dnsgen_cert	 cert;
	struct dnsgen_host	 host;
	struct dnsgen_dkim	 dkim;
	struct dnsgen_domain	 in;
	struct dnsgen_result	 want;
	char			 lines[MAX_LINES][512];
	size_t			 nlines;
};

/* The world of the test running, freed by its teardown. */
static struct world *current;

static void
world_init(struct world *w, const char *d, char *addr)
{
	char err[256];

	memset(w, 0, sizeof(*w));
	snprintf(w->d, sizeof(w->d), "%s", d);
	snprintf(w->mx1, sizeof(w->mx1), "mx1.%s", d);
	w->addrs[0] = addr;
	w->retired[0] = RETIRED_SPKI;
	w->cert.spki_sha256 = spki_a;
	w->host = (struct dnsgen_host){ .host_id = "h1", .mx_name = w->mx1, .addrs = w->addrs,
	    .naddrs = 1, .certs = &w->cert, .ncerts = 1, .next_spki = NEXT_SPKI,
	    .retired_spki = w->retired, .nretired = 1 };
	w->dkim = (struct dnsgen_dkim){ .selector = "s1", .key_type = "ed25519",
	    .public_b64 = DKIM_KEY, .state = DNSGEN_DKIM_ACTIVE };
	w->in = (struct dnsgen_domain){ .name = w->d, .ttl = 300, .hosts = &w->host,
	    .nhosts = 1, .sts_mode = "enforce", .sts_max_age = 604800, .tlsrpt_rua = "",
	    .spf = "", .dmarc = "", .dkim = &w->dkim, .ndkim = 1 };
	if (dnsgen_domain(&w->in, &w->want, err, sizeof(err)) != 0)
		fail_msg("dnsgen_domain(%s): %s", d, err);
	assert_non_null(w->want.sts_policy);
	current = w;
}

static int
world_free(void **state)
{
	(void)state;
	if (current != NULL)
		dnsgen_result_free(&current->want);
	current = NULL;
	check_now = 0;
	return 0;
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

/* The records of a clean zone: every record generated, and the PTR of the
 * host's address naming its MX name. */
static void
world_records(struct world *w)
{
	char rev[DNS_NAME_MAX];

	for (size_t i = 0; i < w->want.nrrs; i++)
		line(w, "%s %s %s", w->want.rrs[i].owner, w->want.rrs[i].type,
		    w->want.rrs[i].rdata);
	assert_int_equal(dns_reverse_name(w->addrs[0], REV_ROOT, rev, sizeof(rev)), 0);
	line(w, "%s. PTR %s.", rev, w->mx1);
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
	write_peer_file("policy.txt", policy ? policy : w->want.sts_policy);
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
		.now = check_now,
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
	world_init(w, d, "127.0.0.81");
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "_mta-sts.");
	line(&w, "_mta-sts.chk.example.test. TXT \"v=STSv1; id=20240101\"");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "sts-id-stale", "_mta-sts.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, "id=20240101"));
	assert_non_null(strstr(rep.findings[0].fix, w.want.sts_id));
	dnscheck_report_free(&rep);
}

static void
test_sts_txt_missing_and_multiple(void **state)
{
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;

	(void)state;
	world_init(&w, "chk.example.test", "127.0.0.83");
	world_records(&w);
	/* The policy is served at .81 only. */
	drop(&w, "mta-sts.chk.example.test. A");
	line(&w, "mta-sts.chk.example.test. A 127.0.0.81");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "starttls-failed", "127.0.0.83", NULL);
	assert_non_null(strstr(rep.findings[0].what, "STARTTLS is not offered"));
	dnscheck_report_free(&rep);
}

static void
test_mx_not_published(void **state)
{
	static struct world w;	/* freed by world_free */
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

/* seeds/002 as operators set it up: the MX names an alias (mxi1), a CNAME
 * to the fleet host's name. */
static void
test_mx_alias_of_fleet_host(void **state)
{
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	drop(&w, "chk.example.test. MX");
	line(&w, "chk.example.test. MX 10 mxi1.chk.example.test.");
	line(&w, "mxi1.chk.example.test. CNAME mx1.chk.example.test.");
	run(&w, NULL, NULL, &rep);
	expect(&rep, "mx-cname", "mxi1.chk.example.test",
	    "mx-missing", "mx1.chk.example.test",
	    "sts-mx-unmatched", "mxi1.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, "a fleet host"));
	dnscheck_report_free(&rep);
}

/* TLSA in an unsigned zone: DANE senders ignore it. */
static void
test_tlsa_in_unsigned_zone(void **state)
{
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;

	(void)state;
	world_init(&w, "bogus.test", "127.0.0.81");
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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
	static struct world w;	/* freed by world_free */
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

/* With the check's clock moved: three days before the served certificate
 * expires, then after. */
static void
test_certificate_expiry(void **state)
{
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;

	(void)state;
	fresh(&w, "chk.example.test");
	check_now = not_after_a - 3 * 86400;
	run(&w, NULL, NULL, &rep);
	expect(&rep, "cert-expiring", "mx1.chk.example.test", NULL);
	assert_non_null(strstr(rep.findings[0].what, "in 72 hours"));
	dnscheck_report_free(&rep);

	check_now = not_after_a + 1;
	check(&w, &rep);
	expect(&rep, "cert-expired", "mx1.chk.example.test", NULL);
	dnscheck_report_free(&rep);
}

/* No answer from the resolver: every lookup says check-incomplete, and
 * nothing is claimed missing or wrong for want of an answer. The live
 * STARTTLS still goes to the host's own address. */
static void
test_resolver_down_says_incomplete(void **state)
{
	static struct world w;	/* freed by world_free */
	struct dnscheck_report rep;
	struct dnscheck_opts o = { .smtp_port = (unsigned)atoi(getenv("DNSCHECK_SMTP_PORT")),
	    .helo = "checker.example.test", .reverse_root = REV_ROOT };
	char err[256];
	size_t incomplete = 0;

	(void)state;
	world_init(&w, "chk.example.test", "127.0.0.81");
	/* Nothing listens on the discard port: each query fails at once. */
	o.resolver = dns_resolver_new("127.0.0.1:9", 200, 1, err, sizeof(err));
	assert_non_null(o.resolver);
	assert_int_equal(dnscheck_domain(&w.in, &w.want, &o, &rep), 0);
	for (size_t i = 0; i < rep.nfindings; i++) {
		if (strcmp(rep.findings[i].code, "check-incomplete") != 0) {
			print_report(&rep);
			fail_msg("a finding other than check-incomplete: %s",
			    rep.findings[i].code);
		}
		incomplete++;
	}
	/* MX, the host's addresses, PTR, TLSA and TLSRPT, the domain's TLSRPT,
	 * _mta-sts, mta-sts addresses, SPF, DMARC, DKIM. */
	assert_int_equal(incomplete, 11);
	assert_string_equal(rep.findings[0].subject, "chk.example.test");
	assert_int_equal(rep.nwarnings, 11);
	dnscheck_report_free(&rep);
	dns_resolver_free((struct dns_resolver *)o.resolver);
}

/* ------------------------------------------------------------------ setup */

/* The SPKI SHA-256 and expiry of a PEM certificate, as mxd reports its own. */
static void
spki_of(const char *path, char out[65], int64_t *not_after)
{
	struct tlsid_cert id;
	char err[256];
	X509 *x;

	if (tlsid_read_cert(path, &x, err, sizeof(err)) != 0 ||
	    tlsid_cert_describe(x, &id, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	snprintf(out, 65, "%s", id.spki);
	if (not_after != NULL)
		*not_after = id.not_after;
	tlsid_cert_clear(&id);
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
	spki_of(getenv("DNSCHECK_CERT_A"), spki_a, &not_after_a);
	spki_of(getenv("DNSCHECK_CERT_B"), spki_b, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dns_resolver_free(res);
	return 0;
}

#define UNIT(f) cmocka_unit_test_teardown(f, world_free)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		UNIT(test_clean_zone_has_no_findings),
		UNIT(test_mx_cname_without_target_in_cert),
		UNIT(test_ptr_naming_another_host),
		UNIT(test_sts_id_stale),
		UNIT(test_sts_txt_missing_and_multiple),
		UNIT(test_tlsrpt_missing_for_a_host),
		UNIT(test_tlsrpt_two_records),
		UNIT(test_tlsa_for_retired_key),
		UNIT(test_tlsa_next_key_missing),
		UNIT(test_address_of_another_host),
		UNIT(test_no_starttls),
		UNIT(test_mx_not_published),
		UNIT(test_mx_alias_of_fleet_host),
		UNIT(test_tlsa_in_unsigned_zone),
		UNIT(test_bogus_zone),
		UNIT(test_policy_redirect_and_content_type),
		UNIT(test_policy_served_differs),
		UNIT(test_spf_dmarc_dkim),
		UNIT(test_certificate_expiry),
		UNIT(test_resolver_down_says_incomplete),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
