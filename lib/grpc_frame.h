/* gRPC length-prefixed messages (PROTOCOL-HTTP2.md): a 1-byte compressed flag
 * and a 4-byte big-endian length before each message, split across HTTP/2
 * DATA frames any way the peer likes. I/O-free: bytes in, messages out. */
#ifndef MXFLEET_GRPC_FRAME_H
#define MXFLEET_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define GRPC_FRAME_HDR		5

enum grpc_frame_err {
	GRPC_FRAME_OK = 0,
	GRPC_FRAME_TOO_LARGE = -1,	/* over the maximum message size */
	GRPC_FRAME_COMPRESSED = -2,	/* compressed flag set; we announce no encoding */
	GRPC_FRAME_BAD_FLAG = -3,	/* flag byte other than 0 or 1 */
	GRPC_FRAME_CALLBACK = -4,	/* the callback asked to stop */
};

struct grpc_framer {
	uint8_t		hdr[GRPC_FRAME_HDR];
	size_t		hdr_have;
	uint32_t	need;		/* body bytes of the current message */
	int		in_body;
	size_t		max;
	struct buf	msg;
	int		err;		/* sticky once set */
};

typedef int (*grpc_frame_cb)(void *arg, const uint8_t *msg, size_t len);

void grpc_framer_init(struct grpc_framer *f, size_t max_message);
void grpc_framer_free(struct grpc_framer *f);
/* Feed bytes; cb is called once per complete message. Returns 0 or a
 * negative grpc_frame_err (then the stream must be failed). */
int grpc_framer_feed(struct grpc_framer *f, const uint8_t *p, size_t n, grpc_frame_cb cb, void *arg);
/* At end of stream: 1 if a message was cut off in the middle. */
int grpc_framer_partial(const struct grpc_framer *f);
/* Prefix and append one message to out. */
void grpc_frame_encode(struct buf *out, const uint8_t *msg, size_t len);

#endif
