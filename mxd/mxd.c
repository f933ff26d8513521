/* mxd: the master process and the worker entry.
 *
 * The master is root only long enough to bind and load keys: it opens the
 * listeners (one socket per worker per address, SO_REUSEPORT, so the kernel
 * spreads connections), creates and recovers the spool, then forks the
 * workers (SMTP sessions, libevent) and the scheduler (qmgr/, which forks the delivery agents); every process,
 * the master included, runs as the configured user from then on. SIGHUP
 * reloads: new workers start on the same listening sockets with the new
 * configuration, the old ones finish their sessions and exit.
 *
 * "mxd -c FILE queue ..." starts nothing: it is the client of the running
 * scheduler's queue-control socket (qmgr/qmgr_queue.c). */
#include "mxd.h"
#include "https.h"
#include "mxd_identity.h"
#include "mxd_keyswitch.h"
#include "rcpt_prober.h"
#include "ptr_lookup.h"
#include "buf.h"
#include "grpc.h"
#include "log.h"
#include "pki.h"
#include "mxd_queue_cli.h"
#include "queue_cmd.h"
#include "sdnotify.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MXD_MAX_WORKERS	64

struct mxd_master {
	struct mxd_config	*cfg;
	struct tls_server	*tls;
	struct spool		*spool;
	int			*lfds;		/* [worker * nlisten + i] */
	size_t			 nlisten;
	int			 nworkers;
	pid_t			 workers[MXD_MAX_WORKERS];
	pid_t			 deliverer;
	int			 notify[2];
	uid_t			 uid;
	gid_t			 gid;
	int			 drop;
	int			 deliverer_restart;
	pid_t			 uploader;	/* 0: no control plane */
	struct uploader_creds	 creds;
	int			 outcome_fds[2];	/* workers -> uploader */
	int			 identity_fds[2];	/* master -> uploader (mxd_identity.h) */
	uint8_t			*identity;		/* packed HostIdentity */
	uint64_t		*outcome_dropped;
	pid_t			 draining[MXD_MAX_WORKERS * 4];	/* workers replaced by reloads */
	int			*https_fds;	/* mta_sts_listen, bound */
	size_t			 nhttps;
	struct tls_server	*https_tls;	/* NULL: no certificate, no mxd-https */
	pid_t			 https;		/* 0: not running */
};

static void
mxd_usage(void)
{
	fprintf(stderr, "usage: mxd -c FILE [-n]\n"
	    "       mxd -c FILE queue list|retry ID|retry all|drop ID\n"
	    "       mxd -c FILE csr\n"
	    "       mxd -V\n"
	    "  -c FILE  configuration file (see docs/mxd.md)\n"
	    "  -n       check the configuration and exit\n"
	    "  -V       print the version\n"
	    "  queue    ask the running mxd (its spool_dir/queue.sock):\n"
	    "             list       queued messages: id, age, attempts, next attempt,\n"
	    "                        sender, recipients, last reply\n"
	    "             retry ID   attempt delivery now (retry all: every message)\n"
	    "             drop ID    remove the message from the queue and the spool,\n"
	    "                        without a DSN\n"
	    "  csr      print a certificate request for the next key (tls.next_key):\n"
	    "           CN the hostname, names those of the first certificate\n");
	exit(2);
}

static int
mxd_capset(uint32_t caps)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = caps;
	return (int)syscall(SYS_capset, &h, d);
}

/* The master becomes the configured user but keeps one capability,
 * CAP_DAC_READ_SEARCH, so that SIGHUP can re-read root-only keys and configs;
 * it reads no network input. Called again in each child, which gives up
 * that capability too and keeps nothing. */
static void
mxd_become_user(const struct mxd_master *m, int keep_read)
{
	if (!m->drop)
		return;
	if (geteuid() != 0) {
		/* A child of the already-dropped master. */
		if (mxd_capset(0) < 0)
			fatal("event=privdrop_failed reason=capset");
		return;
	}
	if (keep_read && prctl(PR_SET_KEEPCAPS, 1) < 0)
		fatal("event=privdrop_failed reason=keepcaps");
	if (setgroups(1, &m->gid) < 0 || setresgid(m->gid, m->gid, m->gid) < 0 ||
	    setresuid(m->uid, m->uid, m->uid) < 0)
		fatal("event=privdrop_failed user=%s", m->cfg->user);
	if (mxd_capset(keep_read ? 1u << CAP_DAC_READ_SEARCH : 0) < 0)
		fatal("event=privdrop_failed reason=capset");
	prctl(PR_SET_KEEPCAPS, 0);
	if (setuid(0) == 0)
		fatalx("event=privdrop_failed reason=regained_root");
}

/* Every mxd process holds something another must not read: the master
 * every key, the SMTP workers the TLS server keys and other clients' mail,
 * delivery the SASL passwords and client keys, the uploader the control
 * plane's key. All run as one user, so a dumpable process would hand its
 * memory (/proc/PID/mem, ptrace) to a worker taken over by a client. None is
 * dumpable unless core_dumps asks for cores to debug with. */
static void
mxd_drop_privileges(const struct mxd_master *m, int keep_read)
{
	mxd_become_user(m, keep_read);
	if (prctl(PR_SET_DUMPABLE, m->cfg->core_dumps ? 1 : 0) < 0)
		fatal("event=privdrop_failed reason=dumpable");
}

/* ---- worker ---- */

static void
mxd_worker_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	smtp_session_accept(arg, fd, sa, (socklen_t)salen);
}

static void
mxd_worker_accept_error(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: log and keep going; the listener retries. */
	log_warn("event=accept_error");
}

static void
mxd_worker_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mxd_worker *w = arg;
	spool_committer_dispatch(w->committer);
}

static void
mxd_worker_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mxd_worker *w = arg;
	log_info("event=shutdown_deadline sessions=%d", w->nsessions);
	smtp_session_close_all(w);
	event_base_loopexit(w->base, NULL);
}

static void
mxd_worker_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct mxd_worker *w = arg;
	if (w->shutting_down)
		return;
	w->shutting_down = 1;
	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_free(w->listeners[i]);
	w->nlisteners = 0;
	smtp_session_shutdown_all(w);
	if (w->nsessions == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	struct timeval tv = { w->cfg->shutdown_timeout, 0 };
	w->deadline_ev = evtimer_new(w->base, mxd_worker_deadline, w);
	evtimer_add(w->deadline_ev, &tv);
}

/* After a reload: a new worker with the new configuration accepts now; this
 * one stops listening and lets its sessions end on their own (QUIT or their
 * timeouts), so a reload never cuts a client off. */
static void
mxd_worker_drain(evutil_socket_t sig, short what, void *arg)
{
	struct mxd_worker *w = arg;
	if (w->draining || w->shutting_down)
		return;
	w->draining = 1;
	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_free(w->listeners[i]);
	w->nlisteners = 0;
	if (w->nsessions == 0)
		event_base_loopexit(w->base, NULL);
}

static void
mxd_worker_ignore(evutil_socket_t sig, short what, void *arg)
{
	/* SIGHUP is the master's: it starts new workers with the new config. */
}

static void __attribute__((noreturn))
mxd_worker_main(struct mxd_master *m, int idx)
{
	struct mxd_worker w;
	memset(&w, 0, sizeof(w));
	w.cfg = m->cfg;
	w.tls = m->tls;
	w.spool = m->spool;
	w.outcomes.fd = m->uploader > 0 || m->outcome_fds[0] > 0 ? m->outcome_fds[0] : -1;
	w.outcomes.dropped = m->outcome_dropped;
	if (m->outcome_fds[1] > 0)
		close(m->outcome_fds[1]);
	mxd_drop_privileges(m, 0);

	evthread_use_pthreads();
	w.base = event_base_new();
	if (w.base == NULL)
		fatalx("event=event_base_failed");
	if (spool_committer_new(m->spool, m->notify[1], &w.committer) < 0)
		fatal("event=committer_failed");
	if (m->cfg->resolver) {
		char err[200];
		w.ptr = ptr_resolver_new(w.base, m->cfg->resolver, m->cfg->max_connections, err,
		    sizeof(err));
		if (w.ptr == NULL)
			fatalx("event=resolver_error resolver=%s error=\"%s\"", m->cfg->resolver, err);
	}
	w.commit_ev = event_new(w.base, spool_committer_fd(w.committer), EV_READ | EV_PERSIST,
	    mxd_worker_commit_cb, &w);
	event_add(w.commit_ev, NULL);
	w.listeners = xcalloc(m->nlisten, sizeof(*w.listeners));
	for (size_t i = 0; i < m->nlisten; i++) {
		int fd = m->lfds[(size_t)idx * m->nlisten + i];
		w.listeners[i] = evconnlistener_new(w.base, mxd_worker_accept, &w,
		    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (w.listeners[i] == NULL)
			fatalx("event=listener_failed");
		evconnlistener_set_error_cb(w.listeners[i], mxd_worker_accept_error);
	}
	w.nlisteners = m->nlisten;
	/* Close the other workers' sockets: this process accepts on its own. */
	for (size_t i = 0; i < (size_t)m->nworkers * m->nlisten; i++)
		if (i / m->nlisten != (size_t)idx)
			close(m->lfds[i]);
	close(m->notify[0]);
	w.sigterm_ev = evsignal_new(w.base, SIGTERM, mxd_worker_sigterm, &w);
	w.sigint_ev = evsignal_new(w.base, SIGINT, mxd_worker_sigterm, &w);
	w.sighup_ev = evsignal_new(w.base, SIGHUP, mxd_worker_ignore, &w);
	w.sigusr1_ev = evsignal_new(w.base, SIGUSR1, mxd_worker_drain, &w);
	event_add(w.sigusr1_ev, NULL);
	event_add(w.sigterm_ev, NULL);
	event_add(w.sigint_ev, NULL);
	event_add(w.sighup_ev, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	log_info("event=worker_started worker=%d", idx);
	event_base_dispatch(w.base);
	smtp_session_close_all(&w);
	rcpt_prober_free(w.prober);
	ptr_resolver_free(w.ptr);
	spool_committer_free(w.committer);
	for (size_t i = 0; i < w.nlisteners; i++)
		evconnlistener_free(w.listeners[i]);
	free(w.listeners);
	event_free(w.commit_ev);
	event_free(w.sigterm_ev);
	event_free(w.sigint_ev);
	event_free(w.sighup_ev);
	event_free(w.sigusr1_ev);
	if (w.deadline_ev)
		event_free(w.deadline_ev);
	event_base_free(w.base);
	log_info("event=worker_stopped worker=%d", idx);
	exit(0);
}

/* ---- master ---- */

/* A listening socket on addr; -1 with what failed in *step (errno set). */
static int
mxd_listen_try(const char *addr, int reuseport, const char **step)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	if (netaddr_parse_hostport(addr, &ss, &sl) < 0)
		fatalx("event=bad_listen addr=%s", addr);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	*step = "socket";
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	*step = "reuseport";
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	*step = "bind";
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
		goto fail;
	*step = "listen";
	if (listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int
mxd_listen_one(const char *addr, int reuseport)
{
	const char *step;
	int fd = mxd_listen_try(addr, reuseport, &step);
	if (fd < 0)
		fatal("event=%s_failed addr=%s", step, addr);
	return fd;
}

enum mxd_role { MXD_ROLE_WORKER, MXD_ROLE_DELIVERY, MXD_ROLE_UPLOADER, MXD_ROLE_HTTPS };

/* What ps and /proc/PID/comm show (15 bytes at most). */
static const char *const mxd_role_names[] = {
	[MXD_ROLE_WORKER] = "mxd-smtpd",
	[MXD_ROLE_DELIVERY] = "mxd-qmgr",
	[MXD_ROLE_UPLOADER] = "mxd-uploader",
	[MXD_ROLE_HTTPS] = "mxd-https",
};

/* Fork a child in its role. Non-worker children close the listeners and
 * every descriptor that is not theirs before dropping privileges. */
static pid_t
mxd_spawn(struct mxd_master *m, enum mxd_role role, int idx)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("event=fork_failed");
		return -1;
	}
	if (pid > 0)
		return pid;
	prctl(PR_SET_NAME, mxd_role_names[role]);
	for (size_t i = 0; i < m->nhttps && role != MXD_ROLE_HTTPS; i++)
		close(m->https_fds[i]);
	/* Only the master tells the uploader who this host is. */
	if (m->identity_fds[0] > 0) {
		close(m->identity_fds[0]);
		if (role != MXD_ROLE_UPLOADER)
			close(m->identity_fds[1]);
	}
	if (role == MXD_ROLE_WORKER)
		mxd_worker_main(m, idx);
	for (size_t i = 0; i < (size_t)m->nworkers * m->nlisten; i++)
		close(m->lfds[i]);
	close(m->notify[1]);
	if (role == MXD_ROLE_HTTPS) {
		close(m->notify[0]);
		for (int i = 0; i < 2; i++)
			if (m->outcome_fds[i] > 0)
				close(m->outcome_fds[i]);
		SSL_CTX_free(m->creds.tls);
		mxd_drop_privileges(m, 0);
		https_main(m->cfg, m->https_tls, m->https_fds, m->nhttps);
	}
	if (role == MXD_ROLE_UPLOADER) {
		close(m->notify[0]);
		close(m->outcome_fds[0]);
		mxd_drop_privileges(m, 0);
		uploader_main(m->cfg, m->outcome_fds[1], m->outcome_dropped, &m->creds);
	}
	/* Delivery writes outbound session records to the uploader too. */
	struct outcome_sink sink = { -1, m->outcome_dropped };
	if (m->outcome_fds[0] > 0) {
		sink.fd = m->outcome_fds[0];
		close(m->outcome_fds[1]);
	}
	mxd_drop_privileges(m, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	qmgr_main(m->cfg, m->spool, m->notify[0], &sink);
}

#define mxd_spawn_worker(m, i)	mxd_spawn((m), MXD_ROLE_WORKER, (i))
#define mxd_spawn_deliverer(m)	mxd_spawn((m), MXD_ROLE_DELIVERY, 0)
#define mxd_spawn_uploader(m)	mxd_spawn((m), MXD_ROLE_UPLOADER, 0)
#define mxd_spawn_https(m)	mxd_spawn((m), MXD_ROLE_HTTPS, 0)

static int
mxd_load_tls(const struct mxd_config *cfg, struct tls_server **out)
{
	char err[600];
	if (tls_server_new(out, cfg->certs, cfg->ncerts, cfg->tls_min_version,
	    cfg->session_tickets, err, sizeof(err)) < 0) {
		log_error("event=tls_config_error error=\"%s\"", err);
		return -1;
	}
	return 0;
}

/* mxd-https's certificates: the SMTP ones and mta_sts_certs, SNI choosing
 * (lib/tls.c). *out is NULL when there is none: nothing to serve with. */
static int
mxd_load_https_tls(const struct mxd_config *cfg, struct tls_server **out)
{
	size_t n = cfg->ncerts + cfg->nmta_sts_certs;
	struct tls_cert_spec *all = xcalloc(n + 1, sizeof(*all));
	char err[600];
	int rc = 0;

	*out = NULL;
	for (size_t i = 0; i < cfg->ncerts; i++)
		all[i] = cfg->certs[i];
	for (size_t i = 0; i < cfg->nmta_sts_certs; i++)
		all[cfg->ncerts + i] = cfg->mta_sts_certs[i];
	if (n > 0 && tls_server_new(out, all, n, cfg->tls_min_version > TLS1_2_VERSION ?
	    cfg->tls_min_version : TLS1_2_VERSION, 0, err, sizeof(err)) < 0) {
		log_error("event=tls_config_error listener=mta_sts error=\"%s\"", err);
		rc = -1;
	}
	free(all);
	return rc;
}

/* Bind mta_sts_listen as root. An address the operator wrote must work; the
 * default (listen's addresses on port 443) is skipped with a warning when
 * it cannot be bound (port taken, or mxd not started as root). */
static void
mxd_https_bind(struct mxd_master *m)
{
	const struct mxd_config *cfg = m->cfg;

	m->https_fds = xcalloc(cfg->nmta_sts_listen + 1, sizeof(int));
	if (m->https_tls == NULL) {
		if (cfg->mta_sts_listen_set && cfg->nmta_sts_listen > 0)
			log_warnx("event=mta_sts_off reason=no_certificate");
		else if (cfg->nmta_sts_listen > 0)
			log_info("event=mta_sts_off reason=no_certificate");
		return;
	}
	for (size_t i = 0; i < cfg->nmta_sts_listen; i++) {
		const char *step, *addr = cfg->mta_sts_listen[i];
		int fd = mxd_listen_try(addr, 0, &step);
		if (fd < 0 && cfg->mta_sts_listen_set)
			fatal("event=%s_failed addr=%s listener=mta_sts", step, addr);
		if (fd < 0)
			log_warn("event=mta_sts_listen_skipped addr=%s step=%s", addr, step);
		else
			m->https_fds[m->nhttps++] = fd;
	}
}

static void
mxd_stop_children(struct mxd_master *m, pid_t *pids, int n, pid_t deliverer, int deadline)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	if (deliverer > 0)
		kill(deliverer, SIGTERM);
	time_t until = time(NULL) + deadline + 5;
	for (;;) {
		int left = 0;
		for (int i = 0; i < n; i++) {
			if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == pids[i])
				pids[i] = 0;
			left += pids[i] > 0;
		}
		if (deliverer > 0 && waitpid(deliverer, NULL, WNOHANG) == deliverer)
			deliverer = 0;
		left += deliverer > 0;
		if (left == 0)
			return;
		if (time(NULL) > until) {
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			if (deliverer > 0)
				kill(deliverer, SIGKILL);
			until = time(NULL) + 5;
		}
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void
mxd_track_draining(struct mxd_master *m, pid_t pid)
{
	size_t n = sizeof(m->draining) / sizeof(m->draining[0]);
	for (size_t i = 0; i < n; i++) {
		if (m->draining[i] <= 0) {
			m->draining[i] = pid;
			return;
		}
	}
	/* Too many reloads in flight: this one gets the shutdown treatment. */
	kill(pid, SIGTERM);
}

/* A reload's identity: kept for an uploader started later, sent to the
 * running one. */
static void
mxd_identity_update(struct mxd_master *m, uint8_t *id, size_t len)
{
	if (id == NULL)
		return;
	free(m->identity);
	m->identity = id;
	m->creds.identity = id;
	m->creds.identity_len = len;
	if (m->uploader > 0 && m->identity_fds[0] > 0)
		mxd_identity_send(m->identity_fds[0], id, len);
}

static void
mxd_reload(struct mxd_master *m)
{
	char err[600];
	struct mxd_config *ncfg;
	struct tls_server *ntls = NULL, *nhttps_tls = NULL;

	if (mxd_config_load(m->cfg->path, &ncfg, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		return;
	}
	mxd_keyswitch_apply(ncfg, time(NULL));	/* before TLS: it may change the files */
	if (mxd_load_tls(ncfg, &ntls) < 0 || mxd_load_https_tls(ncfg, &nhttps_tls) < 0) {
		tls_server_free(ntls);
		mxd_config_free(ncfg);
		log_error("event=reload_failed error=tls");
		return;
	}
	uint8_t *nid = NULL;
	size_t nidlen = 0;
	if (ncfg->control_server &&
	    mxd_identity_build(ncfg, MXD_NEXT_KEY_TRY, &nid, &nidlen, err,
	    sizeof(err)) < 0) {
		tls_server_free(ntls);
		tls_server_free(nhttps_tls);
		mxd_config_free(ncfg);
		log_error("event=reload_failed error=\"%s\"", err);
		return;
	}
	mxd_identity_update(m, nid, nidlen);
	/* Listeners, workers, user and spool are fixed at start. */
	struct mxd_config *old = m->cfg;
	struct tls_server *oldtls = m->tls, *old_https_tls = m->https_tls;
	ncfg->workers = old->workers;
	free(ncfg->spool_dir);
	ncfg->spool_dir = xstrdup(old->spool_dir);
	m->cfg = ncfg;
	m->tls = ntls;
	m->https_tls = nhttps_tls;
	log_set_level(ncfg->log_level);
	/* The policies are the new snapshot's: a new mxd-https serves them, the
	 * old one finishes its connections (seconds at most). */
	if (m->https > 0) {
		pid_t old_https = m->https;
		m->https = m->https_tls ? mxd_spawn_https(m) : 0;
		kill(old_https, SIGUSR1);
		mxd_track_draining(m, old_https);
	}

	pid_t oldpids[MXD_MAX_WORKERS];
	memcpy(oldpids, m->workers, sizeof(oldpids));
	for (int i = 0; i < m->nworkers; i++) {
		m->workers[i] = mxd_spawn_worker(m, i);
		if (oldpids[i] > 0) {
			kill(oldpids[i], SIGUSR1);	/* drains its sessions, exits */
			mxd_track_draining(m, oldpids[i]);
		}
	}
	/* The scheduler waits for its agents' transactions (a while) and exits; the
	 * reaper below starts a new one with the new configuration. */
	if (m->deliverer > 0) {
		m->deliverer_restart = 1;
		kill(m->deliverer, SIGTERM);
	}
	log_info("event=reloaded domains=%zu certificates=%zu tls_policies=%zu mta_sts_policies=%zu "
	    "config_version=%llu", ncfg->ndomains, ncfg->ncerts, ncfg->npolicies, ncfg->nmta_sts,
	    (unsigned long long)ncfg->snapshot_version);
	mxd_config_log_rcpt_checks(ncfg);
	/* Children have their own copies (fork): the master's can go. */
	tls_server_free(oldtls);
	tls_server_free(old_https_tls);
	mxd_config_free(old);
}

static int
mxd_same_id_field(pid_t other, pid_t pid)
{
	return other > 0 && other != pid && spool_id_pid(other) == spool_id_pid(pid);
}

/* Whether a live child other than pid makes spool ids with pid's field. */
static int
mxd_id_pid_shared(const struct mxd_master *m, pid_t pid)
{
	int shared = mxd_same_id_field(m->deliverer, pid);
	for (int i = 0; i < m->nworkers; i++)
		shared |= mxd_same_id_field(m->workers[i], pid);
	for (size_t i = 0; i < sizeof(m->draining) / sizeof(m->draining[0]); i++)
		shared |= mxd_same_id_field(m->draining[i], pid);
	return shared;
}

static void
mxd_announce(const char *id, void *arg)
{
	const struct mxd_master *m = arg;
	char line[SPOOL_ID_MAX + 2];
	int l = snprintf(line, sizeof(line), "%s\n", id);
	/* Best effort, as the committer's: else the next rescan finds it. */
	ssize_t w = write(m->notify[1], line, (size_t)l);
	(void)w;
}

/* A worker or the scheduler died: the messages it had made durable
 * but not yet revealed (queue/.ID, spool_commit.h) are revealed now, as a
 * restart would, and its partial files removed - not left unseen until
 * the next restart. Its client got no 250 and retries: a duplicate, the
 * outcome the design allows, never a loss. */
static void
mxd_recover_child(struct mxd_master *m, pid_t pid, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;		/* finished its commits before exiting */
	if (mxd_id_pid_shared(m, pid)) {
		log_warnx("event=spool_recover pid=%ld effect=left_until_restart "
		    "reason=\"a live process shares its id field\"", (long)pid);
		return;
	}
	if (spool_recover_pid(m->spool, pid, mxd_announce, m) < 0)
		log_warn("event=spool_error op=recover pid=%ld", (long)pid);
}

/* The uploader or mxd-https (one of each) died unasked: start another,
 * a second later so that a process failing at start does not spin. */
static void
mxd_restart_single(struct mxd_master *m, pid_t *pid, enum mxd_role role, int status)
{
	log_error("event=child_died pid=%ld role=%s status=%d signal=%d", (long)*pid,
	    role == MXD_ROLE_UPLOADER ? "uploader" : "https",
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	struct timespec pause = { 1, 0 };
	nanosleep(&pause, NULL);
	*pid = mxd_spawn(m, role, 0);
}

static int
mxd_is_child(const struct mxd_master *m, pid_t pid)
{
	for (int i = 0; i < m->nworkers; i++)
		if (m->workers[i] == pid)
			return i;
	return -1;
}

/* The start line, and the settings an operator must not miss. */
static void
mxd_log_started(const struct mxd_master *m)
{
	log_info("event=started version=%s listen=%zu workers=%d user=%s spool=%s", MXFLEET_VERSION,
	    m->nlisten, m->nworkers, m->drop ? m->cfg->user : "(unchanged)", m->cfg->spool_dir);
	if (m->cfg->core_dumps)
		log_warnx("event=core_dumps_enabled reason=\"each process's keys readable by "
		    "the others and in its cores\"");
	mxd_config_log_rcpt_checks(m->cfg);
}

/* Before anything started: what main loaded goes, rc is returned. */
static int
mxd_exit_early(struct mxd_master *m, int rc)
{
	SSL_CTX_free(m->creds.tls);
	tls_server_free(m->tls);
	tls_server_free(m->https_tls);
	mxd_config_free(m->cfg);
	free(m->identity);
	return rc;
}

/* Reap: restart a worker or the deliverer that died unasked. */
static void
mxd_reap(struct mxd_master *m)
{
	pid_t pid;
	int status;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int idx = mxd_is_child(m, pid);
		if (pid == m->uploader && m->uploader > 0) {
			mxd_restart_single(m, &m->uploader, MXD_ROLE_UPLOADER, status);
			continue;
		}
		if (pid == m->https && m->https > 0) {
			mxd_restart_single(m, &m->https, MXD_ROLE_HTTPS, status);
			continue;
		}
		if (idx < 0 && pid != m->deliverer) {
			/* an old worker, drained after a reload */
			for (size_t i = 0; i < sizeof(m->draining) / sizeof(m->draining[0]); i++)
				if (m->draining[i] == pid)
					m->draining[i] = 0;
			mxd_recover_child(m, pid, status);
			continue;
		}
		if (idx < 0 && m->deliverer_restart) {
			m->deliverer_restart = 0;
			m->deliverer = mxd_spawn_deliverer(m);
			continue;
		}
		log_error("event=child_died pid=%ld role=%s status=%d signal=%d", (long)pid,
		    idx >= 0 ? "worker" : "delivery", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		mxd_recover_child(m, pid, status);
		struct timespec pause = { 0, 200 * 1000 * 1000 };
		nanosleep(&pause, NULL);
		if (idx >= 0)
			m->workers[idx] = mxd_spawn_worker(m, idx);
		else
			m->deliverer = mxd_spawn_deliverer(m);
	}
}

/* SIGTERM/SIGINT: stop taking connections at once; sessions in flight
 * finish; the uploader last (it journals what the workers sent at the end). */
static void
mxd_stop_all(struct mxd_master *m, int sig)
{
	log_info("event=stopping signal=%d", sig);
	for (size_t i = 0; i < (size_t)m->nworkers * m->nlisten; i++)
		close(m->lfds[i]);
	for (size_t i = 0; i < m->nhttps; i++)
		close(m->https_fds[i]);
	mxd_stop_children(m, m->workers, m->nworkers, m->deliverer, m->cfg->shutdown_timeout);
	if (m->https > 0)
		mxd_stop_children(m, &m->https, 1, 0, HTTPS_CONN_TIMEOUT);
	if (m->uploader > 0)
		mxd_stop_children(m, &m->uploader, 1, 0, 5);
	mxd_stop_children(m, m->draining, (int)(sizeof(m->draining) / sizeof(m->draining[0])),
	    0, m->cfg->shutdown_timeout);
	log_info("event=stopped");
	tls_server_free(m->tls);
	tls_server_free(m->https_tls);
	SSL_CTX_free(m->creds.tls);
	mxd_config_free(m->cfg);
	free(m->identity);
	spool_free(m->spool);
	free(m->lfds);
	free(m->https_fds);
}

/* The control plane's credentials and the host's identity, read now as
 * root like the SMTP keys. 0, or the exit status (the reason printed). */
static int
mxd_prepare_control(struct mxd_master *m, int check)
{
	char err[600];

	/* The control plane's key is read now, as root, like the SMTP keys. */
	enum pki_role role;
	m->creds.tls = grpc_tls_client_ctx(m->cfg->control_cert, m->cfg->control_key,
	    m->cfg->control_ca, err, sizeof(err));
	if (m->creds.tls == NULL || pki_describe(m->cfg->control_cert, m->creds.cn,
	    sizeof(m->creds.cn), &role, &m->creds.not_after, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxd: control: %s\n", err);
		return 1;
	}
	if (m->cfg->control_host_id == NULL && m->creds.cn[0] == '\0') {
		fprintf(stderr, "mxd: control: %s has no CN; set control.host_id\n",
		    m->cfg->control_cert);
		return 1;
	}
	/* The next key is created now, as root; -n only reads it. */
	if (mxd_identity_build(m->cfg, check ? MXD_NEXT_KEY_READ : MXD_NEXT_KEY_CREATE,
	    &m->identity, &m->creds.identity_len, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxd: %s\n", err);
		return mxd_exit_early(m, 1);
	}
	m->creds.identity = m->identity;
	return 0;
}

int
main(int argc, char **argv)
{
	struct mxd_master m;
	const char *path = NULL;
	int check = 0, ch, rc;
	char err[600];

	/* "+": options end at the first word (queue ... takes ids, not options). */
	while ((ch = getopt(argc, argv, "+c:nV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': printf("mxd %s\n", MXFLEET_VERSION); return 0;
		default: mxd_usage();
		}
	}
	int queue = optind < argc && strcmp(argv[optind], "queue") == 0;
	int csr = optind + 1 == argc && strcmp(argv[optind], "csr") == 0;
	if (path == NULL || (optind != argc && !queue && !csr) || ((queue || csr) && check))
		mxd_usage();

	memset(&m, 0, sizeof(m));
	log_init("mxd", LOG_LEVEL_INFO, 0);
	if (mxd_config_load(path, &m.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "mxd: %s\n", err);
		return 1;
	}
	if (csr) {
		rc = mxd_keyswitch_csr(m.cfg, stdout, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "mxd: %s\n", err);
		mxd_config_free(m.cfg);
		return rc < 0 ? 1 : 0;
	}
	if (queue) {
		/* Only spool_dir is needed: no keys, no root. */
		rc = mxd_queue_main(m.cfg, argc - optind - 1, argv + optind + 1);
		if (rc == MXD_QUEUE_USAGE)
			mxd_usage();
		mxd_config_free(m.cfg);
		return rc;
	}
	if (!check)
		mxd_keyswitch_apply(m.cfg, time(NULL));
	if (mxd_load_tls(m.cfg, &m.tls) < 0 || mxd_load_https_tls(m.cfg, &m.https_tls) < 0) {
		fprintf(stderr, "mxd: TLS configuration failed (see the log line above)\n");
		return 1;
	}
	if (geteuid() == 0) {
		if (m.cfg->user == NULL) {
			fprintf(stderr, "mxd: %s: 'user' is required when started as root\n", path);
			return 1;
		}
		struct passwd *pw = getpwnam(m.cfg->user);
		if (pw == NULL) {
			fprintf(stderr, "mxd: %s: user '%s' does not exist\n", path, m.cfg->user);
			return 1;
		}
		m.uid = pw->pw_uid;
		m.gid = pw->pw_gid;
		m.drop = 1;
	}
	if (m.cfg->control_server && (rc = mxd_prepare_control(&m, check)) != 0)
		return rc;
	if (check) {
		printf("mxd: %s: configuration OK (%zu domains, %zu certificates)\n", path,
		    m.cfg->ndomains, m.cfg->ncerts);
		mxd_config_log_rcpt_checks(m.cfg);
		return mxd_exit_early(&m, 0);
	}
	log_init("mxd", m.cfg->log_level, m.cfg->log_syslog);

	/* Blocked before the first listener exists: a SIGTERM that comes once a
	 * client (or a supervisor) can see the port waits for the master loop
	 * and stops mxd cleanly, instead of killing it mid-recovery. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	/* Children inherit the mask and unblock once their handlers are in place. */
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	m.nworkers = m.cfg->workers;
	m.nlisten = m.cfg->nlisten;
	m.lfds = xcalloc((size_t)m.nworkers * m.nlisten, sizeof(int));
	for (int wi = 0; wi < m.nworkers; wi++)
		for (size_t i = 0; i < m.nlisten; i++)
			m.lfds[(size_t)wi * m.nlisten + i] = mxd_listen_one(m.cfg->listen[i], m.nworkers > 1);
	mxd_https_bind(&m);

	if (spool_open(&m.spool, m.cfg->spool_dir, m.drop ? m.uid : (uid_t)-1,
	    m.drop ? m.gid : (gid_t)-1, err, sizeof(err)) < 0)
		fatalx("event=spool_error dir=%s error=\"%s\"", m.cfg->spool_dir, err);
	/* Before any worker runs: whatever sits in tmp/ never got a 250. */
	spool_recover(m.spool, NULL, NULL);

	if (pipe2(m.notify, O_CLOEXEC) < 0)
		fatal("event=pipe_failed");
	fcntl(m.notify[1], F_SETFL, O_NONBLOCK);
	fcntl(m.notify[1], F_SETPIPE_SZ, 1 << 20);

	/* Keys are loaded and sockets bound: the master has no further use for
	 * root. Reloads re-read the files as the configured user. */
	mxd_drop_privileges(&m, 1);
	if (m.cfg->control_server) {
		if (outcome_channel_new(m.outcome_fds, &m.outcome_dropped) < 0)
			fatal("event=outcome_channel_failed");
		if (mxd_identity_channel_new(m.identity_fds) < 0)
			fatal("event=identity_channel_failed");
		m.creds.identity_fd = m.identity_fds[1];
		m.uploader = mxd_spawn_uploader(&m);
	}
	m.deliverer = mxd_spawn_deliverer(&m);
	for (int i = 0; i < m.nworkers; i++)
		m.workers[i] = mxd_spawn_worker(&m, i);
	if (m.nhttps > 0)
		m.https = mxd_spawn_https(&m);
	mxd_log_started(&m);
	/* Type=notify (systemd): the listeners are bound and the spool
	 * recovered, so a connection now is accepted. */
	sdnotify("READY=1\nSTATUS=accepting mail");

	for (;;) {
		siginfo_t si;
		struct timespec ts = { 1, 0 };
		int sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			sdnotify("STOPPING=1");
			mxd_stop_all(&m, sig);
			return 0;
		}
		if (sig == SIGHUP) {
			sdnotify_reloading();
			mxd_reload(&m);
			sdnotify("READY=1\nSTATUS=accepting mail");
		}
		mxd_reap(&m);
	}
}

