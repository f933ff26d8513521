/* dns check, one fleet host: its MX name's addresses (and a CNAME on the
 * way), the PTR of each of its addresses, a live STARTTLS to each published
 * address, its TLSA records against the keys served, retired and next, and
 * its own TLSRPT record. */
#include "dnscheck_int.h"
#include "dnsname.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define HOST_KEYS_MAX	16	/* distinct keys kept from the probes */

/* What the host's checks learn and pass on. */
struct host_state {
	const struct dnsgen_host *h;
	char		 cname[DNS_NAME_MAX];	/* the MX name's target, "" if none */
	char		 (*probe_ips)[INET6_ADDRSTRLEN];
	size_t		 nprobe;
	struct {
		char	 spki[65], full[65];
		char	 ip[INET6_ADDRSTRLEN];
	}		 keys[HOST_KEYS_MAX];
	size_t		 nkeys;
};

static void
addr_text(const struct dns_addr *a, char *out, size_t outsz)
{
	if (inet_ntop(a->family, a->addr, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "?");
}

/* Whether the literal ip is the address a. */
static int
addr_is(const char *ip, const struct dns_addr *a)
{
	unsigned char b[16];

	if (a->family == AF_INET)
		return inet_pton(AF_INET, ip, b) == 1 && memcmp(b, a->addr, 4) == 0;
	return inet_pton(AF_INET6, ip, b) == 1 && memcmp(b, a->addr, 16) == 0;
}

static int
host_has_addr(const struct dnsgen_host *h, const struct dns_addr *a)
{
	for (size_t i = 0; i < h->naddrs; i++)
		if (addr_is(h->addrs[i], a))
			return 1;
	return 0;
}

static void
probe_ip_add(struct host_state *hs, const char *ip)
{
	hs->probe_ips = xreallocarray(hs->probe_ips, hs->nprobe + 1, sizeof(*hs->probe_ips));
	snprintf(hs->probe_ips[hs->nprobe++], sizeof(hs->probe_ips[0]), "%s", ip);
}

/* The MX name: a CNAME, no address, or another's address. The addresses
 * found are what the probes connect to (the host's own when none is found:
 * the TLS checks still say something). */
static void
check_addrs(struct dnscheck *c, struct host_state *hs)
{
	const struct dnsgen_host *h = hs->h;
	struct dns_addr_result ar;
	char ip[INET6_ADDRSTRLEN];

	dns_addrs(c->o->resolver, h->mx_name, DNS_ADDR_ANY, &ar);
	if (!dnscheck_lookup_failed(c, h->mx_name, "A/AAAA", &ar.st) && ar.st.canon[0] != '\0' &&
	    !dnsname_equal(ar.st.canon, strlen(ar.st.canon), h->mx_name)) {
		snprintf(hs->cname, sizeof(hs->cname), "%s", ar.st.canon);
		dnscheck_add(c, "mx-cname", h->mx_name, NULL, "%s is a CNAME to %s", h->mx_name,
		    hs->cname);
	}
	if (ar.st.result == DNS_NXDOMAIN || ar.st.result == DNS_NODATA)
		dnscheck_add(c, "mx-address-missing", h->mx_name, NULL,
		    "%s has no A or AAAA record (%s)", h->mx_name, dns_result_str(ar.st.result));
	for (size_t i = 0; i < ar.n; i++) {
		addr_text(&ar.addrs[i], ip, sizeof(ip));
		probe_ip_add(hs, ip);
		if (!host_has_addr(h, &ar.addrs[i]))
			dnscheck_add(c, "mx-address-foreign", h->mx_name, NULL,
			    "%s has address %s, which is not one of host %s's", h->mx_name, ip,
			    h->host_id ? h->host_id : h->mx_name);
	}
	if (ar.n == 0)
		for (size_t i = 0; i < h->naddrs; i++)
			probe_ip_add(hs, h->addrs[i]);
	dns_addr_result_free(&ar);
}

/* Does name resolve to the literal ip? -1 when the lookup failed. */
static int
name_has_ip(struct dnscheck *c, const char *name, const char *ip)
{
	struct dns_addr_result ar;
	int found = 0;

	dns_addrs(c->o->resolver, name, DNS_ADDR_ANY, &ar);
	if (dnscheck_lookup_failed(c, name, "A/AAAA", &ar.st))
		found = -1;
	for (size_t i = 0; i < ar.n && found == 0; i++)
		found = addr_is(ip, &ar.addrs[i]);
	dns_addr_result_free(&ar);
	return found;
}

static void
check_ptr(struct dnscheck *c, const struct dnsgen_host *h, const char *ip)
{
	struct dns_name_result pr;
	char rev[DNS_NAME_MAX], fix[DNS_NAME_MAX * 2];
	int confirmed = 0, is_mx = 0, failed = 0;

	if (dns_reverse_name(ip, c->o->reverse_root, rev, sizeof(rev)) != 0) {
		dnscheck_add(c, "check-incomplete", ip, NULL, "%s: no reverse name", ip);
		return;
	}
	snprintf(fix, sizeof(fix), "Publish: %s. PTR %s.", rev, h->mx_name);
	dns_ptr(c->o->resolver, rev, &pr);
	if (dnscheck_lookup_failed(c, rev, "PTR", &pr.st))
		goto out;
	if (pr.n == 0) {
		dnscheck_add(c, "ptr-missing", ip, fix, "%s has no PTR record (%s %s)", ip, rev,
		    dns_result_str(pr.st.result));
		goto out;
	}
	for (size_t i = 0; i < pr.n; i++) {
		int r = name_has_ip(c, pr.names[i], ip);
		failed |= r < 0;
		confirmed |= r > 0;
		is_mx |= dnsname_equal(pr.names[i], strlen(pr.names[i]), h->mx_name);
	}
	if (!confirmed && !failed)
		dnscheck_add(c, "ptr-not-confirmed", ip, fix,
		    "the PTR of %s names %s, which does not resolve to %s", ip, pr.names[0], ip);
	if (!is_mx)
		dnscheck_add(c, "ptr-not-mx", ip, fix, "the PTR of %s names %s, not the MX name %s",
		    ip, pr.names[0], h->mx_name);
out:
	dns_name_result_free(&pr);
}

static void
keep_key(struct host_state *hs, const struct dnscheck_probe *p, const char *ip)
{
	for (size_t i = 0; i < hs->nkeys; i++)
		if (strcmp(hs->keys[i].spki, p->id.spki) == 0)
			return;
	if (hs->nkeys == HOST_KEYS_MAX)
		return;
	snprintf(hs->keys[hs->nkeys].spki, sizeof(hs->keys[0].spki), "%s", p->id.spki);
	snprintf(hs->keys[hs->nkeys].full, sizeof(hs->keys[0].full), "%s", p->full);
	snprintf(hs->keys[hs->nkeys].ip, sizeof(hs->keys[0].ip), "%s", ip);
	hs->nkeys++;
}

static void
check_expiry(struct dnscheck *c, const struct dnsgen_host *h, const char *ip,
    const struct dnscheck_probe *p)
{
	int64_t now = c->o->now ? c->o->now : (int64_t)time(NULL);
	char when[32] = "?";
	time_t t = (time_t)p->id.not_after;
	struct tm tm;

	if (p->id.not_after == 0)
		return;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (p->id.not_after <= now)
		dnscheck_add(c, "cert-expired", h->mx_name, NULL,
		    "the certificate served at %s expired at %s", ip, when);
	else if (p->id.not_after - now < DNSCHECK_EXPIRY_WARN)
		dnscheck_add(c, "cert-expiring", h->mx_name, NULL,
		    "the certificate served at %s expires at %s, in %lld hours", ip, when,
		    (long long)((p->id.not_after - now) / 3600));
}

/* Does a name of the certificate cover name? The same matching as
 * generation (dnsgen_name_covers, RFC 6125 6.4.3) over the same names
 * (tlsid: the DNS subjectAltNames), so a certificate that passes there
 * passes here. */
static int
cert_covers(const struct tlsid_cert *id, const char *name)
{
	for (size_t i = 0; i < id->nnames; i++)
		if (dnsgen_name_covers(id->names[i], name))
			return 1;
	return 0;
}

/* What a sender sees at each address: STARTTLS, and a certificate for the
 * MX name (and for the CNAME target: what some senders check instead). */
static void
check_tls(struct dnscheck *c, struct host_state *hs)
{
	const struct dnsgen_host *h = hs->h;
	const char *helo = c->o->helo ? c->o->helo : "dnscheck.invalid";
	unsigned port = c->o->smtp_port ? c->o->smtp_port : 25;

	for (size_t i = 0; i < hs->nprobe; i++) {
		const char *ip = hs->probe_ips[i];
		struct dnscheck_probe p;

		dnscheck_probe_run(ip, port, h->mx_name, helo, c->o->smtp_ms, &p);
		if (!p.ok) {
			dnscheck_add(c, "starttls-failed", ip, NULL, "%s (MX %s): %s", ip,
			    h->mx_name, p.fail);
			continue;
		}
		keep_key(hs, &p, ip);
		if (!cert_covers(&p.id, h->mx_name))
			dnscheck_add(c, "cert-name-missing", h->mx_name, NULL,
			    "the certificate served at %s does not cover %s", ip, h->mx_name);
		if (hs->cname[0] && !cert_covers(&p.id, hs->cname))
			dnscheck_add(c, "mx-cname-cert", hs->cname, NULL,
			    "the certificate served at %s (MX %s) does not cover the CNAME target %s",
			    ip, h->mx_name, hs->cname);
		check_expiry(c, h, ip, &p);
		dnscheck_probe_free(&p);
	}
}

/* Whether a TLSA record is DANE-EE 3 1 1 for the key spki (hex). */
static int
tlsa_is_spki(const struct dns_tlsa *t, const char *spki)
{
	char hex[2 * 64 + 1];

	if (t->usage != 3 || t->selector != 1 || t->mtype != 1 || t->len != 32 ||
	    spki == NULL || strlen(spki) != 64)
		return 0;
	dnscheck_hex(t->data, t->len, hex);
	return strcasecmp(hex, spki) == 0;
}

/* A DANE-EE record (3 x 1) matching a key served (RFC 7672 3.1.1). */
static int
tlsa_matches_served(const struct dns_tlsa_result *tr, const char *spki, const char *full)
{
	char hex[2 * 64 + 1];

	for (size_t i = 0; i < tr->n; i++) {
		const struct dns_tlsa *t = &tr->rr[i];
		if (t->usage != 3 || t->mtype != 1 || t->len != 32)
			continue;
		dnscheck_hex(t->data, t->len, hex);
		if (strcmp(hex, t->selector == 1 ? spki : full) == 0)
			return 1;
	}
	return 0;
}

static int
tlsa_has_ta(const struct dns_tlsa_result *tr)
{
	for (size_t i = 0; i < tr->n; i++)
		if (tr->rr[i].usage != 3)
			return 1;
	return 0;
}

static void
check_tlsa(struct dnscheck *c, struct host_state *hs)
{
	const struct dnsgen_host *h = hs->h;
	struct dns_tlsa_result tr;
	char name[DNS_NAME_MAX], fix[DNS_NAME_MAX + 128];

	snprintf(name, sizeof(name), "_25._tcp.%s", h->mx_name);
	dns_tlsa(c->o->resolver, name, &tr);
	if (dnscheck_lookup_failed(c, name, "TLSA", &tr.st))
		goto out;
	if (tr.n == 0) {
		dnscheck_add(c, "tlsa-missing", name, NULL, "no TLSA record at %s", name);
		goto out;
	}
	if (tr.st.sec != DNS_SEC_SECURE)
		dnscheck_add(c, "dnssec-unsigned", name, NULL,
		    "the TLSA records at %s are not DNSSEC-signed (the answer is %s)", name,
		    dns_sec_str(tr.st.sec));
	/* Trust-anchor records (usage 0, 2) match a chain this check does not
	 * verify: judge only when every record is DANE-EE. */
	for (size_t k = 0; k < hs->nkeys && !tlsa_has_ta(&tr); k++) {
		if (tlsa_matches_served(&tr, hs->keys[k].spki, hs->keys[k].full))
			continue;
		snprintf(fix, sizeof(fix), "Publish: %s. TLSA 3 1 1 %s", name, hs->keys[k].spki);
		dnscheck_add(c, "tlsa-mismatch", name, fix,
		    "the key served at %s (SPKI SHA-256 %s) matches none of the %zu TLSA records "
		    "at %s", hs->keys[k].ip, hs->keys[k].spki, tr.n, name);
	}
	for (size_t r = 0; r < h->nretired; r++)
		for (size_t i = 0; i < tr.n; i++)
			if (tlsa_is_spki(&tr.rr[i], h->retired_spki[r]))
				dnscheck_add(c, "tlsa-retired", name, NULL,
				    "%s has TLSA 3 1 1 %s, a key %s no longer serves", name,
				    h->retired_spki[r], h->mx_name);
	if (h->next_spki != NULL && h->next_spki[0] != '\0') {
		int found = 0;
		for (size_t i = 0; i < tr.n && !found; i++)
			found = tlsa_is_spki(&tr.rr[i], h->next_spki);
		snprintf(fix, sizeof(fix), "Publish: %s. TLSA 3 1 1 %s", name, h->next_spki);
		if (!found)
			dnscheck_add(c, "tlsa-next-missing", name, fix,
			    "no TLSA 3 1 1 at %s for %s's next key %s", name, h->mx_name,
			    h->next_spki);
	}
out:
	dns_tlsa_result_free(&tr);
}

void
dnscheck_host(struct dnscheck *c, const struct dnsgen_host *h)
{
	struct host_state hs = { .h = h };
	char name[DNS_NAME_MAX];

	if (h->mx_name == NULL || dnsname_check(h->mx_name, NULL, 0) != 0) {
		dnscheck_add(c, "check-incomplete", h->host_id ? h->host_id : "", NULL,
		    "host %s has no valid MX name", h->host_id ? h->host_id : "?");
		return;
	}
	check_addrs(c, &hs);
	for (size_t i = 0; i < h->naddrs; i++)
		check_ptr(c, h, h->addrs[i]);
	check_tls(c, &hs);
	check_tlsa(c, &hs);
	snprintf(name, sizeof(name), "_smtp._tls.%s", h->mx_name);
	dnscheck_tlsrpt(c, name);
	free(hs.probe_ips);
}
