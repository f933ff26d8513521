/* controld's HTTP port: /metrics (Prometheus text) and /healthz (a probe
 * of the database, answered within CONTROLD_HEALTH_WAIT_MS). */
#ifndef CONTROLD_HTTP_H
#define CONTROLD_HTTP_H

#include <event2/http.h>

void http_metrics(struct evhttp_request *req, void *arg);
void http_healthz(struct evhttp_request *req, void *arg);
void http_health_drain(void);

#endif
