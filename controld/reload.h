/* controld on SIGHUP (docs/control-plane.md, "Reload (SIGHUP)"): controld.conf
 * is read again and what can change under running calls is applied: the TLS
 * certificate, key and CA of the gRPC port (for connections accepted from
 * then on), log_level and tls.revocation_interval. Any other key that differs
 * from the file controld started with is logged as needing a restart. A file
 * that does not load, or TLS files that do not make a context, change
 * nothing: the reason is logged and the old settings stay.
 *
 * Event loop thread only. */
#ifndef CONTROLD_RELOAD_H
#define CONTROLD_RELOAD_H

#include "controld.h"

/* Keep path and the file as it is now, to compare later reloads with. */
void reload_init(const char *path);
/* Re-read the file and apply it to d; sends RELOADING=1 and READY=1. */
void reload_run(struct controld *d);
void reload_free(void);

#endif
