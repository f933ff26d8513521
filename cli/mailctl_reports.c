/* mailctl reports: the TLS reports (RFC 8460) controld sends
 * (docs/reports.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"

#define MAILCTL_REPORTS_PREVIEW_USAGE \
	"usage: mailctl reports preview --domain DOMAIN --day YYYY-MM-DD [--host] [--json]\n"

/* The report for a terminal: its file name, then the JSON indented (the
 * members in the order sent). --json: the bytes sent, nothing added. */
static int
mailctl_reports_print(const Mxfleet__V1__ReportPreviewReply *p, int json)
{
	json_error_t je;
	json_t *o;

	if (json) {
		fwrite(p->json, 1, strlen(p->json), stdout);
		return 0;
	}
	if ((o = json_loads(p->json, 0, &je)) == NULL) {
		fprintf(stderr, "mailctl: ReportPreview: the answer is not JSON: %s\n", je.text);
		return 3;
	}
	printf("file %s\n", p->filename);
	mailctl_print_json(o);
	return 0;
}

/* reports preview --domain D --day YYYY-MM-DD [--host] [--json] */
static int
mailctl_reports_preview(int argc, char **argv)
{
	Mxfleet__V1__ReportPreviewRequest q = MXFLEET__V1__REPORT_PREVIEW_REQUEST__INIT;
	ProtobufCMessage *r;
	int rc, json = 0;

	q.kind = "domain";
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			q.domain = argv[++i];
		else if (strcmp(argv[i], "--day") == 0 && i + 1 < argc)
			q.day = argv[++i];
		else if (strcmp(argv[i], "--host") == 0)
			q.kind = "host";
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			fprintf(stderr, "mailctl: reports preview: unexpected %s\n"
			    MAILCTL_REPORTS_PREVIEW_USAGE, argv[i]);
			return 2;
		}
	}
	if (q.domain[0] == '\0' || q.day[0] == '\0') {
		fprintf(stderr, MAILCTL_REPORTS_PREVIEW_USAGE);
		return 2;
	}
	if ((rc = mailctl_call("ReportPreview", &q.base, &r,
	    &mxfleet__v1__report_preview_reply__descriptor)))
		return rc;
	rc = mailctl_reports_print((Mxfleet__V1__ReportPreviewReply *)r, json);
	protobuf_c_message_free_unpacked(r, NULL);
	return rc;
}

/* ---- received reports (issue 12: rptrecv) ---- */

#define MAILCTL_REPORTS_RECEIVED_USAGE \
	"usage: mailctl reports received [--domain D] [--since DURATION] [--json]\n" \
	"       mailctl reports show ID [--json]\n" \
	"  DURATION: seconds, or a number with s, m, h or d (default 24h)\n"

static const char *
mailctl_reports_time(int64_t t, char *buf, size_t sz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static json_t *
mailctl_reports_received_json(const Mxfleet__V1__ReceivedReport *r)
{
	json_t *d = json_array(), *o;

	for (size_t i = 0; i < r->n_policy_domains; i++)
		json_array_append_new(d, json_string(r->policy_domains[i]));
	o = json_pack("{sI sI ss ss ss ss so* sI sI ss ss so sI sI ss ss ss ss sI}",
	    "id", (json_int_t)r->id, "received_unix", (json_int_t)r->received_unix,
	    "host_id", r->host_id, "recipient", r->recipient, "mail_from", r->mail_from,
	    "header_from", r->header_from, "refused", r->refused[0] ? json_string(r->refused) :
	    json_null(), "begin_unix", (json_int_t)r->begin_unix, "end_unix",
	    (json_int_t)r->end_unix, "organization_name", r->organization_name, "report_id",
	    r->report_id, "policy_domains", d, "total_success", (json_int_t)r->total_success,
	    "total_failure", (json_int_t)r->total_failure, "contact_info", r->contact_info,
	    "subject", r->subject, "report_domain", r->report_domain, "report_submitter",
	    r->report_submitter, "raw_bytes", (json_int_t)r->raw_bytes);
	if (o && r->policies_json[0]) {
		json_t *p = json_loads(r->policies_json, 0, NULL);
		json_object_set_new(o, "policies", p ? p : json_null());
	}
	return o;
}

static void
mailctl_reports_received_line(const Mxfleet__V1__ReceivedReport *r)
{
	char t[32], doms[256] = "";
	size_t n = 0;

	for (size_t i = 0; i < r->n_policy_domains && n < sizeof(doms); i++)
		n += (size_t)snprintf(doms + n, sizeof(doms) - n, "%s%s", i ? "," : "",
		    r->policy_domains[i]);
	if (r->refused[0])
		printf("%-6llu %-20s %-12s REFUSED %s (to %s, from %s)\n",
		    (unsigned long long)r->id, mailctl_reports_time(r->received_unix, t,
		    sizeof(t)), r->host_id, r->refused, r->recipient,
		    r->header_from[0] ? r->header_from : r->mail_from);
	else
		printf("%-6llu %-20s %-12s %-24s %-28s %9llu %9llu %s\n",
		    (unsigned long long)r->id, mailctl_reports_time(r->received_unix, t,
		    sizeof(t)), r->host_id, r->organization_name[0] ? r->organization_name : "-",
		    doms[0] ? doms : "-", (unsigned long long)r->total_success,
		    (unsigned long long)r->total_failure, r->report_id);
}

/* reports received [--domain D] [--since DURATION] [--json] */
static int
mailctl_reports_received(int argc, char **argv)
{
	Mxfleet__V1__ReceivedReportQuery q = MXFLEET__V1__RECEIVED_REPORT_QUERY__INIT;
	Mxfleet__V1__ReceivedReportList *l;
	ProtobufCMessage *r;
	long long since = 86400;
	int rc, json = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			q.domain = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc &&
		    (since = mailctl_inbound_duration(argv[++i])) >= 0)
			;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			fprintf(stderr, "mailctl: reports received: unexpected or bad %s\n"
			    MAILCTL_REPORTS_RECEIVED_USAGE, argv[i]);
			return 2;
		}
	}
	q.since_unix = (int64_t)time(NULL) - since;
	if ((rc = mailctl_call("ReceivedReports", &q.base, &r,
	    &mxfleet__v1__received_report_list__descriptor)))
		return rc;
	l = (Mxfleet__V1__ReceivedReportList *)r;
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < l->n_reports; i++)
			json_array_append_new(a, mailctl_reports_received_json(l->reports[i]));
		mailctl_print_json(json_pack("{sI so sb}", "since_unix", (json_int_t)q.since_unix,
		    "reports", a, "truncated", (int)l->truncated));
	} else {
		printf("%-6s %-20s %-12s %-24s %-28s %9s %9s %s\n", "ID", "RECEIVED", "HOST",
		    "ORGANIZATION", "POLICY-DOMAINS", "SUCCESS", "FAILURE", "REPORT-ID");
		for (size_t i = 0; i < l->n_reports; i++)
			mailctl_reports_received_line(l->reports[i]);
		if (l->truncated)
			printf("(more: narrow with --since or --domain)\n");
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

static void
mailctl_reports_show_policy(json_t *p)
{
	json_t *v, *f;
	size_t i, k;

	printf("policy %s %s: %lld successful, %lld failed sessions\n",
	    json_string_value(json_object_get(p, "policy-type")) ?: "-",
	    json_string_value(json_object_get(p, "policy-domain")) ?: "-",
	    (long long)json_integer_value(json_object_get(p, "total-successful-session-count")),
	    (long long)json_integer_value(json_object_get(p, "total-failure-session-count")));
	json_array_foreach(json_object_get(p, "mx-host"), i, v)
		printf("  mx-host %s\n", json_string_value(v));
	json_array_foreach(json_object_get(p, "policy-string"), i, v)
		printf("  policy-string %s\n", json_string_value(v));
	json_array_foreach(json_object_get(p, "failure-details"), i, f) {
		printf("  failed %lld %s", (long long)json_integer_value(json_object_get(f,
		    "failed-session-count")), json_string_value(json_object_get(f, "result-type")));
		const char *keys[] = { "sending-mta-ip", "receiving-mx-hostname",
		    "receiving-mx-helo", "receiving-ip", "failure-reason-code",
		    "additional-information" };
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if ((v = json_object_get(f, keys[k])) != NULL)
				printf(" %s=%s", keys[k], json_string_value(v));
		printf("\n");
	}
}

static void
mailctl_reports_show_text(const Mxfleet__V1__ReceivedReport *r)
{
	char t[32], t2[32];
	json_t *pol, *p;
	size_t i;

	printf("report %llu received %s by %s for %s\n", (unsigned long long)r->id,
	    mailctl_reports_time(r->received_unix, t, sizeof(t)), r->host_id, r->recipient);
	printf("envelope from <%s>, From: %s\n", r->mail_from, r->header_from);
	printf("subject %s\n", r->subject);
	if (r->refused[0]) {
		printf("REFUSED %s (%llu bytes kept)\n", r->refused,
		    (unsigned long long)r->raw_bytes);
		return;
	}
	printf("organization %s, contact %s\n", r->organization_name, r->contact_info);
	printf("report-id %s\n", r->report_id);
	printf("date-range %s .. %s\n", mailctl_reports_time(r->begin_unix, t, sizeof(t)),
	    mailctl_reports_time(r->end_unix, t2, sizeof(t2)));
	printf("sessions %llu successful, %llu failed\n", (unsigned long long)r->total_success,
	    (unsigned long long)r->total_failure);
	if ((pol = json_loads(r->policies_json, 0, NULL)) == NULL)
		return;
	json_array_foreach(pol, i, p)
		mailctl_reports_show_policy(p);
	json_decref(pol);
}

/* reports show ID [--json] */
static int
mailctl_reports_show(int argc, char **argv)
{
	Mxfleet__V1__ReceivedReportId q = MXFLEET__V1__RECEIVED_REPORT_ID__INIT;
	ProtobufCMessage *r;
	char *end = NULL;
	int rc, json = 0, have = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!have && (q.id = strtoull(argv[i], &end, 10)) > 0 && *end == '\0')
			have = 1;
		else {
			fprintf(stderr, "mailctl: reports show: unexpected %s\n"
			    MAILCTL_REPORTS_RECEIVED_USAGE, argv[i]);
			return 2;
		}
	}
	if (!have) {
		fprintf(stderr, MAILCTL_REPORTS_RECEIVED_USAGE);
		return 2;
	}
	if ((rc = mailctl_call("ShowReceivedReport", &q.base, &r,
	    &mxfleet__v1__received_report__descriptor)))
		return rc;
	if (json)
		mailctl_print_json(mailctl_reports_received_json(
		    (Mxfleet__V1__ReceivedReport *)r));
	else
		mailctl_reports_show_text((Mxfleet__V1__ReceivedReport *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

int
mailctl_reports(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "preview") == 0)
		return mailctl_reports_preview(argc - 1, argv + 1);
	if (argc >= 1 && (strcmp(argv[0], "received") == 0 || strcmp(argv[0], "show") == 0))
		return (argv[0][0] == 's' ? mailctl_reports_show :
		    mailctl_reports_received)(argc - 1, argv + 1);
	fprintf(stderr, MAILCTL_REPORTS_PREVIEW_USAGE);
	return 2;
}
