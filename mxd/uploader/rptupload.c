/* mxd: received TLS report mails to controld (rptupload.h). */
#include "rptupload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mxfleet.pb-c.h"
#include "rptspool.h"
#include "xmalloc.h"

#define RPTUPLOAD_TIMEOUT_MS	60000

struct rptupload {
	struct grpc_client	*cl;
	struct event		*timer;
	char			 dir[4096];
	char			*host_id;
	struct grpc_call	*call;		/* in flight */
	char			 name[RPTSPOOL_NAME_MAX];
	int			 acked;
};

/* The oldest file waiting (names start with the spool id: time first). */
static int
rptupload_next(DIR *d, char *name, size_t sz)
{
	struct dirent *e;

	name[0] = '\0';
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= sz)
			continue;
		if (name[0] == '\0' || strcmp(e->d_name, name) < 0)
			snprintf(name, sz, "%s", e->d_name);
	}
	return name[0] != '\0';
}

static void rptupload_set_aside_name(struct rptupload *r, const char *prefix,
    const char *why);

static void
rptupload_ack_cb(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	struct rptupload *r = arg;
	Mxfleet__V1__ReceivedReportAck *a = mxfleet__v1__received_report_ack__unpack(NULL, len,
	    msg);
	char q[LOG_QUOTE_SIZE(200)];
	int dirfd;

	if (a == NULL) {
		log_warnx("event=tlsrpt_ack_unreadable id=%s", r->name);
		return;
	}
	/* Stored by controld: ours can go. */
	if ((dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (unlinkat(dirfd, r->name, 0) < 0 || fsync(dirfd) < 0)
			log_warn("event=tlsrpt_unlink_failed id=%s", r->name);
		close(dirfd);
	}
	r->acked = 1;
	log_info("event=tlsrpt_submitted id=%s report=%" PRIu64 " duplicate=%d refused=%d%s%s",
	    r->name, a->report, (int)a->duplicate, (int)a->refused, a->refused ? " reason=" : "",
	    a->refused ? log_quote(q, sizeof(q), a->reason, strlen(a->reason), 200) : "");
	mxfleet__v1__received_report_ack__free_unpacked(a, NULL);
}

static void
rptupload_closed_cb(struct grpc_call *c, int status, const char *message, void *arg)
{
	struct rptupload *r = arg;
	struct timeval now = { 0, 0 };

	if (c != r->call)
		return;
	r->call = NULL;
	if (!r->acked && (status == GRPC_RESOURCE_EXHAUSTED || status == GRPC_INVALID_ARGUMENT)) {
		/* controld will never take this one (over its max_message, or
		 * malformed): out of the way, so the later ones are not held. */
		rptupload_set_aside_name(r, ".refused-", message);
		evtimer_add(r->timer, &now);
		return;
	}
	if (status != GRPC_OK || !r->acked) {
		log_warnx("event=tlsrpt_submit_failed id=%s status=%s message=\"%s\" action=retry",
		    r->name, grpc_status_name(status), message);
		return;	/* the timer tries again */
	}
	evtimer_add(r->timer, &now);	/* the next one */
}

/* A file that is not ours (.bad-<name>), or that controld refuses
 * (.refused-<name>), is moved out of the way for an operator, once. */
static void
rptupload_set_aside(struct rptupload *r, int dirfd, const char *prefix, const char *why)
{
	char aside[RPTSPOOL_NAME_MAX + 16], q[LOG_QUOTE_SIZE(200)];

	snprintf(aside, sizeof(aside), "%s%s", prefix, r->name);
	log_error("event=tlsrpt_set_aside dir=%s id=%s error=%s file=%s", r->dir, r->name,
	    log_quote(q, sizeof(q), why, strlen(why), 200), aside);
	if (renameat(dirfd, r->name, dirfd, aside) < 0)
		unlinkat(dirfd, r->name, 0);
}

static void
rptupload_set_aside_name(struct rptupload *r, const char *prefix, const char *why)
{
	int dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dirfd < 0)
		return;
	rptupload_set_aside(r, dirfd, prefix, why);
	close(dirfd);
}

static void
rptupload_send(struct rptupload *r, int dirfd)
{
	Mxfleet__V1__ReceivedReportMail m = MXFLEET__V1__RECEIVED_REPORT_MAIL__INIT;
	struct rptspool_mail f;
	char err[300];
	uint8_t *buf;
	size_t n;

	if (rptspool_read(dirfd, r->name, &f, err, sizeof(err)) < 0) {
		rptupload_set_aside(r, dirfd, ".bad-", err);
		return;
	}
	m.host_id = r->host_id;
	m.id = r->name;
	m.message.data = (uint8_t *)f.msg;
	m.message.len = f.len;
	m.received_unix = f.received;
	m.mail_from = f.from;
	m.recipient = f.rcpt;
	r->acked = 0;
	r->call = grpc_client_call(r->cl, "/mxfleet.v1.Collector/SubmitReport",
	    RPTUPLOAD_TIMEOUT_MS, rptupload_ack_cb, rptupload_closed_cb, r);
	if (r->call != NULL) {
		n = mxfleet__v1__received_report_mail__get_packed_size(&m);
		buf = xmalloc(n ? n : 1);
		mxfleet__v1__received_report_mail__pack(&m, buf);
		grpc_call_send(r->call, buf, n);
		grpc_call_close_send(r->call);
		free(buf);
	}
	rptspool_mail_free(&f);
}

void
rptupload_kick(struct rptupload *r)
{
	DIR *d;
	int dirfd;

	if (r == NULL || r->call != NULL || !grpc_client_ready(r->cl))
		return;
	if ((dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			log_warn("event=tlsrpt_dir_unreadable dir=%s", r->dir);
		return;
	}
	if ((d = fdopendir(dup(dirfd))) == NULL) {
		close(dirfd);
		return;
	}
	if (rptupload_next(d, r->name, sizeof(r->name)))
		rptupload_send(r, dirfd);
	closedir(d);
	close(dirfd);
}

static void
rptupload_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rptupload *r = arg;
	struct timeval tv = { RPTUPLOAD_SCAN_MS / 1000, (RPTUPLOAD_SCAN_MS % 1000) * 1000 };

	rptupload_kick(r);
	evtimer_add(r->timer, &tv);
}

struct rptupload *
rptupload_new(struct event_base *base, struct grpc_client *cl, const char *spool_dir,
    const char *host_id)
{
	struct rptupload *r = xcalloc(1, sizeof(*r));
	struct timeval tv = { RPTUPLOAD_SCAN_MS / 1000, (RPTUPLOAD_SCAN_MS % 1000) * 1000 };

	r->cl = cl;
	r->host_id = xstrdup(host_id);
	snprintf(r->dir, sizeof(r->dir), "%s/%s", spool_dir, RPTSPOOL_DIR);
	r->timer = evtimer_new(base, rptupload_timer_cb, r);
	evtimer_add(r->timer, &tv);
	return r;
}

void
rptupload_free(struct rptupload *r)
{
	if (r == NULL)
		return;
	if (r->call)
		grpc_call_cancel(r->call);
	event_free(r->timer);
	free(r->host_id);
	free(r);
}
