/* mailctl dns: a hosted domain's DNS settings and the records controld
 * generates for it (docs/dns.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"
#include "xmalloc.h"

#define MAILCTL_DNS_MAX_ALIASES	256
#define MAILCTL_DNS_MAX_HOSTS	256

static int
mailctl_dns_u32(const char *opt, const char *s, unsigned long max, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s < '0' || *s > '9' || *end != '\0' || v < 1 || v > max) {
		fprintf(stderr, "mailctl: %s takes a number of seconds, 1..%lu\n", opt, max);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* --hosts h1,h2 into v (pointers into s, which is modified). */
static size_t
mailctl_dns_hosts(char *s, char **v, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(s, ","); tok != NULL && n < max; tok = strtok(NULL, ","))
		v[n++] = tok;
	return n;
}

static int
mailctl_dns_set_usage(void)
{
	fprintf(stderr, "usage: mailctl dns set DOMAIN [--hosts H1,H2] [--sts-mode enforce|"
	    "testing|none] [--max-age N] [--alias NAME=HOST]... [--tlsrpt-rua URI[,URI]] "
	    "[--spf TEXT] [--dmarc TEXT] [--ttl N] [--publish] [--json]\n");
	return 2;
}

/* One option of dns set; the index of its last argument, or -1. */
static int
mailctl_dns_set_opt(Mxfleet__V1__DomainDns *d, int argc, char **argv, int i, char **hosts,
    char **aliases)
{
	const char *o = argv[i];

	if (strcmp(o, "--publish") == 0) {
		d->publish = 1;
		return i;
	}
	if (strcmp(o, "--json") == 0) {
		mailctl_json = 1;
		return i;
	}
	if (i + 1 >= argc)
		return -1;
	char *v = argv[i + 1];
	if (strcmp(o, "--hosts") == 0)
		d->n_hosts = mailctl_dns_hosts(v, hosts, MAILCTL_DNS_MAX_HOSTS);
	else if (strcmp(o, "--sts-mode") == 0)
		d->sts_mode = v;
	else if (strcmp(o, "--max-age") == 0) {
		if (mailctl_dns_u32(o, v, 31557600, &d->sts_max_age) < 0)
			return -1;
	} else if (strcmp(o, "--ttl") == 0) {
		if (mailctl_dns_u32(o, v, 604800, &d->ttl) < 0)
			return -1;
	} else if (strcmp(o, "--alias") == 0 && d->n_aliases < MAILCTL_DNS_MAX_ALIASES)
		aliases[d->n_aliases++] = v;
	else if (strcmp(o, "--tlsrpt-rua") == 0)
		d->tlsrpt_rua = v;
	else if (strcmp(o, "--spf") == 0)
		d->spf = v;
	else if (strcmp(o, "--dmarc") == 0)
		d->dmarc = v;
	else
		return -1;
	return i + 1;
}

/* The whole setting: what is not given is sent unset (its default). */
static int
mailctl_dns_set(int argc, char **argv)
{
	Mxfleet__V1__DomainDns d = MXFLEET__V1__DOMAIN_DNS__INIT;
	char *hosts[MAILCTL_DNS_MAX_HOSTS], *aliases[MAILCTL_DNS_MAX_ALIASES];

	if (argc < 1 || argv[0][0] == '-')
		return mailctl_dns_set_usage();
	d.domain = argv[0];
	d.hosts = hosts;
	d.aliases = aliases;
	for (int i = 1; i < argc; i++)
		if ((i = mailctl_dns_set_opt(&d, argc, argv, i, hosts, aliases)) < 0)
			return mailctl_dns_set_usage();
	return mailctl_change("SetDomainDns", &d.base);
}

/* ---- show ---- */

static json_t *
mailctl_dns_strings(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static void
mailctl_dns_show_json(const Mxfleet__V1__DomainDns *d)
{
	json_t *o = json_pack("{s:s, s:o, s:s, s:I, s:o, s:s, s:s, s:s, s:I, s:b}",
	    "domain", d->domain, "hosts", mailctl_dns_strings(d->hosts, d->n_hosts),
	    "sts_mode", d->sts_mode, "sts_max_age", (json_int_t)d->sts_max_age,
	    "aliases", mailctl_dns_strings(d->aliases, d->n_aliases),
	    "tlsrpt_rua", d->tlsrpt_rua, "spf", d->spf, "dmarc", d->dmarc,
	    "ttl", (json_int_t)d->ttl, "publish", (int)d->publish);
	mailctl_print_json(o);
}

static void
mailctl_dns_show_text(const Mxfleet__V1__DomainDns *d)
{
	printf("domain      %s\n", d->domain);
	printf("hosts      ");
	if (d->n_hosts == 0)
		printf(" (every host that reported its identity)");
	for (size_t i = 0; i < d->n_hosts; i++)
		printf(" %s", d->hosts[i]);
	printf("\nsts_mode    %s\nmax_age     %u\naliases    ", d->sts_mode, d->sts_max_age);
	if (d->n_aliases == 0)
		printf(" (none)");
	for (size_t i = 0; i < d->n_aliases; i++)
		printf(" %s", d->aliases[i]);
	if (d->tlsrpt_rua[0])
		printf("\ntlsrpt_rua  %s\n", d->tlsrpt_rua);
	else
		printf("\ntlsrpt_rua  (default: mailto:tlsrpt@%s)\n", d->domain);
	printf("spf         %s\n", d->spf[0] ? d->spf : "(default: from the hosts' addresses)");
	if (d->dmarc[0])
		printf("dmarc       %s\n", d->dmarc);
	else
		printf("dmarc       (default: v=DMARC1; p=none; rua=mailto:dmarc@%s)\n", d->domain);
	printf("ttl         %u\npublish     %s\n", d->ttl, d->publish ? "yes" : "no");
}

static int
mailctl_dns_show(int argc, char **argv)
{
	Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
	ProtobufCMessage *r;
	int rc, json = argc == 2 && strcmp(argv[1], "--json") == 0;

	if (argc < 1 || (argc == 2 && !json) || argc > 2) {
		fprintf(stderr, "usage: mailctl dns show DOMAIN [--json]\n");
		return 2;
	}
	n.name = argv[0];
	if ((rc = mailctl_call("GetDomainDns", &n.base, &r, &mxfleet__v1__domain_dns__descriptor)))
		return rc;
	if (json)
		mailctl_dns_show_json((Mxfleet__V1__DomainDns *)r);
	else
		mailctl_dns_show_text((Mxfleet__V1__DomainDns *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

/* ---- records ---- */

/* A comment line: no line break may end the comment early. */
static void
mailctl_dns_comment(const char *prefix, const char *s)
{
	printf("; %s", prefix);
	for (; *s; s++)
		putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
	putchar('\n');
}

static void
mailctl_dns_zone(const Mxfleet__V1__DnsRecordSet *s)
{
	char line[2048];

	printf("; DNS records of %s, generated by controld (mailctl dns records)\n", s->domain);
	if (s->sts_id[0])
		printf("; MTA-STS policy id %s\n", s->sts_id);
	for (size_t i = 0; i < s->n_records; i++) {
		const Mxfleet__V1__DnsRecord *r = s->records[i];
		printf("\n");
		mailctl_dns_comment("", r->why);
		printf("%s %u IN %s %s\n", r->owner, r->ttl, r->type, r->rdata);
	}
	if (s->n_errors > 0)
		printf("\n; %zu problem(s) to fix before publishing:\n", s->n_errors);
	for (size_t i = 0; i < s->n_errors; i++) {
		const Mxfleet__V1__DnsFinding *f = s->errors[i];
		snprintf(line, sizeof(line), "%s %s %s: ", f->severity, f->code, f->subject);
		mailctl_dns_comment(line, f->what);
		mailctl_dns_comment("  why: ", f->why);
		mailctl_dns_comment("  fix: ", f->fix);
	}
}

static void
mailctl_dns_json(const Mxfleet__V1__DnsRecordSet *s)
{
	json_t *recs = json_array(), *errs = json_array(), *o;

	for (size_t i = 0; i < s->n_records; i++) {
		const Mxfleet__V1__DnsRecord *r = s->records[i];
		json_array_append_new(recs, json_pack("{s:s, s:I, s:s, s:s, s:s}", "owner", r->owner,
		    "ttl", (json_int_t)r->ttl, "type", r->type, "rdata", r->rdata, "why", r->why));
	}
	for (size_t i = 0; i < s->n_errors; i++) {
		const Mxfleet__V1__DnsFinding *f = s->errors[i];
		json_array_append_new(errs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "severity",
		    f->severity, "code", f->code, "subject", f->subject, "what", f->what, "why",
		    f->why, "fix", f->fix));
	}
	o = json_pack("{s:s, s:o, s:o, s:o}", "domain", s->domain, "records", recs,
	    "mta_sts", s->sts_id[0] ? json_pack("{s:s, s:s}", "id", s->sts_id, "policy",
	    s->sts_policy) : json_null(), "errors", errs);
	mailctl_print_json(o);
}

static int
mailctl_dns_blocked(const Mxfleet__V1__DnsRecordSet *s)
{
	for (size_t i = 0; i < s->n_errors; i++)
		if (strcmp(s->errors[i]->severity, "error") == 0)
			return 1;
	return 0;
}

static int
mailctl_dns_records(int argc, char **argv)
{
	Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
	ProtobufCMessage *r;
	const char *format = "zone";
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--format") == 0 && i + 1 < argc &&
		    (strcmp(argv[i + 1], "zone") == 0 || strcmp(argv[i + 1], "json") == 0))
			format = argv[++i];
		else if (strcmp(argv[i], "--policy") == 0)
			format = "policy";
		else if (strcmp(argv[i], "--json") == 0)
			format = "json";
		else
			argc = 0;
	}
	if (argc < 1) {
		fprintf(stderr, "usage: mailctl dns records DOMAIN [--format zone|json | --json] [--policy]\n");
		return 2;
	}
	n.name = argv[0];
	if ((rc = mailctl_call("DnsRecords", &n.base, &r, &mxfleet__v1__dns_record_set__descriptor)))
		return rc;
	Mxfleet__V1__DnsRecordSet *s = (Mxfleet__V1__DnsRecordSet *)r;
	if (strcmp(format, "policy") == 0) {
		if (s->sts_id[0])
			fputs(s->sts_policy, stdout);
		else
			fprintf(stderr, "mailctl: %s publishes no MTA-STS policy (sts_mode none)\n",
			    s->domain);
		rc = s->sts_id[0] ? 0 : 1;
	} else {
		if (strcmp(format, "json") == 0)
			mailctl_dns_json(s);
		else
			mailctl_dns_zone(s);
		rc = mailctl_dns_blocked(s);
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return rc;
}

/* ---- check ---- */

static json_t *
mailctl_dns_finding_json(const Mxfleet__V1__DnsFinding *f)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "severity", f->severity, "code",
	    f->code, "subject", f->subject, "what", f->what, "why", f->why, "fix", f->fix);
}

static void
mailctl_dns_check_text(const Mxfleet__V1__DnsCheckReport *rep, const size_t count[3])
{
	printf("dns check %s: %zu error(s), %zu warning(s), %zu note(s)\n", rep->domain,
	    count[0], count[1], count[2]);
	for (size_t i = 0; i < rep->n_findings; i++) {
		const Mxfleet__V1__DnsFinding *f = rep->findings[i];
		printf("\n%-7s %s  %s\n", f->severity, f->code, f->subject);
		printf("        %s\n", f->what);
		if (f->why[0])
			printf("        why: %s\n", f->why);
		if (f->fix[0])
			printf("        fix: %s\n", f->fix);
	}
}

static void
mailctl_dns_check_json(const Mxfleet__V1__DnsCheckReport *rep, const size_t count[3])
{
	json_t *a = json_array();
	for (size_t i = 0; i < rep->n_findings; i++)
		json_array_append_new(a, mailctl_dns_finding_json(rep->findings[i]));
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:o}", "domain", rep->domain, "errors",
	    (json_int_t)count[0], "warnings", (json_int_t)count[1], "notes", (json_int_t)count[2],
	    "findings", a);
	mailctl_print_json(o);
}

/* Exit status 1 when anything is an error: scripts and monitoring act on it. */
static int
mailctl_dns_check(int argc, char **argv)
{
	Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
	ProtobufCMessage *r;
	size_t count[3] = { 0, 0, 0 };
	int rc, json = argc == 2 && strcmp(argv[1], "--json") == 0;

	if (argc < 1 || (argc == 2 && !json) || argc > 2) {
		fprintf(stderr, "usage: mailctl dns check DOMAIN [--json]\n");
		return 2;
	}
	n.name = argv[0];
	/* Live lookups, a STARTTLS to every MX address and an HTTPS fetch. */
	mailctl_call_timeout_ms = 300000;
	if ((rc = mailctl_call("DnsCheck", &n.base, &r, &mxfleet__v1__dns_check_report__descriptor)))
		return rc;
	Mxfleet__V1__DnsCheckReport *rep = (Mxfleet__V1__DnsCheckReport *)r;
	for (size_t i = 0; i < rep->n_findings; i++) {
		const char *sev = rep->findings[i]->severity;
		count[strcmp(sev, "error") == 0 ? 0 : strcmp(sev, "warning") == 0 ? 1 : 2]++;
	}
	if (json)
		mailctl_dns_check_json(rep, count);
	else
		mailctl_dns_check_text(rep, count);
	protobuf_c_message_free_unpacked(r, NULL);
	return count[0] > 0;
}

/* ---- push ---- */

static json_t *
mailctl_dns_records_json(Mxfleet__V1__DnsRecord **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:I, s:s, s:s}", "owner", v[i]->owner,
		    "ttl", (json_int_t)v[i]->ttl, "type", v[i]->type, "rdata", v[i]->rdata));
	return a;
}

static int
mailctl_dns_push(int argc, char **argv)
{
	Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
	ProtobufCMessage *r;
	int rc, json = argc == 2 && strcmp(argv[1], "--json") == 0;

	if (argc < 1 || (argc == 2 && !json) || argc > 2) {
		fprintf(stderr, "usage: mailctl dns push DOMAIN [--json]\n");
		return 2;
	}
	n.name = argv[0];
	mailctl_call_timeout_ms = 120000;
	if ((rc = mailctl_call("DnsPush", &n.base, &r, &mxfleet__v1__dns_push_reply__descriptor)))
		return rc;
	Mxfleet__V1__DnsPushReply *p = (Mxfleet__V1__DnsPushReply *)r;
	if (json) {
		json_t *o = json_pack("{s:s, s:o, s:o}", "domain", p->domain, "added",
		    mailctl_dns_records_json(p->added, p->n_added), "deleted",
		    mailctl_dns_records_json(p->deleted, p->n_deleted));
		mailctl_print_json(o);
	} else if (p->n_added == 0 && p->n_deleted == 0) {
		printf("dns push %s: nothing sent: the zones already hold these records\n", p->domain);
	} else {
		printf("dns push %s: %zu record(s) added, %zu deleted\n", p->domain, p->n_added,
		    p->n_deleted);
		for (size_t i = 0; i < p->n_deleted; i++)
			printf("- %s %u IN %s %s\n", p->deleted[i]->owner, p->deleted[i]->ttl,
			    p->deleted[i]->type, p->deleted[i]->rdata);
		for (size_t i = 0; i < p->n_added; i++)
			printf("+ %s %u IN %s %s\n", p->added[i]->owner, p->added[i]->ttl,
			    p->added[i]->type, p->added[i]->rdata);
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

int
mailctl_dns(int argc, char **argv)
{
	static const struct {
		const char *verb;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "set", mailctl_dns_set },
		{ "show", mailctl_dns_show },
		{ "records", mailctl_dns_records },
		{ "check", mailctl_dns_check },
		{ "push", mailctl_dns_push },
	};

	for (size_t i = 0; argc >= 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].verb) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "usage: mailctl dns set|show|records|check|push DOMAIN ... (see mailctl --help)\n");
	return 2;
}
