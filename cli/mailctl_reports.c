/* mailctl reports: the TLS reports (RFC 8460) controld sends
 * (docs/reports.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int
mailctl_reports(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "preview") == 0)
		return mailctl_reports_preview(argc - 1, argv + 1);
	fprintf(stderr, MAILCTL_REPORTS_PREVIEW_USAGE);
	return 2;
}
