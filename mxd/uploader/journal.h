/* The outcome journal: an append-only, crash-safe log of opaque records
 * (serialized Outcome messages) that one process writes and uploads.
 *
 * Records get sequence numbers 1, 2, 3... that survive restarts and are never
 * handed out twice for anything a reader could have seen. append buffers in
 * memory; commit writes everything buffered with one write and one fdatasync
 * (group commit). Only committed records are visible to journal_read, so a
 * record is never uploaded before it is durable. When controld acknowledges a
 * seq, ack checkpoints it (tmp file, rename, directory fsync) and deletes the
 * segments that hold only acknowledged records.
 *
 * Disk use is bounded by max_bytes: when a commit would pass it, the oldest
 * segments are deleted even if unacknowledged, and the records lost that way
 * are counted (dropped). Records that fail their CRC, garbage, and the torn
 * tail of a crash are skipped and counted (corrupt). Neither is ever silent:
 * journal_take_counters hands both to the uploader for its next batch.
 *
 * One process, one thread: the directory is locked (flock) against a second
 * process, and nothing here is thread-safe.
 *
 * On disk, in dir/:
 *   %016llx.seg   segments, named by the first seq they may hold (hex)
 *   checkpoint    "MXJCKPT1 <acked seq> <crc32 hex>\n"
 * A segment is a 16-byte header ("MXJSEG01", base seq u64 LE) followed by
 * records, each a 24-byte header then the data:
 *   "MXJR"  len u32 LE  seq u64 LE  crc32(data) u32 LE  crc32(header[0..20)) u32 LE
 * The header CRC makes the length trustworthy, so a record whose data is
 * damaged is skipped exactly; damaged headers are skipped by scanning for the
 * next valid one. All integers little-endian; CRC is zlib's crc32. */
#ifndef MXD_JOURNAL_H
#define MXD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_REC_MAX		65536		/* bytes of data in one record */
#define JOURNAL_SEG_HDR		16
#define JOURNAL_REC_HDR		24
#define JOURNAL_SEG_MAGIC	"MXJSEG01"
#define JOURNAL_REC_MAGIC	"MXJR"
/* Defaults, and the floor a smaller max_bytes is raised to: room for two
 * segments holding a largest record each, so the budget can always be met. */
#define JOURNAL_MAX_BYTES_DEFAULT	(256ULL << 20)
#define JOURNAL_SEGMENT_BYTES_DEFAULT	(8ULL << 20)
#define JOURNAL_MAX_BYTES_MIN		(256ULL << 10)
#define JOURNAL_SEGMENT_BYTES_MIN	4096ULL

struct journal;

struct journal_opts {
	const char	*dir;		/* created if missing (0700) */
	uint64_t	 max_bytes;	/* disk budget for all segments; 0 = 256 MiB */
	uint64_t	 segment_bytes;	/* roll to a new segment past this; 0 = 8 MiB,
					   at most max_bytes / 2 */
};

/* Called for each record, in seq order. Returning non-zero stops the
 * iteration after this record. */
typedef int (*journal_rec_cb)(void *arg, uint64_t seq, const void *rec, size_t len);

/* Opens (or creates) the journal in o->dir and takes an exclusive lock on it:
 * a second open of the same directory fails. Scans every segment: counts
 * corrupt records, truncates a torn tail on the newest segment, recovers the
 * last seq. Returns 0, or -1 with a message in err. */
int journal_open(struct journal **out, const struct journal_opts *o, char *err, size_t errsz);
/* Commits what is still buffered (a clean shutdown loses nothing), frees. */
void journal_close(struct journal *j);

/* Buffer a record (len <= JOURNAL_REC_MAX) under the next seq. Durable and
 * readable after journal_commit. When the active segment is full, append
 * commits what is buffered first (so it may block on fdatasync).
 * Returns 0, or -1 with errno (EMSGSIZE: too long; else the implicit commit
 * failed and the record was not taken). */
int journal_append(struct journal *j, const void *rec, size_t len, uint64_t *seq);
/* Group commit: one write and one fdatasync for everything appended since the
 * last commit; rolls to a new segment and enforces the disk budget first.
 * Returns 0, or -1 with errno; on failure the records stay buffered and the
 * next commit tries again. */
int journal_commit(struct journal *j);

/* Calls cb for committed records with seq > after, in order, at most max of
 * them. Corrupt records are skipped (counted once, when the journal is
 * opened). Returns the number of records passed to cb, or -1 with errno. */
int journal_read(struct journal *j, uint64_t after, size_t max, journal_rec_cb cb, void *arg);

/* controld acknowledged every seq <= seq. Checkpoints it durably, then deletes
 * segments that hold only acknowledged records (never the active one).
 * An ack at or below the current one is a no-op; one beyond the last committed
 * seq is refused (EINVAL). Returns 0 or -1 with errno. */
int journal_ack(struct journal *j, uint64_t seq);
uint64_t journal_acked(const struct journal *j);
/* The seq of the last committed record (0 if none ever): the highest seq
 * journal_read can return and journal_ack accepts. Records appended but not
 * yet committed are above it. */
uint64_t journal_last_seq(const struct journal *j);
/* Records appended (committed or not) but not yet acknowledged, not counting
 * those already dropped by the budget (corrupt ones are included until an ack
 * passes them). */
uint64_t journal_backlog(const struct journal *j);
/* Bytes of all segment files on disk. */
uint64_t journal_disk_bytes(const struct journal *j);
/* Records dropped by the budget and corrupt records found since the last
 * call (or open); resets both. Either pointer may be NULL. */
void journal_take_counters(struct journal *j, uint64_t *dropped, uint64_t *corrupt);

/* The I/O-free parsers, shared by the journal and the fuzz harness. */

/* State of a segment scan. Zero it to parse a whole segment image; to resume
 * after a record, set from to the end reported for it and prev to its seq. */
struct journal_scan {
	/* in */
	size_t		 from;		/* 0: start, the segment header is checked */
	uint64_t	 prev;		/* seq of the record just before from */
	/* out */
	int		 header_ok;	/* magic present (only looked at when from == 0) */
	uint64_t	 base;		/* base seq from the header, 0 if unknown */
	uint64_t	 records;	/* valid records found */
	uint64_t	 first, last;	/* their lowest and highest seq, 0 if none */
	uint64_t	 corrupt;	/* records and garbage runs skipped */
	size_t		 end;		/* offset just past the last whole record (or
					   header): bytes beyond it are a torn tail. While
					   cb runs, just past the record it is given. */
	uint64_t	 tail_seq;	/* highest seq of an intact record beyond end
					   that could not be placed (damage, not a torn
					   write: never cut off); 0 if none */
};

/* Parses the segment image buf[0..len): calls cb (may be NULL) for each valid
 * record, in order, with strictly increasing seqs. A record whose data fails
 * its CRC, or whose seq does not increase, is skipped; bytes that do not start
 * a valid header are skipped up to the next header that does; an incomplete
 * record at the end is the torn tail. Each counts once in scan->corrupt.
 * Returns 0, or cb's non-zero value if it stopped the scan. */
int journal_parse_segment(const void *buf, size_t len, journal_rec_cb cb, void *arg,
    struct journal_scan *scan);
/* Parses a checkpoint file's contents. Returns 0 and sets *acked, or -1 if
 * the text is malformed or fails its CRC. */
int journal_parse_checkpoint(const void *buf, size_t len, uint64_t *acked);

#endif
