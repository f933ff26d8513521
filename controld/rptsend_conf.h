/* The `send` group inside controld.conf's `reports` group (docs/reports.md,
 * "Sending"): when and how controld sends the TLS reports it aggregates.
 * Checked when the file is read. Read-only for the process once loaded. */
#ifndef CONTROLD_RPTSEND_CONF_H
#define CONTROLD_RPTSEND_CONF_H

#include <libconfig.h>
#include <time.h>

#include "conf.h"

#define RPTSEND_SUBMIT_MAX	8

struct rptsend_config {
	int		 enabled;		/* the daily round runs (default off) */
	char		*submit[RPTSEND_SUBMIT_MAX];	/* mxd SMTP "host:port", in order */
	size_t		 nsubmit;
	long long	 interval;		/* seconds between rounds (60) */
	long long	 jitter;		/* planning starts at 00:00 UTC + this (900) */
	long long	 window;		/* deliveries spread over so many seconds (14400) */
	long long	 retry;			/* first retry after so many seconds, doubling (600) */
	long long	 retry_max;		/* at most so many seconds between tries (7200) */
	long long	 give_up;		/* failed after so long since the first try (86400) */
	long long	 timeout;		/* one SMTP or HTTPS exchange, seconds (60) */
	int		 report_without_failures;	/* send a day with only successes (true) */
	char		*https_ca_file;		/* CA bundle for https: rua (NULL: system) */
};

/* g may be NULL (absent): the defaults. -1 with err filled. */
int rptsend_config_load(const config_setting_t *g, struct rptsend_config *cfg,
    struct conf_err *err);
void rptsend_config_free(struct rptsend_config *cfg);

/* The schedule of one delivery, without I/O (the caller's clock):
 * A try at now failed after `attempts` earlier tries, the first of them at
 * first (0: none, this was the first): 1 when it is given up (give_up
 * seconds after the first try), else 0 with *next = now + retry doubled per
 * earlier try, at most retry_max. */
int rptsend_config_retry(const struct rptsend_config *cfg, int attempts, time_t first,
    time_t now, time_t *next);
/* When the delivery of report_id to uri planned at `planned` is due: a
 * point of [planned, planned + window) chosen by a hash of both (FNV-1a),
 * the same on every replica. */
time_t rptsend_config_due(const struct rptsend_config *cfg, const char *report_id,
    const char *uri, time_t planned);

#endif
