/* TLS reports other domains sent us (docs/reports.md, "Receiving"): the
 * addresses that take them (ConfigSnapshot.tlsrpt_addresses) and the
 * received_reports table (schema/014). Same rules as db.h: parameters only,
 * blocking, one handle per thread, DB_* codes with db_errmsg. */
#ifndef CONTROLD_DB_RPTRECV_H
#define CONTROLD_DB_RPTRECV_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "mxfleet.pb-c.h"
#include "tlsrpt.h"
#include "tlsrpt_mime.h"

#define DB_RPTRECV_LIST_MAX	1000	/* rows a list returns (truncated says more) */

/* Inside the snapshot's transaction: the mailto: targets (lower case,
 * sorted, unique) of the TLSRPT rua of every hosted domain with DNS settings
 * (domain_dns; an empty rua is mailto:tlsrpt@<domain>), kept only when the
 * address is in a hosted domain. */
int db_rptrecv_addresses(struct db *db, char ***out, size_t *n);
void db_rptrecv_addresses_free(char **v, size_t n);

/* One received mail as read: report NULL means refused (reason set). */
struct db_rptrecv_mail {
	const Mxfleet__V1__ReceivedReportMail	*in;
	const struct tlsrpt_mime		*mime;		/* NULL: not even a report part */
	const struct tlsrpt_report		*report;	/* NULL: refused */
	const char				*refused;
	const char				*policies_json;	/* with report */
	const unsigned char			*raw;		/* report part, or the mail */
	size_t					 raw_len;
	int					 raw_cut;
};

/* Stores it unless (host_id, id) is there: *duplicate then, and *id is the
 * stored row's either way. */
int db_rptrecv_store(struct db *db, const struct db_rptrecv_mail *m, uint64_t *id,
    int *duplicate);

/* Received since since_unix, newest first, of domain (a policy domain or
 * the recipient's domain; "" all). Free with db_rptrecv_list_free. */
int db_rptrecv_list(struct db *db, const char *domain, int64_t since_unix,
    Mxfleet__V1__ReceivedReportList **out);
void db_rptrecv_list_free(Mxfleet__V1__ReceivedReportList *l);

/* One, with its policies_json; DB_ENOTFOUND when there is no such id. */
int db_rptrecv_show(struct db *db, uint64_t id, Mxfleet__V1__ReceivedReport **out);
void db_rptrecv_report_free(Mxfleet__V1__ReceivedReport *r);

#endif
