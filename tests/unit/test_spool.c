/* The spool on a real directory: what is written is read back, a partial
 * file is dropped at recovery, a damaged one is quarantined, not lost. */
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

static void
make_env(struct spool_env *env, const char *from)
{
	memset(env, 0, sizeof(*env));
	spool_new_id(env->id, sizeof(env->id));
	env->created = 1700000000;
	env->from = strdup(from);
	spool_env_add_rcpt(env, "a@example.test");
	spool_env_add_rcpt(env, "b@example.test");
	env->requiretls = 1;
}

static void
write_message(struct spool *sp, struct spool_env *env, const char *content)
{
	struct spool_msg *m;
	assert_int_equal(spool_msg_begin(sp, env, &m), 0);
	assert_int_equal(spool_msg_write(m, content, strlen(content)), 0);
	assert_int_equal(spool_msg_finish(m), 0);
	assert_int_equal(spool_msg_sync(m, 1), 0);
	assert_int_equal(spool_msg_publish(m), 0);
	assert_int_equal(spool_sync_queue(sp), 0);
	assert_int_equal(spool_msg_reveal(m), 0);
	spool_msg_free(m);
}

static void
test_spool_round_trip_keeps_envelope_and_content(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	const char *content = "Subject: hi\r\n\r\nbody\r\n";
	int fd;
	off_t off;
	char buf[256];

	make_env(&env, "sender@example.org");
	write_message(f->sp, &env, content);
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	assert_string_equal(back.from, "sender@example.org");
	assert_int_equal(back.nrcpts, 2);
	assert_string_equal(back.rcpts[1], "b@example.test");
	assert_int_equal(back.requiretls, 1);
	assert_int_equal(back.size, strlen(content));
	ssize_t n = pread(fd, buf, sizeof(buf), off);
	assert_int_equal(n, (ssize_t)strlen(content));
	assert_memory_equal(buf, content, strlen(content));
	close(fd);
	spool_env_free(&back);
	spool_env_free(&env);
}

static void
test_spool_recover_drops_partial_and_keeps_queued(void **state)
{
	struct fixture *f = *state;
	struct spool_env env;
	struct spool_msg *m;
	int n = 0;
	char path[256];

	make_env(&env, "");
	write_message(f->sp, &env, "complete\r\n");
	spool_env_free(&env);
	/* A message that never got its 250: still in tmp/. */
	make_env(&env, "x@y");
	assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
	assert_int_equal(spool_msg_write(m, "half", 4), 0);
	snprintf(path, sizeof(path), "%s/tmp/%s", f->dir, env.id);
	spool_msg_free(m);	/* crash: neither finished nor aborted */
	assert_int_equal(access(path, F_OK), 0);

	assert_int_equal(spool_recover(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(access(path, F_OK), -1);
	spool_env_free(&env);
}

static void
test_spool_truncated_file_is_quarantined(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	char path[256], cpath[256];
	int fd;
	off_t off;

	make_env(&env, "s@example.org");
	write_message(f->sp, &env, "line one\r\nline two\r\n");
	snprintf(path, sizeof(path), "%s/queue/%s", f->dir, env.id);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 5), 0);
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), -2);
	assert_int_equal(spool_quarantine(f->sp, env.id), 0);
	snprintf(cpath, sizeof(cpath), "%s/corrupt/%s", f->dir, env.id);
	assert_int_equal(access(cpath, F_OK), 0);
	assert_int_equal(access(path, F_OK), -1);
	spool_env_free(&env);
}

static void
test_spool_rewrite_keeps_remaining_recipients(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back, back2;
	int fd, fd2;
	off_t off, off2;
	char buf[64];

	make_env(&env, "s@example.org");
	write_message(f->sp, &env, "content\r\n");
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	free(back.rcpts[0]);
	back.rcpts[0] = back.rcpts[1];
	back.nrcpts = 1;
	assert_int_equal(spool_rewrite(f->sp, &back, fd, off), 0);
	close(fd);
	assert_int_equal(spool_read(f->sp, env.id, &back2, &fd2, &off2), 0);
	assert_int_equal(back2.nrcpts, 1);
	assert_string_equal(back2.rcpts[0], "b@example.test");
	assert_int_equal(pread(fd2, buf, sizeof(buf), off2), 9);
	assert_memory_equal(buf, "content\r\n", 9);
	close(fd2);
	spool_env_free(&back);
	spool_env_free(&back2);
	spool_env_free(&env);
}

/* Read id back; its file's inode and size as they are now. */
static void
read_back(struct fixture *f, const char *id, struct spool_env *env, struct stat *st)
{
	char path[256];
	int fd;
	off_t off;

	assert_int_equal(spool_read(f->sp, id, env, &fd, &off), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/queue/%s", f->dir, id);
	assert_int_equal(stat(path, st), 0);
}

/* The delivery schedule and each recipient's status: written with the
 * message, then updated in place - the same file, the same size, so an
 * attempt's outcome is recorded on a full disk too. */
static void
test_spool_progress_is_updated_in_place(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back, back2, back3;
	struct stat st1, st2, st3;
	const char *reply = "550-5.1.1 <b@example.test>: no such user, 100%\n"
	    "550 5.1.1 sorry \xc3\xa9\r";

	make_env(&env, "s@example.org");
	write_message(f->sp, &env, "content\r\n");
	read_back(f, env.id, &back, &st1);
	assert_int_equal(back.attempts, 0);
	assert_int_equal(back.next_attempt, 0);
	assert_int_equal(back.delay_notified, 0);
	assert_true(back.sched_off > 0);
	assert_true(spool_env_in_place(&back));
	assert_int_equal(spool_env_state(&back, 0), SPOOL_RCPT_TODO);
	assert_int_equal(spool_env_state(&back, 1), SPOOL_RCPT_TODO);

	back.attempts = 12;
	back.next_attempt = (time_t)4102444800LL;	/* 2100-01-01 */
	back.delay_notified = 1;
	spool_env_set_status(&back, 0, SPOOL_RCPT_DONE, 250, "mx.example.test", "250 ok");
	spool_env_set_status(&back, 1, SPOOL_RCPT_BOUNCED, 550, "mx.example.test", reply);
	assert_int_equal(spool_set_progress(f->sp, &back), 0);
	read_back(f, env.id, &back2, &st2);
	assert_int_equal(st1.st_ino, st2.st_ino);	/* the same file, not a copy */
	assert_int_equal(st1.st_size, st2.st_size);
	assert_int_equal(back2.attempts, 12);
	assert_int_equal(back2.next_attempt, (time_t)4102444800LL);
	assert_int_equal(back2.delay_notified, 1);
	assert_int_equal(spool_env_state(&back2, 0), SPOOL_RCPT_DONE);
	assert_null(back2.status[0].reply);
	assert_int_equal(spool_env_state(&back2, 1), SPOOL_RCPT_BOUNCED);
	assert_int_equal(back2.status[1].code, 550);
	assert_string_equal(back2.status[1].mta, "mx.example.test");
	assert_string_equal(back2.status[1].reply, reply);	/* byte for byte */
	assert_string_equal(back2.rcpts[1], "b@example.test");
	assert_int_equal(back2.size, 9);

	/* Its DSN queued at last: done, the stored text gone. */
	spool_env_set_status(&back2, 1, SPOOL_RCPT_DONE, 0, NULL, NULL);
	assert_int_equal(spool_set_progress(f->sp, &back2), 0);
	read_back(f, env.id, &back3, &st3);
	assert_int_equal(st3.st_size, st1.st_size);
	assert_int_equal(spool_env_state(&back3, 1), SPOOL_RCPT_DONE);
	assert_null(back3.status[1].reply);
	assert_null(back3.status[1].mta);
	spool_env_free(&back);
	spool_env_free(&back2);
	spool_env_free(&back3);
	spool_env_free(&env);
}

static void
test_spool_long_reply_is_cut_with_a_marker(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back, back2;
	struct stat st1, st2;
	char reply[2000];

	memset(reply, 'x', sizeof(reply) - 1);
	reply[sizeof(reply) - 1] = '\0';
	memcpy(reply, "554 5.7.1 ", 10);
	reply[300] = '\n';	/* an escape near the cut is not split */
	make_env(&env, "s@example.org");
	write_message(f->sp, &env, "content\r\n");
	read_back(f, env.id, &back, &st1);
	/* Not a host name: left out rather than mistaken for the reply. */
	spool_env_set_status(&back, 0, SPOOL_RCPT_BOUNCED, 554, "mx example", reply);
	assert_int_equal(spool_set_progress(f->sp, &back), 0);
	read_back(f, env.id, &back2, &st2);
	assert_int_equal(st1.st_size, st2.st_size);
	assert_int_equal(back2.status[0].code, 554);
	assert_null(back2.status[0].mta);
	const char *got = back2.status[0].reply;
	size_t gl = strlen(got);
	assert_true(gl > 300 && gl < SPOOL_STATUS_LEN);
	assert_memory_equal(got, reply, gl - 6);
	assert_string_equal(got + gl - 6, " [...]");
	assert_int_equal(spool_env_state(&back2, 1), SPOOL_RCPT_TODO);
	spool_env_free(&back);
	spool_env_free(&back2);
	spool_env_free(&env);
}

/* A queue file as an older mxd wrote it: text with its "id" line's
 * "%s" filled in with a fresh id, returned in id. */
static void
plant_queue_file(struct fixture *f, const char *text, char *id)
{
	char path[256];
	const char *hole = strstr(text, "%s");

	assert_non_null(hole);
	spool_new_id(id, SPOOL_ID_MAX);
	snprintf(path, sizeof(path), "%s/queue/%s", f->dir, id);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, (size_t)(hole - text), fp), (size_t)(hole - text));
	assert_true(fputs(id, fp) >= 0 && fputs(hole + 2, fp) >= 0);
	fclose(fp);
}

/* A deferred message's file from the previous version: a sched line, no
 * status lines. It reads; progress can not be stored in place, and the
 * one rewrite adds the lines. */
static const char SCHED_ENV[] =
    "MXSPOOL1\n"
    "id %s\n"
    "created 1700000000\n"
    "from <old@example.org>\n"
    "rcpt <a@example.test>\n"
    "notify FAILURE\n"
    "rcpt <b@example.test>\n"
    "flags requiretls=0 smtputf8=0 body8bit=0\n"
    "sched attempts=0000000002 next=00000000001700000300 delay_notice=0\n"
    "size 00000000000000000004\n"
    "\n"
    "old\n";

static void
test_spool_file_from_before_status_gets_it_by_one_rewrite(void **state)
{
	struct fixture *f = *state;
	struct spool_env back, back2;
	struct stat st;
	char id[SPOOL_ID_MAX], buf[8];
	int fd;
	off_t off;

	plant_queue_file(f, SCHED_ENV, id);
	assert_int_equal(spool_read(f->sp, id, &back, &fd, &off), 0);
	assert_int_equal(back.attempts, 2);
	assert_int_equal(spool_env_state(&back, 0), SPOOL_RCPT_TODO);
	assert_int_equal(back.status[0].off, 0);
	assert_false(spool_env_in_place(&back));
	back.attempts = 3;
	spool_env_set_status(&back, 1, SPOOL_RCPT_DONE, 0, NULL, NULL);
	assert_int_equal(spool_set_progress(f->sp, &back), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_rewrite(f->sp, &back, fd, off), 0);
	close(fd);
	read_back(f, id, &back2, &st);
	assert_true(spool_env_in_place(&back2));
	assert_int_equal(back2.attempts, 3);
	assert_int_equal(spool_env_notify(&back2, 0), DSN_NOTIFY_FAILURE);
	assert_int_equal(spool_env_state(&back2, 0), SPOOL_RCPT_TODO);
	assert_int_equal(spool_env_state(&back2, 1), SPOOL_RCPT_DONE);
	spool_env_free(&back);
	assert_int_equal(spool_read(f->sp, id, &back, &fd, &off), 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), off), 4);
	assert_memory_equal(buf, "old\n", 4);
	close(fd);
	spool_env_free(&back);
	spool_env_free(&back2);
}

static void
test_spool_parse_env_rejects_bad_status_lines(void **state)
{
	static const char *const head[] = {
		"state=D code=000 len=000",		/* too short */
		"state=X code=000 len=000 ",		/* no such state */
		"state=B code=5x0 len=000 ",
		"state=B code=550 len=0001",
		"status=B code=550 len=000",
	};
	char text[1024], value[SPOOL_STATUS_LEN + 8];
	struct spool_env env;
	(void)state;
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
		snprintf(value, sizeof(value), "%-*s", SPOOL_STATUS_LEN, head[i]);
		if (i == 0)
			value[SPOOL_STATUS_LEN - 1] = '\0';
		snprintf(text, sizeof(text), "MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\n"
		    "status %s\nflags requiretls=0 smtputf8=0 body8bit=0\n"
		    "size 00000000000000000001\n\n", value);
		assert_int_equal(spool_parse_env(text, strlen(text), &env), -1);
	}
	/* A control byte in the text. */
	snprintf(value, sizeof(value), "%-*s", SPOOL_STATUS_LEN, "state=B code=550 len=005 m 5\t0");
	snprintf(text, sizeof(text), "MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\n"
	    "status %s\nflags requiretls=0 smtputf8=0 body8bit=0\n"
	    "size 00000000000000000001\n\n", value);
	assert_int_equal(spool_parse_env(text, strlen(text), &env), -1);
	/* An escape that does not decode (a torn write) is kept as it is. */
	snprintf(value, sizeof(value), "%-*s", SPOOL_STATUS_LEN, "state=B code=550 len=011 m 550 %zz%4");
	snprintf(text, sizeof(text), "MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\n"
	    "status %s\nflags requiretls=0 smtputf8=0 body8bit=0\n"
	    "size 00000000000000000001\n\n", value);
	assert_true(spool_parse_env(text, strlen(text), &env) > 0);
	assert_int_equal(spool_env_state(&env, 0), SPOOL_RCPT_BOUNCED);
	assert_string_equal(env.status[0].mta, "m");
	assert_string_equal(env.status[0].reply, "550 %zz%4");
	assert_int_equal(env.status[0].off, (off_t)(strstr(text, "state=") - text));
	spool_env_free(&env);
}

static void
test_spool_parse_env_rejects_bad_schedule_lines(void **state)
{
	static const char *const sched[] = {
		"attempts=0000000001 next=00000000001700000300 delay_notice=2",
		"attempts=000000001 next=00000000001700000300 delay_notice=0",
		"attempts=00000000x1 next=00000000001700000300 delay_notice=0",
		"attempts=9999999999 next=00000000001700000300 delay_notice=0",
		"attempts=0000000001 next=99999999999999999999 delay_notice=0",
		"attempts=0000000001  next=0000000001700000300 delay_notice=0",
		"attempts=0000000001 next=00000000001700000300 delay_notice=0 ",
		"",
	};
	char text[512];
	struct spool_env env;
	(void)state;
	for (size_t i = 0; i < sizeof(sched) / sizeof(sched[0]); i++) {
		snprintf(text, sizeof(text), "MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\n"
		    "flags requiretls=0 smtputf8=0 body8bit=0\nsched %s\n"
		    "size 00000000000000000001\n\n", sched[i]);
		assert_int_equal(spool_parse_env(text, strlen(text), &env), -1);
	}
	snprintf(text, sizeof(text), "MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\n"
	    "flags requiretls=0 smtputf8=0 body8bit=0\n"
	    "sched attempts=0000000003 next=00000000001700000300 delay_notice=1\n"
	    "size 00000000000000000001\n\n");
	assert_true(spool_parse_env(text, strlen(text), &env) > 0);
	assert_int_equal(env.attempts, 3);
	assert_int_equal(env.next_attempt, 1700000300);
	assert_int_equal(env.delay_notified, 1);
	assert_int_equal(env.sched_off, (off_t)(strstr(text, "attempts=") - text));
	spool_env_free(&env);
}

static void
test_spool_parse_env_rejects_garbage(void **state)
{
	struct spool_env env;
	const char *bad[] = {
		"NOTSPOOL\n",
		"MXSPOOL1\nid ../etc\ncreated 1\nfrom <>\nrcpt <a@b>\nflags requiretls=0 smtputf8=0 body8bit=0\nsize 00000000000000000001\n\n",
		"MXSPOOL1\nid x\ncreated 1\nfrom <>\nflags requiretls=0 smtputf8=0 body8bit=0\nsize 00000000000000000001\n\n",
		"MXSPOOL1\nid x\ncreated 1\nfrom missing-brackets\n",
		"MXSPOOL1\nid x\ncreated 1\nfrom <>\nrcpt <a@b>\nflags bogus\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(spool_parse_env(bad[i], strlen(bad[i]), &env), -1);
	/* Incomplete is not the same as malformed. */
	const char *partial = "MXSPOOL1\nid x\ncreated 1\n";
	assert_int_equal(spool_parse_env(partial, strlen(partial), &env), 0);
}

static void
make_dsn_env(struct spool_env *env)
{
	memset(env, 0, sizeof(*env));
	spool_new_id(env->id, sizeof(env->id));
	env->created = 1700000000;
	env->from = strdup("sender@example.org");
	env->envid = strdup("QQ+2B314159");
	env->ret = DSN_RET_HDRS;
	spool_env_add_rcpt(env, "plain@example.test");
	spool_env_add_rcpt_dsn(env, "both@example.test", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
	    "rfc822;orig+2Bx@example.org");
	spool_env_add_rcpt_dsn(env, "never@example.test", DSN_NOTIFY_NEVER, NULL);
	spool_env_add_rcpt_dsn(env, "orcpt@example.test", 0, "utf-8;o@example.org");
}

static void
test_spool_round_trip_keeps_dsn_parameters(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	int fd;
	off_t off;

	make_dsn_env(&env);
	write_message(f->sp, &env, "Subject: dsn\r\n\r\nbody\r\n");
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	assert_string_equal(back.envid, "QQ+2B314159");
	assert_int_equal(back.ret, DSN_RET_HDRS);
	assert_int_equal(back.nrcpts, 4);
	assert_string_equal(back.rcpts[3], "orcpt@example.test");
	assert_int_equal(spool_env_notify(&back, 0), 0);
	assert_int_equal(spool_env_notify(&back, 1), DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_int_equal(spool_env_notify(&back, 2), DSN_NOTIFY_NEVER);
	assert_int_equal(spool_env_notify(&back, 3), 0);
	assert_null(spool_env_orcpt(&back, 0));
	assert_string_equal(spool_env_orcpt(&back, 1), "rfc822;orig+2Bx@example.org");
	assert_null(spool_env_orcpt(&back, 2));
	assert_string_equal(spool_env_orcpt(&back, 3), "utf-8;o@example.org");
	close(fd);
	spool_env_free(&back);
	spool_env_free(&env);
}

/* A queue file written before mxd knew DSN parameters, byte for byte. */
static const char LEGACY_ENV[] =
    "MXSPOOL1\n"
    "id %s\n"
    "created 1700000000\n"
    "from <old@example.org>\n"
    "rcpt <a@example.test>\n"
    "rcpt <b@example.test>\n"
    "flags requiretls=0 smtputf8=1 body8bit=1\n"
    "size 00000000000000000011\n"
    "\n"
    "legacy\r\nmsg";

static void
test_spool_reads_files_from_before_dsn(void **state)
{
	struct fixture *f = *state;
	struct spool_env back;
	char id[SPOOL_ID_MAX];
	int fd;
	off_t off;

	plant_queue_file(f, LEGACY_ENV, id);
	assert_int_equal(spool_read(f->sp, id, &back, &fd, &off), 0);
	assert_string_equal(back.from, "old@example.org");
	assert_int_equal(back.nrcpts, 2);
	assert_int_equal(back.smtputf8, 1);
	assert_null(back.envid);
	assert_int_equal(back.ret, DSN_RET_NONE);
	assert_int_equal(spool_env_notify(&back, 1), 0);
	assert_null(spool_env_orcpt(&back, 1));
	char buf[32];
	assert_int_equal(pread(fd, buf, sizeof(buf), off), 11);
	assert_memory_equal(buf, "legacy\r\nmsg", 11);
	close(fd);
	spool_env_free(&back);
}

static void
test_spool_keep_drops_recipients_with_their_dsn_fields(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back, back2;
	int fd, fd2;
	off_t off, off2;

	make_dsn_env(&env);
	write_message(f->sp, &env, "content\r\n");
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	const int keep[] = { 0, 1, 0, 1 };
	spool_env_keep(&back, keep);
	assert_int_equal(back.nrcpts, 2);
	assert_string_equal(back.rcpts[0], "both@example.test");
	assert_int_equal(spool_env_notify(&back, 0), DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_string_equal(spool_env_orcpt(&back, 0), "rfc822;orig+2Bx@example.org");
	assert_string_equal(back.rcpts[1], "orcpt@example.test");
	assert_int_equal(spool_env_notify(&back, 1), 0);
	assert_string_equal(spool_env_orcpt(&back, 1), "utf-8;o@example.org");
	/* A partial delivery's rewrite keeps them on disk. */
	assert_int_equal(spool_rewrite(f->sp, &back, fd, off), 0);
	close(fd);
	assert_int_equal(spool_read(f->sp, env.id, &back2, &fd2, &off2), 0);
	assert_int_equal(back2.nrcpts, 2);
	assert_string_equal(back2.envid, "QQ+2B314159");
	assert_int_equal(back2.ret, DSN_RET_HDRS);
	assert_int_equal(spool_env_notify(&back2, 0), DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_string_equal(spool_env_orcpt(&back2, 1), "utf-8;o@example.org");
	close(fd2);
	spool_env_free(&back);
	spool_env_free(&back2);

	/* Keeping nobody, and an envelope without DSN arrays, work too. */
	char *r0 = strdup("x@y");
	struct spool_env bare;
	memset(&bare, 0, sizeof(bare));
	bare.rcpts = calloc(1, sizeof(char *));
	bare.rcpts[0] = r0;
	bare.nrcpts = 1;
	const int none[] = { 0 };
	spool_env_keep(&bare, none);
	assert_int_equal(bare.nrcpts, 0);
	spool_env_free(&bare);
	spool_env_free(&env);
}

static void
test_spool_many_recipients_with_orcpt_read_back(void **state)
{
	struct fixture *f = *state;
	struct spool_env env, back;
	char rcpt[64], orcpt[DSN_ORCPT_MAX + 1];
	int fd;
	off_t off;

	memset(&env, 0, sizeof(env));
	spool_new_id(env.id, sizeof(env.id));
	env.from = strdup("s@example.org");
	/* Far past the first 16 KiB read of the header. */
	for (int i = 0; i < 200; i++) {
		snprintf(rcpt, sizeof(rcpt), "r%d@example.test", i);
		snprintf(orcpt, sizeof(orcpt), "rfc822;%0490d", i);
		spool_env_add_rcpt_dsn(&env, rcpt, DSN_NOTIFY_FAILURE, orcpt);
	}
	write_message(f->sp, &env, "x\r\n");
	assert_int_equal(spool_read(f->sp, env.id, &back, &fd, &off), 0);
	assert_int_equal(back.nrcpts, 200);
	assert_string_equal(spool_env_orcpt(&back, 199), env.orcpt[199]);
	close(fd);
	spool_env_free(&back);
	spool_env_free(&env);
}

static void
test_spool_parse_env_rejects_bad_dsn_lines(void **state)
{
	struct spool_env env;
	const char *head = "MXSPOOL1\nid x\ncreated 1\nfrom <>\n";
	const char *tail = "flags requiretls=0 smtputf8=0 body8bit=0\nsize 00000000000000000001\n\n";
	const char *mid[] = {
		"envid a b\nrcpt <a@b>\n",
		"envid \nrcpt <a@b>\n",
		"ret SOME\nrcpt <a@b>\n",
		"rcpt <a@b>\nnotify NEVER,SUCCESS\n",
		"rcpt <a@b>\nnotify \n",
		"rcpt <a@b>\norcpt rfc822\n",
		"rcpt <a@b>\norcpt rfc822;a\rb\n",
		"rcpt <a@b>\norcpt rfc822;a=b\n",
		"notify SUCCESS\nrcpt <a@b>\n",		/* before any recipient */
	};
	char doc[512];
	for (size_t i = 0; i < sizeof(mid) / sizeof(mid[0]); i++) {
		snprintf(doc, sizeof(doc), "%s%s%s", head, mid[i], tail);
		assert_int_equal(spool_parse_env(doc, strlen(doc), &env), -1);
	}
	snprintf(doc, sizeof(doc), "%senvid abc\nret FULL\nrcpt <a@b>\nnotify DELAY\n"
	    "orcpt rfc822;a@b\n%s", head, tail);
	assert_int_equal(spool_parse_env(doc, strlen(doc), &env), (long)strlen(doc));
	assert_string_equal(env.envid, "abc");
	assert_int_equal(env.ret, DSN_RET_FULL);
	assert_int_equal(env.notify[0], DSN_NOTIFY_DELAY);
	spool_env_free(&env);
	/* Cut inside the DSN lines: incomplete, not malformed. */
	assert_int_equal(spool_parse_env(doc, strlen(head) + 6, &env), 0);
}

static void
commit_cb(void *arg, int error, const char *id)
{
	(*(int *)arg) += error == 0 ? 1 : 1000;
}

static void
test_group_commit_publishes_every_message(void **state)
{
	struct fixture *f = *state;
	struct spool_committer *c;
	int done = 0, n = 0;
	int pipefd[2];

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(spool_committer_new(f->sp, pipefd[1], &c), 0);
	for (int i = 0; i < 20; i++) {
		struct spool_env env;
		struct spool_msg *m;
		make_env(&env, "s@example.org");
		assert_int_equal(spool_msg_begin(f->sp, &env, &m), 0);
		assert_int_equal(spool_msg_write(m, "x\r\n", 3), 0);
		assert_int_equal(spool_msg_finish(m), 0);
		spool_commit(c, m, commit_cb, &done);
		spool_env_free(&env);
	}
	for (int tries = 0; done < 20 && tries < 500; tries++) {
		usleep(10000);
		spool_committer_dispatch(c);
	}
	assert_int_equal(done, 20);
	spool_committer_free(c);
	assert_int_equal(spool_scan(f->sp, count_cb, &n), 0);
	assert_int_equal(n, 20);
	/* The delivery process hears of each one. */
	char buf[2048];
	ssize_t r = read(pipefd[0], buf, sizeof(buf));
	int lines = 0;
	for (ssize_t i = 0; i < r; i++)
		lines += buf[i] == '\n';
	assert_int_equal(lines, 20);
	close(pipefd[0]);
	close(pipefd[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spool_round_trip_keeps_envelope_and_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_recover_drops_partial_and_keeps_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_truncated_file_is_quarantined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_rewrite_keeps_remaining_recipients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_parse_env_rejects_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_progress_is_updated_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_long_reply_is_cut_with_a_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_file_from_before_status_gets_it_by_one_rewrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_parse_env_rejects_bad_status_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_parse_env_rejects_bad_schedule_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_publishes_every_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_round_trip_keeps_dsn_parameters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_reads_files_from_before_dsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_keep_drops_recipients_with_their_dsn_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_many_recipients_with_orcpt_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_parse_env_rejects_bad_dsn_lines, setup, teardown),
	};
	return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
