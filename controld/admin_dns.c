/* controld: the Admin calls for a hosted domain's DNS (admin_dns.h). */
#include "admin_dns.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "call.h"
#include "controld.h"
#include "db_dns.h"
#include "dnsgen.h"
#include "dnsname.h"
#include "xmalloc.h"

#define ADMIN_DNS_TEXT_MAX	1024	/* spf, dmarc, tlsrpt_rua */

/* ---- checking the settings ---- */

/* A name as the settings keep it: lower case, no final dot. */
static int
admin_dns_name(char *name, const char *what, char *msg, size_t msgsz)
{
	char why[300];
	size_t len;

	if (dnsname_check(name, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "%s: %s", what, why);
		return -1;
	}
	for (char *p = name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((len = strlen(name)) > 0 && name[len - 1] == '.')
		name[len - 1] = '\0';
	return 0;
}

/* Printable ASCII without '"' or '\' (it goes into a TXT record as is). */
static int
admin_dns_text(const char *s, const char *what, const char *prefix, char *msg, size_t msgsz)
{
	size_t plen = strlen(prefix);

	if (s[0] == '\0')
		return 0;
	if (strlen(s) > ADMIN_DNS_TEXT_MAX) {
		snprintf(msg, msgsz, "%s: longer than %d characters", what, ADMIN_DNS_TEXT_MAX);
		return -1;
	}
	for (const char *p = s; *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
			snprintf(msg, msgsz, "%s: printable ASCII only, without '\"' or '\\'", what);
			return -1;
		}
	if (plen > 0 && (strncasecmp(s, prefix, plen) != 0 || (s[plen] != '\0' &&
	    s[plen] != ' ' && s[plen] != ';'))) {
		snprintf(msg, msgsz, "%s: must begin with \"%s\" (e.g. \"%s ...\")", what, prefix,
		    prefix);
		return -1;
	}
	return 0;
}

/* One rua URI (RFC 8460 3): mailto:local@domain or https://host[:port]/... */
static int
admin_dns_rua_uri(const char *u, size_t len, char *msg, size_t msgsz)
{
	char host[300], why[300];
	const char *h, *at;
	size_t hl;

	if (len > 7 && strncasecmp(u, "mailto:", 7) == 0) {
		at = memchr(u, '@', len);
		if (at == NULL || at == u + 7) {
			snprintf(msg, msgsz, "tlsrpt_rua: %.*s: mailto: needs an address "
			    "(mailto:tlsrpt@example.com)", (int)len, u);
			return -1;
		}
		h = at + 1;
		hl = len - (size_t)(h - u);
	} else if (len > 8 && strncasecmp(u, "https://", 8) == 0) {
		h = u + 8;
		hl = strcspn(h, ":/");
		if (hl > len - 8)
			hl = len - 8;
	} else {
		snprintf(msg, msgsz, "tlsrpt_rua: %.*s: each URI is mailto:ADDRESS or https://URL",
		    (int)len, u);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(hl < 299 ? hl : 299), h);
	if (hl == 0 || hl >= sizeof(host) || dnsname_check(host, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "tlsrpt_rua: %.*s: the domain is not a domain name",
		    (int)len, u);
		return -1;
	}
	return 0;
}

/* A comma-separated list of rua URIs, no white space. */
static int
admin_dns_rua(const char *rua, char *msg, size_t msgsz)
{
	if (admin_dns_text(rua, "tlsrpt_rua", "", msg, msgsz) < 0)
		return -1;
	if (strpbrk(rua, " ;") != NULL) {
		snprintf(msg, msgsz, "tlsrpt_rua: URIs separated by commas, no spaces or ';'");
		return -1;
	}
	for (const char *p = rua; *p != '\0';) {
		size_t len = strcspn(p, ",");
		if (admin_dns_rua_uri(p, len, msg, msgsz) < 0)
			return -1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int
admin_dns_listed(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* Each "name=host_id": a host name, a host the settings serve the domain
 * with (when they name hosts), each name once. */
static int
admin_dns_aliases(Mxfleet__V1__DomainDns *d, char *msg, size_t msgsz)
{
	char what[400];

	for (size_t i = 0; i < d->n_aliases; i++) {
		char *a = d->aliases[i], *eq = strchr(a, '=');
		if (eq == NULL || eq == a || eq[1] == '\0') {
			snprintf(msg, msgsz, "alias %.300s: write NAME=HOST_ID (e.g. "
			    "mx.example.net=mx1)", a);
			return -1;
		}
		*eq = '\0';
		snprintf(what, sizeof(what), "alias %.300s", a);
		if (admin_dns_name(a, what, msg, msgsz) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strncmp(d->aliases[j], a, strlen(a)) == 0 && d->aliases[j][strlen(a)] == '=') {
				snprintf(msg, msgsz, "alias %.300s: given twice", a);
				return -1;
			}
		if (d->n_hosts > 0 && !admin_dns_listed(d->hosts, d->n_hosts, eq + 1)) {
			snprintf(msg, msgsz, "alias %.300s: host %.100s does not serve the domain "
			    "(--hosts)", a, eq + 1);
			return -1;
		}
		/* Back to one string, the name normalized in place. */
		char *s = xasprintf("%s=%s", a, eq + 1);
		free(d->aliases[i]);
		d->aliases[i] = s;
	}
	return 0;
}

int
admin_dns_refusal(Mxfleet__V1__DomainDns *d, char *msg, size_t msgsz)
{
	const char *m = d->sts_mode;

	if (d->domain[0] == '\0') {
		snprintf(msg, msgsz, "domain: required");
		return -1;
	}
	if (admin_dns_name(d->domain, "domain", msg, msgsz) < 0)
		return -1;
	if (m[0] != '\0' && strcmp(m, "enforce") != 0 && strcmp(m, "testing") != 0 &&
	    strcmp(m, "none") != 0) {
		snprintf(msg, msgsz, "sts_mode: %.50s is not enforce, testing or none", m);
		return -1;
	}
	if (d->sts_max_age > DB_DNS_MAX_MAX_AGE) {
		snprintf(msg, msgsz, "sts_max_age: %u is over %u seconds (RFC 8461 3.2: at most "
		    "one year)", d->sts_max_age, DB_DNS_MAX_MAX_AGE);
		return -1;
	}
	if (d->ttl > DB_DNS_MAX_TTL) {
		snprintf(msg, msgsz, "ttl: %u is over %u seconds", d->ttl, DB_DNS_MAX_TTL);
		return -1;
	}
	for (size_t i = 0; i < d->n_hosts; i++)
		if (d->hosts[i][0] == '\0' || admin_dns_listed(d->hosts, i, d->hosts[i])) {
			snprintf(msg, msgsz, "hosts: %s", d->hosts[i][0] ? "a host is listed twice" :
			    "an empty host id");
			return -1;
		}
	if (admin_dns_aliases(d, msg, msgsz) < 0 || admin_dns_rua(d->tlsrpt_rua, msg, msgsz) < 0 ||
	    admin_dns_text(d->spf, "spf", "v=spf1", msg, msgsz) < 0 ||
	    admin_dns_text(d->dmarc, "dmarc", "v=DMARC1", msg, msgsz) < 0)
		return -1;
	return 0;
}

/* ---- the calls ---- */

#define FREE_FN(name, call)	static void name(void *p) { call; }
FREE_FN(admin_dns_free_req, mxfleet__v1__domain_dns__free_unpacked(p, NULL))
FREE_FN(admin_dns_free_name, mxfleet__v1__domain_name__free_unpacked(p, NULL))
FREE_FN(admin_dns_free_settings, db_dns_get_free(p))

static int
admin_dns_set_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return admin_change_snapshot(db, j, db_dns_set(db, j->req, (time_t)j->n1, NULL), 0);
}

void
admin_dns_set(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainDns, mxfleet__v1__domain_dns, c, msg, len);
	char text[600];

	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (admin_dns_refusal(req, text, sizeof(text)) < 0)
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	else {
		struct call_job *j = call_job_new(c, admin_dns_set_work, admin_change_answer, req,
		    admin_dns_free_req);
		j->log = xasprintf("event=domain_dns_set domain=%s sts_mode=%s hosts=%zu "
		    "aliases=%zu", req->domain, req->sts_mode[0] ? req->sts_mode : "enforce",
		    req->n_hosts, req->n_aliases);
		j->n1 = (uint64_t)time(NULL);	/* the day in new DKIM selectors */
		call_submit(c, j);
		return;
	}
	admin_dns_free_req(req);
}

static int
admin_dns_get_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__DomainDns *d = NULL;
	int rc = db_dns_get(db, ((Mxfleet__V1__DomainName *)j->req)->name, &d);

	j->reply = d;
	j->reply_free = admin_dns_free_settings;
	return rc;
}

/* A call about one domain (DomainName), answered with j->reply. j->n1 is
 * the time it came: the day in the selectors of DKIM keys made for it. */
static void
admin_dns_named(struct grpc_call *c, const uint8_t *msg, size_t len,
    int (*work)(struct db *, struct dbq_job *))
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0) {
		admin_dns_free_name(req);
		return;
	}
	struct call_job *j = call_job_new(c, work, call_answer_reply, req, admin_dns_free_name);
	j->n1 = (uint64_t)time(NULL);
	call_submit(c, j);
}

void
admin_dns_get(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_named(c, msg, len, admin_dns_get_work);
}

/* ---- DnsRecords ---- */

static void
admin_dns_set_free(void *p)
{
	Mxfleet__V1__DnsRecordSet *s = p;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_records; i++) {
		Mxfleet__V1__DnsRecord *r = s->records[i];
		free(r->owner);
		free(r->type);
		free(r->rdata);
		free(r->why);
		free(r);
	}
	for (size_t i = 0; i < s->n_errors; i++) {
		Mxfleet__V1__DnsFinding *f = s->errors[i];
		free(f->severity);
		free(f->code);
		free(f->subject);
		free(f->what);
		free(f->why);
		free(f->fix);
		free(f);
	}
	free(s->records);
	free(s->errors);
	free(s->domain);
	free(s->sts_policy);
	free(s->sts_id);
	free(s);
}

#define DUP(s)	xstrdup((s) != NULL ? (s) : "")

static Mxfleet__V1__DnsRecordSet *
admin_dns_set_from(const char *domain, const struct dnsgen_result *r)
{
	Mxfleet__V1__DnsRecordSet *s = xmalloc(sizeof(*s));

	mxfleet__v1__dns_record_set__init(s);
	s->domain = xstrdup(domain);
	s->sts_policy = DUP(r->sts_policy);
	s->sts_id = xstrdup(r->sts_id);
	s->records = xcalloc(r->nrrs + 1, sizeof(*s->records));
	for (; s->n_records < r->nrrs; s->n_records++) {
		const struct dnsgen_rr *rr = &r->rrs[s->n_records];
		Mxfleet__V1__DnsRecord *x = xmalloc(sizeof(*x));
		mxfleet__v1__dns_record__init(x);
		x->owner = DUP(rr->owner);
		x->ttl = rr->ttl;
		x->type = DUP(rr->type);
		x->rdata = DUP(rr->rdata);
		x->why = DUP(rr->why);
		s->records[s->n_records] = x;
	}
	s->errors = xcalloc(r->nerrors + 1, sizeof(*s->errors));
	for (; s->n_errors < r->nerrors; s->n_errors++) {
		const struct dnsgen_error *e = &r->errors[s->n_errors];
		Mxfleet__V1__DnsFinding *f = xmalloc(sizeof(*f));
		mxfleet__v1__dns_finding__init(f);
		f->severity = DUP(e->severity);
		f->code = DUP(e->code);
		f->subject = DUP(e->subject);
		f->what = DUP(e->what);
		f->why = DUP(e->why);
		f->fix = DUP(e->fix);
		s->errors[s->n_errors] = f;
	}
	return s;
}

/* The domain's keys first (a domain whose settings were never set has
 * none yet), then the records from one consistent read. */
static int
admin_dns_records_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const char *name = ((Mxfleet__V1__DomainName *)j->req)->name;
	struct dnsgen_domain d;
	struct dnsgen_result r;
	char err[300];
	int rc;

	if ((rc = db_dns_dkim_ensure(db, name, (time_t)j->n1)) != DB_OK ||
	    (rc = db_dns_load(db, name, &d)) != DB_OK)
		return rc;
	if (dnsgen_domain(&d, &r, err, sizeof(err)) < 0) {
		snprintf(qj->err, sizeof(qj->err), "cannot generate the records of %s: %s",
		    d.name, err);
		db_dns_domain_free(&d);
		return DB_EINVAL;
	}
	j->reply = admin_dns_set_from(d.name, &r);
	j->reply_free = admin_dns_set_free;
	dnsgen_result_free(&r);
	db_dns_domain_free(&d);
	return DB_OK;
}

void
admin_dns_records(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_named(c, msg, len, admin_dns_records_work);
}

/* ---- not built yet ---- */

/* Said plainly rather than answered with an empty report that would read
 * as "no findings" or "nothing to push". */
static void
admin_dns_unbuilt(struct grpc_call *c, const char *what)
{
	char text[100];

	C->m.calls++;
	snprintf(text, sizeof(text), "%s: not built yet", what);
	if (call_check_admin(c) == 0)
		grpc_call_finish(c, GRPC_UNIMPLEMENTED, text);
}

void
admin_dns_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_unbuilt(c, "dns check");
}

void
admin_dns_push(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_dns_unbuilt(c, "dns push");
}
