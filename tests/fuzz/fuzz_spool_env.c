/* The spool envelope header, as read back from disk after a crash or by
 * hand-edited files: must parse or fail cleanly, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_env env;
	long n = spool_parse_env((const char *)data, size, &env);
	if (n > 0) {
		if ((size_t)n > size || env.nrcpts == 0 || strchr(env.id, '/') != NULL)
			abort();
		spool_env_free(&env);
	}
	return 0;
}
