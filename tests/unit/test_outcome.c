/* Outcome records: the seq appended by the uploader is the one controld reads,
 * and a full channel counts the record as dropped instead of blocking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "outcome.h"

static void
test_appended_seq_is_read_back(void **state)
{
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	o.session_id = "abc";
	o.remote_ip = "192.0.2.1";
	o.tls_version = "TLSv1.3";
	uint8_t rec[256], out[300];
	size_t n = mxfleet__v1__outcome__pack(&o, rec);
	uint64_t seqs[] = { 1, 127, 128, 300, 1ULL << 40, UINT64_MAX };
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		size_t m = outcome_append_seq(out, rec, n, seqs[i]);
		Mxfleet__V1__Outcome *back = mxfleet__v1__outcome__unpack(NULL, m, out);
		assert_non_null(back);
		assert_int_equal(back->seq, seqs[i]);
		assert_string_equal(back->session_id, "abc");
		assert_string_equal(back->tls_version, "TLSv1.3");
		/* A second append wins: a resend after a restart renumbers nothing,
		 * but the last value is what counts. */
		uint8_t again[320];
		size_t k = outcome_append_seq(again, out, m, 7);
		Mxfleet__V1__Outcome *b2 = mxfleet__v1__outcome__unpack(NULL, k, again);
		assert_int_equal(b2->seq, 7);
		mxfleet__v1__outcome__free_unpacked(b2, NULL);
		mxfleet__v1__outcome__free_unpacked(back, NULL);
	}
}

static void
test_full_channel_counts_drops_without_blocking(void **state)
{
	int fds[2];
	uint64_t *dropped;
	assert_int_equal(outcome_channel_new(fds, &dropped), 0);
	int small = 4096;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct outcome_sink sink = { fds[0], dropped };
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	o.session_id = "x";
	for (int i = 0; i < 10000; i++)
		outcome_emit(&sink, &o);
	uint64_t d = outcome_take_dropped(dropped);
	assert_true(d > 0);
	/* What was not dropped arrived, one record per datagram. */
	uint8_t buf[1024];
	uint64_t got = 0;
	while (recv(fds[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		got++;
	assert_int_equal(got + d, 10000);
	assert_int_equal(outcome_take_dropped(dropped), 0);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appended_seq_is_read_back),
		cmocka_unit_test(test_full_channel_counts_drops_without_blocking),
	};
	return cmocka_run_group_tests_name("outcome", tests, NULL, NULL);
}
