/* The DATA and BDAT state machines. Properties checked on every input:
 * feeding it whole or split at an arbitrary point gives the same result; the
 * end of data is only ever right after <CRLF>.<CRLF> (or a leading .<CRLF>);
 * a message marked good contains no bare CR or LF. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_clean(const struct buf *b)
{
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			abort();
		if (b->data[i] == '\r' && (i + 1 >= b->len || b->data[i + 1] != '\n'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % (size);
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	if (split > len)
		split = len;

	struct smtp_data a, b;
	struct buf oa, ob;
	smtp_data_init(&a, 1 << 20);
	smtp_data_init(&b, 1 << 20);
	buf_init(&oa);
	buf_init(&ob);
	size_t ua = smtp_data_feed(&a, in, len, &oa);
	size_t ub = smtp_data_feed(&b, in, split, &ob);
	if (b.state != SMTP_DATA_END)
		ub += smtp_data_feed(&b, in + split, len - split, &ob);
	if (ua != ub || a.state != b.state || a.flags != b.flags || oa.len != ob.len ||
	    (oa.len && memcmp(oa.data, ob.data, oa.len) != 0))
		abort();
	if (a.state == SMTP_DATA_END) {
		int at_start = ua == 3 && memcmp(in, ".\r\n", 3) == 0;
		if (!at_start && (ua < 5 || memcmp(in + ua - 5, "\r\n.\r\n", 5) != 0))
			abort();
		if (a.flags == 0)
			check_clean(&oa);
	}
	buf_free(&oa);
	buf_free(&ob);

	struct smtp_bdat bd;
	struct buf obd;
	smtp_bdat_init(&bd, 1 << 20);
	buf_init(&obd);
	smtp_bdat_feed(&bd, in, split, &obd);
	smtp_bdat_feed(&bd, in + split, len - split, &obd);
	smtp_bdat_finish(&bd);
	if (bd.flags == 0)
		check_clean(&obd);
	buf_free(&obd);
	return 0;
}
