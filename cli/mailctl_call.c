/* mailctl: one Admin call to controld, and --json output (mailctl.h).
 * Shared by mailctl.c and the files of its command groups, which call it
 * and nothing else of each other's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "mailctl.h"
#include "mxfleet.pb-c.h"
#include "netaddr.h"
#include "xmalloc.h"

struct mailctl_conn mailctl_conn;
int mailctl_call_timeout_ms = 30000;

/* Exit 1: controld understood and said no (the request is the operator's
 * to fix); anything else is 3, "try again later". */
static int
mailctl_refused(int st)
{
	return st == GRPC_PERMISSION_DENIED || st == GRPC_INVALID_ARGUMENT ||
	    st == GRPC_NOT_FOUND || st == GRPC_ALREADY_EXISTS || st == GRPC_UNIMPLEMENTED ||
	    st == GRPC_FAILED_PRECONDITION;
}

int
mailctl_call(const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    const ProtobufCMessageDescriptor *rdesc)
{
	struct grpc_client_opts o;
	char path[128], msg[600], err[600];
	memset(&o, 0, sizeof(o));
	if (mailctl_conn.socket)
		o.unix_path = mailctl_conn.socket;
	else {
		if (mailctl_conn.server == NULL) {
			fprintf(stderr, "mailctl: say where controld is: --socket PATH or --server HOST:PORT "
			    "(or MAILCTL_SOCKET / MAILCTL_SERVER)\n");
			exit(2);
		}
		if (netaddr_split_hostport(mailctl_conn.server, mailctl_conn.host, sizeof(mailctl_conn.host), &mailctl_conn.port) < 0) {
			fprintf(stderr, "mailctl: --server takes HOST:PORT\n");
			exit(2);
		}
		if (mailctl_conn.tls == NULL) {
			mailctl_conn.tls = grpc_tls_client_ctx(mailctl_conn.cert, mailctl_conn.key, mailctl_conn.ca, err, sizeof(err));
			if (mailctl_conn.tls == NULL) {
				fprintf(stderr, "mailctl: %s (an admin certificate is needed: --cert, --key, --ca)\n", err);
				exit(2);
			}
		}
		o.host = mailctl_conn.host;
		o.port = mailctl_conn.port;
		o.authority = mailctl_conn.authority;
		o.tls = mailctl_conn.tls;
	}
	/* Answers carry whole snapshots and lists: a fleet of many thousand
	 * domains must not make `domain add` fail after the change was made. */
	o.max_message = 64u << 20;
	snprintf(path, sizeof(path), "/mxfleet.v1.Admin/%s", method);
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = xmalloc(n ? n : 1), *out;
	size_t outlen;
	protobuf_c_message_pack(req, buf);
	int st = grpc_unary(&o, path, buf, n, &out, &outlen, msg, sizeof(msg),
	    mailctl_call_timeout_ms);
	free(buf);
	if (st != GRPC_OK) {
		fprintf(stderr, "mailctl: %s: %s%s%s\n", method, grpc_status_name(st), msg[0] ? ": " : "", msg);
		return mailctl_refused(st) ? 1 : 3;
	}
	*resp = protobuf_c_message_unpack(rdesc, NULL, outlen, out);
	free(out);
	if (*resp == NULL) {
		fprintf(stderr, "mailctl: %s: cannot parse the answer\n", method);
		return 3;
	}
	return 0;
}

/* A configuration change: every one answers with the new snapshot. With
 * --json: {change: the Admin method, request: what was asked, config_version,
 * domains, routes, policies: the snapshot's version and counts}. */
int
mailctl_change(const char *method, const ProtobufCMessage *req)
{
	ProtobufCMessage *r;
	int rc = mailctl_call(method, req, &r, &mxfleet__v1__config_snapshot__descriptor);
	if (rc)
		return rc;
	Mxfleet__V1__ConfigSnapshot *s = (Mxfleet__V1__ConfigSnapshot *)r;
	if (mailctl_json)
		mailctl_print_json(json_pack("{s:s, s:o, s:I, s:I, s:I, s:I}", "change", method,
		    "request", mailctl_pb_json(req), "config_version", (json_int_t)s->version,
		    "domains", (json_int_t)s->n_domains, "routes", (json_int_t)s->n_routes,
		    "policies", (json_int_t)s->n_policies));
	else
		printf("config version %llu: %zu domain(s), %zu route(s), %zu TLS policy(ies)\n",
		    (unsigned long long)s->version, s->n_domains, s->n_routes, s->n_policies);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}


void
mailctl_print_json(json_t *o)
{
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", text ? text : "null");
	free(text);
	json_decref(o);
}
