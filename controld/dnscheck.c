/* dns check: the findings, the domain-wide checks (MX, TLSRPT, SPF, DMARC,
 * DKIM) and the order of the whole check. See dnscheck.h; the per-host
 * checks are in dnscheck_host.c, MTA-STS in dnscheck_sts.c, the live
 * STARTTLS in dnscheck_probe.c. */
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

/* Every finding dns check can give: docs/dns.md, "Findings", lists the same
 * codes with the same words. */
static const struct dnscheck_code {
	const char	*code;
	const char	*severity;
	const char	*why;
	const char	*fix;
} dnscheck_codes[] = {
	{ "check-failed", "error",
	  "Nothing was checked.",
	  "Give the check a resolver and a domain name." },
	{ "check-incomplete", "warning",
	  "The resolver gave no answer, so what depends on it was not checked (not claimed "
	  "right or wrong).",
	  "Run the check again; if it persists, look at the resolver and the zone's servers." },
	{ "dnssec-bogus", "error",
	  "A validating resolver refuses the answer: senders behind one cannot see these "
	  "records, and mail to the domain is deferred, then bounced.",
	  "Re-sign the zone (expired signatures) or correct the DS record at the parent." },
	{ "mx-missing", "error",
	  "Senders only try the hosts an MX record names: this host receives no mail for "
	  "the domain.",
	  "Publish the MX record." },
	{ "mx-cname", "error",
	  "RFC 2181 10.3: an MX target must not be an alias. Senders that follow the CNAME "
	  "check the certificate and the MTA-STS policy against the target name.",
	  "Point the MX at a name with its own A/AAAA records (the host's MX name)." },
	{ "mx-cname-cert", "error",
	  "Senders that resolve the CNAME (Microsoft's among them) check the certificate "
	  "against the target name: without it MTA-STS validation fails and mail is "
	  "deferred, then bounced.",
	  "Add the target name to the host's certificate and declare it as an alias of the "
	  "host, or remove the CNAME." },
	{ "mx-address-missing", "error",
	  "An MX name without A/AAAA records cannot be connected to.",
	  "Publish the host's addresses at its MX name." },
	{ "mx-address-foreign", "error",
	  "Senders connect to an address that is not the fleet host's: mail goes to "
	  "whoever holds it, or waits.",
	  "Publish only the host's own addresses at its MX name." },
	{ "ptr-missing", "error",
	  "Many receivers refuse mail from an address without reverse DNS; the host sends "
	  "mail (bounces, reports, relaying) from it.",
	  "Ask whoever holds the address block to publish a PTR record naming the MX name." },
	{ "ptr-not-confirmed", "error",
	  "A PTR name that does not resolve back to the address counts as no reverse DNS "
	  "(forward-confirmed reverse DNS).",
	  "Publish the address at the PTR name, or make the PTR name the MX name." },
	{ "ptr-not-mx", "warning",
	  "Some senders and receivers compare names: a PTR that is not the MX name invites "
	  "certificate and policy checks against a name the fleet does not publish.",
	  "Make the PTR name the host's MX name." },
	{ "starttls-failed", "error",
	  "Senders that require TLS (MTA-STS enforce, DANE) cannot deliver; others send "
	  "in clear text.",
	  "Check that mxd listens on the address, offers STARTTLS and has a usable "
	  "certificate." },
	{ "cert-name-missing", "error",
	  "MTA-STS senders check the certificate against the MX name: they refuse to "
	  "deliver.",
	  "Serve a certificate whose subjectAltNames include the MX name." },
	{ "cert-expiring", "warning",
	  "Within days senders verifying the certificate (MTA-STS, DANE-TA) refuse it; "
	  "DANE-EE senders keep working only while the key stays the same.",
	  "Renew the certificate (keep the key, or publish the next key's TLSA first)." },
	{ "cert-expired", "error",
	  "Senders verifying the certificate (MTA-STS) refuse to deliver.",
	  "Renew the certificate (keep the key, or publish the next key's TLSA first)." },
	{ "tlsa-missing", "warning",
	  "No TLSA record: DANE senders get no protection against a downgrade or a forged "
	  "certificate.",
	  "Publish the generated TLSA records (mailctl dns records, or dns push)." },
	{ "tlsa-mismatch", "error",
	  "DANE senders (RFC 7672) refuse a server whose key matches no TLSA record: mail "
	  "from them waits, then bounces.",
	  "Publish TLSA 3 1 1 for the key served now (mailctl dns records)." },
	{ "tlsa-retired", "warning",
	  "A TLSA record for a key the host no longer serves lets whoever holds that old "
	  "key impersonate the host to DANE senders.",
	  "Remove the TLSA record of the retired key." },
	{ "tlsa-next-missing", "warning",
	  "The next key's TLSA must be published, and cached everywhere, before the host "
	  "switches to it (RFC 7671 8.1); otherwise DANE senders fail after the switch.",
	  "Publish TLSA 3 1 1 for the host's next key." },
	{ "dnssec-unsigned", "warning",
	  "TLSA records in an unsigned zone are ignored by every DANE sender (RFC 7672 "
	  "2.2): the domain has no DANE protection.",
	  "Sign the zone and publish its DS at the parent, or remove the TLSA records." },
	{ "sts-txt-missing", "error",
	  "Without the _mta-sts TXT record senders never fetch the policy: no MTA-STS.",
	  "Publish the generated _mta-sts TXT record." },
	{ "sts-txt-multiple", "error",
	  "RFC 8461 3.1: more than one STSv1 record means no policy is available.",
	  "Keep exactly one _mta-sts TXT record: the generated one." },
	{ "sts-txt-invalid", "error",
	  "A record senders cannot parse means no policy is available (RFC 8461 3.1).",
	  "Publish the generated _mta-sts TXT record." },
	{ "sts-id-stale", "error",
	  "Senders fetch the policy again only when the id changes: with a stale id they "
	  "keep an old policy (for up to max_age).",
	  "Publish the generated id." },
	{ "sts-policy-differs", "error",
	  "Senders apply the policy that is served, not the one controld generated.",
	  "Serve the generated policy (every mxd does, from its config snapshot)." },
	{ "sts-policy-invalid", "error",
	  "A policy that does not parse is no policy (RFC 8461 3.2).",
	  "Serve the generated policy." },
	{ "sts-policy-redirect", "error",
	  "RFC 8461 3.3: senders do not follow redirects: the policy is unavailable.",
	  "Serve the policy at the URL itself, without a redirect." },
	{ "sts-policy-content-type", "error",
	  "RFC 8461 3.3: the policy must be served as text/plain; senders refuse other "
	  "types.",
	  "Serve the policy with Content-Type: text/plain." },
	{ "sts-policy-cert", "error",
	  "RFC 8461 3.3: the policy host's certificate must be valid for mta-sts.<domain>; "
	  "otherwise senders ignore the policy.",
	  "Serve a certificate from a public CA that covers mta-sts.<domain>." },
	{ "sts-policy-unreachable", "error",
	  "Senders cannot fetch the policy: new senders get no MTA-STS, and cached "
	  "policies expire.",
	  "Publish mta-sts.<domain> at the fleet's addresses and check HTTPS on them." },
	{ "sts-mx-unmatched", "error",
	  "RFC 8461 4.1: in enforce mode senders refuse an MX that no mx: pattern of the "
	  "policy matches.",
	  "Add the MX name to the policy (declare it as the host's MX name or an alias)." },
	{ "sts-max-age", "warning",
	  "RFC 8461 3.2: max_age up to 31557600 s; a short one (under a day) leaves senders "
	  "unprotected between fetches, a longer one is capped.",
	  "Set max_age between 86400 and 31557600 (mailctl dns set)." },
	{ "sts-mode-testing", "info",
	  "In testing mode senders report failures (TLSRPT) but deliver anyway.",
	  "Switch to enforce once the reports are clean." },
	{ "sts-mode-none", "info",
	  "Mode none withdraws the policy.",
	  "Switch to testing or enforce." },
	{ "tlsrpt-missing", "warning",
	  "Without a TLSRPT record senders send no TLS reports: failures stay invisible.",
	  "Publish the generated _smtp._tls TXT record." },
	{ "tlsrpt-multiple", "warning",
	  "RFC 8460 3: with more than one TLSRPTv1 record senders send no report.",
	  "Keep exactly one _smtp._tls TXT record: the generated one." },
	{ "spf-missing", "error",
	  "Without SPF, receivers treat the domain's mail as unauthenticated and DMARC "
	  "depends on DKIM alone.",
	  "Publish the generated SPF record." },
	{ "spf-differs", "warning",
	  "The published SPF is not the generated one: fleet addresses may be missing "
	  "(mail fails SPF) or others allowed; two SPF records are a permanent error.",
	  "Publish exactly the generated SPF record." },
	{ "dmarc-missing", "warning",
	  "Without DMARC receivers get no policy and the domain no aggregate reports.",
	  "Publish the generated _dmarc TXT record." },
	{ "dmarc-differs", "warning",
	  "The published DMARC record is not the generated one.",
	  "Publish exactly the generated _dmarc TXT record." },
	{ "dkim-missing", "error",
	  "Receivers cannot verify signatures made with this selector: mail fails DKIM, "
	  "and DMARC when SPF does not align.",
	  "Publish the generated DKIM record." },
	{ "dkim-differs", "error",
	  "The published key is not the one the fleet signs with: signatures fail.",
	  "Publish exactly the generated DKIM record." },
};

static const struct dnscheck_code *
dnscheck_code_find(const char *code)
{
	for (size_t i = 0; i < sizeof(dnscheck_codes) / sizeof(dnscheck_codes[0]); i++)
		if (strcmp(dnscheck_codes[i].code, code) == 0)
			return &dnscheck_codes[i];
	panic("dnscheck: finding code %s is not in the table", code);
}

void
dnscheck_add(struct dnscheck *c, const char *code, const char *subject, const char *fix_detail,
    const char *fmt, ...)
{
	const struct dnscheck_code *k = dnscheck_code_find(code);
	struct dnscheck_report *r = c->out;
	struct dnsgen_error *f;
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	r->findings = xreallocarray(r->findings, r->nfindings + 1, sizeof(*r->findings));
	f = &r->findings[r->nfindings++];
	f->severity = xstrdup(k->severity);
	f->code = xstrdup(k->code);
	f->subject = xstrdup(subject);
	f->what = xstrdup(what);
	f->why = xstrdup(k->why);
	if (fix_detail != NULL && fix_detail[0] != '\0')
		f->fix = xasprintf("%s %s", k->fix, fix_detail);
	else
		f->fix = xstrdup(k->fix);
	if (strcmp(k->severity, "error") == 0)
		r->nerrors++;
	else if (strcmp(k->severity, "warning") == 0)
		r->nwarnings++;
}

int
dnscheck_lookup_failed(struct dnscheck *c, const char *name, const char *type,
    const struct dns_status *st)
{
	if (st->result == DNS_BOGUS) {
		dnscheck_add(c, "dnssec-bogus", name, NULL, "%s %s: %s", name, type, st->error);
		return 1;
	}
	if (st->result == DNS_TEMPFAIL || st->result == DNS_INVALID) {
		dnscheck_add(c, "check-incomplete", name, NULL, "%s %s: %s", name, type,
		    st->error);
		return 1;
	}
	return 0;
}

void
dnscheck_hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

char *
dnscheck_txt_unquote(const char *rdata)
{
	char *out = xmalloc(strlen(rdata) + 1);
	size_t o = 0;
	int in = 0;

	for (const char *p = rdata; *p; p++) {
		if (*p == '"') {
			in = !in;
			continue;
		}
		if (!in)
			continue;
		if (*p == '\\' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
		    isdigit((unsigned char)p[3])) {
			out[o++] = (char)((p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0'));
			p += 3;
		} else if (*p == '\\' && p[1] != '\0')
			out[o++] = *++p;
		else
			out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

/* How many of the TXT records begin with prefix (case-insensitive, then a
 * ';', a space or the end), and the first such one. */
static size_t
txt_count(const struct dns_txt_result *t, const char *prefix, size_t *first)
{
	size_t pl = strlen(prefix), n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->len[i] < pl || strncasecmp(t->txt[i], prefix, pl) != 0)
			continue;
		if (t->len[i] > pl && t->txt[i][pl] != ';' && t->txt[i][pl] != ' ')
			continue;
		if (n++ == 0 && first)
			*first = i;
	}
	return n;
}

void
dnscheck_tlsrpt(struct dnscheck *c, const char *name)
{
	struct dns_txt_result t;
	size_t n;

	dns_txt(c->o->resolver, name, &t);
	if (dnscheck_lookup_failed(c, name, "TXT", &t.st))
		goto out;
	n = txt_count(&t, "v=TLSRPTv1", NULL);
	if (n == 0)
		dnscheck_add(c, "tlsrpt-missing", name, NULL, "no v=TLSRPTv1 TXT record at %s",
		    name);
	else if (n > 1)
		dnscheck_add(c, "tlsrpt-multiple", name, NULL,
		    "%zu v=TLSRPTv1 TXT records at %s", n, name);
out:
	dns_txt_result_free(&t);
}

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
	n = w->prefix ? txt_count(&t, w->prefix, &first) : t.n;
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
