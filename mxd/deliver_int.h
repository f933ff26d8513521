/* The delivery process's state, shared by its parts: deliver.c (the loop,
 * routing, MX and TLS policy), deliver_dsn.c (notifications). */
#ifndef MXD_DELIVER_INT_H
#define MXD_DELIVER_INT_H

#include <stdint.h>
#include <time.h>

#include "mxd.h"
#include "smtp_client.h"
#include "spool.h"
#include "sts.h"

struct dns_resolver;
struct dns_tlsa_result;
struct sts_cache;
struct sts_policy;

struct deliver_entry {
	char	id[SPOOL_ID_MAX];
	time_t	due;
	int	attempts;
	int	delay_notified;
	time_t	last_attempt;	/* 0: not tried yet */
	char	last_reply[256];	/* why the last attempt deferred, one line */
};

struct deliver_hopdown {
	char	name[300];
	time_t	until;
	char	reason[512];
};

struct deliver {
	struct mxd_config	*cfg;
	struct spool		*sp;
	int			 notify_fd;
	SSL_CTX			*tls;
	struct deliver_entry	*q;
	size_t			 nq, capq;
	/* one cached connection */
	struct smtp_client	 conn;
	struct smtp_client_source source;	/* delivery.source_ipv4/6 */
	int			 conn_open;
	char			 conn_hop[300];
	time_t			 conn_used;
	struct deliver_hopdown	 down[16];
	size_t			 ndown;
	char			 pipebuf[4096];
	size_t			 pipelen;
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
	/* the queue-control socket (deliver_queue.c) */
	int			 qctl_fd;	/* listening; -1: none */
	char			 qctl_path[108];	/* sun_path: spool_dir/queue.sock */
};

/* RCPT_FINAL: finished on an earlier attempt (its spool status is DONE):
 * not tried, not reported again. */
enum rcpt_result { RCPT_PENDING, RCPT_DONE, RCPT_BOUNCE, RCPT_DEFER, RCPT_FINAL };

struct rcpt_state {
	enum rcpt_result	 result;
	int			 code;
	char			*reply;		/* full reply text */
	char			*hop;		/* next hop as configured, for logs */
	char			*mta;		/* its host name, for DSNs */
	int			 dsn_passed;	/* the next hop took our NOTIFY/ORCPT
						   (it offered DSN): it notifies now */
	int			 lmtp;		/* delivered to the final store */
	const char		*transfer;	/* "DATA" or "BDAT" (CHUNKING), for logs */
	char			 sts_id[STS_ID_MAX + 1];	/* deferred under this enforced
							   MTA-STS policy (recheck it
							   before returning, RFC 8461 10.2) */
	int			 sts_hold;	/* its id changed, the new policy
						   could not be had: do not return yet */
	int			 stored;	/* a return decided on an earlier attempt
						   (spool status BOUNCED): only its DSN
						   is owed, nothing is sent to a hop */
};

/* Queue bookkeeping (deliver.c). */
struct deliver_entry *deliver_find(struct deliver *d, const char *id);
void deliver_add(const char *id, void *arg);
void deliver_drop(struct deliver *d, struct deliver_entry *e);
/* Record a recipient's result; the state keeps its own copies. */
void rcpt_set(struct rcpt_state *r, enum rcpt_result res, int code, const char *text,
    const char *hop, const char *mta);

/* deliver_dsn.c: queue a DSN to the sender for the recipients whose result
 * is `which` (failure, or delay when delayed is set). -1 when one was due
 * but could not be queued (a full spool): the caller keeps the message. */
int deliver_bounce(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st, enum rcpt_result which, int delayed);
/* deliver_dsn.c: queue a success DSN for the delivered (RCPT_DONE)
 * recipients that asked NOTIFY=SUCCESS and whose next hop did not take the
 * request on (dsn_passed 0): "delivered" after LMTP, else "relayed". */
void deliver_success(struct deliver *d, const struct spool_env *env, int fd, off_t off,
    struct rcpt_state *st);

/* deliver_queue.c: the queue-control socket, spool_dir/queue.sock
 * (docs/mxd.md#queue-control). open never fails the process: without the
 * socket it logs a warning and qctl_fd stays -1. serve answers the
 * connections waiting on qctl_fd, each within a bounded time. */
void deliver_queue_open(struct deliver *d);
void deliver_queue_serve(struct deliver *d);
void deliver_queue_close(struct deliver *d);

#endif
