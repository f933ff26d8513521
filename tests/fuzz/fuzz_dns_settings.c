/* A domain's DNS settings as controld receives them from mailctl
 * (Admin.SetDomainDns, a packed DomainDns), checked by dns_settings_check:
 * any bytes are refused or accepted, never a crash or a leak, and settings
 * it accepts are normalized (a second check accepts them unchanged). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_settings.h"
#include "mxfleet.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Mxfleet__V1__DomainDns *d = mxfleet__v1__domain_dns__unpack(NULL, size, data);
	char msg[600];

	if (d == NULL)
		return 0;
	if (dns_settings_check(d, msg, sizeof(msg)) == 0) {
		char *domain = strdup(d->domain);
		if (domain == NULL || dns_settings_check(d, msg, sizeof(msg)) != 0 ||
		    strcmp(domain, d->domain) != 0)
			abort();
		free(domain);
	} else if (msg[0] == '\0' || memchr(msg, '\n', strlen(msg)) != NULL)
		abort();
	mxfleet__v1__domain_dns__free_unpacked(d, NULL);
	return 0;
}
