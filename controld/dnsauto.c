/* controld: automatic DNS pushes (dnsauto.h). */
#include "dnsauto.h"

#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "controld.h"
#include "db_dnspush.h"
#include "dnsops.h"
#include "log.h"

static struct event *dnsauto_ev;
static int dnsauto_busy;
static const struct dnsops_config *dnsauto_conf;	/* read-only for the process */

/* On a DNS worker: each publishing domain in turn, under the lock. */
static int
dnsauto_work(struct db *db, struct dbq_job *qj)
{
	char **domains, why[1024], q[LOG_QUOTE_SIZE(300)];
	size_t n, changed;
	int got, rc;

	(void)qj;
	if ((rc = db_dnspush_auto_begin(db, &got, &domains, &n)) != DB_OK || !got)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (dnsops_push_domain(db, dnsauto_conf, domains[i], &changed, why,
		    sizeof(why)) < 0)
			log_warnx("event=dns_auto_push_failed domain=%s error=%s", domains[i],
			    log_quote(q, sizeof(q), why, strlen(why), 300));
		else if (changed > 0)
			log_info("event=dns_auto_push domain=%s changed=%zu", domains[i], changed);
		free(domains[i]);
	}
	free(domains);
	db_dnspush_auto_end(db);
	return DB_OK;
}

static void
dnsauto_done(struct dbq_job *qj)
{
	dnsauto_busy = 0;
	call_job_free((struct call_job *)qj);
}

/* A round still running (a slow primary) makes the next tick skip. */
static void
dnsauto_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (dnsauto_busy)
		return;
	struct call_job *j = call_bg_job_new(dnsauto_work, dnsauto_done);
	if (dbq_submit(C->dnsq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	dnsauto_busy = 1;
}

void
dnsauto_start(struct event_base *base)
{
	if (C->cfg.dns.auto_push_interval <= 0)
		return;
	struct timeval tv = { (time_t)C->cfg.dns.auto_push_interval, 0 };
	dnsauto_conf = &C->cfg.dns;
	dnsauto_ev = event_new(base, -1, EV_PERSIST, dnsauto_tick, NULL);
	event_add(dnsauto_ev, &tv);
}

void
dnsauto_stop(void)
{
	if (dnsauto_ev)
		event_free(dnsauto_ev);
	dnsauto_ev = NULL;
}
