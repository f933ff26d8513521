/* What mailctl.c shares with the files of its command groups
 * (mailctl_<group>.c). */
#ifndef MXFLEET_MAILCTL_H
#define MXFLEET_MAILCTL_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

/* Where controld is and how to reach it: set by mailctl.c's options. */
struct mailctl_conn {
	const char	*socket, *server, *cert, *key, *ca, *authority;
	SSL_CTX		*tls;
	char		 host[256];
	int		 port;
};
extern struct mailctl_conn mailctl_conn;

/* One Admin call to controld; 0 with *resp (protobuf_c_message_free_unpacked),
 * else the exit status (message printed): 1 refused, 2 usage, 3 try later. */
int mailctl_call(const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    const ProtobufCMessageDescriptor *rdesc);
/* How long mailctl_call waits for the answer (30 s; a DNS check longer). */
extern int mailctl_call_timeout_ms;
/* A configuration change: prints the version of the snapshot it answers. */
int mailctl_change(const char *method, const ProtobufCMessage *req);

/* Print o (indented, keys in order) on stdout and release it: --json. */
void mailctl_print_json(json_t *o);
/* --json was given (mailctl_json.c): set by mailctl_json_arg, which takes
 * every "--json" out of argv (*argc updated), and by commands that parse
 * their own; mailctl_change prints JSON when it is set. */
extern int mailctl_json;
int mailctl_json_arg(int *argc, char **argv);
/* A protobuf message as a JSON object: the .proto's field names, enums as
 * their value names in lower case without the enum's name ("inbound"). */
json_t *mailctl_pb_json(const ProtobufCMessage *m);

/* mailctl hosts (mailctl_hosts.c): exit 0 every host healthy, 1 not. */
int mailctl_hosts(int argc, char **argv);
/* mailctl domain|route|policy|outcomes (mailctl_config.c) */
int mailctl_domain(int argc, char **argv);
int mailctl_route(int argc, char **argv);
int mailctl_policy(int argc, char **argv);
int mailctl_outcomes(int argc, char **argv);
/* mailctl pki (mailctl_pki.c): local commands, and revoke through controld. */
int mailctl_pki(int argc, char **argv);
int mailctl_pki_revoke(int argc, char **argv);

/* mailctl dns ... (mailctl_dns.c) */
int mailctl_dns(int argc, char **argv);
/* mailctl tls ... (mailctl_tls.c) */
int mailctl_tls(int argc, char **argv);
/* mailctl tls inbound ... (mailctl_inbound.c) */
int mailctl_tls_inbound(int argc, char **argv);
/* "90", "90s", "15m", "1h", "2d": seconds, 1 .. 400 days; -1 if not. */
long long mailctl_inbound_duration(const char *s);
/* mailctl reports ... (mailctl_reports.c) */
int mailctl_reports(int argc, char **argv);
/* mailctl queue ... (mailctl_queue.c) */
int mailctl_queue(int argc, char **argv);

#endif
