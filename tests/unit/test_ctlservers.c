/* control.servers: which controld the uploader uses after each failure, and
 * what it logs (mxd/uploader/ctlservers.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ctlservers.h"
#include "grpc.h"
#include "mxd_config.h"

static struct mxd_control_server three[] = {
	{ "a.example:7443", "a.example", 7443 },
	{ "192.0.2.2:7443", "192.0.2.2", 7443 },
	{ "[2001:db8::3]:7444", "2001:db8::3", 7444 },
};

static void
test_ctlservers_moves_on_in_order_and_logs_each_move_once(void **state)
{
	struct ctlservers cs;
	char line[1024];
	ctlservers_init(&cs, three, 3, NULL);
	assert_string_equal(ctlservers_addr(&cs), "a.example:7443");
	/* Without authority each server's certificate must name its own host. */
	assert_string_equal(ctlservers_authority(&cs), "a.example");

	assert_int_equal(ctlservers_failed(&cs, "connect: Connection refused", line,
	    sizeof(line)), 1);
	assert_non_null(strstr(line, "event=control_failover server=a.example:7443 "));
	assert_non_null(strstr(line, "error=\"connect: Connection refused\" next=192.0.2.2:7443"));
	assert_string_equal(ctlservers_host(&cs), "192.0.2.2");
	assert_string_equal(ctlservers_authority(&cs), "192.0.2.2");
	assert_int_equal(ctlservers_failed(&cs, "TLS: certificate verify failed", line,
	    sizeof(line)), 1);
	assert_non_null(strstr(line, "next=[2001:db8::3]:7444"));
	assert_string_equal(ctlservers_host(&cs), "2001:db8::3");
	assert_int_equal(ctlservers_port(&cs), 7444);
	/* The third in a row: all are down, said once. */
	assert_int_equal(ctlservers_failed(&cs, "connect: Connection refused", line,
	    sizeof(line)), 1);
	assert_non_null(strstr(line, "event=controld_unreachable servers=3"));
	assert_string_equal(ctlservers_addr(&cs), "a.example:7443");
	/* Retries after that: quiet, still going round. */
	for (int i = 0; i < 5; i++) {
		ctlservers_failed(&cs, "connect: Connection refused", line, sizeof(line));
		assert_string_equal(line, "");
	}
	assert_string_equal(ctlservers_addr(&cs), "[2001:db8::3]:7444");
	/* Connected: mxd stays there; the next failure is news again. */
	ctlservers_connected(&cs);
	assert_int_equal(ctlservers_failed(&cs, "connection lost", line, sizeof(line)), 1);
	assert_non_null(strstr(line, "server=[2001:db8::3]:7444 state=unreachable"));
	assert_string_equal(ctlservers_addr(&cs), "a.example:7443");
}

static void
test_ctlservers_one_server_logs_once_per_outage(void **state)
{
	struct ctlservers cs;
	char line[1024];
	ctlservers_init(&cs, three, 1, "controld.example");
	assert_string_equal(ctlservers_authority(&cs), "controld.example");
	assert_int_equal(ctlservers_failed(&cs, "connection lost", line, sizeof(line)), 0);
	assert_non_null(strstr(line, "event=controld_unreachable servers=1 server=a.example:7443"));
	ctlservers_failed(&cs, "connect: Connection refused", line, sizeof(line));
	assert_string_equal(line, "");
	assert_string_equal(ctlservers_addr(&cs), "a.example:7443");
	ctlservers_connected(&cs);
	ctlservers_failed(&cs, "connection lost", line, sizeof(line));
	assert_non_null(strstr(line, "event=controld_unreachable"));
}

static void
test_ctlservers_faults_are_server_trouble_not_refusals(void **state)
{
	assert_true(ctlservers_status_is_fault(GRPC_UNAVAILABLE));
	assert_true(ctlservers_status_is_fault(GRPC_DEADLINE_EXCEEDED));
	/* A refused batch is the batch's fault: another replica refuses it too. */
	assert_false(ctlservers_status_is_fault(GRPC_RESOURCE_EXHAUSTED));
	assert_false(ctlservers_status_is_fault(GRPC_INVALID_ARGUMENT));
	assert_false(ctlservers_status_is_fault(GRPC_PERMISSION_DENIED));
	assert_false(ctlservers_status_is_fault(GRPC_OK));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctlservers_moves_on_in_order_and_logs_each_move_once),
		cmocka_unit_test(test_ctlservers_one_server_logs_once_per_outage),
		cmocka_unit_test(test_ctlservers_faults_are_server_trouble_not_refusals),
	};
	return cmocka_run_group_tests_name("ctlservers", tests, NULL, NULL);
}
