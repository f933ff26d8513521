/* Outcome upload, bounded (issue 9, item 5): a batch is cut by bytes so it
 * stays under controld's max_message whatever its records hold, and one
 * record is kept under the journal's bound by cutting its policy strings,
 * never by dropping it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "outcome.h"
#include "upload_batch.h"

/* An outbound record with an MTA-STS policy of nlines "mx:" lines. */
struct big {
	Mxfleet__V1__Outcome		 o;
	Mxfleet__V1__PolicyResult	 pr, *prs[1];
	char				**lines;
	size_t				 nlines;
};

static void
big_init(struct big *b, size_t nlines, size_t linelen)
{
	mxfleet__v1__outcome__init(&b->o);
	mxfleet__v1__policy_result__init(&b->pr);
	b->o.session_id = "big";
	b->o.direction = MXFLEET__V1__DIRECTION__DIRECTION_OUTBOUND;
	b->o.remote_ip = "192.0.2.7";
	b->nlines = nlines;
	b->lines = calloc(nlines, sizeof(char *));
	for (size_t i = 0; i < nlines; i++) {
		b->lines[i] = malloc(linelen + 1);
		int n = snprintf(b->lines[i], linelen + 1, "mx: mx%05zu.", i);
		memset(b->lines[i] + n, 'p', linelen - (size_t)n);
		b->lines[i][linelen] = '\0';
	}
	b->pr.policy_type = "sts";
	b->pr.policy_domain = "big.test";
	b->pr.policy_strings = b->lines;
	b->pr.n_policy_strings = nlines;
	b->pr.result_type = "success";
	b->prs[0] = &b->pr;
	b->o.policy_results = b->prs;
	b->o.n_policy_results = 1;
}

static void
big_free(struct big *b)
{
	for (size_t i = 0; i < b->nlines; i++)
		free(b->lines[i]);
	free(b->lines);
}

static size_t
pack(const Mxfleet__V1__Outcome *o, uint8_t **out)
{
	size_t n = mxfleet__v1__outcome__get_packed_size(o);
	*out = malloc(n);
	return mxfleet__v1__outcome__pack(o, *out);
}

static void
test_batch_of_large_records_is_cut_by_bytes(void **state)
{
	struct big b;
	struct upload_batch ub;
	uint8_t *rec;
	big_init(&b, 2000, 28);		/* ~60 KiB */
	size_t len = pack(&b.o, &rec);
	assert_true(len > 55000 && len <= JOURNAL_REC_MAX);

	upload_batch_init(&ub);
	uint64_t seq = 1, batches = 0, max_seen = 0;
	/* 80 records: 4.8 MB, over controld's 4 MiB, when sent as one. */
	while (seq <= 80) {
		upload_batch_begin(&ub, "mx1.fleet.test", 1u << 20, 500);
		while (seq <= 80 && upload_batch_add(&ub, seq, rec, len))
			seq++;
		upload_batch_end(&ub, 0, 3, 0);
		assert_true(ub.count > 0);
		assert_true(ub.b.len <= 1u << 20);
		if (ub.b.len > max_seen)
			max_seen = ub.b.len;
		Mxfleet__V1__OutcomeBatch *m = mxfleet__v1__outcome_batch__unpack(NULL, ub.b.len,
		    (const uint8_t *)ub.b.data);
		assert_non_null(m);
		assert_string_equal(m->host_id, "mx1.fleet.test");
		assert_int_equal(m->n_outcomes, ub.count);
		assert_int_equal(m->seq, ub.last);
		assert_int_equal(m->outcomes[0]->seq, ub.first);
		assert_int_equal(m->outcomes[m->n_outcomes - 1]->seq, ub.last);
		assert_int_equal(m->outcomes[0]->policy_results[0]->n_policy_strings, 2000);
		assert_int_equal(m->dropped, 3);
		mxfleet__v1__outcome_batch__free_unpacked(m, NULL);
		batches++;
	}
	assert_int_equal(seq, 81);
	assert_true(batches >= 5);
	assert_true(max_seen > (1u << 20) - 70000);	/* full batches, not one record each */
	upload_batch_free(&ub);
	free(rec);
	big_free(&b);
}

static void
test_record_over_the_byte_bound_goes_alone(void **state)
{
	struct upload_batch ub;
	static uint8_t rec[JOURNAL_REC_MAX];
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	o.session_id = "s";
	size_t len = mxfleet__v1__outcome__pack(&o, rec);

	upload_batch_init(&ub);
	upload_batch_begin(&ub, "h", 16384, 500);
	/* A record larger than the whole bound is still taken, first... */
	assert_int_equal(upload_batch_add(&ub, 7, rec, JOURNAL_REC_MAX), 1);
	/* ...and alone: not even a small one joins it. */
	assert_int_equal(upload_batch_add(&ub, 8, rec, len), 0);
	upload_batch_end(&ub, 0, 0, 0);
	assert_int_equal(ub.count, 1);
	assert_int_equal(ub.last, 7);

	/* The count bound still holds for small records. */
	upload_batch_begin(&ub, "h", 1u << 20, 3);
	for (uint64_t s = 1; s <= 3; s++)
		assert_int_equal(upload_batch_add(&ub, s, rec, len), 1);
	assert_true(upload_batch_full(&ub));
	assert_int_equal(upload_batch_add(&ub, 4, rec, len), 0);
	/* An empty batch carries the seq it is given (counters only). */
	upload_batch_begin(&ub, "h", 1u << 20, 3);
	upload_batch_end(&ub, 42, 1, 2);
	Mxfleet__V1__OutcomeBatch *m = mxfleet__v1__outcome_batch__unpack(NULL, ub.b.len,
	    (const uint8_t *)ub.b.data);
	assert_non_null(m);
	assert_int_equal(m->n_outcomes, 0);
	assert_int_equal(m->seq, 42);
	assert_int_equal(m->dropped, 1);
	assert_int_equal(m->corrupt, 2);
	mxfleet__v1__outcome_batch__free_unpacked(m, NULL);
	upload_batch_free(&ub);
}

static void
test_oversized_record_is_truncated_with_a_marker_not_dropped(void **state)
{
	struct big b;
	static uint8_t out[OUTCOME_MAX_RECORD];
	int truncated = -1;
	/* 5000 policy lines of 100 bytes: ~500 KB, far over the bound. */
	big_init(&b, 5000, 100);
	b.pr.additional_information = "x";
	assert_true(mxfleet__v1__outcome__get_packed_size(&b.o) > OUTCOME_MAX_RECORD);
	size_t n = outcome_pack_bounded(&b.o, out, sizeof(out), &truncated);
	assert_true(n > 0 && n <= sizeof(out));
	assert_int_equal(truncated, 1);
	Mxfleet__V1__Outcome *back = mxfleet__v1__outcome__unpack(NULL, n, out);
	assert_non_null(back);
	/* The record is all there but for the cut list. */
	assert_string_equal(back->session_id, "big");
	assert_string_equal(back->remote_ip, "192.0.2.7");
	assert_int_equal(back->n_policy_results, 1);
	const Mxfleet__V1__PolicyResult *pr = back->policy_results[0];
	assert_string_equal(pr->policy_type, "sts");
	assert_string_equal(pr->result_type, "success");
	assert_string_equal(pr->additional_information, "x");
	assert_true(pr->n_policy_strings > 1 && pr->n_policy_strings < 5000);
	/* The first lines, whole, in order; the last says how many are gone. */
	assert_string_equal(pr->policy_strings[0], b.lines[0]);
	char want[64];
	snprintf(want, sizeof(want), "[%zu more truncated]", 5000 - (pr->n_policy_strings - 1));
	assert_string_equal(pr->policy_strings[pr->n_policy_strings - 1], want);
	/* The caller's record is untouched. */
	assert_int_equal(b.pr.n_policy_strings, 5000);
	assert_ptr_equal(b.pr.policy_strings, b.lines);
	mxfleet__v1__outcome__free_unpacked(back, NULL);
	big_free(&b);
}

static void
test_long_policy_string_is_cut_with_marker_on_a_character_boundary(void **state)
{
	static uint8_t out[OUTCOME_MAX_RECORD];
	Mxfleet__V1__Outcome o = MXFLEET__V1__OUTCOME__INIT;
	Mxfleet__V1__PolicyResult pr = MXFLEET__V1__POLICY_RESULT__INIT, *prs[1] = { &pr };
	/* One 100 KB string of two-byte characters (U+00E9). */
	size_t len = 100000;
	char *s = malloc(len + 1);
	for (size_t i = 0; i < len; i += 2) {
		s[i] = (char)0xc3;
		s[i + 1] = (char)0xa9;
	}
	s[len] = '\0';
	char *strs[1] = { s };
	pr.policy_strings = strs;
	pr.n_policy_strings = 1;
	o.policy_results = prs;
	o.n_policy_results = 1;
	int truncated = 0;
	size_t n = outcome_pack_bounded(&o, out, sizeof(out), &truncated);
	assert_true(n > 0);
	assert_int_equal(truncated, 1);
	Mxfleet__V1__Outcome *back = mxfleet__v1__outcome__unpack(NULL, n, out);
	assert_non_null(back);
	const char *got = back->policy_results[0]->policy_strings[0];
	size_t gl = strlen(got), ml = strlen(OUTCOME_TRUNCATED);
	assert_true(gl > ml && gl < 4096);
	assert_string_equal(got + gl - ml, OUTCOME_TRUNCATED);
	assert_int_equal((gl - ml) % 2, 0);	/* no half character before the marker */
	assert_memory_equal(got, s, gl - ml);
	mxfleet__v1__outcome__free_unpacked(back, NULL);

	/* A record that fits is packed as it is. */
	pr.n_policy_strings = 0;
	n = outcome_pack_bounded(&o, out, sizeof(out), &truncated);
	assert_int_equal(truncated, 0);
	assert_int_equal(n, mxfleet__v1__outcome__get_packed_size(&o));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_of_large_records_is_cut_by_bytes),
		cmocka_unit_test(test_record_over_the_byte_bound_goes_alone),
		cmocka_unit_test(test_oversized_record_is_truncated_with_a_marker_not_dropped),
		cmocka_unit_test(test_long_policy_string_is_cut_with_marker_on_a_character_boundary),
	};
	return cmocka_run_group_tests_name("upload_batch", tests, NULL, NULL);
}
