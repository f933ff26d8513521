/* MTA-STS (RFC 8461 5.1, 5.2, 10.2): the persistent policy cache and the
 * decision, for one delivery, of which policy applies.
 *
 * The cache is a directory with one small file per policy domain, written
 * atomically (temporary file, fsync, rename, fsync of the directory), so a
 * restart or a crash leaves either the old policy or the new one. The files
 * are the only state: any number of threads (or a restarted process) see the
 * same cache. A file that does not read back (truncated, edited, a policy
 * that no longer parses) is ignored, counted, and replaced by the next fetch.
 *
 * Time comes from the clock given to sts_cache_open (NULL: time(2)), so tests
 * move it by hand. The HTTPS fetch is a callback (sts_fetch in production, a
 * script in tests). */
#ifndef MXFLEET_STS_CACHE_H
#define MXFLEET_STS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "sts.h"
#include "sts_fetch.h"

#define STS_DOMAIN_MAX	253

struct sts_cache;

/* Seconds since the epoch. */
typedef int64_t (*sts_clock_fn)(void *arg);

/* Fetch the policy of domain into *out (see sts_fetch; only result, policy,
 * body, body_len and reason are used). The cache frees it afterwards with
 * sts_fetch_out_free. */
typedef void (*sts_fetch_fn)(void *arg, const char *domain, struct sts_fetch_out *out);

/* dir is created (0700) if missing. Returns 0, or -1 with a reason in err. */
int sts_cache_open(const char *dir, sts_clock_fn clock, void *clock_arg,
    struct sts_cache **out, char *err, size_t errsz);
void sts_cache_close(struct sts_cache *c);

/* Files ignored because they did not read back, since sts_cache_open. */
uint64_t sts_cache_corrupt_count(const struct sts_cache *c);

/* ---- entries ---- */

struct sts_cache_entry {
	char		 domain[STS_DOMAIN_MAX + 1];	/* lower case, no final dot */
	char		 id[STS_ID_MAX + 1];	/* from the TXT record it was fetched under */
	int64_t		 fetched_at;
	int64_t		 expires_at;		/* fetched_at + max_age */
	char		*text;			/* the policy as served */
	size_t		 text_len;
	struct sts_policy *policy;		/* text, parsed */
};

/* 1 and *e if domain has a readable entry (expired or not), else 0. */
int sts_cache_get(struct sts_cache *c, const char *domain, struct sts_cache_entry *e);
/* Store a policy fetched now under TXT id. 0, or -1 (logged) on a write
 * error: the policy still applies to this delivery, it just is not cached. */
int sts_cache_put(struct sts_cache *c, const char *domain, const char *id,
    const char *text, size_t len, const struct sts_policy *p);
void sts_cache_entry_free(struct sts_cache_entry *e);

/* ---- the decision for one delivery (5.1, 5.2) ---- */

/* What the `_mta-sts.<domain>` TXT lookup just said. */
enum sts_txt_state {
	STS_TXT_FOUND = 0,	/* one valid v=STSv1 record: id is set */
	STS_TXT_NONE,		/* no (valid) record: NXDOMAIN, NODATA, none or
				 * several v=STSv1 records, a syntax error */
	STS_TXT_FAILED,		/* no answer: timeout, SERVFAIL */
};

struct sts_txt_lookup {
	enum sts_txt_state	state;
	char			id[STS_ID_MAX + 1];
};

enum sts_source {
	STS_SOURCE_NONE = 0,	/* no policy applies */
	STS_SOURCE_CACHE,	/* cached, unexpired, id as in DNS (or no record) */
	STS_SOURCE_FETCHED,	/* fetched for this delivery (and cached) */
	STS_SOURCE_STALE,	/* cached, unexpired, but the refetch that a new id
				 * or a refresh asked for failed: fetch_result says why */
};

struct sts_decision {
	struct sts_policy	*policy;	/* owned; NULL when source is NONE */
	char			 id[STS_ID_MAX + 1];	/* the applied policy's id */
	enum sts_source		 source;
	int			 fetched;	/* 1 if a fetch was attempted */
	enum sts_fetch_result	 fetch_result;	/* of that fetch; OK if none */
	char			 reason[STS_FETCH_REASON_MAX];	/* why it failed */
	int64_t			 expires_at;	/* of the applied policy */
};

/* Which policy applies to a delivery to domain, given the TXT lookup just
 * made (RFC 8461 5.1):
 *  - a cached unexpired policy with the id in DNS is used, no fetch;
 *  - otherwise, when DNS has a record, the policy is fetched and cached; if
 *    that fails, a cached unexpired policy is still used (STALE) and else
 *    none applies (the failure is in fetch_result/reason for the report);
 *  - with no record, or a failed lookup, a cached unexpired policy is used
 *    and else none applies (no fetch: nothing says there is a policy).
 * A policy in mode "none" is returned like any other (it is cached, and it
 * replaces an older enforce policy: 8.3): the caller applies no checks.
 * Always fills *d; free with sts_decision_free. */
void sts_cache_decide(struct sts_cache *c, const char *domain,
    const struct sts_txt_lookup *txt, sts_fetch_fn fetch, void *fetch_arg,
    struct sts_decision *d);
void sts_decision_free(struct sts_decision *d);

/* ---- before a bounce (10.2) ---- */

enum sts_recheck {
	STS_RECHECK_UNCHANGED = 0,	/* same id (or no record): the policy
					 * applied stands, the failure may bounce */
	STS_RECHECK_CHANGED,		/* a new policy was fetched: *d holds it;
					 * try the MX hosts again under it */
	STS_RECHECK_FETCH_FAILED,	/* the id changed but the new policy could
					 * not be fetched: defer, do not bounce */
};

/* A delivery is about to fail permanently because of the policy with
 * applied_id. txt is a fresh lookup of the TXT record. If it names another
 * id, fetch the new policy first. *d is filled only for CHANGED (zeroed
 * otherwise, with the failure reason for FETCH_FAILED); free it in any case. */
enum sts_recheck sts_cache_recheck(struct sts_cache *c, const char *domain,
    const char *applied_id, const struct sts_txt_lookup *txt, sts_fetch_fn fetch,
    void *fetch_arg, struct sts_decision *d);

/* ---- proactive refresh (10.2) ---- */

/* The domains whose cached policy is unexpired and past half its lifetime
 * (fetched_at + max_age / 2 <= now): refetch them with sts_cache_refresh
 * before they expire. Returns how many; *out is an array of strings, freed
 * with sts_cache_list_free. */
size_t sts_cache_due(struct sts_cache *c, char ***out);
void sts_cache_list_free(char **list, size_t n);

/* Refetch domain's policy now, whatever its id, with a fresh TXT lookup:
 * success restarts its max_age; failure leaves the cached entry as it was.
 * No record: nothing is fetched (the cached policy runs out on its own).
 * *d as for sts_cache_decide. */
void sts_cache_refresh(struct sts_cache *c, const char *domain,
    const struct sts_txt_lookup *txt, sts_fetch_fn fetch, void *fetch_arg,
    struct sts_decision *d);

#endif
