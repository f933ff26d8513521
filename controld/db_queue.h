/* controld: remote queue control in PostgreSQL (schema/015_queue_commands.sql,
 * docs/control-plane.md "Queue control"), and the heartbeat's queue counts. */
#ifndef CONTROLD_DB_QUEUE_H
#define CONTROLD_DB_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "mxfleet.pb-c.h"

/* Hosts last seen longer ago are not asked when no host is named. */
#define DB_QUEUE_RECENT_SECONDS	3600

/* One queue command: as inserted for the caller (id, host_id, last_seen),
 * as taken for a host's stream (id, host_id, op, arg, max_messages), or as
 * read back (taken, done, result: a packed QueueHostResult). */
struct db_queue_cmd {
	uint64_t	 id;
	char		*host_id;
	char		*op, *arg;
	uint32_t	 max_messages;
	int64_t		 last_seen;
	int		 taken, done;
	int		 cancelled;	/* never taken: withdrawn at the deadline */
	uint8_t		*result;
	size_t		 result_len;
};

struct db_queue_cmds {
	struct db_queue_cmd	*v;
	size_t			 n;
};

void db_queue_cmds_free(struct db_queue_cmds *c);

/* One command per target: host_id, or ("") every host seen within
 * DB_QUEUE_RECENT_SECONDS. DB_ENOTFOUND for a named host controld does not
 * know. Rows older than a day are deleted on the way. */
int db_queue_insert(struct db *db, const char *host_id, const char *op, const char *arg,
    uint32_t max_messages, struct db_queue_cmds *out);
/* Take the commands not taken yet (and under a minute old) of these hosts. */
int db_queue_take(struct db *db, char *const *hosts, size_t nhosts, struct db_queue_cmds *out);
/* Store a host's answer; *found 0 when the command is not that host's, or
 * answered already. */
int db_queue_done(struct db *db, const char *host_id, uint64_t id, const uint8_t *result,
    size_t len, int *found);
/* Fill taken, done and result of each command in c. final: first withdraw
 * those no host took (cancelled), so that they never run late. */
int db_queue_results(struct db *db, struct db_queue_cmds *c, int final);


#endif
