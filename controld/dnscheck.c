/* dns check: the domain-wide checks (MX, SPF, DMARC, DKIM) and the order of
 * the whole check. See dnscheck.h; the findings and the lookups every part
 * shares are in dnscheck_finding.c, the per-host checks in dnscheck_host.c,
 * MTA-STS in dnscheck_sts.c, the live STARTTLS in dnscheck_probe.c. */
#include "dnscheck_int.h"
#include "dnsname.h"
#include "log.h"
#include "xmalloc.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SPF, DMARC, DKIM: what is published against what was generated */

struct txt_want {
	const char	*missing, *differs;	/* finding codes */
	const char	*prefix;		/* the record's tag ("v=spf1"); NULL: any */
};

static void
txt_compare(struct dnscheck *c, const char *owner, const char *want, const struct txt_want *w)
{
	struct dns_txt_result t;
	size_t first = 0, n;
	char fix[1200];

	snprintf(fix, sizeof(fix), "Publish: %s TXT \"%.1000s\"", owner, want);
	dns_txt(c->o->resolver, owner, &t);
	if (dnscheck_lookup_failed(c, owner, "TXT", &t.st))
		goto out;
	n = w->prefix ? dnscheck_txt_count(&t, w->prefix, &first) : t.n;
	if (n == 0) {
		dnscheck_add(c, w->missing, owner, fix, "no %s%sTXT record at %s",
		    w->prefix ? w->prefix : "", w->prefix ? " " : "", owner);
		goto out;
	}
	if (n > 1) {
		dnscheck_add(c, w->differs, owner, fix, "%zu %s%sTXT records at %s, want one", n,
		    w->prefix ? w->prefix : "", w->prefix ? " " : "", owner);
		goto out;
	}
	if (t.len[first] != strlen(want) || memcmp(t.txt[first], want, t.len[first]) != 0) {
		char q[600];
		dnscheck_add(c, w->differs, owner, fix, "%s has %s, generated \"%.400s\"", owner,
		    log_quote(q, sizeof(q), t.txt[first], t.len[first], 400), want);
	}
out:
	dns_txt_result_free(&t);
}

/* Owner without its final dot, into out. */
static void
owner_name(const char *owner, char *out, size_t outsz)
{
	size_t l = strlen(owner);

	if (l > 0 && owner[l - 1] == '.')
		l--;
	snprintf(out, outsz, "%.*s", (int)l, owner);
}

static int
owner_under(const char *owner, const char *suffix)
{
	size_t ol = strlen(owner), sl = strlen(suffix);

	return ol > sl && owner[ol - sl - 1] == '.' && strcasecmp(owner + ol - sl, suffix) == 0;
}

static void
check_auth_records(struct dnscheck *c)
{
	static const struct txt_want spf = { "spf-missing", "spf-differs", "v=spf1" };
	static const struct txt_want dmarc = { "dmarc-missing", "dmarc-differs", "v=DMARC1" };
	static const struct txt_want dkim = { "dkim-missing", "dkim-differs", NULL };
	const char *d = c->in->name;
	char dmarc_owner[DNS_NAME_MAX], dkim_suffix[DNS_NAME_MAX];

	snprintf(dmarc_owner, sizeof(dmarc_owner), "_dmarc.%s", d);
	snprintf(dkim_suffix, sizeof(dkim_suffix), "_domainkey.%s", d);
	for (size_t i = 0; i < c->want->nrrs; i++) {
		const struct dnsgen_rr *rr = &c->want->rrs[i];
		char owner[DNS_NAME_MAX], *text;
		const struct txt_want *w = NULL;

		if (strcmp(rr->type, "TXT") != 0)
			continue;
		owner_name(rr->owner, owner, sizeof(owner));
		text = dnscheck_txt_unquote(rr->rdata);
		if (dnsname_equal(owner, strlen(owner), d) && strncasecmp(text, "v=spf1", 6) == 0)
			w = &spf;
		else if (dnsname_equal(owner, strlen(owner), dmarc_owner))
			w = &dmarc;
		else if (owner_under(owner, dkim_suffix))
			w = &dkim;
		if (w != NULL)
			txt_compare(c, owner, text, w);
		free(text);
	}
}

/* ---- MX */

static int
fleet_mx(const struct dnscheck *c, const char *name)
{
	for (size_t i = 0; i < c->in->nhosts; i++)
		if (c->in->hosts[i].mx_name != NULL &&
		    dnsname_equal(name, strlen(name), c->in->hosts[i].mx_name))
			return 1;
	return 0;
}

/* A published MX that is none of the fleet's names (the fleet's own are
 * checked host by host): still a CNAME is wrong (RFC 2181 10.3), e.g. the
 * alias of seeds/002 pointing at a fleet host. */
static void
check_other_mx(struct dnscheck *c, const char *mx)
{
	struct dns_addr_result ar;

	dns_addrs(c->o->resolver, mx, DNS_ADDR_ANY, &ar);
	if (!dnscheck_lookup_failed(c, mx, "A/AAAA", &ar.st) && ar.st.canon[0] != '\0' &&
	    !dnsname_equal(ar.st.canon, strlen(ar.st.canon), mx))
		dnscheck_add(c, "mx-cname", mx, NULL, "MX %s is a CNAME to %s%s", mx,
		    ar.st.canon, fleet_mx(c, ar.st.canon) ? ", a fleet host: name it in the MX" : "");
	dns_addr_result_free(&ar);
}

static void
check_mx(struct dnscheck *c)
{
	const char *d = c->in->name;

	dns_mx(c->o->resolver, d, &c->mx);
	if (dnscheck_lookup_failed(c, d, "MX", &c->mx.st))
		return;
	c->mx_known = 1;
	for (size_t k = 0; k < c->mx.n && !c->mx.implicit; k++)
		if (!fleet_mx(c, c->mx.mx[k].host))
			check_other_mx(c, c->mx.mx[k].host);
	for (size_t i = 0; i < c->in->nhosts; i++) {
		const struct dnsgen_host *h = &c->in->hosts[i];
		int found = 0;
		char fix[DNS_NAME_MAX + 64];

		for (size_t k = 0; k < c->mx.n && !c->mx.implicit && !found; k++)
			found = dnsname_equal(c->mx.mx[k].host, strlen(c->mx.mx[k].host),
			    h->mx_name);
		if (found)
			continue;
		snprintf(fix, sizeof(fix), "Publish: %s. MX 10 %s.", d, h->mx_name);
		dnscheck_add(c, "mx-missing", h->mx_name, fix, "%s has no MX record naming %s%s",
		    d, h->mx_name, c->mx.null_mx ? " (it publishes a null MX)" :
		    c->mx.implicit ? " (it has no MX at all)" : "");
	}
}

int
dnscheck_domain(const struct dnsgen_domain *want_in, const struct dnsgen_result *want,
    const struct dnscheck_opts *o, struct dnscheck_report *out)
{
	struct dnscheck c = { .in = want_in, .want = want, .o = o, .out = out };
	char name[DNS_NAME_MAX];

	memset(out, 0, sizeof(*out));
	if (o == NULL || o->resolver == NULL || want_in == NULL || want == NULL ||
	    want_in->name == NULL || dnsname_check(want_in->name, NULL, 0) != 0) {
		dnscheck_add(&c, "check-failed", want_in && want_in->name ? want_in->name : "",
		    NULL, "%s", o == NULL || o->resolver == NULL ? "no resolver configured" :
		    "no valid domain name");
		return -1;
	}
	check_mx(&c);
	for (size_t i = 0; i < want_in->nhosts; i++)
		dnscheck_host(&c, &want_in->hosts[i]);
	snprintf(name, sizeof(name), "_smtp._tls.%s", want_in->name);
	dnscheck_tlsrpt(&c, name);
	dnscheck_sts(&c);
	check_auth_records(&c);
	dns_mx_result_free(&c.mx);
	return (int)out->nerrors;
}

void
dnscheck_report_free(struct dnscheck_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nfindings; i++) {
		struct dnsgen_error *f = &r->findings[i];
		free(f->severity);
		free(f->code);
		free(f->subject);
		free(f->what);
		free(f->why);
		free(f->fix);
	}
	free(r->findings);
	memset(r, 0, sizeof(*r));
}
