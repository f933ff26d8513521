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

/* ---- issue 12: rptsend: the deliveries of the reports controld sends ---- */

#define MAILCTL_REPORTS_SEND_USAGE \
	"usage: mailctl reports sent|pending [--json]\n" \
	"       mailctl reports show ID [--json]\n" \
	"       mailctl reports send-now [--day YYYY-MM-DD] [--json]\n" \
	"       mailctl reports suppress ADDRESS --until YYYY-MM-DD[THH:MM:SSZ]|Nd|Nh [--json]\n" \
	"       mailctl reports unsuppress ADDRESS [--json]\n"

static const char *
mailctl_reports_time(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0)
		return "-";
	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static json_t *
mailctl_reports_delivery_json(const Mxfleet__V1__ReportDelivery *d, int with_report)
{
	json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:s}",
	    "id", (json_int_t)d->id, "day", d->day, "policy_domain", d->policy_domain,
	    "kind", d->kind, "rua", d->rua, "state", d->state, "attempts",
	    (json_int_t)d->attempts, "next_attempt_unix", (json_int_t)d->next_attempt_unix,
	    "first_attempt_unix", (json_int_t)d->first_attempt_unix, "sent_unix",
	    (json_int_t)d->sent_unix, "last_error", d->last_error, "report_id", d->report_id);
	if (with_report) {
		json_t *r = json_loads(d->report_json, 0, NULL);
		json_object_set_new(o, "report", r ? r : json_string(d->report_json));
	}
	return o;
}

static void
mailctl_reports_delivery_print(const Mxfleet__V1__ReportDeliveriesReply *r)
{
	char t1[32], t2[32];

	printf("%-6s %-10s %-28s %-6s %-10s %3s %-20s %-20s %s\n", "ID", "DAY", "DOMAIN", "KIND",
	    "STATE", "TRY", "SENT", "NEXT", "RUA");
	for (size_t i = 0; i < r->n_deliveries; i++) {
		const Mxfleet__V1__ReportDelivery *d = r->deliveries[i];
		int done = strcmp(d->state, "pending") != 0 && strcmp(d->state, "sending") != 0;
		printf("%-6llu %-10s %-28s %-6s %-10s %3u %-20s %-20s %s\n",
		    (unsigned long long)d->id, d->day, d->policy_domain, d->kind, d->state,
		    d->attempts, mailctl_reports_time(d->sent_unix, t1, sizeof(t1)),
		    done ? "-" : mailctl_reports_time(d->next_attempt_unix, t2, sizeof(t2)), d->rua);
		if (d->last_error[0])
			printf("       last error: %s\n", d->last_error);
	}
}

/* reports sent|pending [--json], reports show ID [--json] */
static int
mailctl_reports_list(const char *which, uint64_t id, int json)
{
	Mxfleet__V1__ReportDeliveriesRequest q = MXFLEET__V1__REPORT_DELIVERIES_REQUEST__INIT;
	Mxfleet__V1__ReportDeliveriesReply *r;
	int rc;

	q.state = (char *)which;
	q.id = id;
	if ((rc = mailctl_call("ReportDeliveries", &q.base, (ProtobufCMessage **)&r,
	    &mxfleet__v1__report_deliveries_reply__descriptor)))
		return rc;
	if (json && id > 0 && r->n_deliveries == 1)
		mailctl_print_json(mailctl_reports_delivery_json(r->deliveries[0], 1));
	else if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < r->n_deliveries; i++)
			json_array_append_new(a, mailctl_reports_delivery_json(r->deliveries[i], 0));
		mailctl_print_json(json_pack("{s:o}", "deliveries", a));
	} else {
		mailctl_reports_delivery_print(r);
		if (id > 0 && r->n_deliveries == 1)
			printf("report %s\n%s\n", r->deliveries[0]->report_id,
			    r->deliveries[0]->report_json);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

/* reports send-now [--day D] [--json] */
static int
mailctl_reports_send_now(const char *day, int json)
{
	Mxfleet__V1__ReportSendNowRequest q = MXFLEET__V1__REPORT_SEND_NOW_REQUEST__INIT;
	Mxfleet__V1__ReportSendNowReply *r;
	int rc;

	q.day = (char *)(day ? day : "");
	mailctl_call_timeout_ms = 600000;
	if ((rc = mailctl_call("ReportSendNow", &q.base, (ProtobufCMessage **)&r,
	    &mxfleet__v1__report_send_now_reply__descriptor)))
		return rc;
	if (json) {
		json_t *e = json_array();
		for (size_t i = 0; i < r->n_errors; i++)
			json_array_append_new(e, json_string(r->errors[i]));
		mailctl_print_json(json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o}", "day", r->day,
		    "planned", (json_int_t)r->planned, "sent", (json_int_t)r->sent, "retrying",
		    (json_int_t)r->retrying, "failed", (json_int_t)r->failed, "suppressed",
		    (json_int_t)r->suppressed, "errors", e));
	} else {
		printf("day %s: planned %u, sent %u, retrying %u, failed %u, suppressed %u\n",
		    r->day, r->planned, r->sent, r->retrying, r->failed, r->suppressed);
		for (size_t i = 0; i < r->n_errors; i++)
			printf("  %s\n", r->errors[i]);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

/* --until: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC), or Nd / Nh from now. */
static int
mailctl_reports_until(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	char *end;
	long long n = strtoll(s, &end, 10);

	if (end != s && n > 0 && (strcmp(end, "d") == 0 || strcmp(end, "h") == 0)) {
		*out = (int64_t)time(NULL) + n * (*end == 'd' ? 86400 : 3600);
		return 0;
	}
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == 'T')
		end = strptime(end, "T%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* reports suppress ADDRESS --until T | unsuppress ADDRESS */
static int
mailctl_reports_suppress(const char *address, const char *until, int remove, int json)
{
	Mxfleet__V1__ReportSuppressRequest q = MXFLEET__V1__REPORT_SUPPRESS_REQUEST__INIT;
	Mxfleet__V1__ReportSuppressReply *r;
	int rc;

	q.address = (char *)address;
	q.remove = remove;
	if (!remove && (until == NULL || mailctl_reports_until(until, &q.until_unix) < 0)) {
		fprintf(stderr, "mailctl: reports suppress: --until YYYY-MM-DD[THH:MM:SSZ], Nd or "
		    "Nh is required\n" MAILCTL_REPORTS_SEND_USAGE);
		return 2;
	}
	if ((rc = mailctl_call("ReportSuppress", &q.base, (ProtobufCMessage **)&r,
	    &mxfleet__v1__report_suppress_reply__descriptor)))
		return rc;
	if (json)
		mailctl_print_json(json_pack("{s:s,s:b,s:I}", "address", address, "changed",
		    r->changed, "until_unix", (json_int_t)(remove ? 0 : q.until_unix)));
	else if (remove)
		printf("%s: %s\n", address, r->changed ? "no longer suppressed" : "was not suppressed");
	else
		printf("%s: suppressed until %s\n", address, until);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

static int
mailctl_reports_is_send_cmd(const char *c)
{
	static const char *const cmds[] = { "sent", "pending", "show", "send-now", "suppress",
	    "unsuppress", NULL };

	for (size_t i = 0; cmds[i]; i++)
		if (strcmp(c, cmds[i]) == 0)
			return 1;
	return 0;
}

static int
mailctl_reports_send(int argc, char **argv)
{
	const char *cmd = argv[0], *arg = NULL, *day = NULL, *until = NULL;
	int json = 0;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--day") == 0 && i + 1 < argc)
			day = argv[++i];
		else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
			until = argv[++i];
		else if (argv[i][0] != '-' && arg == NULL)
			arg = argv[i];
		else {
			fprintf(stderr, "mailctl: reports %s: unexpected %s\n" MAILCTL_REPORTS_SEND_USAGE,
			    cmd, argv[i]);
			return 2;
		}
	}
	int wants_arg = strcmp(cmd, "show") == 0 || strcmp(cmd, "suppress") == 0 ||
	    strcmp(cmd, "unsuppress") == 0;
	if (wants_arg != (arg != NULL) || (day && strcmp(cmd, "send-now") != 0) ||
	    (until && strcmp(cmd, "suppress") != 0)) {
		fprintf(stderr, MAILCTL_REPORTS_SEND_USAGE);
		return 2;
	}
	if (strcmp(cmd, "sent") == 0 || strcmp(cmd, "pending") == 0)
		return mailctl_reports_list(cmd, 0, json);
	if (strcmp(cmd, "show") == 0) {
		unsigned long long id = strtoull(arg, &end, 10);
		if (*end != '\0' || id == 0) {
			fprintf(stderr, "mailctl: reports show: ID is a delivery number\n");
			return 2;
		}
		return mailctl_reports_list("", id, json);
	}
	if (strcmp(cmd, "send-now") == 0)
		return mailctl_reports_send_now(day, json);
	return mailctl_reports_suppress(arg, until, strcmp(cmd, "unsuppress") == 0, json);
}

/* ---- received reports (issue 12: rptrecv) ---- */

#define MAILCTL_REPORTS_RECEIVED_USAGE \
	"usage: mailctl reports received [--domain D] [--since DURATION] [--json]\n" \
	"       mailctl reports show rID [--json]   (a received report: its id from 'received')\n" \
	"  DURATION: seconds, or a number with s, m, h or d (default 24h)\n"

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
		printf("r%-5llu %-20s %-12s REFUSED %s (to %s, from %s)\n",
		    (unsigned long long)r->id, mailctl_reports_time(r->received_unix, t,
		    sizeof(t)), r->host_id, r->refused, r->recipient,
		    r->header_from[0] ? r->header_from : r->mail_from);
	else
		printf("r%-5llu %-20s %-12s %-24s %-28s %9llu %9llu %s\n",
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
		else if (!have && argv[i][0] == 'r' && (q.id = strtoull(argv[i] + 1, &end, 10)) > 0 &&
		    *end == '\0')
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
	if (argc >= 1 && strcmp(argv[0], "received") == 0)
		return mailctl_reports_received(argc - 1, argv + 1);
	/* show rN: a report another domain sent us; show N: one we send. */
	if (argc >= 1 && strcmp(argv[0], "show") == 0)
		for (int i = 1; i < argc; i++)
			if (argv[i][0] == 'r')
				return mailctl_reports_show(argc - 1, argv + 1);
	if (argc >= 1 && mailctl_reports_is_send_cmd(argv[0]))
		return mailctl_reports_send(argc, argv);
	fprintf(stderr, MAILCTL_REPORTS_PREVIEW_USAGE MAILCTL_REPORTS_SEND_USAGE
	    MAILCTL_REPORTS_RECEIVED_USAGE);
	return 2;
}
