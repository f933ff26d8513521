/* controld: DNS checks and pushes (dnsops.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_dns.h"
#include "buf.h"
#include "call.h"
#include "controld.h"
#include "db_dns.h"
#include "db_dnspush.h"
#include "dns.h"
#include "dnscheck.h"
#include "dnsgen.h"
#include "dnsops.h"
#include "dnsupdate.h"
#include "log.h"
#include "xmalloc.h"

/* ---- configuration ---- */

static const char *const dnsops_keys[] = {
	"resolver", "timeout", "smtp_port", "https_port", "ca_file", "workers", "zones",
	"rollover_interval", NULL
};
static const char *const dnsops_zone_keys[] = {
	"name", "server", "tsig_name", "tsig_algorithm", "tsig_secret_file", "servers", NULL
};

static int
dnsops_str(const config_setting_t *g, const char *key, char **out, struct conf_err *err)
{
	const char *s;
	int r = conf_get_string(g, key, &s, err);
	if (r == 1) {
		free(*out);
		*out = xstrdup(s);
	}
	return r;
}

/* A TSIG secret: base64 on one line, in a file no one else may read (the
 * key signs changes to the fleet's DNS). Never logged. */
static int
dnsops_read_secret(const config_setting_t *s, const char *path, char **out,
    struct conf_err *err)
{
	char buf[1024];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return conf_error(err, s, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (st.st_mode & 0007)) {
		close(fd);
		return conf_error(err, s, "%s: readable by others (mode %03o): a TSIG secret "
		    "must be mode 0600 or 0640", path, (unsigned)(st.st_mode & 0777));
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return conf_error(err, s, "%s: %s", path, strerror(errno));
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	if (n == 0)
		return conf_error(err, s, "%s: empty", path);
	for (ssize_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)buf[i]) && buf[i] != '+' && buf[i] != '/' &&
		    buf[i] != '=') {
			explicit_bzero(buf, sizeof(buf));
			return conf_error(err, s, "%s: not one line of base64", path);
		}
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* The zone's authoritative servers, asked directly by the rollover (default:
 * the primary alone). */
static int
dnsops_zone_servers(const config_setting_t *z, struct dnsops_zone *zone, struct conf_err *err)
{
	config_setting_t *l;
	const char *s;
	int r = conf_get_aggregate(z, "servers", CONFIG_TYPE_ARRAY, &l, err);

	if (r < 0)
		return -1;
	zone->nservers = r == 1 ? (size_t)config_setting_length(l) : 1;
	zone->servers = xcalloc(zone->nservers + 1, sizeof(*zone->servers));
	if (r == 0) {
		zone->servers[0] = xstrdup(zone->server);
		return 0;
	}
	if (zone->nservers == 0)
		return conf_error(err, l, "servers: empty (leave it out: the primary alone)");
	for (size_t i = 0; i < zone->nservers; i++) {
		if (conf_elem_string(l, (unsigned)i, &s, err) < 0)
			return -1;
		zone->servers[i] = xstrdup(s);
	}
	return 0;
}

static int
dnsops_zone_load(const config_setting_t *z, struct dnsops_zone *zone, struct conf_err *err)
{
	const char *secret_file = NULL;

	if (config_setting_type(z) != CONFIG_TYPE_GROUP)
		return conf_error(err, z, "expected a group { name = ...; server = ...; }");
	if (conf_check_keys(z, dnsops_zone_keys, err) < 0 ||
	    dnsops_str(z, "name", &zone->name, err) < 0 ||
	    dnsops_str(z, "server", &zone->server, err) < 0 ||
	    dnsops_str(z, "tsig_name", &zone->tsig_name, err) < 0 ||
	    dnsops_str(z, "tsig_algorithm", &zone->tsig_algorithm, err) < 0 ||
	    conf_get_string(z, "tsig_secret_file", &secret_file, err) < 0)
		return -1;
	if (zone->name == NULL || zone->server == NULL)
		return conf_error(err, z, "a zone needs name and server");
	size_t len = strlen(zone->name);
	if (len > 1 && zone->name[len - 1] == '.')
		zone->name[len - 1] = '\0';
	for (char *p = zone->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!dns_name_valid(zone->name))
		return conf_error(err, z, "name: %s is not a domain name", zone->name);
	if ((zone->tsig_name == NULL) != (secret_file == NULL))
		return conf_error(err, z, "tsig_name and tsig_secret_file go together");
	if (zone->tsig_algorithm == NULL)
		zone->tsig_algorithm = xstrdup("hmac-sha256");
	if (secret_file &&
	    dnsops_read_secret(config_setting_get_member(z, "tsig_secret_file"), secret_file,
	    &zone->tsig_secret, err) < 0)
		return -1;
	return dnsops_zone_servers(z, zone, err);
}

int
dnsops_config_load(const config_setting_t *g, struct dnsops_config *cfg, struct conf_err *err)
{
	config_setting_t *zl;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout = 10;
	cfg->smtp_port = 25;
	cfg->https_port = 443;
	cfg->workers = 2;
	cfg->rollover_interval = 60;
	if (g == NULL)
		return 0;
	if (conf_check_keys(g, dnsops_keys, err) < 0 ||
	    dnsops_str(g, "resolver", &cfg->resolver, err) < 0 ||
	    conf_get_int(g, "timeout", 1, 300, &cfg->timeout, err) < 0 ||
	    conf_get_int(g, "smtp_port", 1, 65535, &cfg->smtp_port, err) < 0 ||
	    conf_get_int(g, "https_port", 1, 65535, &cfg->https_port, err) < 0 ||
	    dnsops_str(g, "ca_file", &cfg->ca_file, err) < 0 ||
	    conf_get_int(g, "workers", 1, 16, &cfg->workers, err) < 0 ||
	    conf_get_int(g, "rollover_interval", 1, 86400, &cfg->rollover_interval, err) < 0 ||
	    (r = conf_get_aggregate(g, "zones", CONFIG_TYPE_LIST, &zl, err)) < 0)
		goto fail;
	if (r == 1) {
		cfg->nzones = (size_t)config_setting_length(zl);
		cfg->zones = xcalloc(cfg->nzones ? cfg->nzones : 1, sizeof(*cfg->zones));
		for (size_t i = 0; i < cfg->nzones; i++)
			if (dnsops_zone_load(config_setting_get_elem(zl, (unsigned)i), &cfg->zones[i],
			    err) < 0)
				goto fail;
	}
	return 0;
fail:
	dnsops_config_free(cfg);
	return -1;
}

void
dnsops_config_free(struct dnsops_config *cfg)
{
	for (size_t i = 0; i < cfg->nzones; i++) {
		struct dnsops_zone *z = &cfg->zones[i];
		free(z->name);
		free(z->server);
		free(z->tsig_name);
		free(z->tsig_algorithm);
		for (size_t k = 0; k < z->nservers; k++)
			free(z->servers[k]);
		free(z->servers);
		if (z->tsig_secret) {
			explicit_bzero(z->tsig_secret, strlen(z->tsig_secret));
			free(z->tsig_secret);
		}
	}
	free(cfg->zones);
	free(cfg->resolver);
	free(cfg->ca_file);
	memset(cfg, 0, sizeof(*cfg));
}

const struct dnsops_zone *
dnsops_zone_of(const struct dnsops_config *cfg, const char *owner)
{
	const struct dnsops_zone *best = NULL;
	size_t olen = strlen(owner), bestlen = 0;

	if (olen > 0 && owner[olen - 1] == '.')
		olen--;
	for (size_t i = 0; i < cfg->nzones; i++) {
		size_t zlen = strlen(cfg->zones[i].name);
		if (zlen > olen || zlen < bestlen)
			continue;
		const char *tail = owner + olen - zlen;
		if (strncasecmp(tail, cfg->zones[i].name, zlen) != 0)
			continue;
		if (zlen < olen && tail[-1] != '.')
			continue;
		best = &cfg->zones[i];
		bestlen = zlen;
	}
	return best;
}

/* ---- the Admin calls: DnsCheck, DnsPush ---- */

/* What a DNS job takes to its worker: the request, and the configuration
 * (read-only for the process's life, so a worker may read it). */
struct dnsops_req {
	Mxfleet__V1__DomainName		*name;
	const struct dnsops_config	*cfg;
	int				 status;	/* a refusal: GRPC_*, 0: none */
	char				 msg[1024];
};

static void
dnsops_req_free(void *p)
{
	struct dnsops_req *r = p;
	if (r == NULL)
		return;
	mxfleet__v1__domain_name__free_unpacked(r->name, NULL);
	free(r);
}

static void
dnsops_refuse(struct dnsops_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dnsops_refuse(struct dnsops_req *r, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	r->status = status;
}

/* The domain's generated records; DB_OK with *gen filled, or the failure.
 * A domain that is not hosted is DB_ENOTFOUND (db_dns_load). */
static int
dnsops_generate(struct db *db, struct dnsops_req *r, struct dnsgen_domain *in,
    struct dnsgen_result *gen)
{
	char err[512];
	int rc = db_dns_load(db, r->name->name, in);
	if (rc != DB_OK)
		return rc;
	if (dnsgen_domain(in, gen, err, sizeof(err)) < 0) {
		dnsops_refuse(r, GRPC_INVALID_ARGUMENT, "%s", err);
		db_dns_domain_free(in);
		return DB_OK;
	}
	return DB_OK;
}

static void
dnsops_check_report_free(void *p)
{
	Mxfleet__V1__DnsCheckReport *rep = p;
	for (size_t i = 0; i < rep->n_findings; i++)
		admin_dns_finding_free(rep->findings[i]);
	free(rep->findings);
	free(rep->domain);
	free(rep);
}

/* The generator's own errors (what the fleet's data makes wrong whatever
 * DNS says) first, then what the live DNS shows. */
static Mxfleet__V1__DnsCheckReport *
dnsops_check_reply(const char *domain, const struct dnsgen_result *gen,
    const struct dnscheck_report *live)
{
	Mxfleet__V1__DnsCheckReport *rep = xmalloc(sizeof(*rep));
	mxfleet__v1__dns_check_report__init(rep);
	rep->domain = xstrdup(domain);
	rep->findings = xcalloc(gen->nerrors + live->nfindings + 1, sizeof(*rep->findings));
	for (size_t i = 0; i < gen->nerrors; i++)
		rep->findings[rep->n_findings++] = admin_dns_finding_new(&gen->errors[i]);
	for (size_t i = 0; i < live->nfindings; i++)
		rep->findings[rep->n_findings++] = admin_dns_finding_new(&live->findings[i]);
	return rep;
}

static int
dnsops_check_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	struct dnsops_req *r = j->req;
	struct dnsgen_domain in;
	struct dnsgen_result gen;
	char err[512];

	if (r->cfg->resolver == NULL) {
		dnsops_refuse(r, GRPC_FAILED_PRECONDITION, "dns check: dns.resolver is not set in "
		    "controld's configuration (docs/dns.md, \"Check\")");
		return DB_OK;
	}
	memset(&gen, 0, sizeof(gen));
	int rc = dnsops_generate(db, r, &in, &gen);
	if (rc != DB_OK || r->status)
		return rc;
	struct dns_resolver *res = dns_resolver_new(r->cfg->resolver,
	    (int)r->cfg->timeout * 1000 / 2, 2, err, sizeof(err));
	if (res == NULL) {
		dnsops_refuse(r, GRPC_FAILED_PRECONDITION, "dns check: dns.resolver: %s", err);
	} else {
		struct dnscheck_opts o = { 0 };
		struct dnscheck_report live = { 0 };
		o.resolver = res;
		o.smtp_port = (unsigned)r->cfg->smtp_port;
		o.https_port = (unsigned)r->cfg->https_port;
		o.ca_file = r->cfg->ca_file;
		o.smtp_ms = o.https_ms = (int)r->cfg->timeout * 1000;
		dnscheck_domain(&in, &gen, &o, &live);
		j->reply = dnsops_check_reply(in.name, &gen, &live);
		j->reply_free = dnsops_check_report_free;
		dnscheck_report_free(&live);
		dns_resolver_free(res);
	}
	dnsgen_result_free(&gen);
	db_dns_domain_free(&in);
	return DB_OK;
}

static void
dnsops_answer(struct call_job *j, struct grpc_call *c)
{
	struct dnsops_req *r = j->req;
	if (j->q.rc == DB_OK && r->status && c)
		grpc_call_finish(c, r->status, r->msg);
	else
		call_answer_reply(j, c);
}

static void
dnsops_submit(struct grpc_call *c, const uint8_t *msg, size_t len,
    int (*work)(struct db *, struct dbq_job *))
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0) {
		mxfleet__v1__domain_name__free_unpacked(req, NULL);
		return;
	}
	struct dnsops_req *r = xcalloc(1, sizeof(*r));
	r->name = req;
	r->cfg = &C->cfg.dns;
	struct call_job *j = call_job_new(c, work, dnsops_answer, r, dnsops_req_free);
	j->queue = C->dnsq;
	call_submit(c, j);
}

void
dnsops_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	dnsops_submit(c, msg, len, dnsops_check_work);
}

/* One zone's share of a push. */
struct dnsops_batch {
	const struct dnsops_zone *zone;
	const char		**desired;
	size_t			 nd;
	struct dnsupdate_pair	*managed;
	size_t			 nm;
};

struct dnsops_push {
	struct dnsops_batch	*b;		/* one per configured zone */
	size_t			 nb;
	char			**lines;	/* the desired records, presentation form */
	struct db_dnspush_pair	*pairs;		/* and their pairs, to remember */
	size_t			 n;
	Mxfleet__V1__DnsPushReply *reply;
};

static struct dnsops_batch *
dnsops_batch_of(struct dnsops_push *p, const struct dnsops_zone *z)
{
	for (size_t i = 0; i < p->nb; i++)
		if (p->b[i].zone == z)
			return &p->b[i];
	return NULL;
}

/* "Fix these first": the generator's blocking errors, in one message. */
static int
dnsops_push_blocked(struct dnsops_req *r, const struct dnsgen_result *gen)
{
	struct buf b;
	size_t n = 0;

	buf_init(&b);
	for (size_t i = 0; i < gen->nerrors; i++) {
		if (strcmp(gen->errors[i].severity, "error") != 0)
			continue;
		buf_printf(&b, "%s%s %s", n++ ? "; " : "", gen->errors[i].code,
		    gen->errors[i].subject);
	}
	if (n)
		dnsops_refuse(r, GRPC_FAILED_PRECONDITION, "dns push: nothing sent: %zu error(s) "
		    "to fix first (mailctl dns records %s): %.*s", n, r->name->name,
		    (int)(b.len > 800 ? 800 : b.len), b.data);
	buf_free(&b);
	return n > 0;
}

/* The desired records, each in its zone. */
static int
dnsops_push_plan(struct dnsops_req *r, const struct dnsgen_result *gen, struct dnsops_push *p)
{
	p->nb = r->cfg->nzones;
	p->b = xcalloc(p->nb ? p->nb : 1, sizeof(*p->b));
	for (size_t i = 0; i < p->nb; i++) {
		p->b[i].zone = &r->cfg->zones[i];
		p->b[i].desired = xcalloc(gen->nrrs + 1, sizeof(char *));
	}
	p->lines = xcalloc(gen->nrrs + 1, sizeof(char *));
	p->pairs = xcalloc(gen->nrrs + 1, sizeof(*p->pairs));
	for (size_t i = 0; i < gen->nrrs; i++) {
		const struct dnsgen_rr *rr = &gen->rrs[i];
		const struct dnsops_zone *z = dnsops_zone_of(r->cfg, rr->owner);
		if (z == NULL) {
			dnsops_refuse(r, GRPC_FAILED_PRECONDITION, "dns push: nothing sent: no zone "
			    "in controld's dns.zones holds %s (%s)", rr->owner, rr->type);
			return -1;
		}
		struct dnsops_batch *b = dnsops_batch_of(p, z);
		p->lines[p->n] = xasprintf("%s %u IN %s %s", rr->owner, rr->ttl, rr->type,
		    rr->rdata);
		b->desired[b->nd++] = p->lines[p->n];
		p->pairs[p->n].zone = xstrdup(z->name);
		p->pairs[p->n].owner = xstrdup(rr->owner);
		p->pairs[p->n].type = xstrdup(rr->type);
		p->n++;
	}
	return 0;
}

/* Pairs pushed before that the domain no longer has: managed, so deleted. */
static void
dnsops_push_prior(struct dnsops_req *r, struct dnsops_push *p,
    const struct db_dnspush_pair *prior, size_t nprior)
{
	for (size_t i = 0; i < nprior; i++) {
		int still = 0;
		for (size_t k = 0; k < p->n && !still; k++)
			still = strcasecmp(p->pairs[k].owner, prior[i].owner) == 0 &&
			    strcasecmp(p->pairs[k].type, prior[i].type) == 0;
		const struct dnsops_zone *z = dnsops_zone_of(r->cfg, prior[i].owner);
		if (still || z == NULL)
			continue;
		struct dnsops_batch *b = dnsops_batch_of(p, z);
		b->managed = xreallocarray(b->managed, b->nm + 1, sizeof(*b->managed));
		b->managed[b->nm].owner = prior[i].owner;
		b->managed[b->nm].type = prior[i].type;
		b->nm++;
	}
}

/* "owner\tttl\tIN\ttype\trdata" (dnsupdate's result lines) as a DnsRecord. */
static Mxfleet__V1__DnsRecord *
dnsops_record(const char *line)
{
	Mxfleet__V1__DnsRecord *rec = xmalloc(sizeof(*rec));
	char *f[5] = { 0 }, *s = xstrdup(line), *save = NULL, *t = s;
	size_t n = 0;

	mxfleet__v1__dns_record__init(rec);
	for (; n < 4 && (f[n] = strtok_r(t, "\t", &save)) != NULL; t = NULL)
		n++;
	f[4] = save;
	rec->owner = xstrdup(f[0] ? f[0] : "");
	rec->ttl = f[1] ? (uint32_t)strtoul(f[1], NULL, 10) : 0;
	rec->type = xstrdup(f[3] ? f[3] : "");
	rec->rdata = xstrdup(f[4] ? f[4] : "");
	rec->why = xstrdup("");
	free(s);
	return rec;
}

static void
dnsops_reply_add(Mxfleet__V1__DnsRecord ***v, size_t *n, char **lines, size_t nlines)
{
	*v = xreallocarray(*v, *n + nlines + 1, sizeof(**v));
	for (size_t i = 0; i < nlines; i++)
		(*v)[(*n)++] = dnsops_record(lines[i]);
}

static void
dnsops_push_reply_free(void *p)
{
	Mxfleet__V1__DnsPushReply *rep = p;
	Mxfleet__V1__DnsRecord **sets[2] = { rep->added, rep->deleted };
	size_t ns[2] = { rep->n_added, rep->n_deleted };
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ns[k]; i++)
			admin_dns_record_free(sets[k][i]);
		free(sets[k]);
	}
	free(rep->domain);
	free(rep);
}

static const int dnsops_push_status[] = {
	[DNSUPDATE_OK] = GRPC_OK, [DNSUPDATE_EINVAL] = GRPC_INVALID_ARGUMENT,
	[DNSUPDATE_ENET] = GRPC_UNAVAILABLE, [DNSUPDATE_ETSIG] = GRPC_PERMISSION_DENIED,
	[DNSUPDATE_EREFUSED] = GRPC_PERMISSION_DENIED, [DNSUPDATE_ESERVER] = GRPC_UNAVAILABLE,
};

/* Every zone with something to manage gets one UPDATE (none when nothing
 * differs). -1 at the first zone that fails: the zones before it are
 * pushed, and the next push finishes the work. */
static int
dnsops_push_send(struct dnsops_req *r, struct dnsops_push *p)
{
	for (size_t i = 0; i < p->nb; i++) {
		struct dnsops_batch *b = &p->b[i];
		if (b->nd == 0 && b->nm == 0)
			continue;
		char *zone = xasprintf("%s.", b->zone->name);
		struct dnsupdate_request req = { 0 };
		struct dnsupdate_result res = { 0 };
		req.zone = zone;
		req.server = b->zone->server;
		req.key.name = b->zone->tsig_name;
		req.key.algorithm = b->zone->tsig_algorithm;
		req.key.secret = b->zone->tsig_secret;
		req.desired = b->desired;
		req.n_desired = b->nd;
		req.managed = b->managed;
		req.n_managed = b->nm;
		req.timeout_ms = (int)r->cfg->timeout * 1000;
		enum dnsupdate_status st = dnsupdate_push(&req, &res);
		if (st == DNSUPDATE_OK) {
			dnsops_reply_add(&p->reply->added, &p->reply->n_added, res.added, res.n_added);
			dnsops_reply_add(&p->reply->deleted, &p->reply->n_deleted, res.deleted,
			    res.n_deleted);
			log_info("event=dns_push domain=%s zone=%s added=%zu deleted=%zu sent=%d",
			    r->name->name, b->zone->name, res.n_added, res.n_deleted, res.sent);
		} else {
			log_warnx("event=dns_push_failed domain=%s zone=%s status=%s",
			    r->name->name, b->zone->name, dnsupdate_status_str(st));
			dnsops_refuse(r, dnsops_push_status[st], "dns push: zone %s (server %s): %s",
			    b->zone->name, b->zone->server, res.error);
		}
		dnsupdate_result_free(&res);
		free(zone);
		if (st != DNSUPDATE_OK)
			return -1;
	}
	return 0;
}

static void
dnsops_push_free(struct dnsops_push *p)
{
	for (size_t i = 0; i < p->nb; i++) {
		free(p->b[i].desired);
		free(p->b[i].managed);
	}
	free(p->b);
	for (size_t i = 0; i < p->n; i++)
		free(p->lines[i]);
	free(p->lines);
	db_dnspush_pairs_free(p->pairs, p->n);
	if (p->reply)
		dnsops_push_reply_free(p->reply);
}

/* Under the push lock: what was pushed before, the UPDATEs, and what is
 * pushed now remembered, in one transaction. */
static int
dnsops_push_locked(struct db *db, struct dnsops_req *r, struct dnsops_push *p)
{
	struct db_dnspush_pair *prior = NULL;
	size_t nprior = 0;
	int rc;

	if ((rc = db_dnspush_begin(db)) != DB_OK)
		return rc;
	if ((rc = db_dnspush_prior(db, r->name->name, &prior, &nprior)) != DB_OK)
		return rc;
	dnsops_push_prior(r, p, prior, nprior);
	if (dnsops_push_send(r, p) < 0) {
		db_dnspush_rollback(db);
		db_dnspush_pairs_free(prior, nprior);
		return DB_OK;
	}
	rc = db_dnspush_commit(db, r->name->name, p->pairs, p->n);
	db_dnspush_pairs_free(prior, nprior);
	return rc;
}

/* A push of r's domain: DB_OK with *reply, or with r->status (refused), or
 * the database's failure. */
static int
dnsops_push_run(struct db *db, struct dnsops_req *r, Mxfleet__V1__DnsPushReply **reply)
{
	struct dnsgen_domain in;
	struct dnsgen_result gen;
	struct dnsops_push p;

	if (r->cfg->nzones == 0) {
		dnsops_refuse(r, GRPC_FAILED_PRECONDITION, "dns push: no zone is configured "
		    "(dns.zones in controld's configuration; docs/dns.md, \"Push\")");
		return DB_OK;
	}
	memset(&gen, 0, sizeof(gen));
	memset(&p, 0, sizeof(p));
	int rc = dnsops_generate(db, r, &in, &gen);
	if (rc != DB_OK || r->status)
		return rc;
	if (!dnsops_push_blocked(r, &gen) && dnsops_push_plan(r, &gen, &p) == 0) {
		p.reply = xmalloc(sizeof(*p.reply));
		mxfleet__v1__dns_push_reply__init(p.reply);
		p.reply->domain = xstrdup(in.name);
		rc = dnsops_push_locked(db, r, &p);
		if (rc == DB_OK && r->status == 0) {
			*reply = p.reply;
			p.reply = NULL;
		}
	}
	dnsops_push_free(&p);
	dnsgen_result_free(&gen);
	db_dns_domain_free(&in);
	return rc;
}

static int
dnsops_push_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__DnsPushReply *reply = NULL;
	int rc = dnsops_push_run(db, j->req, &reply);

	if (reply) {
		j->reply = reply;
		j->reply_free = dnsops_push_reply_free;
	}
	return rc;
}

int
dnsops_push_domain(struct db *db, const struct dnsops_config *cfg, const char *domain,
    size_t *changed, char *why, size_t whysz)
{
	Mxfleet__V1__DomainName name = MXFLEET__V1__DOMAIN_NAME__INIT;
	Mxfleet__V1__DnsPushReply *reply = NULL;
	struct dnsops_req r;

	memset(&r, 0, sizeof(r));
	name.name = (char *)domain;
	r.name = &name;
	r.cfg = cfg;
	int rc = dnsops_push_run(db, &r, &reply);
	*changed = reply ? reply->n_added + reply->n_deleted : 0;
	if (reply)
		dnsops_push_reply_free(reply);
	if (rc != DB_OK)
		snprintf(why, whysz, "%s", db_errmsg(db));
	else if (r.status)
		snprintf(why, whysz, "%s", r.msg);
	return rc != DB_OK || r.status ? -1 : 0;
}

void
dnsops_push(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	dnsops_submit(c, msg, len, dnsops_push_work);
}
