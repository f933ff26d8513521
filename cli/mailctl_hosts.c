/* mailctl hosts: every host's health at a glance (docs/control-plane.md,
 * "mailctl hosts"). Each host gets a state, ok, warn or stale, from the
 * problems found in what controld stored of its heartbeats; the exit status
 * says whether every host is ok, for monitoring. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mailctl.h"
#include "mxfleet.pb-c.h"
#include "xmalloc.h"

/* 3 heartbeats at mxd's default control.heartbeat_interval (10 s). */
#define MAILCTL_HOSTS_STALE_AFTER	30
#define MAILCTL_HOSTS_CERT_WARN_DAYS	14

struct hosts_opts {
	long long	stale_after;		/* seconds without a heartbeat: stale */
	long long	cert_warn_days;		/* certificate expiring sooner: warn */
	time_t		now;
};

/* What mailctl makes of one host. */
struct host_health {
	const Mxfleet__V1__HostInfo	*h;
	const char			*state;		/* "ok", "warn", "stale" */
	json_t				*problems;	/* [{code, text}] */
};

#define MAILCTL_HOSTS_USAGE \
	"usage: mailctl hosts [--stale-after DURATION] [--cert-warn-days N] [--json]\n" \
	"  DURATION: seconds, or a number with s, m, h or d (default 30s: 3 heartbeats\n" \
	"  of the default control.heartbeat_interval); exit 0 every host ok, 1 not\n"

/* 12 -> "12s", 300 -> "5m", 7200 -> "2h", 172800 -> "2d" (rounded down). */
static void
mailctl_hosts_span(long long s, char *out, size_t outsz)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, outsz, "%llds", s);
	else if (s < 120 * 60)
		snprintf(out, outsz, "%lldm", s / 60);
	else if (s < 48 * 3600)
		snprintf(out, outsz, "%lldh", s / 3600);
	else
		snprintf(out, outsz, "%lldd", s / 86400);
}

static void
mailctl_hosts_time(int64_t t, char *out, size_t outsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(out, outsz, "-");
	else
		strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
mailctl_hosts_problem(struct host_health *hh, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
mailctl_hosts_problem(struct host_health *hh, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(hh->problems, json_pack("{s:s, s:s}", "code", code, "text", text));
}

static void
mailctl_hosts_cert(struct host_health *hh, const struct hosts_opts *o)
{
	const Mxfleet__V1__HostInfo *h = hh->h;
	long long left = (long long)h->cert_not_after_unix - (long long)o->now;
	char span[32], when[32];

	if (h->cert_not_after_unix <= 0)
		return;
	mailctl_hosts_time(h->cert_not_after_unix, when, sizeof(when));
	if (left <= 0) {
		mailctl_hosts_span(-left, span, sizeof(span));
		mailctl_hosts_problem(hh, "cert_expired", "certificate expired %s ago (%s)", span,
		    when);
	} else if (left < o->cert_warn_days * 86400) {
		mailctl_hosts_span(left, span, sizeof(span));
		mailctl_hosts_problem(hh, "cert_expiring", "certificate expires in %s (%s)", span,
		    when);
	}
}

/* The problems of one host, and its state. */
static void
mailctl_hosts_check(struct host_health *hh, const struct hosts_opts *o)
{
	const Mxfleet__V1__HostInfo *h = hh->h;
	char span[32];
	int stale = 0;

	hh->problems = json_array();
	if (h->last_seen_unix <= 0) {
		mailctl_hosts_problem(hh, "stale", "never seen");
		stale = 1;
	} else if ((long long)o->now - h->last_seen_unix > o->stale_after) {
		mailctl_hosts_span((long long)o->now - h->last_seen_unix, span, sizeof(span));
		mailctl_hosts_problem(hh, "stale", "not seen for %s (more than %llds)", span,
		    o->stale_after);
		stale = 1;
	}
	/* Right after a change every host is behind until its next heartbeat:
	 * a problem once the change is older than the stale window. */
	if (h->config_version_latest > h->config_version &&
	    (long long)o->now - h->config_latest_unix > o->stale_after)
		mailctl_hosts_problem(hh, "config_behind", "config version %" PRIu64 ", %" PRIu64
		    " behind %" PRIu64, h->config_version,
		    h->config_version_latest - h->config_version, h->config_version_latest);
	mailctl_hosts_cert(hh, o);
	if (h->batches_refused > 0)
		mailctl_hosts_problem(hh, "batches_refused", "%" PRIu64 " outcome batches refused "
		    "since its mxd started (docs/control-plane.md, Refused batches)",
		    h->batches_refused);
	if (h->outcomes_quarantined > 0)
		mailctl_hosts_problem(hh, "outcomes_quarantined", "%" PRIu64 " outcome record(s) "
		    "quarantined in its spool's journal-quarantine/", h->outcomes_quarantined);
	hh->state = stale ? "stale" : json_array_size(hh->problems) ? "warn" : "ok";
}

/* The keys a host serves now, as the first 12 hex digits of each SPKI
 * SHA-256 (TLSA 3 1 1), comma-separated; "-" when none. */
static void
mailctl_hosts_keys(const Mxfleet__V1__HostIdentity *id, char *out, size_t outsz)
{
	size_t len = 0;

	snprintf(out, outsz, "-");
	for (size_t i = 0; id && i < id->n_certs && len + 14 < outsz; i++)
		len += (size_t)snprintf(out + len, outsz - len, "%s%.12s", i ? "," : "",
		    id->certs[i]->spki_sha256);
}

static void
mailctl_hosts_row(const struct host_health *hh, const struct hosts_opts *o)
{
	const Mxfleet__V1__HostInfo *h = hh->h;
	const Mxfleet__V1__HostIdentity *id = h->identity;
	char seen[32] = "-", oldest[32] = "-", behind[32] = "-", exp[32], keys[200];

	if (h->last_seen_unix > 0)
		mailctl_hosts_span((long long)o->now - h->last_seen_unix, seen, sizeof(seen));
	if (h->queue_oldest_unix > 0)
		mailctl_hosts_span((long long)o->now - h->queue_oldest_unix, oldest, sizeof(oldest));
	if (h->config_version_latest > 0)
		snprintf(behind, sizeof(behind), "%" PRIu64, h->config_version_latest >
		    h->config_version ? h->config_version_latest - h->config_version : 0);
	mailctl_hosts_time(h->cert_not_after_unix, exp, sizeof(exp));
	mailctl_hosts_keys(id, keys, sizeof(keys));
	printf("%-28s %-5s %8s %8" PRIu64 " %6" PRIu64 " %6s %7" PRIu64 " %6s %-20s %7" PRIu64
	    " %11" PRIu64 " %-8s %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %-24s %-12.12s %s\n",
	    h->host_id, hh->state, seen, h->journal_backlog, h->queue_messages, oldest,
	    h->config_version, behind, exp, h->batches_refused, h->outcomes_quarantined,
	    h->version[0] ? h->version : "-", h->outcomes, h->dropped, h->corrupt,
	    id && id->hostname[0] ? id->hostname : "-",
	    id && id->next_spki_sha256[0] ? id->next_spki_sha256 : "-", keys);
}

/* The table, then a WARN line per problem (after an empty line). */
static void
mailctl_hosts_text(const struct host_health *hh, size_t n, const struct hosts_opts *o)
{
	int warned = 0;

	printf("%-28s %-5s %8s %8s %6s %6s %7s %6s %-20s %7s %11s %-8s %10s %8s %8s %-24s %-12s "
	    "%s\n", "HOST", "STATE", "SEEN_AGO", "BACKLOG", "QUEUE", "OLDEST", "CONFIG", "BEHIND",
	    "CERT_EXPIRES", "REFUSED", "QUARANTINED", "VERSION", "OUTCOMES", "DROPPED", "CORRUPT",
	    "MX", "NEXT_KEY", "KEYS");
	for (size_t i = 0; i < n; i++)
		mailctl_hosts_row(&hh[i], o);
	for (size_t i = 0; i < n; i++) {
		size_t k;
		json_t *p;
		json_array_foreach(hh[i].problems, k, p) {
			printf("%sWARN %s: %s\n", warned++ ? "" : "\n", hh[i].h->host_id,
			    json_string_value(json_object_get(p, "text")));
		}
	}
}

static json_t *
mailctl_hosts_age(int64_t t, const struct hosts_opts *o)
{
	return t > 0 ? json_integer((json_int_t)o->now - t) : json_null();
}

/* Every HostInfo field as sent, then what mailctl made of it. */
static json_t *
mailctl_hosts_host_json(const struct host_health *hh, const struct hosts_opts *o)
{
	const Mxfleet__V1__HostInfo *h = hh->h;
	json_t *j = mailctl_pb_json(&h->base);

	json_object_set_new(j, "state", json_string(hh->state));
	json_object_set_new(j, "last_seen_ago_seconds", mailctl_hosts_age(h->last_seen_unix, o));
	json_object_set_new(j, "config_behind", h->config_version_latest == 0 ? json_null() :
	    json_integer(h->config_version_latest > h->config_version ?
	    (json_int_t)(h->config_version_latest - h->config_version) : 0));
	json_object_set_new(j, "queue_oldest_age_seconds",
	    mailctl_hosts_age(h->queue_oldest_unix, o));
	json_object_set_new(j, "cert_expires_in_seconds", h->cert_not_after_unix > 0 ?
	    json_integer((json_int_t)(h->cert_not_after_unix - o->now)) : json_null());
	json_object_set(j, "problems", hh->problems);
	return j;
}

static void
mailctl_hosts_json(const struct host_health *hh, size_t n, const struct hosts_opts *o, int ok)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, mailctl_hosts_host_json(&hh[i], o));
	mailctl_print_json(json_pack("{s:I, s:I, s:I, s:b, s:o}", "now_unix", (json_int_t)o->now,
	    "stale_after_seconds", (json_int_t)o->stale_after, "cert_warn_days",
	    (json_int_t)o->cert_warn_days, "ok", ok, "hosts", a));
}

static int
mailctl_hosts_opts(int argc, char **argv, struct hosts_opts *o)
{
	char *end;

	o->stale_after = MAILCTL_HOSTS_STALE_AFTER;
	o->cert_warn_days = MAILCTL_HOSTS_CERT_WARN_DAYS;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--stale-after") == 0 && i + 1 < argc) {
			if ((o->stale_after = mailctl_inbound_duration(argv[++i])) < 0)
				return -1;
		} else if (strcmp(argv[i], "--cert-warn-days") == 0 && i + 1 < argc) {
			o->cert_warn_days = strtoll(argv[++i], &end, 10);
			if (*argv[i] == '\0' || *end != '\0' || o->cert_warn_days < 0 ||
			    o->cert_warn_days > 3650)
				return -1;
		} else
			return -1;
	}
	return 0;
}

int
mailctl_hosts(int argc, char **argv)
{
	struct hosts_opts o;
	Mxfleet__V1__Empty e = MXFLEET__V1__EMPTY__INIT;
	ProtobufCMessage *r;
	int rc, ok = 1;

	mailctl_json_arg(&argc, argv);
	if (mailctl_hosts_opts(argc, argv, &o) < 0) {
		fprintf(stderr, MAILCTL_HOSTS_USAGE);
		return 2;
	}
	if ((rc = mailctl_call("ListHosts", &e.base, &r, &mxfleet__v1__host_list__descriptor)))
		return rc;
	Mxfleet__V1__HostList *l = (Mxfleet__V1__HostList *)r;
	struct host_health *hh = xcalloc(l->n_hosts ? l->n_hosts : 1, sizeof(*hh));
	o.now = time(NULL);
	for (size_t i = 0; i < l->n_hosts; i++) {
		hh[i].h = l->hosts[i];
		mailctl_hosts_check(&hh[i], &o);
		ok &= strcmp(hh[i].state, "ok") == 0;
	}
	if (mailctl_json)
		mailctl_hosts_json(hh, l->n_hosts, &o, ok);
	else
		mailctl_hosts_text(hh, l->n_hosts, &o);
	for (size_t i = 0; i < l->n_hosts; i++)
		json_decref(hh[i].problems);
	free(hh);
	protobuf_c_message_free_unpacked(r, NULL);
	return ok ? 0 : 1;
}
