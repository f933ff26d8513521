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
	    "  hosts [--stale-after 30s] [--cert-warn-days 14]\n"
	    "                                     every host's health: state (ok, warn, stale),\n"
	    "                                     last seen, journal backlog, queue, config\n"
	    "                                     version and how far behind, certificate\n"
	    "                                     expiry, batches refused, records quarantined,\n"
	    "                                     version, outcomes, MX name, keys; a WARN line\n"
	    "                                     per problem; exit 0 all ok, 1 a problem\n"
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
	    "--json (before or after the command): every command that prints prints one\n"
	    "JSON document instead (docs/control-plane.md, \"--json\")\n"
	    "\n"
	    "How to reach controld (options before the command, or environment):\n"
	    "  --socket PATH        controld's local socket (MAILCTL_SOCKET)\n"
	    "  --server HOST:PORT   controld's gRPC port (MAILCTL_SERVER), with\n"
	    "  --cert F --key F --ca F [--authority NAME]   an admin certificate\n"
	    "                       (MAILCTL_CERT, MAILCTL_KEY, MAILCTL_CA, MAILCTL_AUTHORITY)\n");
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
		rc = mailctl_hosts(argc - i - 1, argv + i + 1);
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

/* mailctl --json CMD ...: the global options' --json moves to the end of
 * the command's arguments, where every command that prints takes it. */
static char **mailctl_argv_json;

static char **
mailctl_global_json(int *argc, char **argv)
{
	int i = 1, n, json = 0;
	char **v;

	while (i < *argc && strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i], "--help") != 0) {
		if (strcmp(argv[i], "--json") != 0) {
			i += 2;
			continue;
		}
		memmove(argv + i, argv + i + 1, sizeof(*argv) * (size_t)(*argc - i - 1));
		(*argc)--;
		json = 1;
	}
	if (!json)
		return argv;
	v = xcalloc((size_t)*argc + 2, sizeof(*v));
	for (n = 0; n < *argc; n++)
		v[n] = argv[n];
	v[n++] = (char *)"--json";
	*argc = n;
	mailctl_argv_json = v;
	return v;
}

int
main(int argc, char **argv)
{
	argv = mailctl_global_json(&argc, argv);
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
