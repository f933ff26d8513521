/* controld's Admin service (mailctl): the fleet's configuration, outcome
 * summaries, certificate revocation; and the periodic reload of the
 * revoked serials. Every change is answered with the snapshot that
 * includes it. */
#ifndef CONTROLD_ADMIN_H
#define CONTROLD_ADMIN_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

void admin_list_hosts(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_add_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_list_domains(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_remove_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_add_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_list_routes(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_remove_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_set_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_list_policies(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_remove_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_summarize(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_revoke(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_set_recipient_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_add_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_remove_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void admin_list_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
/* For the Admin calls of other files (admin_dns.c): a change's work ends
 * with admin_change_snapshot(db, j, rc, eexist_ok) and its job answers with
 * admin_change_answer (the snapshot that includes it; j->log, if set, is
 * logged once the change is stored). */
struct call_job;
struct db;
int admin_change_snapshot(struct db *db, struct call_job *j, int rc, int eexist_ok);
void admin_change_answer(struct call_job *j, struct grpc_call *c);
/* A freshly read list of revoked serials (taken): enforced from now on,
 * and the connections of peers revoked since their handshake closed. */
void admin_revoke_apply(char **serials, size_t n);
/* Timer: reload the revoked serials. */
void admin_revoke_tick(evutil_socket_t fd, short what, void *arg);

#endif
