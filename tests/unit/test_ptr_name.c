/* What mxd makes of a client's PTR answer (mxd/smtpd/ptr_name.c): the name
 * an operator sees in remote_ptr, the session log and Received:, or none. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "ptr_name.h"

static void
test_name_is_lower_cased_without_the_final_dot(void **state)
{
	char out[PTR_NAME_SIZE];
	(void)state;

	assert_int_equal(ptr_name_clean("Mail-DB8EUR05on2100.Outbound.Protection.Outlook.COM.",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "mail-db8eur05on2100.outbound.protection.outlook.com");
	assert_int_equal(ptr_name_clean("mx1.example.org", out, sizeof(out)), 0);
	assert_string_equal(out, "mx1.example.org");
	assert_int_equal(ptr_name_clean("localhost.", out, sizeof(out)), 0);
	assert_string_equal(out, "localhost");
}

static void
test_names_that_are_not_hostnames_are_not_used(void **state)
{
	static const char *const bad[] = {
		"", ".", "mx1..example.org", "-mx.example.org", "mx_1.example.org",
		"mx1.example.org\n", "mx1.example.org level=error", "m\xc3\xa9l.example.org",
		"a.b.c.d.e\"=x",
		/* reads as an address: someone's "PTR 192.0.2.1" */
		"192.0.2.1", "192.0.2.1.", "10.0.0.7.example.1234",
		/* 254 octets: past DNSNAME_MAX */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
	};
	char out[PTR_NAME_SIZE];
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "stale");
		assert_int_equal(ptr_name_clean(bad[i], out, sizeof(out)), -1);
		assert_string_equal(out, "");
	}
	assert_int_equal(ptr_name_clean(NULL, out, sizeof(out)), -1);
	/* a digit-led label elsewhere is an ordinary host name */
	assert_int_equal(ptr_name_clean("192-0-2-1.dsl.example.net", out, sizeof(out)), 0);
	assert_string_equal(out, "192-0-2-1.dsl.example.net");
}

static void
test_confirmation_needs_the_clients_own_address_among_the_records(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	unsigned char client[16], recs[3][4];
	(void)state;

	inet_pton(AF_INET, "127.0.9.2", &sin.sin_addr);
	assert_int_equal(ptr_name_client((struct sockaddr *)&sin, client), AF_INET);
	inet_pton(AF_INET, "127.0.9.1", recs[0]);
	inet_pton(AF_INET, "127.0.9.3", recs[1]);
	inet_pton(AF_INET, "127.0.9.2", recs[2]);
	assert_false(ptr_name_confirms(recs, 2, 4, client));
	assert_true(ptr_name_confirms(recs, 3, 4, client));
	assert_false(ptr_name_confirms(recs, 0, 4, client));
}

static void
test_ipv4_mapped_clients_are_confirmed_by_a_records(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	unsigned char client[16], a[4], aaaa[16];
	(void)state;

	inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6.sin6_addr);
	assert_int_equal(ptr_name_client((struct sockaddr *)&sin6, client), AF_INET);
	inet_pton(AF_INET, "192.0.2.7", a);
	assert_true(ptr_name_confirms(a, 1, 4, client));

	inet_pton(AF_INET6, "2001:db8::25", &sin6.sin6_addr);
	assert_int_equal(ptr_name_client((struct sockaddr *)&sin6, client), AF_INET6);
	inet_pton(AF_INET6, "2001:db8::25", aaaa);
	assert_true(ptr_name_confirms(aaaa, 1, 16, client));
	inet_pton(AF_INET6, "2001:db8::26", aaaa);
	assert_false(ptr_name_confirms(aaaa, 1, 16, client));

	struct sockaddr other = { .sa_family = AF_UNIX };
	assert_int_equal(ptr_name_client(&other, client), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_is_lower_cased_without_the_final_dot),
		cmocka_unit_test(test_names_that_are_not_hostnames_are_not_used),
		cmocka_unit_test(test_confirmation_needs_the_clients_own_address_among_the_records),
		cmocka_unit_test(test_ipv4_mapped_clients_are_confirmed_by_a_records),
	};
	return cmocka_run_group_tests_name("ptr_name", tests, NULL, NULL);
}
