/* Writes the signed mails controld would send for a few TLS reports, for
 * test_report_mail.py to check with tools that are not ours (python3-dkim,
 * Python's email package, a JSON Schema validator):
 *
 *     tlsrpt_mail_tool DIR
 *
 * Makes one DKIM key as controld does for a hosted domain (dkim.h) and
 * writes DIR/dkim.txt: "selector<TAB>domain<TAB>TXT record". For each
 * mail NAME: DIR/NAME.eml, DIR/NAME.again.eml (the same inputs composed a
 * second time), DIR/NAME.json (the report's JSON as the builder makes it),
 * and one line "NAME<TAB>policy-domain<TAB>unix time of sending" on
 * stdout. Exit 1 with a reason on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"
#include "tlsrpt.h"
#include "tlsrpt_mail.h"
#include "tlsrpt_sample.h"

#define SENT	(DAY0 + 86400 + 3 * 3600 + 17)	/* the next day, 03:00:17Z */

/* 63-letter labels: a Subject that must fold, a long file name. */
#define LONG_LABEL "a123456789b123456789c123456789d123456789e123456789f123456789xyz"
#define LONG_DOMAIN LONG_LABEL ".recipient.example"
#define LONG_SUBMITTER LONG_LABEL ".mxfleet.example"

static struct tlsrpt_policy long_policies[] = {
	{ .policy_type = "no-policy-found", .policy_domain = LONG_DOMAIN, .total_success = 3 },
};

static int
tool_write(const char *dir, const char *name, const char *ext, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	return fclose(f);
}

static int
tool_mail(const char *dir, const char *name, const struct tlsrpt_report *r,
    const struct tlsrpt_mail *m)
{
	char err[TLSRPT_ERR_MAX];
	char *msg = NULL, *again = NULL, *json = NULL;
	size_t len, againlen, jlen;
	int rc = -1;

	if (tlsrpt_mail_compose(r, m, &msg, &len, err, sizeof(err)) != 0 ||
	    tlsrpt_mail_compose(r, m, &again, &againlen, err, sizeof(err)) != 0 ||
	    tlsrpt_build_json(r, &json, &jlen, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		goto out;
	}
	if (tool_write(dir, name, ".eml", msg, len) != 0 ||
	    tool_write(dir, name, ".again.eml", again, againlen) != 0 ||
	    tool_write(dir, name, ".json", json, jlen) != 0)
		goto out;
	printf("%s\t%s\t%lld\n", name, m->policy_domain, (long long)m->now);
	rc = 0;
out:
	free(msg);
	free(again);
	free(json);
	return rc;
}

int
main(int argc, char **argv)
{
	struct tlsrpt_report full, longr;
	struct tlsrpt_policy full_policies[3];
	struct dkim_key key;
	char err[TLSRPT_ERR_MAX], sel[DKIM_SELECTOR_MAX], *txt;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: tlsrpt_mail_tool DIR\n");
		return 2;
	}
	if (dkim_key_generate(&key, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	dkim_selector(SENT, NULL, 0, sel);
	txt = malloc(strlen(key.public_b64) + 64);
	sprintf(txt, "%s\tmxfleet.example\tv=DKIM1; k=%s; p=%s\n", sel, key.key_type,
	    key.public_b64);
	tlsrpt_sample_full(&full, full_policies);
	longr = full;
	longr.policies = long_policies;
	longr.n_policies = 1;
	longr.report_id = "20240101." LONG_LABEL "@reports." LONG_LABEL ".mxfleet.example";
	struct tlsrpt_mail m = { .from = "tlsrpt-noreply@mxfleet.example",
		.to = "tlsrpt@recipient.example", .submitter = "mxfleet.example",
		.policy_domain = "recipient.example", .nonce = 0x0123456789abcdefULL,
		.now = SENT, .dkim_domain = "mxfleet.example", .dkim_selector = sel,
		.dkim_key_pem = key.private_pem };
	struct tlsrpt_mail ml = m;

	ml.from = "tlsrpt@reports.mxfleet.example";	/* d= is a parent of From's domain */
	ml.to = "tls+reports@" LONG_DOMAIN;
	ml.submitter = LONG_SUBMITTER;
	ml.policy_domain = LONG_DOMAIN;
	ml.message_id = "<given.id@mxfleet.example>";
	ml.unique_id = "u7";
	if (tool_write(argv[1], "dkim", ".txt", txt, strlen(txt)) == 0 &&
	    tool_mail(argv[1], "full", &full, &m) == 0 &&
	    tool_mail(argv[1], "long_names", &longr, &ml) == 0)
		rc = 0;
	free(txt);
	dkim_key_free(&key);
	return rc;
}
