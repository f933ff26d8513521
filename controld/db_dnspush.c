/* controld: the pushed-records table and the push lock (db_dnspush.h). */
#include "db_dnspush.h"
#include "db_internal.h"

#include <stdlib.h>

#include "buf.h"
#include "xmalloc.h"

/* pg_advisory_xact_lock's key: "mxfp" (0x6d786670), DNS pushes. */
#define DB_DNSPUSH_LOCK	"1836606064"
/* pg_try_advisory_lock's key: "mxfa" (0x6d786661), automatic pushes. */
#define DB_DNSAUTO_LOCK	"1836606049"

int
db_dnspush_begin(struct db *db)
{
	int rc = db_cmd(db, "dns push: begin", "BEGIN", NULL);
	if (rc != DB_OK)
		return rc;
	PGresult *res;
	if ((rc = db_query(db, "dns push: lock",
	    "SELECT pg_advisory_xact_lock(" DB_DNSPUSH_LOCK ")", NULL, &res)) != DB_OK)
		return rc;
	PQclear(res);
	return DB_OK;
}

int
db_dnspush_prior(struct db *db, const char *domain, struct db_dnspush_pair **out, size_t *n)
{
	struct db_params p = { 0 };
	PGresult *res;

	dbp_str(&p, domain);
	int rc = db_query(db, "dns push: pushed before",
	    "SELECT zone, owner, type FROM dns_pushed d WHERE domain = $1 AND NOT EXISTS"
	    " (SELECT 1 FROM dns_pushed o WHERE o.domain <> $1 AND o.owner = d.owner"
	    " AND o.type = d.type) ORDER BY owner, type", &p, &res);
	if (rc != DB_OK)
		return rc;
	*n = (size_t)PQntuples(res);
	*out = xcalloc(*n ? *n : 1, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		(*out)[i].zone = db_get_str(res, (int)i, 0);
		(*out)[i].owner = db_get_str(res, (int)i, 1);
		(*out)[i].type = db_get_str(res, (int)i, 2);
	}
	PQclear(res);
	return DB_OK;
}

/* The pairs as three text arrays, for unnest(): one statement whatever
 * their number. */
static void
db_dnspush_array(struct buf *b, const struct db_dnspush_pair *p, size_t n, size_t field)
{
	buf_append(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		const char *s = field == 0 ? p[i].zone : field == 1 ? p[i].owner : p[i].type;
		if (i)
			buf_append(b, ",", 1);
		buf_append(b, "\"", 1);
		for (; *s; s++) {
			if (*s == '"' || *s == '\\')
				buf_append(b, "\\", 1);
			buf_append(b, s, 1);
		}
		buf_append(b, "\"", 1);
	}
	buf_appends(b, "}");
	buf_appendc(b, '\0');
}

int
db_dnspush_commit(struct db *db, const char *domain, const struct db_dnspush_pair *pairs,
    size_t n)
{
	struct db_params p = { 0 };
	struct buf z, o, t;
	int rc;

	dbp_str(&p, domain);
	if ((rc = db_cmd(db, "dns push: forget", "DELETE FROM dns_pushed WHERE domain = $1",
	    &p)) != DB_OK)
		return rc;
	buf_init(&z);
	buf_init(&o);
	buf_init(&t);
	db_dnspush_array(&z, pairs, n, 0);
	db_dnspush_array(&o, pairs, n, 1);
	db_dnspush_array(&t, pairs, n, 2);
	dbp_str(&p, (const char *)z.data);
	dbp_str(&p, (const char *)o.data);
	dbp_str(&p, (const char *)t.data);
	rc = db_cmd(db, "dns push: remember", "INSERT INTO dns_pushed (domain, zone, owner, type)"
	    " SELECT $1, z, o, t FROM unnest($2::text[], $3::text[], $4::text[]) AS u(z, o, t)"
	    " ON CONFLICT DO NOTHING", &p);
	buf_free(&z);
	buf_free(&o);
	buf_free(&t);
	if (rc != DB_OK)
		return rc;
	return db_commit(db, "dns push: commit");
}

void
db_dnspush_rollback(struct db *db)
{
	(void)db_cmd(db, "dns push: rollback", "ROLLBACK", NULL);
}

void
db_dnspush_pairs_free(struct db_dnspush_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].zone);
		free(p[i].owner);
		free(p[i].type);
	}
	free(p);
}

int
db_dnspush_auto_begin(struct db *db, int *got, char ***domains, size_t *n)
{
	PGresult *res;
	int rc;

	*got = 0;
	*domains = NULL;
	*n = 0;
	if ((rc = db_query(db, "dns auto push: lock",
	    "SELECT pg_try_advisory_lock(" DB_DNSAUTO_LOCK ")", NULL, &res)) != DB_OK)
		return rc;
	*got = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!*got)
		return DB_OK;
	db_session_lock(db, "dns auto push");
	if ((rc = db_query(db, "dns auto push: domains", "SELECT s.domain FROM domain_dns s"
	    " JOIN domains d ON lower(d.name) = s.domain WHERE s.publish ORDER BY s.domain",
	    NULL, &res)) != DB_OK) {
		db_dnspush_auto_end(db);
		*got = 0;
		return rc;
	}
	*n = (size_t)PQntuples(res);
	*domains = xcalloc(*n + 1, sizeof(char *));
	for (size_t i = 0; i < *n; i++)
		(*domains)[i] = db_get_str(res, (int)i, 0);
	PQclear(res);
	return DB_OK;
}

void
db_dnspush_auto_end(struct db *db)
{
	PGresult *res;

	db_session_lock(db, NULL);
	if (db_query(db, "dns auto push: unlock", "SELECT pg_advisory_unlock(" DB_DNSAUTO_LOCK ")",
	    NULL, &res) == DB_OK)
		PQclear(res);
}
