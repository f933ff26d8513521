/* The TLS report that test_tlsrpt_build.c expects byte for byte and that
 * tlsrpt_build_tool writes as "full": an sts policy with failures (every
 * optional member set in one of them), a tlsa policy without, and a
 * no-policy-found policy. Included by those two files and by
 * test_tlsrpt_mail.c and tlsrpt_mail_tool.c (the report the mails carry). */
#ifndef MXFLEET_TLSRPT_SAMPLE_H
#define MXFLEET_TLSRPT_SAMPLE_H

#include "tlsrpt.h"

#define DAY0	1704067200	/* 2024-01-01T00:00:00Z */

static char *sts_strings[] = { "version: STSv1", "mode: enforce",
	"mx: mx1.recipient.example", "max_age: 604800" };
static char *sts_mx[] = { "mx1.recipient.example" };
static char *tlsa_strings[] = {
	"3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6" };
static char *tlsa_mx[] = { "mx1.recipient.example", "mx2.recipient.example" };

static struct tlsrpt_failure sts_failures[] = {
	{ .result_type = "certificate-expired", .sending_mta_ip = "192.0.2.10",
	  .receiving_mx_hostname = "mx1.recipient.example", .receiving_ip = "198.51.100.7",
	  .failed_session_count = 3 },
	{ .result_type = "validation-failure", .sending_mta_ip = "2001:db8::25",
	  .receiving_mx_hostname = "mx1.recipient.example",
	  .receiving_mx_helo = "mx1-helo.recipient.example", .receiving_ip = "198.51.100.7",
	  .additional_information = "https://mxfleet.example/tls/1",
	  .failure_reason_code = "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	  .failed_session_count = 2 },
};
static struct tlsrpt_failure npf_failures[] = {
	{ .result_type = "starttls-not-supported", .sending_mta_ip = "192.0.2.11",
	  .receiving_mx_hostname = "mx.other.example", .failed_session_count = 1 },
};

/* A fresh copy each time, so a test may break one field. */
static void
tlsrpt_sample_full(struct tlsrpt_report *r, struct tlsrpt_policy pols[3])
{
	pols[0] = (struct tlsrpt_policy){ .policy_type = "sts",
		.policy_string = sts_strings, .n_policy_string = 4,
		.policy_domain = "recipient.example", .mx_host = sts_mx, .n_mx_host = 1,
		.total_success = 120, .total_failure = 5,
		.failures = sts_failures, .n_failures = 2 };
	pols[1] = (struct tlsrpt_policy){ .policy_type = "tlsa",
		.policy_string = tlsa_strings, .n_policy_string = 1,
		.policy_domain = "recipient.example", .mx_host = tlsa_mx, .n_mx_host = 2,
		.total_success = 40 };
	pols[2] = (struct tlsrpt_policy){ .policy_type = "no-policy-found",
		.policy_domain = "other.example", .total_success = 7, .total_failure = 1,
		.failures = npf_failures, .n_failures = 1 };
	*r = (struct tlsrpt_report){ .organization_name = "mxfleet.example",
		.begin = DAY0, .end = DAY0 + 86399,
		.contact_info = "tlsrpt@mxfleet.example",
		.report_id = "20240101.recipient.example@mxfleet.example",
		.policies = pols, .n_policies = 3 };
}

#endif
