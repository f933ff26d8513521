/* For the cmocka tests of this folder, run under "dnstest run": drive the
 * running setup (DNSTEST and DNSTEST_DIR in the environment). Include after
 * cmocka.h. */
#ifndef TESTS_DNSTEST_CMD_H
#define TESTS_DNSTEST_CMD_H

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

/* "dnstest CMD DIR ARG..." (args NULL-terminated, or NULL); asserts success.
 * Its standard output (unbound-control's "ok removed ...") is not for the
 * test log. */
static void
dnstest(const char *cmd, const char *const *args)
{
	const char *tool = getenv("DNSTEST"), *dir = getenv("DNSTEST_DIR");
	char *argv[64];
	int n = 0, status;
	pid_t pid;

	assert_non_null(tool);
	assert_non_null(dir);
	argv[n++] = (char *)tool;
	argv[n++] = (char *)cmd;
	argv[n++] = (char *)dir;
	for (; args && *args && n < 63; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	assert_int_equal(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#endif
