/* One OutcomeBatch for Collector.Stream, built from journal records without
 * unpacking them (the uploader's encoder; no I/O).
 *
 * A batch is cut by bytes as well as by records: it takes records while its
 * encoded size stays within max_bytes (and its count within max_records), so
 * that it stays well under controld's max_message whatever the records hold
 * (an outbound record carries a whole MTA-STS policy and may be 64 KiB). A
 * record that alone passes max_bytes still goes, alone: nothing is held back
 * for being large; controld refusing it is the uploader's concern.
 *
 * The encoding is protobuf by hand: field 1 host_id, then each record as
 * field 3 with its journal seq appended (outcome_append_seq), then field 2
 * the highest seq, 4 dropped and 5 corrupt when non-zero. */
#ifndef MXD_UPLOAD_BATCH_H
#define MXD_UPLOAD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define UPLOAD_BATCH_MAX_BYTES_DEFAULT	(1u << 20)

struct upload_batch {
	struct buf	 b;		/* the encoded message so far */
	size_t		 max_bytes, max_records;
	size_t		 count;		/* records taken */
	uint64_t	 first, last;	/* their lowest and highest seq, 0 if none */
};

void upload_batch_init(struct upload_batch *ub);
void upload_batch_free(struct upload_batch *ub);
/* Start a new batch for host_id. */
void upload_batch_begin(struct upload_batch *ub, const char *host_id, size_t max_bytes,
    size_t max_records);
/* Take a record (len <= JOURNAL_REC_MAX): 1 if taken, 0 if the batch is full
 * (the record is not in it and starts the next one). */
int upload_batch_add(struct upload_batch *ub, uint64_t seq, const void *rec, size_t len);
/* Whether the next record cannot be taken in any case (count reached). */
int upload_batch_full(const struct upload_batch *ub);
/* Close the batch: its seq (the last record's, or seq when it holds none)
 * and the loss counters it carries. */
void upload_batch_end(struct upload_batch *ub, uint64_t seq, uint64_t dropped, uint64_t corrupt);

#endif
