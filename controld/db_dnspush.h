/* What controld has pushed for each domain (schema/009_dns_pushed.sql), and
 * the lock that serializes pushes across replicas. A push runs as:
 *   db_dnspush_begin           BEGIN, then wait for the push lock (a
 *                              transaction-level advisory lock: released at
 *                              COMMIT or ROLLBACK, or when the connection dies)
 *   db_dnspush_prior           the pairs this domain pushed before that no
 *                              other domain publishes
 *   ... the RFC 2136 exchanges ...
 *   db_dnspush_commit          the pairs pushed now replace the old ones
 *   (or db_dnspush_rollback)   */
#ifndef CONTROLD_DB_DNSPUSH_H
#define CONTROLD_DB_DNSPUSH_H

#include <stddef.h>

#include "db.h"

struct db_dnspush_pair {
	char	*zone;
	char	*owner;		/* absolute, lower case */
	char	*type;
};

int db_dnspush_begin(struct db *db);
int db_dnspush_prior(struct db *db, const char *domain, struct db_dnspush_pair **out,
    size_t *n);
int db_dnspush_commit(struct db *db, const char *domain, const struct db_dnspush_pair *p,
    size_t n);
void db_dnspush_rollback(struct db *db);
void db_dnspush_pairs_free(struct db_dnspush_pair *p, size_t n);

/* Automatic pushes (dnsauto.c): one replica at a time. begin takes the
 * auto-push lock if it is free (a session lock: *got 0 when another
 * replica holds it) and lists the domains whose settings say publish; end
 * releases the lock. A connection lost in between ends the round's database
 * calls (DB_ECONN, no reconnect: the lock went with it); the next round
 * reconnects and takes it again. */
int db_dnspush_auto_begin(struct db *db, int *got, char ***domains, size_t *n);
void db_dnspush_auto_end(struct db *db);

#endif
