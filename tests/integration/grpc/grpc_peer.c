/* A small gRPC peer built on lib/grpc.c, for interop tests against Python's
 * grpcio (a real gRPC stack):
 *
 *   grpc_peer server --listen ADDR --cert C --key K --ca CA [--max-message N]
 *       Collector.Export answers Ack{seq}; Collector.Stream answers one Ack
 *       per batch; a batch with host_id "fail" ends the call with
 *       FAILED_PRECONDITION. Prints "listening PORT" when ready, and one
 *       "peer CN path" line per call.
 *   grpc_peer export --connect HOST:PORT --cert C --key K --ca CA --seq N [--authority NAME]
 *       One unary Export; prints "ack SEQ" or "status CODE MESSAGE".
 *   grpc_peer stream --connect HOST:PORT ... --count N
 *       N batches over one Stream; prints "ack SEQ" per Ack and the status. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grpc.h"
#include "log.h"
#include "mxfleet.pb-c.h"

static const char *opt_listen, *opt_connect, *opt_cert, *opt_key, *opt_ca, *opt_authority;
static long opt_seq = 1, opt_count = 3, opt_max;

static void
send_ack(struct grpc_call *c, uint64_t seq)
{
	Mxfleet__V1__Ack ack = MXFLEET__V1__ACK__INIT;
	ack.seq = seq;
	uint8_t buf[64];
	size_t n = mxfleet__v1__ack__pack(&ack, buf);
	grpc_call_send(c, buf, n);
}

static void
export_msg(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	Mxfleet__V1__OutcomeBatch *b = mxfleet__v1__outcome_batch__unpack(NULL, len, msg);
	if (b == NULL) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "cannot parse OutcomeBatch");
		return;
	}
	printf("peer %s %s seq=%llu outcomes=%zu\n", grpc_call_peer(c), grpc_call_path(c),
	    (unsigned long long)b->seq, b->n_outcomes);
	fflush(stdout);
	if (strcmp(b->host_id, "fail") == 0)
		grpc_call_finish(c, GRPC_FAILED_PRECONDITION, "host asked to fail");
	else {
		send_ack(c, b->seq);
		if (strcmp(grpc_call_path(c), "/mxfleet.v1.Collector/Export") == 0)
			grpc_call_finish(c, GRPC_OK, NULL);
	}
	mxfleet__v1__outcome_batch__free_unpacked(b, NULL);
}

static void
stream_half_close(struct grpc_call *c, void *arg)
{
	grpc_call_finish(c, GRPC_OK, NULL);
}

static int
run_server(void)
{
	char err[512];
	struct event_base *base = event_base_new();
	SSL_CTX *tls = grpc_tls_server_ctx(opt_cert, opt_key, opt_ca, err, sizeof(err));
	if (tls == NULL) {
		fprintf(stderr, "grpc_peer: %s\n", err);
		return 1;
	}
	static const struct grpc_method methods[] = {
		{ "/mxfleet.v1.Collector/Export", export_msg, NULL, NULL },
		{ "/mxfleet.v1.Collector/Stream", export_msg, stream_half_close, NULL },
	};
	struct grpc_server_opts o = { methods, 2, NULL, tls, (size_t)opt_max };
	struct grpc_server *s;
	grpc_server_new(&s, base, &o);
	if (grpc_server_listen(s, opt_listen, err, sizeof(err)) < 0) {
		fprintf(stderr, "grpc_peer: %s\n", err);
		return 1;
	}
	printf("listening %d\n", grpc_server_port(s, 0));
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}

struct stream_state {
	struct event_base *base;
	struct grpc_call *call;
	long acks;
};

static void
stream_ack(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct stream_state *st = arg;
	Mxfleet__V1__Ack *a = mxfleet__v1__ack__unpack(NULL, len, msg);
	printf("ack %llu\n", a ? (unsigned long long)a->seq : 0ULL);
	if (a)
		mxfleet__v1__ack__free_unpacked(a, NULL);
	if (++st->acks == opt_count)
		grpc_call_close_send(c);
}

static void
stream_close(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct stream_state *st = arg;
	printf("status %d %s\n", status, message);
	event_base_loopbreak(st->base);
}

static void
stream_ready(struct grpc_client *cl, int ready, void *arg)
{
	struct stream_state *st = arg;
	if (!ready) {
		printf("status 14 %s\n", grpc_client_error(cl));
		event_base_loopbreak(st->base);
		return;
	}
	st->call = grpc_client_call(cl, "/mxfleet.v1.Collector/Stream", 10000, stream_ack,
	    stream_close, st);
	for (long i = 0; i < opt_count; i++) {
		Mxfleet__V1__OutcomeBatch b = MXFLEET__V1__OUTCOME_BATCH__INIT;
		b.host_id = "peer";
		b.seq = (uint64_t)(opt_seq + i);
		uint8_t buf[256];
		size_t n = mxfleet__v1__outcome_batch__pack(&b, buf);
		grpc_call_send(st->call, buf, n);
	}
}

static int
split_hostport(const char *s, char *host, size_t hsz, int *port)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL)
		return -1;
	snprintf(host, hsz, "%.*s", (int)(colon - s), s);
	*port = atoi(colon + 1);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: grpc_peer server|export|stream options...\n");
		return 2;
	}
	const char *mode = argv[1];
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "--listen") == 0) opt_listen = v;
		else if (strcmp(k, "--connect") == 0) opt_connect = v;
		else if (strcmp(k, "--cert") == 0) opt_cert = v;
		else if (strcmp(k, "--key") == 0) opt_key = v;
		else if (strcmp(k, "--ca") == 0) opt_ca = v;
		else if (strcmp(k, "--authority") == 0) opt_authority = v;
		else if (strcmp(k, "--seq") == 0) opt_seq = atol(v);
		else if (strcmp(k, "--count") == 0) opt_count = atol(v);
		else if (strcmp(k, "--max-message") == 0) opt_max = atol(v);
		else {
			fprintf(stderr, "grpc_peer: unknown option %s\n", k);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("grpc_peer", getenv("GRPC_PEER_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, 0);
	if (strcmp(mode, "server") == 0)
		return run_server();

	char err[512], host[256];
	int port;
	if (opt_connect == NULL || split_hostport(opt_connect, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "grpc_peer: --connect HOST:PORT required\n");
		return 2;
	}
	SSL_CTX *tls = grpc_tls_client_ctx(opt_cert, opt_key, opt_ca, err, sizeof(err));
	if (tls == NULL) {
		fprintf(stderr, "grpc_peer: %s\n", err);
		return 1;
	}
	struct grpc_client_opts o;
	memset(&o, 0, sizeof(o));
	o.host = host;
	o.port = port;
	o.authority = opt_authority;
	o.tls = tls;
	if (strcmp(mode, "export") == 0) {
		Mxfleet__V1__OutcomeBatch b = MXFLEET__V1__OUTCOME_BATCH__INIT;
		b.host_id = "peer";
		b.seq = (uint64_t)opt_seq;
		uint8_t req[256], *resp;
		size_t n = mxfleet__v1__outcome_batch__pack(&b, req), rlen;
		int st = grpc_unary(&o, "/mxfleet.v1.Collector/Export", req, n, &resp, &rlen, err,
		    sizeof(err), 10000);
		if (st != GRPC_OK) {
			printf("status %d %s\n", st, err);
			SSL_CTX_free(tls);
			return 0;
		}
		Mxfleet__V1__Ack *a = mxfleet__v1__ack__unpack(NULL, rlen, resp);
		printf("ack %llu\nstatus 0\n", a ? (unsigned long long)a->seq : 0ULL);
		if (a)
			mxfleet__v1__ack__free_unpacked(a, NULL);
		free(resp);
		SSL_CTX_free(tls);
		return 0;
	}
	if (strcmp(mode, "stream") == 0) {
		struct stream_state st;
		memset(&st, 0, sizeof(st));
		st.base = event_base_new();
		o.on_state = stream_ready;
		o.arg = &st;
		struct grpc_client *cl;
		grpc_client_new(&cl, st.base, &o);
		event_base_dispatch(st.base);
		grpc_client_free(cl);
		/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
		event_base_loop(st.base, EVLOOP_NONBLOCK);
		event_base_free(st.base);
		SSL_CTX_free(tls);
		return 0;
	}
	fprintf(stderr, "grpc_peer: unknown mode %s\n", mode);
	return 2;
}
