/* The scheduler's notifications to senders (RFC 3464 DSNs), as the
 * sender's RFC 3461 parameters ask: NOTIFY picks which ones, RET how much of
 * the message comes back, ENVID and ORCPT are quoted. The DSN is put in the
 * spool; the caller adds its id (dsn_id) to the queue. */
#include "qmgr_dsn.h"
#include "dsn.h"
#include "log.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const qmgr_dsn_kinds[] = {
	[DSN_ACTION_FAILED] = "failure", [DSN_ACTION_DELAYED] = "delay",
	[DSN_ACTION_DELIVERED] = "success", [DSN_ACTION_RELAYED] = "success",
};

/* Build the DSN for dr[0..n) and put it in the queue, to the sender; -1
 * when it could not be queued. */
static int
qmgr_dsn_queue(const struct qmgr_dsn_ctx *d, const struct spool_env *env, int fd, off_t off,
    const struct dsn_rcpt *dr, size_t n)
{
	const char *kind = qmgr_dsn_kinds[dr[0].action];

	if (env->from[0] == '\0') {
		/* RFC 3464/5321: never a DSN about a DSN. */
		log_info("event=dsn_suppressed id=%s reason=null_sender kind=%s", env->id, kind);
		return 0;
	}
	struct buf msg;
	buf_init(&msg);
	dsn_build(&msg, d->hostname, env, dr, n, fd, off);
	struct spool_env denv;
	memset(&denv, 0, sizeof(denv));
	denv.from = xstrdup("");
	denv.created = time(NULL);
	denv.size = msg.len;
	/* A returned 8-bit original makes the report 8-bit too, and so does
	 * the UTF-8 text an SMTPUTF8 notice may quote (dsn_build). */
	denv.body8bit = env->body8bit || env->smtputf8;
	/* A UTF-8 sender, or UTF-8 headers returned as message/global*. */
	denv.smtputf8 = env->smtputf8;
	spool_env_add_rcpt(&denv, env->from);
	int rc = spool_inject(d->sp, &denv, msg.data, msg.len);
	if (rc < 0)
		log_warn("event=dsn_failed id=%s kind=%s", env->id, kind);
	else {
		log_info("event=dsn id=%s dsn_id=%s to=<%s> kind=%s rcpts=%zu", env->id, denv.id,
		    env->from, kind, n);
		snprintf(d->dsn_id, SPOOL_ID_MAX, "%s", denv.id);
	}
	spool_env_free(&denv);
	buf_free(&msg);
	return rc;
}

int
qmgr_dsn_bounce(const struct qmgr_dsn_ctx *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, enum rcpt_result which, int delayed)
{
	enum dsn_action kind = delayed ? DSN_ACTION_DELAYED : DSN_ACTION_FAILED;
	struct dsn_rcpt *dr = xcalloc(env->nrcpts, sizeof(*dr));
	char (*status)[16] = xcalloc(env->nrcpts, sizeof(*status));
	size_t n = 0, unwanted = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		if (st[i].result != which)
			continue;
		if (!dsn_wanted(env, i, kind)) {
			unwanted++;
			continue;
		}
		dsn_status_from_reply(st[i].reply, st[i].code ? st[i].code : (delayed ? 400 : 500),
		    status[n], sizeof(status[n]));
		if (!delayed && status[n][0] == '4')
			snprintf(status[n], sizeof(status[n]), "4.4.7");
		dr[n].rcpt = env->rcpts[i];
		dr[n].status = status[n];
		dr[n].remote_mta = st[i].code ? st[i].mta : NULL;
		dr[n].reply = st[i].reply;
		dr[n].action = kind;
		dr[n].orcpt = spool_env_orcpt(env, i);
		n++;
	}
	if (unwanted)
		log_info("event=dsn_suppressed id=%s reason=notify kind=%s rcpts=%zu", env->id,
		    qmgr_dsn_kinds[kind], unwanted);
	int rc = n > 0 ? qmgr_dsn_queue(d, env, fd, off, dr, n) : 0;
	free(status);
	free(dr);
	return rc;
}

void
qmgr_dsn_success(const struct qmgr_dsn_ctx *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st)
{
	struct dsn_rcpt *dr = xcalloc(env->nrcpts, sizeof(*dr));
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		/* A next hop that took our NOTIFY is the one to tell the sender. */
		if (st[i].result != RCPT_DONE || st[i].dsn_passed ||
		    !dsn_wanted(env, i, DSN_ACTION_DELIVERED))
			continue;
		dr[n].rcpt = env->rcpts[i];
		dr[n].status = "2.0.0";
		dr[n].remote_mta = st[i].code ? st[i].mta : NULL;
		dr[n].reply = st[i].reply;
		/* RFC 3461 5.2.2: past a next hop without DSN we can only say
		 * "relayed"; LMTP is the final delivery. */
		dr[n].action = st[i].lmtp ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED;
		dr[n].orcpt = spool_env_orcpt(env, i);
		n++;
	}
	if (n > 0)
		qmgr_dsn_queue(d, env, fd, off, dr, n);
	free(dr);
}
