/* dns check: every finding it can give (code, severity, why), how a
 * finding is added, and the small pieces every part of the check shares
 * (a failed lookup, hex, TXT text, the TLSRPT records of a name). A leaf:
 * dnscheck.c, dnscheck_host.c, dnscheck_sts.c and dnscheck_probe.c call it,
 * it calls none of them. */
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
size_t
dnscheck_txt_count(const struct dns_txt_result *t, const char *prefix, size_t *first)
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
	n = dnscheck_txt_count(&t, "v=TLSRPTv1", NULL);
	if (n == 0)
		dnscheck_add(c, "tlsrpt-missing", name, NULL, "no v=TLSRPTv1 TXT record at %s",
		    name);
	else if (n > 1)
		dnscheck_add(c, "tlsrpt-multiple", name, NULL,
		    "%zu v=TLSRPTv1 TXT records at %s", n, name);
out:
	dns_txt_result_free(&t);
}

