/* A spool in a fresh directory under /tmp for each test, removed after it;
 * shared by test_spool.c and test_spool_faults.c. Include after cmocka.h. */
#ifndef TEST_SPOOL_FIXTURE_H
#define TEST_SPOOL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

struct fixture {
	char		 dir[64];
	struct spool	*sp;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	snprintf(f->dir, sizeof(f->dir), "/tmp/mxd-spool-test.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	strcat(f->dir, "/spool");
	if (spool_open(&f->sp, f->dir, (uid_t)-1, (gid_t)-1, err, sizeof(err)) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];
	spool_free(f->sp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(f->dir) - 6), f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
count_cb(const char *id, void *arg)
{
	(*(int *)arg)++;
}

#endif
