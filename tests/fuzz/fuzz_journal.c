/* The outcome journal as read back from disk after a crash, a bad sector or a
 * hand-edited file: a segment image and a checkpoint. Must parse or skip,
 * never crash, leak or loop; what it delivers must be in order and in bounds,
 * and reading in pieces (as journal_read resumes) must see what one pass sees.
 * Random bytes almost never carry a valid CRC, so each input is also parsed
 * with the CRCs of every header-looking run fixed up: that reaches the record
 * paths (ordering, resync bounds, torn tails) and not just the garbage ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	const uint8_t	*buf;
	size_t		 size;
	uint64_t	*seqs;
	size_t		 n;
	size_t		 cap;
	size_t		 at;	/* second pass: next index expected */
	int		 stop;	/* second pass: stop after every record */
};

static int
collect(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct seen *s = arg;
	const uint8_t *p = rec;
	if (len > JOURNAL_REC_MAX || p < s->buf || len > s->size ||
	    p > s->buf + s->size - len)
		abort();
	if (s->n > 0 && seq <= s->seqs[s->n - 1])
		abort();
	if (s->n == s->cap)
		abort();	/* more records than can fit in the input */
	s->seqs[s->n++] = seq;
	return 0;
}

static int
replay(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct seen *s = arg;
	if (s->at >= s->n || s->seqs[s->at] != seq)
		abort();
	s->at++;
	return s->stop;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
fix_crcs(uint8_t *b, size_t size)
{
	for (size_t p = 0; p + JOURNAL_REC_HDR <= size; p++) {
		if (memcmp(b + p, JOURNAL_REC_MAGIC, 4) != 0)
			continue;
		uint32_t len = rd32(b + p + 4);
		if (len <= JOURNAL_REC_MAX && len <= size - p - JOURNAL_REC_HDR)
			wr32(b + p + 16, (uint32_t)crc32(0L, b + p + JOURNAL_REC_HDR, len));
		wr32(b + p + 20, (uint32_t)crc32(0L, b + p, 20));
	}
}

static void
check_segment(const uint8_t *data, size_t size)
{
	struct seen s = { .buf = data, .size = size };
	struct journal_scan one = { 0 }, piece = { 0 };
	uint64_t corrupt = 0;

	s.cap = size / JOURNAL_REC_HDR + 1;
	s.seqs = malloc(s.cap * sizeof(*s.seqs));
	if (s.seqs == NULL)
		abort();
	if (journal_parse_segment(data, size, collect, &s, &one) != 0)
		abort();
	if (one.end > size || one.records != s.n ||
	    (s.n > 0 && (one.first != s.seqs[0] || one.last != s.seqs[s.n - 1])))
		abort();

	/* Resume after every record, as a reader with a cursor does. */
	s.stop = 1;
	for (;;) {
		int rc = journal_parse_segment(data, size, replay, &s, &piece);
		corrupt += piece.corrupt;
		if (rc == 0)
			break;
		piece.from = piece.end;
		piece.prev = s.seqs[s.at - 1];
	}
	if (s.at != s.n || corrupt != one.corrupt || piece.end != one.end ||
	    piece.tail_seq != one.tail_seq || (one.tail_seq != 0 && one.end == size))
		abort();
	free(s.seqs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t acked;

	check_segment(data, size);
	if (size > 0) {
		uint8_t *fixed = malloc(size);
		if (fixed == NULL)
			abort();
		memcpy(fixed, data, size);
		fix_crcs(fixed, size);
		check_segment(fixed, size);
		free(fixed);
	}
	if (journal_parse_checkpoint(data, size, &acked) == 0 && size > 64)
		abort();
	return 0;
}
