/* State shared by the parts of one mxd worker process. */
#ifndef MXD_MXD_H
#define MXD_MXD_H

#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>
#include <time.h>

#include "mxd_config.h"
#include "outcome.h"
#include "spool.h"
#include "spool_commit.h"
#include "tls.h"

struct smtp_session;

struct mxd_ipcount {
	struct mxd_ipcount	*next;
	char			 ip[64];
	int			 n;
};

#define MXD_IPCOUNT_BUCKETS	1024

struct mxd_worker {
	struct event_base	 *base;
	struct mxd_config	 *cfg;
	struct tls_server	 *tls;
	struct spool		 *spool;
	struct spool_committer	 *committer;
	struct event		 *commit_ev;
	struct evconnlistener	**listeners;
	size_t			  nlisteners;
	struct event		 *sigterm_ev, *sigint_ev, *sighup_ev, *sigusr1_ev, *deadline_ev;
	struct smtp_session	 *sessions;	/* all live sessions */
	int			  nsessions;
	int			  shutting_down;	/* SIGTERM: finish transactions, then exit */
	int			  draining;	/* replaced by a reload: exit when idle */
	struct mxd_ipcount	 *ipcounts[MXD_IPCOUNT_BUCKETS];
	struct outcome_sink	  outcomes;	/* to the uploader, if configured */
	struct rcpt_prober	 *prober;	/* recipient_check verify: made at first use */
	struct ptr_resolver	 *ptr;		/* clients' PTR names: with a resolver only */
};


/* smtp_session.c */
void smtp_session_accept(struct mxd_worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen);
/* Shutdown: close idle sessions now, let those in a transaction finish. */
void smtp_session_shutdown_all(struct mxd_worker *w);
/* Deadline passed: close every session. */
void smtp_session_close_all(struct mxd_worker *w);

/* uploader.c: the control-plane link (journal, Collector.Stream, Fleet). */
struct uploader_creds {
	SSL_CTX		*tls;		/* loaded by the master, before dropping root */
	char		 cn[256];	/* the certificate's CN: default host_id */
	time_t		 not_after;
	/* mxd_identity.h: built by the master at start and at each reload;
	 * identity_fd brings the uploader each reload's. */
	const uint8_t	*identity;
	size_t		 identity_len;
	int		 identity_fd;
};
void uploader_main(struct mxd_config *cfg, int fd, uint64_t *shared_dropped,
    const struct uploader_creds *creds) __attribute__((noreturn));

/* qmgr.c: the scheduler process's main loop (mxd-qmgr). Never returns. */
void qmgr_main(struct mxd_config *cfg, struct spool *sp, int notify_fd,
    const struct outcome_sink *outcomes) __attribute__((noreturn));
/* smtp/deliver_agent.c: the delivery agents' SSL contexts, made once by
 * the scheduler and inherited by every agent it forks (an OpenSSL 3
 * context costs milliseconds: not per agent). */
struct deliver_tls {
	SSL_CTX	*plain;		/* opportunistic STARTTLS */
	SSL_CTX	*verify;	/* PKIX, names checked (MTA-STS, verify/secure) */
	SSL_CTX	*dane;		/* DANE (with a resolver only) */
};
void deliver_tls_new(const struct mxd_config *cfg, struct deliver_tls *t);
void deliver_tls_free(struct deliver_tls *t);
/* A delivery agent (mxd-smtp), forked by the scheduler, serving the jobs
 * it reads on fd (agent_msg.h). Never returns. */
void deliver_agent_main(struct mxd_config *cfg, struct spool *sp, int fd,
    const struct outcome_sink *outcomes, const struct deliver_tls *tls)
    __attribute__((noreturn));

#endif
