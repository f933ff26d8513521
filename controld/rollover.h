/* The TLSA key rollover of one host (`mailctl tls rollover HOST`, docs/dns.md,
 * "Rollover"): the state machine, without I/O.
 *
 * A host serves its current key and has a pre-generated next key (mxd makes
 * it, HostIdentity.next_spki_sha256). controld publishes a TLSA 3 1 1 record
 * for both (dnsgen.h). A rollover makes the next key the served one without a
 * moment where a DANE sender (RFC 7672) finds no TLSA record matching what the
 * host presents:
 *
 *   PUBLISH  the new key's TLSA is in the zone on every authoritative server
 *   WAIT     two TTLs of that RRset (as served) since all of them had it: every
 *            resolver's cached copy now holds it (RFC 7671 8.1, RFC 7672 3.1)
 *   SWITCH   the host serves the new key (it needs a certificate for it)
 *   NEXT     the host has made its following next key (published by dnsgen)
 *   RETIRE   the old key's TLSA is gone from every authoritative server
 *   DONE
 *
 * The caller does the I/O: it asks every authoritative server of the zone for
 * the host's TLSA RRset, reads the host's last report, and calls
 * rollover_step with what it saw and the time; the answer says what to do
 * (push the zone, tell the host to switch) and when to look again. The state
 * is a value: rollover_encode turns it into a few key=value lines the caller
 * stores (PostgreSQL), rollover_decode reads them back, so a controld killed
 * at any point resumes where it was.
 *
 * One rollover per host at a time, and the host must be the one its
 * observations describe: both are the caller's concern (one stored state per
 * host, refused when a row exists). Nothing here is thread-safe; a state is
 * owned by whoever holds the host's row. */
#ifndef MXFLEET_ROLLOVER_H
#define MXFLEET_ROLLOVER_H

#include <stddef.h>
#include <stdint.h>

#define ROLLOVER_SPKI_LEN	64	/* SHA-256 of the SPKI, lower-case hex */
#define ROLLOVER_HOST_MAX	128	/* a host id: [A-Za-z0-9._-] */
#define ROLLOVER_STATUS_MAX	512
#define ROLLOVER_ERR_MAX	256
/* rollover_encode never makes more; rollover_decode refuses more. */
#define ROLLOVER_TEXT_MAX	2048
/* Every time given or stored is below this (year 36812). */
#define ROLLOVER_TIME_MAX	((int64_t)1 << 40)
/* Seconds between two looks while nothing is due (the default of
 * struct rollover.poll). */
#define ROLLOVER_POLL_DEFAULT	60
/* This project's margin: the wait is this many TTLs of the TLSA RRset. */
#define ROLLOVER_WAIT_TTLS	2

enum rollover_state {
	ROLLOVER_PUBLISH = 0,
	ROLLOVER_WAIT,
	ROLLOVER_SWITCH,
	ROLLOVER_NEXT,
	ROLLOVER_RETIRE,
	ROLLOVER_DONE,
};

struct rollover {
	enum rollover_state state;
	char	 host[ROLLOVER_HOST_MAX + 1];
	char	 old_spki[ROLLOVER_SPKI_LEN + 1];	/* served when it started */
	char	 new_spki[ROLLOVER_SPKI_LEN + 1];	/* its next key then */
	char	 next_spki[ROLLOVER_SPKI_LEN + 1];	/* the one after ("" until NEXT ends) */
	int64_t	 started;		/* unix seconds, as every time here */
	int64_t	 entered;		/* the current state */
	int64_t	 wait_from;		/* WAIT: every server first seen with the TLSA */
	int64_t	 wait_until;		/* WAIT: wait_from + 2 x ttl, never earlier */
	uint32_t ttl;			/* WAIT: the longest TTL served for the RRset */
	int64_t	 last_obs;		/* the last rollover_step */
	uint32_t poll;			/* seconds between looks, 1 or more; the caller
					 * may set it after rollover_start (shortened
					 * TTLs in tests) */
	char	 status[ROLLOVER_STATUS_MAX];	/* one line for the operator */
};

/* What one authoritative server answered for _25._tcp.<mx name> TLSA. */
struct rollover_server_obs {
	const char	*name;		/* for the status line (quoted there) */
	int		 answered;	/* 0: no answer (timeout, SERVFAIL, refused):
					 * confirms nothing, denies nothing */
	int		 has_old;	/* a 3 1 1 record with the old key */
	int		 has_new;	/* a 3 1 1 record with the new key */
	uint32_t	 ttl;		/* the RRset's TTL as served */
};

/* Everything rollover_step looks at. The host fields are its last report
 * (HostIdentity); the servers are every authoritative server of the zone
 * (its NS set), asked just now. */
struct rollover_obs {
	const struct rollover_server_obs *servers;
	size_t		 nservers;
	uint32_t	 zone_ttl;	/* the TTL the records are pushed with: the
					 * wait is never shorter than 2 x this */
	const char *const *served_spki;	/* the keys the host serves now */
	size_t		 nserved;
	const char	*next_spki;	/* the host's next key; "" or NULL: none */
	int		 next_cert_ready;	/* the host has a certificate for it */
	const char	*next_cert_path;	/* where the host wants that certificate;
					 * NULL: unknown (the status says so) */
};

enum rollover_do {
	ROLLOVER_NOTHING = 0,
	ROLLOVER_PUSH,		/* push the zone: desired records per
				 * rollover_published / rollover_withdrawn */
	ROLLOVER_SWITCH_HOST,	/* tell the host to serve its next key */
};

struct rollover_action {
	enum rollover_do what;
	int64_t		 next_check;	/* call rollover_step again by then; 0 when
					 * the rollover is DONE */
};

/* A rollover of host from old_spki (served now) to new_spki (its next key),
 * starting at now in PUBLISH, with poll ROLLOVER_POLL_DEFAULT. Refused (-1,
 * why in err) when the host has no next key (new_spki "" or NULL), when the
 * keys are the same or not 64 lower-case hex digits, or the host id is not
 * one. */
int rollover_start(struct rollover *r, const char *host, const char *old_spki,
    const char *new_spki, int64_t now, char *err, size_t errsz);

/* Advance r with what was observed at now; fills *out. A step may cross
 * several states (a resumed controld finds the host already switched). The
 * clock may go backwards: a wait ends at wait_until as read on the clock,
 * never earlier. 0, or -1 (r untouched) when r is not a state (poll 0
 * included), obs is malformed or now is not below ROLLOVER_TIME_MAX. */
int rollover_step(struct rollover *r, const struct rollover_obs *obs, int64_t now,
    struct rollover_action *out);

/* The operator gives up on r (`mailctl tls rollover HOST --cancel`): it
 * becomes DONE at now with a status saying it was cancelled and in which
 * state, so a new rollover of the host may start. Nothing is undone: a host
 * that switched keeps its new key, and the TLSA records follow what the
 * hosts report at the next push. -1 (r untouched, why in err) when r is
 * DONE already or now is out of range. */
int rollover_cancel(struct rollover *r, int64_t now, char *err, size_t errsz);

/* The keys of this host whose TLSA record must be in the zone now (the
 * caller adds them to what dnsgen generated): old and new until RETIRE, then
 * new. Returns how many (at most 2), pointers into r. */
size_t rollover_published(const struct rollover *r, const char *out[2]);
/* The key whose TLSA record must not be in the zone (RETIRE, DONE: the old
 * key), or NULL. */
const char *rollover_withdrawn(const struct rollover *r);

const char *rollover_state_name(enum rollover_state s);

/* The state as text, "key=value\n" lines in a fixed order (rollover.c shows
 * them); at most ROLLOVER_TEXT_MAX bytes, NUL-terminated, malloc'd. */
char *rollover_encode(const struct rollover *r);
/* Parse what rollover_encode made. Strict: every key once, in order, every
 * value checked, the last line ended; anything else is -1 with the line and
 * the reason in err (*r is then zeroed). */
int rollover_decode(const char *text, size_t len, struct rollover *r, char *err,
    size_t errsz);

#endif
