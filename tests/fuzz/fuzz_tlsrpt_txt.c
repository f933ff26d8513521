/* The TXT answer for _smtp._tls.<domain>, framed as for fuzz_sts_txt: a
 * list of RRs, each a 2-byte length and RDATA. Never crash or leak;
 * refusals say why in printable text; an accepted record has 1 to 32 rua
 * URIs, at least one of them mailto: or https:, none holding a raw ',',
 * ';', '!' or whitespace, every mailto: target an address with an '@', every
 * https: target the URI itself; select accepts only when a single RR
 * parses, with the same verdict for RDATA as for the records dns_txt()
 * would make of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tlsrpt_txt.h"

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
check(int rc, const struct tlsrpt_txt *t, const char *err)
{
	size_t n;
	if (rc == TLSRPT_TXT_OK) {
		if (t == NULL || t->n_rua == 0 || t->n_rua > TLSRPT_TXT_RUA_MAX || t->n_usable == 0)
			abort();
		size_t usable = 0;
		for (size_t i = 0; i < t->n_rua; i++) {
			const struct tlsrpt_txt_rua *r = &t->rua[i];
			if (r->uri == NULL || r->uri[0] == '\0' || strpbrk(r->uri, ",;! \t") != NULL)
				abort();
			switch (r->scheme) {
			case TLSRPT_TXT_MAILTO:
				if (r->target == NULL || strchr(r->target, '@') == NULL ||
				    strpbrk(r->target, ", \t") != NULL)
					abort();
				usable++;
				break;
			case TLSRPT_TXT_HTTPS:
				if (r->target == NULL || strcmp(r->target, r->uri) != 0)
					abort();
				usable++;
				break;
			case TLSRPT_TXT_OTHER:
				if (r->target != NULL)
					abort();
				break;
			default:
				abort();
			}
		}
		if (usable != t->n_usable)
			abort();
		return;
	}
	if (t != NULL)
		abort();
	n = strlen(err);
	if (n == 0 || n >= TLSRPT_TXT_ERR_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlsrpt_txt_rdata rrs[MAX_RRS];
	struct tlsrpt_txt *t, *one;
	char err[TLSRPT_TXT_ERR_MAX];
	size_t nrrs = 0, pos = 0, ok = 0;
	int rc;

	err[0] = '\0';
	rc = tlsrpt_txt_parse_record((const char *)data, size, &t, err, sizeof(err));
	check(rc, t, err);
	tlsrpt_txt_free(t);

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
		rc = tlsrpt_txt_parse_rdata(rrs[i].data, rrs[i].len, &one, err, sizeof(err));
		check(rc, one, err);
		if (rc == TLSRPT_TXT_OK)
			ok++;
		tlsrpt_txt_free(one);
	}
	err[0] = '\0';
	rc = tlsrpt_txt_select_rdata(rrs, nrrs, &t, err, sizeof(err));
	check(rc, t, err);
	if (rc == TLSRPT_TXT_OK && ok != 1)
		abort();
	if (rc == TLSRPT_TXT_NO_RECORD && ok != 0)
		abort();
	if (ok > 1 && rc != TLSRPT_TXT_MULTIPLE && rc != TLSRPT_TXT_SYNTAX)
		abort();

	/* The same answer as dns_txt() would give it: the same verdict. */
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
		struct tlsrpt_txt *t2;
		int rc2 = tlsrpt_txt_select_records(recs, lens, nrrs, &t2, err, sizeof(err));
		if (rc2 != rc || (t == NULL) != (t2 == NULL) || (t && t->n_rua != t2->n_rua))
			abort();
		tlsrpt_txt_free(t2);
	}
	for (size_t i = 0; i < nrrs; i++)
		buf_free(&b[i]);
	tlsrpt_txt_free(t);
	return 0;
}
