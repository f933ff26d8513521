/* mailctl domain, route, policy (the configuration every mxd gets as a
 * snapshot) and outcomes (docs/control-plane.md). With --json a list prints
 * its message as JSON (mailctl_pb_json: the .proto's field names), a change
 * what mailctl_change prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"

static int
mailctl_config_remove_named(const char *method, const char *name)
{
	Mxfleet__V1__DomainName d = MXFLEET__V1__DOMAIN_NAME__INIT;
	d.name = (char *)name;
	return mailctl_change(method, &d.base);
}

/* A list without arguments: its message as JSON, or text(). */
static int
mailctl_config_list(const char *method, const ProtobufCMessageDescriptor *desc,
    void (*text)(const ProtobufCMessage *))
{
	Mxfleet__V1__Empty e = MXFLEET__V1__EMPTY__INIT;
	ProtobufCMessage *r;
	int rc;

	if ((rc = mailctl_call(method, &e.base, &r, desc)))
		return rc;
	if (mailctl_json)
		mailctl_print_json(mailctl_pb_json(r));
	else
		text(r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

static int
mailctl_recipients_list(const char *domain)
{
	Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
	ProtobufCMessage *r;
	int rc;

	n.name = (char *)domain;
	if ((rc = mailctl_call("ListRecipients", &n.base, &r,
	    &mxfleet__v1__domain_recipients__descriptor)))
		return rc;
	Mxfleet__V1__DomainRecipients *l = (Mxfleet__V1__DomainRecipients *)r;
	if (mailctl_json)
		mailctl_print_json(mailctl_pb_json(r));
	else {
		printf("domain=%s mode=%s recipients=%zu\n", l->domain,
		    l->mode[0] ? l->mode : "unset", l->n_local_parts);
		for (size_t i = 0; i < l->n_local_parts; i++)
			printf("%s\n", l->local_parts[i]);
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

/* mailctl domain recipients DOMAIN add ADDR...|rm ADDR...|list|mode MODE */
static int
mailctl_recipients(int argc, char **argv)
{
	Mxfleet__V1__DomainRecipients d = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT;

	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return mailctl_recipients_list(argv[0]);
	d.domain = argc >= 1 ? argv[0] : NULL;
	if (argc == 3 && strcmp(argv[1], "mode") == 0) {
		d.mode = argv[2];
		return mailctl_change("SetRecipientCheck", &d.base);
	}
	if (argc >= 3 && (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "rm") == 0)) {
		d.local_parts = argv + 2;
		d.n_local_parts = (size_t)(argc - 2);
		return mailctl_change(argv[1][0] == 'a' ? "AddRecipients" : "RemoveRecipients",
		    &d.base);
	}
	fprintf(stderr, "usage: mailctl domain recipients DOMAIN add ADDR... | rm ADDR... | list "
	    "| mode any|list|verify [--json]\n");
	return 2;
}

static void
mailctl_domain_text(const ProtobufCMessage *m)
{
	const Mxfleet__V1__DomainList *l = (const Mxfleet__V1__DomainList *)m;

	printf("%-40s %s\n", "DOMAIN", "NEXT_HOP");
	for (size_t i = 0; i < l->n_domains; i++)
		printf("%-40s %s\n", l->domains[i]->name, l->domains[i]->next_hop);
}

int
mailctl_domain(int argc, char **argv)
{
	mailctl_json_arg(&argc, argv);
	if (argc == 3 && strcmp(argv[0], "add") == 0) {
		Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
		d.name = argv[1];
		d.next_hop = argv[2];
		return mailctl_change("AddDomain", &d.base);
	}
	if (argc >= 1 && strcmp(argv[0], "recipients") == 0)
		return mailctl_recipients(argc - 1, argv + 1);
	if (argc == 2 && (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "remove") == 0))
		return mailctl_config_remove_named("RemoveDomain", argv[1]);
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return mailctl_config_list("ListDomains", &mxfleet__v1__domain_list__descriptor,
		    mailctl_domain_text);
	fprintf(stderr, "usage: mailctl domain add NAME NEXT_HOP | list | rm NAME | recipients ... "
	    "[--json]\n");
	return 2;
}

static void
mailctl_route_text(const ProtobufCMessage *m)
{
	const Mxfleet__V1__RouteList *l = (const Mxfleet__V1__RouteList *)m;

	printf("%-24s %-24s %-11s %s\n", "SENDER_DOMAIN", "RECIPIENT_DOMAIN", "MIN_ATTEMPT",
	    "TRANSPORT");
	for (size_t i = 0; i < l->n_routes; i++) {
		const Mxfleet__V1__RouteConfig *x = l->routes[i];
		printf("%-24s %-24s %-11u %s\n",
		    x->match_sender_domain[0] ? x->match_sender_domain : "*",
		    x->match_recipient_domain[0] ? x->match_recipient_domain : "*",
		    x->min_attempt, x->transport);
	}
}

static int
mailctl_route_change(int argc, char **argv)
{
	Mxfleet__V1__RouteConfig x = MXFLEET__V1__ROUTE_CONFIG__INIT;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--sender-domain") == 0)
			x.match_sender_domain = argv[i + 1];
		else if (strcmp(argv[i], "--recipient-domain") == 0)
			x.match_recipient_domain = argv[i + 1];
		else if (strcmp(argv[i], "--min-attempt") == 0)
			x.min_attempt = (uint32_t)strtoul(argv[i + 1], NULL, 10);
		else
			break;
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: mailctl route %s [--sender-domain D] [--recipient-domain D] "
		    "[--min-attempt N] TRANSPORT [--json]\n", argv[0]);
		return 2;
	}
	x.transport = argv[i];
	return mailctl_change(argv[0][0] == 'a' ? "AddRoute" : "RemoveRoute", &x.base);
}

int
mailctl_route(int argc, char **argv)
{
	mailctl_json_arg(&argc, argv);
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return mailctl_config_list("ListRoutes", &mxfleet__v1__route_list__descriptor,
		    mailctl_route_text);
	if (argc >= 1 && (strcmp(argv[0], "add") == 0 || strcmp(argv[0], "rm") == 0))
		return mailctl_route_change(argc, argv);
	fprintf(stderr, "usage: mailctl route add|rm [options] TRANSPORT | list [--json]\n");
	return 2;
}

static void
mailctl_policy_text(const ProtobufCMessage *m)
{
	const Mxfleet__V1__PolicyList *l = (const Mxfleet__V1__PolicyList *)m;

	printf("%-40s %s\n", "DOMAIN", "MODE");
	for (size_t i = 0; i < l->n_policies; i++)
		printf("%-40s %s\n", l->policies[i]->domain, l->policies[i]->mode);
}

int
mailctl_policy(int argc, char **argv)
{
	mailctl_json_arg(&argc, argv);
	if (argc == 3 && strcmp(argv[0], "set") == 0) {
		Mxfleet__V1__TlsPolicyConfig p = MXFLEET__V1__TLS_POLICY_CONFIG__INIT;
		p.domain = argv[1];
		p.mode = argv[2];
		return mailctl_change("SetPolicy", &p.base);
	}
	if (argc == 2 && (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "remove") == 0))
		return mailctl_config_remove_named("RemovePolicy", argv[1]);
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return mailctl_config_list("ListPolicies", &mxfleet__v1__policy_list__descriptor,
		    mailctl_policy_text);
	fprintf(stderr, "usage: mailctl policy set DOMAIN MODE | list | rm DOMAIN [--json]\n");
	return 2;
}

static void
mailctl_outcomes_text(const Mxfleet__V1__OutcomeReport *rep)
{
	static const char *const dirs[] = { "-", "inbound", "outbound" };
	static const char *const st[] = { "-", "not_offered", "offered", "attempted",
	    "established" };

	printf("%-28s %-9s %-12s %-8s %-32s %8s\n", "HOST", "DIRECTION", "STARTTLS", "TLS",
	    "FAILURE", "SESSIONS");
	for (size_t i = 0; i < rep->n_rows; i++) {
		Mxfleet__V1__OutcomeSummary *x = rep->rows[i];
		printf("%-28s %-9s %-12s %-8s %-32s %8llu\n", x->host_id,
		    x->direction <= 2 ? dirs[x->direction] : "?",
		    x->starttls <= 4 ? st[x->starttls] : "?",
		    x->tls_version[0] ? x->tls_version : "-",
		    x->tls_fail_reason[0] ? x->tls_fail_reason : "-",
		    (unsigned long long)x->sessions);
	}
}

int
mailctl_outcomes(int argc, char **argv)
{
	Mxfleet__V1__OutcomeQuery q = MXFLEET__V1__OUTCOME_QUERY__INIT;
	long since = 86400;

	mailctl_json_arg(&argc, argv);
	for (int i = 0; i < argc; i += 2) {
		if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
			q.host_id = argv[i + 1];
		else if (i + 1 < argc && strcmp(argv[i], "--since") == 0)
			since = strtol(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "usage: mailctl outcomes [--host H] [--since SECONDS] "
			    "[--json]\n");
			return 2;
		}
	}
	q.since_unix = (int64_t)time(NULL) - since;
	ProtobufCMessage *r;
	int rc = mailctl_call("SummarizeOutcomes", &q.base, &r,
	    &mxfleet__v1__outcome_report__descriptor);
	if (rc)
		return rc;
	if (mailctl_json) {
		json_t *o = mailctl_pb_json(r);
		json_object_set_new(o, "since_unix", json_integer(q.since_unix));
		mailctl_print_json(o);
	} else
		mailctl_outcomes_text((Mxfleet__V1__OutcomeReport *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}
