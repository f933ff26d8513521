/* mailctl tls: the TLSA key rollover of a host (docs/dns.md, "Rollover"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"

static void
mailctl_tls_time(const char *label, int64_t t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ",
	    &tm) == 0)
		snprintf(buf, sizeof(buf), "%" PRId64, t);
	printf("%-11s %s\n", label, buf);
}

static void
mailctl_tls_status_text(const Mxfleet__V1__RolloverStatus *s)
{
	printf("host        %s\nstate       %s\nstatus      %s\nold key     %s\nnew key     %s\n",
	    s->host_id, s->state, s->status, s->old_spki_sha256, s->new_spki_sha256);
	mailctl_tls_time("entered", s->entered_unix);
	if (s->wait_until_unix)
		mailctl_tls_time("wait until", s->wait_until_unix);
}

static void
mailctl_tls_status_json(const Mxfleet__V1__RolloverStatus *s)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "host_id", s->host_id,
	    "state", s->state, "status", s->status, "old_spki_sha256", s->old_spki_sha256,
	    "new_spki_sha256", s->new_spki_sha256, "entered_unix", (json_int_t)s->entered_unix,
	    "wait_until_unix", (json_int_t)s->wait_until_unix);
	mailctl_print_json(o);
}

/* tls rollover HOST [--status | --cancel] [--json] */
static int
mailctl_tls_rollover(int argc, char **argv)
{
	Mxfleet__V1__HostName n = MXFLEET__V1__HOST_NAME__INIT;
	ProtobufCMessage *r;
	int rc, status = 0, cancel = 0, json = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--status") == 0)
			status = 1;
		else if (strcmp(argv[i], "--cancel") == 0)
			cancel = 1;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			argc = 0;
	}
	if (argc < 1 || argv[0][0] == '-' || (status && cancel)) {
		fprintf(stderr, "usage: mailctl tls rollover HOST [--status | --cancel] [--json]\n");
		return 2;
	}
	n.host_id = argv[0];
	const char *method = status ? "GetRollover" : cancel ? "CancelRollover" : "StartRollover";
	if ((rc = mailctl_call(method, &n.base, &r,
	    &mxfleet__v1__rollover_status__descriptor)))
		return rc;
	if (json)
		mailctl_tls_status_json((Mxfleet__V1__RolloverStatus *)r);
	else
		mailctl_tls_status_text((Mxfleet__V1__RolloverStatus *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

int
mailctl_tls(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "rollover") == 0)
		return mailctl_tls_rollover(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "inbound") == 0)
		return mailctl_tls_inbound(argc - 1, argv + 1);
	fprintf(stderr, "usage: mailctl tls rollover HOST [--status] [--json] | tls inbound "
	    "[--since 1h] [--by sender-domain|remote-ip|stage|host] [--json] (see mailctl --help)\n");
	return 2;
}
