/* What systemd receives from a Type=notify service (lib/sdnotify.c): the
 * state as one datagram on $NOTIFY_SOCKET, a path or an abstract name;
 * nothing at all without NOTIFY_SOCKET; a clear failure for a name that
 * cannot be a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sdnotify.h"

/* A socket systemd would listen on: bound to name ('@' abstract). */
static int
listener(const char *name)
{
	struct sockaddr_un sa;
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (name[0] == '/'))), 0);
	return fd;
}

static void
assert_received(int fd, const char *want)
{
	char buf[256];
	ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(r >= 0);
	buf[r] = '\0';
	assert_string_equal(buf, want);
}

static void
test_state_arrives_as_one_datagram_on_a_path_socket(void **state)
{
	char dir[] = "/tmp/sdnotify.XXXXXX", path[128];
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	int fd = listener(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify("READY=1\nSTATUS=listening on 127.0.0.1:25"), 1);
	assert_received(fd, "READY=1\nSTATUS=listening on 127.0.0.1:25");
	assert_int_equal(sdnotify_reloading(), 1);
	char buf[128];
	ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(r > 0);
	buf[r] = '\0';
	assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_true(strtoull(buf + 27, NULL, 10) > 0);
	close(fd);
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_abstract_socket_name(void **state)
{
	char name[64];
	(void)state;

	snprintf(name, sizeof(name), "@mxfleet-sdnotify-test-%ld", (long)getpid());
	int fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdnotify("STOPPING=1"), 1);
	assert_received(fd, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_without_notify_socket_nothing_is_sent(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sdnotify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_unusable_socket_names_fail(void **state)
{
	char longname[200];
	(void)state;

	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(sdnotify("READY=1"), -1);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(sdnotify("READY=1"), -1);
	/* Nobody listens there. */
	setenv("NOTIFY_SOCKET", "/nonexistent/mxfleet/notify", 1);
	assert_int_equal(sdnotify("READY=1"), -1);
	unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_arrives_as_one_datagram_on_a_path_socket),
		cmocka_unit_test(test_abstract_socket_name),
		cmocka_unit_test(test_without_notify_socket_nothing_is_sent),
		cmocka_unit_test(test_unusable_socket_names_fail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
