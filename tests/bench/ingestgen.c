/* ingestgen: the load generator of tests/bench/ingest.
 *
 * Streams realistic OutcomeBatch messages to controld's Collector.Stream the
 * way mxd's uploader does (our own gRPC client, lib/grpc.c, over mutual TLS),
 * one connection per host certificate, several batches in flight on each,
 * and waits for every Ack. It can also write the very same rows as COPY text
 * (the columns controld's ingest writes), so that the benchmark can time a
 * raw COPY of them into PostgreSQL in the same run.
 *
 *   ingestgen -c HOST:PORT -a AUTHORITY -p PKI_DIR -H mx1.bench.test [-H ...]
 *             [-n OUTCOMES] [-b BATCH] [-i INFLIGHT] [-s FIRST_SEQ] [-T SECS]
 *             [-t UNIX_MS] [-o COPY_FILE] [-P PSQL_PREFIX] [-g] [-q]
 *
 *   -c  controld's gRPC address           -a  name in controld's certificate
 *   -p  the fleet PKI (ca.pem, HOST.pem, HOST.key from mailctl pki)
 *   -H  a host: one connection with PKI/HOST.pem, reporting as HOST
 *   -n  outcomes in all, split evenly over the hosts (default 200000)
 *   -b  outcomes per batch (default 1000)
 *   -i  batches in flight per connection (default 8, as mxd's uploader)
 *   -s  first outcome seq of every host (default 1)
 *   -T  give up after SECS seconds (default 600)
 *   -t  sessions end within 10 minutes before UNIX_MS (default: now); the
 *       same -t, -H, -n, -b and -s give the same rows, byte for byte
 *   -o  write every row as COPY text (tab-separated) to this file
 *   -P  write PREFIX.N.sql per host: one transaction with a COPY ... FROM
 *       STDIN per batch, as controld runs it, for psql -f
 *   -g  generate (and write -o/-P) only: do not connect
 *   -q  no per-connection lines
 *
 * Everything is generated and packed before the clock starts; the clock runs
 * from the moment every connection is ready (TLS handshakes done) until the
 * last Ack. Output, on stdout:
 *
 *   STREAMING conns=N           (flushed when the clock starts)
 *   CONN host=... batches=... acked=... p50_ms=... p99_ms=... max_ms=...
 *   RESULT outcomes=N batches=N acked=N duplicate=N secs=S rate=R
 *          p50_ms=.. p99_ms=.. max_ms=.. pb_bytes=N copy_bytes=N cpu_s=S errors=N
 *
 * (rate: acknowledged outcomes per second; p50/p99/max: a batch's time from
 * send to Ack; cpu_s: this process's CPU time while the clock ran). Exit
 * status 0 when every batch was acknowledged, 1 otherwise (the message says
 * why), 2 for usage. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "grpc.h"
#include "log.h"
#include "mxfleet.pb-c.h"

#define INGESTGEN_MAX_HOSTS	64
#define INGESTGEN_PENDING_MAX	(4u << 20)	/* as mxd's uploader */
#define STREAM_PATH		"/mxfleet.v1.Collector/Stream"

struct batch {
	uint8_t		*data;
	size_t		 len;
	uint64_t	 seq;		/* the highest outcome seq in it */
	size_t		 n;		/* outcomes */
	double		 sent_at;
};

struct conn {
	struct gen		*g;
	int			 idx;
	char			 host_id[256];
	SSL_CTX			*tls;
	struct grpc_client	*cl;
	struct grpc_call	*call;
	struct batch		*batches;
	size_t			 nbatches;
	size_t			 next;		/* next batch to send */
	size_t			 acked;		/* batches acknowledged, in order */
	uint64_t		 outcomes_acked;
	uint64_t		 duplicates;
	double			*lat_ms;	/* send -> Ack, per batch */
	int			 ready, done, failed;
};

struct gen {
	struct event_base	*base;
	struct conn		 conns[INGESTGEN_MAX_HOSTS];
	int			 nconns;
	int			 nready, ndone;
	int			 started;
	double			 t_start, t_end;
	struct event		*timeout_ev, *tick_ev;
	struct rusage		 ru_start, ru_end;
	int			 errors;
	char			 why[1024];
};

static const char *opt_connect, *opt_authority, *opt_pki, *opt_copy, *opt_psql;
static const char *opt_hosts[INGESTGEN_MAX_HOSTS];
static int opt_nhosts, opt_inflight = 8, opt_timeout = 600, opt_gen_only, opt_quiet;
static uint64_t opt_outcomes = 200000, opt_batch = 1000, opt_first_seq = 1;
static int64_t opt_base_ms;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
gen_fail(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
gen_fail(struct gen *g, const char *fmt, ...)
{
	va_list ap;
	g->errors++;
	if (g->why[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(g->why, sizeof(g->why), fmt, ap);
		va_end(ap);
	}
	event_base_loopbreak(g->base);
}

/* ---- realistic outcomes ----
 *
 * What an inbound session on a public MX yields: a session id in mxd's
 * format, times, addresses and ports, the client's EHLO and reverse-DNS
 * name, and its STARTTLS result: mostly TLS 1.3 or 1.2 with SNI, some
 * handshakes that failed (with the stage and reason mxd records), some
 * clients that never tried. Deterministic per host and seq. */

static uint64_t
rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned
rng_below(uint64_t *s, unsigned n)
{
	return (unsigned)(rng_next(s) % n);
}

struct strings {	/* the text of one outcome, owned by one struct */
	char	sid[32], lip[64], rip[64], ehlo[128], ptr[128], sni[128];
	char	stage[64], reason[128];
};

/* A sending MTA's name, in the shapes big senders and small hosts use. */
static void
make_name(uint64_t *r, char *out, size_t sz)
{
	unsigned a = rng_below(r, 900) + 10, b = rng_below(r, 90) + 10;
	switch (rng_below(r, 10)) {
	case 0: snprintf(out, sz, "mail-%s%u-f%u.google.com",
	    rng_below(r, 2) ? "ej1" : "wr1", a, b); break;
	case 1: snprintf(out, sz, "mx0%c-00%u.pphosted.com",
	    'a' + (char)rng_below(r, 2), a * 100 + b); break;
	case 2: snprintf(out, sz, "%s%u-DM6-obe.outbound.protection.outlook.com",
	    rng_below(r, 2) ? "NAM12" : "EUR05", a); break;
	case 3: snprintf(out, sz, "mta-%u-%u.sendgrid.net", a, b); break;
	case 4: snprintf(out, sz, "smtp%u.mailbox.org", a); break;
	case 5: snprintf(out, sz, "out%u-%u.mail.yahoo.com", a, b); break;
	case 6: snprintf(out, sz, "mail%u.example-hosting.net", a); break;
	case 7: snprintf(out, sz, "o%u.ptr%u.mailchimp.example", a, b); break;
	case 8: snprintf(out, sz, "relay-%u.%u.lists.example.org", a, b); break;
	default: snprintf(out, sz, "host%u-%u.dynamic.isp.example", a, b); break;
	}
}

static void
make_outcome(Mxfleet__V1__Outcome *o, struct strings *s, int host_idx, const char *host_id,
    uint64_t seq, int64_t base_ms)
{
	uint64_t r = ((uint64_t)host_idx << 48) ^ seq ^ 0x6d78666c656574ULL;
	static const char *const ciphers13[] = { "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
	    "TLS_CHACHA20_POLY1305_SHA256" };
	static const char *const ciphers12[] = { "ECDHE-RSA-AES256-GCM-SHA384",
	    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305" };
	static const char *const stages[] = { "in:client_hello,out:finished",
	    "in:client_hello,out:server_hello", "before_client_hello", "in:finished,out:finished" };
	static const char *const reasons[] = { "eof", "alert_received:certificate unknown",
	    "alert_sent:handshake failure", "alert_received:protocol version",
	    "SSL routines:unsupported protocol", "timeout" };

	*o = (Mxfleet__V1__Outcome)MXFLEET__V1__OUTCOME__INIT;
	int64_t start = base_ms - (int64_t)rng_below(&r, 600000);
	int64_t end = start + 150 + (int64_t)rng_below(&r, 30000);
	snprintf(s->sid, sizeof(s->sid), "%010llx%05x%05x", (unsigned long long)start,
	    (unsigned)(1000 + host_idx * 7 + rng_below(&r, 2)) & 0xfffff,
	    (unsigned)(seq & 0xfffff));
	snprintf(s->lip, sizeof(s->lip), "192.0.2.%d", 10 + host_idx);
	if (rng_below(&r, 10) == 0)
		snprintf(s->rip, sizeof(s->rip), "2001:db8:%x:%x::%x", rng_below(&r, 65536),
		    rng_below(&r, 65536), rng_below(&r, 65536));
	else
		snprintf(s->rip, sizeof(s->rip), "%u.%u.%u.%u", 1 + rng_below(&r, 223),
		    rng_below(&r, 256), rng_below(&r, 256), 1 + rng_below(&r, 254));
	make_name(&r, s->ehlo, sizeof(s->ehlo));
	if (rng_below(&r, 4) == 0)
		make_name(&r, s->ptr, sizeof(s->ptr));	/* PTR and EHLO disagree */
	else
		snprintf(s->ptr, sizeof(s->ptr), "%s", s->ehlo);
	snprintf(s->sni, sizeof(s->sni), "%s", host_id);

	o->session_id = s->sid;
	o->direction = MXFLEET__V1__DIRECTION__DIRECTION_INBOUND;
	o->start_unix_ms = start;
	o->end_unix_ms = end;
	o->local_ip = s->lip;
	o->local_port = 25;
	o->remote_ip = s->rip;
	o->remote_port = 1024 + rng_below(&r, 64511);
	o->remote_ehlo = s->ehlo;
	o->remote_ptr = s->ptr;
	unsigned t = rng_below(&r, 100);
	if (t < 85) {
		int v13 = rng_below(&r, 10) < 7;
		o->starttls = MXFLEET__V1__START_TLS__STARTTLS_ESTABLISHED;
		o->tls_version = v13 ? "TLSv1.3" : "TLSv1.2";
		o->tls_cipher = (char *)(v13 ? ciphers13[rng_below(&r, 3)] : ciphers12[rng_below(&r, 3)]);
		o->sni = s->sni;
	} else if (t < 92) {
		o->starttls = MXFLEET__V1__START_TLS__STARTTLS_ATTEMPTED;
		snprintf(s->stage, sizeof(s->stage), "%s", stages[rng_below(&r, 4)]);
		snprintf(s->reason, sizeof(s->reason), "%s", reasons[rng_below(&r, 6)]);
		o->tls_fail_stage = s->stage;
		o->tls_fail_reason = s->reason;
	} else
		o->starttls = MXFLEET__V1__START_TLS__STARTTLS_OFFERED;
	o->messages = t < 92 ? 1 + (rng_below(&r, 8) == 0) : rng_below(&r, 2);
	o->recipients = o->messages * (1 + (rng_below(&r, 5) == 0 ? rng_below(&r, 4) : 0));
	o->seq = seq;
}

/* ---- COPY text, in the columns and formats of controld's ingest ---- */

static void
copy_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: putc(*s, f);
		}
	}
}

static void
copy_ts(FILE *f, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[40];
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(f, "%s.%03d+00", s, (int)(ms % 1000));
}

#define COPY_COLUMNS \
    "host_id, seq, batch_seq, session_id, direction, start_ts, end_ts," \
    " local_ip, local_port, remote_ip, remote_port, remote_ehlo, remote_ptr," \
    " starttls, tls_version, tls_cipher, sni, tls_fail_stage, tls_fail_reason," \
    " messages, recipients, policy_results"

static void
copy_row(FILE *f, const char *host_id, uint64_t batch_seq, const Mxfleet__V1__Outcome *o)
{
	copy_text(f, host_id);
	fprintf(f, "\t%" PRIu64 "\t%" PRIu64 "\t", o->seq, batch_seq);
	copy_text(f, o->session_id);
	fprintf(f, "\t%d\t", (int)o->direction);
	copy_ts(f, o->start_unix_ms);
	putc('\t', f);
	copy_ts(f, o->end_unix_ms);
	putc('\t', f);
	copy_text(f, o->local_ip);
	fprintf(f, "\t%u\t", o->local_port);
	copy_text(f, o->remote_ip);
	fprintf(f, "\t%u\t", o->remote_port);
	copy_text(f, o->remote_ehlo);
	putc('\t', f);
	copy_text(f, o->remote_ptr);
	fprintf(f, "\t%d\t", (int)o->starttls);
	const char *texts[] = { o->tls_version, o->tls_cipher, o->sni, o->tls_fail_stage,
	    o->tls_fail_reason };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		copy_text(f, texts[i]);
		putc('\t', f);
	}
	fprintf(f, "%u\t%u\t\\N\n", o->messages, o->recipients);
}

/* ---- generation ---- */

static int
generate(struct gen *g, uint64_t *pb_bytes, uint64_t *copy_bytes)
{
	FILE *copy = NULL;
	int64_t base_ms;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	base_ms = opt_base_ms ? opt_base_ms : (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (opt_copy && (copy = fopen(opt_copy, "w")) == NULL) {
		fprintf(stderr, "ingestgen: %s: %s\n", opt_copy, strerror(errno));
		return -1;
	}
	*pb_bytes = 0;
	Mxfleet__V1__Outcome *os = calloc(opt_batch, sizeof(*os));
	Mxfleet__V1__Outcome **ptrs = calloc(opt_batch, sizeof(*ptrs));
	struct strings *ss = calloc(opt_batch, sizeof(*ss));
	if (os == NULL || ptrs == NULL || ss == NULL)
		return -1;
	for (int h = 0; h < g->nconns; h++) {
		struct conn *c = &g->conns[h];
		uint64_t n = opt_outcomes / (uint64_t)g->nconns +
		    ((uint64_t)h < opt_outcomes % (uint64_t)g->nconns);
		FILE *psql = NULL;
		if (opt_psql) {
			char path[4096];
			snprintf(path, sizeof(path), "%s.%d.sql", opt_psql, h + 1);
			if ((psql = fopen(path, "w")) == NULL) {
				fprintf(stderr, "ingestgen: %s: %s\n", path, strerror(errno));
				return -1;
			}
			fprintf(psql, "\\set ON_ERROR_STOP 1\n");
		}
		c->nbatches = (size_t)((n + opt_batch - 1) / opt_batch);
		c->batches = calloc(c->nbatches ? c->nbatches : 1, sizeof(*c->batches));
		c->lat_ms = calloc(c->nbatches ? c->nbatches : 1, sizeof(double));
		uint64_t seq = opt_first_seq;
		for (size_t b = 0; b < c->nbatches; b++) {
			size_t k = (size_t)(n - b * opt_batch < opt_batch ? n - b * opt_batch : opt_batch);
			for (size_t i = 0; i < k; i++) {
				make_outcome(&os[i], &ss[i], h, c->host_id, seq++, base_ms);
				ptrs[i] = &os[i];
			}
			Mxfleet__V1__OutcomeBatch mb = MXFLEET__V1__OUTCOME_BATCH__INIT;
			mb.host_id = c->host_id;
			mb.seq = seq - 1;
			mb.n_outcomes = k;
			mb.outcomes = ptrs;
			struct batch *bt = &c->batches[b];
			bt->len = mxfleet__v1__outcome_batch__get_packed_size(&mb);
			bt->data = malloc(bt->len);
			if (bt->data == NULL)
				return -1;
			mxfleet__v1__outcome_batch__pack(&mb, bt->data);
			bt->seq = mb.seq;
			bt->n = k;
			*pb_bytes += bt->len;
			if (psql)
				fprintf(psql, "BEGIN;\nCOPY outcomes (" COPY_COLUMNS ") FROM STDIN;\n");
			for (size_t i = 0; i < k; i++) {
				if (copy)
					copy_row(copy, c->host_id, mb.seq, &os[i]);
				if (psql)
					copy_row(psql, c->host_id, mb.seq, &os[i]);
			}
			if (psql)
				fprintf(psql, "\\.\nCOMMIT;\n");
		}
		if (psql && fclose(psql) != 0) {
			fprintf(stderr, "ingestgen: writing %s.%d.sql: %s\n", opt_psql, h + 1,
			    strerror(errno));
			return -1;
		}
	}
	free(os);
	free(ptrs);
	free(ss);
	*copy_bytes = 0;
	if (copy) {
		if (fflush(copy) != 0) {
			fprintf(stderr, "ingestgen: writing %s: %s\n", opt_copy, strerror(errno));
			return -1;
		}
		*copy_bytes = (uint64_t)ftell(copy);
		fclose(copy);
	}
	return 0;
}

/* ---- streaming ---- */

static void
conn_pump(struct conn *c)
{
	struct gen *g = c->g;
	if (c->call == NULL || c->done || c->failed)
		return;
	while (c->next < c->nbatches && c->next - c->acked < (size_t)opt_inflight) {
		/* Flow control, as the uploader: do not queue more than the
		 * connection takes. */
		if (grpc_call_pending(c->call) > INGESTGEN_PENDING_MAX)
			return;
		struct batch *b = &c->batches[c->next++];
		b->sent_at = now_s();
		if (grpc_call_send(c->call, b->data, b->len) < 0) {
			c->failed = 1;
			gen_fail(g, "%s: grpc_call_send failed", c->host_id);
			return;
		}
	}
}

static void
conn_ack(struct grpc_call *call, const uint8_t *msg, size_t len, void *arg)
{
	struct conn *c = arg;
	struct gen *g = c->g;
	Mxfleet__V1__Ack *a = mxfleet__v1__ack__unpack(NULL, len, msg);
	if (a == NULL) {
		gen_fail(g, "%s: an Ack that does not parse (%zu bytes)", c->host_id, len);
		return;
	}
	if (c->acked >= c->next || a->seq != c->batches[c->acked].seq) {
		gen_fail(g, "%s: Ack for seq %" PRIu64 ", expected %" PRIu64, c->host_id, a->seq,
		    c->acked < c->next ? c->batches[c->acked].seq : 0);
		mxfleet__v1__ack__free_unpacked(a, NULL);
		return;
	}
	struct batch *b = &c->batches[c->acked];
	c->lat_ms[c->acked] = (now_s() - b->sent_at) * 1000.0;
	c->outcomes_acked += b->n;
	if (a->duplicate)
		c->duplicates += b->n;
	c->acked++;
	mxfleet__v1__ack__free_unpacked(a, NULL);
	if (c->acked == c->nbatches) {
		/* Everything stored: end the call; controld answers OK. */
		grpc_call_close_send(c->call);
		if (++g->ndone == g->nconns) {
			g->t_end = now_s();
			getrusage(RUSAGE_SELF, &g->ru_end);
		}
		return;
	}
	conn_pump(c);
}

static void
conn_closed(struct grpc_call *call, int status, const char *message, void *arg)
{
	struct conn *c = arg;
	struct gen *g = c->g;
	c->call = NULL;
	if (c->acked < c->nbatches || status != GRPC_OK) {
		c->failed = 1;
		gen_fail(g, "%s: stream ended with %s (%d) \"%s\" after %zu of %zu batches acked",
		    c->host_id, grpc_status_name(status), status, message ? message : "", c->acked,
		    c->nbatches);
		return;
	}
	c->done = 1;
	int all = 1;
	for (int i = 0; i < g->nconns; i++)
		all &= g->conns[i].done;
	if (all)
		event_base_loopbreak(g->base);
}

static void
gen_start(struct gen *g)
{
	g->started = 1;
	g->t_start = now_s();
	getrusage(RUSAGE_SELF, &g->ru_start);
	/* For the benchmark script: CPU sampling starts now. */
	printf("STREAMING conns=%d\n", g->nconns);
	fflush(stdout);
	for (int i = 0; i < g->nconns; i++) {
		struct conn *c = &g->conns[i];
		if (c->nbatches == 0) {
			c->done = 1;
			if (++g->ndone == g->nconns) {
				g->t_end = now_s();
				getrusage(RUSAGE_SELF, &g->ru_end);
			}
			continue;
		}
		c->call = grpc_client_call(c->cl, STREAM_PATH, 0, conn_ack, conn_closed, c);
		if (c->call == NULL) {
			gen_fail(g, "%s: cannot start a call", c->host_id);
			return;
		}
	}
	for (int i = 0; i < g->nconns; i++)
		conn_pump(&g->conns[i]);
	if (g->ndone == g->nconns)
		event_base_loopbreak(g->base);
}

static void
conn_state(struct grpc_client *cl, int ready, void *arg)
{
	struct conn *c = arg;
	struct gen *g = c->g;
	if (!ready) {
		c->failed = 1;
		gen_fail(g, "%s: connection %s: %s", c->host_id, c->ready ? "lost" : "failed",
		    grpc_client_error(cl));
		return;
	}
	if (c->ready)
		return;
	c->ready = 1;
	if (++g->nready == g->nconns && !g->started)
		gen_start(g);
}

static void
gen_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct gen *g = arg;
	size_t acked = 0, total = 0;
	for (int i = 0; i < g->nconns; i++) {
		acked += g->conns[i].acked;
		total += g->conns[i].nbatches;
	}
	gen_fail(g, "timeout after %d s: %zu of %zu batches acked, %d of %d connections ready",
	    opt_timeout, acked, total, g->nready, g->nconns);
}

/* A safety net for flow control: resume sending if the output drained
 * without an Ack arriving. */
static void
gen_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gen *g = arg;
	for (int i = 0; i < g->nconns; i++)
		conn_pump(&g->conns[i]);
}

static int
dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
percentiles(double *v, size_t n, double *p50, double *p99, double *max)
{
	*p50 = *p99 = *max = 0;
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), dbl_cmp);
	*p50 = v[n / 2];
	*p99 = v[(size_t)((double)(n - 1) * 0.99)];
	*max = v[n - 1];
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ingestgen -c HOST:PORT -a AUTHORITY -p PKI_DIR -H HOST [-H HOST]...\n"
	    "                 [-n OUTCOMES] [-b BATCH] [-i INFLIGHT] [-s FIRST_SEQ] [-T SECS]\n"
	    "                 [-t UNIX_MS] [-o COPY_FILE] [-P PSQL_PREFIX] [-g] [-q]\n");
	exit(2);
}

static long long
num_arg(const char *s, long long lo, long long hi, int ch)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "ingestgen: -%c: expected a number in %lld..%lld\n", ch, lo, hi);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	/* static: what it points to stays reachable at exit (LeakSanitizer) */
	static struct gen g;
	char err[512], path[4096], host[256];
	int ch, port = 0;

	while ((ch = getopt(argc, argv, "c:a:p:H:n:b:i:s:T:t:o:P:gq")) != -1) {
		switch (ch) {
		case 'c': opt_connect = optarg; break;
		case 'a': opt_authority = optarg; break;
		case 'p': opt_pki = optarg; break;
		case 'H':
			if (opt_nhosts == INGESTGEN_MAX_HOSTS) {
				fprintf(stderr, "ingestgen: at most %d hosts\n", INGESTGEN_MAX_HOSTS);
				return 2;
			}
			opt_hosts[opt_nhosts++] = optarg;
			break;
		case 'n': opt_outcomes = (uint64_t)num_arg(optarg, 0, 1LL << 40, ch); break;
		case 'b': opt_batch = (uint64_t)num_arg(optarg, 1, 1000000, ch); break;
		case 'i': opt_inflight = (int)num_arg(optarg, 1, 1024, ch); break;
		case 's': opt_first_seq = (uint64_t)num_arg(optarg, 1, 1LL << 62, ch); break;
		case 'T': opt_timeout = (int)num_arg(optarg, 1, 86400, ch); break;
		case 't': opt_base_ms = num_arg(optarg, 86400000LL, 253402300799000LL, ch); break;
		case 'o': opt_copy = optarg; break;
		case 'P': opt_psql = optarg; break;
		case 'g': opt_gen_only = 1; break;
		case 'q': opt_quiet = 1; break;
		default: usage();
		}
	}
	if (optind != argc || opt_nhosts == 0)
		usage();
	if (!opt_gen_only) {
		const char *colon = opt_connect ? strrchr(opt_connect, ':') : NULL;
		if (colon == NULL || opt_pki == NULL)
			usage();
		snprintf(host, sizeof(host), "%.*s", (int)(colon - opt_connect), opt_connect);
		port = (int)num_arg(colon + 1, 1, 65535, 'c');
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("ingestgen", getenv("INGESTGEN_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, 0);

	memset(&g, 0, sizeof(g));
	g.nconns = opt_nhosts;
	for (int i = 0; i < g.nconns; i++) {
		g.conns[i].g = &g;
		g.conns[i].idx = i;
		snprintf(g.conns[i].host_id, sizeof(g.conns[i].host_id), "%s", opt_hosts[i]);
	}
	uint64_t pb_bytes = 0, copy_bytes = 0;
	double tg = now_s();
	if (generate(&g, &pb_bytes, &copy_bytes) < 0) {
		fprintf(stderr, "ingestgen: generating the batches failed\n");
		return 1;
	}
	fprintf(stderr, "ingestgen: generated %" PRIu64 " outcomes in %.2f s: %" PRIu64
	    " protobuf bytes (%.0f per outcome)%s\n", opt_outcomes, now_s() - tg, pb_bytes,
	    opt_outcomes ? (double)pb_bytes / (double)opt_outcomes : 0.0,
	    opt_copy ? ", COPY text written" : "");
	if (opt_gen_only) {
		printf("RESULT outcomes=%" PRIu64 " pb_bytes=%" PRIu64 " copy_bytes=%" PRIu64 "\n",
		    opt_outcomes, pb_bytes, copy_bytes);
		return 0;
	}

	g.base = event_base_new();
	for (int i = 0; i < g.nconns; i++) {
		struct conn *c = &g.conns[i];
		char cert[4096], key[4096];
		snprintf(cert, sizeof(cert), "%s/%s.pem", opt_pki, c->host_id);
		snprintf(key, sizeof(key), "%s/%s.key", opt_pki, c->host_id);
		snprintf(path, sizeof(path), "%s/ca.pem", opt_pki);
		c->tls = grpc_tls_client_ctx(cert, key, path, err, sizeof(err));
		if (c->tls == NULL) {
			fprintf(stderr, "ingestgen: %s: %s\n", c->host_id, err);
			return 1;
		}
		struct grpc_client_opts o;
		memset(&o, 0, sizeof(o));
		o.host = host;
		o.port = port;
		o.authority = opt_authority;
		o.tls = c->tls;
		o.reconnect = 0;
		o.on_state = conn_state;
		o.arg = c;
		if (grpc_client_new(&c->cl, g.base, &o) < 0) {
			fprintf(stderr, "ingestgen: %s: cannot create the client\n", c->host_id);
			return 1;
		}
	}
	g.timeout_ev = evtimer_new(g.base, gen_timeout, &g);
	struct timeval tv = { opt_timeout, 0 };
	evtimer_add(g.timeout_ev, &tv);
	g.tick_ev = event_new(g.base, -1, EV_PERSIST, gen_tick, &g);
	struct timeval tick = { 0, 10000 };
	event_add(g.tick_ev, &tick);

	event_base_dispatch(g.base);

	size_t batches = 0, acked = 0, nlat = 0;
	uint64_t outcomes_acked = 0, dup = 0;
	for (int i = 0; i < g.nconns; i++) {
		batches += g.conns[i].nbatches;
		acked += g.conns[i].acked;
	}
	double *all = calloc(acked ? acked : 1, sizeof(double));
	for (int i = 0; i < g.nconns; i++) {
		struct conn *c = &g.conns[i];
		double p50, p99, mx;
		memcpy(all + nlat, c->lat_ms, c->acked * sizeof(double));
		nlat += c->acked;
		outcomes_acked += c->outcomes_acked;
		dup += c->duplicates;
		percentiles(c->lat_ms, c->acked, &p50, &p99, &mx);
		if (!opt_quiet)
			printf("CONN host=%s batches=%zu acked=%zu outcomes=%" PRIu64 " duplicate=%"
			    PRIu64 " p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", c->host_id, c->nbatches,
			    c->acked, c->outcomes_acked, c->duplicates, p50, p99, mx);
	}
	double p50, p99, mx;
	percentiles(all, nlat, &p50, &p99, &mx);
	double end = g.t_end > 0 ? g.t_end : now_s();
	if (g.t_end <= 0)
		getrusage(RUSAGE_SELF, &g.ru_end);
	double cpu = 0;
	if (g.started)
		cpu = (double)(g.ru_end.ru_utime.tv_sec - g.ru_start.ru_utime.tv_sec +
		    g.ru_end.ru_stime.tv_sec - g.ru_start.ru_stime.tv_sec) +
		    (double)(g.ru_end.ru_utime.tv_usec - g.ru_start.ru_utime.tv_usec +
		    g.ru_end.ru_stime.tv_usec - g.ru_start.ru_stime.tv_usec) / 1e6;
	double secs = g.started ? end - g.t_start : 0;
	if (g.errors == 0 && acked < batches)
		gen_fail(&g, "%zu of %zu batches acked", acked, batches);
	printf("RESULT outcomes=%" PRIu64 " batches=%zu acked=%zu acked_outcomes=%" PRIu64
	    " duplicate=%" PRIu64 " secs=%.3f rate=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"
	    " pb_bytes=%" PRIu64 " copy_bytes=%" PRIu64 " cpu_s=%.3f errors=%d\n", opt_outcomes,
	    batches, acked, outcomes_acked, dup, secs, secs > 0 ? (double)outcomes_acked / secs : 0.0,
	    p50, p99, mx, pb_bytes, copy_bytes, cpu, g.errors);
	fflush(stdout);
	if (g.errors)
		fprintf(stderr, "ingestgen: %s\n", g.why);
	for (int i = 0; i < g.nconns; i++) {
		struct conn *c = &g.conns[i];
		if (c->call)
			grpc_call_cancel(c->call);
		grpc_client_free(c->cl);
		SSL_CTX_free(c->tls);
		for (size_t b = 0; b < c->nbatches; b++)
			free(c->batches[b].data);
		free(c->batches);
		free(c->lat_ms);
	}
	free(all);
	event_free(g.timeout_ev);
	event_free(g.tick_ev);
	/* libevent frees TLS bufferevents (and their SSL) deferred: let it. */
	event_base_loop(g.base, EVLOOP_NONBLOCK);
	event_base_free(g.base);
	return g.errors ? 1 : 0;
}
