/* The gRPC message framer, fed what a peer puts in DATA frames, split at an
 * arbitrary point: both feedings must yield the same messages, and a message
 * is never larger than the maximum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct collect {
	struct buf	all;
	size_t		count;
};

static int
collect_cb(void *arg, const uint8_t *msg, size_t len)
{
	struct collect *c = arg;
	if (len > 4096)
		abort();
	buf_append(&c->all, &len, sizeof(len));
	buf_append(&c->all, msg, len);
	c->count++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % size;
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	if (split > len)
		split = len;

	struct grpc_framer a, b;
	struct collect ca, cb;
	memset(&ca, 0, sizeof(ca));
	memset(&cb, 0, sizeof(cb));
	grpc_framer_init(&a, 4096);
	grpc_framer_init(&b, 4096);
	int ra = grpc_framer_feed(&a, in, len, collect_cb, &ca);
	int rb = grpc_framer_feed(&b, in, split, collect_cb, &cb);
	if (rb == 0)
		rb = grpc_framer_feed(&b, in + split, len - split, collect_cb, &cb);
	if (ra != rb || ca.count != cb.count || ca.all.len != cb.all.len ||
	    (ca.all.len && memcmp(ca.all.data, cb.all.data, ca.all.len) != 0))
		abort();
	if (ra == 0 && grpc_framer_partial(&a) != grpc_framer_partial(&b))
		abort();
	grpc_framer_free(&a);
	grpc_framer_free(&b);
	buf_free(&ca.all);
	buf_free(&cb.all);
	return 0;
}
