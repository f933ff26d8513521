/* The DNS generator (controld/dnsgen.c) fed what hostile hosts and careless
 * operators could hand it: every name, address, key, certificate name and
 * setting is fuzz text. Never crash or leak; either the domain is refused
 * with a printable reason, or every record parses as a zone file line with
 * ldns, carries no control character, and the policy (when there is one)
 * parses with the project's MTA-STS parser and has the id its text gives.
 *
 * Input: fields separated by 0x01, in order: domain, sts_mode, rua, spf,
 * dmarc, then per host (at most 3) host_id, mx_name, two addresses, an
 * alias, two certificate names, the served SPKI, the next SPKI, and last a
 * DKIM selector, key type and base64 key. Missing fields are NULL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dnsgen.h"
#include "sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS		(5 + 3 * 9 + 3)
#define HOST_FIELD(h, i)	(5 + (h) * 9 + (i))

static void
check_printable(const char *s, int allow_empty)
{
	if (s == NULL || (!allow_empty && s[0] == '\0'))
		abort();
	for (size_t i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			abort();
}

static void
check_rr(const struct dnsgen_rr *rr)
{
	char line[16384];
	ldns_rr *l = NULL;
	size_t n = strlen(rr->owner);

	check_printable(rr->owner, 0);
	check_printable(rr->type, 0);
	check_printable(rr->rdata, 0);
	check_printable(rr->why, 0);
	if (rr->owner[n - 1] != '.')
		abort();
	snprintf(line, sizeof(line), "%s %u IN %s %s", rr->owner, rr->ttl, rr->type, rr->rdata);
	if (ldns_rr_new_frm_str(&l, line, 0, NULL, NULL) != LDNS_STATUS_OK)
		abort();
	ldns_rr_free(l);
}

static void
check_result(const struct dnsgen_result *r)
{
	char id[33], err[STS_ERR_MAX];
	struct sts_policy *p = NULL;

	for (size_t i = 0; i < r->nrrs; i++)
		check_rr(&r->rrs[i]);
	for (size_t i = 0; i < r->nerrors; i++) {
		const struct dnsgen_error *e = &r->errors[i];
		check_printable(e->severity, 0);
		check_printable(e->code, 0);
		check_printable(e->subject, 0);
		check_printable(e->what, 0);
		check_printable(e->why, 0);
		check_printable(e->fix, 0);
	}
	if (r->sts_policy == NULL) {
		if (r->sts_id[0] != '\0')
			abort();
		return;
	}
	dnsgen_sts_id(r->sts_policy, id);
	if (strcmp(id, r->sts_id) != 0)
		abort();
	if (sts_policy_parse(r->sts_policy, strlen(r->sts_policy), &p, err,
	    sizeof(err)) != STS_OK) {
		fprintf(stderr, "policy refused: %s\n%s", err, r->sts_policy);
		abort();
	}
	sts_policy_free(p);
}

static size_t
split(char *buf, size_t size, char **f)
{
	size_t n = 0;

	f[n++] = buf;
	for (size_t i = 0; i < size && n < NFIELDS; i++)
		if (buf[i] == '\x01') {
			buf[i] = '\0';
			f[n++] = buf + i + 1;
		}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[NFIELDS] = { 0 }, err[256] = "";
	struct dnsgen_host hosts[3];
	struct dnsgen_cert certs[3];
	struct dnsgen_dkim dkim;
	struct dnsgen_result r;
	size_t nf, nhosts = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	nf = split(buf, size, f);
	memset(hosts, 0, sizeof(hosts));
	for (size_t h = 0; h < 3 && HOST_FIELD(h, 0) < nf; h++, nhosts++) {
		char **v = &f[HOST_FIELD(h, 0)];
		certs[h] = (struct dnsgen_cert){ v[7], &v[5], 2, 0 };
		hosts[h] = (struct dnsgen_host){ .host_id = v[0], .mx_name = v[1],
		    .addrs = &v[2], .naddrs = 2, .aliases = &v[4], .naliases = 1,
		    .certs = &certs[h], .ncerts = 1, .next_spki = v[8] };
	}
	dkim = (struct dnsgen_dkim){ f[NFIELDS - 3], f[NFIELDS - 2], f[NFIELDS - 1],
	    DNSGEN_DKIM_ACTIVE };
	struct dnsgen_domain d = { .name = f[0], .ttl = 300, .hosts = hosts,
	    .nhosts = nhosts, .sts_mode = f[1], .tlsrpt_rua = f[2], .spf = f[3],
	    .dmarc = f[4], .dkim = &dkim, .ndkim = 1 };

	if (dnsgen_domain(&d, &r, err, sizeof(err)) == 0) {
		check_result(&r);
		dnsgen_result_free(&r);
	} else
		check_printable(err, 0);
	free(buf);
	return 0;
}
