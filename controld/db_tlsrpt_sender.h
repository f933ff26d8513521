/* controld: the envelope sender of the TLS reports we mail, as every mxd
 * gets it (ConfigSnapshot.tlsrpt_sender; schema/013_tlsrpt_exempt.sql).
 * Same rules as db.h. */
#ifndef CONTROLD_DB_TLSRPT_SENDER_H
#define CONTROLD_DB_TLSRPT_SENDER_H

#include "db.h"

/* Record controld.conf's reports.mail_from (NULL: unset) at start. A value
 * other than the stored one makes a new config version, so every host
 * gets it; *changed (may be NULL) says whether it did. */
int db_tlsrpt_sender_set(struct db *db, const char *sender, int *changed);
/* For db_config_snapshot, inside its transaction: the stored sender
 * (malloc'd, "" when none). */
int db_tlsrpt_sender_snapshot(struct db *db, char **out);

#endif
