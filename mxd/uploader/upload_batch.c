#include "upload_batch.h"
#include "journal.h"
#include "outcome.h"

#include <string.h>

static void
upload_batch_varint(struct buf *b, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;
		v >>= 7;
		buf_appendc(b, (char)(v ? c | 0x80 : c));
	} while (v);
}

static size_t
upload_batch_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >>= 7)
		n++;
	return n;
}

void
upload_batch_init(struct upload_batch *ub)
{
	memset(ub, 0, sizeof(*ub));
	buf_init(&ub->b);
}

void
upload_batch_free(struct upload_batch *ub)
{
	buf_free(&ub->b);
}

void
upload_batch_begin(struct upload_batch *ub, const char *host_id, size_t max_bytes,
    size_t max_records)
{
	buf_reset(&ub->b);
	ub->max_bytes = max_bytes;
	ub->max_records = max_records ? max_records : 1;
	ub->count = 0;
	ub->first = ub->last = 0;
	buf_appendc(&ub->b, 0x0a);	/* field 1: host_id */
	upload_batch_varint(&ub->b, strlen(host_id));
	buf_appends(&ub->b, host_id);
}

int
upload_batch_full(const struct upload_batch *ub)
{
	return ub->count >= ub->max_records;
}

int
upload_batch_add(struct upload_batch *ub, uint64_t seq, const void *rec, size_t len)
{
	uint8_t tmp[JOURNAL_REC_MAX + 16];
	if (upload_batch_full(ub) || len > JOURNAL_REC_MAX)
		return 0;
	size_t n = len + 2 + upload_batch_varint_len(seq);
	/* Room kept for the trailer: seq, dropped, corrupt (3 x 11 bytes). */
	size_t need = 1 + upload_batch_varint_len(n) + n + 33;
	if (ub->count > 0 && ub->b.len + need > ub->max_bytes)
		return 0;
	n = outcome_append_seq(tmp, rec, len, seq);
	buf_appendc(&ub->b, 0x1a);	/* field 3, length-delimited */
	upload_batch_varint(&ub->b, n);
	buf_append(&ub->b, tmp, n);
	if (ub->count++ == 0)
		ub->first = seq;
	ub->last = seq;
	return 1;
}

void
upload_batch_end(struct upload_batch *ub, uint64_t seq, uint64_t dropped, uint64_t corrupt)
{
	buf_appendc(&ub->b, 0x10);	/* field 2: seq */
	upload_batch_varint(&ub->b, ub->count ? ub->last : seq);
	if (dropped) {
		buf_appendc(&ub->b, 0x20);
		upload_batch_varint(&ub->b, dropped);
	}
	if (corrupt) {
		buf_appendc(&ub->b, 0x28);
		upload_batch_varint(&ub->b, corrupt);
	}
}
