/* mxd's configuration: defaults, and errors that name the file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "mxd_config.h"
#include "mxd_identity.h"
#include "mxd_keyfile.h"

static char cfgpath[64];

static int
load(const char *text, struct mxd_config **cfg, char *err, size_t errsz)
{
	snprintf(cfgpath, sizeof(cfgpath), "/tmp/mxd-config-test.XXXXXX");
	int fd = mkstemp(cfgpath);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -2;
	close(fd);
	int rc = mxd_config_load(cfgpath, cfg, err, errsz);
	unlink(cfgpath);
	return rc;
}

static void
test_config_defaults(void **state)
{
	struct mxd_config *cfg;
	char err[600];
	assert_int_equal(load("hostname = \"mx.example\";\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->hostname, "mx.example");
	assert_int_equal(cfg->workers, 1);
	assert_int_equal(cfg->session_tickets, 0);
	assert_int_equal(cfg->tls_min_version, TLS1_2_VERSION);
	assert_int_equal(cfg->message_size, 52428800);
	assert_int_equal(cfg->nlisten, 2);
	assert_int_equal(cfg->ntrusted, 0);
	/* The queue schedule of issue 4: 5 min, doubling to 4 h, give up after
	 * 5 days, delay notice after 4 h; policies refreshed hourly. */
	assert_int_equal(cfg->retry_min, 300);
	assert_int_equal(cfg->retry_max, 14400);
	assert_int_equal(cfg->max_age, 5 * 86400);
	assert_int_equal(cfg->delay_dsn, 4 * 3600);
	assert_int_equal(cfg->sts_refresh_interval, 3600);
	assert_string_equal(cfg->source_ipv4, "");
	assert_string_equal(cfg->source_ipv6, "");
	mxd_config_free(cfg);
	/* Source addresses are kept in canonical form. */
	assert_int_equal(load("delivery = { source_ipv4 = \"192.0.2.25\"; "
	    "source_ipv6 = \"2001:DB8:0::25\"; };\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->source_ipv4, "192.0.2.25");
	assert_string_equal(cfg->source_ipv6, "2001:db8::25");
	mxd_config_free(cfg);
}

static void
test_config_full_example(void **state)
{
	struct mxd_config *cfg;
	char err[600];
	const char *text =
	    "listen = [ \"127.0.0.11:2525\", \"[::1]:2525\" ];\n"
	    "workers = 2;\n"
	    "trusted_networks = [ \"10.0.0.0/8\", \"::1/128\" ];\n"
	    "domains = ( { name = \"Example.TEST\"; next_hop = \"lmtp:unix:/run/lmtp\"; },\n"
	    "            { name = \"b.test\"; next_hop = \"smtp:[::1]:25\"; } );\n"
	    "tls = { min_version = \"TLSv1.3\"; session_tickets = true;\n"
	    "        certificates = ( { cert = \"/c.pem\"; key = \"/k.pem\"; } ); };\n"
	    "limits = { message_size = 1048576; errors = 3; };\n"
	    "delivery = { retry_min = 5; retry_max = 50; next_hop_tls = \"none\"; };\n";
	assert_int_equal(load(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->workers, 2);
	assert_int_equal(cfg->ndomains, 2);
	assert_non_null(mxd_config_domain(cfg, "example.test"));
	assert_non_null(mxd_config_domain(cfg, "EXAMPLE.test."));
	assert_null(mxd_config_domain(cfg, "sub.example.test"));
	assert_int_equal(cfg->domains[0].nh.proto, MXD_NH_LMTP);
	assert_true(cfg->domains[0].nh.is_unix);
	assert_string_equal(cfg->domains[1].nh.host, "::1");
	assert_int_equal(cfg->domains[1].nh.port, 25);
	assert_int_equal(cfg->tls_min_version, TLS1_3_VERSION);
	assert_int_equal(cfg->session_tickets, 1);
	assert_int_equal(cfg->max_errors, 3);
	assert_int_equal(cfg->next_hop_tls, 0);

	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	assert_true(mxd_config_trusted(cfg, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "11.1.2.3", &sin.sin_addr);
	assert_false(mxd_config_trusted(cfg, (struct sockaddr *)&sin));
	mxd_config_free(cfg);
}

static void
test_config_errors_name_line_and_key(void **state)
{
	static const struct { const char *text; const char *expect; } cases[] = {
		{ "hostname = \"a\";\nbogus_key = 1;\n", ":2: bogus_key: unknown key" },
		{ "workers = 0;\n", ":1: workers: 0 is out of range" },
		{ "workers = \"two\";\n", ":1: workers: expected an integer" },
		{ "limits = { erors = 3; };\n", ":1: limits.erors: unknown key" },
		{ "\n\ndomains = ( { name = \"x\"; next_hop = \"ftp:x\"; } );\n", ":3: domains[0].next_hop: expected smtp:" },
		{ "listen = [ \"localhost:25\" ];\n", ":1: listen[0]: expected IPv4:PORT" },
		{ "tls = { min_version = \"SSLv3\"; };\n", "tls.min_version: expected TLSv1" },
		{ "trusted_networks = [ \"10.0.0.0/33\" ];\n", "trusted_networks[0]: expected a network" },
		{ "hostname = \"a\";\nworkers = ;\n", ":2: syntax error" },
		{ "routes = ( { recipient_domain = \"a.test\"; } );\n", "routes[0]: transport is required" },
		{ "routes = ( { transport = \"smtps:x:25\"; } );\n", "routes[0].transport: expected smtp:HOST[:PORT]" },
		{ "routes = ( { transport = \"lmtp:host\"; } );\n", "routes[0].transport: expected" },
		{ "routes = ( { sender_domain = \"a@b\"; transport = \"mx\"; } );\n", "routes[0].sender_domain: not a domain" },
		{ "routes = ( { min_attempt = -1; transport = \"mx\"; } );\n", "routes[0].min_attempt: -1 is out of range" },
		{ "routes = ( { colour = 1; transport = \"mx\"; } );\n", "routes[0].colour: unknown key" },
		{ "relay_next_hop = \"mx\";\n", "relay_next_hop: expected smtp:" },
		{ "tls_policies = ( { domain = \"a.test\"; mode = \"paranoid\"; } );\n", "tls_policies[0].mode: expected none, may" },
		{ "tls_policies = ( { domain = \"a.test\"; } );\n", "tls_policies[0]: both domain and mode" },
		{ "tls_policies = ( { domain = \"x y\"; mode = \"may\"; } );\n", "tls_policies[0].domain: not a domain" },
		{ "submission_auth = ( { server = \"h:587\"; user = \"u\"; password_file = \"/nonexistent/pw\"; } );\n",
		  "submission_auth[0].password_file: cannot open /nonexistent/pw" },
		{ "submission_auth = ( { server = \"h\"; user = \"u\"; password_file = \"/dev/null\"; } );\n",
		  "submission_auth[0].server: expected HOST:PORT" },
		{ "submission_auth = ( { server = \"h:587\"; user = \"u\"; password_file = \"/dev/null\"; } );\n",
		  "holds no password" },
		{ "delivery = { source_ipv4 = \"mx.example\"; };\n",
		  "delivery.source_ipv4: expected an IPv4 address" },
		{ "delivery = { source_ipv4 = \"2001:db8::1\"; };\n",
		  "delivery.source_ipv4: expected an IPv4 address" },
		{ "delivery = { source_ipv6 = \"192.0.2.1\"; };\n",
		  "delivery.source_ipv6: expected an IPv6 address" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mxd_config *cfg = NULL;
		char err[600] = "";
		assert_int_equal(load(cases[i].text, &cfg, err, sizeof(err)), -1);
		if (strstr(err, cases[i].expect) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].expect);
	}
}

static void
test_config_route_prefers_local_domain(void **state)
{
	struct mxd_config *cfg;
	char err[600];
	const char *name;
	assert_int_equal(load("domains = ( { name = \"a.test\"; next_hop = \"smtp:127.0.0.1:26\"; } );\n"
	    "relay_next_hop = \"smtp:127.0.0.1:27\";\n", &cfg, err, sizeof(err)), 0);
	assert_non_null(mxd_config_route(cfg, "s@x.test", "u@a.test", 1, &name));
	assert_string_equal(name, "smtp:127.0.0.1:26");
	assert_non_null(mxd_config_route(cfg, "s@x.test", "u@elsewhere.test", 1, &name));
	assert_string_equal(name, "smtp:127.0.0.1:27");
	mxd_config_free(cfg);
}

static void
test_config_routes_first_match_and_attempts(void **state)
{
	struct mxd_config *cfg;
	char err[600];
	const char *name;
	const struct mxd_nexthop *nh;
	assert_int_equal(load(
	    "domains = ( { name = \"local.test\"; next_hop = \"lmtp:unix:/run/lmtp\"; } );\n"
	    "relay_next_hop = \"smtp:127.0.0.1:27\";\n"
	    "routes = ( { recipient_domain = \"R.test\"; transport = \"smtp:hub.test\"; },\n"
	    "  { sender_domain = \"vip.test\"; transport = \"submission:smtp.provider.test\"; },\n"
	    "  { recipient_domain = \"r.test\"; transport = \"smtp:never.test:25\"; },\n"
	    "  { recipient_domain = \"late.test\"; min_attempt = 3; transport = \"mx\"; } );\n",
	    &cfg, err, sizeof(err)), 0);
	/* A local domain is never routed elsewhere. */
	nh = mxd_config_route(cfg, "s@vip.test", "u@local.test", 9, &name);
	assert_string_equal(name, "lmtp:unix:/run/lmtp");
	/* Recipient domain, case-insensitive; the first match wins; the port
	 * defaults to the protocol's. */
	nh = mxd_config_route(cfg, "s@vip.test", "u@r.TEST", 1, &name);
	assert_string_equal(name, "smtp:hub.test");
	assert_int_equal(nh->proto, MXD_NH_SMTP);
	assert_int_equal(nh->port, 25);
	nh = mxd_config_route(cfg, "s@vip.test", "u@other.test", 1, &name);
	assert_string_equal(name, "submission:smtp.provider.test");
	assert_int_equal(nh->proto, MXD_NH_SUBMISSION);
	assert_int_equal(nh->port, 587);
	assert_string_equal(nh->host, "smtp.provider.test");
	/* The null sender matches no sender-domain route. */
	mxd_config_route(cfg, "", "u@other.test", 1, &name);
	assert_string_equal(name, "smtp:127.0.0.1:27");
	/* min_attempt: before it, the relay; from it on, the route. */
	mxd_config_route(cfg, "s@x.test", "u@late.test", 2, &name);
	assert_string_equal(name, "smtp:127.0.0.1:27");
	nh = mxd_config_route(cfg, "s@x.test", "u@late.test", 3, &name);
	assert_string_equal(name, "mx");
	assert_int_equal(nh->proto, MXD_NH_MX);
	mxd_config_free(cfg);
}

static void
test_config_tls_policies_and_credentials(void **state)
{
	struct mxd_config *cfg;
	char err[600], pwpath[64] = "/tmp/mxd-pw-test.XXXXXX";
	int fd = mkstemp(pwpath);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "pa55word\nsecond line\n", 21), 21);
	close(fd);
	char text[1024];
	snprintf(text, sizeof(text),
	    "tls_policies = ( { domain = \"a.test\"; mode = \"dane-only\"; },\n"
	    "  { domain = \".a.test\"; mode = \"secure\"; },\n"
	    "  { domain = \".deep.a.test\"; mode = \"none\"; },\n"
	    "  { domain = \"b.test\"; mode = \"encrypt\"; } );\n"
	    "submission_auth = ( { server = \"smtp.provider.test:587\"; user = \"u@p\";\n"
	    "  password_file = \"%s\"; } );\n", pwpath);
	int rc = load(text, &cfg, err, sizeof(err));
	unlink(pwpath);
	assert_int_equal(rc, 0);
	assert_int_equal(mxd_config_tls_policy(cfg, "A.test")->level, MXD_TLS_DANE_ONLY);
	assert_int_equal(mxd_config_tls_policy(cfg, "mx.a.test")->level, MXD_TLS_SECURE);
	assert_int_equal(mxd_config_tls_policy(cfg, "x.deep.a.test")->level, MXD_TLS_NONE);
	assert_int_equal(mxd_config_tls_policy(cfg, "b.test.")->level, MXD_TLS_ENCRYPT);
	assert_null(mxd_config_tls_policy(cfg, "sub.b.test"));
	assert_null(mxd_config_tls_policy(cfg, "xa.test"));
	const struct mxd_sasl *cred = mxd_config_sasl(cfg, "SMTP.provider.test", 587);
	assert_non_null(cred);
	assert_string_equal(cred->user, "u@p");
	assert_string_equal(cred->password, "pa55word");
	assert_null(mxd_config_sasl(cfg, "smtp.provider.test", 25));
	mxd_config_free(cfg);
}

/* The host identity's keys (docs/dns.md#host-identity): public_addresses
 * kept in canonical form, the next key's default next to the first key. */
/* A configuration refused, with an error that says expect. */
struct bad_config {
	const char	*text;
	const char	*expect;
};

static void
assert_config_refused(const struct bad_config *bad, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct mxd_config *cfg = NULL;
		char err[600] = "";
		assert_int_equal(load(bad[i].text, &cfg, err, sizeof(err)), -1);
		if (strstr(err, bad[i].expect) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, bad[i].expect);
	}
}

static void
test_config_host_identity_keys(void **state)
{
	static const struct bad_config bad[] = {
		{ "public_addresses = [ \"mx.example\" ];\n",
		  ":1: public_addresses[0]: expected an IPv4 or IPv6 address" },
		{ "public_addresses = [ \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\","
		  " \"10\", \"11\", \"12\", \"13\", \"14\", \"15\", \"16\", \"17\" ];\n",
		  "public_addresses: at most 16 addresses" },
		{ "tls = { next_key = \"\"; };\n", ":1: tls.next_key: expected a file path" },
		{ "tls = { next_key = 3; };\n", "tls.next_key: expected a string" },
	};
	assert_config_refused(bad, sizeof(bad) / sizeof(bad[0]));
	struct mxd_config *cfg = NULL;
	char err[600] = "";
	assert_int_equal(load("public_addresses = [ \"192.0.2.25\", \"2001:DB8:0::25\" ];\n"
	    "tls = { certificates = ( { cert = \"/k/a.pem\"; key = \"/k/a.key\"; } ); };\n",
	    &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->npublic_addresses, 2);
	assert_string_equal(cfg->public_addresses[1], "2001:db8::25");
	char *next = mxd_keyfile_next_key_path(cfg);
	assert_string_equal(next, "/k/a.key.next");
	free(next);
	mxd_config_free(cfg);
}

/* control.servers: several controld replicas, each "HOST:PORT"; the old
 * one-address control.server still works; both at once is an error. */
static void
test_config_control_servers(void **state)
{
#define CTL_KEYS "cert = \"/c.pem\"; key = \"/c.key\"; ca = \"/ca.pem\";"
	static const struct bad_config bad[] = {
		{ "control = { server = \"a:1\"; servers = [ \"b:2\" ]; " CTL_KEYS " };\n",
		  "control.servers: set either server (one controld) or servers" },
		{ "control = { servers = [ ]; " CTL_KEYS " };\n",
		  "control.servers: an empty list" },
		{ "control = { servers = [ \"a:1\", \"nope\" ]; " CTL_KEYS " };\n",
		  "control.servers[1]: expected HOST:PORT" },
		{ "control = { servers = [ \"a:1\", \"a:99999\" ]; " CTL_KEYS " };\n",
		  "control.servers[1]: expected HOST:PORT" },
		{ "control = { servers = [ \"a:1\", \"a:1\" ]; " CTL_KEYS " };\n",
		  "control.servers[1]: a:1 is listed twice" },
		{ "control = { servers = [ \"a:1\", 7 ]; " CTL_KEYS " };\n",
		  "mismatched element type in array" },
		{ "control = { " CTL_KEYS " };\n",
		  "server (or servers), cert, key and ca are required" },
		{ "control = { servers = [ \"a:1\" ]; ack_timeout = 0; " CTL_KEYS " };\n",
		  "control.ack_timeout" },
	};
	assert_config_refused(bad, sizeof(bad) / sizeof(bad[0]));
	struct mxd_config *cfg = NULL;
	char err[600] = "";
	assert_int_equal(load("control = { servers = [ \"ctl1.example:7443\", "
	    "\"[2001:db8::2]:7444\" ]; " CTL_KEYS " };\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->ncontrol_servers, 2);
	assert_string_equal(cfg->control_servers[0].host, "ctl1.example");
	assert_int_equal(cfg->control_servers[0].port, 7443);
	assert_string_equal(cfg->control_servers[1].addr, "[2001:db8::2]:7444");
	assert_string_equal(cfg->control_servers[1].host, "2001:db8::2");
	assert_int_equal(cfg->control_servers[1].port, 7444);
	assert_string_equal(cfg->control_server, "ctl1.example:7443");
	assert_int_equal(cfg->control_ack_timeout, 30);
	mxd_config_free(cfg);
	assert_int_equal(load("control = { server = \"ctl1.example:7443\"; " CTL_KEYS " };\n",
	    &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->ncontrol_servers, 1);
	assert_string_equal(cfg->control_servers[0].host, "ctl1.example");
	assert_string_equal(cfg->control_host, "ctl1.example");
	assert_int_equal(cfg->control_port, 7443);
	mxd_config_free(cfg);
#undef CTL_KEYS
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_full_example),
		cmocka_unit_test(test_config_errors_name_line_and_key),
		cmocka_unit_test(test_config_route_prefers_local_domain),
		cmocka_unit_test(test_config_routes_first_match_and_attempts),
		cmocka_unit_test(test_config_tls_policies_and_credentials),
		cmocka_unit_test(test_config_host_identity_keys),
		cmocka_unit_test(test_config_control_servers),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
