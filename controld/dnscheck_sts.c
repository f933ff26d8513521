/* dns check, MTA-STS (RFC 8461): the _mta-sts TXT record against the
 * generated id, and the policy as every address of mta-sts.<domain> serves
 * it (fetched with lib/sts_fetch.c, so exactly as mxd's own outbound fetches
 * policies) against the generated policy and the published MX. */
#include "dnscheck_int.h"
#include "buf.h"
#include "sts.h"
#include "sts_fetch.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define STS_DAY		86400

static void
check_sts_txt(struct dnscheck *c)
{
	struct dns_txt_result t;
	struct sts_txt rec;
	char name[DNS_NAME_MAX], err[STS_ERR_MAX], fix[DNS_NAME_MAX + 80];

	snprintf(name, sizeof(name), "_mta-sts.%s", c->in->name);
	snprintf(fix, sizeof(fix), "Publish: %s. TXT \"v=STSv1; id=%s\"", name, c->want->sts_id);
	dns_txt(c->o->resolver, name, &t);
	if (dnscheck_lookup_failed(c, name, "TXT", &t.st))
		goto out;
	switch (sts_txt_select_records((const char *const *)t.txt, t.len, t.n, &rec, err,
	    sizeof(err))) {
	case STS_OK:
		if (strcmp(rec.id, c->want->sts_id) != 0)
			dnscheck_add(c, "sts-id-stale", name, fix,
			    "%s has id=%s, the generated policy's id is %s", name, rec.id,
			    c->want->sts_id);
		break;
	case STS_ERR_NO_RECORD:
		dnscheck_add(c, "sts-txt-missing", name, fix, "no v=STSv1 TXT record at %s", name);
		break;
	case STS_ERR_MULTIPLE:
		dnscheck_add(c, "sts-txt-multiple", name, fix, "%s: %s", name, err);
		break;
	default:
		dnscheck_add(c, "sts-txt-invalid", name, fix, "%s: %s", name, err);
		break;
	}
out:
	dns_txt_result_free(&t);
}

/* A policy on one line, for a finding: "mode: enforce; mx: a; max_age: 1". */
static void
policy_line(const struct sts_policy *p, char *out, size_t outsz)
{
	struct buf b;
	size_t o = 0;

	buf_init(&b);
	sts_policy_render(p, &b);
	for (size_t i = 0; i < b.len && o + 3 < outsz; i++) {
		if (b.data[i] == '\r')
			continue;
		if (b.data[i] == '\n') {
			if (i + 1 < b.len) {
				out[o++] = ';';
				out[o++] = ' ';
			}
			continue;
		}
		out[o++] = b.data[i];
	}
	out[o] = '\0';
	buf_free(&b);
}

/* What a served policy says, whoever generated it: mode, max_age, and
 * whether every published MX matches one of its patterns. */
static void
check_policy_content(struct dnscheck *c, const char *host, const struct sts_policy *p)
{
	if (p->mode == STS_MODE_TESTING)
		dnscheck_add(c, "sts-mode-testing", host, NULL, "the policy's mode is testing");
	else if (p->mode == STS_MODE_NONE)
		dnscheck_add(c, "sts-mode-none", host, NULL, "the policy's mode is none");
	if (p->max_age < STS_DAY || p->max_age_capped)
		dnscheck_add(c, "sts-max-age", host, NULL, "max_age is %s%u s, want %d to %d",
		    p->max_age_capped ? "over " : "", p->max_age, STS_DAY, STS_MAX_AGE_MAX);
	if (!c->mx_known || c->mx.implicit || c->mx.null_mx)
		return;
	for (size_t i = 0; i < c->mx.n; i++)
		if (!sts_mx_match(p, c->mx.mx[i].host))
			dnscheck_add(c, "sts-mx-unmatched", c->mx.mx[i].host, NULL,
			    "MX %s matches no mx: line of the policy served at %s", c->mx.mx[i].host,
			    host);
}

static void
check_policy_differs(struct dnscheck *c, const char *host, const char *ip,
    const struct sts_policy *got)
{
	struct sts_policy *want = NULL;
	char err[STS_ERR_MAX] = "no policy was generated", a[600], b[600];

	if (c->want->sts_policy == NULL || sts_policy_parse(c->want->sts_policy,
	    strlen(c->want->sts_policy), &want, err, sizeof(err)) != STS_OK) {
		dnscheck_add(c, "check-incomplete", host, NULL,
		    "the generated policy cannot be compared: %s", err);
		return;
	}
	policy_line(got, a, sizeof(a));
	policy_line(want, b, sizeof(b));
	if (strcmp(a, b) != 0)
		dnscheck_add(c, "sts-policy-differs", host, NULL,
		    "%s serves \"%s\", generated \"%s\"", ip, a, b);
	sts_policy_free(want);
}

/* Fetch from one address; 1 when the policy came (*content_done: its
 * content was judged already, once is enough). */
static void
fetch_one(struct dnscheck *c, const char *host, const char *ip, int *content_done)
{
	struct sts_fetch_opts fo = {
		.ca_file = c->o->ca_file,
		.timeout_ms = c->o->https_ms > 0 ? c->o->https_ms : DNSCHECK_HTTPS_MS,
		.connect_host = ip,
		.connect_port = c->o->https_port ? c->o->https_port : 443,
	};
	struct sts_fetch_out out;

	switch (sts_fetch(c->in->name, &fo, &out)) {
	case STS_FETCH_OK:
		check_policy_differs(c, host, ip, out.policy);
		if (!*content_done)
			check_policy_content(c, host, out.policy);
		*content_done = 1;
		break;
	case STS_FETCH_WEBPKI:
		dnscheck_add(c, "sts-policy-cert", host, NULL, "at %s: %s", ip, out.reason);
		break;
	case STS_FETCH_INVALID:
		dnscheck_add(c, "sts-policy-invalid", host, NULL, "at %s: %s", ip, out.reason);
		break;
	case STS_FETCH_ERROR:
		if (out.http_status >= 300 && out.http_status < 400)
			dnscheck_add(c, "sts-policy-redirect", host, NULL, "at %s: %s", ip,
			    out.reason);
		else if (out.type_refused)
			dnscheck_add(c, "sts-policy-content-type", host, NULL, "at %s: %s", ip,
			    out.reason);
		else
			dnscheck_add(c, "sts-policy-unreachable", host, NULL, "at %s: %s", ip,
			    out.reason);
		break;
	}
	sts_fetch_out_free(&out);
}

static void
check_sts_policy(struct dnscheck *c)
{
	struct dns_addr_result ar;
	char host[DNS_NAME_MAX], ip[INET6_ADDRSTRLEN];
	int content_done = 0;

	snprintf(host, sizeof(host), "mta-sts.%s", c->in->name);
	dns_addrs(c->o->resolver, host, DNS_ADDR_ANY, &ar);
	if (dnscheck_lookup_failed(c, host, "A/AAAA", &ar.st))
		goto out;
	if (ar.n == 0)
		dnscheck_add(c, "sts-policy-unreachable", host, NULL, "%s has no address (%s)",
		    host, dns_result_str(ar.st.result));
	for (size_t i = 0; i < ar.n; i++) {
		if (inet_ntop(ar.addrs[i].family, ar.addrs[i].addr, ip, sizeof(ip)) == NULL)
			continue;
		fetch_one(c, host, ip, &content_done);
	}
out:
	dns_addr_result_free(&ar);
}

void
dnscheck_sts(struct dnscheck *c)
{
	/* Mode none generates no record and no policy: nothing to compare. */
	if (c->want->sts_id[0] == '\0')
		return;
	check_sts_txt(c);
	check_sts_policy(c);
}
