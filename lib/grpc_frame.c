#include "grpc_frame.h"

#include <string.h>

void
grpc_framer_init(struct grpc_framer *f, size_t max_message)
{
	memset(f, 0, sizeof(*f));
	f->max = max_message;
	buf_init(&f->msg);
}

void
grpc_framer_free(struct grpc_framer *f)
{
	buf_free(&f->msg);
}

int
grpc_framer_partial(const struct grpc_framer *f)
{
	return f->hdr_have > 0 || f->in_body;
}

int
grpc_framer_feed(struct grpc_framer *f, const uint8_t *p, size_t n, grpc_frame_cb cb, void *arg)
{
	if (f->err)
		return f->err;
	while (n > 0) {
		if (!f->in_body) {
			size_t take = GRPC_FRAME_HDR - f->hdr_have;
			if (take > n)
				take = n;
			memcpy(f->hdr + f->hdr_have, p, take);
			f->hdr_have += take;
			p += take;
			n -= take;
			if (f->hdr_have < GRPC_FRAME_HDR)
				break;
			if (f->hdr[0] > 1)
				return f->err = GRPC_FRAME_BAD_FLAG;
			if (f->hdr[0] == 1)
				return f->err = GRPC_FRAME_COMPRESSED;
			f->need = (uint32_t)f->hdr[1] << 24 | (uint32_t)f->hdr[2] << 16 |
			    (uint32_t)f->hdr[3] << 8 | f->hdr[4];
			if (f->need > f->max)
				return f->err = GRPC_FRAME_TOO_LARGE;
			f->hdr_have = 0;
			buf_reset(&f->msg);
			if (f->need == 0) {
				/* An empty message (a proto3 message with all defaults). */
				if (cb(arg, (const uint8_t *)"", 0) != 0)
					return f->err = GRPC_FRAME_CALLBACK;
				continue;
			}
			f->in_body = 1;
		}
		size_t take = f->need - f->msg.len;
		if (take > n)
			take = n;
		/* Avoid a copy when the whole message sits in this chunk. */
		if (f->msg.len == 0 && take == f->need) {
			f->in_body = 0;
			if (cb(arg, p, take) != 0)
				return f->err = GRPC_FRAME_CALLBACK;
			p += take;
			n -= take;
			continue;
		}
		buf_append(&f->msg, p, take);
		p += take;
		n -= take;
		if (f->msg.len == f->need) {
			f->in_body = 0;
			if (cb(arg, (const uint8_t *)f->msg.data, f->msg.len) != 0)
				return f->err = GRPC_FRAME_CALLBACK;
			buf_reset(&f->msg);
		}
	}
	return 0;
}

void
grpc_frame_encode(struct buf *out, const uint8_t *msg, size_t len)
{
	uint8_t hdr[GRPC_FRAME_HDR] = { 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
	    (uint8_t)(len >> 8), (uint8_t)len };
	buf_append(out, hdr, sizeof(hdr));
	buf_append(out, msg, len);
}
