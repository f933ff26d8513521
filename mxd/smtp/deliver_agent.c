/* A delivery agent's life (mxd-smtp): forked by the scheduler, it reads
 * jobs on its socket (agent_msg.h), runs each (deliver.c) and answers, and
 * keeps its connection open connection_cache_time seconds between jobs. It
 * exits when the scheduler closes the socket, or on SIGTERM when idle. */
#include "deliver_int.h"
#include "deliver_tlsrpt.h"
#include "agent_msg.h"
#include "dns.h"
#include "sts.h"
#include "sts_cache.h"
#include "sts_fetch.h"
#include <openssl/x509_vfy.h>
#include "dsn.h"
#include "smtp_client.h"
#include "smtp_parser.h"
#include "log.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t deliver_stop;

/* SIGTERM: exit once idle (a transaction under way is finished). */
static void
deliver_on_signal(int sig)
{
	(void)sig;
	deliver_stop = 1;
}

/* What this job says of its destination (qmgr_sched.h): a server answered,
 * or connections were tried and none did, or nothing was tried. */
static enum qmgr_feedback
deliver_feedback(const struct deliver *d)
{
	if (d->job_reached)
		return QMGR_FB_REACHED;
	return d->job_unreached ? QMGR_FB_UNREACHED : QMGR_FB_NONE;
}

/* One job: the recipients job->idx of message job->id, on attempt
 * job->attempt. The answer (one frame) is appended to out. The spool file
 * is only read: the scheduler records what happened. */
static void
deliver_job(struct deliver *d, const struct agent_job *job, struct buf *out)
{
	struct spool_env env;
	int fd;
	off_t off;

	d->job_reached = d->job_unreached = d->job_progress = 0;
	if (spool_read(d->sp, job->id, &env, &fd, &off) != 0) {
		/* Dropped meanwhile, or unreadable: the scheduler looks again.
		 * The answer is indexed by recipient, as always. */
		uint32_t top = 0;
		for (size_t k = 0; k < job->n; k++)
			if (job->idx[k] > top)
				top = job->idx[k];
		struct rcpt_state *st = xcalloc((size_t)top + 1, sizeof(*st));
		for (size_t k = 0; k < job->n; k++)
			rcpt_set(&st[job->idx[k]], RCPT_DEFER, 0, "451 4.3.0 the queue file could "
			    "not be read by the delivery agent", NULL, NULL);
		agent_result_encode(QMGR_FB_NONE, st, job->idx, job->n, out);
		for (size_t i = 0; i <= top; i++)
			rcpt_state_clear(&st[i]);
		free(st);
		return;
	}
	deliver_scan_headers(d, &env, fd, off);
	if (d->tls_optional)
		log_info("event=tls_required_no id=%s effect=policy_failures_not_fatal", env.id);
	struct rcpt_state *st = xcalloc(env.nrcpts, sizeof(*st));
	size_t *idx = xcalloc(env.nrcpts, sizeof(*idx));
	int *routed = xcalloc(env.nrcpts, sizeof(*routed));
	uint32_t *mine = xcalloc(job->n ? job->n : 1, sizeof(*mine));
	size_t nmine = 0;
	for (size_t i = 0; i < env.nrcpts; i++)
		routed[i] = 1;
	for (size_t k = 0; k < job->n; k++)
		if (job->idx[k] < env.nrcpts && routed[job->idx[k]]) {
			routed[job->idx[k]] = 0;
			mine[nmine++] = job->idx[k];
		}
	d->cur_exempt = deliver_tlsrpt_sender_is(env.from, d->cfg->tlsrpt_sender);
	deliver_route(d, &env, fd, off, job->attempt, st, idx, routed);
	if (job->expired)
		deliver_sts_recheck(d, &env, fd, off, st, idx);
	agent_result_encode(deliver_feedback(d), st, mine, nmine, out);
	for (size_t i = 0; i < env.nrcpts; i++)
		rcpt_state_clear(&st[i]);
	free(st);
	free(idx);
	free(routed);
	free(mine);
	close(fd);
	spool_env_free(&env);
}

/* Read exactly n bytes; 0 at EOF before the first, -1 on error or a
 * frame cut short. */
static int
deliver_read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return got == 0 && r == 0 ? 0 : -1;
		got += (size_t)r;
	}
	return 1;
}

static int
deliver_write_full(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The next job from the scheduler: 1, or 0 when it closed our socket
 * (its way of saying "exit"), -1 on a broken frame. While a connection
 * is cached, waiting is bounded by connection_cache_time: then the
 * connection is closed (QUIT) and the wait goes on. */
static int
deliver_next_job(struct deliver *d, int fd, struct agent_job *job, struct buf *in)
{
	unsigned char hdr[AGENT_FRAME_HDR];
	for (;;) {
		if (deliver_stop)
			return 0;
		struct pollfd p = { fd, POLLIN, 0 };
		int wait = d->conn_open ? d->cfg->connection_cache_time * 1000 : -1;
		int rc = poll(&p, 1, wait);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0) {
			deliver_close_conn(d);
			continue;
		}
		break;
	}
	int rc = deliver_read_full(fd, hdr, sizeof(hdr));
	if (rc <= 0)
		return rc;
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > AGENT_MSG_MAX)
		return -1;
	buf_reset(in);
	buf_reserve(in, n);
	if (deliver_read_full(fd, in->data, n) != 1)
		return -1;
	return agent_job_decode((const uint8_t *)in->data, n, job) == 0 ? 1 : -1;
}

void
deliver_tls_new(const struct mxd_config *cfg, struct deliver_tls *t)
{
	char err[256];

	t->plain = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
	if (t->plain == NULL)
		fatalx("event=tls_error error=\"%s\"", err);
	t->dane = NULL;
	if (cfg->resolver) {
		t->dane = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
		if (t->dane == NULL || SSL_CTX_dane_enable(t->dane) <= 0)
			fatalx("event=tls_error error=\"cannot enable DANE\"");
	}
	/* PKIX with names checked: MTA-STS, and the verify and secure policies
	 * (also for next hops and submission). */
	t->verify = tls_client_ctx_new(TLS1_2_VERSION, err, sizeof(err));
	if (t->verify == NULL ||
	    (cfg->ca_file ? SSL_CTX_load_verify_locations(t->verify, cfg->ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(t->verify)) != 1)
		fatalx("event=tls_error error=\"cannot load CA %s\"", cfg->ca_file ? cfg->ca_file : "(system)");
}

void
deliver_tls_free(struct deliver_tls *t)
{
	SSL_CTX_free(t->plain);
	SSL_CTX_free(t->verify);
	SSL_CTX_free(t->dane);
	memset(t, 0, sizeof(*t));
}

/* The resolver and MTA-STS cache of one agent; its SSL contexts are the
 * scheduler's, inherited. */
static void
deliver_agent_init(struct deliver *d, struct mxd_config *cfg, struct spool *sp,
    const struct outcome_sink *outcomes, const struct deliver_tls *tls)
{
	char err[256];

	memset(d, 0, sizeof(*d));
	d->cfg = cfg;
	d->sp = sp;
	smtp_client_source_set(&d->source, cfg->source_ipv4, cfg->source_ipv6);
	d->tls = tls->plain;
	d->tls_verify = tls->verify;
	d->tls_dane = tls->dane;
	d->outcomes = *outcomes;
	/* Equal-preference MX hosts are shuffled: differently in every agent. */
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	if (cfg->resolver) {
		d->dns = dns_resolver_new(cfg->resolver, 2000, 3, err, sizeof(err));
		if (d->dns == NULL)
			fatalx("event=resolver_error resolver=%s error=\"%s\"", cfg->resolver, err);
		/* MTA-STS: a policy cache in the spool. */
		char stsdir[4200];
		snprintf(stsdir, sizeof(stsdir), "%s", cfg->sts_cache_dir ? cfg->sts_cache_dir : "");
		if (stsdir[0] == '\0')
			snprintf(stsdir, sizeof(stsdir), "%s/sts", cfg->spool_dir);
		if (sts_cache_open(stsdir, NULL, NULL, &d->sts, err, sizeof(err)) < 0) {
			log_warnx("event=sts_cache_unavailable dir=%s error=\"%s\" effect=no_mta_sts", stsdir, err);
			d->sts = NULL;
		}
	}
}

void
deliver_agent_main(struct mxd_config *cfg, struct spool *sp, int fd,
    const struct outcome_sink *outcomes, const struct deliver_tls *tls)
{
	struct deliver d;
	struct agent_job *job = xcalloc(1, sizeof(*job));
	struct buf in, out;

	deliver_agent_init(&d, cfg, sp, outcomes, tls);
	d.qmgr_fd = fd;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deliver_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGHUP, SIG_IGN);	/* the scheduler replaces its agents */
	signal(SIGPIPE, SIG_IGN);
	buf_init(&in);
	buf_init(&out);
	log_debug("event=agent_started");
	int rc;
	while ((rc = deliver_next_job(&d, fd, job, &in)) == 1) {
		buf_reset(&out);
		if (job->kind == AGENT_JOB_STS_REFRESH) {
			deliver_sts_refresh(&d);
			agent_result_encode(QMGR_FB_NONE, NULL, NULL, 0, &out);
		} else
			deliver_job(&d, job, &out);
		if (deliver_write_full(fd, out.data, out.len) < 0)
			break;	/* the scheduler is gone: it recovers from the spool */
	}
	if (rc < 0)
		log_warnx("event=agent_protocol_error effect=exit");
	deliver_close_conn(&d);
	buf_free(&in);
	buf_free(&out);
	free(job);
	dns_resolver_free(d.dns);
	sts_cache_close(d.sts);
	exit(0);
}
