/* An SMTP TLS report (RFC 8460 section 4, with erratum 6241: mx-host is an
 * array), as controld builds it for sending (tlsrpt_build.c) and as it reads
 * the reports other domains send to ours (tlsrpt_parse.c). Both are I/O-free:
 * bytes or a struct in, a struct or bytes out, so each is unit-tested and
 * fuzzed alone. Aggregation (SQL), sending (mail, HTTPS) and storing live
 * elsewhere.
 *
 * Strings are NUL-terminated UTF-8 owned by the struct; a field that is
 * absent is NULL (strings) or 0 with a NULL array. Times are Unix seconds
 * (UTC). Every rejection comes with a one-line reason in the caller's err
 * buffer (TLSRPT_ERR_MAX bytes are always enough); the reason never quotes
 * more than a few dozen bytes of the input. */
#ifndef MXFLEET_TLSRPT_H
#define MXFLEET_TLSRPT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TLSRPT_ERR_MAX	256

/* One failure-details entry (RFC 8460 4.3/4.4): every field but the count
 * identifies the group. */
struct tlsrpt_failure {
	char		*result_type;		/* e.g. "validation-failure"; required */
	char		*sending_mta_ip;
	char		*receiving_mx_hostname;
	char		*receiving_mx_helo;
	char		*receiving_ip;
	char		*additional_information;	/* a URI */
	char		*failure_reason_code;
	uint64_t	 failed_session_count;
};

/* One policies[] entry. policy_type is "tlsa", "sts" or "no-policy-found"
 * (a received report may carry another string: kept as sent). */
struct tlsrpt_policy {
	char			*policy_type;
	char			**policy_string;	/* STS: the policy lines; TLSA: the records */
	size_t			 n_policy_string;
	char			*policy_domain;
	char			**mx_host;		/* erratum 6241: an array */
	size_t			 n_mx_host;
	uint64_t		 total_success;		/* total-successful-session-count */
	uint64_t		 total_failure;		/* total-failure-session-count */
	struct tlsrpt_failure	*failures;
	size_t			 n_failures;
};

struct tlsrpt_report {
	char			*organization_name;
	time_t			 begin;			/* date-range start-datetime */
	time_t			 end;			/* date-range end-datetime */
	char			*contact_info;
	char			*report_id;
	struct tlsrpt_policy	*policies;
	size_t			 n_policies;
};

/* Frees everything the report owns (not the struct itself) and zeroes it.
 * NULL and an all-zero report are fine. */
void	tlsrpt_report_free(struct tlsrpt_report *r);

/* ---- Building (tlsrpt_build.c) ---------------------------------------- */

/* The report as JSON exactly per RFC 8460 4: member names as the RFC spells
 * them, date-time in RFC 3339 with "Z", contact-info always a string, no
 * null values, and the optional members the RFC says to omit left out when
 * absent (failure-details of a policy without failures, mx-host when no MX,
 * the optional failure fields when NULL). Returns 0 and a malloc'd,
 * NUL-terminated *json (length in *len), or -1 with err set when the report
 * lacks a required member. */
int	tlsrpt_build_json(const struct tlsrpt_report *r, char **json, size_t *len,
	    char *err, size_t errlen);

/* gzip (RFC 1952) of data; 0, or -1 with err. *out is malloc'd. */
int	tlsrpt_gzip(const void *data, size_t len, unsigned char **out, size_t *outlen,
	    char *err, size_t errlen);

/* RFC 8460 5.1 file name: submitter!policy-domain!begin!end[!unique-id].json.gz
 * (begin/end as Unix seconds; gz = 1 adds ".gz"). unique_id may be NULL.
 * 0, or -1 when it does not fit or a part holds '!' or '/'. */
int	tlsrpt_filename(const char *submitter, const char *policy_domain, time_t begin,
	    time_t end, const char *unique_id, int gz, char *out, size_t outlen);

/* ---- Reading received reports (tlsrpt_parse.c) ------------------------ */

/* Caps on what a received report may cost; 0 in a field = the default. */
struct tlsrpt_parse_limits {
	size_t	max_inflated;	/* bytes after gunzip; default 4 MiB */
	size_t	max_policies;	/* default 1000 */
	size_t	max_failures;	/* per policy; default 10000 */
	size_t	max_strings;	/* policy-string / mx-host entries; default 1000 */
	size_t	max_values;	/* JSON values of any kind in the whole report, each an
				 * allocation in jansson's tree; default 300000 */
};

enum tlsrpt_parse_err {
	TLSRPT_PARSE_OK = 0,
	TLSRPT_PARSE_GZIP = -1,		/* truncated or corrupt gzip */
	TLSRPT_PARSE_TOO_BIG = -2,	/* over a limit (zip bomb, huge arrays) */
	TLSRPT_PARSE_JSON = -3,		/* not JSON */
	TLSRPT_PARSE_SHAPE = -4,	/* JSON, but not a report (wrong types, missing members) */
};

/* Reads one received report: gzip (detected by its magic) or plain JSON.
 * Tolerant of what real senders send: no mx-host (Microsoft), failure
 * details without sending-mta-ip/receiving-ip, date-times without a zone
 * (read as UTC) or with an offset, mx-host as a string or an array, a
 * report-id that is not a Message-ID, contact-info absent or not a string
 * (dropped), unknown members (ignored), counts given as numbers in
 * strings. Refused (a negative enum tlsrpt_parse_err, err says why and
 * where): anything over the limits, no policies array, a policy without
 * policy-type or summary, counts that are negative or not integers.
 * On success *out is filled (free with tlsrpt_report_free); on failure it
 * is left zeroed. */
int	tlsrpt_parse(const void *data, size_t len, const struct tlsrpt_parse_limits *lim,
	    struct tlsrpt_report *out, char *err, size_t errlen);

#endif
