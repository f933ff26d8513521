/* What each host reports of itself for DNS (HostIdentity, at Register and
 * in every Heartbeat), stored in host_identity and host_certs
 * (schema/008_dns.sql) for the DNS generator and checks to read.
 *
 * A host's word goes into published DNS, so what it sends is checked first
 * (db_identity_check, on the loop, before the call is answered) and a call
 * carrying anything else is refused whole. Storing changes host_identity
 * only when a field differs: its UPDATE bumps the configuration version,
 * and heartbeats that repeat the same identity must not. */
#ifndef CONTROLD_DB_IDENTITY_H
#define CONTROLD_DB_IDENTITY_H

#include <stddef.h>

#include "db.h"
#include "mxfleet.pb-c.h"

#define DB_IDENTITY_MAX_CERTS		16
#define DB_IDENTITY_MAX_NAMES		64	/* per certificate */
#define DB_IDENTITY_MAX_PATH		1024	/* next_cert_path, bytes */
#define DB_IDENTITY_MAX_ADDRESSES	16

/* 0 if id is a well-formed identity: hostname a DNS name, addresses IP
 * literals, certificates' names DNS names ("*." allowed in front), SPKIs 64
 * lower-case hex digits, within the bounds above. Else -1 and why names the
 * field ("identity.certs[1].spki_sha256: ..."). No I/O. */
int db_identity_check(const Mxfleet__V1__HostIdentity *id, char *why, size_t whysz);

/* Store host_id's identity (checked) in one transaction: host_identity
 * upserted when a field differs; each served key's host_certs row upserted
 * (names, not_after, key_type, last_seen now, retired_at cleared); the
 * host's other keys retired (retired_at now) unless already. *changed
 * (may be NULL) gets 1 when host_identity changed, *retired the keys
 * retired now. Idempotent: safe to repeat after a broken connection. */
int db_identity_store(struct db *db, const char *host_id, const Mxfleet__V1__HostIdentity *id,
    int *changed, unsigned *retired);

/* mailctl hosts: each listed host's stored identity (HostInfo.identity),
 * its certificates the keys it serves now (not retired). Hosts without one
 * keep identity NULL. Release with db_identity_free (db_host_list_free does). */
int db_identity_hosts(struct db *db, Mxfleet__V1__HostList *l);
void db_identity_free(Mxfleet__V1__HostIdentity *id);

#endif
