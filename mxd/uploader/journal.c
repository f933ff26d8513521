#include "journal.h"
#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define JOURNAL_CKPT		"checkpoint"
#define JOURNAL_CKPT_TMP	"checkpoint.tmp"
#define JOURNAL_CKPT_MAGIC	"MXJCKPT1 "
#define JOURNAL_CKPT_MAX	64
#define JOURNAL_NAME_MAX	32	/* "%016x.seg" */

struct journal_seg {
	uint64_t	base;		/* first seq it may hold (its name) */
	uint64_t	size;		/* bytes on disk; for the active one, committed bytes */
	uint64_t	records;	/* valid records */
	uint64_t	first, last;	/* their seqs, 0 if none */
};

struct journal {
	char			*dir;
	int			 dirfd;		/* also holds the flock */
	int			 fd;		/* the active (last) segment, read-write */
	uint64_t		 max_bytes;
	uint64_t		 segment_bytes;
	struct journal_seg	*segs;		/* by base, oldest first; never empty once open */
	size_t			 nsegs;
	uint64_t		 disk_bytes;
	uint64_t		 last_seq;	/* last appended */
	uint64_t		 committed;	/* last durable */
	uint64_t		 acked;
	struct buf		 pending;	/* encoded records appended since the last commit */
	uint64_t		 npending;
	uint64_t		 dropped;
	uint64_t		 corrupt;
	int			 roll_next;	/* the active segment ends in damage we keep */
	struct {				/* just past the last record read */
		uint64_t	 base;
		uint64_t	 seq;
		size_t		 off;
	}			 cursor;
};

static uint32_t
journal_crc(const void *p, size_t n)
{
	return (uint32_t)crc32(0L, n ? p : Z_NULL, (uInt)n);
}

static uint32_t
journal_rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
journal_rd64(const unsigned char *p)
{
	return (uint64_t)journal_rd32(p) | (uint64_t)journal_rd32(p + 4) << 32;
}

static void
journal_wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
journal_wr64(unsigned char *p, uint64_t v)
{
	journal_wr32(p, (uint32_t)v);
	journal_wr32(p + 4, (uint32_t)(v >> 32));
}

/* A record header at p (avail bytes) that is intact: magic, header CRC and a
 * length within bounds. Says nothing about the data. */
static int
journal_rec_header(const unsigned char *p, size_t avail, uint32_t *len, uint64_t *seq)
{
	if (avail < JOURNAL_REC_HDR || memcmp(p, JOURNAL_REC_MAGIC, 4) != 0)
		return 0;
	if (journal_rd32(p + 20) != journal_crc(p, 20))
		return 0;
	*len = journal_rd32(p + 4);
	*seq = journal_rd64(p + 8);
	return *len <= JOURNAL_REC_MAX;
}

/* After garbage, the next offset >= p holding an intact header whose seq could
 * follow prev: no more records than fit in the skipped bytes can be missing.
 * The bound keeps a header-shaped run inside a record's data (an EHLO name
 * chosen by a client) from passing for a far-away seq. Returns len if none. */
static size_t
journal_resync(const unsigned char *b, size_t len, size_t p, uint64_t prev, size_t end)
{
	uint32_t rlen;
	uint64_t seq;

	while (p < len && len - p >= JOURNAL_REC_HDR) {
		const unsigned char *m = memmem(b + p, len - p, JOURNAL_REC_MAGIC, 4);
		if (m == NULL)
			break;
		p = (size_t)(m - b);
		if (journal_rec_header(m, len - p, &rlen, &seq) && seq > prev &&
		    (prev == 0 || seq - prev - 1 <= (p - end) / JOURNAL_REC_HDR))
			return p;
		p++;
	}
	return len;
}

/* The highest seq of a whole, CRC-valid record anywhere in b[from..len), 0 if
 * none. Such a record after damage may be one the parser could not place (a
 * seq gap larger than the damage explains); cutting a torn tail must never
 * remove it, nor may its seq be handed out again. */
static uint64_t
journal_intact_after(const unsigned char *b, size_t len, size_t from)
{
	uint64_t max = 0, seq;
	uint32_t rlen;

	for (size_t p = from; p < len && len - p >= JOURNAL_REC_HDR; p++) {
		const unsigned char *m = memmem(b + p, len - p, JOURNAL_REC_MAGIC, 4);
		if (m == NULL)
			break;
		p = (size_t)(m - b);
		if (journal_rec_header(m, len - p, &rlen, &seq) &&
		    rlen <= len - p - JOURNAL_REC_HDR &&
		    journal_rd32(m + 16) == journal_crc(m + JOURNAL_REC_HDR, rlen) && seq > max)
			max = seq;
	}
	return max;
}

int
journal_parse_segment(const void *buf, size_t len, journal_rec_cb cb, void *arg,
    struct journal_scan *sc)
{
	const unsigned char *b = buf;
	size_t off = sc->from;
	uint64_t prev = sc->prev;
	int in_garbage = 0;	/* the tail after garbage is the same damaged run */
	uint32_t rlen;
	uint64_t seq;
	int rc;

	sc->header_ok = len >= JOURNAL_SEG_HDR && memcmp(b, JOURNAL_SEG_MAGIC, 8) == 0;
	sc->base = sc->header_ok ? journal_rd64(b + 8) : 0;
	sc->records = sc->first = sc->last = sc->corrupt = sc->tail_seq = 0;
	if (off == 0) {
		if (sc->header_ok) {
			off = JOURNAL_SEG_HDR;
			if (prev == 0 && sc->base > 0)
				prev = sc->base - 1;
		}
		/* else: a bad header starts a garbage run at 0 */
	} else if (off > len)
		off = len;
	sc->end = off;

	while (off < len) {
		if (!journal_rec_header(b + off, len - off, &rlen, &seq)) {
			sc->corrupt++;
			off = journal_resync(b, len, off + 1, prev, sc->end);
			in_garbage = 1;
			continue;
		}
		if (rlen > len - off - JOURNAL_REC_HDR) {
			/* Torn tail: the header made it to disk, not all the data. */
			if (!in_garbage)
				sc->corrupt++;
			break;
		}
		in_garbage = 0;
		const unsigned char *h = b + off, *data = h + JOURNAL_REC_HDR;
		off += JOURNAL_REC_HDR + rlen;
		sc->end = off;
		if (seq <= prev || journal_rd32(h + 16) != journal_crc(data, rlen)) {
			sc->corrupt++;
			if (seq > prev)
				prev = seq;
			continue;
		}
		prev = seq;
		sc->records++;
		if (sc->first == 0)
			sc->first = seq;
		sc->last = seq;
		if (cb != NULL && (rc = cb(arg, seq, data, rlen)) != 0)
			return rc;
	}
	if (sc->end < len)
		sc->tail_seq = journal_intact_after(b, len, sc->end);
	return 0;
}

int
journal_parse_checkpoint(const void *buf, size_t len, uint64_t *acked)
{
	const char *p = buf;
	size_t ml = sizeof(JOURNAL_CKPT_MAGIC) - 1, i = ml;
	uint64_t v = 0;
	uint32_t crc = 0;

	if (len > JOURNAL_CKPT_MAX || len < ml || memcmp(p, JOURNAL_CKPT_MAGIC, ml) != 0)
		return -1;
	for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	size_t body = i;
	if (body == ml || body - ml > 20 || len != body + 1 + 8 + 1 || p[body] != ' ' ||
	    p[len - 1] != '\n')
		return -1;
	for (i = body + 1; i < len - 1; i++) {
		int c = (unsigned char)p[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		crc = crc << 4 | d;
	}
	if (crc != journal_crc(p, body))
		return -1;
	*acked = v;
	return 0;
}

static void
journal_seg_name(char *name, size_t sz, uint64_t base)
{
	snprintf(name, sz, "%016" PRIx64 ".seg", base);
}

/* "%016x.seg" exactly; anything else in the directory is not ours to touch. */
static int
journal_seg_parse_name(const char *name, uint64_t *base)
{
	uint64_t v = 0;
	if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
		return -1;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	*base = v;
	return v == 0 ? -1 : 0;
}

static int
journal_seg_cmp(const void *a, const void *b)
{
	const struct journal_seg *x = a, *y = b;
	return x->base < y->base ? -1 : x->base > y->base;
}

static struct journal_seg *
journal_active(struct journal *j)
{
	return &j->segs[j->nsegs - 1];
}

static int
journal_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Map the first limit bytes of a segment (all of it if limit is 0). An empty
 * file maps to NULL with *len 0. */
static int
journal_map(struct journal *j, uint64_t base, uint64_t limit, void **addr, size_t *len)
{
	char name[JOURNAL_NAME_MAX];
	struct stat st;
	int fd;

	journal_seg_name(name, sizeof(name), base);
	*addr = NULL;
	*len = 0;
	if ((fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		log_warn("event=journal_error op=open file=%s/%s", j->dir, name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (limit != 0 && limit < size)
		size = limit;
	if (size > SIZE_MAX) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	if (size > 0) {
		*addr = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
		if (*addr == MAP_FAILED) {
			log_warn("event=journal_error op=mmap file=%s/%s", j->dir, name);
			*addr = NULL;
			close(fd);
			return -1;
		}
	}
	close(fd);
	*len = (size_t)size;
	return 0;
}

static void
journal_unmap(void *addr, size_t len)
{
	if (addr != NULL)
		munmap(addr, len);
}

static int
journal_count_cb(void *arg, uint64_t seq, const void *rec, size_t len)
{
	uint64_t *c = arg;	/* c[0]: above this; c[1]: count */
	if (seq > c[0])
		c[1]++;
	return 0;
}

/* Records in the oldest segment that controld has not acknowledged: what
 * deleting it loses. */
static uint64_t
journal_unacked_in(struct journal *j, const struct journal_seg *s)
{
	uint64_t c[2] = { j->acked, 0 };
	void *addr;
	size_t len;

	if (s->records == 0 || s->last <= j->acked)
		return 0;
	if (s->first > j->acked)
		return s->records;
	if (journal_map(j, s->base, 0, &addr, &len) < 0)
		return s->last - j->acked;	/* best estimate; the error is logged */
	struct journal_scan sc = { 0 };
	journal_parse_segment(addr, len, journal_count_cb, c, &sc);
	journal_unmap(addr, len);
	return c[1];
}

/* Deletes the oldest segment. No directory fsync: if the unlink is lost in a
 * crash, the segment comes back and is deleted again. */
static void
journal_remove_oldest(struct journal *j, const char *why)
{
	char name[JOURNAL_NAME_MAX];
	struct journal_seg *s = &j->segs[0];

	journal_seg_name(name, sizeof(name), s->base);
	if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT)
		log_warn("event=journal_error op=unlink file=%s/%s", j->dir, name);
	log_debug("event=journal_remove file=%s/%s reason=%s", j->dir, name, why);
	j->disk_bytes -= s->size < j->disk_bytes ? s->size : j->disk_bytes;
	j->nsegs--;
	memmove(&j->segs[0], &j->segs[1], j->nsegs * sizeof(j->segs[0]));
}

/* Deletes the oldest segments, acknowledged or not, until incoming bytes fit
 * in the budget; counts the unacknowledged records lost. The active segment
 * stays: the clamp on segment_bytes makes it fit on its own. */
static void
journal_enforce_budget(struct journal *j, uint64_t incoming)
{
	while (j->nsegs > 1 && j->disk_bytes + incoming > j->max_bytes) {
		uint64_t lost = journal_unacked_in(j, &j->segs[0]);
		if (lost > 0)
			log_warnx("event=journal_drop dir=%s base=%" PRIu64 " records=%" PRIu64
			    " reason=budget max_bytes=%" PRIu64, j->dir, j->segs[0].base, lost,
			    j->max_bytes);
		j->dropped += lost;
		journal_remove_oldest(j, "budget");
	}
}

/* Deletes segments that hold only acknowledged seqs: everything below the
 * next segment's base. */
static void
journal_remove_acked(struct journal *j)
{
	while (j->nsegs > 1 && j->segs[1].base - 1 <= j->acked)
		journal_remove_oldest(j, "acked");
}

static void
journal_seg_push(struct journal *j, const struct journal_seg *s)
{
	j->segs = xreallocarray(j->segs, j->nsegs + 1, sizeof(*j->segs));
	j->segs[j->nsegs++] = *s;
}

static void
journal_seg_header(unsigned char *h, uint64_t base)
{
	memcpy(h, JOURNAL_SEG_MAGIC, 8);
	journal_wr64(h + 8, base);
}

/* A new, durable, empty active segment for seqs from base on. */
static int
journal_roll(struct journal *j, uint64_t base)
{
	char name[JOURNAL_NAME_MAX];
	unsigned char h[JOURNAL_SEG_HDR];
	struct journal_seg s = { .base = base, .size = JOURNAL_SEG_HDR };
	int fd;

	journal_seg_name(name, sizeof(name), base);
	fd = openat(j->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn("event=journal_error op=create file=%s/%s", j->dir, name);
		return -1;
	}
	journal_seg_header(h, base);
	if (journal_pwrite_all(fd, h, sizeof(h), 0) < 0 || fdatasync(fd) < 0 ||
	    fsync(j->dirfd) < 0) {
		int e = errno;
		log_warn("event=journal_error op=create file=%s/%s", j->dir, name);
		unlinkat(j->dirfd, name, 0);
		close(fd);
		errno = e;
		return -1;
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	journal_seg_push(j, &s);
	j->disk_bytes += JOURNAL_SEG_HDR;
	return 0;
}

int
journal_commit(struct journal *j)
{
	struct journal_seg *act = journal_active(j);

	if (j->pending.len == 0)
		return 0;
	if (j->roll_next ||
	    (act->size > JOURNAL_SEG_HDR && act->size + j->pending.len > j->segment_bytes)) {
		if (journal_roll(j, j->committed + 1) < 0)
			return -1;
		j->roll_next = 0;
	}
	journal_enforce_budget(j, j->pending.len);
	act = journal_active(j);
	if (journal_pwrite_all(j->fd, j->pending.data, j->pending.len, act->size) < 0 ||
	    fdatasync(j->fd) < 0) {
		/* Cut back what may have reached the file so that the retry does
		 * not leave a torn record in the middle of the segment. */
		int e = errno;
		log_warn("event=journal_error op=commit dir=%s records=%" PRIu64, j->dir,
		    j->npending);
		if (ftruncate(j->fd, (off_t)act->size) < 0)
			log_warn("event=journal_error op=truncate dir=%s", j->dir);
		errno = e;
		return -1;
	}
	act->size += j->pending.len;
	j->disk_bytes += j->pending.len;
	act->records += j->npending;
	if (act->first == 0)
		act->first = j->committed + 1;
	act->last = j->last_seq;
	j->committed = j->last_seq;
	buf_reset(&j->pending);
	j->npending = 0;
	return 0;
}

int
journal_append(struct journal *j, const void *rec, size_t len, uint64_t *seqp)
{
	unsigned char h[JOURNAL_REC_HDR];
	size_t rsize = JOURNAL_REC_HDR + len;

	if (len > JOURNAL_REC_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	/* Keep what is buffered within one segment: commit before overflowing. */
	if (j->pending.len > 0 &&
	    journal_active(j)->size + j->pending.len + rsize > j->segment_bytes &&
	    journal_commit(j) < 0)
		return -1;
	uint64_t seq = j->last_seq + 1;
	memcpy(h, JOURNAL_REC_MAGIC, 4);
	journal_wr32(h + 4, (uint32_t)len);
	journal_wr64(h + 8, seq);
	journal_wr32(h + 16, journal_crc(rec, len));
	journal_wr32(h + 20, journal_crc(h, 20));
	buf_append(&j->pending, h, sizeof(h));
	if (len > 0)
		buf_append(&j->pending, rec, len);
	j->last_seq = seq;
	j->npending++;
	if (seqp != NULL)
		*seqp = seq;
	return 0;
}

struct journal_reader {
	struct journal		*j;
	struct journal_scan	*sc;
	uint64_t		 base;
	uint64_t		 after;
	size_t			 max;
	size_t			 n;
	journal_rec_cb		 cb;
	void			*arg;
};

static int
journal_read_rec(void *arg, uint64_t seq, const void *rec, size_t len)
{
	struct journal_reader *r = arg;

	if (seq <= r->after)
		return 0;
	r->after = seq;
	r->n++;
	r->j->cursor.base = r->base;
	r->j->cursor.seq = seq;
	r->j->cursor.off = r->sc->end;
	int rc = r->cb(r->arg, seq, rec, len);
	if (rc != 0)
		return rc;
	return r->n >= r->max;
}

int
journal_read(struct journal *j, uint64_t after, size_t max, journal_rec_cb cb, void *arg)
{
	struct journal_reader r = { .j = j, .after = after, .max = max, .cb = cb, .arg = arg };
	size_t i = 0;

	if (r.max > INT_MAX)
		r.max = INT_MAX;
	if (r.max == 0 || after >= j->committed)
		return 0;
	/* Seqs in a segment are below the next one's base: start at the last
	 * segment that can hold after + 1. */
	while (i + 1 < j->nsegs && j->segs[i + 1].base <= after + 1)
		i++;
	for (; i < j->nsegs; i++) {
		const struct journal_seg *s = &j->segs[i];
		struct journal_scan sc = { 0 };
		void *addr;
		size_t len;
		int rc;

		if (journal_map(j, s->base, i + 1 == j->nsegs ? s->size : 0, &addr, &len) < 0)
			return r.n > 0 ? (int)r.n : -1;
		if (j->cursor.base == s->base && j->cursor.seq != 0 &&
		    j->cursor.seq <= r.after && j->cursor.off <= len) {
			sc.from = j->cursor.off;
			sc.prev = j->cursor.seq;
		}
		r.sc = &sc;
		r.base = s->base;
		rc = journal_parse_segment(addr, len, journal_read_rec, &r, &sc);
		journal_unmap(addr, len);
		if (rc != 0)
			break;
	}
	return (int)r.n;
}

static int
journal_write_checkpoint(struct journal *j, uint64_t acked)
{
	char text[JOURNAL_CKPT_MAX];
	int n = snprintf(text, sizeof(text), JOURNAL_CKPT_MAGIC "%" PRIu64, acked);
	n += snprintf(text + n, sizeof(text) - (size_t)n, " %08" PRIx32 "\n",
	    journal_crc(text, (size_t)n));
	int fd = openat(j->dirfd, JOURNAL_CKPT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	if (journal_pwrite_all(fd, text, (size_t)n, 0) < 0 || fdatasync(fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		goto fail;
	}
	close(fd);
	if (renameat(j->dirfd, JOURNAL_CKPT_TMP, j->dirfd, JOURNAL_CKPT) < 0 ||
	    fsync(j->dirfd) < 0)
		goto fail;
	return 0;
fail:
	log_warn("event=journal_error op=checkpoint dir=%s acked=%" PRIu64, j->dir, acked);
	return -1;
}

int
journal_ack(struct journal *j, uint64_t seq)
{
	if (seq <= j->acked)
		return 0;
	if (seq > j->committed) {
		log_warnx("event=journal_ack_refused dir=%s seq=%" PRIu64 " committed=%" PRIu64,
		    j->dir, seq, j->committed);
		errno = EINVAL;
		return -1;
	}
	if (journal_write_checkpoint(j, seq) < 0)
		return -1;
	j->acked = seq;
	journal_remove_acked(j);
	return 0;
}

uint64_t
journal_acked(const struct journal *j)
{
	return j->acked;
}

uint64_t
journal_last_seq(const struct journal *j)
{
	return j->committed;
}

uint64_t
journal_backlog(const struct journal *j)
{
	uint64_t floor = j->segs[0].base - 1;	/* below it: acked or dropped */
	if (floor < j->acked)
		floor = j->acked;
	return j->last_seq > floor ? j->last_seq - floor : 0;
}

uint64_t
journal_disk_bytes(const struct journal *j)
{
	return j->disk_bytes;
}

void
journal_take_counters(struct journal *j, uint64_t *dropped, uint64_t *corrupt)
{
	if (dropped != NULL)
		*dropped = j->dropped;
	if (corrupt != NULL)
		*corrupt = j->corrupt;
	j->dropped = j->corrupt = 0;
}

/* A missing checkpoint means nothing was acked yet; a damaged one is treated
 * the same: resending is safe (controld counts a seq once), skipping is not. */
static void
journal_load_checkpoint(struct journal *j)
{
	char text[JOURNAL_CKPT_MAX + 1];
	int fd = openat(j->dirfd, JOURNAL_CKPT, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("event=journal_error op=open file=%s/" JOURNAL_CKPT, j->dir);
		return;
	}
	ssize_t n = pread(fd, text, sizeof(text), 0);
	close(fd);
	if (n < 0 || journal_parse_checkpoint(text, (size_t)n, &j->acked) < 0) {
		log_warnx("event=journal_checkpoint_damaged file=%s/" JOURNAL_CKPT
		    " action=resend_all", j->dir);
		j->acked = 0;
	}
}

static int
journal_list(struct journal *j)
{
	int fd = dup(j->dirfd);
	DIR *d;
	struct dirent *de;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct journal_seg s = { 0 };
		if (journal_seg_parse_name(de->d_name, &s.base) == 0)
			journal_seg_push(j, &s);
	}
	closedir(d);
	if (j->nsegs > 0)
		qsort(j->segs, j->nsegs, sizeof(*j->segs), journal_seg_cmp);
	return 0;
}

/* The newest segment after a crash: cut a torn tail, and give a segment whose
 * header never made it to disk (crash while rolling) a fresh one. A tail that
 * still holds an intact record is not a torn write but damage: it stays, its
 * seqs are not handed out again, and new records go to a new segment. */
static int
journal_repair_active(struct journal *j, struct journal_seg *s, const struct journal_scan *sc,
    size_t len)
{
	char name[JOURNAL_NAME_MAX];
	unsigned char h[JOURNAL_SEG_HDR];
	uint64_t keep = sc->end;

	journal_seg_name(name, sizeof(name), s->base);
	if (sc->tail_seq > 0) {
		log_warnx("event=journal_damage_kept file=%s/%s offset=%" PRIu64 " seq=%" PRIu64,
		    j->dir, name, keep, sc->tail_seq);
		j->roll_next = 1;
		s->size = len;
		return 0;
	}
	if (!sc->header_ok && sc->records == 0)
		keep = 0;
	if (keep < len) {
		log_warnx("event=journal_torn_tail file=%s/%s offset=%" PRIu64 " bytes=%" PRIu64,
		    j->dir, name, keep, (uint64_t)len - keep);
		if (ftruncate(j->fd, (off_t)keep) < 0)
			return -1;
	}
	if (keep == 0) {
		journal_seg_header(h, s->base);
		if (journal_pwrite_all(j->fd, h, sizeof(h), 0) < 0)
			return -1;
		keep = JOURNAL_SEG_HDR;
	}
	if (keep != len && fdatasync(j->fd) < 0)
		return -1;
	s->size = keep;
	return 0;
}

static int
journal_scan_all(struct journal *j, char *err, size_t errsz)
{
	char name[JOURNAL_NAME_MAX];

	for (size_t i = 0; i < j->nsegs; i++) {
		struct journal_seg *s = &j->segs[i];
		struct journal_scan sc = { 0 };
		int active = i + 1 == j->nsegs;
		void *addr;
		size_t len;

		journal_seg_name(name, sizeof(name), s->base);
		if (active && (j->fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC)) < 0) {
			snprintf(err, errsz, "open %s/%s: %s", j->dir, name, strerror(errno));
			return -1;
		}
		if (journal_map(j, s->base, 0, &addr, &len) < 0) {
			snprintf(err, errsz, "read %s/%s: %s", j->dir, name, strerror(errno));
			return -1;
		}
		journal_parse_segment(addr, len, NULL, NULL, &sc);
		journal_unmap(addr, len);
		s->size = len;
		s->records = sc.records;
		s->first = sc.first;
		s->last = sc.last;
		if (sc.corrupt > 0)
			log_warnx("event=journal_corrupt file=%s/%s skipped=%" PRIu64, j->dir, name,
			    sc.corrupt);
		if (sc.header_ok && sc.base != s->base)
			log_warnx("event=journal_corrupt file=%s/%s header_base=%" PRIu64, j->dir,
			    name, sc.base);
		j->corrupt += sc.corrupt;
		if (active && journal_repair_active(j, s, &sc, len) < 0) {
			snprintf(err, errsz, "repair %s/%s: %s", j->dir, name, strerror(errno));
			return -1;
		}
		j->disk_bytes += s->size;
		/* Seqs are never reused: at least what was acked, what a segment
		 * holds, and what its name promises the segment before it. */
		if (s->base - 1 > j->last_seq)
			j->last_seq = s->base - 1;
		if (s->last > j->last_seq)
			j->last_seq = s->last;
		if (sc.tail_seq > j->last_seq)
			j->last_seq = sc.tail_seq;
	}
	return 0;
}

/* A new journal directory is only there after a crash once its parent's
 * entry for it is on disk. */
static void
journal_sync_parent(const char *dir)
{
	char *parent = xstrdup(dir);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	int fd = open(slash != NULL ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		log_warn("event=journal_error op=fsync_parent dir=%s", dir);
	if (fd >= 0)
		close(fd);
	free(parent);
}

int
journal_open(struct journal **out, const struct journal_opts *o, char *err, size_t errsz)
{
	struct journal *j = xcalloc(1, sizeof(*j));

	j->dirfd = j->fd = -1;
	j->dir = xstrdup(o->dir);
	buf_init(&j->pending);
	j->max_bytes = o->max_bytes ? o->max_bytes : JOURNAL_MAX_BYTES_DEFAULT;
	if (j->max_bytes < JOURNAL_MAX_BYTES_MIN)
		j->max_bytes = JOURNAL_MAX_BYTES_MIN;
	j->segment_bytes = o->segment_bytes ? o->segment_bytes : JOURNAL_SEGMENT_BYTES_DEFAULT;
	if (j->segment_bytes > j->max_bytes / 2)
		j->segment_bytes = j->max_bytes / 2;
	if (j->segment_bytes < JOURNAL_SEGMENT_BYTES_MIN)
		j->segment_bytes = JOURNAL_SEGMENT_BYTES_MIN;

	if (mkdir(o->dir, 0700) == 0)
		journal_sync_parent(o->dir);
	else if (errno != EEXIST) {
		snprintf(err, errsz, "mkdir %s: %s", o->dir, strerror(errno));
		goto fail;
	}
	if ((j->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errsz, "open %s: %s", o->dir, strerror(errno));
		goto fail;
	}
	if (flock(j->dirfd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errsz, "lock %s: %s", o->dir,
		    errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
		goto fail;
	}
	journal_load_checkpoint(j);
	j->last_seq = j->acked;
	if (unlinkat(j->dirfd, JOURNAL_CKPT_TMP, 0) < 0 && errno != ENOENT)
		log_warn("event=journal_error op=unlink file=%s/" JOURNAL_CKPT_TMP, j->dir);
	if (journal_list(j) < 0) {
		snprintf(err, errsz, "list %s: %s", o->dir, strerror(errno));
		goto fail;
	}
	if (journal_scan_all(j, err, errsz) < 0)
		goto fail;
	j->committed = j->last_seq;
	if (j->nsegs == 0 && journal_roll(j, j->last_seq + 1) < 0) {
		snprintf(err, errsz, "create segment in %s: %s", o->dir, strerror(errno));
		goto fail;
	}
	journal_remove_acked(j);
	journal_enforce_budget(j, 0);
	log_info("event=journal_open dir=%s segments=%zu bytes=%" PRIu64 " last_seq=%" PRIu64
	    " acked=%" PRIu64 " corrupt=%" PRIu64, j->dir, j->nsegs, j->disk_bytes, j->last_seq,
	    j->acked, j->corrupt);
	*out = j;
	return 0;
fail:
	journal_close(j);
	return -1;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->pending.len > 0 && journal_commit(j) < 0)
		log_warnx("event=journal_close_lost dir=%s records=%" PRIu64, j->dir, j->npending);
	if (j->fd >= 0)
		close(j->fd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	buf_free(&j->pending);
	free(j->segs);
	free(j->dir);
	free(j);
}
