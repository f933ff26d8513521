#include "grpc.h"
#include "pki.h"
#include "buf.h"
#include "grpc_frame.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define GRPC_OUTPUT_HIGH	(1u << 20)	/* stop feeding nghttp2 past 1 MiB queued */
#define GRPC_BACKOFF_MIN_MS	500
#define GRPC_BACKOFF_MAX_MS	30000

struct grpc_conn;

struct grpc_call {
	struct grpc_call	*next, *prev;
	struct grpc_conn	*conn;
	int32_t			 stream_id;
	const struct grpc_method *method;	/* server */
	struct grpc_framer	 framer;
	struct buf		 out;
	size_t			 out_off;
	int			 out_eof;	/* nothing more to send after out */
	int			 started;	/* server: response HEADERS submitted */
	int			 finished;	/* server: status decided; client: on_close ran */
	int			 status;
	char			*status_msg;
	int			 deferred;	/* data provider waiting for resume */
	void			*data;
	struct event		*deadline;
	/* request headers (server) / response headers (client) */
	char			 path[256];
	char			 http_method[16];
	char			 ctype[128];
	int64_t			 timeout_ms;
	int			 http_status;
	int			 got_status;
	int			 http_error;	/* answered with a plain HTTP error */
	char			*grpc_message;
	/* client */
	grpc_msg_fn		 on_msg;
	grpc_close_fn		 on_close;
	void			*arg;
};

struct grpc_conn {
	struct grpc_conn	*next, *prev;
	struct grpc_server	*srv;
	struct grpc_client	*cli;
	struct bufferevent	*bev;
	nghttp2_session		*h2;
	struct grpc_call	*calls;
	char			 peer[256];
	char			 peer_unit[64];	/* certificate role: "host", "admin", "none" */
	int			 local;		/* unix socket peer */
	int			 dead;
	int			 in_callback;	/* inside nghttp2: no re-entry, no free */
	int			 want_flush;	/* a flush was asked for while inside */
	int			 close_pending;
	char			 close_why[256];
	/* server: the handshake deadline, then the idle / keepalive timer */
	struct event		*timer;
	int			 handshaken;	/* the client's first HTTP/2 frame arrived */
	int			 ping_outstanding;
	int			 goaway_sent;
	char			 ip[64];	/* TCP peer address, for the per-IP cap */
};

struct grpc_listener {
	struct evconnlistener	*l;
	int			 is_unix;
	char			 path[108];
	int			 port;
};

struct grpc_server {
	struct event_base	*base;
	struct grpc_server_opts	 o;
	struct grpc_listener	 listeners[8];
	size_t			 nlisteners;
	struct grpc_conn	*conns;
	struct grpc_server_limits lim;
	struct grpc_server_stats st;
	struct grpc_call	*closing;	/* ended, on_close not yet run */
	struct event		*reap_ev;
	time_t			 refused_logged;	/* refusals are logged once a minute */
	uint64_t		 refused_unlogged;
};

struct grpc_client {
	struct event_base	*base;
	struct grpc_client_opts	 o;
	char			*host, *authority, *unix_path;
	struct grpc_conn	*conn;
	int			 ready;
	int			 goaway;
	int			 backoff_ms;
	struct event		*retry_ev;
	struct event		*ping_ev;
	int			 ping_outstanding;
	char			 error[256];
};

static void grpc_conn_flush(struct grpc_conn *c);
static void grpc_conn_close(struct grpc_conn *c, const char *why);
static void grpc_client_lost(struct grpc_client *cl, const char *why);

const char *
grpc_status_name(int status)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
		"UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	};
	if (status < 0 || status > 16)
		return "INVALID_STATUS";
	return names[status];
}

/* ---- calls ---- */

static struct grpc_call *
grpc_call_new(struct grpc_conn *c, int32_t stream_id, size_t max)
{
	struct grpc_call *call = xcalloc(1, sizeof(*call));
	call->conn = c;
	call->stream_id = stream_id;
	call->timeout_ms = -1;
	grpc_framer_init(&call->framer, max);
	buf_init(&call->out);
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	return call;
}

static void
grpc_call_destroy(struct grpc_call *call)
{
	if (call->deadline)
		event_free(call->deadline);
	grpc_framer_free(&call->framer);
	buf_free(&call->out);
	free(call->status_msg);
	free(call->grpc_message);
	free(call);
}

/* The call is over. Its method's on_close runs from the event loop, never
 * under a handler's grpc_call_send/finish (whose flush may close streams and
 * connections) nor inside nghttp2: a handler iterating over its calls never
 * sees one vanish. Until then the call is detached (conn NULL): sending on
 * it fails. */
static void
grpc_call_free(struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;
	struct grpc_server *s = c ? c->srv : NULL;
	if (c) {
		if (call->prev)
			call->prev->next = call->next;
		else
			c->calls = call->next;
		if (call->next)
			call->next->prev = call->prev;
		call->conn = NULL;
	}
	if (s && call->method && call->method->on_close) {
		if (call->deadline) {
			event_free(call->deadline);
			call->deadline = NULL;
		}
		call->prev = NULL;
		call->next = s->closing;
		s->closing = call;
		event_active(s->reap_ev, EV_TIMEOUT, 1);
		return;
	}
	grpc_call_destroy(call);
}

static void
grpc_server_reap(struct grpc_server *s)
{
	while (s->closing) {
		struct grpc_call *call = s->closing;
		s->closing = call->next;
		call->method->on_close(call, s->o.arg);
		grpc_call_destroy(call);
	}
}

static void
grpc_server_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	grpc_server_reap(arg);
}

size_t
grpc_call_pending(const struct grpc_call *c)
{
	size_t n = c->out.len - c->out_off;
	if (c->conn && c->conn->bev)
		n += evbuffer_get_length(bufferevent_get_output(c->conn->bev));
	return n;
}

const char *
grpc_call_peer(const struct grpc_call *c)
{
	return c->conn ? c->conn->peer : "";
}

const char *
grpc_call_peer_unit(const struct grpc_call *c)
{
	return c->conn ? c->conn->peer_unit : "";
}

int
grpc_call_peer_is_local(const struct grpc_call *c)
{
	return c->conn && c->conn->local;
}

void
grpc_call_set_data(struct grpc_call *c, void *data)
{
	c->data = data;
}

void *
grpc_call_get_data(const struct grpc_call *c)
{
	return c->data;
}

const char *
grpc_call_path(const struct grpc_call *c)
{
	return c->path;
}

/* Data provider: hand nghttp2 what is queued; defer when empty and not done. */
static ssize_t
grpc_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *dst, size_t length,
    uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
	struct grpc_call *call = source->ptr;
	size_t avail = call->out.len - call->out_off;
	if (avail > 0) {
		size_t n = avail < length ? avail : length;
		memcpy(dst, call->out.data + call->out_off, n);
		call->out_off += n;
		if (call->out_off == call->out.len) {
			buf_reset(&call->out);
			call->out_off = 0;
		}
		return (ssize_t)n;
	}
	if (!call->out_eof) {
		call->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (call->conn->srv) {
		/* Server: the status goes in trailers after the last DATA. */
		char status[16];
		snprintf(status, sizeof(status), "%d", call->status);
		nghttp2_nv nv[2] = {
			{ (uint8_t *)"grpc-status", (uint8_t *)status, 11, strlen(status),
			    NGHTTP2_NV_FLAG_NONE },
			{ (uint8_t *)"grpc-message", (uint8_t *)(call->status_msg ? call->status_msg : ""),
			    12, call->status_msg ? strlen(call->status_msg) : 0, NGHTTP2_NV_FLAG_NONE },
		};
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_submit_trailer(session, stream_id, nv, call->status_msg ? 2 : 1);
	}
	return 0;
}

static void
grpc_call_resume(struct grpc_call *call)
{
	if (call->deferred && call->conn && call->conn->h2) {
		call->deferred = 0;
		nghttp2_session_resume_data(call->conn->h2, call->stream_id);
	}
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

static void
grpc_server_start_response(struct grpc_call *call)
{
	nghttp2_nv nv[] = {
		NV(":status", "200"),
		NV("content-type", "application/grpc"),
		NV("grpc-accept-encoding", "identity"),
	};
	nghttp2_data_provider prd;
	prd.source.ptr = call;
	prd.read_callback = grpc_data_read;
	nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 3, &prd);
	call->started = 1;
}

int
grpc_call_send(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	if (call->conn == NULL || call->conn->h2 == NULL || call->finished || call->out_eof)
		return -1;
	grpc_frame_encode(&call->out, msg, len);
	if (call->conn->srv && !call->started)
		grpc_server_start_response(call);
	else
		grpc_call_resume(call);
	grpc_conn_flush(call->conn);
	return 0;
}

void
grpc_call_finish(struct grpc_call *call, int status, const char *message)
{
	if (call->finished || call->conn == NULL || call->conn->h2 == NULL)
		return;
	call->finished = 1;
	call->status = status;
	free(call->status_msg);
	call->status_msg = message && *message ? xstrdup(message) : NULL;
	if (!call->started) {
		/* Trailers-only: one HEADERS frame with the status, END_STREAM. */
		char st[16];
		snprintf(st, sizeof(st), "%d", status);
		nghttp2_nv nv[] = {
			NV(":status", "200"),
			NV("content-type", "application/grpc"),
			NV("grpc-status", st),
			NV("grpc-message", call->status_msg ? call->status_msg : ""),
		};
		nghttp2_submit_response(call->conn->h2, call->stream_id, nv,
		    call->status_msg ? 4 : 3, NULL);
		call->started = 1;
	} else {
		call->out_eof = 1;
		grpc_call_resume(call);
	}
	grpc_conn_flush(call->conn);
}

void
grpc_call_abort(struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;
	if (c == NULL || c->h2 == NULL)
		return;
	call->finished = 1;
	call->out_eof = 1;
	buf_reset(&call->out);
	call->out_off = 0;
	nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
	    NGHTTP2_ENHANCE_YOUR_CALM);
	grpc_conn_flush(c);
}

static void
grpc_call_http_error(struct grpc_call *call, const char *status)
{
	nghttp2_nv nv[] = { NV(":status", status) };
	call->finished = 1;
	call->started = 1;
	call->http_error = 1;
	nghttp2_submit_response(call->conn->h2, call->stream_id, nv, 1, NULL);
}

/* ---- connection I/O ---- */

static ssize_t
grpc_send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
    void *user_data)
{
	struct grpc_conn *c = user_data;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) >= GRPC_OUTPUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	evbuffer_add(out, data, length);
	return (ssize_t)length;
}

/* nghttp2 must not be re-entered from its own callbacks, and the connection
 * must not be freed under it: work asked for meanwhile is done on the way out. */
static int
grpc_conn_leave(struct grpc_conn *c)
{
	c->in_callback--;
	if (c->in_callback > 0)
		return 0;
	if (c->close_pending) {
		c->close_pending = 0;
		grpc_conn_close(c, c->close_why);
		return -1;
	}
	return 0;
}

static void
grpc_conn_flush(struct grpc_conn *c)
{
	if (c->dead || c->h2 == NULL)
		return;
	if (c->in_callback) {
		c->want_flush = 1;
		return;
	}
	do {
		c->want_flush = 0;
		c->in_callback++;
		int rc = nghttp2_session_send(c->h2);
		if (rc != 0 && !c->close_pending) {
			c->close_pending = 1;
			snprintf(c->close_why, sizeof(c->close_why), "http2 send: %s", nghttp2_strerror(rc));
		}
		if (grpc_conn_leave(c) < 0)
			return;
	} while (c->want_flush);
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		grpc_conn_close(c, "http2 session done");
}

static int
grpc_frame_to_handler(void *arg, const uint8_t *msg, size_t len)
{
	struct grpc_call *call = arg;
	if (call->finished)
		return 0;
	if (call->conn->srv) {
		if (call->method && call->method->on_message)
			call->method->on_message(call, msg, len, call->conn->srv->o.arg);
	} else if (call->on_msg)
		call->on_msg(call, msg, len, call->arg);
	return 0;
}

static int
grpc_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct grpc_conn *c = user_data;
	if (c->srv && frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		size_t max = c->srv->o.max_message ? c->srv->o.max_message : GRPC_DEFAULT_MAX_MESSAGE;
		struct grpc_call *call = grpc_call_new(c, frame->hd.stream_id, max);
		nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
	}
	return 0;
}

static void
grpc_copy_hdr(char *dst, size_t dstsz, const uint8_t *v, size_t vl)
{
	size_t n = vl < dstsz - 1 ? vl : dstsz - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* "100m", "5S": gRPC's timeout header, in milliseconds; -1 if malformed. */
static int64_t
grpc_parse_timeout(const uint8_t *v, size_t vl)
{
	if (vl < 2 || vl > 9)
		return -1;
	int64_t n = 0;
	for (size_t i = 0; i + 1 < vl; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	switch (v[vl - 1]) {
	case 'H': return n * 3600000;
	case 'M': return n * 60000;
	case 'S': return n * 1000;
	case 'm': return n;
	case 'u': return n / 1000;
	case 'n': return n / 1000000;
	default: return -1;
	}
}

static int
grpc_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (call == NULL || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
#define IS(s) (namelen == sizeof(s) - 1 && memcmp(name, s, namelen) == 0)
	if (IS(":path"))
		grpc_copy_hdr(call->path, sizeof(call->path), value, valuelen);
	else if (IS(":method"))
		grpc_copy_hdr(call->http_method, sizeof(call->http_method), value, valuelen);
	else if (IS("content-type"))
		grpc_copy_hdr(call->ctype, sizeof(call->ctype), value, valuelen);
	else if (IS("grpc-timeout"))
		call->timeout_ms = grpc_parse_timeout(value, valuelen);
	else if (IS(":status")) {
		char st[8];
		grpc_copy_hdr(st, sizeof(st), value, valuelen);
		call->http_status = atoi(st);
	} else if (IS("grpc-status")) {
		char st[8];
		grpc_copy_hdr(st, sizeof(st), value, valuelen);
		call->status = atoi(st);
		call->got_status = 1;
	} else if (IS("grpc-message")) {
		free(call->grpc_message);
		call->grpc_message = xstrndup((const char *)value, valuelen);
	}
#undef IS
	return 0;
}

static void
grpc_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_call *call = arg;
	struct grpc_conn *c = call->conn;
	if (c->srv) {
		grpc_call_finish(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded");
	} else {
		if (!call->finished) {
			call->finished = 1;
			if (call->on_close)
				call->on_close(call, GRPC_DEADLINE_EXCEEDED, "deadline exceeded", call->arg);
		}
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
		grpc_conn_flush(c);
	}
}

static void
grpc_call_arm_deadline(struct grpc_call *call, struct event_base *base, int64_t ms)
{
	if (ms < 0)
		return;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	call->deadline = evtimer_new(base, grpc_deadline_cb, call);
	evtimer_add(call->deadline, &tv);
}

static void
grpc_server_request_ready(struct grpc_conn *c, struct grpc_call *call)
{
	struct grpc_server *s = c->srv;
	if (strcmp(call->http_method, "POST") != 0) {
		grpc_call_http_error(call, "405");
		return;
	}
	/* application/grpc, application/grpc+proto, ... */
	if (strncmp(call->ctype, "application/grpc", 16) != 0 ||
	    (call->ctype[16] != '\0' && call->ctype[16] != '+' && call->ctype[16] != ';')) {
		grpc_call_http_error(call, "415");
		return;
	}
	for (size_t i = 0; i < s->o.nmethods; i++) {
		if (strcmp(s->o.methods[i].path, call->path) == 0) {
			call->method = &s->o.methods[i];
			break;
		}
	}
	if (call->method == NULL) {
		char msg[320];
		snprintf(msg, sizeof(msg), "unknown method %s", call->path);
		grpc_call_finish(call, GRPC_UNIMPLEMENTED, msg);
		return;
	}
	grpc_call_arm_deadline(call, s->base, call->timeout_ms);
}

static const char *
grpc_frame_err_msg(int err, int *status)
{
	switch (err) {
	case GRPC_FRAME_TOO_LARGE:
		*status = GRPC_RESOURCE_EXHAUSTED;
		return "message larger than the maximum size";
	case GRPC_FRAME_COMPRESSED:
		*status = GRPC_UNIMPLEMENTED;
		return "compressed messages are not supported";
	default:
		*status = GRPC_INTERNAL;
		return "malformed message prefix";
	}
}

static void
grpc_client_finish_call(struct grpc_call *call, int status, const char *msg)
{
	if (call->finished)
		return;
	call->finished = 1;
	if (call->on_close)
		call->on_close(call, status, msg, call->arg);
}

static int
grpc_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (call == NULL || call->finished)
		return 0;
	if (c->srv && call->method == NULL)
		return 0;
	int rc = grpc_framer_feed(&call->framer, data, len, grpc_frame_to_handler, call);
	if (rc < 0) {
		int status;
		const char *msg = grpc_frame_err_msg(rc, &status);
		if (c->srv)
			grpc_call_finish(call, status, msg);
		else {
			grpc_client_finish_call(call, status, msg);
			nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
		}
	}
	return 0;
}

static int
grpc_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct grpc_conn *c = user_data;
	if (c->srv) {
		/* The first frame ends the handshake; a PING ACK shows the peer
		 * alive and reading. */
		c->handshaken = 1;
		if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
			c->ping_outstanding = 0;
	}
	if (frame->hd.type == NGHTTP2_GOAWAY && c->cli) {
		c->cli->goaway = 1;	/* no new calls here; reconnect when idle */
		return 0;
	}
	if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) && c->cli) {
		c->cli->ping_outstanding = 0;
		return 0;
	}
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (call == NULL)
		return 0;
	if (c->srv && frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		grpc_server_request_ready(c, call);
	if (c->cli && (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->finished) {
		/* The server ended the call (trailers): it is over even if we are
		 * still sending, as on a bidirectional stream. Tell the caller now
		 * and close our side (RFC 9113 8.1: RST_STREAM NO_ERROR). */
		int status = call->got_status ? call->status : GRPC_INTERNAL;
		const char *msg = call->got_status ? (call->grpc_message ? call->grpc_message : "") :
		    "response ended without grpc-status";
		if (!call->got_status && call->http_status && call->http_status != 200)
			msg = "HTTP error from server";
		grpc_client_finish_call(call, status, msg);
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
		return 0;
	}
	if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		if (c->srv && call->method && !call->finished) {
			if (grpc_framer_partial(&call->framer))
				grpc_call_finish(call, GRPC_INTERNAL, "stream ended inside a message");
			else if (call->method->on_half_close)
				call->method->on_half_close(call, c->srv->o.arg);
		}
	}
	return 0;
}

/* Server: once our final HEADERS (or trailers) left and the client is still
 * sending, ask it to stop (RFC 9113 8.1) so the stream does not linger. */
static int
grpc_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	/* Not after a plain HTTP error: generic HTTP clients (curl) may still be
	 * sending the body and take the reset as a failure. */
	if (c->srv && call && !call->http_error && frame->hd.type == NGHTTP2_HEADERS &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static int
grpc_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
    void *user_data)
{
	struct grpc_conn *c = user_data;
	struct grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (call == NULL)
		return 0;
	if (c->cli && !call->finished) {
		int status;
		const char *msg;
		if (call->got_status) {
			status = call->status;
			msg = call->grpc_message ? call->grpc_message : "";
		} else if (call->http_status && call->http_status != 200) {
			/* PROTOCOL-HTTP2.md: HTTP status to gRPC status. */
			switch (call->http_status) {
			case 400: status = GRPC_INTERNAL; break;
			case 401: status = GRPC_UNAUTHENTICATED; break;
			case 403: status = GRPC_PERMISSION_DENIED; break;
			case 404: status = GRPC_UNIMPLEMENTED; break;
			case 429: case 502: case 503: case 504: status = GRPC_UNAVAILABLE; break;
			default: status = GRPC_UNKNOWN; break;
			}
			msg = "HTTP error from server";
		} else {
			status = error_code == NGHTTP2_REFUSED_STREAM ? GRPC_UNAVAILABLE : GRPC_INTERNAL;
			msg = "stream closed without status";
		}
		char text[300];
		if (call->http_status && call->http_status != 200 && !call->got_status) {
			snprintf(text, sizeof(text), "HTTP %d from server", call->http_status);
			msg = text;
		}
		grpc_client_finish_call(call, status, msg);
	}
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	grpc_call_free(call);
	return 0;
}

static int
grpc_conn_setup_h2(struct grpc_conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_send_callback(cbs, grpc_send_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, grpc_on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, grpc_on_frame_send);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, grpc_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, grpc_on_stream_close);
	nghttp2_session_callbacks_set_on_header_callback(cbs, grpc_on_header);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, grpc_on_begin_headers);
	int rc = c->srv ? nghttp2_session_server_new(&c->h2, cbs, c) :
	    nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (rc != 0)
		return -1;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		    c->srv ? c->srv->lim.max_streams : GRPC_DEFAULT_MAX_STREAMS },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0)
		return -1;
	/* A larger connection window so one busy stream does not stall. */
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
	return 0;
}

static void
grpc_conn_free(struct grpc_conn *c)
{
	while (c->calls) {
		struct grpc_call *call = c->calls;
		if (c->cli)
			grpc_client_finish_call(call, GRPC_UNAVAILABLE, "connection lost");
		grpc_call_free(call);
	}
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->timer)
		event_free(c->timer);
	if (c->srv) {
		c->srv->st.connections--;
		if (c->prev)
			c->prev->next = c->next;
		else
			c->srv->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	free(c);
}

static void
grpc_conn_close(struct grpc_conn *c, const char *why)
{
	if (c->dead)
		return;
	if (c->in_callback) {
		if (!c->close_pending) {
			c->close_pending = 1;
			snprintf(c->close_why, sizeof(c->close_why), "%s", why);
		}
		return;
	}
	c->dead = 1;
	log_debug("event=grpc_conn_closed peer=%s reason=\"%s\"", c->peer[0] ? c->peer : "-", why);
	if (c->cli) {
		grpc_client_lost(c->cli, why);
		return;	/* frees c */
	}
	grpc_conn_free(c);
}

static void
grpc_conn_arm(struct grpc_conn *c, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(c->timer, &tv);
}

/* Server connections: a handshake that does not finish in time, a connection
 * with no call that stays silent, a peer that does not answer a PING (gone,
 * or not reading) all end here, so none holds a descriptor for ever. */
static void
grpc_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_conn *c = arg;
	struct grpc_server *s = c->srv;
	if (!c->handshaken) {
		s->st.handshake_timeouts++;
		grpc_conn_close(c, "handshake timeout");
		return;
	}
	if (c->goaway_sent) {
		/* Counted when the GOAWAY went out; the peer did not read it. */
		grpc_conn_close(c, "idle, GOAWAY not read");
		return;
	}
	if (c->ping_outstanding) {
		s->st.idle_closed++;
		grpc_conn_close(c, "keepalive ping not answered");
		return;
	}
	if (c->calls == NULL) {
		/* Idle: GOAWAY, then the connection closes once it is written. */
		s->st.idle_closed++;
		c->goaway_sent = 1;
		nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
	} else {
		c->ping_outstanding = 1;
		nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
	}
	grpc_conn_arm(c, s->lim.idle_timeout_ms);
	grpc_conn_flush(c);
}

static void
grpc_conn_readcb(struct bufferevent *bev, void *arg)
{
	struct grpc_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (c->h2 == NULL)
		return;
	size_t len = evbuffer_get_length(in);
	unsigned char *data = evbuffer_pullup(in, -1);
	c->in_callback++;
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
	if (rv < 0 && !c->close_pending) {
		c->close_pending = 1;
		snprintf(c->close_why, sizeof(c->close_why), "http2: %s", nghttp2_strerror((int)rv));
	}
	if (grpc_conn_leave(c) < 0)
		return;
	evbuffer_drain(in, (size_t)rv);
	if (c->srv && c->handshaken && !c->goaway_sent)
		grpc_conn_arm(c, c->srv->lim.idle_timeout_ms);
	grpc_conn_flush(c);
}

static void
grpc_conn_writecb(struct bufferevent *bev, void *arg)
{
	struct grpc_conn *c = arg;
	if (c->h2 == NULL)
		return;		/* a client still connecting */
	if (nghttp2_session_want_write(c->h2)) {
		grpc_conn_flush(c);
		return;
	}
	if (!nghttp2_session_want_read(c->h2) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		grpc_conn_close(c, "done");
}

static int
grpc_check_alpn(SSL *ssl)
{
	const unsigned char *alpn = NULL;
	unsigned int alpnlen = 0;
	SSL_get0_alpn_selected(ssl, &alpn, &alpnlen);
	return alpn && alpnlen == 2 && memcmp(alpn, "h2", 2) == 0;
}

static void grpc_client_ready_cb(struct grpc_client *cl);

static void
grpc_conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct grpc_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		if (ssl && !grpc_check_alpn(ssl)) {
			grpc_conn_close(c, "peer did not negotiate ALPN h2");
			return;
		}
		if (ssl && c->srv) {
			X509 *x = SSL_get0_peer_certificate(ssl);
			if (x) {
				X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
				    c->peer, sizeof(c->peer));
				/* What the fleet CA signed as the role, never the OU. */
				snprintf(c->peer_unit, sizeof(c->peer_unit), "%s",
				    pki_role_name(pki_cert_role(x)));
			}
		}
		if (c->cli) {
			if (grpc_conn_setup_h2(c) < 0) {
				grpc_conn_close(c, "http2 setup failed");
				return;
			}
			grpc_client_ready_cb(c->cli);
		}
		grpc_conn_flush(c);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		char why[256];
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e) {
			const char *r = ERR_reason_error_string(e);
			snprintf(why, sizeof(why), "TLS: %s", r ? r : "error");
		} else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "connection closed by peer");
		else if (what & BEV_EVENT_TIMEOUT)
			snprintf(why, sizeof(why), "timeout");
		else
			snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		grpc_conn_close(c, why);
	}
}

/* ---- server ---- */

/* Over a cap: close at once. A flood would flood the log too: one line a
 * minute with the count. */
static void
grpc_server_refuse(struct grpc_server *s, int fd, const char *why, const char *ip)
{
	time_t now = time(NULL);
	close(fd);
	s->st.refused++;
	s->refused_unlogged++;
	if (now - s->refused_logged >= 60) {
		log_warnx("event=grpc_refused reason=%s peer=%s refused=%" PRIu64, why, ip,
		    s->refused_unlogged);
		s->refused_logged = now;
		s->refused_unlogged = 0;
	}
}

static size_t
grpc_server_conns_from(const struct grpc_server *s, const char *ip)
{
	size_t n = 0;
	for (const struct grpc_conn *c = s->conns; c; c = c->next)
		n += strcmp(c->ip, ip) == 0;
	return n;
}

static void
grpc_server_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct grpc_listener *gl = NULL;
	struct grpc_server *s = arg;
	char ip[64] = "";
	for (size_t i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].l == l)
			gl = &s->listeners[i];
	if (!(gl && gl->is_unix))
		netaddr_ntop(sa, ip, sizeof(ip));
	if (s->st.connections >= s->lim.max_connections) {
		grpc_server_refuse(s, fd, "max_connections", ip[0] ? ip : "unix");
		return;
	}
	if (ip[0] && grpc_server_conns_from(s, ip) >= s->lim.max_connections_per_ip) {
		grpc_server_refuse(s, fd, "max_connections_per_ip", ip);
		return;
	}
	struct grpc_conn *c = xcalloc(1, sizeof(*c));
	c->srv = s;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	if (gl && gl->is_unix) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
		    (cred.uid != 0 && cred.uid != geteuid())) {
			log_warnx("event=grpc_refused reason=unix_peer_uid uid=%ld",
			    (long)(cl == sizeof(cred) ? cred.uid : (uid_t)-1));
			close(fd);
			free(c);
			return;
		}
		snprintf(c->peer, sizeof(c->peer), "unix:uid=%ld", (long)cred.uid);
		c->local = 1;
		c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	} else if (s->o.tls) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		SSL *ssl = SSL_new(s->o.tls);
		c->bev = ssl ? bufferevent_openssl_socket_new(s->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
	} else {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL || grpc_conn_setup_h2(c) < 0) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->h2)
			nghttp2_session_del(c->h2);
		free(c);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->st.connections++;
	c->timer = evtimer_new(s->base, grpc_conn_timer_cb, c);
	grpc_conn_arm(c, s->lim.handshake_timeout_ms);
	bufferevent_setcb(c->bev, grpc_conn_readcb, grpc_conn_writecb, grpc_conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	grpc_conn_flush(c);
}

int
grpc_server_new(struct grpc_server **out, struct event_base *base, const struct grpc_server_opts *o)
{
	struct grpc_server *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->o = *o;
	s->reap_ev = event_new(base, -1, 0, grpc_server_reap_cb, s);
	grpc_server_set_limits(s, &(struct grpc_server_limits){ 0 });
	*out = s;
	return 0;
}

void
grpc_server_set_limits(struct grpc_server *s, const struct grpc_server_limits *l)
{
	s->lim.handshake_timeout_ms = l->handshake_timeout_ms > 0 ? l->handshake_timeout_ms :
	    GRPC_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	s->lim.idle_timeout_ms = l->idle_timeout_ms > 0 ? l->idle_timeout_ms :
	    GRPC_DEFAULT_IDLE_TIMEOUT_MS;
	s->lim.max_connections = l->max_connections ? l->max_connections :
	    GRPC_DEFAULT_MAX_CONNECTIONS;
	s->lim.max_connections_per_ip = l->max_connections_per_ip ? l->max_connections_per_ip :
	    GRPC_DEFAULT_MAX_CONNECTIONS_PER_IP;
	s->lim.max_streams = l->max_streams ? l->max_streams : GRPC_DEFAULT_MAX_STREAMS;
}

void
grpc_server_set_tls(struct grpc_server *s, SSL_CTX *ctx)
{
	s->o.tls = ctx;
}

void
grpc_server_get_stats(const struct grpc_server *s, struct grpc_server_stats *out)
{
	*out = s->st;
}

static int
grpc_server_add_listener(struct grpc_server *s, int fd, int is_unix, const char *path,
    char *err, size_t errsz)
{
	if (s->nlisteners == sizeof(s->listeners) / sizeof(s->listeners[0])) {
		snprintf(err, errsz, "too many listeners");
		close(fd);
		return -1;
	}
	struct grpc_listener *gl = &s->listeners[s->nlisteners];
	gl->l = evconnlistener_new(s->base, grpc_server_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (gl->l == NULL) {
		snprintf(err, errsz, "cannot listen");
		close(fd);
		return -1;
	}
	gl->is_unix = is_unix;
	if (path)
		snprintf(gl->path, sizeof(gl->path), "%s", path);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (!is_unix && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		gl->port = netaddr_port((struct sockaddr *)&ss);
	s->nlisteners++;
	return 0;
}

int
grpc_server_listen(struct grpc_server *s, const char *addr, char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;
	if (netaddr_parse_hostport(addr, &ss, &sl) < 0) {
		snprintf(err, errsz, "%s: expected IPv4:PORT or [IPv6]:PORT", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
		snprintf(err, errsz, "%s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return grpc_server_add_listener(s, fd, 0, NULL, err, errsz);
}

int
grpc_server_listen_unix(struct grpc_server *s, const char *path, char *err, size_t errsz)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "%s: path too long", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(path);
	/* Peer credentials decide who may talk; the mode keeps others out early. */
	mode_t old = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 64) < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return grpc_server_add_listener(s, fd, 1, path, err, errsz);
}

int
grpc_server_port(const struct grpc_server *s, size_t idx)
{
	return idx < s->nlisteners ? s->listeners[idx].port : -1;
}

void
grpc_server_shutdown(struct grpc_server *s)
{
	for (size_t i = 0; i < s->nlisteners; i++) {
		evconnlistener_free(s->listeners[i].l);
		if (s->listeners[i].is_unix)
			unlink(s->listeners[i].path);
	}
	s->nlisteners = 0;
	struct grpc_conn *next;
	for (struct grpc_conn *c = s->conns; c; c = next) {
		next = c->next;	/* a failed flush frees c */
		if (c->h2) {
			nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			    nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR, NULL, 0);
			grpc_conn_flush(c);
		}
	}
}

int
grpc_server_close_peers(struct grpc_server *s, int (*refuse)(SSL *, void *), void *arg,
    const char *why)
{
	int n = 0;
	struct grpc_conn *c = s->conns, *next;
	for (; c; c = next) {
		next = c->next;
		SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;
		if (ssl && !c->dead && refuse(ssl, arg)) {
			grpc_conn_close(c, why);
			n++;
		}
	}
	return n;
}

void
grpc_server_free(struct grpc_server *s)
{
	if (s == NULL)
		return;
	grpc_server_shutdown(s);
	while (s->conns)
		grpc_conn_free(s->conns);
	grpc_server_reap(s);
	event_free(s->reap_ev);
	free(s);
}

/* ---- client ---- */

static void grpc_client_connect(struct grpc_client *cl);

static void
grpc_client_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	grpc_client_connect(arg);
}

static void
grpc_client_schedule(struct grpc_client *cl)
{
	if (!cl->o.reconnect)
		return;
	/* Exponential backoff with +-20% jitter so a fleet does not reconnect in
	 * lockstep after a controld restart. */
	int base = cl->backoff_ms ? cl->backoff_ms : GRPC_BACKOFF_MIN_MS;
	int jitter = base / 5;
	int ms = base - jitter + (jitter ? (int)(random() % (2 * jitter + 1)) : 0);
	cl->backoff_ms = base * 2 > GRPC_BACKOFF_MAX_MS ? GRPC_BACKOFF_MAX_MS : base * 2;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(cl->retry_ev, &tv);
}

static void
grpc_client_lost(struct grpc_client *cl, const char *why)
{
	int was_ready = cl->ready;
	struct grpc_conn *c = cl->conn;
	cl->conn = NULL;
	cl->ready = 0;
	cl->goaway = 0;
	snprintf(cl->error, sizeof(cl->error), "%s", why);
	evtimer_del(cl->ping_ev);
	if (c)
		grpc_conn_free(c);
	if (was_ready && cl->o.on_state)
		cl->o.on_state(cl, 0, cl->o.arg);
	else if (!was_ready && cl->o.on_state)
		cl->o.on_state(cl, 0, cl->o.arg);
	grpc_client_schedule(cl);
}

static void
grpc_client_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_client *cl = arg;
	if (cl->conn == NULL || cl->conn->h2 == NULL)
		return;
	if (cl->ping_outstanding) {
		grpc_conn_close(cl->conn, "keepalive ping not answered");
		return;
	}
	cl->ping_outstanding = 1;
	nghttp2_submit_ping(cl->conn->h2, NGHTTP2_FLAG_NONE, NULL);
	grpc_conn_flush(cl->conn);
	int ms = cl->o.keepalive_ms ? cl->o.keepalive_ms : 30000;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(cl->ping_ev, &tv);
}

static void
grpc_client_ready_cb(struct grpc_client *cl)
{
	cl->ready = 1;
	cl->backoff_ms = 0;
	cl->ping_outstanding = 0;
	cl->error[0] = '\0';
	int ms = cl->o.keepalive_ms ? cl->o.keepalive_ms : 30000;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(cl->ping_ev, &tv);
	if (cl->o.on_state)
		cl->o.on_state(cl, 1, cl->o.arg);
}

static void
grpc_client_connect(struct grpc_client *cl)
{
	struct grpc_conn *c = xcalloc(1, sizeof(*c));
	c->cli = cl;
	cl->conn = c;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	memset(&ss, 0, sizeof(ss));
	if (cl->unix_path) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", cl->unix_path);
		sl = sizeof(*sun);
		c->local = 1;
	} else {
		struct addrinfo hints, *res = NULL;
		char port[8];
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		snprintf(port, sizeof(port), "%d", cl->o.port);
		int gai = getaddrinfo(cl->host, port, &hints, &res);
		if (gai != 0 || res == NULL) {
			char why[256];
			snprintf(why, sizeof(why), "cannot resolve %s: %s", cl->host, gai_strerror(gai));
			c->dead = 1;
			grpc_client_lost(cl, why);
			return;
		}
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		sl = res->ai_addrlen;
		freeaddrinfo(res);
	}
	if (cl->o.tls && !cl->unix_path) {
		SSL *ssl = SSL_new(cl->o.tls);
		SSL_set_tlsext_host_name(ssl, cl->authority);
		/* The server certificate must name what we asked for. */
		SSL_set1_host(ssl, cl->authority);
		c->bev = bufferevent_openssl_socket_new(cl->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE);
	} else
		c->bev = bufferevent_socket_new(cl->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, grpc_conn_readcb, grpc_conn_writecb, grpc_conn_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	struct timeval tv = { 10, 0 };
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)sl) < 0) {
		char why[256];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		c->dead = 1;
		grpc_client_lost(cl, why);
	}
}

int
grpc_client_new(struct grpc_client **out, struct event_base *base, const struct grpc_client_opts *o)
{
	struct grpc_client *cl = xcalloc(1, sizeof(*cl));
	cl->base = base;
	cl->o = *o;
	cl->host = o->host ? xstrdup(o->host) : NULL;
	cl->unix_path = o->unix_path ? xstrdup(o->unix_path) : NULL;
	cl->authority = xstrdup(o->authority ? o->authority : o->host ? o->host : "localhost");
	cl->o.host = cl->host;
	cl->o.unix_path = cl->unix_path;
	cl->o.authority = cl->authority;
	cl->retry_ev = evtimer_new(base, grpc_client_retry_cb, cl);
	cl->ping_ev = evtimer_new(base, grpc_client_ping_cb, cl);
	*out = cl;
	grpc_client_connect(cl);
	return 0;
}

void
grpc_client_free(struct grpc_client *cl)
{
	if (cl == NULL)
		return;
	cl->o.on_state = NULL;
	cl->o.reconnect = 0;
	if (cl->conn) {
		struct grpc_conn *c = cl->conn;
		cl->conn = NULL;
		grpc_conn_free(c);
	}
	event_free(cl->retry_ev);
	event_free(cl->ping_ev);
	free(cl->host);
	free(cl->unix_path);
	free(cl->authority);
	free(cl);
}

void
grpc_client_set_target(struct grpc_client *cl, const char *host, int port,
    const char *authority)
{
	free(cl->host);
	free(cl->authority);
	cl->host = xstrdup(host);
	cl->authority = xstrdup(authority ? authority : host);
	cl->o.host = cl->host;
	cl->o.port = port;
	cl->o.authority = cl->authority;
}

void
grpc_client_drop(struct grpc_client *cl, const char *why)
{
	if (cl->conn && !cl->conn->dead)
		grpc_conn_close(cl->conn, why);
}

int
grpc_client_ready(const struct grpc_client *cl)
{
	return cl->ready && !cl->goaway;
}

const char *
grpc_client_error(const struct grpc_client *cl)
{
	return cl->error[0] ? cl->error : "not connected";
}

struct grpc_call *
grpc_client_call(struct grpc_client *cl, const char *path, int timeout_ms,
    grpc_msg_fn on_message, grpc_close_fn on_close, void *arg)
{
	if (!grpc_client_ready(cl))
		return NULL;
	struct grpc_conn *c = cl->conn;
	size_t max = cl->o.max_message ? cl->o.max_message : GRPC_DEFAULT_MAX_MESSAGE;
	struct grpc_call *call = grpc_call_new(c, -1, max);
	call->on_msg = on_message;
	call->on_close = on_close;
	call->arg = arg;
	snprintf(call->path, sizeof(call->path), "%s", path);
	char tmo[32] = "";
	if (timeout_ms > 0)
		snprintf(tmo, sizeof(tmo), "%dm", timeout_ms);
	nghttp2_nv nv[] = {
		NV(":method", "POST"),
		NV(":scheme", cl->o.tls ? "https" : "http"),
		NV(":path", call->path),
		NV(":authority", cl->authority),
		NV("te", "trailers"),
		NV("content-type", "application/grpc"),
		NV("user-agent", "mxfleet-grpc/" MXFLEET_VERSION),
		NV("grpc-timeout", tmo),
	};
	nghttp2_data_provider prd;
	prd.source.ptr = call;
	prd.read_callback = grpc_data_read;
	int32_t id = nghttp2_submit_request(c->h2, NULL, nv, timeout_ms > 0 ? 8 : 7, &prd, call);
	if (id < 0) {
		grpc_call_free(call);
		return NULL;
	}
	call->stream_id = id;
	if (timeout_ms > 0)
		grpc_call_arm_deadline(call, cl->base, timeout_ms);
	grpc_conn_flush(c);
	return call;
}

void
grpc_call_close_send(struct grpc_call *call)
{
	call->out_eof = 1;
	grpc_call_resume(call);
	if (call->conn)
		grpc_conn_flush(call->conn);
}

void
grpc_call_cancel(struct grpc_call *call)
{
	struct grpc_conn *c = call->conn;
	call->finished = 1;
	call->on_close = NULL;
	if (c && c->h2) {
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
		grpc_conn_flush(c);
	}
}

/* ---- blocking unary ---- */

struct grpc_unary_state {
	struct event_base	*base;
	struct grpc_client	*cl;
	const char		*path;
	const uint8_t		*req;
	size_t			 reqlen;
	int			 timeout_ms;
	struct buf		 resp;
	int			 got;
	int			 status;
	int			 done;
	char			 msg[512];
};

static void
grpc_unary_msg(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct grpc_unary_state *u = arg;
	buf_reset(&u->resp);
	buf_append(&u->resp, msg, len);
	u->got++;
}

static void
grpc_unary_close(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct grpc_unary_state *u = arg;
	u->status = status;
	snprintf(u->msg, sizeof(u->msg), "%s", message ? message : "");
	u->done = 1;
	event_base_loopbreak(u->base);
}

static void
grpc_unary_state(struct grpc_client *cl, int ready, void *arg)
{
	struct grpc_unary_state *u = arg;
	if (u->done)
		return;
	if (!ready) {
		u->status = GRPC_UNAVAILABLE;
		snprintf(u->msg, sizeof(u->msg), "%s", grpc_client_error(cl));
		u->done = 1;
		event_base_loopbreak(u->base);
		return;
	}
	struct grpc_call *call = grpc_client_call(cl, u->path, u->timeout_ms, grpc_unary_msg,
	    grpc_unary_close, u);
	if (call == NULL) {
		u->status = GRPC_UNAVAILABLE;
		snprintf(u->msg, sizeof(u->msg), "cannot start call");
		u->done = 1;
		event_base_loopbreak(u->base);
		return;
	}
	grpc_call_send(call, u->req, u->reqlen);
	grpc_call_close_send(call);
}

static void
grpc_unary_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_unary_state *u = arg;
	u->status = GRPC_DEADLINE_EXCEEDED;
	snprintf(u->msg, sizeof(u->msg), "no answer in time (%s)", u->cl ?
	    grpc_client_error(u->cl) : "connecting");
	u->done = 1;
	event_base_loopbreak(u->base);
}

int
grpc_unary(const struct grpc_client_opts *o, const char *path, const uint8_t *req,
    size_t reqlen, uint8_t **resp, size_t *resplen, char *message, size_t msgsz, int timeout_ms)
{
	struct grpc_unary_state u;
	memset(&u, 0, sizeof(u));
	u.base = event_base_new();
	u.path = path;
	u.req = req;
	u.reqlen = reqlen;
	u.timeout_ms = timeout_ms;
	buf_init(&u.resp);
	struct grpc_client_opts co = *o;
	co.reconnect = 0;
	co.on_state = grpc_unary_state;
	co.arg = &u;
	struct event *t = evtimer_new(u.base, grpc_unary_timeout, &u);
	struct timeval tv = { timeout_ms / 1000 + 1, 0 };
	evtimer_add(t, &tv);
	grpc_client_new(&u.cl, u.base, &co);
	if (!u.done)
		event_base_dispatch(u.base);
	grpc_client_free(u.cl);
	event_free(t);
	/* Let libevent finish freeing what it deferred (the TLS bufferevent
	 * and its SSL) before the base goes. */
	event_base_loop(u.base, EVLOOP_NONBLOCK);
	event_base_free(u.base);
	if (u.status == GRPC_OK && u.got != 1) {
		u.status = GRPC_INTERNAL;
		snprintf(u.msg, sizeof(u.msg), "expected one response message, got %d", u.got);
	}
	snprintf(message, msgsz, "%s", u.msg);
	if (u.status == GRPC_OK) {
		*resp = (uint8_t *)(u.resp.data ? u.resp.data : xcalloc(1, 1));
		*resplen = u.resp.len;
	} else {
		buf_free(&u.resp);
		*resp = NULL;
		*resplen = 0;
	}
	return u.status;
}

/* ---- TLS ---- */

static int
grpc_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;
	if (nghttp2_select_next_protocol(&sel, outlen, in, inlen) != 1)
		return SSL_TLSEXT_ERR_ALERT_FATAL;	/* no h2: refuse */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
grpc_tls_ctx(int server, const char *cert, const char *key, const char *ca, char *err, size_t errsz)
{
	char ebuf[256];
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errsz, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error_string(ebuf, sizeof(ebuf));
		snprintf(err, errsz, "%s: %s", cert, ebuf);
		goto fail;
	}
	if (key && (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)) {
		tls_error_string(ebuf, sizeof(ebuf));
		snprintf(err, errsz, "%s: %s", key, ebuf);
		goto fail;
	}
	if (ca == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		tls_error_string(ebuf, sizeof(ebuf));
		snprintf(err, errsz, "%s: %s", ca ? ca : "(no CA)", ebuf);
		goto fail;
	}
	if (server) {
		/* Mutual TLS: only certificates from the fleet CA get in. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_alpn_select_cb(ctx, grpc_alpn_select, NULL);
		static const unsigned char sid[] = "mxfleet-grpc";
		SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		static const unsigned char alpn[] = "\x02h2";
		SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
grpc_tls_server_ctx(const char *cert, const char *key, const char *ca, char *err, size_t errsz)
{
	return grpc_tls_ctx(1, cert, key, ca, err, errsz);
}

SSL_CTX *
grpc_tls_client_ctx(const char *cert, const char *key, const char *ca, char *err, size_t errsz)
{
	return grpc_tls_ctx(0, cert, key, ca, err, errsz);
}
