/* DNS lookups for outbound delivery: MX, addresses, TLSA and TXT, on ldns,
 * against the one recursive resolver named in the configuration, with the
 * DNSSEC status of every answer.
 *
 * The resolver is trusted to validate: an answer is secure when it carries
 * the AD bit (so the path to the resolver must be trusted too: loopback, or
 * a resolver on the same host). A SERVFAIL is "bogus" when the resolver says
 * it failed DNSSEC validation (an RFC 8914 extended error 1-12), or, when it
 * gives no extended error, when the same query with CD (checking disabled)
 * succeeds; any other SERVFAIL is a temporary failure.
 *
 * Every call blocks (the caller runs it in a worker thread) and returns
 * within the resolver's bound: timeout_ms x tries, for all the queries it
 * makes together (dns_mx makes up to six: MX, then AAAA and A for an
 * implicit MX, each perhaps followed by a CD query to tell a bogus answer from
 * another SERVFAIL when the resolver gives no extended error). UDP queries
 * are resent every timeout_ms on one connected socket; a truncated answer is
 * asked again over TCP within what is left of the same bound.
 *
 * Thread safety: a struct dns_resolver is read-only after dns_resolver_new;
 * any number of threads may use one at once (each call has its own socket
 * and its own ldns objects). Results belong to the caller.
 *
 * Names are given in ASCII (A-labels for IDNs), with or without the final
 * dot; names in results are lower case, without the final dot. */
#ifndef MXFLEET_DNS_H
#define MXFLEET_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX	1025	/* presentation form with \DDD escapes, NUL */
#define DNS_ERROR_MAX	512

enum dns_result {
	DNS_OK = 0,	/* records found (for dns_mx also a null or implicit MX) */
	DNS_NODATA,	/* the name exists, no records of this type */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_BOGUS,	/* DNSSEC validation failed at the resolver */
	DNS_TEMPFAIL,	/* no answer now: timeout, network error, SERVFAIL that is
			 * not DNSSEC, REFUSED, a malformed answer: try later */
	DNS_INVALID,	/* the name asked for is not a valid domain name */
};

enum dns_sec {
	DNS_SEC_INSECURE = 0,	/* an answer without AD: unsigned or unprovable */
	DNS_SEC_SECURE,		/* AD set: authenticated data or denial */
	DNS_SEC_BOGUS,		/* the answer failed validation (DNS_BOGUS) */
	DNS_SEC_UNKNOWN,	/* no answer (DNS_TEMPFAIL, DNS_INVALID) */
};

/* What every lookup reports besides its records. */
struct dns_status {
	enum dns_result	result;
	enum dns_sec	sec;
	int		rcode;		/* DNS rcode of the last answer, -1 if none */
	int		ede;		/* RFC 8914 info-code of the last answer, -1 if none */
	uint32_t	ttl;		/* smallest TTL of what was used (records, CNAMEs,
					 * or the SOA of a negative answer); 0 if unknown */
	char		canon[DNS_NAME_MAX];	/* the name after CNAMEs ("" if no answer) */
	char		error[DNS_ERROR_MAX];	/* why, for logs and RFC 8460 reports
						 * ("" when DNS_OK, NODATA, NXDOMAIN) */
};

struct dns_resolver;

/* nameserver: "IPv4", "IPv4:port", "IPv6" or "[IPv6]:port" (port 53 when
 * none). timeout_ms: how long to wait for each try (0: 2000); tries: how
 * many UDP sends (0: 3). NULL with a reason in err on a bad argument. */
struct dns_resolver *dns_resolver_new(const char *nameserver, int timeout_ms, int tries,
    char *err, size_t errlen);
void dns_resolver_free(struct dns_resolver *r);
/* The bound of one call in milliseconds: timeout_ms x tries. */
int dns_resolver_bound_ms(const struct dns_resolver *r);

/* ---- MX (RFC 5321 5.1, RFC 7505) */
struct dns_mx {
	uint16_t	pref;
	char		host[DNS_NAME_MAX];
};

struct dns_mx_result {
	struct dns_status st;
	int		null_mx;	/* the domain has only "MX 0 ." (RFC 7505): accepts
					 * no mail; n is 0, result DNS_OK */
	int		implicit;	/* no MX but addresses: one entry, pref 0, the
					 * domain itself (canon when it is a CNAME) */
	size_t		n;
	struct dns_mx	*mx;		/* by preference; equal preferences in the
					 * answer's order (the caller randomizes) */
};

/* MX of domain. DNS_NODATA: no MX and no address (the implicit MX needs an
 * A or AAAA). sec of an implicit MX is secure only if the MX denial and the
 * address lookups all were. Returns st.result. */
enum dns_result dns_mx(const struct dns_resolver *r, const char *domain,
    struct dns_mx_result *out);
void dns_mx_result_free(struct dns_mx_result *res);

/* ---- A and AAAA */
#define DNS_ADDR_V4	0x1
#define DNS_ADDR_V6	0x2
#define DNS_ADDR_ANY	(DNS_ADDR_V4 | DNS_ADDR_V6)

struct dns_addr {
	int		family;		/* AF_INET6 or AF_INET */
	unsigned char	addr[16];	/* 16 or 4 bytes, network order */
};

struct dns_addr_result {
	struct dns_status st;
	size_t		n;
	struct dns_addr	*addrs;		/* AAAA first, then A, each in answer order */
};

/* AAAA and/or A of host (families: DNS_ADDR_*). Combined status: DNS_BOGUS
 * if either lookup was bogus, else DNS_TEMPFAIL/DNS_INVALID if either failed
 * (then addrs may still hold what the other family found), else DNS_OK if
 * any address, else DNS_NXDOMAIN or DNS_NODATA. sec is secure only if every
 * lookup made was. Returns st.result. */
enum dns_result dns_addrs(const struct dns_resolver *r, const char *host, int families,
    struct dns_addr_result *out);
void dns_addr_result_free(struct dns_addr_result *res);

/* ---- TLSA (RFC 6698, RFC 7672) */
struct dns_tlsa {
	uint8_t		usage;		/* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	uint8_t		selector;	/* 0 full certificate, 1 SubjectPublicKeyInfo */
	uint8_t		mtype;		/* 0 full, 1 SHA2-256, 2 SHA2-512 */
	size_t		len;
	unsigned char	*data;
};

struct dns_tlsa_result {
	struct dns_status st;
	size_t		n;
	struct dns_tlsa	*rr;
};

/* TLSA at name, e.g. "_25._tcp.mx.example.com". Records with unparsable
 * RDATA are skipped. Returns st.result. */
enum dns_result dns_tlsa(const struct dns_resolver *r, const char *name,
    struct dns_tlsa_result *out);
void dns_tlsa_result_free(struct dns_tlsa_result *res);

/* ---- TXT (RFC 8461 3.1, RFC 8460 3: a record's strings are concatenated) */
struct dns_txt_result {
	struct dns_status st;
	size_t		n;
	char		**txt;		/* each RR's strings concatenated, NUL-terminated */
	size_t		*len;		/* their lengths (a string may contain NUL bytes) */
};

enum dns_result dns_txt(const struct dns_resolver *r, const char *name,
    struct dns_txt_result *out);
void dns_txt_result_free(struct dns_txt_result *res);

/* ---- PTR (RFC 1035 3.5, RFC 3596 2.5) */
struct dns_name_result {
	struct dns_status st;
	size_t		n;
	char		(*names)[DNS_NAME_MAX];	/* lower case, no final dot */
};

/* The reverse name of an address (ip: an IPv4 or IPv6 literal) under root:
 * "4.3.2.1.in-addr.arpa" for 1.2.3.4 when root is NULL ("in-addr.arpa" or
 * "ip6.arpa" by family); another root puts the same labels under it (tests
 * serve reverse names from a zone of their own). 0, or -1 when ip is not an
 * address or the name does not fit in outsz. */
int dns_reverse_name(const char *ip, const char *root, char *out, size_t outsz);
/* PTR at name (made by dns_reverse_name). Returns st.result. */
enum dns_result dns_ptr(const struct dns_resolver *r, const char *name,
    struct dns_name_result *out);
void dns_name_result_free(struct dns_name_result *res);

/* ---- names for logs and reports */
struct buf;
/* Join the <character-string>s of one TXT RDATA in wire form (RFC 1035
 * 3.3.14) into out without separators, as RFC 8461 3.1 and RFC 8460 3 ask.
 * 0, or -1 with the reason in why when the RDATA is empty or a string runs
 * past its end. I/O-free: the MTA-STS and TLSRPT record parsers use it. */
int dns_txt_rdata_join(const uint8_t *rdata, size_t len, struct buf *out, char *why,
    size_t whysz);

const char *dns_result_str(enum dns_result res);	/* "ok", "nxdomain", ... */
const char *dns_sec_str(enum dns_sec sec);		/* "secure", "insecure", ... */
/* Is name a valid host or service name (LDH and "_", labels of 1..63, at most
 * 253 characters, an optional final dot)? */
int dns_name_valid(const char *name);

#endif
