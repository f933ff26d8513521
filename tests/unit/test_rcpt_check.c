/* Recipient checks at RCPT (backscatter, issue 9 item 4): the list lookup,
 * the normalization of list entries shared with controld, and how mxd's
 * configuration builds a domain's check from its file and from controld's
 * snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mxd_config.h"
#include "mxfleet.pb-c.h"
#include "rcpt_addr.h"
#include "rcpt_check.h"

static struct rcpt_check
list_of(const char *const *locals)
{
	struct rcpt_check c = { 0 };
	struct rcpt_set *s = rcpt_set_new();
	for (; *locals; locals++)
		rcpt_set_add(s, *locals);
	rcpt_set_seal(s);
	rcpt_check_set(&c, RCPT_CHECK_LIST, s);
	return c;
}

static void
test_list_accepts_listed_local_parts_ignoring_ascii_case(void **state)
{
	static const char *const l[] = { "alice", "bob", "postmaster", NULL };
	struct rcpt_check c = list_of(l);
	assert_int_equal(rcpt_check_verdict(&c, "alice@example.org", NULL), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_verdict(&c, "ALICE@EXAMPLE.ORG", NULL), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_verdict(&c, "PostMaster@example.org", NULL), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_verdict(&c, "bob@example.org", ""), RCPT_ACCEPT);
	rcpt_check_clear(&c);
}

static void
test_list_refuses_prefixes_extensions_and_empty_local_parts(void **state)
{
	static const char *const l[] = { "alice", "bob", NULL };
	struct rcpt_check c = list_of(l);
	assert_int_equal(rcpt_check_verdict(&c, "alic@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "alicex@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "a@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "zed@example.org", NULL), RCPT_UNKNOWN);
	/* A delimiter is not a wildcard unless one is configured. */
	assert_int_equal(rcpt_check_verdict(&c, "alice+tag@example.org", NULL), RCPT_UNKNOWN);
	rcpt_check_clear(&c);
}

static void
test_subaddress_matches_its_base_only_with_a_delimiter(void **state)
{
	static const char *const l[] = { "alice", "list-owner", NULL };
	struct rcpt_check c = list_of(l);
	assert_int_equal(rcpt_check_verdict(&c, "Alice+News@example.org", "+"), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_verdict(&c, "alice-x@example.org", "+-"), RCPT_ACCEPT);
	/* Listed as it is: the whole local part wins before any split. */
	assert_int_equal(rcpt_check_verdict(&c, "list-owner@example.org", "-"), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_verdict(&c, "alicia+alice@example.org", "+"), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "+alice@example.org", "+"), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "bob+alice@example.org", "+"), RCPT_UNKNOWN);
	rcpt_check_clear(&c);
}

static void
test_unset_and_any_accept_every_local_part(void **state)
{
	struct rcpt_check c = { 0 };
	assert_int_equal(rcpt_check_verdict(&c, "whoever@example.org", NULL), RCPT_ACCEPT);
	rcpt_check_set(&c, RCPT_CHECK_ANY, NULL);
	assert_int_equal(rcpt_check_verdict(&c, "whoever@example.org", NULL), RCPT_ACCEPT);
	assert_int_equal(rcpt_check_mode_parse("list"), RCPT_CHECK_LIST);
	assert_int_equal(rcpt_check_mode_parse("any"), RCPT_CHECK_ANY);
	assert_int_equal(rcpt_check_mode_parse("verify"), RCPT_CHECK_VERIFY);
	assert_int_equal(rcpt_check_mode_parse(""), -1);
	assert_int_equal(rcpt_check_mode_parse("LIST"), -1);
	assert_string_equal(rcpt_check_mode_name(RCPT_CHECK_UNSET), "unset");
}

static void
test_bytes_above_ascii_compare_exactly(void **state)
{
	static const char *const l[] = { "j\xc3\xb6rg", NULL };	/* jörg */
	struct rcpt_check c = list_of(l);
	assert_int_equal(rcpt_check_verdict(&c, "J\xc3\xb6RG@example.org", NULL), RCPT_ACCEPT);
	/* Ö is not folded to ö: only ASCII case is ignored. */
	assert_int_equal(rcpt_check_verdict(&c, "j\xc3\x96rg@example.org", NULL), RCPT_UNKNOWN);
	rcpt_check_clear(&c);
}

static void
test_seal_drops_duplicates_and_a_large_list_finds_every_entry(void **state)
{
	enum { N = 100000 };
	struct rcpt_set *s = rcpt_set_new();
	char name[32], addr[64];
	/* Inserted out of order, each twice. */
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", (i * 7919) % N);
		rcpt_set_add(s, name);
		rcpt_set_add(s, name);
	}
	rcpt_set_seal(s);
	assert_int_equal(rcpt_set_count(s), N);
	struct rcpt_check c = { 0 };
	rcpt_check_set(&c, RCPT_CHECK_LIST, s);
	for (int i = 0; i < N; i++) {
		snprintf(addr, sizeof(addr), "USER%d@example.org", i);
		assert_int_equal(rcpt_check_verdict(&c, addr, NULL), RCPT_ACCEPT);
	}
	assert_int_equal(rcpt_check_verdict(&c, "user100000@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "user@example.org", NULL), RCPT_UNKNOWN);
	assert_int_equal(rcpt_check_verdict(&c, "user-1@example.org", NULL), RCPT_UNKNOWN);
	rcpt_check_clear(&c);
}

static void
test_list_entries_are_normalized_or_refused_with_a_reason(void **state)
{
	char out[RCPT_ADDR_LOCAL_MAX + 1], why[200], big[400];
	assert_int_equal(rcpt_addr_local("Alice", "example.org", out, sizeof(out), why,
	    sizeof(why)), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(rcpt_addr_local("BOB@Example.ORG.", "example.org", out, sizeof(out),
	    why, sizeof(why)), 0);
	assert_string_equal(out, "bob");
	assert_int_equal(rcpt_addr_local("bob@other.org", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_string_equal(why, "not an address of example.org");
	assert_int_equal(rcpt_addr_local("@example.org", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_int_equal(rcpt_addr_local("", "example.org", out, sizeof(out), why, sizeof(why)), -1);
	assert_int_equal(rcpt_addr_local("john doe", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_int_equal(rcpt_addr_local("a\rb", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_int_equal(rcpt_addr_local("a@b@example.org", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_int_equal(rcpt_addr_local("\xff\xfe", "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	assert_string_equal(why, "local part is not UTF-8");
	memset(big, 'a', 256);
	big[256] = '\0';
	assert_int_equal(rcpt_addr_local(big, "example.org", out, sizeof(out), why,
	    sizeof(why)), -1);
	big[255] = '\0';
	assert_int_equal(rcpt_addr_local(big, "example.org", out, sizeof(out), why,
	    sizeof(why)), 0);
}

/* ---- through mxd's configuration ---- */

static char dir[64];

static int
load(const char *text, struct mxd_config **cfg, char *err, size_t errsz)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/mxd.conf", dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -2;
	fprintf(f, "spool_dir = \"%s\";\n%s", dir, text);
	fclose(f);
	return mxd_config_load(path, cfg, err, errsz);
}

static int
setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/rcpt-check-test.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static enum rcpt_verdict
verdict(const struct mxd_config *cfg, const char *addr)
{
	const struct mxd_domain *d = mxd_config_domain(cfg, strchr(addr, '@') + 1);
	assert_non_null(d);
	return rcpt_check_verdict(&d->rcpt, addr, cfg->recipient_delimiter);
}

static void
test_config_file_list_and_file_merge_into_one_check(void **state)
{
	char path[128], text[1024], err[600];
	struct mxd_config *cfg;
	snprintf(path, sizeof(path), "%s/rcpts", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("# staff\n  carol  \n\ndave@A.test\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
	    "recipient_delimiter = \"+\";\n"
	    "domains = ( { name = \"a.test\"; next_hop = \"smtp:127.0.0.1:25\";\n"
	    "              recipients = [ \"alice\", \"Bob@a.test\" ];\n"
	    "              recipients_file = \"%s\"; },\n"
	    "            { name = \"b.test\"; next_hop = \"smtp:127.0.0.1:25\"; } );\n", path);
	assert_int_equal(load(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(verdict(cfg, "alice@a.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "bob+x@A.TEST"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "carol@a.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "dave@a.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "eve@a.test"), RCPT_UNKNOWN);
	assert_int_equal(mxd_config_domain(cfg, "b.test")->rcpt.mode, RCPT_CHECK_UNSET);
	assert_int_equal(verdict(cfg, "eve@b.test"), RCPT_ACCEPT);
	mxd_config_free(cfg);

	/* A bad line names the file and line. */
	f = fopen(path, "a");
	fputs("x@b.test\n", f);
	fclose(f);
	assert_int_equal(load(text, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":5: \"x@b.test\": not an address of a.test"));
	f = fopen(path, "w");
	fputs("alice\n", f);
	for (int i = 0; i < 1100; i++)
		fputc('a', f);
	fclose(f);
	assert_int_equal(load(text, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: line longer than 1024 bytes"));
}

static void
test_snapshot_check_replaces_the_file_check_of_its_domain(void **state)
{
	char path[128], err[600];
	struct mxd_config *cfg;
	char *locals[] = { "Zoe", "yann@a.test", "bad address" };
	Mxfleet__V1__DomainConfig dom = MXFLEET__V1__DOMAIN_CONFIG__INIT,
	    dom2 = MXFLEET__V1__DOMAIN_CONFIG__INIT;
	Mxfleet__V1__DomainRecipients ra = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT,
	    rb = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT, rc = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT,
	    rd = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT;
	Mxfleet__V1__ConfigSnapshot s = MXFLEET__V1__CONFIG_SNAPSHOT__INIT;
	Mxfleet__V1__DomainConfig *doms[] = { &dom, &dom2 };
	Mxfleet__V1__DomainRecipients *checks[] = { &ra, &rb, &rc, &rd };

	dom.name = "c.test";
	dom.next_hop = "smtp:127.0.0.1:25";
	ra.domain = "A.test";
	ra.mode = "list";
	ra.local_parts = locals;
	ra.n_local_parts = 3;
	rb.domain = "c.test";
	rb.mode = "any";
	rc.domain = "nosuch.test";
	rc.mode = "list";
	dom2.name = "d.test";
	dom2.next_hop = "lmtp:unix:/run/lmtp";
	rd.domain = "d.test";
	rd.mode = "verify";
	s.version = 7;
	s.domains = doms;
	s.n_domains = 2;
	s.recipient_checks = checks;
	s.n_recipient_checks = 4;
	size_t n = mxfleet__v1__config_snapshot__get_packed_size(&s);
	uint8_t *buf = malloc(n);
	mxfleet__v1__config_snapshot__pack(&s, buf);
	snprintf(path, sizeof(path), "%s/config-snapshot.pb", dir);
	FILE *f = fopen(path, "w");
	assert_int_equal(fwrite(buf, 1, n, f), n);
	fclose(f);
	free(buf);

	assert_int_equal(load(
	    "control = { server = \"127.0.0.1:1\"; cert = \"c\"; key = \"k\"; ca = \"ca\"; };\n"
	    "domains = ( { name = \"a.test\"; next_hop = \"smtp:127.0.0.1:25\";\n"
	    "              recipients = [ \"alice\" ]; },\n"
	    "            { name = \"b.test\"; next_hop = \"smtp:127.0.0.1:25\";\n"
	    "              recipients = [ \"bea\" ]; } );\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->snapshot_version, 7);
	/* a.test: controld's list replaced the file's; the bad entry was skipped. */
	assert_int_equal(verdict(cfg, "zoe@a.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "yann@a.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "alice@a.test"), RCPT_UNKNOWN);
	assert_int_equal(rcpt_set_count(mxd_config_domain(cfg, "a.test")->rcpt.set), 2);
	/* b.test: controld said nothing: the file's list stands. */
	assert_int_equal(verdict(cfg, "bea@b.test"), RCPT_ACCEPT);
	assert_int_equal(verdict(cfg, "zoe@b.test"), RCPT_UNKNOWN);
	/* c.test, controld's own domain, with mode any. */
	assert_int_equal(mxd_config_domain(cfg, "c.test")->rcpt.mode, RCPT_CHECK_ANY);
	assert_int_equal(verdict(cfg, "whoever@c.test"), RCPT_ACCEPT);
	/* d.test: verify (the SMTP worker probes its next hop at RCPT). */
	assert_int_equal(mxd_config_domain(cfg, "d.test")->rcpt.mode, RCPT_CHECK_VERIFY);
	mxd_config_free(cfg);
	unlink(path);
}

static void
test_config_refuses_checks_it_cannot_apply(void **state)
{
	struct mxd_config *cfg;
	char err[600];
	static const struct { const char *text, *want; } bad[] = {
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipient_check = \"verify\"; recipients = [ \"a\" ]; } );\n",
		  "verify takes no recipients" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipient_check = \"list\"; } );\n", "needs recipients or recipients_file" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipient_check = \"any\"; recipients = [ \"a\" ]; } );\n", "takes no recipients" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipient_check = \"some\"; } );\n", "expected any, list or verify" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipients_file = \"/nonexistent/rcpts\"; } );\n", "/nonexistent/rcpts: No such file" },
		{ "recipient_delimiter = \"@\";\n", "recipient_delimiter: expected one to eight" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipients_file = \"/dev/zero\"; } );\n", "/dev/zero:1: NUL byte" },
		{ "domains = ( { name = \"a.test\"; next_hop = \"smtp:h:25\"; "
		  "recipients_file = \"/\"; } );\n", "/: Is a directory" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(bad[i].text, &cfg, err, sizeof(err)), -1);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("case %zu: %s", i, err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_accepts_listed_local_parts_ignoring_ascii_case),
		cmocka_unit_test(test_list_refuses_prefixes_extensions_and_empty_local_parts),
		cmocka_unit_test(test_subaddress_matches_its_base_only_with_a_delimiter),
		cmocka_unit_test(test_unset_and_any_accept_every_local_part),
		cmocka_unit_test(test_bytes_above_ascii_compare_exactly),
		cmocka_unit_test(test_seal_drops_duplicates_and_a_large_list_finds_every_entry),
		cmocka_unit_test(test_list_entries_are_normalized_or_refused_with_a_reason),
		cmocka_unit_test(test_config_file_list_and_file_merge_into_one_check),
		cmocka_unit_test(test_snapshot_check_replaces_the_file_check_of_its_domain),
		cmocka_unit_test(test_config_refuses_checks_it_cannot_apply),
	};
	return cmocka_run_group_tests_name("rcpt_check", tests, setup_dir, teardown_dir);
}
