/* mailctl: the operator's command line. PKI commands work locally on the
 * fleet CA directory; fleet commands talk to controld. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki.h"

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
	    "        admin certificate for mailctl; default 825 days\n"
	    "  pki show FILE\n"
	    "        print a certificate's name, role and expiry\n"
	    "\n"
	    "Fleet (through controld):\n"
	    "  hosts, domain add|list|rm, route add|list|rm\n"
	    "        not available yet: controld is still being built (issue 3)\n");
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
		    role == PKI_ADMIN ? "admin" : "host");
		return 0;
	}
	if (strcmp(argv[0], "show") == 0) {
		char cn[256], when[64];
		enum pki_role role;
		time_t na;
		if (pki_describe(argv[1], cn, sizeof(cn), &role, &na, err, sizeof(err)) < 0) {
			fprintf(stderr, "mailctl: %s\n", err);
			return 1;
		}
		struct tm tm;
		gmtime_r(&na, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("name=%s role=%s not_after=%s\n", cn, role == PKI_ADMIN ? "admin" : "host", when);
		return 0;
	}
	fprintf(stderr, "mailctl: unknown pki command %s\n", argv[0]);
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		mailctl_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "pki") == 0)
		return mailctl_pki(argc - 2, argv + 2);
	if (strcmp(argv[1], "hosts") == 0 || strcmp(argv[1], "domain") == 0 ||
	    strcmp(argv[1], "route") == 0) {
		fprintf(stderr, "mailctl: '%s' needs controld, which is not built yet "
		    "(issue 3: control plane); nothing was changed\n", argv[1]);
		return 3;
	}
	fprintf(stderr, "mailctl: unknown command '%s' (see mailctl --help)\n", argv[1]);
	return 2;
}
