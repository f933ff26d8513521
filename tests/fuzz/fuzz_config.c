/* mxd's configuration file: libconfig's parser plus our key and value checks.
 * A broken file gives an error message, never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "mxd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64], err[600];
	struct mxd_config *cfg;

	if (size > 65536)
		return 0;
	/* @include could read other files: keep inputs self-contained. */
	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if (fd < 0) {
		fd = memfd_create("fuzz-config", 0);
		if (fd < 0)
			abort();
		log_init("fuzz", LOG_LEVEL_ERROR, 0);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (mxd_config_load(path, &cfg, err, sizeof(err)) == 0)
		mxd_config_free(cfg);
	else if (err[0] == '\0')
		abort();	/* every failure explains itself */
	return 0;
}
