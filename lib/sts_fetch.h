/* MTA-STS (RFC 8461 3.3), the I/O half: fetch the policy file from
 * https://mta-sts.<domain>/.well-known/mta-sts.txt with libcurl and parse it
 * with sts_policy_parse.
 *
 * What RFC 8461 3.3 asks, and what each refusal is called in an RFC 8460
 * report: HTTPS only; the certificate PKIX-valid for mta-sts.<domain>
 * (else sts-webpki-invalid); no redirect followed (a 3xx is a failure); HTTP
 * 200 only; Content-Type text/plain (parameters such as charset allowed);
 * the body at most STS_POLICY_MAX bytes (the transfer is aborted past it);
 * a total time bound. Those are sts-policy-fetch-error; a body that does not
 * parse is sts-policy-invalid.
 *
 * Blocking: the caller runs it in a worker thread. Thread-safe: each call has
 * its own curl handle; curl's global state is set up once. */
#ifndef MXFLEET_STS_FETCH_H
#define MXFLEET_STS_FETCH_H

#include <stddef.h>

#include "sts.h"

#define STS_FETCH_REASON_MAX	320
#define STS_FETCH_TIMEOUT_MS	60000	/* RFC 8461 3.3: "a timeout of 60 s" */

enum sts_fetch_result {
	STS_FETCH_OK = 0,
	STS_FETCH_ERROR,	/* sts-policy-fetch-error: network, HTTP, type, size */
	STS_FETCH_WEBPKI,	/* sts-webpki-invalid: certificate not PKIX-valid */
	STS_FETCH_INVALID,	/* sts-policy-invalid: the body does not parse */
};

struct sts_fetch_opts {
	const char	*ca_file;	/* PEM CA bundle; NULL: the system's */
	long		 timeout_ms;	/* whole transfer; 0: STS_FETCH_TIMEOUT_MS */
	/* Tests: connect here instead of resolving mta-sts.<domain> (an IP
	 * address or host name) and/or on this port (0: 443). The URL, SNI,
	 * Host header and certificate name check stay mta-sts.<domain>. */
	const char	*connect_host;
	unsigned	 connect_port;
};

struct sts_fetch_out {
	enum sts_fetch_result	 result;
	struct sts_policy	*policy;	/* STS_FETCH_OK only */
	char			*body;		/* what was served, NUL-terminated,
						 * on OK and INVALID; else NULL */
	size_t			 body_len;
	long			 http_status;	/* 0 if no response */
	int			 type_refused;	/* STS_FETCH_ERROR because the
						 * Content-Type is not text/plain */
	char			 reason[STS_FETCH_REASON_MAX];	/* "" on OK */
};

/* Fetch and parse the policy of domain (ASCII, A-labels, no trailing dot
 * needed). opts may be NULL. Always fills *out; returns out->result. Free
 * with sts_fetch_out_free. */
enum sts_fetch_result sts_fetch(const char *domain, const struct sts_fetch_opts *opts,
    struct sts_fetch_out *out);
void sts_fetch_out_free(struct sts_fetch_out *out);

/* sts_fetch in the shape of the cache's fetch callback (sts_fetch_fn in
 * sts_cache.h): arg is a const struct sts_fetch_opts * or NULL. */
void sts_fetch_cb(void *arg, const char *domain, struct sts_fetch_out *out);

/* The RFC 8460 result-type of a failure ("sts-policy-fetch-error",
 * "sts-webpki-invalid", "sts-policy-invalid"); NULL for STS_FETCH_OK. */
const char *sts_fetch_result_type(enum sts_fetch_result r);

#endif
