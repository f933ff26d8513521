/* MTA-STS (RFC 8461), the I/O-free half: the `_mta-sts.<domain>` TXT record,
 * the policy file served at https://mta-sts.<domain>/.well-known/mta-sts.txt,
 * and MX host matching. Bytes in, structs out: the DNS lookup and the HTTPS
 * fetch live elsewhere, so everything here is fuzzed and unit-tested alone.
 *
 * Every rejection comes with a one-line reason in the caller's err buffer
 * (STS_ERR_MAX bytes are always enough), naming the line or field and what is
 * wrong, quoting the offending text truncated and made printable. */
#ifndef MXFLEET_STS_H
#define MXFLEET_STS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define STS_ERR_MAX		192		/* err buffer size that never truncates */
#define STS_ID_MAX		32		/* 3.1: id = 1*32(ALPHA / DIGIT) */
#define STS_POLICY_MAX		65536		/* 3.3: suggested body cap, 64 KiB */
#define STS_MAX_AGE_MAX		31557600	/* 3.2: max_age maximum, one year */

enum sts_err {
	STS_OK = 0,
	STS_ERR_SYNTAX = -1,		/* not what RFC 8461 allows; err says why */
	STS_ERR_TOO_LARGE = -2,		/* policy body over STS_POLICY_MAX */
	STS_ERR_NO_RECORD = -3,		/* select: no RR begins with v=STSv1 */
	STS_ERR_MULTIPLE = -4,		/* select: more than one does */
};

/* ---- `_mta-sts` TXT record (3.1) ---- */

struct sts_txt {
	char	id[STS_ID_MAX + 1];	/* the policy instance id, NUL-terminated */
};

/* One TXT RR's RDATA in wire form: one or more <character-string>s, each a
 * length octet and that many octets (RFC 1035 3.3.14). With ldns that is what
 * ldns_rr_rdata2buffer_wire() writes, or the rdfs' data laid end to end. */
struct sts_txt_rdata {
	const uint8_t	*data;
	size_t		 len;
};

/* A whole record, already concatenated. Returns STS_OK or STS_ERR_SYNTAX;
 * out is filled only on STS_OK (else its id is ""). */
int sts_txt_parse_record(const char *rec, size_t len, struct sts_txt *out,
    char *err, size_t errsz);
/* One RR: its character-strings are concatenated without adding spaces
 * (3.1), then parsed as above. Malformed RDATA is STS_ERR_SYNTAX. */
int sts_txt_parse_rdata(const uint8_t *rdata, size_t len, struct sts_txt *out,
    char *err, size_t errsz);
/* The whole TXT answer for `_mta-sts.<domain>`: RRs that do not begin with
 * v=STSv1 are discarded; exactly one must remain and it must be valid.
 * STS_ERR_NO_RECORD, STS_ERR_MULTIPLE and STS_ERR_SYNTAX all mean "no
 * MTA-STS policy available" (3.1), which does not by itself drop a cached
 * policy (5.1): the caller keeps the distinction for its logs and reports.
 * Either from each RR's RDATA, or from records already concatenated (what
 * dns_txt() hands out: recs[i] is lens[i] bytes, need not be NUL-terminated). */
int sts_txt_select_rdata(const struct sts_txt_rdata *rrs, size_t nrrs, struct sts_txt *out,
    char *err, size_t errsz);
int sts_txt_select_records(const char *const *recs, const size_t *lens, size_t n,
    struct sts_txt *out, char *err, size_t errsz);

/* ---- policy file (3.2) ---- */

enum sts_mode {
	STS_MODE_ENFORCE = 1,
	STS_MODE_TESTING,
	STS_MODE_NONE,
};

/* Read-only for callers; made by sts_policy_parse, freed by sts_policy_free. */
struct sts_policy {
	enum sts_mode	 mode;
	uint32_t	 max_age;	/* seconds, 0..STS_MAX_AGE_MAX */
	int		 max_age_capped; /* published value was larger; capped */
	char		**mx;		/* patterns, trailing dot removed, case kept */
	size_t		 n_mx;
	char		**lines;	/* every non-blank line as published, without
					 * its line ending: the RFC 8460 policy-string */
	size_t		 n_lines;
};

/* Parse a fetched policy body (len bytes, need not be NUL-terminated).
 * Returns STS_OK and *out, or STS_ERR_TOO_LARGE / STS_ERR_SYNTAX with a
 * reason in err and *out == NULL. */
int sts_policy_parse(const char *body, size_t len, struct sts_policy **out,
    char *err, size_t errsz);
void sts_policy_free(struct sts_policy *p);

/* The canonical policy text (CRLF lines: version, mode, each mx, max_age);
 * parsing it gives back the same mode, max_age and mx list. Appended to out. */
void sts_policy_render(const struct sts_policy *p, struct buf *out);

/* For the RFC 8460 report (and the outcome record): "policy-string" is the
 * policy's lines, "mx-host" its mx patterns (erratum 6241: an array). Both
 * point into p and live as long as it does. */
const char *const *sts_policy_strings(const struct sts_policy *p, size_t *n);
const char *const *sts_policy_mx_hosts(const struct sts_policy *p, size_t *n);

const char *sts_mode_name(enum sts_mode m);	/* "enforce", "testing", "none" */

/* ---- MX host validation (4.1) ---- */

/* 1 if mx_host matches at least one of the policy's mx patterns, else 0.
 * mx_host must be the MX record's exchange name as DNS returned it (a
 * trailing dot is fine), never what it resolves to through a CNAME: see
 * sts_mx_pattern_match. Case-insensitive. */
int sts_mx_match(const struct sts_policy *p, const char *mx_host);
/* One pattern: "mail.example.com" matches only itself; "*.example.com"
 * matches exactly one extra leftmost label ("mx1.example.com"), never
 * "example.com" nor "a.b.example.com". */
int sts_mx_pattern_match(const char *pattern, const char *mx_host);

#endif
