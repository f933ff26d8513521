/* The network side of sending TLS reports (docs/reports.md, "Sending"):
 * the rua lookup, SMTP submission to an mxd and the HTTPS POST. Blocking,
 * bounded by timeouts: called on controld's report worker, never on the
 * event loop. Each returns 0, or -1 with one printable line in err (remote
 * text quoted with log_quote). */
#ifndef CONTROLD_RPTSEND_NET_H
#define CONTROLD_RPTSEND_NET_H

#include <stddef.h>

#include "dns.h"
#include "rptsend_conf.h"
#include "tlsrpt_txt.h"

#define RPTSEND_ERR_MAX	512

/* The rua of `_smtp._tls.<domain>` (RFC 8460 3): 1 with *out, 0 when the
 * domain publishes none (no record, or nothing we can send to), -1 when the
 * lookup failed (try later). */
int rptsend_net_rua(const struct dns_resolver *res, const char *domain,
    struct tlsrpt_txt **out, char *err, size_t errsz);

/* Hand msg to the first of cfg->submit that takes it: EHLO helo, STARTTLS
 * when offered, MAIL FROM:<from>, RCPT TO:<to>, DATA (dot-stuffed). */
int rptsend_net_smtp(const struct rptsend_config *cfg, const char *helo, const char *from,
    const char *to, const char *msg, size_t len, char *err, size_t errsz);

/* POST body as application/tlsrpt+gzip to url (https only, certificate
 * verified, no redirect followed: a 3xx is a failure); 2xx is success. */
int rptsend_net_https(const struct rptsend_config *cfg, const char *url,
    const unsigned char *body, size_t len, char *err, size_t errsz);

#endif
