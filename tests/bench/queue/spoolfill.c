/* spoolfill: write N queued messages into an mxd spool, fast, through the
 * spool API (the files are exactly what mxd writes), for the 100,000-message
 * queue test and benchmark (tests/bench/queue, tests/integration/delivery/
 * test_queue_100k.py). Run it while no mxd uses the spool.
 *
 *   spoolfill -d SPOOL_DIR -n N [-u UID -g GID] [-t RCPT] [-f FROM]
 *             [-a ATTEMPTS] [-D DUE_IN_SEC] [-s BODY_BYTES] [-S] [-T TAG]
 *
 * The messages are deferred ones: ATTEMPTS attempts made (default 1), the
 * next one DUE_IN_SEC seconds from now (default 3600; 0: due at once).
 * Each one's header says "X-Test-Id: TAG<n>" (n from 0; TAG "fill"), what
 * the tests' sinks identify mail by. Unlike mxd there is no fsync per
 * file (spool_inject_unsynced): one syncfs(2) at the end, or spool_inject's
 * fsyncs with -S. With -u and -g (as root) it creates the spool's
 * directories for that user and writes the files as that user. stdout
 * gets "QUEUE_ID TAG<n>" per message, stderr the
 * time taken to stderr. Exit 0 when all N were written. */
#include "spool.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
usage(void)
{
	fprintf(stderr, "usage: spoolfill -d SPOOL_DIR -n N [-u UID -g GID] [-t RCPT] [-f FROM] "
	    "[-a ATTEMPTS] [-D DUE_IN_SEC] [-s BODY_BYTES] [-S] [-T TAG]\n");
	exit(2);
}

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	const char *dir = NULL, *rcpt = "rcpt@example.net", *from = "sender@example.org";
	const char *tag = "fill";
	long n = -1, attempts = 1, due_in = 3600, body_size = 1024;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int do_fsync = 0, c;
	char err[256];

	while ((c = getopt(argc, argv, "d:n:u:g:t:f:a:D:s:ST:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': n = atol(optarg); break;
		case 'u': uid = (uid_t)atol(optarg); break;
		case 'g': gid = (gid_t)atol(optarg); break;
		case 't': rcpt = optarg; break;
		case 'f': from = optarg; break;
		case 'a': attempts = atol(optarg); break;
		case 'D': due_in = atol(optarg); break;
		case 's': body_size = atol(optarg); break;
		case 'S': do_fsync = 1; break;
		case 'T': tag = optarg; break;
		default: usage();
		}
	}
	if (dir == NULL || n < 0 || attempts < 0 || due_in < 0 || body_size < 0 ||
	    body_size > 100000000 || strlen(from) > 250 || strlen(rcpt) > 250 || strlen(tag) > 50 || optind != argc)
		usage();

	struct spool *sp;
	if (spool_open(&sp, dir, uid, gid, err, sizeof(err)) < 0) {
		fprintf(stderr, "spoolfill: %s: %s\n", dir, err);
		return 1;
	}
	/* The files belong to the user mxd runs as (-u, -g): it must read,
	 * rewrite and remove them. */
	if (gid != (gid_t)-1 && setgid(gid) < 0) {
		fprintf(stderr, "spoolfill: setgid: %s\n", strerror(errno));
		return 1;
	}
	if (uid != (uid_t)-1 && setuid(uid) < 0) {
		fprintf(stderr, "spoolfill: setuid: %s\n", strerror(errno));
		return 1;
	}
	/* A header naming the message (X-Test-Id, what the tests' sinks look
	 * for), then lines of 70 bytes, CRLF, nothing to dot-stuff. */
	char *msg = xmalloc(600 + (size_t)body_size + 72), *text = msg + 600;
	size_t len = 0;
	while (len < (size_t)body_size) {
		memset(text + len, 'x', 70);
		memcpy(text + len + 70, "\r\n", 2);
		len += 72;
	}

	time_t now = time(NULL);
	double t0 = mono();
	for (long i = 0; i < n; i++) {
		struct spool_env env;
		memset(&env, 0, sizeof(env));
		env.created = now;
		env.from = xstrdup(from);
		spool_env_add_rcpt(&env, rcpt);
				env.attempts = (int)attempts;
		env.next_attempt = due_in > 0 ? now + due_in : 0;
		char head[600];	/* right before the text */
		int hl = snprintf(head, sizeof(head), "From: <%s>\r\nTo: <%s>\r\nSubject: "
		    "queued\r\nX-Test-Id: %s%ld\r\n\r\n", from, rcpt, tag, i);
		memcpy(text - hl, head, (size_t)hl);
		int rc = do_fsync ? spool_inject(sp, &env, text - hl, (size_t)hl + len) :
		    spool_inject_unsynced(sp, &env, text - hl, (size_t)hl + len);
		if (rc < 0) {
			fprintf(stderr, "spoolfill: message %ld: %s\n", i + 1, strerror(errno));
			return 1;
		}
		printf("%s %s%ld\n", env.id, tag, i);
		spool_env_free(&env);
	}
	if (!do_fsync && syncfs(spool_queue_fd(sp)) < 0) {
		fprintf(stderr, "spoolfill: syncfs: %s\n", strerror(errno));
		return 1;
	}
	if (spool_sync_queue(sp) < 0)
		return 1;
	fprintf(stderr, "spoolfill: %ld messages in %.2f s\n", n, mono() - t0);
	free(msg);
	spool_free(sp);
	return fflush(stdout) == 0 ? 0 : 1;
}
