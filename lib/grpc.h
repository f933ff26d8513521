/* gRPC over HTTP/2, on nghttp2 (Debian 12's 1.52 API) + libevent + OpenSSL.
 *
 * Enough of gRPC's PROTOCOL-HTTP2.md to interoperate with real stacks: ALPN
 * h2, POST with content-type application/grpc and te: trailers, 5-byte
 * message prefixes across DATA frames, grpc-status/grpc-message trailers and
 * trailers-only errors, UNIMPLEMENTED for unknown methods, HTTP 415 for a
 * wrong content-type, RESOURCE_EXHAUSTED over the maximum message size,
 * grpc-timeout deadlines, keepalive PINGs, GOAWAY, and a client that
 * reconnects with backoff and jitter. Messages are opaque bytes: callers
 * pack and unpack protobuf themselves. */
#ifndef MXFLEET_GRPC_H
#define MXFLEET_GRPC_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes (grpc/include/grpc/impl/codegen/status.h). */
enum grpc_status {
	GRPC_OK = 0, GRPC_CANCELLED = 1, GRPC_UNKNOWN = 2, GRPC_INVALID_ARGUMENT = 3,
	GRPC_DEADLINE_EXCEEDED = 4, GRPC_NOT_FOUND = 5, GRPC_ALREADY_EXISTS = 6,
	GRPC_PERMISSION_DENIED = 7, GRPC_RESOURCE_EXHAUSTED = 8, GRPC_FAILED_PRECONDITION = 9,
	GRPC_ABORTED = 10, GRPC_OUT_OF_RANGE = 11, GRPC_UNIMPLEMENTED = 12, GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14, GRPC_DATA_LOSS = 15, GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_DEFAULT_MAX_MESSAGE	(4u << 20)

struct grpc_server;
struct grpc_client;
struct grpc_call;

/* ---- server ---- */

struct grpc_method {
	const char	*path;		/* "/mxfleet.v1.Collector/Export" */
	/* A request message arrived. */
	void		(*on_message)(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
	/* The client has sent everything (may be NULL). */
	void		(*on_half_close)(struct grpc_call *c, void *arg);
	/* The call is over, however it ended: finished by a handler or by the
	 * transport (a malformed or oversized message, a stream ending inside a
	 * message, the deadline), reset by the client, connection lost, server
	 * freed. Called exactly once per call that reached a method, from the
	 * event loop (never inside another grpc_* call), just before the call
	 * is freed: drop every reference to the call here (may be NULL). From
	 * grpc_call_finish on, grpc_call_send fails. */
	void		(*on_close)(struct grpc_call *c, void *arg);
};

struct grpc_server_opts {
	const struct grpc_method *methods;
	size_t		 nmethods;
	void		*arg;		/* passed to every handler */
	SSL_CTX		*tls;		/* for TCP listeners; NULL: plaintext h2c (tests only) */
	size_t		 max_message;	/* 0: GRPC_DEFAULT_MAX_MESSAGE */
};

/* What one peer may hold of a server. A zero field keeps its default. */
struct grpc_server_limits {
	/* From accept to the client's first HTTP/2 frame, TLS handshake
	 * included; then the connection is closed. */
	int		 handshake_timeout_ms;
	/* A connection with no call open that received nothing for this long
	 * gets GOAWAY. With calls open, the server sends a PING after this
	 * long of silence; one not answered before the next closes it. */
	int		 idle_timeout_ms;
	/* Connections at once; one over is closed at accept. */
	size_t		 max_connections;
	/* The same, per client IP address (TCP listeners). */
	size_t		 max_connections_per_ip;
	/* SETTINGS_MAX_CONCURRENT_STREAMS: calls open at once per connection;
	 * nghttp2 refuses the next with RST_STREAM REFUSED_STREAM. */
	uint32_t	 max_streams;
};

#define GRPC_DEFAULT_HANDSHAKE_TIMEOUT_MS	10000
#define GRPC_DEFAULT_IDLE_TIMEOUT_MS		300000
#define GRPC_DEFAULT_MAX_CONNECTIONS		1024
#define GRPC_DEFAULT_MAX_CONNECTIONS_PER_IP	64
#define GRPC_DEFAULT_MAX_STREAMS		100

struct grpc_server_stats {
	size_t		 connections;		/* open now */
	uint64_t	 refused;		/* closed at accept: over a connection cap */
	uint64_t	 handshake_timeouts;	/* closed: handshake_timeout_ms passed */
	uint64_t	 idle_closed;		/* closed: idle, or keepalive PING not answered */
};

int grpc_server_new(struct grpc_server **out, struct event_base *base,
    const struct grpc_server_opts *o);
/* Replace the defaults (GRPC_DEFAULT_*); applies to connections accepted
 * from then on. */
void grpc_server_set_limits(struct grpc_server *s, const struct grpc_server_limits *l);
void grpc_server_get_stats(const struct grpc_server *s, struct grpc_server_stats *out);
/* The TLS context of connections accepted from then on (a renewed
 * certificate, controld's SIGHUP); those open keep theirs (each SSL holds a
 * reference), so the caller may free the old context at once. */
void grpc_server_set_tls(struct grpc_server *s, SSL_CTX *ctx);
/* Listen on "IP:PORT" / "[IPv6]:PORT" (TLS), or take an already bound fd. */
int grpc_server_listen(struct grpc_server *s, const char *addr, char *err, size_t errsz);
/* Listen on a unix socket (plaintext h2c). Only root and the server's own
 * user may connect: peer credentials are checked on accept. */
int grpc_server_listen_unix(struct grpc_server *s, const char *path, char *err, size_t errsz);
/* Stop listening and send GOAWAY on every connection; calls in flight go on. */
void grpc_server_shutdown(struct grpc_server *s);
/* Close every TLS connection whose peer refuse() says no to (a certificate
 * revoked since its handshake); returns how many. */
int grpc_server_close_peers(struct grpc_server *s, int (*refuse)(SSL *, void *), void *arg,
    const char *why);
void grpc_server_free(struct grpc_server *s);
/* The port a listener got (for ":0"). */
int grpc_server_port(const struct grpc_server *s, size_t idx);

/* Queue a response message (server) or request message (client). */
int grpc_call_send(struct grpc_call *c, const uint8_t *msg, size_t len);
/* Server: end the call with a status (trailers, or trailers-only). */
void grpc_call_finish(struct grpc_call *c, int status, const char *message);
/* Server: end the call at once, dropping what is queued for it (a client
 * that does not read): RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients
 * report as RESOURCE_EXHAUSTED. on_close follows. */
void grpc_call_abort(struct grpc_call *c);
/* Bytes queued but not yet handed to the socket: back off while large. */
size_t grpc_call_pending(const struct grpc_call *c);
/* Server: who is calling. For TLS, the client certificate's CN (empty if
 * none); for the unix socket, "unix:uid=N". */
const char *grpc_call_peer(const struct grpc_call *c);
int grpc_call_peer_is_local(const struct grpc_call *c);
/* The client certificate's role as the fleet CA signed it (pki_cert_role:
 * "host", "admin", "none"), "" without a certificate. Not the OU. */
const char *grpc_call_peer_unit(const struct grpc_call *c);
void grpc_call_set_data(struct grpc_call *c, void *data);
void *grpc_call_get_data(const struct grpc_call *c);
const char *grpc_call_path(const struct grpc_call *c);

/* ---- client ---- */

typedef void (*grpc_msg_fn)(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
typedef void (*grpc_close_fn)(struct grpc_call *c, int status, const char *message, void *arg);
typedef void (*grpc_state_fn)(struct grpc_client *cl, int ready, void *arg);

struct grpc_client_opts {
	const char	*host;		/* IP or name to connect to */
	int		 port;
	const char	*unix_path;	/* instead of host:port: h2c over a unix socket */
	const char	*authority;	/* :authority and the TLS name checked; default host */
	SSL_CTX		*tls;		/* NULL: plaintext h2c */
	size_t		 max_message;
	int		 keepalive_ms;	/* PING interval; 0: 30 s */
	int		 reconnect;	/* reconnect with backoff after a loss */
	grpc_state_fn	 on_state;	/* ready / lost */
	void		*arg;
};

int grpc_client_new(struct grpc_client **out, struct event_base *base,
    const struct grpc_client_opts *o);
void grpc_client_free(struct grpc_client *cl);
int grpc_client_ready(const struct grpc_client *cl);
/* Why the last connection attempt failed, for messages. */
const char *grpc_client_error(const struct grpc_client *cl);
/* Connect to another server from the next attempt on (a client that fails
 * over between replicas): host, port, and authority (NULL: host) as in
 * grpc_client_opts. The connection open now, if any, is left alone. */
void grpc_client_set_target(struct grpc_client *cl, const char *host, int port,
    const char *authority);
/* Give up on the connection open now, as if it were lost: its calls end
 * with UNAVAILABLE, on_state(0) follows, then a reconnect with backoff. */
void grpc_client_drop(struct grpc_client *cl, const char *why);
/* Start a call. NULL when not connected (the caller retries later). */
struct grpc_call *grpc_client_call(struct grpc_client *cl, const char *path, int timeout_ms,
    grpc_msg_fn on_message, grpc_close_fn on_close, void *arg);
/* Client: no more request messages. */
void grpc_call_close_send(struct grpc_call *c);
/* Client: give up on the call (RST_STREAM CANCEL); on_close is not called. */
void grpc_call_cancel(struct grpc_call *c);

/* Blocking unary call on a private event loop (mailctl, tests). *resp is
 * malloc'd. Returns the grpc status; message describes failures. */
int grpc_unary(const struct grpc_client_opts *o, const char *path, const uint8_t *req,
    size_t reqlen, uint8_t **resp, size_t *resplen, char *message, size_t msgsz,
    int timeout_ms);

/* TLS contexts for the control plane: TLS 1.3, ALPN h2, peers verified
 * against the fleet CA. The server requires a client certificate. */
SSL_CTX *grpc_tls_server_ctx(const char *cert, const char *key, const char *ca,
    char *err, size_t errsz);
SSL_CTX *grpc_tls_client_ctx(const char *cert, const char *key, const char *ca,
    char *err, size_t errsz);

const char *grpc_status_name(int status);

#endif
