/* What a host says of itself for DNS (issue 11): the HostIdentity controld
 * receives at Register and Heartbeat, as db_identity_check judges it before
 * anything reaches the DNS tables, and the same bytes as a DER certificate,
 * as lib/tlsid.c describes one (mxd's own certificates; controld's DNS checks
 * describe what live servers present). Any bytes: an answer, never a crash
 * or a leak. */
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>

#include "db_identity.h"
#include "tlsid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[300];
	Mxfleet__V1__HostIdentity *id = mxfleet__v1__host_identity__unpack(NULL, size, data);
	if (id) {
		(void)db_identity_check(id, why, sizeof(why));
		mxfleet__v1__host_identity__free_unpacked(id, NULL);
	}
	const unsigned char *p = data;
	X509 *x = d2i_X509(NULL, &p, (long)size);
	if (x) {
		struct tlsid_cert c;
		if (tlsid_cert_describe(x, &c, why, sizeof(why)) == 0) {
			if (c.nnames > TLSID_MAX_NAMES || !tlsid_spki_valid(c.spki))
				abort();
			tlsid_cert_clear(&c);
		}
		X509_free(x);
	}
	return 0;
}
