/* The inbound TLS view in controld (docs/reports.md, "Inbound TLS view"):
 * the Admin call InboundTls (mailctl tls inbound), and a periodic job on
 * the database workers that reads the last inbound.window seconds every
 * inbound.refresh_interval seconds, keeps the counts /metrics serves (the
 * loop never waits for the database), and logs
 * event=inbound_tls_failure_rate once when a sender domain's share of
 * failed STARTTLS handshakes crosses inbound.failure_threshold. Every
 * replica runs the job and logs for itself. */
#ifndef CONTROLD_INBOUND_H
#define CONTROLD_INBOUND_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "grpc.h"

/* The inbound group of controld.conf (docs/control-plane.md). */
struct inbound_config {
	long long	window;			/* seconds read for metrics and the warning */
	long long	refresh_interval;	/* seconds between reads */
	double		failure_threshold;	/* failed / attempted, 0 .. 1 */
	long long	min_attempts;		/* fewer attempts never warn */
};

/* Defaults, then the group g (NULL: absent). 0, or -1 with err set. */
int inbound_config_load(const config_setting_t *g, struct inbound_config *cfg,
    struct conf_err *err);

void inbound_admin(struct grpc_call *c, const uint8_t *msg, size_t len, void *arg);
void inbound_start(struct event_base *base);
void inbound_stop(void);
/* The cached counts, as Prometheus text (on the loop, no database). */
void inbound_metrics(struct evbuffer *b);

#endif
