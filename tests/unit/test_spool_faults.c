/* The spool when the disk fails: a directory fsync that fails after the
 * rename, a file fsync that reports ENOSPC, a write that fails half-way
 * (ENOSPC) and a pwrite in place that comes back short. fsync, fdatasync,
 * write and pwrite are wrapped at link time
 * (-Wl,--wrap), so the faults are injected into the real code paths without
 * a hook in mxd: a failing directory fsync can not be caused on demand on a
 * real filesystem. The full disk itself is exercised
 * end to end by tests/integration/hardening/test_full_disk.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "spool_commit.h"
#include "test_spool_fixture.h"

/* ---- injected faults */

static int fail_dir_fsync;	/* fsync of a directory fails with EIO */
static int fail_file_write;	/* write to a regular file fails with ENOSPC */
static int fail_file_sync;	/* fdatasync fails with ENOSPC (as on btrfs, NFS) */
static int short_pwrite;	/* pwrite writes one byte less, errno untouched */
static struct spool *rescan_sp;	/* rescanned from inside a failing fsync */
static int rescan_seen;

int __real_fsync(int fd);
ssize_t __real_write(int fd, const void *p, size_t n);
int __wrap_fsync(int fd);
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
ssize_t __wrap_write(int fd, const void *p, size_t n);
ssize_t __real_pwrite(int fd, const void *p, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *p, size_t n, off_t off);

int
__wrap_fsync(int fd)
{
	struct stat st;
	if (fail_dir_fsync && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* The delivery process's periodic rescan may run while the
		 * disk takes its time to fail: what would it find? */
		if (rescan_sp)
			spool_scan(rescan_sp, count_cb, &rescan_seen);
		errno = EIO;
		return -1;
	}
	return __real_fsync(fd);
}

int
__wrap_fdatasync(int fd)
{
	if (fail_file_sync) {
		errno = ENOSPC;
		return -1;
	}
	return __real_fdatasync(fd);
}

ssize_t
__wrap_write(int fd, const void *p, size_t n)
{
	struct stat st;
	if (fail_file_write && fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		errno = ENOSPC;
		return -1;
	}
	return __real_write(fd, p, n);
}

/* A short count is success to the kernel: errno keeps whatever an earlier
 * call left in it, which is what the caller must not report. */
ssize_t
__wrap_pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (short_pwrite && n > 0) {
		ssize_t r = __real_pwrite(fd, p, n - 1, off);
		errno = EAGAIN;
		return r;
	}
	return __real_pwrite(fd, p, n, off);
}

static int
setup_faults(void **state)
{
	fail_dir_fsync = fail_file_write = fail_file_sync = short_pwrite = 0;
	rescan_sp = NULL;
	rescan_seen = 0;
	return setup(state);
}

static void
make_env(struct spool_env *env)
{
	memset(env, 0, sizeof(*env));
	spool_new_id(env->id, sizeof(env->id));
	env->created = 1700000000;
	env->from = strdup("sender@example.org");
	spool_env_add_rcpt(env, "a@example.test");
}

/* Every name in dir/sub, dot names included, as "a b c". */
static void
list_dir(const struct fixture *f, const char *sub, char *out, size_t outsz)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	DIR *d = opendir(path);
	assert_non_null(d);
	out[0] = '\0';
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		size_t l = strlen(out);
		snprintf(out + l, outsz - l, "%s%s", l ? " " : "", de->d_name);
	}
	closedir(d);
}

/* m failed with err (errno and sticky); aborting it leaves no file. */
static void
assert_failed_with_no_file(struct fixture *f, struct spool_msg *m, int err)
{
	char names[512];

	assert_int_equal(errno, err);
	assert_int_equal(spool_msg_error(m), err);
	spool_msg_abort(m);
	list_dir(f, "tmp", names, sizeof(names));
	assert_string_equal(names, "");
}

struct outcome {
	int	 calls;
	int	 error;
	char	 id[SPOOL_ID_MAX];
};

static void
outcome_cb(void *arg, int error, const char *id)
{
	struct outcome *o = arg;
	o->calls++;
	o->error = error;
	snprintf(o->id, sizeof(o->id), "%s", id);
}

/* One message through the group committer; its outcome. */
static void
commit_one(struct fixture *f, struct spool_committer *c, struct outcome *o)
{
	struct spool_env env;
	struct spool_msg *m;

	memset(o, 0, sizeof(*o));
	make_env(&env);
	assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
	assert_int_equal(spool_msg_write(m, "Subject: x\r\n\r\nbody\r\n", 20), 0);
	assert_int_equal(spool_msg_finish(m), 0);
	spool_commit(c, m, outcome_cb, o);
	for (int tries = 0; o->calls == 0 && tries < 1000; tries++) {
		usleep(10000);
		spool_committer_dispatch(c);
	}
	assert_int_equal(o->calls, 1);
	spool_env_free(&env);
}

/* ---- tests */

static void
test_failed_dir_fsync_refuses_and_the_message_is_never_delivered(void **state)
{
	struct fixture *f = *state;
	struct spool_committer *c;
	struct outcome o;
	char names[512], line[64];
	int pipefd[2], n = 0;

	assert_int_equal(pipe2(pipefd, O_NONBLOCK), 0);
	assert_int_equal(spool_committer_new(f->sp, pipefd[1], &c), 0);
	fail_dir_fsync = 1;
	rescan_sp = f->sp;
	commit_one(f, c, &o);
	fail_dir_fsync = 0;
	rescan_sp = NULL;

	/* The session says 451 4.3.0 ... */
	assert_int_equal(o.error, EIO);
	/* ... and nothing could deliver it: not a rescan during the fsync,
	 * not one after, not the pipe, not a restart. */
	assert_int_equal(rescan_seen, 0);
	assert_int_equal(spool_scan(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(read(pipefd[0], line, sizeof(line)), -1);
	list_dir(f, "queue", names, sizeof(names));
	assert_string_equal(names, "");
	list_dir(f, "tmp", names, sizeof(names));
	assert_string_equal(names, "");
	assert_int_equal(spool_recover(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 0);

	/* The disk is well again: the next message is queued and announced. */
	commit_one(f, c, &o);
	assert_int_equal(o.error, 0);
	list_dir(f, "queue", names, sizeof(names));
	assert_string_equal(names, o.id);
	ssize_t r = read(pipefd[0], line, sizeof(line));
	assert_int_equal(r, (ssize_t)strlen(o.id) + 1);
	assert_memory_equal(line, o.id, strlen(o.id));
	spool_committer_free(c);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void
test_no_space_at_fsync_is_reported_and_the_partial_file_removed(void **state)
{
	struct fixture *f = *state;
	struct spool_committer *c;
	struct outcome o;
	char names[512];

	assert_int_equal(spool_committer_new(f->sp, -1, &c), 0);
	fail_file_sync = 1;
	commit_one(f, c, &o);
	fail_file_sync = 0;
	assert_int_equal(o.error, ENOSPC);
	list_dir(f, "tmp", names, sizeof(names));
	assert_string_equal(names, "");
	list_dir(f, "queue", names, sizeof(names));
	assert_string_equal(names, "");
	commit_one(f, c, &o);
	assert_int_equal(o.error, 0);
	spool_committer_free(c);
}

static void
test_failed_dir_fsync_fails_a_dsn_injection_without_a_file(void **state)
{
	struct fixture *f = *state;
	struct spool_env env;
	char names[512];

	make_env(&env);
	fail_dir_fsync = 1;
	assert_int_equal(spool_inject(f->sp, &env, "Subject: dsn\r\n\r\nx\r\n", 19), -1);
	fail_dir_fsync = 0;
	list_dir(f, "queue", names, sizeof(names));
	assert_string_equal(names, "");
	list_dir(f, "tmp", names, sizeof(names));
	assert_string_equal(names, "");
	spool_env_free(&env);
}

/* Renamed and the directory fsync'd (the session may have said 250),
 * then the process died before the reveal: what it leaves in queue/. */
static void
commit_up_to_reveal(struct fixture *f, struct spool_env *env)
{
	struct spool_msg *m;

	assert_int_equal(spool_msg_begin(f->sp, env, &m), 0);
	assert_int_equal(spool_msg_write(m, "body\r\n", 6), 0);
	assert_int_equal(spool_msg_finish(m), 0);
	assert_int_equal(spool_msg_sync(m, 1), 0);
	assert_int_equal(spool_msg_publish(m), 0);
	assert_int_equal(spool_sync_queue(f->sp), 0);
	spool_msg_free(m);
}

static void
test_crash_before_reveal_is_delivered_after_restart(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	char names[512], hidden[SPOOL_ID_MAX + 1];
	int n = 0, fd;
	off_t off;

	make_env(&env);
	commit_up_to_reveal(f, &env);
	snprintf(hidden, sizeof(hidden), ".%s", env.id);
	list_dir(f, "queue", names, sizeof(names));
	assert_string_equal(names, hidden);
	assert_int_equal(spool_scan(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(spool_recover(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	assert_int_equal(back.size, 6);
	close(fd);
	spool_env_free(&back);
	spool_env_free(&env);
}

/* A message of process pid (its id as spool_new_id makes it there), left
 * hidden as that process leaves it when it dies before the reveal. */
static void
leave_hidden(struct fixture *f, pid_t pid, unsigned n, struct spool_env *env)
{
	make_env(env);
	snprintf(env->id, sizeof(env->id), "%011llx%05x%05x", 0x1a244000000ULL,
	    spool_id_pid(pid), n);
	commit_up_to_reveal(f, env);
}

static void
remember_id(const char *id, void *arg)
{
	snprintf(arg, SPOOL_ID_MAX, "%s", id);
}

static void
test_dead_writers_hidden_message_is_revealed_and_no_one_elses(void **state)
{
	struct fixture *f = *state;
	struct spool_env dead, alive, partial;
	struct spool_msg *m;
	char names[512], want[512], seen[SPOOL_ID_MAX] = "", path[256];
	const pid_t pid = 0x12345, other = 0x12346;

	leave_hidden(f, pid, 1, &dead);
	leave_hidden(f, other, 2, &alive);
	/* The dead process's partial message, and a copy the delivery
	 * process is making of one of its messages (ID.rw): only the first
	 * is the dead process's own. */
	make_env(&partial);
	snprintf(partial.id, sizeof(partial.id), "%s", dead.id);
	partial.id[strlen(partial.id) - 1] = '9';
	assert_int_equal(spool_msg_begin(f->sp, &partial, &m), 0);
	spool_msg_free(m);
	snprintf(path, sizeof(path), "%s/tmp/%s.rw", f->dir, dead.id);
	close(open(path, O_WRONLY | O_CREAT, 0600));

	assert_int_equal(spool_recover_pid(f->sp, pid, remember_id, seen), 1);
	assert_string_equal(seen, dead.id);
	list_dir(f, "queue", names, sizeof(names));
	snprintf(want, sizeof(want), "%s .%s", dead.id, alive.id);
	if (strcmp(names, want) != 0)	/* readdir order is the file system's */
		snprintf(want, sizeof(want), ".%s %s", alive.id, dead.id);
	assert_string_equal(names, want);
	list_dir(f, "tmp", names, sizeof(names));
	snprintf(want, sizeof(want), "%s.rw", dead.id);
	assert_string_equal(names, want);
	/* Pids above 0xfffff share fields: the master checks before it asks. */
	assert_int_equal(spool_id_pid(pid), spool_id_pid(pid + 0x100000));
	assert_int_not_equal(spool_id_pid(pid), spool_id_pid(other));
	spool_env_free(&dead);
	spool_env_free(&alive);
	spool_env_free(&partial);
}

static void
test_write_error_sticks_so_the_file_never_has_a_hole(void **state)
{
	struct fixture *f = *state;
	struct spool_env env;
	struct spool_msg *m;
	static char chunk[70000];

	memset(chunk, 'x', sizeof(chunk));
	make_env(&env);
	assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
	assert_int_equal(spool_msg_error(m), 0);
	fail_file_write = 1;
	assert_int_equal(spool_msg_write(m, chunk, sizeof(chunk)), -1);
	assert_int_equal(errno, ENOSPC);
	/* Space is back; the rest of the message must not be written after
	 * the part that was lost. */
	fail_file_write = 0;
	assert_int_equal(spool_msg_write(m, chunk, sizeof(chunk)), -1);
	assert_int_equal(spool_msg_finish(m), -1);
	assert_failed_with_no_file(f, m, ENOSPC);
	spool_env_free(&env);
}

static void
test_short_size_write_is_an_io_error_not_a_stale_errno(void **state)
{
	struct fixture *f = *state;
	struct spool_env env;
	struct spool_msg *m;

	make_env(&env);
	assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
	assert_int_equal(spool_msg_write(m, "body\r\n", 6), 0);
	short_pwrite = 1;
	assert_int_equal(spool_msg_finish(m), -1);
	short_pwrite = 0;
	/* Not EAGAIN, left over from before: the session would say 451 for
	 * a reason that is not true, and a log line would say it too. */
	assert_failed_with_no_file(f, m, EIO);
	spool_env_free(&env);
}

/* A recipient's status is acted on (delivered: never again) only once it is
 * on disk: a failing fdatasync must fail the update, not pass unnoticed. */
static void
test_recipient_status_update_is_synced_and_its_failure_reported(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	struct spool_msg *m;
	int fd;
	off_t off;

	make_env(&env);
	assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
	assert_int_equal(spool_msg_write(m, "body\r\n", 6), 0);
	assert_int_equal(spool_msg_finish(m), 0);
	assert_int_equal(spool_msg_sync(m, 1), 0);
	assert_int_equal(spool_msg_publish(m), 0);
	assert_int_equal(spool_sync_queue(f->sp), 0);
	assert_int_equal(spool_msg_reveal(m), 0);
	spool_msg_free(m);
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	close(fd);
	assert_true(spool_env_in_place(&back));
	spool_env_set_status(&back, 0, SPOOL_RCPT_DONE, 250, "mx.example.test", "250 ok");
	fail_file_sync = 1;
	errno = 0;
	assert_int_equal(spool_set_progress(f->sp, &back), -1);
	assert_int_equal(errno, ENOSPC);
	fail_file_sync = 0;
	assert_int_equal(spool_set_progress(f->sp, &back), 0);
	spool_env_free(&back);
	spool_env_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_dir_fsync_refuses_and_the_message_is_never_delivered, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_no_space_at_fsync_is_reported_and_the_partial_file_removed, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_failed_dir_fsync_fails_a_dsn_injection_without_a_file, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_reveal_is_delivered_after_restart, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_sticks_so_the_file_never_has_a_hole, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_short_size_write_is_an_io_error_not_a_stale_errno, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_dead_writers_hidden_message_is_revealed_and_no_one_elses, setup_faults, teardown),
		cmocka_unit_test_setup_teardown(test_recipient_status_update_is_synced_and_its_failure_reported, setup_faults, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
