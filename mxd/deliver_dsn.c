/* The delivery process's notifications to senders (RFC 3464 DSNs). */
#include "deliver_int.h"
#include "dsn.h"
#include "log.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
deliver_bounce(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, enum rcpt_result which, int delayed)
{
	struct dsn_rcpt *dr = xcalloc(env->nrcpts, sizeof(*dr));
	char (*status)[16] = xcalloc(env->nrcpts, sizeof(*status));
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		if (st[i].result != which)
			continue;
		dsn_status_from_reply(st[i].reply, st[i].code ? st[i].code : (delayed ? 400 : 500),
		    status[n], sizeof(status[n]));
		if (!delayed && status[n][0] == '4')
			snprintf(status[n], sizeof(status[n]), "4.4.7");
		dr[n].rcpt = env->rcpts[i];
		dr[n].status = status[n];
		dr[n].remote_mta = st[i].code ? st[i].mta : NULL;
		dr[n].reply = st[i].reply;
		dr[n].delayed = delayed;
		n++;
	}
	if (n == 0)
		goto out;
	if (env->from[0] == '\0') {
		/* RFC 3464/5321: never a DSN about a DSN. */
		log_info("event=dsn_suppressed id=%s reason=null_sender", env->id);
		goto out;
	}
	struct buf msg;
	buf_init(&msg);
	dsn_build(&msg, d->cfg->hostname, env, dr, n, fd, off);
	struct spool_env denv;
	memset(&denv, 0, sizeof(denv));
	denv.from = xstrdup("");
	denv.created = time(NULL);
	denv.size = msg.len;
	spool_env_add_rcpt(&denv, env->from);
	if (spool_inject(d->sp, &denv, msg.data, msg.len) < 0)
		log_warn("event=dsn_failed id=%s", env->id);
	else {
		log_info("event=dsn id=%s dsn_id=%s to=<%s> kind=%s rcpts=%zu", env->id, denv.id,
		    env->from, delayed ? "delay" : "failure", n);
		deliver_add(denv.id, d);
	}
	spool_env_free(&denv);
	buf_free(&msg);
out:
	free(status);
	free(dr);
}
