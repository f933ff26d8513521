/* mailctl pki: the fleet CA (init, issue, show work on its directory) and
 * pki revoke (through controld); docs/control-plane.md, "PKI". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"
#include "pki.h"

#define MAILCTL_PKI_USAGE \
	"usage: mailctl pki init DIR [--name NAME] [--days N] [--json]\n" \
	"       mailctl pki issue DIR NAME [--admin] [--ip ADDR]... [--days N] [--json]\n" \
	"       mailctl pki show FILE [--json]\n" \
	"       mailctl [--socket PATH | --server HOST:PORT ...] pki revoke DIR NAME [--json]\n"

static int
mailctl_pki_usage(void)
{
	fprintf(stderr, MAILCTL_PKI_USAGE);
	return 2;
}

static int
mailctl_pki_days(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > 36500) {
		fprintf(stderr, "mailctl: --days takes 1..36500\n");
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int
mailctl_pki_init(int argc, char **argv)
{
	const char *dir = argv[0], *name = "mxfleet fleet CA";
	char err[1024], cert[4200], key[4200];
	int days = 3650;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
			if (mailctl_pki_days(argv[++i], &days) < 0)
				return 2;
		} else {
			fprintf(stderr, "mailctl: pki init: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	if (pki_init(dir, name, days, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailctl: %s\n", err);
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	if (mailctl_json)
		mailctl_print_json(json_pack("{s:s, s:s, s:s}", "dir", dir, "ca_cert", cert,
		    "ca_key", key));
	else
		printf("created %s and %s\n", cert, key);
	return 0;
}

static int
mailctl_pki_issue(int argc, char **argv)
{
	const char *dir = argv[0], *name = argv[1];
	const char *ips[16] = { NULL };
	char err[1024], cert[4400], key[4400];
	size_t nips = 0;
	int days = 825;
	enum pki_role role = PKI_HOST;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--admin") == 0)
			role = PKI_ADMIN;
		else if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc && nips < 16)
			ips[nips++] = argv[++i];
		else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
			if (mailctl_pki_days(argv[++i], &days) < 0)
				return 2;
		} else {
			fprintf(stderr, "mailctl: pki issue: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	if (pki_issue(dir, name, role, ips, nips, days, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailctl: %s\n", err);
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	if (mailctl_json)
		mailctl_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "dir", dir,
		    "name", name, "role", pki_role_name(role), "cert", cert, "key", key,
		    "days", days));
	else
		printf("issued %s and %s (%s)\n", cert, key, pki_role_name(role));
	return 0;
}

static void
mailctl_pki_time(time_t t, char *out, size_t outsz)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
mailctl_pki_show(int argc, char **argv)
{
	struct pki_cert_info info;
	char err[1024], when[64];

	if (argc != 1)
		return mailctl_pki_usage();
	if (pki_cert_info(argv[0], &info, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailctl: %s\n", err);
		return 1;
	}
	mailctl_pki_time(info.not_after, when, sizeof(when));
	if (mailctl_json)
		mailctl_print_json(json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "file", argv[0],
		    "name", info.cn, "role", pki_role_name(info.role), "not_after", when,
		    "not_after_unix", (json_int_t)info.not_after, "serial", info.serial));
	else
		printf("name=%s role=%s not_after=%s serial=%s\n", info.cn,
		    pki_role_name(info.role), when, info.serial[0] ? info.serial : "-");
	return 0;
}

int
mailctl_pki(int argc, char **argv)
{
	mailctl_json_arg(&argc, argv);
	if (argc >= 2 && strcmp(argv[0], "init") == 0)
		return mailctl_pki_init(argc - 1, argv + 1);
	if (argc >= 3 && strcmp(argv[0], "issue") == 0)
		return mailctl_pki_issue(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[0], "show") == 0)
		return mailctl_pki_show(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "revoke") == 0) {
		fprintf(stderr, "mailctl: pki revoke talks to controld: say where it is "
		    "(--socket PATH or --server HOST:PORT with an admin certificate, before 'pki')\n");
		return 2;
	}
	return mailctl_pki_usage();
}

static void
mailctl_pki_revoked(const struct pki_cert_info *info, const Mxfleet__V1__RevokeReply *rep)
{
	if (mailctl_json)
		mailctl_print_json(json_pack("{s:s, s:s, s:I, s:b, s:i, s:i}", "name", info->cn,
		    "serial", info->serial, "not_after_unix", (json_int_t)info->not_after,
		    "newly_revoked", (int)rep->newly_revoked, "revoked_total",
		    (int)rep->revoked_total, "reload_interval_seconds",
		    (int)rep->reload_interval_seconds));
	else
		printf("%s %s (serial %s): refused now by this controld, by every replica "
		    "within %u s\n", rep->newly_revoked ? "revoked" : "already revoked:", info->cn,
		    info->serial, rep->reload_interval_seconds);
}

int
mailctl_pki_revoke(int argc, char **argv)
{
	char path[4096], err[1024];
	struct pki_cert_info info;

	mailctl_json_arg(&argc, argv);
	if (argc != 2) {
		fprintf(stderr, "usage: mailctl pki revoke DIR NAME [--json]\n");
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
	mailctl_pki_revoked(&info, (Mxfleet__V1__RevokeReply *)r);
	protobuf_c_message_free_unpacked(r, NULL);
	return 0;
}
