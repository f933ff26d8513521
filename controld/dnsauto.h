/* Automatic DNS pushes (docs/dns.md, "Push"): every dns.auto_push_interval
 * seconds, on the DNS workers, each hosted domain whose settings say
 * publish is pushed as `mailctl dns push` would (nothing is sent when the
 * zone already holds its records). One controld replica at a time: the
 * round takes a PostgreSQL advisory lock and a replica that finds it held
 * skips its round. Off when the interval is 0 (the default). */
#ifndef CONTROLD_DNSAUTO_H
#define CONTROLD_DNSAUTO_H

#include <event2/event.h>

void dnsauto_start(struct event_base *base);
void dnsauto_stop(void);

#endif
