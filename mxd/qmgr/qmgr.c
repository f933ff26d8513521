/* The scheduler process, mxd-qmgr: the one process that owns the queue.
 *
 * It learns of new messages from the workers through a pipe ("ID\n") and by
 * rescanning queue/ now and then, and keeps every message in qmgr_sched (by
 * id and next attempt). A message whose time has come is read, its
 * recipients grouped by destination (a next hop, or a domain for direct MX
 * delivery) in groups of at most delivery.recipient_limit, and each group
 * becomes a job queued at its destination. Jobs go to delivery agents
 * (mxd-smtp processes, deliver.c) under each destination's concurrency
 * window and each class's agent limit; an agent answers with a result per
 * recipient. When every job of a message has answered, the scheduler logs
 * each recipient, sends the DSNs, and removes the spool file or records the
 * statuses and the next attempt in it. Agents only read spool files.
 *
 * Agents are forked on demand, reused (an idle agent with a connection to
 * the same destination first: connection caching), and closed after
 * QMGR_AGENT_IDLE_SEC idle. An agent that dies mid-transaction has its
 * recipients deferred: they are tried again (maybe a duplicate, never a
 * loss). */
#include "qmgr.h"
#include "agent_msg.h"
#include "dsn.h"
#include "smtp_client.h"
#include "log.h"
#include "mxd.h"
#include "qmgr_dsn.h"
#include "smtp_parser.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define QMGR_RESCAN_SEC		30
#define QMGR_ACTIVE_MAX		5000	/* messages in flight at once (memory bound) */
#define QMGR_AGENT_IDLE_SEC	60
#define QMGR_STOP_GRACE_SEC	10
#define QMGR_STS_HOLD_SEC	86400	/* how long past max_age a changed,
					   unfetchable MTA-STS policy holds a return */

static volatile sig_atomic_t qmgr_stop;
static volatile sig_atomic_t qmgr_reload;

static void
qmgr_on_signal(int sig)
{
	if (sig == SIGHUP)
		qmgr_reload = 1;
	else
		qmgr_stop = 1;
}

/* A message's attempt in flight (qmgr_msg.owner). */
struct qmgr_attempt {
	struct rcpt_state	*st;
	size_t			 nrcpts;
	int			 expired;
	int			 cut_short;	/* a job killed by a stop */
};

/* A job: recipients of one message for one destination, or an MTA-STS
 * refresh (m NULL). */
struct qmgr_job {
	struct qmgr_msg		*m;
	struct qmgr_dest	*dest;		/* set when picked */
	char			 dest_name[300];
	enum qmgr_class		 cls;
	int64_t			 started;	/* sent to an agent (seconds) */
	int			 progressed;	/* the window grew at its greeting */
	struct agent_job	 job;
};

/* ---- the queue ---- */

static int64_t
qmgr_retry_delay(const struct qmgr *q, int attempts)
{
	return qmgr_sched_backoff(q->cfg->retry_min, q->cfg->retry_max, attempts);
}

/* Just spooled (a notification, a DSN): due now. */
static void
qmgr_add(struct qmgr *q, const char *id)
{
	if (strlen(id) > 0 && strlen(id) < SPOOL_ID_MAX)
		qmgr_sched_add(q->sched, id, 0, NULL);
}

/* Found in the spool (start-up, rescans): it may have been deferred by an
 * earlier run, whose schedule (attempts, next attempt, delay notice) it
 * keeps. A file that does not read is due now: its attempt says why. */
static void
qmgr_add_stored(const char *id, void *arg)
{
	struct qmgr *q = arg;
	struct spool_env env;
	int fd, added;
	off_t off;

	if (strlen(id) >= SPOOL_ID_MAX || qmgr_sched_find(q->sched, id) != NULL)
		return;
	if (spool_read(q->sp, id, &env, &fd, &off) != 0) {
		qmgr_sched_add(q->sched, id, 0, &added);
		return;
	}
	struct qmgr_msg *m = qmgr_sched_add(q->sched, id, env.next_attempt, &added);
	m->attempts = env.attempts;
	m->delay_notified = env.delay_notified;
	close(fd);
	spool_env_free(&env);
}

static void
qmgr_read_pipe(struct qmgr *q)
{
	for (;;) {
		if (q->notify_fd < 0)
			return;
		ssize_t n = read(q->notify_fd, q->pipebuf + q->pipelen, sizeof(q->pipebuf) - q->pipelen);
		if (n == 0) {
			/* Every writer gone: rescans find new mail; a closed pipe
			 * must not wake poll forever. */
			close(q->notify_fd);
			q->notify_fd = -1;
			return;
		}
		if (n < 0)
			return;
		q->pipelen += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < q->pipelen; i++) {
			if (q->pipebuf[i] != '\n')
				continue;
			q->pipebuf[i] = '\0';
			qmgr_add(q, q->pipebuf + start);
			start = i + 1;
		}
		memmove(q->pipebuf, q->pipebuf + start, q->pipelen - start);
		q->pipelen -= start;
		if (q->pipelen == sizeof(q->pipebuf))
			q->pipelen = 0;	/* garbage without newline: drop it */
	}
}

/* ---- the end of an attempt ---- */

/* What earlier attempts finished, from the spool statuses: a recipient
 * done is left alone; one returned whose DSN could not be queued then is
 * returned again from what was stored - the next hop never sees it again. */
static void
qmgr_resume(const struct spool_env *env, struct rcpt_state *st, int *routed)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt_status *ss = &env->status[i];
		if (ss->state == SPOOL_RCPT_DONE)
			st[i].result = RCPT_FINAL;
		else if (ss->state == SPOOL_RCPT_BOUNCED) {
			rcpt_set(&st[i], RCPT_BOUNCE, ss->code, ss->reply, NULL, NULL);
			st[i].mta = ss->mta ? xstrdup(ss->mta) : NULL;
			st[i].stored = 1;
		} else
			continue;
		routed[i] = 1;
	}
}

/* Record this attempt's outcome in env's statuses. owed: the returned
 * recipients whose DSN is still to be queued. */
static void
qmgr_record(struct spool_env *env, const struct rcpt_state *st, int owed)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		switch (st[i].result) {
		case RCPT_FINAL:
			break;
		case RCPT_DONE:
			spool_env_set_status(env, i, SPOOL_RCPT_DONE, 0, NULL, NULL);
			break;
		case RCPT_BOUNCE:
			if (owed && dsn_wanted(env, i, DSN_ACTION_FAILED))
				spool_env_set_status(env, i, SPOOL_RCPT_BOUNCED, st[i].code,
				    st[i].mta, st[i].reply);
			else
				spool_env_set_status(env, i, SPOOL_RCPT_DONE, 0, NULL, NULL);
			break;
		default:
			spool_env_set_status(env, i, SPOOL_RCPT_TODO, 0, NULL, NULL);
			break;
		}
	}
}

static void
qmgr_attempt_free(struct qmgr_attempt *a)
{
	for (size_t i = 0; i < a->nrcpts; i++)
		rcpt_state_clear(&a->st[i]);
	free(a->st);
	free(a);
}

/* Log each recipient's result; returns how many are still deferred (an
 * expired one becomes a return). */
static size_t
qmgr_log_results(struct qmgr_msg *m, const struct spool_env *env, struct rcpt_state *st,
    int expired, int64_t now, int max_age)
{
	char one[1024];
	size_t left = 0;
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (st[i].reply == NULL)
			st[i].reply = xstrdup("not attempted");
		struct smtp_reply tmp = { st[i].code, { st[i].reply, strlen(st[i].reply), 0 } };
		const char *txt = smtp_reply_oneline(&tmp, one, sizeof(one));
		switch (st[i].result) {
		case RCPT_FINAL:
			break;
		case RCPT_DONE:
			log_info("event=delivered id=%s rcpt=<%s> next_hop=%s reply=\"%s\" attempts=%d "
			    "transfer=%s", env->id, env->rcpts[i], st[i].hop, txt, m->attempts,
			    st[i].transfer ? st[i].transfer : "-");
			break;
		case RCPT_BOUNCE:
			if (!st[i].stored)	/* logged when it was decided */
				log_info("event=bounced id=%s rcpt=<%s> next_hop=%s reply=\"%s\"",
				    env->id, env->rcpts[i], st[i].hop ? st[i].hop : "none", txt);
			break;
		default:
			if (expired && !(st[i].sts_hold &&
			    now - env->created <= max_age + QMGR_STS_HOLD_SEC)) {
				st[i].result = RCPT_BOUNCE;
				log_info("event=expired id=%s rcpt=<%s> reply=\"%s\"", env->id,
				    env->rcpts[i], txt);
			} else {
				left++;
				snprintf(m->last_reply, sizeof(m->last_reply), "%s", txt);
				log_info("event=deferred id=%s rcpt=<%s> next_hop=%s reply=\"%s\" attempts=%d",
				    env->id, env->rcpts[i], st[i].hop ? st[i].hop : "none", txt,
				    m->attempts);
			}
			break;
		}
	}
	return left;
}

/* A DSN the last call queued joins the queue. */
static void
qmgr_take_dsn(struct qmgr *q, char *dsn_id)
{
	if (dsn_id[0] != '\0')
		qmgr_add(q, dsn_id);
	dsn_id[0] = '\0';
}

/* Every job of m answered: log, notify, and remove or reschedule. */
static void
qmgr_attempt_finish(struct qmgr *q, struct qmgr_msg *m)
{
	struct qmgr_attempt *a = m->owner;
	struct spool_env env;
	int fd;
	off_t off;
	int64_t now = qmgr_sched_now(q->sched);

	m->owner = NULL;
	q->active_msgs--;
	if (m->dropped || spool_read(q->sp, m->id, &env, &fd, &off) != 0) {
		qmgr_attempt_free(a);
		qmgr_sched_remove(q->sched, m);	/* dropped, or gone meanwhile */
		return;
	}
	if (env.nrcpts != a->nrcpts) {
		log_error("event=spool_changed id=%s action=retry", m->id);
		qmgr_attempt_free(a);
		close(fd);
		spool_env_free(&env);
		qmgr_sched_set_due(q->sched, m, now + qmgr_retry_delay(q, m->attempts));
		return;
	}
	struct rcpt_state *st = a->st;
	char dsn_id[SPOOL_ID_MAX] = "";
	struct qmgr_dsn_ctx dc = { q->cfg->hostname, q->sp, dsn_id };
	size_t deferred = qmgr_log_results(m, &env, st, a->expired, now, q->cfg->max_age);
	size_t owed = 0;
	if (qmgr_dsn_bounce(&dc, &env, fd, off, st, RCPT_BOUNCE, 0) < 0) {
		/* The sender must hear of it, and the spool (full?) could not
		 * take the DSN: these recipients stay, marked returned, and a
		 * later attempt queues their DSN from what is stored - they
		 * are not sent again, nor reported as delayed. */
		for (size_t i = 0; i < env.nrcpts; i++)
			if (st[i].result == RCPT_BOUNCE && dsn_wanted(&env, i, DSN_ACTION_FAILED))
				owed++;
	}
	qmgr_take_dsn(q, dsn_id);
	size_t left = deferred + owed;
	if (owed > 0 && deferred == 0)
		snprintf(m->last_reply, sizeof(m->last_reply), "returned, the DSN not queued "
		    "yet (%zu recipient%s)", owed, owed == 1 ? "" : "s");
	/* NOTIFY=SUCCESS that no next hop took on: mxd tells the sender. */
	qmgr_dsn_success(&dc, &env, fd, off, st);
	qmgr_take_dsn(q, dsn_id);
	/* Still trying after delivery.delay_dsn: tell the sender once (RFC 3464
	 * Action: delayed). The flag is stored with the schedule below; a
	 * crash between the notice and that store can make a second one, never
	 * a missing one. */
	if (deferred > 0 && !a->expired && q->cfg->delay_dsn > 0 && !m->delay_notified &&
	    now - env.created >= q->cfg->delay_dsn) {
		for (size_t i = 0; i < env.nrcpts; i++)
			if (st[i].result == RCPT_PENDING)
				st[i].result = RCPT_DEFER;
		m->delay_notified = qmgr_dsn_bounce(&dc, &env, fd, off, st, RCPT_DEFER, 1) == 0;
		qmgr_take_dsn(q, dsn_id);
	}
	if (left == 0) {
		spool_remove(q->sp, m->id);
		qmgr_sched_remove(q->sched, m);
	} else {
		/* Cut short by a stop (a reload restarts the scheduler): the
		 * next scheduler tries it at once, not after a backoff. */
		int64_t due = a->cut_short ? now : now + qmgr_retry_delay(q, m->attempts);
		/* Who is finished, and the schedule, go into the spool file:
		 * nobody is sent twice, a restart neither retries everything
		 * at once nor repeats the delay notice. In place, so this
		 * holds on a full disk too; a file from an older mxd, without
		 * the lines, is copied once to get them. */
		env.attempts = m->attempts;
		env.next_attempt = (time_t)due;
		env.delay_notified = m->delay_notified;
		qmgr_record(&env, st, owed > 0);
		if (spool_env_in_place(&env)) {
			if (spool_set_progress(q->sp, &env) < 0)
				log_warn("event=spool_error op=progress id=%s", env.id);
		} else if (spool_rewrite(q->sp, &env, fd, off) < 0)
			log_warn("event=spool_error op=rewrite id=%s", env.id);
		qmgr_sched_set_due(q->sched, m, due);
	}
	qmgr_attempt_free(a);
	close(fd);
	spool_env_free(&env);
}

/* One job of m answered (or never will): the last one ends the attempt. */
static void
qmgr_job_settle(struct qmgr *q, struct qmgr_job *jr)
{
	struct qmgr_msg *m = jr->m;
	free(jr);
	if (m != NULL && --m->inflight == 0)
		qmgr_attempt_finish(q, m);
}

/* Every recipient of the job without a result gets text. */
static void
qmgr_job_defer(struct qmgr *q, struct qmgr_job *jr, const char *text)
{
	(void)q;
	if (jr->m == NULL)
		return;
	struct qmgr_attempt *a = jr->m->owner;
	for (size_t k = 0; k < jr->job.n; k++) {
		struct rcpt_state *s = &a->st[jr->job.idx[k]];
		if (s->result == RCPT_PENDING)
			rcpt_set(s, RCPT_DEFER, 0, text, jr->dest_name, NULL);
	}
}

/* ---- routing: recipients to destinations ---- */

struct qmgr_rkey {
	uint32_t	 i;
	enum qmgr_class	 cls;
	char		*key;
};

static int
qmgr_rkey_cmp(const void *a, const void *b)
{
	const struct qmgr_rkey *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Where recipient i goes: its class and destination (allocated), or NULL
 * with st[i] deferred when there is no route. */
static char *
qmgr_destination(struct qmgr *q, const struct spool_env *env, size_t i, int attempt,
    struct rcpt_state *st, enum qmgr_class *cls)
{
	const char *hop;
	const struct mxd_nexthop *nh = mxd_config_route(q->cfg, env->from, env->rcpts[i], attempt,
	    &hop);
	const char *dom = smtp_parser_domain(env->rcpts[i]);
	if ((nh == NULL || nh->proto == MXD_NH_MX) && q->cfg->resolver != NULL && dom != NULL) {
		char *key = xstrdup(dom);
		for (char *p = key; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		*cls = QMGR_CLASS_MX;
		return key;
	}
	if (nh == NULL || nh->proto == MXD_NH_MX) {
		rcpt_set(&st[i], RCPT_DEFER, 0, nh ? "451 4.3.5 a route says mx (direct MX delivery) "
		    "but no resolver is configured" : "451 4.3.5 no route to this domain: neither "
		    "relay_next_hop, a route, nor resolver (direct MX delivery) is configured",
		    NULL, NULL);
		return NULL;
	}
	*cls = QMGR_CLASS_NEXTHOP;
	return xstrdup(hop);
}

/* Queue jobs for the recipients not routed yet: grouped by destination
 * (sorted, so 50,000 recipients take n log n), recipient_limit each. */
static void
qmgr_route(struct qmgr *q, struct qmgr_msg *m, const struct spool_env *env, const int *routed)
{
	struct qmgr_attempt *a = m->owner;
	struct qmgr_rkey *keys = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(*keys));
	size_t nk = 0;
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (routed[i])
			continue;
		enum qmgr_class cls;
		char *key = qmgr_destination(q, env, i, m->attempts, a->st, &cls);
		if (key != NULL)
			keys[nk++] = (struct qmgr_rkey){ (uint32_t)i, cls, key };
	}
	qsort(keys, nk, sizeof(*keys), qmgr_rkey_cmp);
	struct qmgr_job *jr = NULL;
	for (size_t k = 0; k < nk; k++) {
		int same = jr != NULL && jr->cls == keys[k].cls && strcmp(jr->dest_name, keys[k].key) == 0;
		if (!same || jr->job.n == (size_t)q->cfg->recipient_limit) {
			jr = xcalloc(1, sizeof(*jr));
			jr->m = m;
			jr->cls = keys[k].cls;
			snprintf(jr->dest_name, sizeof(jr->dest_name), "%s", keys[k].key);
			jr->job.kind = AGENT_JOB_DELIVER;
			snprintf(jr->job.id, sizeof(jr->job.id), "%s", m->id);
			jr->job.attempt = m->attempts;
			jr->job.expired = a->expired;
			struct qmgr_dest *d = qmgr_sched_dest(q->sched, jr->dest_name, jr->cls,
			    mxd_config_dest_concurrency(q->cfg, jr->dest_name,
			    jr->cls == QMGR_CLASS_MX));
			qmgr_sched_job_add(q->sched, d, jr);
			m->inflight++;
		}
		jr->job.idx[jr->job.n++] = keys[k].i;
	}
	for (size_t k = 0; k < nk; k++)
		free(keys[k].key);
	free(keys);
}

/* m's time has come: read it, queue its jobs (or finish at once when
 * nothing is left to send). */
static void
qmgr_attempt_start(struct qmgr *q, struct qmgr_msg *m)
{
	struct spool_env env;
	int fd;
	off_t off;

	int rc = spool_read(q->sp, m->id, &env, &fd, &off);
	if (rc == -2) {
		log_error("event=spool_corrupt id=%s action=quarantine dir=corrupt", m->id);
		spool_quarantine(q->sp, m->id);
		qmgr_sched_remove(q->sched, m);
		return;
	}
	if (rc < 0) {
		if (errno != ENOENT)
			log_warn("event=spool_error op=read id=%s", m->id);
		qmgr_sched_remove(q->sched, m);
		return;
	}
	close(fd);
	int64_t now = qmgr_sched_now(q->sched);
	m->attempts++;
	m->last_attempt = now;
	struct qmgr_attempt *a = xcalloc(1, sizeof(*a));
	a->nrcpts = env.nrcpts;
	a->st = xcalloc(env.nrcpts ? env.nrcpts : 1, sizeof(*a->st));
	a->expired = now - env.created > q->cfg->max_age;
	m->owner = a;
	q->active_msgs++;
	int *routed = xcalloc(env.nrcpts ? env.nrcpts : 1, sizeof(*routed));
	qmgr_resume(&env, a->st, routed);
	qmgr_route(q, m, &env, routed);
	free(routed);
	spool_env_free(&env);
	if (m->inflight == 0)
		qmgr_attempt_finish(q, m);
}

/* ---- agents ---- */

static void
qmgr_agent_child(struct qmgr *q, int fd)
{
	prctl(PR_SET_NAME, "mxd-smtp");
	/* The scheduler gone (killed), its agents go too: what they were
	 * sending is sent again by the next scheduler, never lost. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (size_t i = 0; i < q->nagents; i++)
		if (q->agents[i].fd >= 0)
			close(q->agents[i].fd);
	close(q->notify_fd);
	qmgr_queue_forget(q);
	signal(SIGCHLD, SIG_DFL);
	deliver_agent_main(q->cfg, q->sp, fd, &q->outcomes, &q->tls);
}

static struct qmgr_agent *
qmgr_agent_spawn(struct qmgr *q)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("event=agent_failed op=socketpair");
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("event=agent_failed op=fork");
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0) {
		close(sv[0]);
		qmgr_agent_child(q, sv[1]);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	if (q->nagents == q->capagents) {
		q->capagents = q->capagents ? q->capagents * 2 : 32;
		q->agents = xreallocarray(q->agents, q->capagents, sizeof(*q->agents));
	}
	struct qmgr_agent *ag = &q->agents[q->nagents++];
	memset(ag, 0, sizeof(*ag));
	ag->pid = pid;
	ag->fd = sv[0];
	buf_init(&ag->in);
	return ag;
}

/* An idle agent for jr: one whose connection goes to jr's destination
 * (cached), else one without a connection, else any, else a new one. */
static struct qmgr_agent *
qmgr_agent_for(struct qmgr *q, const struct qmgr_job *jr, int64_t now)
{
	struct qmgr_agent *any = NULL, *closed = NULL;
	for (size_t i = 0; i < q->nagents; i++) {
		struct qmgr_agent *ag = &q->agents[i];
		if (ag->fd < 0 || ag->job != NULL || ag->retire)
			continue;
		int fresh = now - ag->idle_since <= q->cfg->connection_cache_time;
		if (fresh && ag->cls == (int)jr->cls && strcmp(ag->dest, jr->dest_name) == 0)
			return ag;
		if (!fresh && closed == NULL)
			closed = ag;
		if (any == NULL)
			any = ag;
	}
	if (closed != NULL)
		return closed;
	return any != NULL ? any : qmgr_agent_spawn(q);
}

static int
qmgr_agent_send(struct qmgr_agent *ag, struct qmgr_job *jr)
{
	struct buf out;
	buf_init(&out);
	agent_job_encode(&jr->job, &out);
	/* An idle agent has read everything we sent: its socket has room. */
	ssize_t w = write(ag->fd, out.data, out.len);
	int ok = w == (ssize_t)out.len;
	buf_free(&out);
	if (!ok)
		return -1;
	ag->job = jr;
	jr->started = (int64_t)time(NULL);
	return 0;
}

/* A started job is over for its destination: feed the window back and
 * say so when the destination died or came back. */
static void
qmgr_job_feedback(struct qmgr *q, struct qmgr_job *jr, enum qmgr_feedback fb)
{
	if (jr->dest == NULL)
		return;
	int failures = qmgr_dest_failures(jr->dest) + (fb == QMGR_FB_UNREACHED);
	int before = qmgr_dest_window(jr->dest);
	int after = before + (fb == QMGR_FB_REACHED && before < qmgr_dest_ceiling(jr->dest)) -
	    (fb == QMGR_FB_UNREACHED && before > 1);
	int rc = qmgr_sched_job_done(q->sched, jr->dest, fb);
	jr->dest = NULL;	/* may be forgotten now */
	if (after != before)
		log_debug("event=concurrency destination=%s window=%d", jr->dest_name, after);
	if (rc == 1)
		log_warnx("event=destination_dead destination=%s failures=%d until=%lld",
		    jr->dest_name, failures, (long long)(qmgr_sched_now(q->sched) + q->cfg->dead_time));
	else if (rc == 2)
		log_info("event=destination_alive destination=%s", jr->dest_name);
}

/* The agent at index i is gone or broken: whatever it was running is
 * deferred, it is closed (the reaper collects the process). */
static void
qmgr_agent_lost(struct qmgr *q, size_t i, const char *why)
{
	struct qmgr_agent *ag = &q->agents[i];
	struct qmgr_job *jr = ag->job;
	if (jr != NULL) {
		char text[300];
		log_error("event=agent_lost pid=%ld id=%s destination=%s reason=\"%s\"",
		    (long)ag->pid, jr->m ? jr->m->id : "-", jr->dest_name, why);
		snprintf(text, sizeof(text), "451 4.3.0 the delivery agent ended during the "
		    "transaction (%s)", why);
		qmgr_job_defer(q, jr, text);
		qmgr_job_feedback(q, jr, QMGR_FB_NONE);
		if (q->stopping && jr->m != NULL)
			((struct qmgr_attempt *)jr->m->owner)->cut_short = 1;
	}
	if (!ag->reaped)	/* else its pid may be another process's now */
		kill(ag->pid, SIGKILL);
	close(ag->fd);
	buf_free(&ag->in);
	q->agents[i] = q->agents[--q->nagents];
	if (jr != NULL)
		qmgr_job_settle(q, jr);
}

static int
qmgr_job_has(const struct qmgr_job *jr, uint32_t idx)
{
	for (size_t k = 0; k < jr->job.n; k++)
		if (jr->job.idx[k] == idx)
			return 1;
	return 0;
}

/* An answer from an agent: the results into the attempt. 0, or -1 when
 * the answer is malformed. */
static int
qmgr_agent_answer(struct qmgr *q, struct qmgr_agent *ag, const uint8_t *body, size_t len)
{
	struct qmgr_job *jr = ag->job;
	struct agent_result r;
	if (jr == NULL || agent_result_decode(body, len, &r) < 0)
		return -1;
	if (r.fb == QMGR_FB_PROGRESS) {
		agent_result_free(&r);
		if (jr->dest != NULL && !jr->progressed) {
			jr->progressed = 1;
			if (qmgr_sched_job_progress(q->sched, jr->dest) == 2)
				log_info("event=destination_alive destination=%s", jr->dest_name);
			else
				log_debug("event=concurrency destination=%s window=%d", jr->dest_name,
				    qmgr_dest_window(jr->dest));
		}
		return 0;	/* the job goes on */
	}
	if (jr->m != NULL) {
		struct qmgr_attempt *a = jr->m->owner;
		for (size_t k = 0; k < r.n; k++) {
			/* Only this job's recipients, with a result an agent can
			 * give (DONE, BOUNCE, DEFER): anything else stays
			 * without a result, deferred below. */
			if (r.idx[k] >= a->nrcpts || !qmgr_job_has(jr, r.idx[k]) ||
			    (r.st[k].result != RCPT_DONE && r.st[k].result != RCPT_BOUNCE &&
			    r.st[k].result != RCPT_DEFER))
				continue;
			struct rcpt_state *s = &a->st[r.idx[k]];
			rcpt_state_clear(s);
			*s = r.st[k];
			memset(&r.st[k], 0, sizeof(r.st[k]));
		}
		qmgr_job_defer(q, jr, "451 4.3.0 the delivery agent gave no result for this recipient");
	}
	enum qmgr_feedback fb = r.fb;
	if (fb == QMGR_FB_REACHED && jr->progressed)
		fb = QMGR_FB_NONE;	/* counted when the connection was greeted */
	agent_result_free(&r);
	qmgr_job_feedback(q, jr, fb);
	snprintf(ag->dest, sizeof(ag->dest), "%s", jr->dest_name);
	ag->cls = (int)jr->cls;
	ag->idle_since = qmgr_sched_now(q->sched);
	ag->job = NULL;
	qmgr_job_settle(q, jr);
	return 0;
}

static void
qmgr_agent_read(struct qmgr *q, size_t i)
{
	struct qmgr_agent *ag = &q->agents[i];
	char tmp[65536];
	const char *gone = NULL;
	for (;;) {
		ssize_t n = read(ag->fd, tmp, sizeof(tmp));
		if (n > 0) {
			buf_append(&ag->in, tmp, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		gone = n == 0 ? "closed" : strerror(errno);
		break;
	}
	/* An answer that came before the end (an agent that answered, then
	 * exited on SIGTERM) counts: its recipients are not sent again. */
	const uint8_t *body;
	size_t len;
	int rc;
	while ((rc = agent_frame_peek(&ag->in, &body, &len)) == 1) {
		if (qmgr_agent_answer(q, ag, body, len) < 0) {
			qmgr_agent_lost(q, i, "malformed answer");
			return;
		}
		buf_consume(&ag->in, AGENT_FRAME_HDR + len);
	}
	if (rc < 0)
		qmgr_agent_lost(q, i, "answer too long");
	else if (gone != NULL)
		qmgr_agent_lost(q, i, gone);
}

/* ---- dispatch ---- */

static void
qmgr_job_dead(struct qmgr *q, struct qmgr_job *jr, struct qmgr_dest *d)
{
	int64_t until;
	char text[600], when[64];
	qmgr_dest_dead(q->sched, d, &until);
	time_t t = (time_t)until;
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	snprintf(text, sizeof(text), "451 4.4.1 destination %s is not answering (%d connection "
	    "failures in a row): not tried before %s", jr->dest_name, qmgr_dest_failures(d), when);
	qmgr_job_defer(q, jr, text);
	qmgr_job_settle(q, jr);
}

static void
qmgr_dispatch(struct qmgr *q)
{
	int64_t now = qmgr_sched_now(q->sched);
	for (int c = 0; c < QMGR_NCLASS; c++) {
		struct qmgr_pick p;
		while (qmgr_sched_pick(q->sched, (enum qmgr_class)c, &p)) {
			struct qmgr_job *jr = p.job;
			if (p.dead) {
				qmgr_job_dead(q, jr, p.dest);
				continue;
			}
			jr->dest = p.dest;
			struct qmgr_agent *ag = qmgr_agent_for(q, jr, now);
			if (ag == NULL || qmgr_agent_send(ag, jr) < 0) {
				qmgr_job_defer(q, jr, "451 4.3.0 no delivery agent could be started "
				    "(see mxd's log)");
				qmgr_job_feedback(q, jr, QMGR_FB_NONE);
				qmgr_job_settle(q, jr);
				if (ag != NULL)
					qmgr_agent_lost(q, (size_t)(ag - q->agents), "cannot send");
				break;
			}
		}
	}
}

/* RFC 8461 10.2: an agent refetches the cached MTA-STS policies past half
 * their max_age (a job outside the classes: there is one at a time). */
static void
qmgr_sts_refresh(struct qmgr *q, int64_t now)
{
	for (size_t i = 0; i < q->nagents; i++)
		if (q->agents[i].job != NULL && q->agents[i].job->m == NULL)
			return;	/* the last one still runs */
	struct qmgr_job *jr = xcalloc(1, sizeof(*jr));
	jr->job.kind = AGENT_JOB_STS_REFRESH;
	snprintf(jr->dest_name, sizeof(jr->dest_name), "mta-sts-refresh");
	snprintf(jr->job.id, sizeof(jr->job.id), "-");
	struct qmgr_agent *ag = qmgr_agent_for(q, jr, now);
	if (ag != NULL && qmgr_agent_send(ag, jr) == 0)
		return;
	free(jr);
	if (ag != NULL)	/* a frame half sent: the agent is of no use */
		qmgr_agent_lost(q, (size_t)(ag - q->agents), "cannot send");
}

/* Idle agents past QMGR_AGENT_IDLE_SEC, or all idle ones (a reload):
 * closing the socket tells the agent to exit. */
static void
qmgr_agents_retire(struct qmgr *q, int64_t now, int all)
{
	for (size_t i = 0; i < q->nagents;) {
		struct qmgr_agent *ag = &q->agents[i];
		if (ag->job == NULL && (all || ag->retire ||
		    now - ag->idle_since > QMGR_AGENT_IDLE_SEC)) {
			close(ag->fd);
			buf_free(&ag->in);
			q->agents[i] = q->agents[--q->nagents];
			continue;
		}
		i++;
	}
}

static void
qmgr_reap(struct qmgr *q)
{
	pid_t pid;
	int status;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			log_error("event=agent_died pid=%ld signal=%d", (long)pid, WTERMSIG(status));
		for (size_t i = 0; i < q->nagents; i++)
			if (q->agents[i].pid == pid)
				q->agents[i].reaped = 1;	/* its socket says the rest */
	}
}

/* An agent that does not answer within every deadline a job can take
 * (each transaction is bounded by the client's deadlines; this is the
 * backstop for a bug or a wait nobody bounded) is killed: its recipients
 * are deferred and its destination's slot is free again. */
static void
qmgr_agents_watch(struct qmgr *q, int64_t now)
{
	const struct mxd_config *c = q->cfg;
	int64_t limit = 2 * (int64_t)c->smtp_transaction_timeout + 600 +
	    (c->smtp_min_data_rate > 0 ? (int64_t)(c->message_size / (uint64_t)c->smtp_min_data_rate) : 0);
	for (size_t i = 0; i < q->nagents;) {
		struct qmgr_job *jr = q->agents[i].job;
		if (jr != NULL && now - jr->started > limit) {
			char why[80];
			snprintf(why, sizeof(why), "no answer within %lld s", (long long)limit);
			qmgr_agent_lost(q, i, why);
			continue;	/* the last one moved to i */
		}
		i++;
	}
}

/* ---- the loop ---- */

static void
qmgr_limits(const struct mxd_config *cfg, struct qmgr_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->initial_concurrency = cfg->initial_concurrency;
	lim->dead_after = cfg->dead_after;
	lim->dead_time = cfg->dead_time;
	lim->class_agents[QMGR_CLASS_NEXTHOP] = cfg->nexthop_agents;
	lim->class_agents[QMGR_CLASS_MX] = cfg->mx_agents;
}

static void
qmgr_reload_config(struct qmgr *q)
{
	char err[600];
	struct mxd_config *ncfg;
	if (mxd_config_load(q->cfg->path, &ncfg, err, sizeof(err)) < 0) {
		log_error("event=reload_failed error=\"%s\"", err);
		return;
	}
	if (q->cfg != q->cfg_orig)
		mxd_config_free(q->cfg);
	q->cfg = ncfg;
	struct qmgr_limits lim;
	qmgr_limits(q->cfg, &lim);
	qmgr_sched_set_limits(q->sched, &lim);
	qmgr_sched_revive_all(q->sched);
	/* Agents have the old configuration: idle ones go now, busy ones
	 * after their job (they are not given another). */
	qmgr_agents_retire(q, qmgr_sched_now(q->sched), 1);
	for (size_t i = 0; i < q->nagents; i++)
		q->agents[i].retire = 1;
	/* Busy agents have their own copies (fork): the contexts can go. */
	deliver_tls_free(&q->tls);
	deliver_tls_new(q->cfg, &q->tls);
	log_info("event=reloaded domains=%zu", q->cfg->ndomains);
}

/* Wait for the notification pipe, the queue-control socket, an agent's
 * answer, or timeout_ms; then serve what is ready. */
static void
qmgr_wait(struct qmgr *q, int timeout_ms)
{
	size_t n = q->nagents, nl = qmgr_queue_pollfds(q, NULL);
	struct pollfd *p = xcalloc(n + 2 + nl, sizeof(*p));
	pid_t *pids = xcalloc(n + 1, sizeof(*pids));
	p[0] = (struct pollfd){ q->notify_fd, POLLIN, 0 };
	p[1] = (struct pollfd){ q->qctl_fd, POLLIN, 0 };
	for (size_t i = 0; i < n; i++) {
		p[i + 2] = (struct pollfd){ q->agents[i].fd, POLLIN, 0 };
		pids[i] = q->agents[i].pid;
	}
	qmgr_queue_pollfds(q, p + n + 2);	/* listings being sent: POLLOUT */
	if (poll(p, n + 2 + nl, timeout_ms) > 0) {
		if (p[0].revents & POLLIN)
			qmgr_read_pipe(q);
		/* Agents by pid: answering one may remove another from the array. */
		for (size_t k = 0; k < n; k++) {
			if (p[k + 2].revents == 0)
				continue;
			for (size_t i = 0; i < q->nagents; i++)
				if (q->agents[i].pid == pids[k]) {
					qmgr_agent_read(q, i);
					break;
				}
		}
		if (p[1].revents & POLLIN) {
			qmgr_read_pipe(q);	/* what was just queued is listed */
			qmgr_queue_serve(q);
		}
	}
	qmgr_queue_stream(q);
	free(p);
	free(pids);
}

/* Start what is due, up to QMGR_ACTIVE_MAX messages in flight. */
static void
qmgr_start_due(struct qmgr *q)
{
	struct qmgr_msg *m;
	while (q->active_msgs < QMGR_ACTIVE_MAX && (m = qmgr_sched_take_due(q->sched)) != NULL)
		qmgr_attempt_start(q, m);
}

struct qmgr_jobs {
	struct qmgr_job	**v;
	size_t		  n, cap;
};

static int
qmgr_take_job(void *job, void *arg)
{
	struct qmgr_jobs *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = job;
	return 1;
}

/* Stopping: the jobs no agent has started yet are deferred now, so every
 * message's attempt can end - and record what its other jobs delivered -
 * once its running jobs have answered. They are due at once for the next
 * scheduler. */
static void
qmgr_cut_queued(struct qmgr *q)
{
	struct qmgr_jobs l = { NULL, 0, 0 };
	qmgr_sched_job_filter(q->sched, qmgr_take_job, &l);
	for (size_t k = 0; k < l.n; k++) {
		struct qmgr_job *jr = l.v[k];
		if (jr->m != NULL) {
			qmgr_job_defer(q, jr, "451 4.3.0 not tried: mxd is stopping");
			((struct qmgr_attempt *)jr->m->owner)->cut_short = 1;
		}
		qmgr_job_settle(q, jr);
	}
	free(l.v);
}

/* SIGTERM: no new jobs; the answers of those running are awaited (and
 * recorded) for a while, then the agents are killed: their messages are
 * due at once for the next scheduler (no backoff: the stop, not the
 * destination, cut them short). */
static void
qmgr_shutdown(struct qmgr *q)
{
	/* Half the master's patience (limits.shutdown_timeout), so the
	 * results are recorded before it kills us. */
	int grace = q->cfg->shutdown_timeout / 2;
	uint64_t end = timeutil_mono_ms() +
	    (uint64_t)(grace < QMGR_STOP_GRACE_SEC ? grace : QMGR_STOP_GRACE_SEC) * 1000;
	q->stopping = 1;
	qmgr_cut_queued(q);
	for (;;) {
		size_t busy = 0;
		for (size_t i = 0; i < q->nagents; i++)
			busy += q->agents[i].job != NULL;
		if (busy == 0 || timeutil_mono_ms() >= end)
			break;
		qmgr_wait(q, 200);
	}
	while (q->nagents > 0)
		qmgr_agent_lost(q, q->nagents - 1, "mxd is stopping");
}

static int
qmgr_forget_job(void *job, void *arg)
{
	(void)arg;
	free(job);
	return 1;
}

static void
qmgr_forget_attempt(struct qmgr_msg *m, void *arg)
{
	(void)arg;
	if (m->owner != NULL)
		qmgr_attempt_free(m->owner);
	m->owner = NULL;
}

/* Exiting: the jobs still queued at their destinations and the attempts
 * they belong to are dropped unrecorded (the spool files keep their last
 * state: the next scheduler starts them again). */
static void
qmgr_forget_all(struct qmgr *q)
{
	qmgr_sched_job_filter(q->sched, qmgr_forget_job, NULL);
	qmgr_sched_foreach(q->sched, qmgr_forget_attempt, NULL);
}

void
qmgr_main(struct mxd_config *cfg, struct spool *sp, int notify_fd,
    const struct outcome_sink *outcomes)
{
	struct qmgr q;
	char err[256];
	int64_t last_scan = 0, last_sts_refresh = 0, last_sweep = 0;

	memset(&q, 0, sizeof(q));
	q.cfg = q.cfg_orig = cfg;
	q.sp = sp;
	q.notify_fd = notify_fd;
	q.outcomes = *outcomes;
	deliver_tls_new(cfg, &q.tls);
	struct qmgr_limits lim;
	qmgr_limits(cfg, &lim);
	if (qmgr_sched_new(&lim, NULL, NULL, &q.sched, err, sizeof(err)) < 0)
		fatalx("event=config_error error=\"%s\"", err);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = qmgr_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	fcntl(notify_fd, F_SETFL, O_NONBLOCK);
	/* After the privilege drop: the socket belongs to mxd's user. */
	qmgr_queue_open(&q);

	log_info("event=delivery_started process=qmgr");
	while (!qmgr_stop) {
		int64_t now = qmgr_sched_now(q.sched);
		if (qmgr_reload) {
			qmgr_reload = 0;
			qmgr_reload_config(&q);
		}
		qmgr_reap(&q);
		qmgr_read_pipe(&q);
		if (now - last_scan >= QMGR_RESCAN_SEC) {
			spool_scan(sp, qmgr_add_stored, &q);
			last_scan = now;
		}
		if (q.cfg->resolver != NULL && now - last_sts_refresh >= q.cfg->sts_refresh_interval) {
			qmgr_sts_refresh(&q, now);
			last_sts_refresh = now;
		}
		qmgr_start_due(&q);
		qmgr_dispatch(&q);
		qmgr_agents_retire(&q, now, 0);
		if (now != last_sweep) {	/* once a second */
			qmgr_agents_watch(&q, (int64_t)time(NULL));
			qmgr_sched_sweep(q.sched);
			last_sweep = now;
		}
		/* Sleep until something arrives, the next due message, or a
		 * second (rescans, idle agents, dead destinations coming back). */
		int64_t next = qmgr_sched_next_due(q.sched);
		long wait_ms = 1000;
		if (q.active_msgs < QMGR_ACTIVE_MAX && next <= now)
			wait_ms = 0;
		else if (q.active_msgs < QMGR_ACTIVE_MAX && next - now < 1)
			wait_ms = 1000;
		if (qmgr_stop)
			break;
		qmgr_wait(&q, (int)wait_ms);
	}
	qmgr_shutdown(&q);
	qmgr_forget_all(&q);
	qmgr_queue_close(&q);
	log_info("event=delivery_stopped queued=%zu", qmgr_sched_count(q.sched));
	qmgr_sched_free(q.sched);
	deliver_tls_free(&q.tls);
	free(q.agents);
	if (q.cfg != cfg)
		mxd_config_free(q.cfg);	/* a reloaded copy of our own */
	exit(0);
}
