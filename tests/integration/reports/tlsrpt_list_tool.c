/* What controld's report sender will read of a UTC day (db_tlsrpt.h), for
 * test_report_preview.py:
 *
 *   tlsrpt_list_tool list CONNINFO YYYY-MM-DD
 *       db_tlsrpt_list: one "DOMAIN KIND" line per report of the day
 *   tlsrpt_list_tool reports CONNINFO YYYY-MM-DD ORG CONTACT SUBMITTER
 *       db_tlsrpt_reports (every report from one read of the day): one
 *       "DOMAIN KIND JSON" line each, the JSON as tlsrpt_build_json makes it
 *
 * Exit 1 on a bad day, a database error or a report that does not build
 * (said on stderr), 2 on usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_tlsrpt.h"
#include "tlsrpt.h"

static int
tool_list(struct db *db, time_t begin)
{
	struct db_tlsrpt_pair *v;
	size_t n;

	if (db_tlsrpt_list(db, begin, &v, &n) != DB_OK) {
		fprintf(stderr, "tlsrpt_list_tool: %s\n", db_errmsg(db));
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s %s\n", v[i].policy_domain, db_tlsrpt_kind_name(v[i].kind));
	db_tlsrpt_pairs_free(v, n);
	return 0;
}

static int
tool_reports(struct db *db, time_t begin, const struct db_tlsrpt_submitter *who)
{
	struct db_tlsrpt_pair *v;
	struct tlsrpt_report *r;
	char err[TLSRPT_ERR_MAX], *json;
	size_t n, len;
	int rc = 0;

	if (db_tlsrpt_reports(db, begin, who, &v, &r, &n) != DB_OK) {
		fprintf(stderr, "tlsrpt_list_tool: %s\n", db_errmsg(db));
		return 1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (tlsrpt_build_json(&r[i], &json, &len, err, sizeof(err)) < 0) {
			fprintf(stderr, "tlsrpt_list_tool: %s: %s\n", v[i].policy_domain, err);
			rc = 1;
			break;
		}
		printf("%s %s %s\n", v[i].policy_domain, db_tlsrpt_kind_name(v[i].kind), json);
		free(json);
	}
	db_tlsrpt_reports_free(v, r, n);
	return rc;
}

int
main(int argc, char **argv)
{
	struct db *db;
	char err[512];
	time_t begin;
	int list = argc == 4 && strcmp(argv[1], "list") == 0, rc;

	if (!list && !(argc == 7 && strcmp(argv[1], "reports") == 0)) {
		fprintf(stderr, "usage: tlsrpt_list_tool list CONNINFO YYYY-MM-DD\n"
		    "       tlsrpt_list_tool reports CONNINFO YYYY-MM-DD ORG CONTACT SUBMITTER\n");
		return 2;
	}
	if (db_tlsrpt_day(argv[3], &begin) < 0) {
		fprintf(stderr, "tlsrpt_list_tool: %s: not a day\n", argv[3]);
		return 1;
	}
	if (db_open(&db, argv[2], err, sizeof(err)) != DB_OK) {
		fprintf(stderr, "tlsrpt_list_tool: %s\n", err);
		return 1;
	}
	if (list)
		rc = tool_list(db, begin);
	else {
		struct db_tlsrpt_submitter who = { argv[4], argv[5], argv[6] };
		rc = tool_reports(db, begin, &who);
	}
	db_close(db);
	return rc;
}
