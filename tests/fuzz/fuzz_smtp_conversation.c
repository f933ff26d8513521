/* Whole SMTP conversations against the I/O-free server (mxd/smtpd/smtpd_core.c):
 * phases, pipelining, DATA and BDAT chunk boundaries, STARTTLS resets and
 * limits, with the invariants of tests/fuzz/smtpd_fake.h checked on every
 * step. Input: one flags byte (bit 0: STARTTLS available, bit 1: the client
 * may relay, bits 2-7: how many bytes the core buffers before a spool write,
 * small so that inputs of fuzzer size cross it), one count n, n script bytes (chunk sizes of the delivery, and
 * whether each message's spool write and commit succeed), then what the
 * client sends.
 *
 * Played twice, in the script's chunks with the small spool-write size, and
 * all at once with mxd's own (64 KiB): where neither run crossed STARTTLS
 * (which throws away what was pipelined, so it depends on timing), the
 * replies and the committed messages must be the same - neither how bytes
 * arrive nor when content is written out may change the conversation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtpd_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mxd_config *fuzz_cfg;

static const char fuzz_config_text[] =
    "hostname = \"mx.fuzz.test\";\n"
    "domains = ( { name = \"example.test\"; next_hop = \"smtp:[192.0.2.25]:25\"; } );\n"
    "tls = { certificates = ( { cert = \"/nonexistent.pem\"; key = \"/nonexistent.key\"; } ); };\n"
    "limits = { message_size = 1024; recipients = 3; errors = 10; junk_commands = 20; };\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_cfg == NULL) {
		log_init("fuzz", LOG_LEVEL_ERROR, 0);
		fuzz_cfg = smtpd_fake_config(fuzz_config_text);
	}
	if (size < 2)
		return 0;
	int tls_available = data[0] & 1, trusted = (data[0] >> 1) & 1;
	size_t flush = (size_t)(data[0] >> 2) * 8 + 1;
	size_t nscript = data[1] % 33;
	if (nscript > size - 2)
		nscript = size - 2;
	const uint8_t *script = data + 2;
	const char *in = (const char *)data + 2 + nscript;
	size_t len = size - 2 - nscript;

	struct smtpd_fake a, b;
	smtpd_fake_init_flush(&a, fuzz_cfg, trusted, tls_available, script, nscript, flush);
	smtpd_fake_play(&a, in, len, script, nscript);
	smtpd_fake_init(&b, fuzz_cfg, trusted, tls_available, script, nscript);
	smtpd_fake_play(&b, in, len, NULL, 0);
	if (a.starttls == 0 && b.starttls == 0) {
		if (a.replies.len != b.replies.len ||
		    memcmp(a.replies.data, b.replies.data, a.replies.len) != 0 ||
		    a.committed.len != b.committed.len ||
		    memcmp(a.committed.data, b.committed.data, a.committed.len) != 0)
			abort();	/* depends on how bytes arrive or when they are written */
	}
	smtpd_fake_free(&a);
	smtpd_fake_free(&b);
	return 0;
}
