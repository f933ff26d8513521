/* mailctl: the operator's command line. PKI commands work locally on the
 * fleet CA directory; fleet commands talk to controld. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc.h"
#include "mailctl.h"
#include "netaddr.h"
#include "mxfleet.pb-c.h"
#include "pki.h"
#include "xmalloc.h"

static void
mailctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: mailctl COMMAND [ARGS]\n"
	    "\n"
	    "Fleet CA (local, no controld needed):\n"
	    "  pki init DIR [--name NAME] [--days N]\n"
	    "        create the fleet CA in DIR (ca.pem, ca.key 0600); default 3650 days\n"
	    "  pki issue DIR NAME [--admin] [--ip ADDR]... [--days N]\n"
	    "        issue DIR/NAME.pem and DIR/NAME.key: a host certificate (server and\n"
	    "        client, subjectAltName DNS:NAME and each --ip), or with --admin an\n"
	    "        admin certificate for mailctl; default 825 days. The role is the\n"
	    "        subjectAltName URI mxfleet:role:host or mxfleet:role:admin\n"
	    "  pki show FILE\n"
	    "        print a certificate's name, role, expiry and serial\n"
	    "\n"
	    "Fleet (through controld):\n"
	    "  pki revoke DIR NAME                take back DIR/NAME.pem: every controld\n"
	    "                                     replica refuses it at the TLS handshake\n"
	    "                                     within tls.revocation_interval seconds and\n"
	    "                                     closes its open connections\n"
	    "  hosts                              every host: version, last seen, journal\n"
	    "                                     backlog, config version, certificate expiry,\n"
	    "                                     outcomes stored, dropped, corrupt, batches\n"
	    "                                     refused, records quarantined, MX name,\n"
	    "                                     next key and keys served (first 12 hex\n"
	    "                                     digits of each SPKI SHA-256, docs/dns.md)\n"
	    "  domain add NAME NEXT_HOP           e.g. lmtp:unix:/run/lmtp, smtp:10.0.0.5:25\n"
	    "  domain list | domain rm NAME\n"
	    "  domain recipients DOMAIN add ADDR... | rm ADDR... | list\n"
	    "                                     the domain's recipient list (ADDR: user or\n"
	    "                                     user@DOMAIN; ASCII case ignored)\n"
	    "  domain recipients DOMAIN mode list|verify|any\n"
	    "                                     list: RCPT refuses addresses not listed (550\n"
	    "                                     5.1.1, no bounce later); verify: each mxd asks\n"
	    "                                     the next hop at RCPT (cached; 450 when it\n"
	    "                                     cannot answer); any: any local part\n"
	    "  route add|rm [--sender-domain D] [--recipient-domain D] [--min-attempt N] TRANSPORT\n"
	    "  route list\n"
	    "  policy set DOMAIN MODE               outbound TLS policy for a destination:\n"
	    "                                     none, may, encrypt, dane, dane-only, verify, secure\n"
	    "  policy list | policy rm DOMAIN\n"
	    "  outcomes [--host H] [--since SECONDS]   TLS outcomes of sessions, counted\n"
	    "  dns set DOMAIN [--hosts H1,H2] [--sts-mode enforce|testing|none] [--max-age N]\n"
	    "          [--alias NAME=HOST]... [--tlsrpt-rua URI[,URI]] [--spf TEXT]\n"
	    "          [--dmarc TEXT] [--ttl N] [--publish]\n"
	    "                                     how the domain's DNS is generated; replaces\n"
	    "                                     the whole setting (an option not given is\n"
	    "                                     back to its default; docs/dns.md)\n"
	    "  dns show DOMAIN [--json]           the settings in force\n"
	    "  dns records DOMAIN [--format zone|json] [--policy]\n"
	    "  dns check DOMAIN [--json]          live DNS, STARTTLS and policy against the\n"
	    "                                     generated records; exit 1 on errors\n"
	    "  dns push DOMAIN [--json]           send the difference (RFC 2136, TSIG)\n"
	    "                                     the records to publish, as zone-file text\n"
	    "                                     (or JSON, or just the MTA-STS policy file);\n"
	    "                                     exit status 1 when an error blocks publishing\n"
	    "  tls rollover HOST                  start the TLSA key rollover of HOST: its next\n"
	    "                                     key published, waited for, switched to, the\n"
	    "                                     old key's TLSA retired (docs/dns.md)\n"
	    "  tls rollover HOST --cancel [--json]\n"
	    "                                     give up that rollover (nothing is undone)\n"
	    "  tls rollover HOST --status [--json]\n"
	    "                                     where that rollover is, and what it waits for\n"
	    "  tls inbound [--since 1h] [--by sender-domain|remote-ip|stage|host] [--json]\n"
	    "                                     STARTTLS of the sessions every host received:\n"
	    "                                     attempted, established, failed with stage and\n"
	    "                                     reason, TLS versions and ciphers; failing\n"
	    "                                     senders first (docs/reports.md)\n"
	    "  reports preview --domain D --day YYYY-MM-DD [--host] [--json]\n"
	    "                                     the TLS report (RFC 8460) controld would send\n"
	    "                                     for D's policies on that UTC day (--host: the\n"
	    "                                     MX host D's own DANE report); --json prints\n"
	    "                                     exactly the bytes sent (docs/reports.md)\n"
	    "  reports received [--domain D] [--since 24h] [--json]\n"
	    "                                     TLS reports other domains sent us, newest\n"
	    "                                     first; refused ones with the reason\n"
	    "  reports show rID [--json]         one received report: policies, counts,\n"
	    "                                     failure details (docs/reports.md)\n"
	    "  reports sent|pending|show ID|send-now [--day D] [--json]\n"
	    "  reports suppress ADDRESS --until T | unsuppress ADDRESS\n"
	    "                                     the reports' deliveries; send-now plans and\n"
	    "                                     sends a day at once (docs/reports.md)\n"
	    "  queue list [--host H] [--max N] [--wait S] [--json]\n"
	    "  queue retry ID|all [--host H] [--wait S] [--json]\n"
	    "  queue drop ID [--host H] [--wait S] [--json]\n"
	    "                                     the hosts' mail queues, through controld:\n"
	    "                                     list, deliver now, remove without a DSN; a\n"
	    "                                     host that does not answer is named, exit 1\n"
	    "\n"
	    "How to reach controld (options before the command, or environment):\n"
	    "  --socket PATH        controld's local socket (MAILCTL_SOCKET)\n"
	    "  --server HOST:PORT   controld's gRPC port (MAILCTL_SERVER), with\n"
	    "  --cert F --key F --ca F [--authority NAME]   an admin certificate\n"
	    "                       (MAILCTL_CERT, MAILCTL_KEY, MAILCTL_CA, MAILCTL_AUTHORITY)\n");
}

static int
mailctl_days(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > 36500)
		return -1;
	*out = (int)v;
	return 0;
}

static int
mailctl_pki(int argc, char **argv)
{
	char err[1024];
	if (argc < 2) {
		mailctl_usage(stderr);
		return 2;
	}
	if (strcmp(argv[0], "init") == 0) {
		const char *dir = argv[1], *name = "mxfleet fleet CA";
		int days = 3650;
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
				name = argv[++i];
			else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
				if (mailctl_days(argv[++i], &days) < 0) {
					fprintf(stderr, "mailctl: --days takes 1..36500\n");
					return 2;
				}
			} else {
				fprintf(stderr, "mailctl: pki init: unknown argument %s\n", argv[i]);
				return 2;
			}
		}
		if (pki_init(dir, name, days, err, sizeof(err)) < 0) {
			fprintf(stderr, "mailctl: %s\n", err);
			return 1;
		}
		printf("created %s/ca.pem and %s/ca.key\n", dir, dir);
		return 0;
	}
	if (strcmp(argv[0], "issue") == 0) {
		if (argc < 3) {
			mailctl_usage(stderr);
			return 2;
		}
		const char *dir = argv[1], *name = argv[2];
		const char *ips[16] = { NULL };
		size_t nips = 0;
		int days = 825;
		enum pki_role role = PKI_HOST;
		for (int i = 3; i < argc; i++) {
			if (strcmp(argv[i], "--admin") == 0)
				role = PKI_ADMIN;
			else if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc && nips < 16)
				ips[nips++] = argv[++i];
			else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
				if (mailctl_days(argv[++i], &days) < 0) {
					fprintf(stderr, "mailctl: --days takes 1..36500\n");
					return 2;
				}
			} else {
				fprintf(stderr, "mailctl: pki issue: unknown argument %s\n", argv[i]);
				return 2;
			}
		}
		if (pki_issue(dir, name, role, ips, nips, days, err, sizeof(err)) < 0) {
			fprintf(stderr, "mailctl: %s\n", err);
			return 1;
		}
		printf("issued %s/%s.pem and %s/%s.key (%s)\n", dir, name, dir, name,
		    pki_role_name(role));
		return 0;
	}
	if (strcmp(argv[0], "show") == 0) {
		struct pki_cert_info info;
		char when[64];
		if (pki_cert_info(argv[1], &info, err, sizeof(err)) < 0) {
			fprintf(stderr, "mailctl: %s\n", err);
			return 1;
		}
		struct tm tm;
		gmtime_r(&info.not_after, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("name=%s role=%s not_after=%s serial=%s\n", info.cn, pki_role_name(info.role),
		    when, info.serial[0] ? info.serial : "-");
		return 0;
	}
	if (strcmp(argv[0], "revoke") == 0) {
		fprintf(stderr, "mailctl: pki revoke talks to controld: say where it is "
		    "(--socket PATH or --server HOST:PORT with an admin certificate, before 'pki')\n");
		return 2;
	}
	fprintf(stderr, "mailctl: unknown pki command %s\n", argv[0]);
	return 2;
}

static void
mailctl_time(int64_t t, char *out, size_t outsz)
{
	if (t <= 0) {
		snprintf(out, outsz, "-");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
mailctl_remove_named(const char *method, const char *name)
{
	Mxfleet__V1__DomainName d = MXFLEET__V1__DOMAIN_NAME__INIT;
	d.name = (char *)name;
	return mailctl_change(method, &d.base);
}

static int
mailctl_list(const char *method, ProtobufCMessage **r, const ProtobufCMessageDescriptor *desc)
{
	Mxfleet__V1__Empty e = MXFLEET__V1__EMPTY__INIT;
	return mailctl_call(method, &e.base, r, desc);
}

/* The keys a host serves now, as the first 12 hex digits of each SPKI
 * SHA-256 (TLSA 3 1 1), comma-separated; "-" when none. */
static void
mailctl_host_keys(const Mxfleet__V1__HostIdentity *id, char *out, size_t outsz)
{
	size_t len = 0;
	snprintf(out, outsz, "-");
	for (size_t i = 0; id && i < id->n_certs && len + 14 < outsz; i++)
		len += (size_t)snprintf(out + len, outsz - len, "%s%.12s", i ? "," : "",
		    id->certs[i]->spki_sha256);
}

static int
mailctl_hosts(void)
{
	ProtobufCMessage *r;
	int rc = mailctl_list("ListHosts", &r, &mxfleet__v1__host_list__descriptor);
	if (rc)
		return rc;
	Mxfleet__V1__HostList *l = (Mxfleet__V1__HostList *)r;
	printf("%-28s %-8s %-20s %8s %7s %-20s %10s %8s %8s %8s %11s %-24s %-12s %s\n", "HOST",
	    "VERSION", "LAST_SEEN", "BACKLOG", "CONFIG", "CERT_EXPIRES", "OUTCOMES", "DROPPED",
	    "CORRUPT", "REFUSED", "QUARANTINED", "MX", "NEXT_KEY", "KEYS");
	for (size_t i = 0; i < l->n_hosts; i++) {
		Mxfleet__V1__HostInfo *h = l->hosts[i];
		char seen[32], exp[32], keys[200];
		const Mxfleet__V1__HostIdentity *id = h->identity;
		mailctl_host_keys(id, keys, sizeof(keys));
		mailctl_time(h->last_seen_unix, seen, sizeof(seen));
		mailctl_time(h->cert_not_after_unix, exp, sizeof(exp));
		printf("%-28s %-8s %-20s %8llu %7llu %-20s %10llu %8llu %8llu %8llu %11llu"
		    " %-24s %-12.12s %s\n",
		    h->host_id, h->version[0] ? h->version : "-", seen,
		    (unsigned long long)h->journal_backlog, (unsigned long long)h->config_version, exp,
		    (unsigned long long)h->outcomes, (unsigned long long)h->dropped,
		    (unsigned long long)h->corrupt, (unsigned long long)h->batches_refused,
		    (unsigned long long)h->outcomes_quarantined,
		    id && id->hostname[0] ? id->hostname : "-",
		    id && id->next_spki_sha256[0] ? id->next_spki_sha256 : "-", keys);
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

/* mailctl domain recipients DOMAIN add ADDR...|rm ADDR...|list|mode MODE */
static int
mailctl_recipients(int argc, char **argv)
{
	Mxfleet__V1__DomainRecipients d = MXFLEET__V1__DOMAIN_RECIPIENTS__INIT;
	ProtobufCMessage *r;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "list") == 0) {
		Mxfleet__V1__DomainName n = MXFLEET__V1__DOMAIN_NAME__INIT;
		n.name = argv[0];
		if ((rc = mailctl_call("ListRecipients", &n.base, &r,
		    &mxfleet__v1__domain_recipients__descriptor)))
			return rc;
		Mxfleet__V1__DomainRecipients *l = (Mxfleet__V1__DomainRecipients *)r;
		printf("domain=%s mode=%s recipients=%zu\n", l->domain, l->mode[0] ? l->mode : "unset",
		    l->n_local_parts);
		for (size_t i = 0; i < l->n_local_parts; i++)
			printf("%s\n", l->local_parts[i]);
		protobuf_c_message_free_unpacked(r, NULL);
		return 0;
	}
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
	    "| mode any|list\n");
	return 2;
}

static int
mailctl_domain(int argc, char **argv)
{
	ProtobufCMessage *r;
	int rc;
	if (argc >= 3 && strcmp(argv[0], "add") == 0) {
		Mxfleet__V1__DomainConfig d = MXFLEET__V1__DOMAIN_CONFIG__INIT;
		d.name = argv[1];
		d.next_hop = argv[2];
		return mailctl_change("AddDomain", &d.base);
	}
	if (argc >= 1 && strcmp(argv[0], "recipients") == 0)
		return mailctl_recipients(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "remove") == 0))
		return mailctl_remove_named("RemoveDomain", argv[1]);
	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		if ((rc = mailctl_list("ListDomains", &r, &mxfleet__v1__domain_list__descriptor)))
			return rc;
		Mxfleet__V1__DomainList *l = (Mxfleet__V1__DomainList *)r;
		printf("%-40s %s\n", "DOMAIN", "NEXT_HOP");
		for (size_t i = 0; i < l->n_domains; i++)
			printf("%-40s %s\n", l->domains[i]->name, l->domains[i]->next_hop);
		protobuf_c_message_free_unpacked(r, NULL);
		return 0;
	}
	fprintf(stderr, "usage: mailctl domain add NAME NEXT_HOP | list | rm NAME | recipients ...\n");
	return 2;
}

static int
mailctl_route(int argc, char **argv)
{
	ProtobufCMessage *r;
	int rc;
	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		if ((rc = mailctl_list("ListRoutes", &r, &mxfleet__v1__route_list__descriptor)))
			return rc;
		Mxfleet__V1__RouteList *l = (Mxfleet__V1__RouteList *)r;
		printf("%-24s %-24s %-11s %s\n", "SENDER_DOMAIN", "RECIPIENT_DOMAIN", "MIN_ATTEMPT", "TRANSPORT");
		for (size_t i = 0; i < l->n_routes; i++) {
			Mxfleet__V1__RouteConfig *x = l->routes[i];
			printf("%-24s %-24s %-11u %s\n", x->match_sender_domain[0] ? x->match_sender_domain : "*",
			    x->match_recipient_domain[0] ? x->match_recipient_domain : "*",
			    x->min_attempt, x->transport);
		}
		protobuf_c_message_free_unpacked(r, NULL);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[0], "add") == 0 || strcmp(argv[0], "rm") == 0)) {
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
			    "[--min-attempt N] TRANSPORT\n", argv[0]);
			return 2;
		}
		x.transport = argv[i];
		return mailctl_change(argv[0][0] == 'a' ? "AddRoute" : "RemoveRoute", &x.base);
	}
	fprintf(stderr, "usage: mailctl route add|rm [options] TRANSPORT | list\n");
	return 2;
}

static int
mailctl_policy(int argc, char **argv)
{
	ProtobufCMessage *r;
	int rc;
	if (argc >= 3 && strcmp(argv[0], "set") == 0) {
		Mxfleet__V1__TlsPolicyConfig p = MXFLEET__V1__TLS_POLICY_CONFIG__INIT;
		p.domain = argv[1];
		p.mode = argv[2];
		return mailctl_change("SetPolicy", &p.base);
	}
	if (argc >= 2 && (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "remove") == 0))
		return mailctl_remove_named("RemovePolicy", argv[1]);
	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		if ((rc = mailctl_list("ListPolicies", &r, &mxfleet__v1__policy_list__descriptor)))
			return rc;
		Mxfleet__V1__PolicyList *l = (Mxfleet__V1__PolicyList *)r;
		printf("%-40s %s\n", "DOMAIN", "MODE");
		for (size_t i = 0; i < l->n_policies; i++)
			printf("%-40s %s\n", l->policies[i]->domain, l->policies[i]->mode);
		protobuf_c_message_free_unpacked(r, NULL);
		return 0;
	}
	fprintf(stderr, "usage: mailctl policy set DOMAIN MODE | list | rm DOMAIN\n");
	return 2;
}

static int
mailctl_outcomes(int argc, char **argv)
{
	Mxfleet__V1__OutcomeQuery q = MXFLEET__V1__OUTCOME_QUERY__INIT;
	long since = 86400;
	for (int i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--host") == 0)
			q.host_id = argv[i + 1];
		else if (strcmp(argv[i], "--since") == 0)
			since = strtol(argv[i + 1], NULL, 10);
		else {
			fprintf(stderr, "usage: mailctl outcomes [--host H] [--since SECONDS]\n");
			return 2;
		}
	}
	q.since_unix = (int64_t)time(NULL) - since;
	ProtobufCMessage *r;
	int rc = mailctl_call("SummarizeOutcomes", &q.base, &r, &mxfleet__v1__outcome_report__descriptor);
	if (rc)
		return rc;
	static const char *const dirs[] = { "-", "inbound", "outbound" };
	static const char *const st[] = { "-", "not_offered", "offered", "attempted", "established" };
	Mxfleet__V1__OutcomeReport *rep = (Mxfleet__V1__OutcomeReport *)r;
	printf("%-28s %-9s %-12s %-8s %-32s %8s\n", "HOST", "DIRECTION", "STARTTLS", "TLS", "FAILURE", "SESSIONS");
	for (size_t i = 0; i < rep->n_rows; i++) {
		Mxfleet__V1__OutcomeSummary *x = rep->rows[i];
		printf("%-28s %-9s %-12s %-8s %-32s %8llu\n", x->host_id,
		    x->direction <= 2 ? dirs[x->direction] : "?", x->starttls <= 4 ? st[x->starttls] : "?",
		    x->tls_version[0] ? x->tls_version : "-",
		    x->tls_fail_reason[0] ? x->tls_fail_reason : "-", (unsigned long long)x->sessions);
	}
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

static int
mailctl_pki_revoke(int argc, char **argv)
{
	char path[4096], err[1024];
	struct pki_cert_info info;
	if (argc != 2) {
		fprintf(stderr, "usage: mailctl pki revoke DIR NAME\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/%s.pem", argv[0], argv[1]);
	if (pki_cert_info(path, &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailctl: %s\n", err);
		return 1;
	}
	if (info.serial[0] == '\0') {
		fprintf(stderr, "mailctl: %s: no serial number mailctl can read\n", path);
		return 1;
	}
	Mxfleet__V1__RevokeRequest q = MXFLEET__V1__REVOKE_REQUEST__INIT;
	q.serial = info.serial;
	q.name = info.cn;
	q.not_after_unix = (int64_t)info.not_after;
	ProtobufCMessage *r;
	int rc = mailctl_call("RevokeCertificate", &q.base, &r, &mxfleet__v1__revoke_reply__descriptor);
	if (rc)
		return rc;
	Mxfleet__V1__RevokeReply *rep = (Mxfleet__V1__RevokeReply *)r;
	printf("%s %s (serial %s): refused now by this controld, by every replica within %u s\n",
	    rep->newly_revoked ? "revoked" : "already revoked:", info.cn, info.serial,
	    rep->reload_interval_seconds);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}

static int
mailctl_fleet(int argc, char **argv)
{
	mailctl_conn.socket = getenv("MAILCTL_SOCKET");
	mailctl_conn.server = getenv("MAILCTL_SERVER");
	mailctl_conn.cert = getenv("MAILCTL_CERT");
	mailctl_conn.key = getenv("MAILCTL_KEY");
	mailctl_conn.ca = getenv("MAILCTL_CA");
	mailctl_conn.authority = getenv("MAILCTL_AUTHORITY");
	int i = 0;
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "--socket") == 0) mailctl_conn.socket = v;
		else if (strcmp(k, "--server") == 0) { mailctl_conn.server = v; mailctl_conn.socket = NULL; }
		else if (strcmp(k, "--cert") == 0) mailctl_conn.cert = v;
		else if (strcmp(k, "--key") == 0) mailctl_conn.key = v;
		else if (strcmp(k, "--ca") == 0) mailctl_conn.ca = v;
		else if (strcmp(k, "--authority") == 0) mailctl_conn.authority = v;
		else {
			fprintf(stderr, "mailctl: unknown option %s (see mailctl --help)\n", k);
			return 2;
		}
	}
	if (i >= argc) {
		mailctl_usage(stderr);
		return 2;
	}
	const char *cmd = argv[i];
	int rc;
	if (strcmp(cmd, "hosts") == 0)
		rc = mailctl_hosts();
	else if (strcmp(cmd, "pki") == 0 && i + 1 < argc && strcmp(argv[i + 1], "revoke") == 0)
		rc = mailctl_pki_revoke(argc - i - 2, argv + i + 2);
	else if (strcmp(cmd, "domain") == 0)
		rc = mailctl_domain(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "route") == 0)
		rc = mailctl_route(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "policy") == 0)
		rc = mailctl_policy(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "outcomes") == 0)
		rc = mailctl_outcomes(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "dns") == 0)
		rc = mailctl_dns(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "tls") == 0)
		rc = mailctl_tls(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "reports") == 0)
		rc = mailctl_reports(argc - i - 1, argv + i + 1);
	else if (strcmp(cmd, "queue") == 0)
		rc = mailctl_queue(argc - i - 1, argv + i + 1);
	else {
		fprintf(stderr, "mailctl: unknown command '%s' (see mailctl --help)\n", cmd);
		rc = 2;
	}
	SSL_CTX_free(mailctl_conn.tls);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		mailctl_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	/* pki revoke needs controld; the other pki commands work on files. */
	if (strcmp(argv[1], "pki") == 0 && !(argc > 2 && strcmp(argv[2], "revoke") == 0 &&
	    (getenv("MAILCTL_SOCKET") || getenv("MAILCTL_SERVER"))))
		return mailctl_pki(argc - 2, argv + 2);
	return mailctl_fleet(argc - 1, argv + 1);
}
