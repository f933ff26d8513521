/* controld: per-domain recipient checks in PostgreSQL (schema/007; db.h). */
#include "db.h"
#include "db_dns.h"
#include "db_identity.h"
#include "db_internal.h"
#include "db_rollover.h"
#include "db_tlsrpt_sender.h"
#include "db_rptrecv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"


/* ---- recipient checks (schema/007) ---- */

struct recipients_arg {
	const char	*domain;
	const char	*mode;		/* set */
	const char	*locals;	/* add, remove: local parts, '\n' between */
	const char	*sql;
	int		 want_none;
	uint64_t	 version;
	Mxfleet__V1__DomainRecipients *list;	/* list */
};

/* Lock the domain's row for this transaction: its list cannot outlive it. */
static int
recipients_domain_lock(struct db *db, const char *what, const char *domain)
{
	struct db_params p = { 0 };
	PGresult *res = NULL;
	int rc, found;

	dbp_str(&p, domain);
	if ((rc = db_query(db, what, "SELECT 1 FROM domains WHERE lower(name) = lower($1)"
	    " FOR SHARE", &p, &res)) != DB_OK)
		return rc;
	found = PQntuples(res) > 0;
	PQclear(res);
	if (found)
		return DB_OK;
	PQclear(PQexec(db->conn, "ROLLBACK"));
	if (!db_conn_ok(db)) {
		db_seterr(db, "%s: %s", what, PQerrorMessage(db->conn));
		return DB_ECONN;
	}
	db_seterr(db, "%s: no domain %s (mailctl domain add first)", what, domain);
	return DB_ENOTFOUND;
}

static int
db_recipients_op(struct db *db, void *arg)
{
	struct recipients_arg *a = arg;
	struct db_params p = { 0 };
	int rc;

	if ((rc = db_cmd(db, "recipients", "BEGIN", NULL)) != DB_OK ||
	    (rc = recipients_domain_lock(db, "recipients", a->domain)) != DB_OK)
		return rc;
	dbp_str(&p, a->domain);
	dbp_str(&p, a->mode ? a->mode : a->locals);
	return config_change_open(db, "recipients", a->sql, &p, a->want_none, &a->version);
}

static int
recipients_change(struct db *db, struct recipients_arg *a, uint64_t *version)
{
	int rc;

	db->err[0] = '\0';
	if ((rc = config_text_check(db, "recipients", a->domain, 0)) != DB_OK)
		return rc;
	rc = db_call(db, db_recipients_op, a, DB_REPEAT_UNTIL_COMMIT);
	if (rc == DB_OK && version != NULL)
		*version = a->version;
	return rc;
}

int
db_recipient_check_set(struct db *db, const char *domain, const char *mode,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .mode = mode, .want_none = DB_EEXIST,
	    .sql = "UPDATE domains SET recipient_check = $2 WHERE lower(name) = lower($1)"
	    " AND recipient_check <> $2" };

	if (!db_recipient_mode_ok(mode)) {
		db_seterr(db, "recipients: mode must be any, list or verify");
		return DB_EINVAL;
	}
	return recipients_change(db, &a, version);
}

/* Local parts joined by '\n' (none may hold one) for string_to_array. */
static int
recipients_join(struct db *db, char *const *locals, size_t n, struct buf *out)
{
	if (n == 0) {
		db_seterr(db, "recipients: no address given");
		return DB_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (config_text_check(db, "recipients", locals[i], 0) != DB_OK ||
		    strchr(locals[i], '\n') != NULL) {
			db_seterr(db, "recipients: an address is empty, not UTF-8 or has a newline");
			return DB_EINVAL;
		}
		if (i > 0)
			buf_appendc(out, '\n');
		buf_appends(out, locals[i]);
	}
	return DB_OK;
}

static int
recipients_list_change(struct db *db, struct recipients_arg *a, char *const *locals,
    size_t n, uint64_t *version)
{
	struct buf joined;
	int rc;

	buf_init(&joined);
	if ((rc = recipients_join(db, locals, n, &joined)) == DB_OK) {
		a->locals = joined.data;
		rc = recipients_change(db, a, version);
	}
	buf_free(&joined);
	return rc;
}

int
db_recipients_add(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .want_none = DB_EEXIST,
	    .sql = "INSERT INTO domain_recipients (domain, local_part)"
	    " SELECT lower($1), x FROM unnest(string_to_array($2, E'\\n')) AS x"
	    " ON CONFLICT DO NOTHING" };

	return recipients_list_change(db, &a, locals, n, version);
}

int
db_recipients_remove(struct db *db, const char *domain, char *const *locals, size_t n,
    uint64_t *version)
{
	struct recipients_arg a = { .domain = domain, .want_none = DB_ENOTFOUND,
	    .sql = "DELETE FROM domain_recipients WHERE domain = lower($1)"
	    " AND local_part = ANY (string_to_array($2, E'\\n'))" };

	return recipients_list_change(db, &a, locals, n, version);
}

int
db_recipient_mode_ok(const char *mode)
{
	return mode != NULL && (strcmp(mode, "any") == 0 || strcmp(mode, "list") == 0 ||
	    strcmp(mode, "verify") == 0);
}

/* Rows (domain, mode, local_part or NULL) ordered by domain: one message
 * per domain. */
Mxfleet__V1__DomainRecipients **
recipient_checks_from(const PGresult *res, size_t *n)
{
	Mxfleet__V1__DomainRecipients **v = NULL, *cur = NULL;
	int rows = PQntuples(res);

	*n = 0;
	for (int r = 0; r < rows; r++) {
		if (cur == NULL || strcmp(cur->domain, PQgetvalue(res, r, 0)) != 0) {
			v = xreallocarray(v, *n + 1, sizeof(*v));
			cur = v[(*n)++] = xmalloc(sizeof(*cur));
			mxfleet__v1__domain_recipients__init(cur);
			cur->domain = db_get_str(res, r, 0);
			cur->mode = db_get_str(res, r, 1);
		}
		if (PQgetisnull(res, r, 2))
			continue;
		if ((cur->n_local_parts & (cur->n_local_parts - 1)) == 0)
			cur->local_parts = xreallocarray(cur->local_parts,
			    cur->n_local_parts ? cur->n_local_parts * 2 : 1, sizeof(char *));
		cur->local_parts[cur->n_local_parts++] = db_get_str(res, r, 2);
	}
	return v;
}

void
db_recipients_free(Mxfleet__V1__DomainRecipients *r)
{
	if (r == NULL)
		return;
	db_str_free(r->domain);
	db_str_free(r->mode);
	for (size_t j = 0; j < r->n_local_parts; j++)
		db_str_free(r->local_parts[j]);
	free(r->local_parts);
	free(r);
}

void
recipient_checks_free(Mxfleet__V1__DomainRecipients **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		db_recipients_free(v[i]);
	free(v);
}

/* Every domain whose check is set; the local parts only where they apply. */
const char db_sql_recipient_checks[] =
    "SELECT d.name, d.recipient_check, r.local_part FROM domains d"
    " LEFT JOIN domain_recipients r ON d.recipient_check = 'list'"
    " AND r.domain = lower(d.name)"
    " WHERE d.recipient_check <> '' ORDER BY lower(d.name), d.name, r.local_part";

static int
db_recipients_list_op(struct db *db, void *arg)
{
	struct recipients_arg *a = arg;
	Mxfleet__V1__DomainRecipients **v;
	struct db_params p = { 0 };
	PGresult *res = NULL;
	size_t n;
	int rc;

	dbp_str(&p, a->domain);
	if ((rc = db_query(db, "recipients list",
	    "SELECT d.name, d.recipient_check, r.local_part FROM domains d"
	    " LEFT JOIN domain_recipients r ON r.domain = lower(d.name)"
	    " WHERE lower(d.name) = lower($1) ORDER BY r.local_part", &p, &res)) != DB_OK)
		return rc;
	v = recipient_checks_from(res, &n);
	PQclear(res);
	if (n == 0) {
		free(v);
		db_seterr(db, "recipients list: no domain %s", a->domain);
		return DB_ENOTFOUND;
	}
	a->list = v[0];	/* one domain: one message */
	free(v);
	return DB_OK;
}

int
db_recipients_list(struct db *db, const char *domain, Mxfleet__V1__DomainRecipients **out)
{
	struct recipients_arg a = { .domain = domain };
	int rc;

	*out = NULL;
	db->err[0] = '\0';
	if ((rc = config_text_check(db, "recipients list", domain, 0)) != DB_OK)
		return rc;
	if ((rc = db_call(db, db_recipients_list_op, &a, DB_REPEAT_ALWAYS)) == DB_OK)
		*out = a.list;
	return rc;
}
