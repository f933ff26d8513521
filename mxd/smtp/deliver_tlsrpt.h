/* What an outbound session's RFC 8460 record says beyond the TLS result
 * (docs/reports.md, "Aggregation"): whether the session carried TLS reports
 * (no reports about reports), and the failure text a report may show. Pure:
 * no I/O, no state. */
#ifndef MXD_DELIVER_TLSRPT_H
#define MXD_DELIVER_TLSRPT_H

#include <stddef.h>

/* The result type of a session that did not try TLS because the operator
 * said so (next_hop_tls = none, a tls_policies mode "none"): not an RFC
 * 8460 result, so the aggregation counts it neither as a success nor as a
 * failure (RFC 8460 counts TLS sessions, and this was none). */
#define DELIVER_TLS_NOT_USED	"tls-not-used"

/* The longest failure-reason-code we record, without its NUL. */
#define DELIVER_TLSRPT_REASON_MAX	255

/* 1 when tlsrpt_sender (ConfigSnapshot.tlsrpt_sender) is set and sender (an
 * envelope sender, "" for the null sender) is it, ignoring ASCII case. */
int deliver_tlsrpt_sender_is(const char *sender, const char *tlsrpt_sender);

/* RFC 8460 4.4 failure-reason-code: the TLS error (tls_reason, may be NULL
 * or "") and mxd's error text (failure, may be NULL), as "TLS: TEXT" when
 * TEXT does not already hold TLS, else the one that is set. Printable
 * ASCII only (others become '?', runs of white space one space), at most
 * DELIVER_TLSRPT_REASON_MAX bytes; "" when neither is set. out must have
 * room for DELIVER_TLSRPT_REASON_MAX + 1 bytes (outsz smaller cuts more). */
void deliver_tlsrpt_reason(char *out, size_t outsz, const char *tls_reason,
    const char *failure);

#endif
