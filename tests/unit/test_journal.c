/* The outcome journal on a real directory: what is committed is read back in
 * order after restarts and crashes, damage is skipped and counted, acked
 * segments go away, and the disk budget drops the oldest records and says how
 * many. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "journal.h"
#include "log.h"

#define GOT_MAX	2048

struct fixture {
	char	 top[64];
	char	 dir[96];
};

/* What a reader saw: seqs in order, and whether every record had the length
 * and bytes its writer gave it (rec_len/rec_fill of its seq). */
struct got {
	uint64_t	 seq[GOT_MAX];
	size_t		 n;
	int		 mismatch;
	size_t		 (*lenf)(uint64_t seq);
	size_t		 stop_after;	/* cb asks to stop after this many */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->top, sizeof(f->top), "/tmp/mxd-journal-test.XXXXXX");
	if (mkdtemp(f->top) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/journal", f->top);
	log_init("test_journal", LOG_LEVEL_ERROR, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->top);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct journal *
open_journal(struct fixture *f, uint64_t max_bytes, uint64_t segment_bytes)
{
	struct journal_opts o = { .dir = f->dir, .max_bytes = max_bytes,
	    .segment_bytes = segment_bytes };
	struct journal *j;
	char err[256];
	if (journal_open(&j, &o, err, sizeof(err)) < 0)
		fail_msg("journal_open: %s", err);
	return j;
}

static void
rec_fill(unsigned char *p, size_t len, uint64_t seq)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seq * 131 + i * 7);
}

static size_t
len_100(uint64_t seq)
{
	return 100;
}

static size_t
len_1000(uint64_t seq)
{
	return 1000;
}

static size_t
len_varied(uint64_t seq)
{
	return seq == 77 ? 10000 : (size_t)(seq * 97 % 1500);
}

/* Append records under lenf, committing every `every`, and check the seqs
 * they get are the next ones. */
static void
append_n(struct journal *j, size_t n, size_t (*lenf)(uint64_t), size_t every)
{
	static unsigned char rec[JOURNAL_REC_MAX];
	uint64_t last = journal_last_seq(j);
	for (size_t i = 0; i < n; i++) {
		uint64_t want = last + 1 + i, seq = 0;
		size_t len = lenf(want);
		rec_fill(rec, len, want);
		assert_int_equal(journal_append(j, rec, len, &seq), 0);
		assert_int_equal(seq, want);
		if ((i + 1) % every == 0)
			assert_int_equal(journal_commit(j), 0);
	}
	assert_int_equal(journal_commit(j), 0);
}

static int
got_cb(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct got *g = arg;
	if (g->lenf != NULL) {
		unsigned char want[JOURNAL_REC_MAX];
		size_t wl = g->lenf(seq);
		rec_fill(want, wl, seq);
		if (len != wl || memcmp(rec, want, len) != 0)
			g->mismatch = 1;
	}
	if (g->n < GOT_MAX)
		g->seq[g->n] = seq;
	g->n++;
	return g->stop_after != 0 && g->n >= g->stop_after;
}

static int
read_all(struct journal *j, uint64_t after, size_t max, struct got *g, size_t (*lenf)(uint64_t))
{
	memset(g, 0, sizeof(*g));
	g->lenf = lenf;
	return journal_read(j, after, max, got_cb, g);
}

/* The seqs seen are exactly from..to, in order, with intact contents. */
static void
assert_seqs(const struct got *g, uint64_t from, uint64_t to)
{
	assert_false(g->mismatch);
	assert_int_equal(g->n, to - from + 1);
	for (size_t i = 0; i < g->n; i++)
		assert_int_equal(g->seq[i], from + i);
}

struct segfiles {
	size_t		 n;
	uint64_t	 bytes;
	uint64_t	 largest;
	char		 name[512][32];
};

static void
list_segments(const char *dir, struct segfiles *s)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	char path[256];

	memset(s, 0, sizeof(*s));
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 4 || strcmp(de->d_name + l - 4, ".seg") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		if (s->n < 512)
			snprintf(s->name[s->n], sizeof(s->name[0]), "%s", de->d_name);
		s->n++;
		s->bytes += (uint64_t)st.st_size;
		if ((uint64_t)st.st_size > s->largest)
			s->largest = (uint64_t)st.st_size;
	}
	closedir(d);
}

static void
seg_path(char *path, size_t sz, const struct fixture *f, uint64_t base)
{
	snprintf(path, sz, "%s/%016" PRIx64 ".seg", f->dir, base);
}

static off_t
file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void
flip_byte(const char *path, off_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void
test_only_committed_records_are_readable_in_order(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	static unsigned char big[JOURNAL_REC_MAX + 1];
	struct got g;
	uint64_t seq;

	rec_fill(big, sizeof(big), 3);
	assert_int_equal(journal_append(j, "alpha", 5, &seq), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(journal_append(j, NULL, 0, &seq), 0);
	assert_int_equal(seq, 2);
	assert_int_equal(journal_append(j, big, JOURNAL_REC_MAX, &seq), 0);
	assert_int_equal(seq, 3);
	/* Not durable yet, so not readable: nothing is uploaded before commit. */
	assert_int_equal(journal_last_seq(j), 0);
	assert_int_equal(journal_backlog(j), 3);
	assert_int_equal(read_all(j, 0, 100, &g, NULL), 0);
	assert_int_equal(journal_ack(j, 1), -1);
	assert_int_equal(journal_commit(j), 0);
	assert_int_equal(journal_last_seq(j), 3);

	assert_int_equal(journal_append(j, big, JOURNAL_REC_MAX + 1, &seq), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(journal_last_seq(j), 3);

	assert_int_equal(read_all(j, 0, 100, &g, NULL), 3);
	assert_seqs(&g, 1, 3);
	journal_close(j);
}

/* Byte-for-byte check of the round trip's three records. */
struct exact {
	size_t	 n;
	int	 ok;
};

static int
exact_cb(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct exact *e = arg;
	static unsigned char big[JOURNAL_REC_MAX];
	rec_fill(big, sizeof(big), 3);
	int good = (seq == 1 && len == 5 && memcmp(rec, "alpha", 5) == 0) ||
	    (seq == 2 && len == 0) ||
	    (seq == 3 && len == JOURNAL_REC_MAX && memcmp(rec, big, len) == 0);
	e->ok = (e->n == 0 ? 1 : e->ok) && good;
	e->n++;
	return 0;
}

static void
test_round_trip_keeps_empty_and_largest_records_exactly(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	static unsigned char big[JOURNAL_REC_MAX];
	struct exact e = { 0 };

	rec_fill(big, sizeof(big), 3);
	assert_int_equal(journal_append(j, "alpha", 5, NULL), 0);
	assert_int_equal(journal_append(j, "", 0, NULL), 0);
	assert_int_equal(journal_append(j, big, sizeof(big), NULL), 0);
	journal_close(j);	/* a clean close commits */
	j = open_journal(f, 0, 0);
	assert_int_equal(journal_read(j, 0, 10, exact_cb, &e), 3);
	assert_int_equal(e.n, 3);
	assert_true(e.ok);
	journal_close(j);
}

static void
test_seq_continues_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	struct segfiles s;
	char path[256];
	uint64_t seq;

	append_n(j, 3, len_100, 1);
	journal_close(j);
	j = open_journal(f, 0, 0);
	assert_int_equal(journal_last_seq(j), 3);
	assert_int_equal(journal_append(j, "x", 1, &seq), 0);
	assert_int_equal(seq, 4);
	assert_int_equal(journal_commit(j), 0);
	assert_int_equal(journal_ack(j, 4), 0);
	journal_close(j);

	/* Even with every segment gone, the checkpoint keeps seqs from being
	 * reused: controld would count a reused (host, seq) as a duplicate. */
	list_segments(f->dir, &s);
	for (size_t i = 0; i < s.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, s.name[i]);
		assert_int_equal(unlink(path), 0);
	}
	j = open_journal(f, 0, 0);
	assert_int_equal(journal_last_seq(j), 4);
	assert_int_equal(journal_append(j, "y", 1, &seq), 0);
	assert_int_equal(seq, 5);
	journal_close(j);
}

static void
test_crash_before_commit_loses_only_uncommitted_records(void **state)
{
	struct fixture *f = *state;
	struct journal *j;
	struct got g;
	uint64_t corrupt, seq;
	int status;

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char rec[100];
		j = open_journal(f, 0, 0);
		for (uint64_t i = 1; i <= 8; i++) {
			rec_fill(rec, sizeof(rec), i);
			if (journal_append(j, rec, sizeof(rec), NULL) < 0)
				_exit(1);
			if (i == 5 && journal_commit(j) < 0)
				_exit(1);
		}
		_exit(0);	/* dies with 6..8 appended, not committed */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	j = open_journal(f, 0, 0);
	assert_int_equal(journal_last_seq(j), 5);
	assert_int_equal(read_all(j, 0, 100, &g, len_100), 5);
	assert_seqs(&g, 1, 5);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 0);
	assert_int_equal(journal_append(j, "next", 4, &seq), 0);
	assert_int_equal(seq, 6);
	journal_close(j);
}

static void
test_torn_tail_is_truncated_and_appends_continue(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	struct got g;
	char path[256];
	uint64_t corrupt;

	seg_path(path, sizeof(path), f, 1);
	append_n(j, 4, len_100, 4);
	off_t four = file_size(path);
	append_n(j, 1, len_100, 1);
	off_t five = file_size(path);
	journal_close(j);
	/* The crash came while the fifth record was being written. */
	assert_int_equal(truncate(path, four + (five - four) / 2), 0);

	j = open_journal(f, 0, 0);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 1);
	assert_int_equal(file_size(path), four);
	assert_int_equal(journal_last_seq(j), 4);
	append_n(j, 2, len_100, 2);
	assert_int_equal(journal_last_seq(j), 6);
	journal_close(j);

	j = open_journal(f, 0, 0);
	assert_int_equal(read_all(j, 0, 100, &g, len_100), 6);
	assert_seqs(&g, 1, 6);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 0);
	journal_close(j);
}

/* Records of 100 bytes: record k (1-based) starts here in the first segment. */
static off_t
rec_off(uint64_t k)
{
	return JOURNAL_SEG_HDR + (off_t)(k - 1) * (JOURNAL_REC_HDR + 100);
}

static void
test_flipped_data_byte_skips_that_record_only_and_counts_it_once(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	struct got g;
	char path[256];
	uint64_t corrupt;

	append_n(j, 5, len_100, 5);
	journal_close(j);
	seg_path(path, sizeof(path), f, 1);
	flip_byte(path, rec_off(3) + JOURNAL_REC_HDR + 50);

	j = open_journal(f, 0, 0);
	assert_int_equal(read_all(j, 0, 100, &g, len_100), 4);
	assert_false(g.mismatch);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 4);
	assert_int_equal(g.seq[3], 5);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 1);
	/* Reading again (a resend) does not count it again. */
	assert_int_equal(read_all(j, 0, 100, &g, len_100), 4);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 0);
	/* And the damage is in the middle, not a tail: nothing is truncated. */
	assert_int_equal(file_size(path), rec_off(6));
	assert_int_equal(journal_last_seq(j), 5);
	journal_close(j);
}

static void
test_damaged_header_skips_to_the_next_record(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	struct got g;
	char path[256];
	uint64_t corrupt;

	append_n(j, 5, len_100, 5);
	journal_close(j);
	seg_path(path, sizeof(path), f, 1);
	flip_byte(path, rec_off(3) + 5);	/* the length field */
	flip_byte(path, rec_off(4) + 0);	/* and the next record's magic */

	j = open_journal(f, 0, 0);
	assert_int_equal(read_all(j, 0, 100, &g, len_100), 3);
	assert_false(g.mismatch);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 5);
	/* One damaged run, however many records it covers. */
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 1);
	journal_close(j);
}

/* A record as the journal writes it (see journal.h), for hand-made damage. */
static size_t
encode_rec(unsigned char *out, uint64_t seq, const unsigned char *data, uint32_t len)
{
	memcpy(out, JOURNAL_REC_MAGIC, 4);
	for (int i = 0; i < 4; i++)
		out[4 + i] = (unsigned char)(len >> (8 * i));
	for (int i = 0; i < 8; i++)
		out[8 + i] = (unsigned char)(seq >> (8 * i));
	uint32_t dcrc = (uint32_t)crc32(0L, data, len);
	for (int i = 0; i < 4; i++)
		out[16 + i] = (unsigned char)(dcrc >> (8 * i));
	uint32_t hcrc = (uint32_t)crc32(0L, out, 20);
	for (int i = 0; i < 4; i++)
		out[20 + i] = (unsigned char)(hcrc >> (8 * i));
	memcpy(out + JOURNAL_REC_HDR, data, len);
	return JOURNAL_REC_HDR + len;
}

static void
test_intact_records_after_damage_are_kept_and_their_seqs_not_reused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	unsigned char tail[512], data[100];
	struct got g;
	char path[256];
	uint64_t corrupt, seq;
	size_t n = 30;

	append_n(j, 2, len_100, 2);
	journal_close(j);
	/* Damage, then records 10 and 11: more seqs missing than the damaged
	 * bytes could have held, so the reader cannot vouch for them. But they
	 * are intact, so this is no torn write to cut off. */
	memset(tail, 0xee, n);
	rec_fill(data, sizeof(data), 10);
	n += encode_rec(tail + n, 10, data, sizeof(data));
	rec_fill(data, sizeof(data), 11);
	n += encode_rec(tail + n, 11, data, sizeof(data));
	seg_path(path, sizeof(path), f, 1);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, tail, n), (ssize_t)n);
	close(fd);
	off_t size = file_size(path);

	j = open_journal(f, 0, 0);
	journal_take_counters(j, NULL, &corrupt);
	assert_int_equal(corrupt, 1);
	assert_int_equal(file_size(path), size);
	assert_int_equal(journal_last_seq(j), 11);
	assert_int_equal(journal_append(j, "x", 1, &seq), 0);
	assert_int_equal(seq, 12);
	journal_close(j);

	j = open_journal(f, 0, 0);
	assert_int_equal(journal_last_seq(j), 12);
	assert_int_equal(read_all(j, 0, 100, &g, NULL), 3);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 12);
	seg_path(path, sizeof(path), f, 12);
	assert_int_equal(access(path, F_OK), 0);
	journal_close(j);
}

static void
test_ack_deletes_fully_acked_segments_and_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 4096);
	struct segfiles before, after;
	struct got g;

	append_n(j, 200, len_100, 3);
	list_segments(f->dir, &before);
	assert_true(before.n >= 5);
	assert_int_equal(journal_backlog(j), 200);

	assert_int_equal(journal_ack(j, 150), 0);
	assert_int_equal(journal_acked(j), 150);
	assert_int_equal(journal_backlog(j), 50);
	list_segments(f->dir, &after);
	assert_true(after.n < before.n);
	assert_int_equal(after.bytes, journal_disk_bytes(j));
	/* What is left starts at the segment holding 151: no unacked record went. */
	assert_true(read_all(j, 0, GOT_MAX, &g, len_100) >= 50);
	assert_true(g.seq[0] > 1 && g.seq[0] <= 151);
	assert_int_equal(g.seq[g.n - 1], 200);

	/* Acks never go back, and never past what was committed. */
	assert_int_equal(journal_ack(j, 10), 0);
	assert_int_equal(journal_acked(j), 150);
	assert_int_equal(journal_ack(j, 201), -1);
	assert_int_equal(errno, EINVAL);
	journal_close(j);

	j = open_journal(f, 0, 4096);
	assert_int_equal(journal_acked(j), 150);
	assert_int_equal(journal_backlog(j), 50);
	assert_int_equal(read_all(j, journal_acked(j), GOT_MAX, &g, len_100), 50);
	assert_seqs(&g, 151, 200);
	/* Everything acked: only the active segment stays. */
	assert_int_equal(journal_ack(j, 200), 0);
	list_segments(f->dir, &after);
	assert_int_equal(after.n, 1);
	assert_int_equal(journal_backlog(j), 0);
	journal_close(j);
}

static void
test_budget_overflow_drops_oldest_and_counts_exactly(void **state)
{
	struct fixture *f = *state;
	const uint64_t max = JOURNAL_MAX_BYTES_MIN;	/* 256 KiB */
	struct journal *j = open_journal(f, max, 16384);
	struct segfiles s;
	struct got g;
	uint64_t dropped, corrupt;

	append_n(j, 100, len_1000, 10);
	assert_int_equal(journal_ack(j, 50), 0);
	journal_take_counters(j, &dropped, NULL);
	assert_int_equal(dropped, 0);
	/* About 600 KiB into a 256 KiB budget, controld unreachable. */
	append_n(j, 500, len_1000, 10);

	list_segments(f->dir, &s);
	assert_true(s.bytes <= max);
	assert_int_equal(s.bytes, journal_disk_bytes(j));
	int n = read_all(j, 0, GOT_MAX, &g, len_1000);
	assert_true(n > 100 && n < 300);
	uint64_t first = g.seq[0];
	assert_seqs(&g, first, 600);
	/* Every record neither acked nor on disk any more is counted, once. */
	journal_take_counters(j, &dropped, &corrupt);
	assert_int_equal(dropped, first - 1 - 50);
	assert_int_equal(corrupt, 0);
	assert_int_equal(journal_backlog(j), 600 - (first - 1));
	journal_take_counters(j, &dropped, NULL);
	assert_int_equal(dropped, 0);
	journal_close(j);

	j = open_journal(f, max, 16384);
	assert_int_equal(read_all(j, journal_acked(j), GOT_MAX, &g, len_1000), n);
	assert_int_equal(g.seq[0], first);
	journal_close(j);
}

static int
check_file_cb(void *arg, uint64_t seq, const void *rec, size_t len)
{
	uint64_t *first = arg;
	if (*first == 0)
		*first = seq;
	return 0;
}

static void
test_many_segments_roll_at_the_configured_size(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 4096);
	struct segfiles s;
	struct got g;
	char path[256];

	append_n(j, 200, len_varied, 7);
	list_segments(f->dir, &s);
	assert_true(s.n >= 30);
	assert_int_equal(s.bytes, journal_disk_bytes(j));
	/* Only the segment holding the 10000-byte record is over the size. */
	assert_int_equal(s.largest, JOURNAL_SEG_HDR + JOURNAL_REC_HDR + 10000);
	for (size_t i = 0; i < s.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, s.name[i]);
		off_t sz = file_size(path);
		if (sz == (off_t)s.largest)
			continue;
		assert_true(sz <= 4096);
		/* A segment is named after the first seq in it. */
		static unsigned char buf[65536];
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		ssize_t r = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(r, sz);
		uint64_t first = 0, base = strtoull(s.name[i], NULL, 16);
		struct journal_scan sc = { 0 };
		assert_int_equal(journal_parse_segment(buf, (size_t)r, check_file_cb, &first, &sc), 0);
		assert_true(sc.header_ok);
		assert_int_equal(sc.base, base);
		assert_int_equal(sc.corrupt, 0);
		if (sc.records > 0)
			assert_int_equal(first, base);
	}
	journal_close(j);

	j = open_journal(f, 0, 4096);
	assert_int_equal(read_all(j, 0, GOT_MAX, &g, len_varied), 200);
	assert_seqs(&g, 1, 200);
	/* A reader starting in the middle of a segment. */
	assert_int_equal(read_all(j, 123, GOT_MAX, &g, len_varied), 77);
	assert_seqs(&g, 124, 200);
	journal_close(j);
}

static void
test_read_returns_at_most_max_records_in_order(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 8192);
	struct got g;

	append_n(j, 100, len_100, 9);
	assert_int_equal(read_all(j, 0, 30, &g, len_100), 30);
	assert_seqs(&g, 1, 30);
	assert_int_equal(read_all(j, 30, 30, &g, len_100), 30);
	assert_seqs(&g, 31, 60);
	assert_int_equal(read_all(j, 60, 1000, &g, len_100), 40);
	assert_seqs(&g, 61, 100);
	assert_int_equal(read_all(j, 100, 10, &g, len_100), 0);
	assert_int_equal(read_all(j, 0, 0, &g, len_100), 0);
	/* A resend from further back, and from the middle of a segment. */
	assert_int_equal(read_all(j, 15, 5, &g, len_100), 5);
	assert_seqs(&g, 16, 20);
	/* The callback may stop early; that record was delivered. */
	memset(&g, 0, sizeof(g));
	g.lenf = len_100;
	g.stop_after = 3;
	assert_int_equal(journal_read(j, 40, 10, got_cb, &g), 3);
	assert_seqs(&g, 41, 43);
	/* Records committed after a read show up in the next one. */
	append_n(j, 5, len_100, 5);
	assert_int_equal(read_all(j, 100, 10, &g, len_100), 5);
	assert_seqs(&g, 101, 105);
	journal_close(j);
}

static void
test_damaged_checkpoint_resends_rather_than_skips(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	struct got g;
	char path[256];
	uint64_t seq;

	append_n(j, 5, len_100, 5);
	assert_int_equal(journal_ack(j, 3), 0);
	journal_close(j);
	snprintf(path, sizeof(path), "%s/checkpoint", f->dir);
	flip_byte(path, 10);

	j = open_journal(f, 0, 0);
	assert_int_equal(journal_acked(j), 0);
	assert_int_equal(read_all(j, journal_acked(j), 100, &g, len_100), 5);
	assert_seqs(&g, 1, 5);
	assert_int_equal(journal_append(j, "z", 1, &seq), 0);
	assert_int_equal(seq, 6);
	journal_close(j);
}

static void
test_second_open_of_the_same_directory_is_refused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0), *j2;
	struct journal_opts o = { .dir = f->dir };
	char err[256];

	assert_int_equal(journal_open(&j2, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "in use"));
	journal_close(j);
	assert_int_equal(journal_open(&j2, &o, err, sizeof(err)), 0);
	journal_close(j2);
}

static void
test_parse_segment_skips_garbage_and_zero_fill(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_journal(f, 0, 0);
	static unsigned char buf[8192];
	struct journal_scan sc;
	char path[256];
	uint64_t first;

	append_n(j, 3, len_100, 3);
	journal_close(j);
	seg_path(path, sizeof(path), f, 1);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, rec_off(4));

	/* A crash on a filesystem that extended the file but never wrote the
	 * data: zeros after the last record are one torn tail. */
	memset(buf + n, 0, 1000);
	memset(&sc, 0, sizeof(sc));
	first = 0;
	assert_int_equal(journal_parse_segment(buf, (size_t)n + 1000, check_file_cb, &first, &sc), 0);
	assert_int_equal(sc.records, 3);
	assert_int_equal(sc.last, 3);
	assert_int_equal(sc.corrupt, 1);
	assert_int_equal(sc.end, (size_t)n);

	/* Not a segment at all. */
	memset(&sc, 0, sizeof(sc));
	assert_int_equal(journal_parse_segment("hello, world", 12, NULL, NULL, &sc), 0);
	assert_false(sc.header_ok);
	assert_int_equal(sc.records, 0);
	assert_int_equal(sc.corrupt, 1);
	assert_int_equal(sc.end, 0);

	/* Checkpoints: only the exact format with a matching CRC. */
	uint64_t acked;
	assert_int_equal(journal_parse_checkpoint("MXJCKPT1 5 00000000\n", 20, &acked), -1);
	assert_int_equal(journal_parse_checkpoint("MXJCKPT1 \n", 10, &acked), -1);
	assert_int_equal(journal_parse_checkpoint("", 0, &acked), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_only_committed_records_are_readable_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_keeps_empty_and_largest_records_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_continues_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_commit_loses_only_uncommitted_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_is_truncated_and_appends_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_data_byte_skips_that_record_only_and_counts_it_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_header_skips_to_the_next_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intact_records_after_damage_are_kept_and_their_seqs_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_deletes_fully_acked_segments_and_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_overflow_drops_oldest_and_counts_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_segments_roll_at_the_configured_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_returns_at_most_max_records_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_checkpoint_resends_rather_than_skips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_of_the_same_directory_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_segment_skips_garbage_and_zero_fill, setup, teardown),
	};
	return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
