/* controld: a hosted domain's DNS settings, DKIM keys and generation input
 * in PostgreSQL (db_dns.h). */
#include "db_dns.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "dkim.h"
#include "log.h"
#include "xmalloc.h"

/* ---- small helpers ---- */

/* Split s at single spaces into a malloc'd vector (array_to_string(x, ' ')
 * of IP literals and DNS names, which hold no space). */
static char **
db_dns_split(const char *s, size_t *n)
{
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	while (*s != '\0') {
		size_t len = strcspn(s, " ");
		if (len > 0) {
			if (*n == cap) {
				cap = cap ? 2 * cap : 4;
				v = xreallocarray(v, cap, sizeof(*v));
			}
			v[(*n)++] = xstrndup(s, len);
		}
		s += len;
		if (*s == ' ')
			s++;
	}
	return v;
}

static void
db_dns_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
db_dns_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* End the transaction before a refusal: the caller then says why. */
static void
db_dns_rollback(struct db *db)
{
	(void)db_cmd(db, "rollback", "ROLLBACK", NULL);
}

static int
db_dns_not_hosted(struct db *db, const char *domain)
{
	db_dns_rollback(db);
	db_seterr(db, "domain %s is not hosted (mailctl domain add)", domain);
	return DB_ENOTFOUND;
}

/* Lock the hosted domain's row for this transaction (one writer of its
 * settings and keys at a time, and no removal meanwhile); its lower-case
 * name in name (DNSGEN: at most 253 octets). DB_ENOTFOUND if not hosted. */
static int
db_dns_domain_lock(struct db *db, const char *domain, char *name, size_t namesz)
{
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc;

	dbp_str(&p, domain);
	if ((rc = db_query(db, "dns: domain", "SELECT lower(name) FROM domains"
	    " WHERE lower(name) = lower(rtrim($1, '.')) FOR UPDATE", &p, &res)) != DB_OK)
		return rc;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return db_dns_not_hosted(db, domain);
	}
	snprintf(name, namesz, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return DB_OK;
}

/* ---- DKIM keys ---- */

static int
db_dns_dkim_insert(struct db *db, const char *domain, const char *selector, const char *state,
    const struct dkim_key *k)
{
	struct db_params p = { 0 };

	dbp_str(&p, domain);
	dbp_str(&p, selector);
	dbp_str(&p, state);
	dbp_str(&p, k->private_pem);
	dbp_str(&p, k->public_b64);
	dbp_str(&p, k->key_type);
	return db_cmd(db, "dns: dkim key", "INSERT INTO dkim_keys (domain, selector, state,"
	    " private_pem, public_b64, key_type) VALUES ($1, $2, $3, $4, $5, $6)", &p);
}

/* Inside a transaction holding the domain's row: make the active and the
 * next key when missing. The next key is published (dnsgen) long before
 * it signs anything. */
static int
db_dns_dkim_ensure_tx(struct db *db, const char *domain, time_t now)
{
	static const char *const states[] = { "active", "next" };
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char **taken, sel[DKIM_SELECTOR_MAX], err[300];
	size_t ntaken;
	int rc = DB_OK, have[2] = { 0, 0 };

	dbp_str(&p, domain);
	if ((rc = db_query(db, "dns: dkim keys", "SELECT selector, state FROM dkim_keys"
	    " WHERE domain = $1", &p, &res)) != DB_OK)
		return rc;
	ntaken = (size_t)PQntuples(res);
	taken = xcalloc(ntaken + 2, sizeof(*taken));
	for (size_t i = 0; i < ntaken; i++) {
		taken[i] = db_get_str(res, (int)i, 0);
		for (int s = 0; s < 2; s++)
			have[s] |= strcmp(PQgetvalue(res, (int)i, 1), states[s]) == 0;
	}
	PQclear(res);
	for (int s = 0; s < 2 && rc == DB_OK; s++) {
		struct dkim_key k;
		if (have[s])
			continue;
		if (dkim_key_generate(&k, err, sizeof(err)) < 0) {
			db_dns_rollback(db);
			db_seterr(db, "%s", err);
			rc = DB_ESQL;
			break;
		}
		dkim_selector(now, taken, ntaken, sel);
		taken[ntaken++] = xstrdup(sel);
		rc = db_dns_dkim_insert(db, domain, sel, states[s], &k);
		dkim_key_free(&k);
		if (rc == DB_OK)
			log_info("event=dkim_key_created domain=%s selector=%s state=%s", domain, sel,
			    states[s]);
	}
	db_dns_strv_free(taken, ntaken);
	return rc;
}

struct dns_arg {
	const char			*domain;
	const Mxfleet__V1__DomainDns	*in;
	time_t				 now;
	uint64_t			 version;
	Mxfleet__V1__DomainDns		*out;
	struct dnsgen_domain		*load;
};

static int
db_dns_version_commit(struct db *db, const char *what, uint64_t *version)
{
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, what, "SELECT version FROM config_state", NULL, &res)) != DB_OK)
		return rc;
	*version = PQntuples(res) == 1 ? db_get_u64(res, 0, 0) : 0;
	PQclear(res);
	return db_commit(db, what);
}

/* A transaction that writes the domain's settings or keys. */
static int
db_dns_begin(struct db *db, const char *what, const char *domain, char *name, size_t namesz)
{
	int rc;

	if ((rc = db_cmd(db, what, "BEGIN", NULL)) != DB_OK)
		return rc;
	return db_dns_domain_lock(db, domain, name, namesz);
}

static int
db_dns_dkim_ensure_op(struct db *db, void *arg)
{
	struct dns_arg *a = arg;
	char name[300];
	int rc;

	if ((rc = db_dns_begin(db, "dns: dkim", a->domain, name, sizeof(name))) != DB_OK ||
	    (rc = db_dns_dkim_ensure_tx(db, name, a->now)) != DB_OK)
		return rc;
	return db_dns_version_commit(db, "dns: dkim", &a->version);
}

int
db_dns_dkim_ensure(struct db *db, const char *domain, time_t now)
{
	struct dns_arg a = { .domain = domain, .now = now };

	return db_call(db, db_dns_dkim_ensure_op, &a, DB_REPEAT_UNTIL_COMMIT);
}

/* ---- settings: set ---- */

/* *unknown: the first of v (n) that is not a known host (malloc'd), or NULL. */
static int
db_dns_unknown_host(struct db *db, char *const *v, size_t n, char **unknown)
{
	struct db_params p = { 0 };
	PGresult *res = NULL;
	char *arr = db_array_literal(v, n);
	int rc;

	*unknown = NULL;
	dbp_str(&p, arr);
	rc = db_query(db, "dns: hosts", "SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS"
	    " u(x, i) WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = u.x)"
	    " ORDER BY i LIMIT 1", &p, &res);
	free(arr);
	if (rc != DB_OK)
		return rc;
	if (PQntuples(res) == 1)
		*unknown = db_get_str(res, 0, 0);
	PQclear(res);
	return DB_OK;
}

/* Every host the settings name (hosts, then the aliases' hosts) must be
 * one controld knows. */
static int
db_dns_hosts_known(struct db *db, const Mxfleet__V1__DomainDns *d)
{
	size_t n = d->n_hosts + d->n_aliases;
	char **v = xcalloc(n + 1, sizeof(*v)), *unknown = NULL;
	int rc;

	for (size_t i = 0; i < d->n_hosts; i++)
		v[i] = d->hosts[i];
	for (size_t i = 0; i < d->n_aliases; i++) {
		char *eq = strchr(d->aliases[i], '=');
		v[d->n_hosts + i] = eq ? eq + 1 : d->aliases[i];
	}
	rc = db_dns_unknown_host(db, v, n, &unknown);
	free(v);
	if (rc == DB_OK && unknown != NULL) {
		db_dns_rollback(db);
		db_seterr(db, "host %s is not known to controld (mailctl hosts lists the hosts"
		    " that registered)", unknown);
		rc = DB_EINVAL;
		free(unknown);
	}
	return rc;
}

static int
db_dns_settings_store(struct db *db, const char *name, const Mxfleet__V1__DomainDns *d)
{
	struct db_params p = { 0 };
	char *hosts = db_array_literal(d->hosts, d->n_hosts);
	int rc;

	dbp_str(&p, name);
	dbp_str(&p, hosts);
	dbp_str(&p, d->sts_mode[0] ? d->sts_mode : "enforce");
	dbp_u64(&p, d->sts_max_age ? d->sts_max_age : DB_DNS_DEFAULT_MAX_AGE);
	dbp_str(&p, d->tlsrpt_rua);
	dbp_str(&p, d->spf);
	dbp_str(&p, d->dmarc);
	dbp_u64(&p, d->ttl ? d->ttl : DB_DNS_DEFAULT_TTL);
	dbp_str(&p, d->publish ? "true" : "false");
	/* An UPDATE only when something differs: the same settings again make
	 * no new configuration version (the triggers count changed rows). */
	rc = db_cmd(db, "dns: settings", "INSERT INTO domain_dns AS o (domain, hosts, sts_mode,"
	    " sts_max_age, tlsrpt_rua, spf, dmarc, ttl, publish) VALUES ($1, $2::text[], $3,"
	    " $4::integer, $5, $6, $7, $8::integer, $9::boolean) ON CONFLICT (domain) DO UPDATE"
	    " SET hosts = EXCLUDED.hosts, sts_mode = EXCLUDED.sts_mode, sts_max_age ="
	    " EXCLUDED.sts_max_age, tlsrpt_rua = EXCLUDED.tlsrpt_rua, spf = EXCLUDED.spf,"
	    " dmarc = EXCLUDED.dmarc, ttl = EXCLUDED.ttl, publish = EXCLUDED.publish,"
	    " updated_at = now() WHERE (o.hosts, o.sts_mode, o.sts_max_age, o.tlsrpt_rua, o.spf,"
	    " o.dmarc, o.ttl, o.publish) IS DISTINCT FROM (EXCLUDED.hosts, EXCLUDED.sts_mode,"
	    " EXCLUDED.sts_max_age, EXCLUDED.tlsrpt_rua, EXCLUDED.spf, EXCLUDED.dmarc,"
	    " EXCLUDED.ttl, EXCLUDED.publish)", &p);
	free(hosts);
	return rc;
}

/* The aliases become exactly d's: those gone or moved to another host are
 * deleted, the new ones inserted, the others left alone (no new version). */
static int
db_dns_aliases_store(struct db *db, const char *name, const Mxfleet__V1__DomainDns *d)
{
	struct db_params p = { 0 };
	char **names = xcalloc(d->n_aliases + 1, sizeof(*names));
	char **hosts = xcalloc(d->n_aliases + 1, sizeof(*hosts));
	char *an, *ah;
	int rc;

	for (size_t i = 0; i < d->n_aliases; i++) {
		char *eq = strchr(d->aliases[i], '=');
		names[i] = eq ? xstrndup(d->aliases[i], (size_t)(eq - d->aliases[i])) :
		    xstrdup(d->aliases[i]);
		db_dns_lower(names[i]);
		if (names[i][0] && names[i][strlen(names[i]) - 1] == '.')
			names[i][strlen(names[i]) - 1] = '\0';
		hosts[i] = eq ? eq + 1 : "";
	}
	an = db_array_literal(names, d->n_aliases);
	ah = db_array_literal(hosts, d->n_aliases);
	db_dns_strv_free(names, d->n_aliases);
	free(hosts);
	dbp_str(&p, name);
	dbp_str(&p, an);
	dbp_str(&p, ah);
	rc = db_cmd(db, "dns: aliases", "DELETE FROM domain_aliases a WHERE a.domain = $1 AND"
	    " NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS n(name, host_id)"
	    " WHERE n.name = a.name AND n.host_id = a.host_id)", &p);
	if (rc == DB_OK)
		rc = db_cmd(db, "dns: aliases", "INSERT INTO domain_aliases (domain, name, host_id)"
		    " SELECT $1, n.name, n.host_id FROM unnest($2::text[], $3::text[]) AS"
		    " n(name, host_id) ON CONFLICT (domain, name) DO NOTHING", &p);
	free(an);
	free(ah);
	return rc;
}

static int
db_dns_set_op(struct db *db, void *arg)
{
	struct dns_arg *a = arg;
	char name[300];
	int rc;

	if ((rc = db_dns_begin(db, "dns set", a->in->domain, name, sizeof(name))) != DB_OK ||
	    (rc = db_dns_hosts_known(db, a->in)) != DB_OK ||
	    (rc = db_dns_settings_store(db, name, a->in)) != DB_OK ||
	    (rc = db_dns_aliases_store(db, name, a->in)) != DB_OK ||
	    (rc = db_dns_dkim_ensure_tx(db, name, a->now)) != DB_OK)
		return rc;
	return db_dns_version_commit(db, "dns set", &a->version);
}

int
db_dns_set(struct db *db, const Mxfleet__V1__DomainDns *d, time_t now, uint64_t *version)
{
	struct dns_arg a = { .in = d, .now = now };
	int rc = db_call(db, db_dns_set_op, &a, DB_REPEAT_UNTIL_COMMIT);

	if (rc == DB_OK && version != NULL)
		*version = a.version;
	return rc;
}

/* ---- settings: get ---- */

static char **
db_dns_column(const PGresult *res, int col, size_t *n)
{
	char **v;

	*n = (size_t)PQntuples(res);
	v = xcalloc(*n + 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++)
		v[i] = db_get_str(res, (int)i, col);
	return v;
}

static void
db_dns_get_fill(Mxfleet__V1__DomainDns *d, const PGresult *s, const PGresult *h,
    const PGresult *al)
{
	d->domain = db_get_str(s, 0, 0);
	d->sts_mode = db_get_str(s, 0, 1);
	d->sts_max_age = (uint32_t)db_get_u64(s, 0, 2);
	d->tlsrpt_rua = db_get_str(s, 0, 3);
	d->spf = db_get_str(s, 0, 4);
	d->dmarc = db_get_str(s, 0, 5);
	d->ttl = (uint32_t)db_get_u64(s, 0, 6);
	d->publish = strcmp(PQgetvalue(s, 0, 7), "t") == 0;
	d->hosts = db_dns_column(h, 0, &d->n_hosts);
	d->aliases = db_dns_column(al, 0, &d->n_aliases);
}

static const char db_dns_sql_settings[] =
    "SELECT lower(d.name), coalesce(s.sts_mode, 'enforce'), coalesce(s.sts_max_age, 604800),"
    " coalesce(s.tlsrpt_rua, ''), coalesce(s.spf, ''), coalesce(s.dmarc, ''),"
    " coalesce(s.ttl, 3600), coalesce(s.publish, false)"
    " FROM domains d LEFT JOIN domain_dns s ON s.domain = lower(d.name)"
    " WHERE lower(d.name) = lower(rtrim($1, '.'))";

static int
db_dns_get_op(struct db *db, void *arg)
{
	struct dns_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *s = NULL, *h = NULL, *al = NULL;
	int rc;

	dbp_str(&p, a->domain);
	if ((rc = db_cmd(db, "dns get", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    NULL)) != DB_OK || (rc = db_query(db, "dns get", db_dns_sql_settings, &p, &s)) != DB_OK)
		return rc;
	if (PQntuples(s) != 1) {
		PQclear(s);
		return db_dns_not_hosted(db, a->domain);
	}
	p.v[0] = PQgetvalue(s, 0, 0);
	if ((rc = db_query(db, "dns get: hosts", "SELECT unnest(hosts) FROM domain_dns"
	    " WHERE domain = $1", &p, &h)) != DB_OK ||
	    (rc = db_query(db, "dns get: aliases", "SELECT name || '=' || host_id"
	    " FROM domain_aliases WHERE domain = $1 ORDER BY name", &p, &al)) != DB_OK ||
	    (rc = db_commit(db, "dns get")) != DB_OK) {
		PQclear(s);
		PQclear(h);
		PQclear(al);
		return rc;
	}
	a->out = xmalloc(sizeof(*a->out));
	mxfleet__v1__domain_dns__init(a->out);
	db_dns_get_fill(a->out, s, h, al);
	PQclear(s);
	PQclear(h);
	PQclear(al);
	return DB_OK;
}

int
db_dns_get(struct db *db, const char *domain, Mxfleet__V1__DomainDns **out)
{
	struct dns_arg a = { .domain = domain };
	int rc = db_call(db, db_dns_get_op, &a, DB_REPEAT_ALWAYS);

	*out = a.out;
	return rc;
}

void
db_dns_get_free(Mxfleet__V1__DomainDns *d)
{
	if (d == NULL)
		return;
	free(d->domain);
	free(d->sts_mode);
	free(d->tlsrpt_rua);
	free(d->spf);
	free(d->dmarc);
	db_dns_strv_free(d->hosts, d->n_hosts);
	db_dns_strv_free(d->aliases, d->n_aliases);
	free(d);
}

/* ---- generation input ---- */

/* The hosts serving domain $1: those its settings list, or, when they
 * list none, every host that reported an identity. */
#define DB_DNS_SERVING							\
    "WITH want AS (SELECT coalesce((SELECT hosts FROM domain_dns WHERE domain = $1),"	\
    " '{}'::text[]) AS ids), serving AS (SELECT h.host_id FROM hosts h, want"	\
    " WHERE CASE WHEN cardinality(want.ids) = 0 THEN EXISTS (SELECT 1 FROM"	\
    " host_identity i WHERE i.host_id = h.host_id) ELSE h.host_id = ANY(want.ids) END) "

static const char db_dns_sql_hosts[] = DB_DNS_SERVING
    "SELECT s.host_id, coalesce(i.hostname, ''), coalesce(array_to_string(i.addresses, ' '), ''),"
    " coalesce(i.next_spki, '') FROM serving s LEFT JOIN host_identity i USING (host_id)"
    " ORDER BY s.host_id";
static const char db_dns_sql_certs[] = DB_DNS_SERVING
    "SELECT c.host_id, c.spki_sha256, array_to_string(c.names, ' '),"
    " coalesce(extract(epoch FROM c.not_after)::bigint, 0), c.retired_at IS NOT NULL"
    " FROM host_certs c JOIN serving s USING (host_id)"
    " ORDER BY c.host_id, c.first_seen, c.spki_sha256";
static const char db_dns_sql_aliases[] =
    "SELECT host_id, name FROM domain_aliases WHERE domain = $1 ORDER BY name";
static const char db_dns_sql_dkim[] =
    "SELECT selector, key_type, public_b64, state FROM dkim_keys WHERE domain = $1"
    " AND state IN ('active', 'next') ORDER BY state, created_at, selector";

static struct dnsgen_host *
db_dns_host(struct dnsgen_domain *d, const char *host_id)
{
	for (size_t i = 0; i < d->nhosts; i++)
		if (strcmp(d->hosts[i].host_id, host_id) == 0)
			return &d->hosts[i];
	return NULL;
}

static void
db_dns_push(char ***v, size_t *n, char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = s;
}

static void
db_dns_hosts_from(struct dnsgen_domain *d, const PGresult *res)
{
	d->nhosts = (size_t)PQntuples(res);
	d->hosts = xcalloc(d->nhosts + 1, sizeof(*d->hosts));
	for (size_t i = 0; i < d->nhosts; i++) {
		struct dnsgen_host *h = &d->hosts[i];
		h->host_id = db_get_str(res, (int)i, 0);
		h->mx_name = db_get_str(res, (int)i, 1);
		h->addrs = db_dns_split(PQgetvalue(res, (int)i, 2), &h->naddrs);
		h->next_spki = db_get_str(res, (int)i, 3);
	}
}

static void
db_dns_certs_from(struct dnsgen_domain *d, const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		struct dnsgen_host *h = db_dns_host(d, PQgetvalue(res, r, 0));
		if (h == NULL)
			continue;
		if (strcmp(PQgetvalue(res, r, 4), "t") == 0) {
			db_dns_push(&h->retired_spki, &h->nretired, db_get_str(res, r, 1));
			continue;
		}
		h->certs = xreallocarray(h->certs, h->ncerts + 1, sizeof(*h->certs));
		struct dnsgen_cert *c = &h->certs[h->ncerts++];
		c->spki_sha256 = db_get_str(res, r, 1);
		c->names = db_dns_split(PQgetvalue(res, r, 2), &c->nnames);
		c->not_after = db_get_i64(res, r, 3);
	}
}

static void
db_dns_aliases_from(struct dnsgen_domain *d, const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		struct dnsgen_host *h = db_dns_host(d, PQgetvalue(res, r, 0));
		if (h != NULL)
			db_dns_push(&h->aliases, &h->naliases, db_get_str(res, r, 1));
	}
}

static void
db_dns_dkim_from(struct dnsgen_domain *d, const PGresult *res)
{
	d->ndkim = (size_t)PQntuples(res);
	d->dkim = xcalloc(d->ndkim + 1, sizeof(*d->dkim));
	for (size_t i = 0; i < d->ndkim; i++) {
		d->dkim[i].selector = db_get_str(res, (int)i, 0);
		d->dkim[i].key_type = db_get_str(res, (int)i, 1);
		d->dkim[i].public_b64 = db_get_str(res, (int)i, 2);
		d->dkim[i].state = strcmp(PQgetvalue(res, (int)i, 3), "active") == 0 ?
		    DNSGEN_DKIM_ACTIVE : DNSGEN_DKIM_NEXT;
	}
}

static void
db_dns_settings_from(struct dnsgen_domain *d, const PGresult *s)
{
	d->name = db_get_str(s, 0, 0);
	d->sts_mode = db_get_str(s, 0, 1);
	d->sts_max_age = (uint32_t)db_get_u64(s, 0, 2);
	d->tlsrpt_rua = db_get_str(s, 0, 3);
	d->spf = db_get_str(s, 0, 4);
	d->dmarc = db_get_str(s, 0, 5);
	d->ttl = (uint32_t)db_get_u64(s, 0, 6);
}

/* Inside the caller's transaction. */
static int
db_dns_load_tx(struct db *db, const char *domain, struct dnsgen_domain *d)
{
	static const char *const sql[] = { db_dns_sql_hosts, db_dns_sql_certs,
	    db_dns_sql_aliases, db_dns_sql_dkim };
	struct db_params p = { 0 };
	PGresult *s = NULL, *res[4] = { NULL, NULL, NULL, NULL };
	int rc;

	memset(d, 0, sizeof(*d));
	dbp_str(&p, domain);
	if ((rc = db_query(db, "dns: settings", db_dns_sql_settings, &p, &s)) != DB_OK)
		return rc;
	if (PQntuples(s) != 1) {
		PQclear(s);
		return db_dns_not_hosted(db, domain);
	}
	p.v[0] = PQgetvalue(s, 0, 0);
	for (int i = 0; i < 4 && rc == DB_OK; i++)
		rc = db_query(db, "dns: generation input", sql[i], &p, &res[i]);
	if (rc == DB_OK) {
		db_dns_settings_from(d, s);
		db_dns_hosts_from(d, res[0]);
		db_dns_certs_from(d, res[1]);
		db_dns_aliases_from(d, res[2]);
		db_dns_dkim_from(d, res[3]);
	}
	PQclear(s);
	for (int i = 0; i < 4; i++)
		PQclear(res[i]);
	return rc;
}

static int
db_dns_load_op(struct db *db, void *arg)
{
	struct dns_arg *a = arg;
	int rc;

	if ((rc = db_cmd(db, "dns load", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    NULL)) != DB_OK || (rc = db_dns_load_tx(db, a->domain, a->load)) != DB_OK)
		return rc;
	if ((rc = db_commit(db, "dns load")) != DB_OK)
		db_dns_domain_free(a->load);
	return rc;
}

int
db_dns_load(struct db *db, const char *domain, struct dnsgen_domain *out)
{
	struct dns_arg a = { .domain = domain, .load = out };

	memset(out, 0, sizeof(*out));
	return db_call(db, db_dns_load_op, &a, DB_REPEAT_ALWAYS);
}

void
db_dns_domain_free(struct dnsgen_domain *d)
{
	for (size_t i = 0; i < d->nhosts; i++) {
		struct dnsgen_host *h = &d->hosts[i];
		free(h->host_id);
		free(h->mx_name);
		db_dns_strv_free(h->addrs, h->naddrs);
		db_dns_strv_free(h->aliases, h->naliases);
		for (size_t c = 0; c < h->ncerts; c++) {
			free(h->certs[c].spki_sha256);
			db_dns_strv_free(h->certs[c].names, h->certs[c].nnames);
		}
		free(h->certs);
		free(h->next_spki);
		db_dns_strv_free(h->retired_spki, h->nretired);
	}
	free(d->hosts);
	for (size_t i = 0; i < d->ndkim; i++) {
		free(d->dkim[i].selector);
		free(d->dkim[i].key_type);
		free(d->dkim[i].public_b64);
	}
	free(d->dkim);
	free(d->name);
	free(d->sts_mode);
	free(d->tlsrpt_rua);
	free(d->spf);
	free(d->dmarc);
	memset(d, 0, sizeof(*d));
}

/* ---- the snapshot's MTA-STS policies ---- */

/* The policy of one domain, or NULL (no host serves it, or dnsgen refused
 * its input: logged, the other domains still get theirs). */
static Mxfleet__V1__MtaStsPolicy *
db_dns_sts_of(const struct dnsgen_domain *d)
{
	struct dnsgen_result r;
	Mxfleet__V1__MtaStsPolicy *m = NULL;
	char err[300];

	if (d->nhosts == 0)
		return NULL;
	if (dnsgen_domain(d, &r, err, sizeof(err)) < 0) {
		log_warnx("event=mta_sts_not_generated domain=%s error=\"%s\"", d->name, err);
		return NULL;
	}
	if (r.sts_policy != NULL) {
		m = xmalloc(sizeof(*m));
		mxfleet__v1__mta_sts_policy__init(m);
		m->domain = xstrdup(d->name);
		m->policy = xstrdup(r.sts_policy);
		m->id = xstrdup(r.sts_id);
	}
	dnsgen_result_free(&r);
	return m;
}

int
db_dns_snapshot_sts(struct db *db, Mxfleet__V1__MtaStsPolicy ***out, size_t *n)
{
	PGresult *res = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = db_query(db, "snapshot: mta-sts", "SELECT lower(d.name) FROM domains d"
	    " LEFT JOIN domain_dns s ON s.domain = lower(d.name)"
	    " WHERE coalesce(s.sts_mode, 'enforce') <> 'none' ORDER BY 1", NULL, &res)) != DB_OK)
		return rc;
	for (int i = 0; i < PQntuples(res) && rc == DB_OK; i++) {
		struct dnsgen_domain d;
		Mxfleet__V1__MtaStsPolicy *m;
		if ((rc = db_dns_load_tx(db, PQgetvalue(res, i, 0), &d)) != DB_OK)
			break;
		if ((m = db_dns_sts_of(&d)) != NULL) {
			*out = xreallocarray(*out, *n + 1, sizeof(**out));
			(*out)[(*n)++] = m;
		}
		db_dns_domain_free(&d);
	}
	PQclear(res);
	if (rc != DB_OK) {
		db_dns_sts_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void
db_dns_sts_free(Mxfleet__V1__MtaStsPolicy **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i]->domain);
		free(v[i]->policy);
		free(v[i]->id);
		free(v[i]);
	}
	free(v);
}
