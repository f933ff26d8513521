/* mxd's `control` group: how mxd reaches controld (docs/mxd.md, "control").
 * `server` names one controld, `servers` several replicas tried in turn
 * (mxd/uploader/ctlservers.h). */
#ifndef MXD_CONFIG_CONTROL_H
#define MXD_CONFIG_CONTROL_H

#include "conf.h"

struct mxd_config;

/* At most this many entries in control.servers. */
#define MXD_CONTROL_SERVERS_MAX	16

/* Parse the group into cfg's control_* fields. 0, or -1 with err. */
int mxd_config_control(struct mxd_config *cfg, const config_setting_t *g, struct conf_err *err);
void mxd_config_control_free(struct mxd_config *cfg);

#endif
