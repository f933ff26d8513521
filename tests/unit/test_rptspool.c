/* Mail kept for the TLSRPT addresses (mxd/spool/rptspool.h) on a real
 * directory: what the SMTP worker writes is what the uploader reads back,
 * nothing half-written is left, a file that is not ours is refused, and
 * the addresses of the snapshot match whatever their case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mxd_config.h"
#include "rptspool.h"

static char *
make_dir(void)
{
	char tmpl[] = "/tmp/test_rptspool.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void
remove_tree(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int
open_reports(const char *spool)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", spool, RPTSPOOL_DIR);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	return fd;
}

static void
test_a_kept_mail_reads_back_byte_for_byte(void **state)
{
	char *spool = make_dir(), err[300], path[512];
	static const char msg[] = "Received: x\r\n\r\nbody\0with a NUL\r\n";
	struct rptspool_mail m;
	struct stat st;

	assert_int_equal(rptspool_store(spool, "abc.0", "bounces@sender.example",
	    "tlsrpt@recv.example", 1733400000, msg, sizeof(msg) - 1, err, sizeof(err)), 0);
	int dirfd = open_reports(spool);
	assert_int_equal(rptspool_read(dirfd, "abc.0", &m, err, sizeof(err)), 0);
	assert_string_equal(m.from, "bounces@sender.example");
	assert_string_equal(m.rcpt, "tlsrpt@recv.example");
	assert_int_equal(m.received, 1733400000);
	assert_int_equal(m.len, sizeof(msg) - 1);
	assert_memory_equal(m.msg, msg, sizeof(msg) - 1);
	rptspool_mail_free(&m);
	snprintf(path, sizeof(path), "%s/%s/abc.0", spool, RPTSPOOL_DIR);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/%s/.tmp-abc.0", spool, RPTSPOOL_DIR);
	assert_int_equal(access(path, F_OK), -1);
	/* The null sender. */
	assert_int_equal(rptspool_store(spool, "abc.1", "", "tlsrpt@recv.example", 1, "x", 1,
	    err, sizeof(err)), 0);
	assert_int_equal(rptspool_read(dirfd, "abc.1", &m, err, sizeof(err)), 0);
	assert_string_equal(m.from, "");
	rptspool_mail_free(&m);
	close(dirfd);
	remove_tree(spool);
	free(spool);
}

static void
test_a_file_that_is_not_ours_is_refused(void **state)
{
	char *spool = make_dir(), err[300] = "";
	struct rptspool_mail m;

	assert_int_equal(rptspool_store(spool, "ok", "a@b", "c@d", 1, "m", 1, err, sizeof(err)),
	    0);
	int dirfd = open_reports(spool);
	static const char *bad[] = { "From: x\r\n\r\nhello", "mxd-tlsrpt 1\nfrom a@b\n",
	    "mxd-tlsrpt 1\nfrom a@b\nto c@d\nreceived 1\n", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = openat(dirfd, "bad", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		close(fd);
		err[0] = '\0';
		assert_int_equal(rptspool_read(dirfd, "bad", &m, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not a report file"));
		assert_null(m.data);
	}
	assert_int_equal(rptspool_read(dirfd, "missing", &m, err, sizeof(err)), -1);
	close(dirfd);
	remove_tree(spool);
	free(spool);
}

static void
test_a_spool_that_cannot_be_written_gives_the_errno(void **state)
{
	char *spool = make_dir(), file[512], err[300] = "";

	snprintf(file, sizeof(file), "%s/plain-file", spool);
	int fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_not_equal(rptspool_store(file, "x", "a@b", "c@d", 1, "m", 1, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "mkdir"));
	remove_tree(spool);
	free(spool);
}

static void
test_the_snapshots_addresses_match_ignoring_case(void **state)
{
	struct mxd_config cfg;
	char *addrs[] = { "tlsrpt@recv.example", "reports@second.example", "", "no-at-sign" };
	Mxfleet__V1__ConfigSnapshot s = MXFLEET__V1__CONFIG_SNAPSHOT__INIT;

	memset(&cfg, 0, sizeof(cfg));
	assert_false(rptspool_is_address(&cfg, "tlsrpt@recv.example"));
	s.tlsrpt_addresses = addrs;
	s.n_tlsrpt_addresses = 4;
	rptspool_merge_snapshot(&cfg, &s);
	assert_int_equal(cfg.ntlsrpt_addresses, 2);
	assert_true(rptspool_is_address(&cfg, "tlsrpt@recv.example"));
	assert_true(rptspool_is_address(&cfg, "TLSRPT@Recv.Example"));
	assert_true(rptspool_is_address(&cfg, "reports@second.example"));
	assert_false(rptspool_is_address(&cfg, "tlsrpt@second.example"));
	assert_false(rptspool_is_address(&cfg, "user@recv.example"));
	/* A later snapshot replaces them. */
	s.n_tlsrpt_addresses = 1;
	rptspool_merge_snapshot(&cfg, &s);
	assert_false(rptspool_is_address(&cfg, "reports@second.example"));
	rptspool_config_free(&cfg);
	assert_false(rptspool_is_address(&cfg, "tlsrpt@recv.example"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_kept_mail_reads_back_byte_for_byte),
		cmocka_unit_test(test_a_file_that_is_not_ours_is_refused),
		cmocka_unit_test(test_a_spool_that_cannot_be_written_gives_the_errno),
		cmocka_unit_test(test_the_snapshots_addresses_match_ignoring_case),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
