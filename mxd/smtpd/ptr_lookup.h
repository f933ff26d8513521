/* The client's reverse-DNS name, looked up on an SMTP worker's libevent loop
 * (docs/mxd.md, "The client's name"): a PTR query for the client's address
 * to mxd's `resolver`, then an A (or AAAA) query for the name it gives; the
 * name counts only when those records hold the client's address
 * (ptr_name.h). Nothing here blocks or delays a reply: the session asks at
 * connect and takes the answer whenever it comes, or ends without it.
 *
 * Bounds: each query gives up after PTR_LOOKUP_TIMEOUT_S seconds and is
 * tried PTR_LOOKUP_ATTEMPTS times (so a name is known, or given up, within
 * twice their product); one lookup per session, cancelled when the session
 * ends; at most max_lookups in flight per worker (its connection limit), so
 * connections cannot make a worker query more than its sessions could.
 *
 * One resolver per worker process. No cache: a lookup is two queries to a
 * caching resolver. */
#ifndef MXD_PTR_LOOKUP_H
#define MXD_PTR_LOOKUP_H

#include <stddef.h>
#include <sys/socket.h>

#define PTR_LOOKUP_TIMEOUT_S	2
#define PTR_LOOKUP_ATTEMPTS	2

struct event_base;
struct ptr_resolver;
struct ptr_lookup;

/* The lookup ended: name is the confirmed name (ptr_name_clean's form), or
 * "" when there is none (no PTR, not a hostname, not confirmed, no answer). */
typedef void (*ptr_lookup_cb)(void *arg, const char *name);

/* A resolver on base asking server ("IP[:PORT]", mxd's `resolver`). NULL
 * and why in err when server is not an address evdns takes. */
struct ptr_resolver *ptr_resolver_new(struct event_base *base, const char *server,
    int max_lookups, char *err, size_t errsz);
/* Drops the lookups in flight without calling them back. The loop must not
 * run again with their queries (call it once the loop has ended). */
void ptr_resolver_free(struct ptr_resolver *r);

/* Start looking up the name of the client at sa. cb(arg, name) follows
 * from the loop (never from inside this call) unless ptr_lookup_cancel
 * comes first. NULL: no lookup (the worker is at max_lookups, the address
 * is not IP, or evdns refused), cb never comes. */
struct ptr_lookup *ptr_lookup_start(struct ptr_resolver *r, const struct sockaddr *sa,
    ptr_lookup_cb cb, void *arg);
/* The session ends: cb will not come; the query is cancelled. */
void ptr_lookup_cancel(struct ptr_lookup *l);

#endif
