/* mxd-https, the process that serves each hosted domain's MTA-STS policy
 * (https.c; docs/dns.md#mta-sts-hosting). */
#ifndef MXD_HTTPS_H
#define MXD_HTTPS_H

#include <stddef.h>

#include "mxd_config.h"
#include "tls.h"

/* Seconds a connection may last, handshake to answer: a client that sends
 * its request slowly (or never) is cut then. */
#define HTTPS_CONN_TIMEOUT	10
/* Seconds the answered connection waits for the client to close. */
#define HTTPS_LINGER		2
/* Connections open at once; past it new ones wait in the listen backlog. */
#define HTTPS_MAX_CONNS		256

/* Serve on the bound listening sockets fds with the certificates of tls
 * (SNI picks one) the policies of cfg. Takes cfg and tls over; never
 * returns. */
void https_main(struct mxd_config *cfg, struct tls_server *tls, const int *fds, size_t nfds)
    __attribute__((noreturn));

#endif
