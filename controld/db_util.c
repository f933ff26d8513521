/* controld: small helpers shared by db.c and the db_<subject>.c files
 * (db_internal.h): a leaf, so they depend on it and not on each other. */
#include "db_internal.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "utf8.h"

const char db_sql_config_version[] = "SELECT version FROM config_state";

/* A NUL-terminated string that is all UTF-8. */
int
db_utf8_valid(const char *s)
{
	return utf8_valid((const unsigned char *)s, strlen(s));
}

/* A string of a reply message, unless it is protobuf-c's shared empty one. */
void
db_str_free(char *s)
{
	if (s != NULL && s != protobuf_c_empty_string)
		free(s);
}

/* Text a configuration change stores: UTF-8, non-empty unless allowed. */
int
config_text_check(struct db *db, const char *what, const char *s, int may_be_empty)
{
	if (s == NULL || (!may_be_empty && s[0] == '\0') || !db_utf8_valid(s)) {
		db_seterr(db, "%s: a field is empty or not UTF-8", what);
		return DB_EINVAL;
	}
	return DB_OK;
}

/* The version as this transaction sees it, after its own changes. */
int
config_version_get(struct db *db, uint64_t *version)
{
	PGresult *res = NULL;
	int rc;

	if ((rc = db_query(db, "config version", db_sql_config_version, NULL, &res)) != DB_OK)
		return rc;
	*version = PQntuples(res) == 1 ? db_get_u64(res, 0, 0) : 0;
	PQclear(res);
	return DB_OK;
}

/* config_change inside a transaction the caller began: it ends it. */
int
config_change_open(struct db *db, const char *what, const char *sql,
    const struct db_params *p, int want_none, uint64_t *version)
{
	PGresult *res = NULL;
	uint64_t n;
	int rc;

	if ((rc = db_run(db, what, sql, p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	n = db_affected(res);
	PQclear(res);
	if (n == 0) {
		PQclear(PQexec(db->conn, "ROLLBACK"));
		if (!db_conn_ok(db)) {
			db_seterr(db, "%s: %s", what, PQerrorMessage(db->conn));
			return DB_ECONN;
		}
		db_seterr(db, "%s: %s", what, want_none == DB_EEXIST ?
		    "already present" : "not found");
		return want_none;
	}
	if ((rc = config_version_get(db, version)) != DB_OK)
		return rc;
	return db_commit(db, what);
}
