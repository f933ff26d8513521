#include "outcome.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int
outcome_channel_new(int fds[2], uint64_t **dropped)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	/* Room for a burst while the uploader is busy with an fsync. */
	int sz = 4 << 20;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	void *p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	*dropped = p;
	**dropped = 0;
	return 0;
}

void
outcome_emit(struct outcome_sink *s, const Mxfleet__V1__Outcome *o)
{
	uint8_t buf[OUTCOME_MAX_RECORD];
	if (s->fd < 0)
		return;
	size_t n = mxfleet__v1__outcome__get_packed_size(o);
	if (n > sizeof(buf)) {
		__atomic_add_fetch(s->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	mxfleet__v1__outcome__pack(o, buf);
	if (send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		__atomic_add_fetch(s->dropped, 1, __ATOMIC_RELAXED);
}

uint64_t
outcome_take_dropped(uint64_t *dropped)
{
	return __atomic_exchange_n(dropped, 0, __ATOMIC_RELAXED);
}

size_t
outcome_append_seq(uint8_t *out, const uint8_t *rec, size_t len, uint64_t seq)
{
	memcpy(out, rec, len);
	size_t n = len;
	/* field 20, wire type 0 (varint): tag (20 << 3) = 160 as a varint */
	out[n++] = 0xa0;
	out[n++] = 0x01;
	do {
		uint8_t b = seq & 0x7f;
		seq >>= 7;
		out[n++] = seq ? (uint8_t)(b | 0x80) : b;
	} while (seq);
	return n;
}
