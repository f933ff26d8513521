/* Socket I/O under a deadline: see netio.h. */
#include "netio.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

int
netio_wait(int fd, short events, int64_t until)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = until - (int64_t)timeutil_mono_ms();
		if (left <= 0)
			return 0;
		int n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

int
netio_all(int fd, uint8_t *p, size_t len, int writing, int64_t until)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writing ? send(fd, p + done, len - done, MSG_NOSIGNAL) :
		    recv(fd, p + done, len - done, 0);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		int w = netio_wait(fd, writing ? POLLOUT : POLLIN, until);
		if (w <= 0) {
			if (w == 0)
				errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}
