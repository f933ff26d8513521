/* controld: the TLS reports' envelope sender in the snapshot
 * (db_tlsrpt_sender.h). */
#include "db_tlsrpt_sender.h"
#include "db_internal.h"

#include <stdlib.h>

#include "xmalloc.h"

struct db_tlsrpt_sender_arg {
	const char	*sender;
	int		 changed;
};

/* Changes the row only when the sender differs: an unchanged restart makes
 * no new version (the trigger bumps it only for a changed row). */
static int
db_tlsrpt_sender_set_op(struct db *db, void *arg)
{
	struct db_tlsrpt_sender_arg *a = arg;
	struct db_params p = { 0 };
	PGresult *res;
	int rc;

	dbp_str(&p, a->sender);
	if ((rc = db_run(db, "tlsrpt sender", "UPDATE tlsrpt_sender SET sender = $1::text"
	    " WHERE sender IS DISTINCT FROM $1::text", &p, PGRES_COMMAND_OK, &res)) != DB_OK)
		return rc;
	a->changed = db_affected(res) > 0;
	PQclear(res);
	return DB_OK;
}

int
db_tlsrpt_sender_set(struct db *db, const char *sender, int *changed)
{
	struct db_tlsrpt_sender_arg a = { sender, 0 };
	int rc = db_call(db, db_tlsrpt_sender_set_op, &a, DB_REPEAT_ALWAYS);

	if (changed)
		*changed = a.changed;
	return rc;
}

int
db_tlsrpt_sender_snapshot(struct db *db, char **out)
{
	PGresult *res;
	int rc;

	*out = NULL;
	if ((rc = db_query(db, "snapshot: tlsrpt sender", "SELECT coalesce(sender, '')"
	    " FROM tlsrpt_sender", NULL, &res)) != DB_OK)
		return rc;
	*out = PQntuples(res) > 0 ? db_get_str(res, 0, 0) : xstrdup("");
	PQclear(res);
	return DB_OK;
}
