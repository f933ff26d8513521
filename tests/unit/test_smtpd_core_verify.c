/* recipient_check "verify" in the SMTP conversation (mxd/smtpd/smtpd_core.c) and
 * its configuration keys (mxd/mxd_config.c): what a client sees at RCPT when
 * the worker's cache knows the answer, and that an RCPT waiting for a probe
 * answers nothing and reads nothing more (pipelined commands wait) until the
 * probe ends. The probe's own dialogue is tested in test_rcpt_probe.c, the
 * cache in test_rcpt_verify.c, the real thing in
 * tests/integration/hardening/test_recipient_verify.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "smtpd_core.h"

struct peer {
	struct smtpd_core	*core;
	const struct smtpd_core_info *info;
	struct buf		 out;		/* every reply, NUL-terminated */
	int			 asked;		/* io->rcpt_verify calls */
	int			 committed;
};

static struct mxd_config *cfg;

static void
io_send(void *arg, const char *data, size_t len)
{
	struct peer *p = arg;
	if (p->out.len)
		p->out.len--;	/* drop the NUL */
	buf_append(&p->out, data, len);
	buf_appendc(&p->out, '\0');
}

static void io_set_timeout(void *arg, int seconds) { (void)arg; (void)seconds; }

static int
io_msg_begin(void *arg, struct spool_env *env)
{
	(void)arg;
	snprintf(env->id, sizeof(env->id), "Q1");
	return 0;
}

static int io_msg_write(void *arg, const char *d, size_t n) { (void)arg; (void)d; (void)n; return 0; }

static int
io_msg_commit(void *arg)
{
	((struct peer *)arg)->committed++;
	return 0;
}

static void io_msg_abort(void *arg) { (void)arg; }
static void io_starttls(void *arg) { (void)arg; }
static void io_close(void *arg) { (void)arg; }

/* The cache's answer by local part: known…, unknown…, down…; anything else
 * is a miss (a probe starts). */
static enum smtpd_core_verify
io_rcpt_verify(void *arg, const struct mxd_domain *dom, const char *addr)
{
	struct peer *p = arg;
	p->asked++;
	assert_string_equal(dom->name, "v.test");
	if (strncmp(addr, "known", 5) == 0)
		return SMTPD_VERIFY_KNOWN;
	if (strncmp(addr, "unknown", 7) == 0)
		return SMTPD_VERIFY_UNKNOWN;
	if (strncmp(addr, "down", 4) == 0)
		return SMTPD_VERIFY_FAILED;
	return SMTPD_VERIFY_WAIT;
}

static const struct smtpd_core_io io = {
	.send = io_send, .set_timeout = io_set_timeout, .msg_begin = io_msg_begin,
	.msg_write = io_msg_write, .msg_commit = io_msg_commit, .msg_abort = io_msg_abort,
	.starttls = io_starttls, .close = io_close, .rcpt_verify = io_rcpt_verify,
};

static void
peer_init(struct peer *p)
{
	struct smtpd_core_params params = { .cfg = cfg, .sid = "SID", .ip = "192.0.2.1" };
	memset(p, 0, sizeof(*p));
	buf_init(&p->out);
	buf_appendc(&p->out, '\0');
	assert_int_equal(smtpd_core_new(&params, &io, p, &p->core), 0);
	p->info = smtpd_core_info(p->core);
}

static void
peer_free(struct peer *p)
{
	smtpd_core_free(p->core);
	buf_free(&p->out);
}

/* Feed in while the core moves on; the unread rest. */
static const char *
feed(struct peer *p, const char *in)
{
	size_t used;
	while (*in && smtpd_core_feed(p->core, in, strlen(in), &used))
		in += used;
	return in;
}

static void
test_cached_answers_are_250_550_or_450_at_once(void **state)
{
	struct peer p;
	(void)state;
	peer_init(&p);
	const char *rest = feed(&p, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<known@v.test>\r\nRCPT TO:<unknown@v.test>\r\nRCPT TO:<down@v.test>\r\n"
	    "NOOP\r\n");
	assert_string_equal(rest, "");
	assert_non_null(strstr(p.out.data, "250 2.1.5 Ok\r\n"));
	assert_non_null(strstr(p.out.data, "550 5.1.1 <unknown@v.test>: Recipient address "
	    "rejected: User unknown\r\n"));
	assert_non_null(strstr(p.out.data, "450 4.1.1 <down@v.test>: Recipient address "
	    "rejected: Recipient address verification failed: try again later\r\n"));
	assert_int_equal(p.asked, 3);
	assert_int_equal(p.info->rcpts_total, 1);
	/* The 550 is a session error, as in list mode; the 450 is not. */
	assert_int_equal(p.info->errors, 1);
	peer_free(&p);
}

static void
test_rcpt_waiting_for_a_probe_answers_and_reads_nothing_until_it_ends(void **state)
{
	struct peer p;
	(void)state;
	peer_init(&p);
	const char *rest = feed(&p, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<slow@v.test>\r\nNOOP\r\nDATA\r\n");
	assert_int_equal(p.info->phase, SMTPD_PHASE_VERIFY);
	assert_string_equal(rest, "NOOP\r\nDATA\r\n");
	assert_null(strstr(p.out.data, "2.1.5"));
	/* Still waiting: more input is not taken. */
	assert_string_equal(feed(&p, rest), rest);

	smtpd_core_verify_done(p.core, SMTPD_VERIFY_KNOWN);
	assert_int_equal(p.info->phase, SMTPD_PHASE_MAIL);
	assert_non_null(strstr(p.out.data, "250 2.1.5 Ok\r\n"));
	assert_int_equal(p.info->rcpts_total, 1);
	/* The pipelined commands go on after the RCPT's reply. */
	rest = feed(&p, rest);
	assert_string_equal(rest, "");
	assert_non_null(strstr(p.out.data, "250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n354 "));
	peer_free(&p);
}

static void
test_probe_results_rejected_or_failed_add_no_recipient(void **state)
{
	struct peer p;
	(void)state;
	peer_init(&p);
	const char *rest = feed(&p, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<slow1@v.test> NOTIFY=NEVER\r\nRCPT TO:<slow2@v.test>\r\nDATA\r\n");
	smtpd_core_verify_done(p.core, SMTPD_VERIFY_UNKNOWN);
	assert_non_null(strstr(p.out.data, "550 5.1.1 <slow1@v.test>: Recipient address "
	    "rejected: User unknown\r\n"));
	rest = feed(&p, rest);
	assert_int_equal(p.info->phase, SMTPD_PHASE_VERIFY);
	smtpd_core_verify_done(p.core, SMTPD_VERIFY_FAILED);
	assert_non_null(strstr(p.out.data, "450 4.1.1 <slow2@v.test>: Recipient address "
	    "rejected: Recipient address verification failed: try again later\r\n"));
	rest = feed(&p, rest);
	assert_string_equal(rest, "");
	assert_int_equal(p.info->rcpts_total, 0);
	assert_non_null(strstr(p.out.data, "503 5.5.1 Error: need RCPT command\r\n"));
	assert_int_equal(p.committed, 0);
	peer_free(&p);
}

static void
test_session_freed_while_a_probe_runs_leaks_nothing(void **state)
{
	struct peer p;
	(void)state;
	peer_init(&p);
	feed(&p, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<slow@v.test> "
	    "ORCPT=rfc822;slow@v.test\r\n");
	assert_int_equal(p.info->phase, SMTPD_PHASE_VERIFY);
	peer_free(&p);	/* ASan's leak check is the assertion */
}

static void
test_other_domains_never_ask_for_verification(void **state)
{
	struct peer p;
	(void)state;
	peer_init(&p);
	feed(&p, "EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<whoever@any.test>\r\n");
	assert_int_equal(p.asked, 0);
	assert_int_equal(p.info->rcpts_total, 1);
	peer_free(&p);
}

static struct mxd_config *
load(const char *text, char *err, size_t errsz)
{
	char path[] = "/tmp/test-verify-config.XXXXXX";
	struct mxd_config *c = NULL;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	if (mxd_config_load(path, &c, err, errsz) != 0)
		c = NULL;
	unlink(path);
	return c;
}

#define DOMAINS "domains = ( { name = \"v.test\"; next_hop = \"lmtp:unix:/run/lmtp\"; " \
	"recipient_check = \"verify\"; } );\n"

static void
test_recipient_verify_keys_and_their_defaults(void **state)
{
	char err[600];
	struct mxd_config *c;
	(void)state;

	c = load("hostname = \"mx.unit.test\";\n" DOMAINS, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->domains[0].rcpt.mode, RCPT_CHECK_VERIFY);
	assert_int_equal(c->verify_timeout, 10);
	assert_int_equal(c->verify_positive_ttl, 3600);
	assert_int_equal(c->verify_negative_ttl, 600);
	assert_int_equal(c->verify_cache_size, 100000);
	mxd_config_free(c);

	c = load("hostname = \"mx.unit.test\";\n" DOMAINS "recipient_verify = { timeout = 3; "
	    "positive_ttl = 60; negative_ttl = 30; cache_size = 10; };\n", err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->verify_timeout, 3);
	assert_int_equal(c->verify_positive_ttl, 60);
	assert_int_equal(c->verify_negative_ttl, 30);
	assert_int_equal(c->verify_cache_size, 10);
	mxd_config_free(c);

	assert_null(load("hostname = \"mx.unit.test\";\n" DOMAINS
	    "recipient_verify = { timeout = 0; };\n", err, sizeof(err)));
	assert_null(load("hostname = \"mx.unit.test\";\n" DOMAINS
	    "recipient_verify = { ttl = 5; };\n", err, sizeof(err)));
	assert_null(load("hostname = \"mx.unit.test\";\ndomains = ( { name = \"v.test\"; "
	    "next_hop = \"lmtp:unix:/run/lmtp\"; recipient_check = \"verify\"; "
	    "recipients = [ \"alice\" ]; } );\n", err, sizeof(err)));
	assert_non_null(strstr(err, "recipient_check verify takes no recipients list"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cached_answers_are_250_550_or_450_at_once),
		cmocka_unit_test(test_rcpt_waiting_for_a_probe_answers_and_reads_nothing_until_it_ends),
		cmocka_unit_test(test_probe_results_rejected_or_failed_add_no_recipient),
		cmocka_unit_test(test_session_freed_while_a_probe_runs_leaks_nothing),
		cmocka_unit_test(test_other_domains_never_ask_for_verification),
		cmocka_unit_test(test_recipient_verify_keys_and_their_defaults),
	};
	log_init("test_smtpd_core_verify", LOG_LEVEL_ERROR, 0);
	cfg = load("hostname = \"mx.unit.test\";\n"
	    "domains = ( { name = \"v.test\"; next_hop = \"smtp:[192.0.2.25]:25\"; "
	    "recipient_check = \"verify\"; },\n"
	    "  { name = \"any.test\"; next_hop = \"smtp:[192.0.2.25]:25\"; "
	    "recipient_check = \"any\"; } );\n", (char[600]){0}, 600);
	if (cfg == NULL)
		abort();
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	mxd_config_free(cfg);
	return rc;
}
