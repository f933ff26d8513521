/* The TXT answer for _mta-sts.<domain>: the input is a list of RRs, each a
 * 2-byte big-endian length and that much RDATA (the last one takes what is
 * left). Every RR is parsed alone, then the answer as a whole; the input is
 * also parsed as one bare record. Never crash or leak; refusals say why in
 * printable text; an accepted id is 1 to 32 letters and digits; select
 * accepts only when a single RR parses, and returns that RR's id, whether
 * given RDATA or the records dns_txt() would make of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RRS 8

/* The RR's character-strings laid end to end, as dns_txt() hands them out;
 * 0 when the RDATA is not a sequence of character-strings. */
static int
concat(const uint8_t *d, size_t len, struct buf *out)
{
	size_t i = 0;
	if (len == 0)
		return 0;
	while (i < len) {
		size_t l = d[i++];
		if (l > len - i)
			return 0;
		buf_append(out, d + i, l);
		i += l;
	}
	return 1;
}

static void
check(int rc, const struct sts_txt *t, const char *err)
{
	size_t n;
	if (rc == STS_OK) {
		n = strlen(t->id);
		if (n == 0 || n > STS_ID_MAX)
			abort();
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)t->id[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
				abort();
		}
		return;
	}
	if (t->id[0] != '\0')
		abort();
	n = strlen(err);
	if (n == 0 || n >= STS_ERR_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_txt_rdata rrs[MAX_RRS];
	struct sts_txt t, one;
	char err[STS_ERR_MAX];
	size_t nrrs = 0, pos = 0, ok = 0, ok_at = 0;
	int rc;

	err[0] = '\0';
	rc = sts_txt_parse_record((const char *)data, size, &t, err, sizeof(err));
	check(rc, &t, err);

	while (pos + 2 <= size && nrrs < MAX_RRS) {
		size_t l = (size_t)data[pos] << 8 | data[pos + 1];
		pos += 2;
		if (l > size - pos || nrrs == MAX_RRS - 1)
			l = size - pos;
		rrs[nrrs].data = data + pos;
		rrs[nrrs].len = l;
		nrrs++;
		pos += l;
	}
	for (size_t i = 0; i < nrrs; i++) {
		err[0] = '\0';
		rc = sts_txt_parse_rdata(rrs[i].data, rrs[i].len, &one, err, sizeof(err));
		check(rc, &one, err);
		if (rc == STS_OK) {
			ok++;
			ok_at = i;
		}
	}
	err[0] = '\0';
	rc = sts_txt_select_rdata(rrs, nrrs, &t, err, sizeof(err));
	check(rc, &t, err);
	if (rc == STS_OK && ok != 1)
		abort();
	if (ok > 1 && rc != STS_ERR_MULTIPLE && rc != STS_ERR_SYNTAX)
		abort();
	if (rc == STS_OK) {
		sts_txt_parse_rdata(rrs[ok_at].data, rrs[ok_at].len, &one, err, sizeof(err));
		if (strcmp(one.id, t.id) != 0)
			abort();
	}
	if (rc == STS_ERR_NO_RECORD && ok != 0)
		abort();

	/* The same answer as dns_txt() would give it: same verdict, same id. */
	struct buf b[MAX_RRS];
	const char *recs[MAX_RRS];
	size_t lens[MAX_RRS], framed = 0;
	for (size_t i = 0; i < nrrs; i++) {
		buf_init(&b[i]);
		framed += concat(rrs[i].data, rrs[i].len, &b[i]);
		recs[i] = b[i].data;
		lens[i] = b[i].len;
	}
	if (framed == nrrs) {
		struct sts_txt t2;
		int rc2 = sts_txt_select_records(recs, lens, nrrs, &t2, err, sizeof(err));
		if (rc2 != rc || strcmp(t.id, t2.id) != 0)
			abort();
	}
	for (size_t i = 0; i < nrrs; i++)
		buf_free(&b[i]);
	return 0;
}
