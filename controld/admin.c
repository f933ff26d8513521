/* controld: the Admin service (admin.h). */
#include <ctype.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "db_identity.h"
#include "db_queue.h"
#include "call.h"
#include "controld.h"
#include "dnsname.h"
#include "fleet.h"
#include "nexthop.h"
#include "rcpt_addr.h"
#include "xmalloc.h"

/* ---- Admin ---- */

/* Free functions of the messages requests and replies are. */
#define FREE_FN(name, call)	static void name(void *p) { call; }
FREE_FN(admin_free_domain_config, mxfleet__v1__domain_config__free_unpacked(p, NULL))
FREE_FN(admin_free_domain_name, mxfleet__v1__domain_name__free_unpacked(p, NULL))
FREE_FN(admin_free_route_config, mxfleet__v1__route_config__free_unpacked(p, NULL))
FREE_FN(admin_free_policy_config, mxfleet__v1__tls_policy_config__free_unpacked(p, NULL))
FREE_FN(admin_free_outcome_query, mxfleet__v1__outcome_query__free_unpacked(p, NULL))
FREE_FN(admin_free_revoke_request, mxfleet__v1__revoke_request__free_unpacked(p, NULL))
FREE_FN(admin_free_recipients_req, mxfleet__v1__domain_recipients__free_unpacked(p, NULL))
FREE_FN(admin_free_host_list, db_host_list_free(p))
FREE_FN(admin_free_domain_list, db_domain_list_free(p))
FREE_FN(admin_free_route_list, db_route_list_free(p))
FREE_FN(admin_free_policy_list, db_policy_list_free(p))
FREE_FN(admin_free_report, db_outcome_report_free(p))
FREE_FN(admin_free_recipients, db_recipients_free(p))

/* ---- Admin: lists ---- */

static int
admin_hosts_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	Mxfleet__V1__HostList *l;
	int rc = db_hosts_list(db, &l);
	if (rc != DB_OK)
		return rc;
	j->reply = l;
	j->reply_free = admin_free_host_list;
	return db_identity_hosts(db, l);
}

#define LIST_WORK(name, type, call, freefn)				\
static int								\
name(struct db *db, struct dbq_job *qj)					\
{									\
	struct call_job *j = (struct call_job *)qj;			\
	type *l = NULL;							\
	int rc = call;							\
	j->reply = l;							\
	j->reply_free = freefn;						\
	return rc;							\
}
LIST_WORK(admin_domains_work, Mxfleet__V1__DomainList, db_domain_list(db, &l), admin_free_domain_list)
LIST_WORK(admin_routes_work, Mxfleet__V1__RouteList, db_route_list(db, &l), admin_free_route_list)
LIST_WORK(admin_policies_work, Mxfleet__V1__PolicyList, db_policy_list(db, &l), admin_free_policy_list)
LIST_WORK(admin_summary_work, Mxfleet__V1__OutcomeReport, db_outcome_summary(db, j->req, &l),
    admin_free_report)
LIST_WORK(admin_recipients_list_work, Mxfleet__V1__DomainRecipients,
    db_recipients_list(db, ((Mxfleet__V1__DomainName *)j->req)->name, &l), admin_free_recipients)

/* A list call without a request message (Empty). */
static void
admin_list(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *))
{
	C->m.calls++;
	if (call_check_admin(c) == 0)
		call_submit_new(c, work, call_answer_reply, NULL, NULL);
}

void
admin_list_hosts(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, admin_hosts_work);
}

void
admin_list_domains(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, admin_domains_work);
}

void
admin_list_routes(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, admin_routes_work);
}

void
admin_list_policies(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_list(c, admin_policies_work);
}

void
admin_summarize(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__OutcomeQuery, mxfleet__v1__outcome_query, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) == 0)
		call_submit_new(c, admin_summary_work, call_answer_reply, req, admin_free_outcome_query);
	else
		admin_free_outcome_query(req);
}

void
admin_list_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) == 0)
		call_submit_new(c, admin_recipients_list_work, call_answer_reply, req, admin_free_domain_name);
	else
		admin_free_domain_name(req);
}

/* ---- Admin: changes, answered with the snapshot that includes them ---- */

/* After a change: the snapshot, read on the same worker. eexist_ok: "it is
 * so already" is not an error (nothing changed). */
int
admin_change_snapshot(struct db *db, struct call_job *j, int rc, int eexist_ok)
{
	if (rc == DB_EEXIST && eexist_ok)
		rc = DB_OK;
	if (rc != DB_OK)
		return rc;
	return db_config_snapshot(db, &j->snap);
}

void
admin_change_answer(struct call_job *j, struct grpc_call *c)
{
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	if (j->log)
		log_info("%s", j->log);
	call_reply(c, &j->snap->base);
	fleet_snapshot_take(j->snap);
	j->snap = NULL;
}

#define CHANGE_WORK(name, type, call, eexist_ok)			\
static int								\
name(struct db *db, struct dbq_job *qj)					\
{									\
	struct call_job *j = (struct call_job *)qj;			\
	type *req = j->req;						\
	return admin_change_snapshot(db, j, call, eexist_ok);			\
}
CHANGE_WORK(admin_domain_add_work, Mxfleet__V1__DomainConfig, db_domain_add(db, req, NULL), 0)
CHANGE_WORK(admin_domain_remove_work, Mxfleet__V1__DomainName,
    db_domain_remove(db, req->name, NULL), 0)
CHANGE_WORK(admin_route_add_work, Mxfleet__V1__RouteConfig, db_route_add(db, req, NULL), 0)
CHANGE_WORK(admin_route_remove_work, Mxfleet__V1__RouteConfig, db_route_remove(db, req, NULL), 0)
CHANGE_WORK(admin_policy_set_work, Mxfleet__V1__TlsPolicyConfig, db_policy_set(db, req, NULL), 1)
CHANGE_WORK(admin_policy_remove_work, Mxfleet__V1__DomainName,
    db_policy_remove(db, req->name, NULL), 0)
CHANGE_WORK(admin_recipient_check_work, Mxfleet__V1__DomainRecipients,
    db_recipient_check_set(db, req->domain, req->mode, NULL), 1)
CHANGE_WORK(admin_recipients_add_work, Mxfleet__V1__DomainRecipients,
    db_recipients_add(db, req->domain, j->locals, j->nlocals, NULL), 1)
CHANGE_WORK(admin_recipients_remove_work, Mxfleet__V1__DomainRecipients,
    db_recipients_remove(db, req->domain, j->locals, j->nlocals, NULL), 0)

/* Queue a change; log (may be NULL, taken) is logged once it is stored. */
static void
admin_change(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *), void *req,
    void (*req_free)(void *), char *log)
{
	struct call_job *j = call_job_new(c, work, admin_change_answer, req, req_free);
	j->log = log;
	call_submit(c, j);
}

/* The port a next hop ends with, when it ends with ":DIGITS"; -1 if not. */
static long
admin_nexthop_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 9)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return strtol(colon + 1, NULL, 10);
}

/* Would mxd take this domain? A domain name (one trailing dot allowed, and
 * removed: "example.test." is stored as "example.test") and a next hop it
 * can parse, whose host is an IP address or a host name. 0, or -1 with what
 * is wrong in msg. */
static int
admin_domain_refusal(Mxfleet__V1__DomainConfig *d, char *msg, size_t msgsz)
{
	struct mxd_nexthop nh;
	char why[300];
	unsigned char ip[16];
	size_t len = strlen(d->name);
	long port;

	if (dnsname_check(d->name, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "name: %s", why);
		return -1;
	}
	if (d->name[len - 1] == '.')
		d->name[len - 1] = '\0';
	if (mxd_nexthop_parse(d->next_hop, &nh, 0, why, sizeof(why)) < 0) {
		port = strchr(d->next_hop, ':') ? admin_nexthop_port(d->next_hop) : -1;
		if (port == 0 || port > 65535)
			snprintf(msg, msgsz, "next_hop: port %ld is out of range (1-65535); %s",
			    port, why);
		else
			snprintf(msg, msgsz, "next_hop: %s", why);
		return -1;
	}
	if (!nh.is_unix && inet_pton(AF_INET, nh.host, ip) != 1 &&
	    inet_pton(AF_INET6, nh.host, ip) != 1 && dnsname_check(nh.host, why, sizeof(why)) < 0) {
		snprintf(msg, msgsz, "next_hop host: %s", why);
		return -1;
	}
	return 0;
}

void
admin_add_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainConfig, mxfleet__v1__domain_config, c, msg, len);
	C->m.calls++;
	char text[400];
	if (call_check_admin(c) < 0)
		;
	else if (req->name[0] == '\0' || req->next_hop[0] == '\0')
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "name and next_hop are required");
	else if (admin_domain_refusal(req, text, sizeof(text)) < 0) {
		/* mxd would ignore it: refuse it here, where the operator sees why. */
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	} else {
		admin_change(c, admin_domain_add_work, req, admin_free_domain_config,
		    xasprintf("event=domain_added name=%s next_hop=%s", req->name, req->next_hop));
		return;
	}
	admin_free_domain_config(req);
}

void
admin_remove_domain(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) == 0)
		admin_change(c, admin_domain_remove_work, req, admin_free_domain_name,
		    xasprintf("event=domain_removed name=%s", req->name));
	else
		admin_free_domain_name(req);
}

void
admin_add_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	struct mxd_nexthop nh;
	char why[300], text[400];
	if (call_check_admin(c) < 0)
		;
	else if (req->transport[0] == '\0')
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "transport is required");
	else if (mxd_nexthop_parse(req->transport, &nh, 1, why, sizeof(why)) < 0) {
		snprintf(text, sizeof(text), "transport: %s", why);
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
	} else {
		admin_change(c, admin_route_add_work, req, admin_free_route_config, NULL);
		return;
	}
	admin_free_route_config(req);
}

void
admin_remove_route(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RouteConfig, mxfleet__v1__route_config, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) == 0)
		admin_change(c, admin_route_remove_work, req, admin_free_route_config, NULL);
	else
		admin_free_route_config(req);
}

void
admin_set_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__TlsPolicyConfig, mxfleet__v1__tls_policy_config, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (req->domain[0] == '\0' || !db_policy_mode_ok(req->mode))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (none, may, "
		    "encrypt, dane, dane-only, verify, secure) are required");
	else {
		admin_change(c, admin_policy_set_work, req, admin_free_policy_config,
		    xasprintf("event=policy_set domain=%s mode=%s", req->domain, req->mode));
		return;
	}
	admin_free_policy_config(req);
}

void
admin_remove_policy(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainName, mxfleet__v1__domain_name, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) == 0)
		admin_change(c, admin_policy_remove_work, req, admin_free_domain_name, NULL);
	else
		admin_free_domain_name(req);
}

/* ---- revocation (schema/006, mailctl pki revoke) ---- */

static int
admin_revoke_refuse(SSL *ssl, void *arg)
{
	return pki_peer_refused(ssl, C->revoked);
}

/* A freshly read list of revoked serials (taken); when the set changed,
 * close the connections of peers revoked since their handshake. New
 * handshakes read the set through pki_server_enforce's callback. */
void
admin_revoke_apply(char **serials, size_t n)
{
	if (pki_revoked_take(C->revoked, serials, n)) {
		int closed = C->tls_srv ? grpc_server_close_peers(C->tls_srv, admin_revoke_refuse, NULL,
		    "certificate revoked") : 0;
		log_info("event=revocations_loaded revoked=%zu connections_closed=%d", n, closed);
	}
}

static int
admin_revoked_list_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	return db_revoked_list(db, &j->serials, &j->nserials);
}

/* On a database error the last set stays. */
static void
admin_revoke_reload_done(struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	char q[LOG_QUOTE_SIZE(300)];
	C->revoke_busy = 0;
	if (j->q.rc != DB_OK) {
		C->m.db_errors++;
		log_warnx("event=revocations_not_loaded error=%s kept=%zu",
		    log_quote(q, sizeof(q), j->q.err, strlen(j->q.err), 300),
		    pki_revoked_count(C->revoked));
	} else {
		admin_revoke_apply(j->serials, j->nserials);
		j->serials = NULL;
		j->nserials = 0;
	}
	call_job_free(j);
}

void
admin_revoke_tick(evutil_socket_t fd, short what, void *arg)
{
	if (C->revoked == NULL || C->revoke_busy)
		return;
	struct call_job *j = call_bg_job_new(admin_revoked_list_work, admin_revoke_reload_done);
	if (dbq_submit(C->dbq, &j->q) < 0) {
		call_job_free(j);
		return;
	}
	C->revoke_busy = 1;
}

/* Record the serial, and read the set back on the same worker: this
 * replica enforces it at once, the others at their next reload. */
static int
admin_revoke_work(struct db *db, struct dbq_job *qj)
{
	struct call_job *j = (struct call_job *)qj;
	const Mxfleet__V1__RevokeRequest *req = j->req;
	int newly = 0;
	int rc = db_revoke(db, req->serial, req->name, req->not_after_unix, &newly);
	if (rc != DB_OK)
		return rc;
	j->n1 = (uint64_t)newly;
	if (db_revoked_list(db, &j->serials, &j->nserials) != DB_OK) {
		j->serials = NULL;	/* stored; the next reload enforces it */
		j->nserials = 0;
		j->n2 = 1;
	}
	return DB_OK;
}

static void
admin_revoke_answer(struct call_job *j, struct grpc_call *c)
{
	const Mxfleet__V1__RevokeRequest *req = j->req;
	char q[LOG_QUOTE_SIZE(100)];
	if (j->q.rc != DB_OK) {
		call_fail_db(c, j);
		return;
	}
	log_info("event=certificate_revoked serial=%s name=%s by=%s newly=%d", req->serial,
	    log_quote(q, sizeof(q), req->name, strlen(req->name), 100),
	    c ? grpc_call_peer(c) : "-", (int)j->n1);
	if (C->revoked && j->n2 == 0) {
		admin_revoke_apply(j->serials, j->nserials);
		j->serials = NULL;
		j->nserials = 0;
	}
	Mxfleet__V1__RevokeReply r = MXFLEET__V1__REVOKE_REPLY__INIT;
	r.newly_revoked = (int)j->n1;
	r.revoked_total = C->revoked ? (uint32_t)pki_revoked_count(C->revoked) : 0;
	r.reload_interval_seconds = (uint32_t)C->cfg.revocation_interval;
	call_reply(c, &r.base);
}

void
admin_revoke(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__RevokeRequest, mxfleet__v1__revoke_request, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (!pki_serial_ok(req->serial))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "serial: upper-case hex, 1 to 40 digits, "
		    "as 'openssl x509 -serial' prints it");
	else {
		call_submit_new(c, admin_revoke_work, admin_revoke_answer, req, admin_free_revoke_request);
		return;
	}
	admin_free_revoke_request(req);
}

/* ---- Admin: recipient checks (backscatter; schema/007) ---- */

void
admin_set_recipient_check(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0)
		;
	else if (req->domain[0] == '\0' || !db_recipient_mode_ok(req->mode))
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and a mode (any, list or "
		    "verify) are required");
	else {
		admin_change(c, admin_recipient_check_work, req, admin_free_recipients_req,
		    xasprintf("event=recipient_check_set domain=%s mode=%s", req->domain, req->mode));
		return;
	}
	admin_free_recipients_req(req);
}

/* The request's addresses as local parts of its domain, or the call
 * finished with INVALID_ARGUMENT naming the first bad one. */
static char **
admin_recipient_locals(struct grpc_call *c, const Mxfleet__V1__DomainRecipients *req)
{
	char why[300], text[700];
	char **v;

	if (req->domain[0] == '\0' || req->n_local_parts == 0) {
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "a domain and addresses are required");
		return NULL;
	}
	v = xcalloc(req->n_local_parts, sizeof(*v));
	for (size_t i = 0; i < req->n_local_parts; i++) {
		v[i] = xmalloc(RCPT_ADDR_LOCAL_MAX + 1);
		if (rcpt_addr_local(req->local_parts[i], req->domain, v[i], RCPT_ADDR_LOCAL_MAX + 1,
		    why, sizeof(why)) < 0) {
			snprintf(text, sizeof(text), "%.300s: %s", req->local_parts[i], why);
			grpc_call_finish(c, GRPC_INVALID_ARGUMENT, text);
			for (size_t j = 0; j <= i; j++)
				free(v[j]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void
admin_change_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, int add)
{
	char **locals;
	UNPACK(Mxfleet__V1__DomainRecipients, mxfleet__v1__domain_recipients, c, msg, len);
	C->m.calls++;
	if (call_check_admin(c) < 0 || (locals = admin_recipient_locals(c, req)) == NULL) {
		admin_free_recipients_req(req);
		return;
	}
	struct call_job *j = call_job_new(c, add ? admin_recipients_add_work :
	    admin_recipients_remove_work, admin_change_answer, req, admin_free_recipients_req);
	j->locals = locals;
	j->nlocals = req->n_local_parts;
	j->log = xasprintf("event=recipients_%s domain=%s count=%zu", add ? "added" : "removed",
	    req->domain, req->n_local_parts);
	call_submit(c, j);
}

void
admin_add_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 1);
}

void
admin_remove_recipients(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg)
{
	admin_change_recipients(c, msg, len, 0);
}
