/* Which controld the uploader talks to (control.servers, docs/mxd.md).
 *
 * I/O-free: the uploader reports what happened (connected, failed) and is
 * told where to connect next and what, if anything, to log. The policy:
 * start with the first server; stay on a server while it works; after a
 * failure (connection refused or lost, TLS handshake or name check failed,
 * a stream reset, no acknowledgement in time) move to the next one in the
 * list, wrapping around. mxd does not move back to an earlier server by
 * itself: any replica will do, and staying avoids flapping.
 *
 * Logging is per change, not per retry: one line (event=control_failover)
 * for each move while some server may still answer, one line
 * (event=controld_unreachable) when every server has failed in a row, then
 * nothing until a connection succeeds. */
#ifndef MXD_CTLSERVERS_H
#define MXD_CTLSERVERS_H

#include <stddef.h>

struct mxd_control_server;

struct ctlservers {
	const struct mxd_control_server *list;
	size_t		 n;
	const char	*authority;	/* control.authority; NULL: each server's host */
	size_t		 cur;
	size_t		 failures;	/* in a row, since the last connection */
};

void ctlservers_init(struct ctlservers *cs, const struct mxd_control_server *list, size_t n,
    const char *authority);
/* The server to connect to now ("host:port" as written, host, port), and
 * the name its certificate must carry. */
const char *ctlservers_addr(const struct ctlservers *cs);
const char *ctlservers_host(const struct ctlservers *cs);
int ctlservers_port(const struct ctlservers *cs);
const char *ctlservers_authority(const struct ctlservers *cs);
/* The current server failed for why. Moves on to the next one (if there is
 * another) and writes the line to log into line ("" when nothing is worth
 * logging: a retry). Returns 1 when the server changed. */
int ctlservers_failed(struct ctlservers *cs, const char *why, char *line, size_t linesz);
/* Connected to the current server: failures start again from 0. */
void ctlservers_connected(struct ctlservers *cs);
/* Does a call that ended with this gRPC status, on a connection still up,
 * say the server is in trouble (move on) rather than refuse the request? */
int ctlservers_status_is_fault(int status);

#endif
