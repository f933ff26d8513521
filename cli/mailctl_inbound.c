/* mailctl tls inbound: STARTTLS of the sessions the fleet received
 * (docs/reports.md, "Inbound TLS view"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"

#define MAILCTL_INBOUND_MAX_SINCE	(400LL * 86400)

static int
mailctl_inbound_usage(void)
{
	fprintf(stderr, "usage: mailctl tls inbound [--since DURATION] "
	    "[--by sender-domain|remote-ip|stage|host] [--json]\n"
	    "  DURATION: seconds, or a number with s, m, h or d (default 1h)\n");
	return 2;
}

/* "90", "90s", "15m", "1h", "2d": seconds, 1 .. 400 days; -1 if not. */
long long
mailctl_inbound_duration(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10), unit = 1;

	if (end == s || v < 1)
		return -1;
	if (*end != '\0') {
		const char *units = "smhd";
		const long long mult[] = { 1, 60, 3600, 86400 };
		const char *u = strchr(units, *end);
		if (u == NULL || end[1] != '\0')
			return -1;
		unit = mult[u - units];
	}
	if (v > MAILCTL_INBOUND_MAX_SINCE / unit)
		return -1;
	return v * unit;
}

static double
mailctl_inbound_rate(const Mxfleet__V1__InboundTlsGroup *g)
{
	return g->attempted ? 100.0 * (double)g->failed / (double)g->attempted : 0.0;
}

static json_t *
mailctl_inbound_counts_json(Mxfleet__V1__InboundTlsCount **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:I}", "name", v[i]->name,
		    "sessions", (json_int_t)v[i]->sessions));
	return a;
}

static json_t *
mailctl_inbound_group_json(const Mxfleet__V1__InboundTlsGroup *g)
{
	json_t *f = json_array();
	for (size_t i = 0; i < g->n_failures; i++)
		json_array_append_new(f, json_pack("{s:s, s:s, s:I}", "stage", g->failures[i]->stage,
		    "reason", g->failures[i]->reason, "sessions", (json_int_t)g->failures[i]->sessions));
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "key", g->key,
	    "sessions", (json_int_t)g->sessions, "not_offered", (json_int_t)g->not_offered,
	    "offered", (json_int_t)g->offered, "attempted", (json_int_t)g->attempted,
	    "established", (json_int_t)g->established, "failed", (json_int_t)g->failed,
	    "failure_rate", g->attempted ? (double)g->failed / (double)g->attempted : 0.0,
	    "failures", f);
}

static void
mailctl_inbound_json(const Mxfleet__V1__InboundTlsReport *r)
{
	json_t *groups = json_array();
	for (size_t i = 0; i < r->n_groups; i++)
		json_array_append_new(groups, mailctl_inbound_group_json(r->groups[i]));
	mailctl_print_json(json_pack("{s:I, s:s, s:b, s:o, s:o, s:o}",
	    "since_unix", (json_int_t)r->since_unix, "by", r->by, "truncated", (int)r->truncated,
	    "groups", groups, "versions", mailctl_inbound_counts_json(r->versions, r->n_versions),
	    "ciphers", mailctl_inbound_counts_json(r->ciphers, r->n_ciphers)));
}

static void
mailctl_inbound_counts_text(const char *title, Mxfleet__V1__InboundTlsCount **v, size_t n)
{
	printf("\n%-40s %9s\n", title, "SESSIONS");
	for (size_t i = 0; i < n; i++)
		printf("%-40s %9" PRIu64 "\n", v[i]->name, v[i]->sessions);
}

/* One line per group, the failing ones first, each followed by its
 * failures ("  failed N STAGE REASON"); then TLS versions and ciphers. */
static void
mailctl_inbound_text(const Mxfleet__V1__InboundTlsReport *r)
{
	char title[32];
	size_t i;

	for (i = 0; r->by[i] && i + 1 < sizeof(title); i++)
		title[i] = (char)(r->by[i] >= 'a' && r->by[i] <= 'z' ? r->by[i] - 32 : r->by[i]);
	title[i] = '\0';
	printf("%-40s %9s %9s %11s %7s %6s %8s %11s\n", title, "SESSIONS", "ATTEMPTED",
	    "ESTABLISHED", "FAILED", "FAIL%", "OFFERED", "NOT-OFFERED");
	for (i = 0; i < r->n_groups; i++) {
		const Mxfleet__V1__InboundTlsGroup *g = r->groups[i];
		printf("%-40s %9" PRIu64 " %9" PRIu64 " %11" PRIu64 " %7" PRIu64 " %6.1f %8" PRIu64
		    " %11" PRIu64 "\n", g->key, g->sessions, g->attempted, g->established, g->failed,
		    mailctl_inbound_rate(g), g->offered, g->not_offered);
		for (size_t k = 0; k < g->n_failures; k++)
			printf("  failed %" PRIu64 " %s %s\n", g->failures[k]->sessions,
			    g->failures[k]->stage, g->failures[k]->reason);
	}
	mailctl_inbound_counts_text("TLS-VERSION", r->versions, r->n_versions);
	mailctl_inbound_counts_text("CIPHER", r->ciphers, r->n_ciphers);
	if (r->truncated)
		printf("\n(truncated: more distinct sessions than controld reads at once)\n");
}

/* tls inbound [--since DURATION] [--by KEY] [--json] */
int
mailctl_tls_inbound(int argc, char **argv)
{
	Mxfleet__V1__InboundTlsQuery q = MXFLEET__V1__INBOUND_TLS_QUERY__INIT;
	ProtobufCMessage *r;
	long long since = 3600;
	int rc, json = 0;

	q.by = "sender-domain";
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
			if ((since = mailctl_inbound_duration(argv[++i])) < 0)
				return mailctl_inbound_usage();
		} else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
			q.by = argv[++i];
		else
			return mailctl_inbound_usage();
	}
	q.since_unix = (int64_t)time(NULL) - since;
	if ((rc = mailctl_call("InboundTls", &q.base, &r,
	    &mxfleet__v1__inbound_tls_report__descriptor)))
		return rc;
	if (json)
		mailctl_inbound_json((Mxfleet__V1__InboundTlsReport *)r);
	else
		mailctl_inbound_text((Mxfleet__V1__InboundTlsReport *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}
