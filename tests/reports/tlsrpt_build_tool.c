/* Writes the TLS reports controld would send for a few fixed days into a
 * directory, for test_report_schema.py to check with tools that are not
 * ours (a JSON Schema validator, Python's gzip):
 *
 *     tlsrpt_build_tool DIR
 *
 * For each report NAME: DIR/NAME.json and DIR/NAME.json.gz, and one line
 * "NAME<TAB>rfc-file-name" on stdout. The reports cover every policy type,
 * every RFC 8460 4.3 result type, every optional member set and unset, and
 * strings that need JSON escaping. Exit 1 with a reason on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt.h"
#include "tlsrpt_sample.h"

static struct tlsrpt_policy minimal_policies[] = {
	{ .policy_type = "no-policy-found", .policy_domain = "quiet.example" },
};

/* A DANE report to an MX host's own _smtp._tls record. */
static struct tlsrpt_failure host_failures[] = {
	{ .result_type = "tlsa-invalid", .receiving_mx_hostname = "mx1.recipient.example",
	  .receiving_ip = "198.51.100.7", .failed_session_count = 4 },
	{ .result_type = "dnssec-invalid", .receiving_mx_hostname = "mx1.recipient.example",
	  .failed_session_count = 1 },
	{ .result_type = "dane-required", .sending_mta_ip = "192.0.2.12",
	  .failed_session_count = 2 },
};
static struct tlsrpt_policy host_policies[] = {
	{ .policy_type = "tlsa", .policy_string = tlsa_strings, .n_policy_string = 1,
	  .policy_domain = "mx1.recipient.example", .mx_host = sts_mx, .n_mx_host = 1,
	  .total_success = 10, .total_failure = 7, .failures = host_failures,
	  .n_failures = 3 },
};

static struct tlsrpt_failure every_failure[] = {
	{ .result_type = "starttls-not-supported", .failed_session_count = 1 },
	{ .result_type = "certificate-host-mismatch", .failed_session_count = 1 },
	{ .result_type = "certificate-expired", .failed_session_count = 1 },
	{ .result_type = "certificate-not-trusted", .failure_reason_code = "self-signed",
	  .failed_session_count = 1 },
	{ .result_type = "validation-failure", .failed_session_count = 1 },
	{ .result_type = "tlsa-invalid", .failed_session_count = 1 },
	{ .result_type = "dnssec-invalid", .failed_session_count = 1 },
	{ .result_type = "dane-required", .failed_session_count = 1 },
	{ .result_type = "sts-policy-fetch-error", .failed_session_count = 1 },
	{ .result_type = "sts-policy-invalid", .failed_session_count = 1 },
	{ .result_type = "sts-webpki-invalid", .failed_session_count = 1 },
};
static struct tlsrpt_policy every_policies[] = {
	{ .policy_type = "sts", .policy_string = sts_strings, .n_policy_string = 4,
	  .policy_domain = "recipient.example", .mx_host = sts_mx, .n_mx_host = 1,
	  .total_failure = 11, .failures = every_failure, .n_failures = 11 },
};

/* Text that needs JSON escaping and is not ASCII. */
static struct tlsrpt_failure escape_failures[] = {
	{ .result_type = "validation-failure",
	  .failure_reason_code = "said \"no\" \\ then\ttab, caf\xc3\xa9",
	  .failed_session_count = 1 },
};
static struct tlsrpt_policy escape_policies[] = {
	{ .policy_type = "sts", .policy_domain = "xn--bcher-kva.example",
	  .total_failure = 1, .failures = escape_failures, .n_failures = 1 },
};

struct tool_report {
	const char		*name;
	const char		*submitter;
	const char		*unique_id;	/* may be NULL */
	struct tlsrpt_report	 r;
};

#define TOOL_REPORT(nm, uid, org, pols) { nm, "mxfleet.example", uid, { \
	.organization_name = org, .begin = DAY0, .end = DAY0 + 86399, \
	.contact_info = "tlsrpt@mxfleet.example", \
	.report_id = "20240101." nm "@mxfleet.example", \
	.policies = pols, .n_policies = sizeof(pols) / sizeof(pols[0]) } }

static const struct tool_report tool_reports[] = {
	TOOL_REPORT("minimal", NULL, "mxfleet.example", minimal_policies),
	TOOL_REPORT("per_host_tlsa", "h1", "mxfleet.example", host_policies),
	TOOL_REPORT("every_result_type", NULL, "mxfleet.example", every_policies),
	TOOL_REPORT("escaping", NULL, "Exp\xc3\xa9" "diteur \"mx\" fleet", escape_policies),
};

static int
tool_write(const char *dir, const char *name, const char *ext, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
	if ((f = fopen(path, "wb")) == NULL) {
		perror(path);
		return -1;
	}
	if (fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static int
tool_one(const char *dir, const struct tool_report *t)
{
	char err[TLSRPT_ERR_MAX], fname[512];
	char *json = NULL;
	unsigned char *gz = NULL;
	size_t len, gzlen;
	int rc = -1;

	if (tlsrpt_build_json(&t->r, &json, &len, err, sizeof(err)) != 0 ||
	    tlsrpt_gzip(json, len, &gz, &gzlen, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", t->name, err);
		goto out;
	}
	if (tlsrpt_filename(t->submitter, t->r.policies[0].policy_domain, t->r.begin,
	    t->r.end, t->unique_id, 1, fname, sizeof(fname)) != 0) {
		fprintf(stderr, "%s: no file name\n", t->name);
		goto out;
	}
	if (tool_write(dir, t->name, ".json", json, len) != 0 ||
	    tool_write(dir, t->name, ".json.gz", gz, gzlen) != 0)
		goto out;
	printf("%s\t%s\n", t->name, fname);
	rc = 0;
out:
	free(json);
	free(gz);
	return rc;
}

int
main(int argc, char **argv)
{
	struct tool_report full = { "full", "mxfleet.example", "a1", { 0 } };
	struct tlsrpt_policy full_policies[3];

	if (argc != 2) {
		fprintf(stderr, "usage: tlsrpt_build_tool DIR\n");
		return 2;
	}
	tlsrpt_sample_full(&full.r, full_policies);
	if (tool_one(argv[1], &full) != 0)
		return 1;
	for (size_t i = 0; i < sizeof(tool_reports) / sizeof(tool_reports[0]); i++)
		if (tool_one(argv[1], &tool_reports[i]) != 0)
			return 1;
	return 0;
}
