/* What the builder and the parser of TLS reports share (tlsrpt.h). */
#include <stdlib.h>
#include <string.h>

#include "tlsrpt.h"

static void
tlsrpt_strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
tlsrpt_failure_free(struct tlsrpt_failure *f)
{
	free(f->result_type);
	free(f->sending_mta_ip);
	free(f->receiving_mx_hostname);
	free(f->receiving_mx_helo);
	free(f->receiving_ip);
	free(f->additional_information);
	free(f->failure_reason_code);
}

void
tlsrpt_report_free(struct tlsrpt_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_policies; i++) {
		struct tlsrpt_policy *p = &r->policies[i];

		free(p->policy_type);
		tlsrpt_strings_free(p->policy_string, p->n_policy_string);
		free(p->policy_domain);
		tlsrpt_strings_free(p->mx_host, p->n_mx_host);
		for (size_t j = 0; j < p->n_failures; j++)
			tlsrpt_failure_free(&p->failures[j]);
		free(p->failures);
	}
	free(r->policies);
	free(r->organization_name);
	free(r->contact_info);
	free(r->report_id);
	memset(r, 0, sizeof(*r));
}
