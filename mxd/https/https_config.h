/* MTA-STS hosting's part of mxd's configuration (docs/dns.md#mta-sts-hosting,
 * docs/mxd.md): where mxd-https listens (mta_sts_listen), the certificates
 * only the policy hosts use (mta_sts_certs), and the policies themselves,
 * which come from controld's snapshot (ConfigSnapshot.mta_sts) and so are
 * served from the cached copy while controld is down. */
#ifndef MXD_HTTPS_CONFIG_H
#define MXD_HTTPS_CONFIG_H

#include "conf.h"
#include "mxd_config.h"
#include "mxfleet.pb-c.h"

/* The keys mta_sts_listen and mta_sts_certs of the file's top level; an
 * absent mta_sts_listen is every SMTP listen address on port 443 (listen
 * must be parsed first). 0, or -1 with err. */
int https_config_parse(struct mxd_config *cfg, const config_setting_t *root,
    struct conf_err *err);
/* The snapshot's policies replace the configuration's. A policy whose domain
 * is not a host name, or comes twice, is logged and left out. */
void https_config_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s);
/* The policy served for a Host (lower case, no port, no final dot):
 * "mta-sts.<domain>" of a policy's domain; NULL for any other name. */
const struct mxd_mta_sts *https_config_policy(const struct mxd_config *cfg, const char *host);
void https_config_free(struct mxd_config *cfg);

#endif
