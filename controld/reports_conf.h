/* The `reports` group of controld.conf (docs/reports.md, "Aggregation"):
 * who the TLS reports we send say they come from. Checked when the file is
 * read, so a report is never built with a name a receiver would refuse. */
#ifndef CONTROLD_REPORTS_CONF_H
#define CONTROLD_REPORTS_CONF_H

#include <libconfig.h>

#include "conf.h"
#include "rptsend_conf.h"

#define REPORTS_CONF_TEXT_MAX	256

struct reports_config {
	char	*organization_name;	/* organization-name */
	char	*contact_info;		/* contact-info: mailto:, https: or an address */
	char	*submitter;		/* a domain: report-id and the file name */
	char	*mail_from;		/* envelope sender and From of mailed reports,
					 * lower case, in the submitter's domain (NULL:
					 * unset; ConfigSnapshot.tlsrpt_sender) */
	struct rptsend_config send;	/* reports.send: sending (rptsend_conf.h) */
};

/* The group (NULL: absent, every field NULL). -1 with err filled. */
int reports_config_load(const config_setting_t *g, struct reports_config *cfg,
    struct conf_err *err);
/* NULL when the three are set, else what to set (one line). */
const char *reports_config_missing(const struct reports_config *cfg);
void reports_config_free(struct reports_config *cfg);

#endif
