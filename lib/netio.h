/* Blocking socket I/O under a deadline, on non-blocking sockets: the
 * transports of dns.c (queries to the resolver) and dnsupdate.c (queries and
 * UPDATEs to a zone's primary) share it. Deadlines are CLOCK_MONOTONIC
 * milliseconds (timeutil_mono_ms). */
#ifndef MXFLEET_NETIO_H
#define MXFLEET_NETIO_H

#include <stddef.h>
#include <stdint.h>

/* Wait until fd is ready for events (POLLIN/POLLOUT) or the deadline
 * passes: 1 ready, 0 timed out, -1 error (errno). */
int netio_wait(int fd, short events, int64_t until);
/* Send (writing) or receive exactly len bytes before the deadline: 0, or -1
 * with errno (ETIMEDOUT at the deadline, ECONNRESET when the peer closed). */
int netio_all(int fd, uint8_t *p, size_t len, int writing, int64_t until);

#endif
