/* mailctl queue list|retry ID|retry all|drop ID: the mail queues of the
 * fleet's hosts, through controld (docs/control-plane.md, "Queue control";
 * docs/mxd.md, "Queue control"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"
#include "timeutil.h"

static int
mailctl_queue_usage(void)
{
	fprintf(stderr, "usage: mailctl queue list [--host H] [--max N] [--wait S] [--json]\n"
	    "       mailctl queue retry ID|all [--host H] [--wait S] [--json]\n"
	    "       mailctl queue drop ID [--host H] [--wait S] [--json]\n"
	    "  without --host: every host seen in the last hour\n");
	return 2;
}

/* What a host sent reaches the terminal without control characters (the
 * scheduler escapes them; a host that does not is not trusted to). */
static char *
mailctl_queue_clean(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

static void
mailctl_queue_clean_reply(Mxfleet__V1__QueueReply *r)
{
	for (size_t i = 0; i < r->n_hosts; i++) {
		Mxfleet__V1__QueueHostResult *h = r->hosts[i];
		mailctl_queue_clean(h->host_id);
		mailctl_queue_clean(h->error);
		mailctl_queue_clean(h->result);
		for (size_t k = 0; k < h->n_messages; k++) {
			Mxfleet__V1__QueueMessage *m = h->messages[k];
			mailctl_queue_clean(m->id);
			mailctl_queue_clean(m->sender);
			mailctl_queue_clean(m->last_error);
			mailctl_queue_clean(m->error);
			for (size_t j = 0; j < m->n_recipients; j++)
				mailctl_queue_clean(m->recipients[j]);
		}
	}
}

static void
mailctl_queue_msg_text(const Mxfleet__V1__QueueMessage *m, const char *host, time_t now)
{
	char a[32], n[32];
	timeutil_duration(a, sizeof(a), (long long)(now - m->arrival_unix));
	timeutil_duration(n, sizeof(n), (long long)(m->next_attempt_unix - now));
	printf("%s  host %s  age %s  size %" PRIu64 "  attempts %u  next %s%s%s\n", m->id, host,
	    m->arrival_unix ? a : "?", m->size, m->attempts,
	    m->next_attempt_unix <= now ? "now" : "in ", m->next_attempt_unix <= now ? "" : n,
	    m->delivering ? "  (being delivered)" : "");
	if (m->error[0])
		printf("  error: %s\n", m->error);
	else
		printf("  from: <%s>\n", m->sender);
	for (size_t i = 0; i < m->n_recipients; i++)
		printf("  to:   <%s>\n", m->recipients[i]);
	if (m->recipients_count > m->n_recipients)
		printf("  to:   ... and %zu more\n", (size_t)m->recipients_count - m->n_recipients);
	if (m->last_error[0])
		printf("  last error: %s\n", m->last_error);
}

static json_t *
mailctl_queue_msg_json(const Mxfleet__V1__QueueMessage *m)
{
	json_t *rcpts = json_array();
	for (size_t i = 0; i < m->n_recipients; i++)
		json_array_append_new(rcpts, json_string(m->recipients[i]));
	return json_pack("{s:s, s:s, s:o, s:i, s:I, s:I, s:i, s:I, s:s?, s:b, s:s?}",
	    "id", m->id, "sender", m->sender, "recipients", rcpts,
	    "recipients_count", (int)m->recipients_count, "size", (json_int_t)m->size,
	    "arrival_unix", (json_int_t)m->arrival_unix, "attempts", (int)m->attempts,
	    "next_attempt_unix", (json_int_t)m->next_attempt_unix,
	    "last_error", m->last_error[0] ? m->last_error : NULL, "delivering", (int)m->delivering,
	    "error", m->error[0] ? m->error : NULL);
}

/* Is this host's failure one to keep quiet about: "no such message" for an
 * id another host acted on (retry ID or drop ID without --host)? */
static int
mailctl_queue_quiet(const Mxfleet__V1__QueueReply *r, const Mxfleet__V1__QueueHostResult *h,
    const char *op)
{
	if (h->ok || strncmp(h->error, "no such message", 15) != 0 ||
	    (strcmp(op, "retry") != 0 && strcmp(op, "drop") != 0))
		return 0;
	for (size_t i = 0; i < r->n_hosts; i++)
		if (r->hosts[i]->ok)
			return 1;
	return 0;
}

static void
mailctl_queue_json(const Mxfleet__V1__QueueReply *r)
{
	json_t *hosts = json_array();
	for (size_t i = 0; i < r->n_hosts; i++) {
		const Mxfleet__V1__QueueHostResult *h = r->hosts[i];
		json_t *msgs = json_array();
		for (size_t k = 0; k < h->n_messages; k++)
			json_array_append_new(msgs, mailctl_queue_msg_json(h->messages[k]));
		json_array_append_new(hosts, json_pack("{s:s, s:b, s:s?, s:s?, s:I, s:I, s:o}",
		    "host", h->host_id, "ok", (int)h->ok, "error", h->ok ? NULL : h->error,
		    "result", h->ok ? h->result : NULL, "total", (json_int_t)h->total,
		    "truncated", (json_int_t)h->truncated, "messages", msgs));
	}
	mailctl_print_json(json_pack("{s:o}", "hosts", hosts));
}

/* The text answer; returns how many messages were listed. */
static uint64_t
mailctl_queue_text(const Mxfleet__V1__QueueReply *r, const char *op)
{
	time_t now = time(NULL);
	uint64_t listed = 0;
	for (size_t i = 0; i < r->n_hosts; i++) {
		const Mxfleet__V1__QueueHostResult *h = r->hosts[i];
		if (!h->ok)
			continue;
		if (strcmp(op, "list") != 0) {
			printf("%s: %s\n", h->host_id, h->result);
			continue;
		}
		for (size_t k = 0; k < h->n_messages; k++) {
			if (listed++)
				printf("\n");
			mailctl_queue_msg_text(h->messages[k], h->host_id, now);
		}
		if (h->truncated)
			printf("%s... %s: truncated, %" PRIu64 " more\n", listed ? "\n" : "",
			    h->host_id, h->truncated);
	}
	return listed;
}

static int
mailctl_queue_print(Mxfleet__V1__QueueReply *r, const char *op, int json)
{
	int failed = 0, answered = 0;
	uint64_t total = 0;

	if (json)
		mailctl_queue_json(r);
	else {
		mailctl_queue_clean_reply(r);
		mailctl_queue_text(r, op);
	}
	for (size_t i = 0; i < r->n_hosts; i++) {
		const Mxfleet__V1__QueueHostResult *h = r->hosts[i];
		total += h->total;
		answered += h->ok;
		if (h->ok || mailctl_queue_quiet(r, h, op))
			continue;
		failed++;
		/* JSON keeps them raw on stdout; stderr is a terminal's. */
		fprintf(stderr, "mailctl: host %s: %s\n", mailctl_queue_clean(h->host_id),
		    mailctl_queue_clean(h->error));
	}
	if (r->n_hosts == 0)
		fprintf(stderr, "mailctl: no host seen in the last hour\n");
	else if (!json && strcmp(op, "list") == 0)
		printf("%s-- %" PRIu64 " message%s queued on %d host%s%s\n", total ? "\n" : "", total,
		    total == 1 ? "" : "s", answered, answered == 1 ? "" : "s",
		    failed ? " (some hosts did not answer)" : "");
	return failed || r->n_hosts == 0 ? 1 : 0;
}

int
mailctl_queue(int argc, char **argv)
{
	Mxfleet__V1__QueueRequest q = MXFLEET__V1__QUEUE_REQUEST__INIT;
	ProtobufCMessage *r;
	int json = 0, i, rc;
	char *end;

	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		q.op = "list";
		i = 1;
	} else if (argc >= 2 && strcmp(argv[0], "retry") == 0) {
		q.op = strcmp(argv[1], "all") == 0 ? "retry-all" : "retry";
		q.id = strcmp(argv[1], "all") == 0 ? "" : argv[1];
		i = 2;
	} else if (argc >= 2 && strcmp(argv[0], "drop") == 0) {
		q.op = "drop";
		q.id = argv[1];
		i = 2;
	} else
		return mailctl_queue_usage();
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			q.host_id = argv[++i];
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 1 || v > 60)
				return mailctl_queue_usage();
			q.wait_seconds = (uint32_t)v;
		} else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc && strcmp(q.op, "list") == 0) {
			long v = strtol(argv[++i], &end, 10);
			if (*end || v < 1 || v > 10000)
				return mailctl_queue_usage();
			q.max_messages = (uint32_t)v;
		} else
			return mailctl_queue_usage();
	}
	/* controld waits for the hosts (10 s unless --wait): so do we, and more. */
	mailctl_call_timeout_ms = ((int)(q.wait_seconds ? q.wait_seconds : 10) + 20) * 1000;
	if ((rc = mailctl_call("QueueControl", &q.base, &r, &mxfleet__v1__queue_reply__descriptor)))
		return rc;
	rc = mailctl_queue_print((Mxfleet__V1__QueueReply *)r, q.op, json);
	protobuf_c_message_free_unpacked(r, NULL);
	return rc;
}
