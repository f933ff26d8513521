/* Publishing the records a caller manages in one zone with RFC 2136 UPDATE,
 * signed with TSIG (RFC 8945), on ldns.
 *
 * The caller names what it manages: the desired records (presentation lines
 * "owner ttl IN type rdata", absolute owners) and the (owner, type) pairs it
 * owns: every pair of a desired record, plus pairs it published before and
 * wants gone. dnsupdate_push reads the live RRset of each managed pair from
 * the zone's primary (one TSIG-signed query per pair over one TCP
 * connection: only the managed pairs are read, the answers are the primary's
 * own, authenticated by TSIG, and a primary that refuses AXFR still works),
 * computes the difference and sends it as ONE UPDATE (zone section = zone;
 * RFC 2136 2.5.4 "delete an RR from an RRset" for each stale record, 2.5.1
 * "add to an RRset" for each new one), signed with the same key, then checks
 * the answer. Records at pairs the caller does not manage are never touched.
 *
 * Two records are equal when owner (case-insensitive), class, type and RDATA
 * (names in RDATA compared case-insensitively, RFC 4034 6.2) are equal; a
 * record whose TTL differs is a change: the live one is deleted, the desired
 * one added, in the same UPDATE. No difference: nothing is sent (a second
 * push of the same records sends nothing). SOA and the DNSSEC records the
 * primary makes itself (DNSKEY, RRSIG, NSEC, NSEC3, NSEC3PARAM) cannot be
 * managed.
 *
 * The UPDATE carries no prerequisites: a change made by someone else at a
 * managed pair between the read and the UPDATE is overwritten by the next
 * push, not detected.
 *
 * Blocking: every call returns within its bound (timeout_ms for the whole
 * push: connect, every query and the UPDATE); run it on a worker thread. The
 * TSIG secret is never written into an error or a result. */
#ifndef MXFLEET_DNSUPDATE_H
#define MXFLEET_DNSUPDATE_H

#include <stddef.h>

#define DNSUPDATE_ERROR_MAX		512
#define DNSUPDATE_DEFAULT_TIMEOUT_MS	10000

struct dnsupdate_key {
	const char	*name;		/* e.g. "mxfleet-push." */
	const char	*algorithm;	/* hmac-sha256; also hmac-sha1, hmac-sha224,
					 * hmac-sha384, hmac-sha512, hmac-md5 */
	const char	*secret;	/* base64 */
};

struct dnsupdate_pair {
	const char	*owner;		/* absolute, e.g. "_25._tcp.mx1.example.com." */
	const char	*type;		/* mnemonic, e.g. "TLSA" */
};

struct dnsupdate_request {
	const char			*zone;		/* e.g. "example.com." */
	const char			*server;	/* the primary: "IP", "IP:port",
							 * "[IPv6]:port" (port 53 if none) */
	struct dnsupdate_key		key;
	const char *const		*desired;	/* presentation lines */
	size_t				n_desired;
	const struct dnsupdate_pair	*managed;	/* besides the desired pairs */
	size_t				n_managed;
	int				dry_run;	/* compute, send nothing */
	int				timeout_ms;	/* whole call; 0: the default */
};

enum dnsupdate_status {
	DNSUPDATE_OK = 0,
	DNSUPDATE_EINVAL,	/* a bad record, an owner outside the zone, a bad key
				 * or server address: nothing was sent */
	DNSUPDATE_ENET,		/* no connection or no answer within the bound */
	DNSUPDATE_ETSIG,	/* the server rejected the TSIG (BADSIG, BADKEY,
				 * BADTIME) or its answer's TSIG did not verify */
	DNSUPDATE_EREFUSED,	/* REFUSED (no permission) or NOTAUTH (the server
				 * is not authoritative for the zone) */
	DNSUPDATE_ESERVER,	/* another error rcode, or an answer that is not
				 * the primary's (malformed, not authoritative) */
};

struct dnsupdate_result {
	enum dnsupdate_status	status;
	int		sent;		/* 1: an UPDATE was sent and answered NOERROR */
	size_t		n_added;
	char		**added;	/* presentation lines "owner\tttl\tIN\ttype\trdata" */
	size_t		n_deleted;
	char		**deleted;	/* the live records removed, same form */
	char		error[DNSUPDATE_ERROR_MAX];	/* "" when DNSUPDATE_OK */
};

/* Read, compare, send (unless dry_run or nothing differs), check. On
 * DNSUPDATE_OK, added/deleted is the difference (sent, or that would be sent
 * on a dry run). On an error after the difference was computed (the UPDATE
 * failed), added/deleted still say what was attempted and sent is 0.
 * Returns out->status; free out with dnsupdate_result_free either way. */
enum dnsupdate_status dnsupdate_push(const struct dnsupdate_request *req,
    struct dnsupdate_result *out);

/* The difference alone, I/O-free: live is what the primary holds at (some
 * of) the managed pairs, as presentation lines; lines at other pairs are
 * ignored. Checks desired and managed exactly as dnsupdate_push does.
 * Returns DNSUPDATE_OK or DNSUPDATE_EINVAL (with the reason in error). */
enum dnsupdate_status dnsupdate_diff(const char *zone, const char *const *desired,
    size_t n_desired, const struct dnsupdate_pair *managed, size_t n_managed,
    const char *const *live, size_t n_live, struct dnsupdate_result *out);

void dnsupdate_result_free(struct dnsupdate_result *res);
const char *dnsupdate_status_str(enum dnsupdate_status st);	/* "ok", "tsig", ... */

#endif
