/* A delivery agent's state (deliver.c): its cached connection, TLS
 * contexts, resolver, MTA-STS cache and the TLS policy of the transaction
 * under way. */
#ifndef MXD_DELIVER_INT_H
#define MXD_DELIVER_INT_H

#include <stdint.h>
#include <time.h>

#include "mxd.h"
#include "smtp_client.h"
#include "spool.h"
#include "sts.h"
#include "agent_msg.h"

struct dns_resolver;
struct dns_tlsa_result;
struct sts_cache;
struct sts_policy;

struct deliver_hopdown {
	char	name[300];
	time_t	until;
	char	reason[512];
};

struct deliver {
	struct mxd_config	*cfg;
	struct spool		*sp;
	SSL_CTX			*tls;
	/* one cached connection */
	struct smtp_client	 conn;
	struct smtp_client_source source;	/* delivery.source_ipv4/6 */
	int			 conn_open;
	char			 conn_hop[300];
	time_t			 conn_used;
	struct deliver_hopdown	 down[16];
	size_t			 ndown;
	struct dns_resolver	*dns;		/* direct MX delivery, when configured */
	struct outcome_sink	 outcomes;	/* outbound session records */
	/* the open connection's outbound record */
	char			 conn_domain[256];	/* policy domain ("" for a next hop) */
	char			 conn_mx[256];		/* MX host name */
	char			 open_domain[256], open_mx[256];	/* of the open connection */
	int			 conn_messages, conn_rcpts;
	int			 conn_fallback;
	int			 conn_under_policy;	/* opened under DANE or MTA-STS
							   (closed before that ends) */
	int64_t			 conn_started_ms;
	int			 conn_tls_off;	/* opened without trying TLS, as configured */
	/* TLS reports (deliver_tlsrpt.h): the message being delivered has the
	 * reports' envelope sender; every message tried on the open connection had */
	int			 cur_exempt, conn_exempt;
	/* MTA-STS (RFC 8461) */
	struct sts_cache	*sts;
	SSL_CTX			*tls_verify;	/* PKIX, names checked: under a policy */
	const struct sts_policy	*cur_policy;	/* applied to the connection being made */
	const char		*cur_fetch_failure;	/* RFC 8460 type of a failed fetch */
	/* DANE (RFC 7672) for the MX being tried */
	SSL_CTX			*tls_dane;
	const struct dns_tlsa_result *cur_tlsa;	/* usable, secure TLSA: DANE applies */
	const char		*cur_dane_failure;	/* dnssec-invalid before connecting */
	char			**cur_tlsa_strings;	/* "3 1 1 ab12..." for the record */
	size_t			 cur_ntlsa_strings;
	int			 tls_optional;	/* the message says TLS-Required: No */
	int			 hdr_utf8;	/* SMTPUTF8 mail with UTF-8 in its headers */
	/* The operator's TLS policy for this attempt (tls_policies, controld) */
	enum mxd_tls_mode	 cur_level;
	const char		*cur_level_mode;	/* its name, for replies */
	char			 cur_level_dest[256];	/* the domain or host it is for */
	/* this job's feedback for the scheduler's window (qmgr_sched.h) */
	int			 job_reached;	/* a server answered */
	int			 job_unreached;	/* a connection reached nobody */
	int			 qmgr_fd;	/* the scheduler's socket: progress goes there */
	int			 job_progress;	/* progress sent for this job */
};

/* deliver.c: the transactions. */
/* Route the recipients with routed[i] == 0 and deliver them; st gets
 * their results (idx is scratch space of env->nrcpts). */
void deliver_route(struct deliver *d, const struct spool_env *env, int fd, off_t off, int attempt,
    struct rcpt_state *st, size_t *idx, int *routed);
/* Recipients about to be returned (max_age) under an enforced MTA-STS
 * policy: does the policy still say so (RFC 8461 10.2)? */
void deliver_sts_recheck(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, size_t *idx);
/* RFC 8461 10.2: refetch the cached policies past half their max_age. */
void deliver_sts_refresh(struct deliver *d);
/* TLS-Required: No and UTF-8 headers of the message (d->tls_optional,
 * d->hdr_utf8). */
void deliver_scan_headers(struct deliver *d, const struct spool_env *env, int fd, off_t off);
/* Close the cached connection (QUIT), emitting its outcome record. */
void deliver_close_conn(struct deliver *d);

/* deliver_outcome.c: the outbound session record of connection c
 * (connected: a server answered; failure: why it ended, NULL: fine). */
void deliver_outcome(struct deliver *d, const struct smtp_client *c, int connected,
    const char *failure);
/* The RFC 8460 result type of a DANE or PKIX (MTA-STS) verification that
 * failed on c, or NULL when it held. */
const char *deliver_dane_failure(const struct smtp_client *c, int connected);
const char *deliver_policy_failure(const struct smtp_client *c, int connected);

#endif
