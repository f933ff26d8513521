/* host_identity and host_certs: what hosts report of themselves for DNS
 * (db_identity.h). Every value reaches PostgreSQL as a parameter. */
#include "db_identity.h"
#include "db_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "tlsid.h"
#include "xmalloc.h"

#define DB_IDENTITY_MAX_UNIX_S	INT64_C(253402300799)	/* 9999-12-31T23:59:59Z */

/* ---- what a host may send ---- */

static int
db_identity_ip_ok(const char *s)
{
	unsigned char a[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* A certificate's name: a DNS name, or "*." and one. */
static int
db_identity_cert_name_ok(const char *s)
{
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	return dns_name_valid(s);
}

static int
db_identity_key_type_ok(const char *s)
{
	size_t n = strlen(s);
	return n < 16 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int
db_identity_check_cert(const Mxfleet__V1__HostCert *c, size_t i, char *why, size_t whysz)
{
	if (!tlsid_spki_valid(c->spki_sha256))
		snprintf(why, whysz, "identity.certs[%zu].spki_sha256: expected 64 lower-case hex"
		    " digits (SHA-256 of the SubjectPublicKeyInfo)", i);
	else if (c->n_names > DB_IDENTITY_MAX_NAMES)
		snprintf(why, whysz, "identity.certs[%zu].names: %zu names, at most %d", i,
		    c->n_names, DB_IDENTITY_MAX_NAMES);
	else if (c->not_after_unix < 0 || c->not_after_unix > DB_IDENTITY_MAX_UNIX_S)
		snprintf(why, whysz, "identity.certs[%zu].not_after_unix: out of range", i);
	else if (!db_identity_key_type_ok(c->key_type))
		snprintf(why, whysz, "identity.certs[%zu].key_type: expected a short lower-case"
		    " word such as ec or rsa", i);
	else {
		for (size_t k = 0; k < c->n_names; k++) {
			if (!db_identity_cert_name_ok(c->names[k])) {
				snprintf(why, whysz, "identity.certs[%zu].names[%zu]: not a DNS name",
				    i, k);
				return -1;
			}
		}
		return 0;
	}
	return -1;
}

int
db_identity_check(const Mxfleet__V1__HostIdentity *id, char *why, size_t whysz)
{
	if (!dns_name_valid(id->hostname)) {
		snprintf(why, whysz, "identity.hostname: not a DNS name (the host's MX name)");
		return -1;
	}
	if (id->n_addresses > DB_IDENTITY_MAX_ADDRESSES) {
		snprintf(why, whysz, "identity.addresses: %zu addresses, at most %d",
		    id->n_addresses, DB_IDENTITY_MAX_ADDRESSES);
		return -1;
	}
	for (size_t i = 0; i < id->n_addresses; i++) {
		if (!db_identity_ip_ok(id->addresses[i])) {
			snprintf(why, whysz, "identity.addresses[%zu]: not an IPv4 or IPv6 address", i);
			return -1;
		}
	}
	if (id->next_spki_sha256[0] != '\0' && !tlsid_spki_valid(id->next_spki_sha256)) {
		snprintf(why, whysz, "identity.next_spki_sha256: expected \"\" or 64 lower-case hex"
		    " digits");
		return -1;
	}
	/* A path for the operator's eyes (mailctl tls rollover --status):
	 * printable, bounded. */
	size_t plen = strlen(id->next_cert_path);
	if (plen > DB_IDENTITY_MAX_PATH) {
		snprintf(why, whysz, "identity.next_cert_path: %zu bytes, at most %d", plen,
		    DB_IDENTITY_MAX_PATH);
		return -1;
	}
	for (size_t i = 0; i < plen; i++)
		if ((unsigned char)id->next_cert_path[i] < 0x20 || id->next_cert_path[i] == 0x7f) {
			snprintf(why, whysz, "identity.next_cert_path: a control character at byte %zu",
			    i);
			return -1;
		}
	if (id->n_certs > DB_IDENTITY_MAX_CERTS) {
		snprintf(why, whysz, "identity.certs: %zu certificates, at most %d", id->n_certs,
		    DB_IDENTITY_MAX_CERTS);
		return -1;
	}
	for (size_t i = 0; i < id->n_certs; i++)
		if (db_identity_check_cert(id->certs[i], i, why, whysz) < 0)
			return -1;
	return 0;
}

/* ---- storing it ---- */

static const char db_identity_sql_upsert[] =
	"INSERT INTO host_identity (host_id, hostname, addresses, next_spki, next_cert_ready,"
	" next_cert_path) VALUES ($1, $2, $3::text[], $4, $5::boolean, $6)"
	" ON CONFLICT (host_id) DO UPDATE SET hostname = EXCLUDED.hostname,"
	" addresses = EXCLUDED.addresses, next_spki = EXCLUDED.next_spki,"
	" next_cert_ready = EXCLUDED.next_cert_ready, next_cert_path = EXCLUDED.next_cert_path,"
	" updated_at = now()"
	" WHERE (host_identity.hostname, host_identity.addresses, host_identity.next_spki,"
	" host_identity.next_cert_ready, host_identity.next_cert_path)"
	" IS DISTINCT FROM (EXCLUDED.hostname, EXCLUDED.addresses, EXCLUDED.next_spki,"
	" EXCLUDED.next_cert_ready, EXCLUDED.next_cert_path)";

static const char db_identity_sql_cert[] =
	"INSERT INTO host_certs (host_id, spki_sha256, names, not_after, key_type)"
	" VALUES ($1, $2, $3::text[], to_timestamp($4::bigint), $5)"
	" ON CONFLICT (host_id, spki_sha256) DO UPDATE SET names = EXCLUDED.names,"
	" not_after = EXCLUDED.not_after, key_type = EXCLUDED.key_type, last_seen = now(),"
	" retired_at = NULL";

static const char db_identity_sql_retire[] =
	"UPDATE host_certs SET retired_at = now()"
	" WHERE host_id = $1 AND retired_at IS NULL AND NOT (spki_sha256 = ANY ($2::text[]))";

struct db_identity_arg {
	const char			*host_id;
	const Mxfleet__V1__HostIdentity	*id;
	int				 changed;
	unsigned			 retired;
};

/* One statement; *rows gets the rows it touched. */
static int
db_identity_cmd(struct db *db, const char *what, const char *sql, const struct db_params *p,
    uint64_t *rows)
{
	PGresult *res = NULL;
	int rc = db_run(db, what, sql, p, PGRES_COMMAND_OK, &res);
	if (rc == DB_OK)
		*rows = db_affected(res);
	PQclear(res);
	return rc;
}

static int
db_identity_certs(struct db *db, struct db_identity_arg *a)
{
	const Mxfleet__V1__HostIdentity *id = a->id;
	uint64_t rows = 0;
	int rc = DB_OK;
	for (size_t i = 0; i < id->n_certs && rc == DB_OK; i++) {
		const Mxfleet__V1__HostCert *c = id->certs[i];
		struct db_params p = { 0 };
		char *names = db_array_literal(c->names, c->n_names);
		dbp_str(&p, a->host_id);
		dbp_str(&p, c->spki_sha256);
		dbp_str(&p, names);
		if (c->not_after_unix > 0)
			dbp_i64(&p, c->not_after_unix);
		else
			dbp_null(&p);
		dbp_str(&p, c->key_type);
		rc = db_identity_cmd(db, "identity: certificate", db_identity_sql_cert, &p, &rows);
		free(names);
	}
	if (rc != DB_OK)
		return rc;
	char **spkis = xcalloc(id->n_certs + 1, sizeof(*spkis));
	for (size_t i = 0; i < id->n_certs; i++)
		spkis[i] = id->certs[i]->spki_sha256;
	char *served = db_array_literal(spkis, id->n_certs);
	struct db_params p = { 0 };
	dbp_str(&p, a->host_id);
	dbp_str(&p, served);
	rc = db_identity_cmd(db, "identity: retire", db_identity_sql_retire, &p, &rows);
	a->retired = (unsigned)rows;
	free(served);
	free(spkis);
	return rc;
}

static int
db_identity_op(struct db *db, void *arg)
{
	struct db_identity_arg *a = arg;
	struct db_params p = { 0 };
	uint64_t rows = 0;
	int rc;

	a->changed = 0;
	a->retired = 0;
	char *addresses = db_array_literal(a->id->addresses, a->id->n_addresses);
	dbp_str(&p, a->host_id);
	dbp_str(&p, a->id->hostname);
	dbp_str(&p, addresses);
	dbp_str(&p, a->id->next_spki_sha256);
	dbp_str(&p, a->id->next_cert_ready ? "true" : "false");
	dbp_str(&p, a->id->next_cert_path);
	if ((rc = db_cmd(db, "identity: begin", "BEGIN", NULL)) == DB_OK &&
	    (rc = db_identity_cmd(db, "identity", db_identity_sql_upsert, &p, &rows)) == DB_OK &&
	    (rc = db_identity_certs(db, a)) == DB_OK)
		rc = db_commit(db, "identity");
	free(addresses);
	a->changed = rows > 0;
	return rc;
}

int
db_identity_store(struct db *db, const char *host_id, const Mxfleet__V1__HostIdentity *id,
    int *changed, unsigned *retired)
{
	struct db_identity_arg a = { host_id, id, 0, 0 };
	char why[300];

	if (db_identity_check(id, why, sizeof(why)) < 0) {
		db_seterr(db, "host %.100s: %s", host_id, why);
		return DB_EINVAL;
	}
	int rc = db_call(db, db_identity_op, &a, DB_REPEAT_ALWAYS);
	if (rc == DB_OK && changed)
		*changed = a.changed;
	if (rc == DB_OK && retired)
		*retired = a.retired;
	return rc;
}

/* ---- reading it back (mailctl hosts) ---- */

static Mxfleet__V1__HostInfo *
db_identity_host(Mxfleet__V1__HostList *l, const char *host_id)
{
	for (size_t i = 0; i < l->n_hosts; i++)
		if (strcmp(l->hosts[i]->host_id, host_id) == 0)
			return l->hosts[i];
	return NULL;
}

/* A text[] as PostgreSQL prints it ({a,b}: names and addresses need no
 * quoting, having been checked) into a new array. */
static char **
db_identity_split(const char *s, size_t *n)
{
	char **v = NULL;
	*n = 0;
	size_t len = strlen(s);
	if (len < 2 || s[0] != '{' || s[len - 1] != '}' || len == 2)
		return NULL;
	char *copy = xstrndup(s + 1, len - 2), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		v = xreallocarray(v, *n + 1, sizeof(*v));
		v[(*n)++] = xstrdup(t);
	}
	free(copy);
	return v;
}

static void
db_identity_add_cert(Mxfleet__V1__HostIdentity *id, const PGresult *res, int r)
{
	Mxfleet__V1__HostCert *c = xmalloc(sizeof(*c));
	mxfleet__v1__host_cert__init(c);
	c->spki_sha256 = db_get_str(res, r, 1);
	c->names = db_identity_split(PQgetvalue(res, r, 2), &c->n_names);
	c->not_after_unix = db_get_i64(res, r, 3);
	c->key_type = db_get_str(res, r, 4);
	id->certs = xreallocarray(id->certs, id->n_certs + 1, sizeof(*id->certs));
	id->certs[id->n_certs++] = c;
}

static int
db_identity_hosts_op(struct db *db, void *arg)
{
	Mxfleet__V1__HostList *l = arg;
	PGresult *ires = NULL, *cres = NULL;
	int rc;

	if ((rc = db_query(db, "hosts identity", "SELECT host_id, hostname, addresses::text,"
	    " next_spki FROM host_identity", NULL, &ires)) != DB_OK)
		return rc;
	if ((rc = db_query(db, "hosts certificates", "SELECT host_id, spki_sha256, names::text,"
	    " coalesce(extract(epoch FROM not_after)::bigint, 0), key_type FROM host_certs"
	    " WHERE retired_at IS NULL ORDER BY host_id, first_seen, spki_sha256", NULL,
	    &cres)) != DB_OK) {
		PQclear(ires);
		return rc;
	}
	for (int r = 0; r < PQntuples(ires); r++) {
		Mxfleet__V1__HostInfo *h = db_identity_host(l, PQgetvalue(ires, r, 0));
		if (h == NULL || h->identity != NULL)
			continue;
		h->identity = xmalloc(sizeof(*h->identity));
		mxfleet__v1__host_identity__init(h->identity);
		h->identity->hostname = db_get_str(ires, r, 1);
		h->identity->addresses = db_identity_split(PQgetvalue(ires, r, 2),
		    &h->identity->n_addresses);
		h->identity->next_spki_sha256 = db_get_str(ires, r, 3);
	}
	for (int r = 0; r < PQntuples(cres); r++) {
		Mxfleet__V1__HostInfo *h = db_identity_host(l, PQgetvalue(cres, r, 0));
		if (h != NULL && h->identity != NULL)
			db_identity_add_cert(h->identity, cres, r);
	}
	PQclear(ires);
	PQclear(cres);
	return DB_OK;
}

int
db_identity_hosts(struct db *db, Mxfleet__V1__HostList *l)
{
	/* Repeated after a reconnect: what the first try attached goes first. */
	for (size_t i = 0; i < l->n_hosts; i++) {
		db_identity_free(l->hosts[i]->identity);
		l->hosts[i]->identity = NULL;
	}
	return db_call(db, db_identity_hosts_op, l, DB_REPEAT_ALWAYS);
}

static void
db_identity_free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
db_identity_free(Mxfleet__V1__HostIdentity *id)
{
	if (id == NULL)
		return;
	free(id->hostname);
	db_identity_free_strv(id->addresses, id->n_addresses);
	free(id->next_spki_sha256);
	for (size_t i = 0; i < id->n_certs; i++) {
		db_identity_free_strv(id->certs[i]->names, id->certs[i]->n_names);
		free(id->certs[i]->spki_sha256);
		free(id->certs[i]->key_type);
		free(id->certs[i]);
	}
	free(id->certs);
	free(id);
}
