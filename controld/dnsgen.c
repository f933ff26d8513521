/* The DNS of a hosted domain, generated from what controld knows
 * (dnsgen.h). No I/O, no clock: the same input gives the same records,
 * policy and id on every controld replica.
 *
 * Everything a host reports or an operator sets is validated before it goes
 * in a record: a name, address, key or setting that is not what DNS or the
 * receiving side expects becomes an error and is left out (a default takes
 * the place of a bad setting), so no record ever carries hostile text. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/sha.h>

#include "buf.h"
#include "dns.h"
#include "dnsgen.h"
#include "dnsname.h"
#include "sts.h"
#include "tlsid.h"
#include "tlsrpt_txt.h"
#include "xmalloc.h"

#define DNSGEN_TTL_DEFAULT	3600
#define DNSGEN_MAX_AGE_DEFAULT	604800		/* one week */
#define DNSGEN_MX_PREF		10		/* equal for all: senders spread load */
#define DNSGEN_TXT_STRING_MAX	255		/* RFC 1035 3.3: <character-string> */
#define DNSGEN_SETTING_MAX	2048		/* a longer TXT setting is refused */
#define DNSGEN_DKIM_B64_MAX	4096		/* RSA 8192 needs ~1400 */
#define DNSGEN_SUBJECT_MAX	96		/* quoted host text in an error */
#define DNSGEN_OWNER_MAX	300		/* > 253 + a prefix: too long shows */

/* ------------------------------------------------------------ the findings */

/* Each code's severity and the two sentences that do not depend on the
 * case (docs/dns.md, "Findings"; dns check uses the same codes). */
static const struct dnsgen_code {
	const char *code, *severity, *why, *fix;
} dnsgen_codes[] = {
	{ "no-hosts", "error",
	  "Without an MX record senders try the domain's own address (RFC 5321 5.1) "
	  "or give up: no mail for the domain reaches the fleet.",
	  "Let at least one registered mxd serve the domain (the domain's host list in "
	  "mailctl dns set; empty means every host) and make sure that host reports a "
	  "name and a public address." },
	{ "host-no-name", "error",
	  "The MX record, the host's TLSA records and the MTA-STS policy are all built "
	  "on the host's name; the host is left out of them.",
	  "Set hostname in the host's mxd.conf to its public name (the name it greets "
	  "with) and reload mxd so it reports it at its next heartbeat." },
	{ "host-no-address", "error",
	  "An MX target without an A or AAAA record cannot be reached; the host is left "
	  "out of the MX records, the policy and the TLSA records.",
	  "Set public_addresses in the host's mxd.conf to the addresses senders reach it "
	  "at (by default mxd reports its listen addresses, which a wildcard listener does "
	  "not give) and reload mxd so it reports them at its next heartbeat." },
	{ "bad-host-data", "error",
	  "The value cannot be put in a DNS record as reported; it was left out, so the "
	  "records miss what it was meant to publish.",
	  "Fix the host's configuration (hostname, listen addresses, certificate or next "
	  "key) so its mxd reports a valid value, then generate again." },
	{ "bad-setting", "error",
	  "A record built from this setting would be refused by DNS servers or receivers; "
	  "the default is used in its place, or for a DKIM key nothing is published.",
	  "Correct the setting with mailctl dns set (for a DKIM key, generate a new one), "
	  "then generate again." },
	{ "cert-name-missing", "error",
	  "Senders that verify MTA-STS or DANE check the host's certificate against this "
	  "name: TLS to it fails authentication and, with a policy in enforce mode, mail "
	  "is not delivered.",
	  "Add the name to the subjectAltNames of a certificate the host serves (a "
	  "wildcard covers one label) and reload mxd, or remove the alias from the "
	  "domain's settings." },
	{ "next-key-missing", "warning",
	  "TLSA records for a new key must be published before the host switches to it "
	  "(RFC 7671 8.1); without a next key the host's next certificate change breaks "
	  "delivery from DANE senders until DNS catches up.",
	  "Let the host's mxd create its next key (tls.next_key in mxd.conf, by default "
	  "the first certificate's key path and \".next\"; docs/dns.md, \"Host identity\") "
	  "and reload mxd so it reports the key at its next heartbeat." },
};

struct gen_addr {
	int		 af;
	unsigned char	 bin[16];
	char		 text[INET6_ADDRSTRLEN];
};

struct gen {
	const struct dnsgen_domain *d;
	struct dnsgen_result *out;
	size_t		 rrcap, errcap;
	char		*domain;		/* lower case, no final dot */
	uint32_t	 ttl;
	enum sts_mode	 mode;
	uint32_t	 max_age;
	char		*rua;			/* the TLSRPT rua= value */
	char		**names;		/* the policy's mx: names */
	size_t		 nnames;
	struct gen_addr	*addrs;			/* every serving host's */
	size_t		 naddrs;
	size_t		 nmx;			/* hosts that got an MX */
};

/* Host or operator text as it may appear in an error: printable, short. */
static void
gen_printable(const char *s, char *out, size_t outsz)
{
	size_t i, o = 0;

	if (s == NULL || s[0] == '\0')
		s = s == NULL ? "(none)" : "(empty)";
	for (i = 0; s[i] != '\0' && o + 4 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (s[i] != '\0') {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void gen_error(struct gen *g, const char *code, const char *subject, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
gen_error(struct gen *g, const char *code, const char *subject, const char *fmt, ...)
{
	const struct dnsgen_code *c = NULL;
	struct dnsgen_error *e;
	va_list ap;

	for (size_t i = 0; i < sizeof(dnsgen_codes) / sizeof(dnsgen_codes[0]); i++)
		if (strcmp(dnsgen_codes[i].code, code) == 0)
			c = &dnsgen_codes[i];
	if (c == NULL)
		abort();		/* a code missing from the table: our bug */
	if (g->out->nerrors == g->errcap) {
		g->errcap = g->errcap ? g->errcap * 2 : 8;
		g->out->errors = xreallocarray(g->out->errors, g->errcap, sizeof(*e));
	}
	e = &g->out->errors[g->out->nerrors++];
	e->severity = xstrdup(c->severity);
	e->code = xstrdup(c->code);
	e->subject = xstrdup(subject);
	va_start(ap, fmt);
	if (vasprintf(&e->what, fmt, ap) < 0)
		abort();
	va_end(ap);
	e->why = xstrdup(c->why);
	e->fix = xstrdup(c->fix);
}

/* "<host_id>: <item>", both made printable: the subject of a host's error. */
static void
host_subject(const struct dnsgen_host *h, const char *item, char *out, size_t outsz)
{
	char id[DNSGEN_SUBJECT_MAX], it[DNSGEN_SUBJECT_MAX];

	gen_printable(h->host_id, id, sizeof(id));
	if (item == NULL) {
		snprintf(out, outsz, "%s", id);
		return;
	}
	gen_printable(item, it, sizeof(it));
	snprintf(out, outsz, "%s: %s", id, it);
}

static void
host_bad(struct gen *g, const struct dnsgen_host *h, const char *kind, const char *value)
{
	char subj[2 * DNSGEN_SUBJECT_MAX + 4], id[DNSGEN_SUBJECT_MAX], val[DNSGEN_SUBJECT_MAX];

	host_subject(h, value, subj, sizeof(subj));
	gen_printable(h->host_id, id, sizeof(id));
	gen_printable(value, val, sizeof(val));
	gen_error(g, "bad-host-data", subj,
	    "Host %s reported %s that is not valid (\"%s\"); it is left out of every record.",
	    id, kind, val);
}

/* ----------------------------------------------------------------- records */

static char *
lower_name(const char *s)
{
	char *n = xstrdup(s);
	size_t len = strlen(n);

	for (size_t i = 0; i < len; i++)
		if (n[i] >= 'A' && n[i] <= 'Z')
			n[i] = (char)(n[i] - 'A' + 'a');
	if (len > 0 && n[len - 1] == '.')
		n[len - 1] = '\0';
	return n;
}

/* owner without the final dot; the record gets it. */
static void
gen_rr(struct gen *g, const char *owner, const char *type, char *rdata, const char *why)
{
	struct dnsgen_rr *rr;

	if (g->out->nrrs == g->rrcap) {
		g->rrcap = g->rrcap ? g->rrcap * 2 : 32;
		g->out->rrs = xreallocarray(g->out->rrs, g->rrcap, sizeof(*rr));
	}
	rr = &g->out->rrs[g->out->nrrs++];
	rr->owner = xasprintf("%s.", owner);
	rr->ttl = g->ttl;
	rr->type = xstrdup(type);
	rr->rdata = rdata;
	rr->why = xstrdup(why);
}

/* TXT presentation form: quoted strings of at most 255 bytes each (RFC 1035
 * 3.3.14), '"' and '\' escaped, anything unprintable as \DDD. */
static char *
txt_rdata(const char *s)
{
	struct buf b;
	size_t len = strlen(s), off = 0;

	buf_init(&b);
	do {
		size_t n = len - off > DNSGEN_TXT_STRING_MAX ? DNSGEN_TXT_STRING_MAX : len - off;
		buf_appends(&b, off == 0 ? "\"" : " \"");
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[off + i];
			if (c == '"' || c == '\\')
				buf_appendc(&b, '\\');
			if (c < 0x20 || c >= 0x7f)
				buf_printf(&b, "\\%03u", c);
			else
				buf_appendc(&b, (char)c);
		}
		buf_appendc(&b, '"');
		off += n;
	} while (off < len);
	return b.data;
}

static void
gen_txt(struct gen *g, const char *owner, const char *text, const char *why)
{
	gen_rr(g, owner, "TXT", txt_rdata(text), why);
}

static int
rr_cmp(const void *a, const void *b)
{
	const struct dnsgen_rr *x = a, *y = b;
	int c = strcmp(x->owner, y->owner);

	if (c == 0)
		c = strcmp(x->type, y->type);
	if (c == 0)
		c = strcmp(x->rdata, y->rdata);
	return c;
}

static void
rr_free(struct dnsgen_rr *rr)
{
	free(rr->owner);
	free(rr->type);
	free(rr->rdata);
	free(rr->why);
}

/* By owner, type and rdata; the same record twice (two hosts with one name,
 * a next key already served) once. */
static void
gen_sort_records(struct gen *g)
{
	struct dnsgen_result *r = g->out;
	size_t o = 0;

	if (r->nrrs == 0)
		return;
	qsort(r->rrs, r->nrrs, sizeof(r->rrs[0]), rr_cmp);
	for (size_t i = 1; i < r->nrrs; i++) {
		if (rr_cmp(&r->rrs[o], &r->rrs[i]) == 0)
			rr_free(&r->rrs[i]);
		else
			r->rrs[++o] = r->rrs[i];
	}
	r->nrrs = o + 1;
}

/* ------------------------------------------------------------------- names */

/* A name's length without one final dot. */
static size_t
name_len(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

static int
name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen > 0 && alen == blen && strncasecmp(a, b, alen) == 0;
}

int
dnsgen_name_covers(const char *pattern, const char *host)
{
	size_t plen, hlen;
	const char *dot;

	if (pattern == NULL || host == NULL)
		return 0;
	plen = name_len(pattern);
	hlen = name_len(host);
	if (hlen == 0 || memchr(host, '*', hlen) != NULL)
		return 0;
	if (memchr(pattern, '*', plen) == NULL)
		return name_eq(pattern, plen, host, hlen);
	/* RFC 6125 6.4.3: "*" only as the whole left-most label, matching one
	 * whole label; and, as browsers do, never right under a top-level label. */
	if (plen < 4 || pattern[0] != '*' || pattern[1] != '.' ||
	    memchr(pattern + 1, '*', plen - 1) != NULL ||
	    memchr(pattern + 2, '.', plen - 2) == NULL)
		return 0;
	dot = memchr(host, '.', hlen);
	if (dot == NULL || dot == host)
		return 0;
	return name_eq(pattern + 2, plen - 2, dot + 1, hlen - (size_t)(dot + 1 - host));
}

/* Is name (lower case, no final dot) a host name (LDH: an MX target, a
 * policy's mx:, a certificate's name) every record derived from it can be
 * built on? The longest owner is _smtp._tls.<name>. */
static int
host_name_valid(const char *name)
{
	char owner[DNSGEN_OWNER_MAX], why[128];

	if (dnsname_check(name, why, sizeof(why)) != 0 || name[strlen(name) - 1] == '.')
		return 0;
	return snprintf(owner, sizeof(owner), "_smtp._tls.%s", name) < (int)sizeof(owner) &&
	    dns_name_valid(owner);
}

static void
gen_name(struct gen *g, const char *name)
{
	g->names = xreallocarray(g->names, g->nnames + 1, sizeof(*g->names));
	g->names[g->nnames++] = xstrdup(name);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort v[0..n) and free the repeats; returns the new count. */
static size_t
str_uniq(char **v, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), str_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[o], v[i]) == 0)
			free(v[i]);
		else
			v[++o] = v[i];
	}
	return o + 1;
}

/* ------------------------------------------------------------------- hosts */

static int
addr_cmp(const void *a, const void *b)
{
	const struct gen_addr *x = a, *y = b;

	if (x->af != y->af)
		return x->af == AF_INET ? -1 : 1;
	return memcmp(x->bin, y->bin, sizeof(x->bin));
}

/* Sort and drop repeats; returns the new count. */
static size_t
addr_uniq(struct gen_addr *v, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), addr_cmp);
	for (size_t i = 1; i < n; i++)
		if (addr_cmp(&v[o], &v[i]) != 0)
			v[++o] = v[i];
	return o + 1;
}

/* An address a sender can be sent to: an IP literal, not unspecified, not
 * an IPv4-mapped IPv6 one (that is an A record's job). Canonical text. */
static int
addr_parse(const char *s, struct gen_addr *a)
{
	static const unsigned char zero[16];

	memset(a, 0, sizeof(*a));
	if (s == NULL)
		return -1;
	if (inet_pton(AF_INET, s, a->bin) == 1) {
		a->af = AF_INET;
		if (memcmp(a->bin, zero, 4) == 0)
			return -1;
	} else if (inet_pton(AF_INET6, s, a->bin) == 1) {
		a->af = AF_INET6;
		if (memcmp(a->bin, zero, 16) == 0 ||
		    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(void *)a->bin))
			return -1;
	} else
		return -1;
	inet_ntop(a->af, a->bin, a->text, sizeof(a->text));
	return 0;
}

/* The host's valid addresses, sorted, unique; each bad one reported. */
static size_t
host_addrs(struct gen *g, const struct dnsgen_host *h, struct gen_addr **out)
{
	struct gen_addr *v = xcalloc(h->naddrs + 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < h->naddrs; i++) {
		if (addr_parse(h->addrs[i], &v[n]) == 0)
			n++;
		else
			host_bad(g, h, "an address", h->addrs[i]);
	}
	*out = v;
	return addr_uniq(v, n);
}

/* A TLSA 3 1 1 digest as lib/tlsid.c writes it (a field may be NULL). */
static int
spki_ok(const char *s)
{
	return s != NULL && tlsid_spki_valid(s);
}

/* _25._tcp.<name> TLSA 3 1 1 for every key served now and the next key. */
static void
host_tlsa(struct gen *g, const struct dnsgen_host *h, const char *name)
{
	char *owner = xasprintf("_25._tcp.%s", name), subj[DNSGEN_SUBJECT_MAX];

	for (size_t i = 0; i < h->ncerts; i++) {
		if (spki_ok(h->certs[i].spki_sha256))
			gen_rr(g, owner, "TLSA", xasprintf("3 1 1 %s", h->certs[i].spki_sha256),
			    "DANE (RFC 7672): a key this MX host serves now");
		else
			host_bad(g, h, "a certificate key (SPKI SHA-256)",
			    h->certs[i].spki_sha256);
	}
	if (h->next_spki == NULL || h->next_spki[0] == '\0') {
		host_subject(h, NULL, subj, sizeof(subj));
		gen_error(g, "next-key-missing", subj,
		    "Host %s (%s) reported no next key: only the keys it serves now have "
		    "TLSA records.", subj, name);
	} else if (spki_ok(h->next_spki))
		gen_rr(g, owner, "TLSA", xasprintf("3 1 1 %s", h->next_spki),
		    "DANE: the key this MX host switches to next, published before the "
		    "switch (RFC 7671 8.1)");
	else
		host_bad(g, h, "a next key (SPKI SHA-256)", h->next_spki);
	free(owner);
}

static int
cert_name_valid(const char *p)
{
	char why[128];

	if (p == NULL)
		return 0;
	if (p[0] == '*' && p[1] == '.')
		p += 2;
	return dnsname_check(p, why, sizeof(why)) == 0;
}

/* Is name covered by a (valid) name of a certificate the host serves? */
static int
host_covers(const struct dnsgen_host *h, const char *name)
{
	for (size_t i = 0; i < h->ncerts; i++)
		for (size_t j = 0; j < h->certs[i].nnames; j++)
			if (cert_name_valid(h->certs[i].names[j]) &&
			    dnsgen_name_covers(h->certs[i].names[j], name))
				return 1;
	return 0;
}

static void
host_need_name(struct gen *g, const struct dnsgen_host *h, const char *name, const char *role)
{
	char subj[2 * DNSGEN_SUBJECT_MAX + 4], id[DNSGEN_SUBJECT_MAX];

	if (host_covers(h, name))
		return;
	host_subject(h, name, subj, sizeof(subj));
	gen_printable(h->host_id, id, sizeof(id));
	gen_error(g, "cert-name-missing", subj,
	    "No certificate host %s serves covers %s, %s.", id, name, role);
}

/* The names senders reach the host by (its name, its aliases) go in the
 * policy; each, and the policy host's name, must be in its certificate. */
static void
host_names(struct gen *g, const struct dnsgen_host *h, const char *name)
{
	char subj[2 * DNSGEN_SUBJECT_MAX + 4], *alias, *mta_sts;

	for (size_t i = 0; i < h->ncerts; i++)
		for (size_t j = 0; j < h->certs[i].nnames; j++)
			if (!cert_name_valid(h->certs[i].names[j]))
				host_bad(g, h, "a certificate name", h->certs[i].names[j]);
	gen_name(g, name);
	host_need_name(g, h, name, "its MX name");
	for (size_t i = 0; i < h->naliases; i++) {
		alias = h->aliases[i] != NULL ? lower_name(h->aliases[i]) : NULL;
		if (alias == NULL || !host_name_valid(alias)) {
			free(alias);
			host_subject(h, h->aliases[i], subj, sizeof(subj));
			gen_error(g, "bad-setting", subj, "The alias %s is not a valid host "
			    "name; it is left out of the policy.", subj);
			continue;
		}
		gen_name(g, alias);
		host_need_name(g, h, alias, "an alias senders reach it by (the policy lists it)");
		free(alias);
	}
	if (g->mode != STS_MODE_NONE) {
		mta_sts = xasprintf("mta-sts.%s", g->domain);
		host_need_name(g, h, mta_sts, "the MTA-STS policy host it serves the policy as");
		free(mta_sts);
	}
}

/* One host's MX, addresses, TLSA and TLSRPT records, and its names. */
static void
gen_host(struct gen *g, const struct dnsgen_host *h)
{
	char subj[DNSGEN_SUBJECT_MAX], *name, *owner, *rec;
	struct gen_addr *a;
	size_t na;

	host_subject(h, NULL, subj, sizeof(subj));
	if (h->mx_name == NULL || h->mx_name[0] == '\0') {
		gen_error(g, "host-no-name", subj, "Host %s reported no name, so no MX record "
		    "can point to it.", subj);
		return;
	}
	name = lower_name(h->mx_name);
	if (!host_name_valid(name)) {
		host_bad(g, h, "a name", h->mx_name);
		free(name);
		return;
	}
	na = host_addrs(g, h, &a);
	if (na == 0) {
		gen_error(g, "host-no-address", subj, "Host %s (%s) reported no usable "
		    "address, so %s cannot have an A or AAAA record.", subj, name, name);
		free(a);
		free(name);
		return;
	}
	gen_rr(g, g->domain, "MX", xasprintf("%d %s.", DNSGEN_MX_PREF, name),
	    "inbound mail goes to this fleet host (equal preference: senders spread the load)");
	g->addrs = xreallocarray(g->addrs, g->naddrs + na, sizeof(*g->addrs));
	for (size_t i = 0; i < na; i++) {
		gen_rr(g, name, a[i].af == AF_INET ? "A" : "AAAA", xstrdup(a[i].text),
		    "the address of a fleet MX host (an MX target has A/AAAA, never a CNAME)");
		g->addrs[g->naddrs++] = a[i];
	}
	free(a);
	host_tlsa(g, h, name);
	owner = xasprintf("_smtp._tls.%s", name);
	rec = xasprintf("v=TLSRPTv1; rua=%s", g->rua);
	gen_txt(g, owner, rec, "TLS reporting (RFC 8460) for senders reaching this MX host");
	free(rec);
	free(owner);
	host_names(g, h, name);
	g->nmx++;
	free(name);
}

static int
host_cmp(const void *a, const void *b)
{
	const struct dnsgen_host *x = *(const struct dnsgen_host *const *)a;
	const struct dnsgen_host *y = *(const struct dnsgen_host *const *)b;
	int c = strcasecmp(x->mx_name ? x->mx_name : "", y->mx_name ? y->mx_name : "");

	return c != 0 ? c : strcmp(x->host_id ? x->host_id : "", y->host_id ? y->host_id : "");
}

/* Every host, by name, so records and errors come in the same order
 * whatever order the database gave. */
static void
gen_hosts(struct gen *g)
{
	const struct dnsgen_host **v = xcalloc(g->d->nhosts + 1, sizeof(*v));
	size_t n = g->d->nhosts;

	for (size_t i = 0; i < n; i++)
		v[i] = &g->d->hosts[i];
	qsort(v, n, sizeof(*v), host_cmp);
	for (size_t i = 0; i < n; i++)
		gen_host(g, v[i]);
	free(v);
	if (g->nmx == 0)
		gen_error(g, "no-hosts", g->domain, n == 0 ?
		    "No host serves %s, so it has no MX record." :
		    "None of the hosts serving %s can be published (see the errors above), "
		    "so it has no MX record.", g->domain);
	g->naddrs = addr_uniq(g->addrs, g->naddrs);
}

/* ---------------------------------------------------------------- settings */

/* Operator text for a TXT record: printable ASCII, not too long, and
 * starting with its version tag followed by a separator. */
static int
setting_text_ok(const char *s, const char *tag, const char *seps)
{
	size_t len = strlen(s), tlen = strlen(tag);

	if (len > DNSGEN_SETTING_MAX || strncasecmp(s, tag, tlen) != 0 ||
	    (s[tlen] != '\0' && strchr(seps, s[tlen]) == NULL))
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* The operator's value when it is usable, else the default (reported). */
static char *
setting_or_default(struct gen *g, const char *setting, const char *value, const char *tag,
    const char *seps, char *deflt)
{
	char val[DNSGEN_SUBJECT_MAX];

	if (value == NULL || value[0] == '\0')
		return deflt;
	if (setting_text_ok(value, tag, seps)) {
		free(deflt);
		return xstrdup(value);
	}
	gen_printable(value, val, sizeof(val));
	gen_error(g, "bad-setting", setting, "The %s setting \"%s\" is not a %s record of "
	    "printable ASCII (at most %d characters); the default \"%s\" is used.", setting,
	    val, tag, DNSGEN_SETTING_MAX, deflt);
	return deflt;
}

static void
settings_sts(struct gen *g)
{
	const char *m = g->d->sts_mode;
	char val[DNSGEN_SUBJECT_MAX];

	g->mode = STS_MODE_ENFORCE;
	if (m != NULL && strcmp(m, "testing") == 0)
		g->mode = STS_MODE_TESTING;
	else if (m != NULL && strcmp(m, "none") == 0)
		g->mode = STS_MODE_NONE;
	else if (m != NULL && m[0] != '\0' && strcmp(m, "enforce") != 0) {
		gen_printable(m, val, sizeof(val));
		gen_error(g, "bad-setting", "sts_mode", "The MTA-STS mode \"%s\" is not enforce, "
		    "testing or none; enforce is used.", val);
	}
	g->max_age = g->d->sts_max_age ? g->d->sts_max_age : DNSGEN_MAX_AGE_DEFAULT;
	if (g->max_age > STS_MAX_AGE_MAX) {
		gen_error(g, "bad-setting", "sts_max_age", "The MTA-STS max_age %lu is over the "
		    "RFC 8461 maximum of %d seconds; %d is used.", (unsigned long)g->max_age,
		    STS_MAX_AGE_MAX, DNSGEN_MAX_AGE_DEFAULT);
		g->max_age = DNSGEN_MAX_AGE_DEFAULT;
	}
}

/* The rua= of every TLSRPT record, checked by the parser senders' side of
 * this project uses (lib/tlsrpt_txt.c). */
static void
settings_rua(struct gen *g)
{
	const char *rua = g->d->tlsrpt_rua;
	char *rec, why[TLSRPT_TXT_ERR_MAX] = "", val[DNSGEN_SUBJECT_MAX];
	struct tlsrpt_txt *t = NULL;

	g->rua = xasprintf("mailto:tlsrpt@%s", g->domain);
	if (rua == NULL || rua[0] == '\0')
		return;
	rec = xasprintf("v=TLSRPTv1; rua=%s", rua);
	if (setting_text_ok(rec, "v=TLSRPTv1", ";") &&
	    tlsrpt_txt_parse_record(rec, strlen(rec), &t, why, sizeof(why)) == TLSRPT_TXT_OK) {
		free(g->rua);
		g->rua = xstrdup(rua);
	} else {
		gen_printable(rua, val, sizeof(val));
		gen_error(g, "bad-setting", "tlsrpt_rua", "The TLSRPT rua \"%s\" is not a list of "
		    "mailto: or https: URIs%s%s; %s is used.", val, why[0] ? ": " : "", why,
		    g->rua);
	}
	tlsrpt_txt_free(t);
	free(rec);
}

/* ------------------------------------------------------ the domain's records */

/* RFC 8461: the policy lists every name a sender may reach the fleet by;
 * _mta-sts.<domain> announces it, mta-sts.<domain> is every host. */
static void
gen_policy(struct gen *g)
{
	struct sts_policy p;
	struct buf b;
	char *owner, *rec;

	if (g->mode == STS_MODE_NONE || g->nnames == 0)
		return;
	g->nnames = str_uniq(g->names, g->nnames);
	memset(&p, 0, sizeof(p));
	p.mode = g->mode;
	p.max_age = g->max_age;
	p.mx = g->names;
	p.n_mx = g->nnames;
	buf_init(&b);
	sts_policy_render(&p, &b);
	g->out->sts_policy = b.data;
	dnsgen_sts_id(b.data, g->out->sts_id);

	owner = xasprintf("_mta-sts.%s", g->domain);
	rec = xasprintf("v=STSv1; id=%s", g->out->sts_id);
	gen_txt(g, owner, rec, "MTA-STS (RFC 8461 3.1): the domain has a policy; the id "
	    "changes exactly when the policy does");
	free(rec);
	free(owner);
	owner = xasprintf("mta-sts.%s", g->domain);
	for (size_t i = 0; i < g->naddrs; i++)
		gen_rr(g, owner, g->addrs[i].af == AF_INET ? "A" : "AAAA",
		    xstrdup(g->addrs[i].text),
		    "the MTA-STS policy host: every fleet host serves the policy over HTTPS");
	free(owner);
}

static char *
spf_default(const struct gen *g)
{
	struct buf b;

	buf_init(&b);
	buf_appends(&b, "v=spf1");
	for (size_t i = 0; i < g->naddrs; i++)
		buf_printf(&b, " %s:%s", g->addrs[i].af == AF_INET ? "ip4" : "ip6",
		    g->addrs[i].text);
	buf_appends(&b, " -all");
	return b.data;
}

static void
gen_domain_txt(struct gen *g)
{
	char *owner, *rec;

	owner = xasprintf("_smtp._tls.%s", g->domain);
	rec = xasprintf("v=TLSRPTv1; rua=%s", g->rua);
	gen_txt(g, owner, rec, "TLS reporting (RFC 8460): where senders report TLS failures");
	free(rec);
	free(owner);

	rec = setting_or_default(g, "spf", g->d->spf, "v=spf1", " ", spf_default(g));
	gen_txt(g, g->domain, rec, "SPF (RFC 7208): the addresses that send the domain's mail");
	free(rec);

	rec = setting_or_default(g, "dmarc", g->d->dmarc, "v=DMARC1", "; ",
	    xasprintf("v=DMARC1; p=none; rua=mailto:dmarc@%s", g->domain));
	owner = xasprintf("_dmarc.%s", g->domain);
	gen_txt(g, owner, rec, "DMARC (RFC 7489): what receivers do with mail failing SPF "
	    "and DKIM, and where they report");
	free(rec);
	free(owner);
}

static int
b64_valid(const char *s)
{
	size_t len = strlen(s), pad = 0;

	if (len == 0 || len % 4 != 0 || len > DNSGEN_DKIM_B64_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '=')
			pad++;
		else if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return 0;
	}
	return pad <= 2;
}

/* Why a DKIM key cannot be published, or NULL. */
static const char *
dkim_problem(const struct dnsgen_dkim *k, const char *owner)
{
	if (k->selector == NULL || !dns_name_valid(k->selector) || !dns_name_valid(owner) ||
	    k->selector[strlen(k->selector) - 1] == '.')
		return "its selector is not a valid DNS name (or makes the owner too long)";
	if (k->key_type == NULL || (strcmp(k->key_type, "rsa") != 0 &&
	    strcmp(k->key_type, "ed25519") != 0))
		return "its key type is neither rsa nor ed25519";
	if (k->public_b64 == NULL || !b64_valid(k->public_b64))
		return "its public key is not base64";
	if (k->state != DNSGEN_DKIM_ACTIVE && k->state != DNSGEN_DKIM_NEXT)
		return "it is neither the active nor the next key";
	return NULL;
}

/* <selector>._domainkey.<domain> for the active and the next key. */
static void
gen_dkim(struct gen *g)
{
	char sel[DNSGEN_SUBJECT_MAX], owner[DNSGEN_OWNER_MAX], *lsel, *rec;
	const char *problem;

	for (size_t i = 0; i < g->d->ndkim; i++) {
		const struct dnsgen_dkim *k = &g->d->dkim[i];
		lsel = lower_name(k->selector != NULL ? k->selector : "");
		snprintf(owner, sizeof(owner), "%s._domainkey.%s", lsel, g->domain);
		if ((problem = dkim_problem(k, owner)) != NULL) {
			gen_printable(k->selector, sel, sizeof(sel));
			gen_error(g, "bad-setting", sel, "The DKIM key with selector \"%s\" is not "
			    "published: %s.", sel, problem);
			free(lsel);
			continue;
		}
		rec = xasprintf("v=DKIM1; k=%s; p=%s", k->key_type, k->public_b64);
		gen_txt(g, owner, rec, k->state == DNSGEN_DKIM_ACTIVE ?
		    "DKIM (RFC 6376): the key the domain's mail is signed with now" :
		    "DKIM: the next signing key, published before the switch");
		free(rec);
		free(lsel);
	}
}

/* ------------------------------------------------------------------- entry */

static int
domain_check(const struct dnsgen_domain *d, char *err, size_t errsz)
{
	char owner[DNSGEN_OWNER_MAX], name[DNSGEN_SUBJECT_MAX], why[128];

	if (d == NULL || d->name == NULL || d->name[0] == '\0') {
		snprintf(err, errsz, "no domain name");
		return -1;
	}
	gen_printable(d->name, name, sizeof(name));
	if (dnsname_check(d->name, why, sizeof(why)) != 0) {
		snprintf(err, errsz, "the domain name \"%s\" is not a valid DNS name: %s", name,
		    why);
		return -1;
	}
	snprintf(owner, sizeof(owner), "_smtp._tls.%s", d->name);
	if (!dns_name_valid(owner)) {
		snprintf(err, errsz, "the domain name \"%s\" is too long: its _smtp._tls record "
		    "would pass 253 characters", name);
		return -1;
	}
	return 0;
}

int
dnsgen_domain(const struct dnsgen_domain *d, struct dnsgen_result *out, char *err,
    size_t errsz)
{
	struct gen g;

	memset(out, 0, sizeof(*out));
	if (domain_check(d, err, errsz) != 0)
		return -1;
	memset(&g, 0, sizeof(g));
	g.d = d;
	g.out = out;
	g.domain = lower_name(d->name);
	g.ttl = d->ttl ? d->ttl : DNSGEN_TTL_DEFAULT;
	settings_sts(&g);
	settings_rua(&g);
	gen_hosts(&g);
	gen_policy(&g);
	gen_domain_txt(&g);
	gen_dkim(&g);
	gen_sort_records(&g);

	for (size_t i = 0; i < g.nnames; i++)
		free(g.names[i]);
	free(g.names);
	free(g.addrs);
	free(g.rua);
	free(g.domain);
	return 0;
}

void
dnsgen_result_free(struct dnsgen_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nrrs; i++)
		rr_free(&r->rrs[i]);
	free(r->rrs);
	for (size_t i = 0; i < r->nerrors; i++) {
		struct dnsgen_error *e = &r->errors[i];
		free(e->severity);
		free(e->code);
		free(e->subject);
		free(e->what);
		free(e->why);
		free(e->fix);
	}
	free(r->errors);
	free(r->sts_policy);
	memset(r, 0, sizeof(*r));
}

void
dnsgen_sts_id(const char *policy, char id[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)policy, strlen(policy), md);
	for (size_t i = 0; i < 16; i++) {
		id[2 * i] = hex[md[i] >> 4];
		id[2 * i + 1] = hex[md[i] & 0xf];
	}
	id[32] = '\0';
}
