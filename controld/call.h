/* A gRPC call of controld's services while its database work runs (the
 * loop's side of dbq.h): the jobs a call waits for, answered in the order
 * they were made (a stream's acks follow its batches), and dropped safely
 * when the call ended first. The helpers every service uses to answer. */
#ifndef CONTROLD_CALL_H
#define CONTROLD_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "dbq.h"
#include "grpc.h"
#include "mxfleet.pb-c.h"

struct call_job;

/* What controld keeps of a gRPC call while database work for it runs: the
 * jobs whose answers it waits for, in the order they go out (a stream's
 * acks follow its batches), and its watcher (WatchConfig). Outlives the
 * call when jobs are still running: their results are then dropped. */
struct rpc {
	struct grpc_call	*call;		/* NULL once the call ended */
	struct call_job		*head, *tail;
	int			 half_closed;	/* Stream: finish once every answer is out */
	/* Called once when the call ends, with owner (a WatchConfig's watcher). */
	void			(*on_end)(void *owner);
	void			*owner;
};

/* One piece of database work, on a worker, with what it needs and what it
 * finds. answer runs on the loop once the job and every earlier job of its
 * call are done; the call is NULL when it ended meanwhile. */
struct call_job {
	struct dbq_job		 q;		/* first: the pool hands it back */
	struct rpc		*rpc;		/* NULL: no call waits for it */
	struct call_job		*next;		/* in rpc's list, or the heartbeat list */
	int			 finished;
	void			(*answer)(struct call_job *j, struct grpc_call *c);
	char			*path;		/* the call's method, for logs */
	void			*req;		/* the unpacked request */
	void			(*req_free)(void *req);
	void			*reply;		/* list results, built by the worker */
	void			(*reply_free)(void *reply);
	Mxfleet__V1__ConfigSnapshot *snap;	/* a change: the snapshot that includes it */
	uint64_t		 n1, n2;	/* stored, duplicates; newly revoked; versions */
	char			**locals;	/* recipients add/remove */
	size_t			 nlocals;
	char			**serials;	/* the revoked serials read back */
	size_t			 nserials;
	char			*log;		/* logged when the change is stored */
	int			 status;	/* a refusal made on the loop, in call order */
	char			*status_msg;
	/* Optional: do a and b touch the same rows (key_lo..key_hi)? Then the
	 * later waits (held) until the earlier is done, so that "stored" and
	 * "duplicate" follow the order of the call. */
	int			(*conflicts)(const struct call_job *a, const struct call_job *b);
	uint64_t		 key_lo, key_hi;
	int			 held;
	struct dbq		*queue;		/* NULL: the database workers (C->dbq) */
};

#define UNPACK(type, fn, c, msg, len)						\
	type *req = fn##__unpack(NULL, len, msg);				\
	if (req == NULL) {							\
		grpc_call_finish(c, GRPC_INVALID_ARGUMENT, "cannot parse request");	\
		return;								\
	}


/* Send a message on a call (streams). */
int call_send_msg(struct grpc_call *c, const ProtobufCMessage *msg);
/* Answer a unary call; nothing when the call is gone (c NULL). */
void call_reply(struct grpc_call *c, const ProtobufCMessage *msg);
/* A failed job, answered as the caller should read it (c may be NULL). */
void call_fail_db(struct grpc_call *c, const struct call_job *j);
/* The call's state, made on first use; on_close is call_end. */
struct rpc *call_rpc(struct grpc_call *c);
void call_end(struct grpc_call *c, void *arg);
/* A job for call c; call_submit queues it (UNAVAILABLE, in turn, when the
 * queue is full), or holds it while an earlier job of the call it
 * conflicts with runs. */
struct call_job *call_job_new(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *), void *req, void (*req_free)(void *));
void call_submit(struct grpc_call *c, struct call_job *j);
/* Both at once; takes req (freed with req_free, which may be NULL). */
void call_submit_new(struct grpc_call *c, int (*work)(struct db *, struct dbq_job *),
    void (*answer)(struct call_job *, struct grpc_call *), void *req, void (*req_free)(void *));
void call_job_free(struct call_job *j);
/* The common answer: j->reply, or the failure. */
void call_answer_reply(struct call_job *j, struct grpc_call *c);
/* Finish with status, after the answers of the call's earlier jobs. */
void call_refuse(struct grpc_call *c, int status, const char *msg);
/* A job no call waits for; done frees it with call_job_free. */
struct call_job *call_bg_job_new(int (*work)(struct db *, struct dbq_job *),
    void (*done)(struct dbq_job *));
/* 0, or -1 with the call refused: a host speaks only for itself; the
 * Admin service needs an admin certificate or the local socket. */
int call_check_host(struct grpc_call *c, const char *host_id);
int call_check_admin(struct grpc_call *c);

#endif
