/* The configuration snapshot mxd caches from controld (spool_dir/
 * config-snapshot.pb), as read back at start and on every reload: any bytes
 * must leave a usable configuration (the file's domains at least), never a
 * crash or a leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mxd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], conf[128], snap[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/fuzz-snapshot.XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(conf, sizeof(conf), "%s/mxd.conf", dir);
	snprintf(snap, sizeof(snap), "%s/config-snapshot.pb", dir);
	FILE *f = fopen(conf, "w");
	if (f == NULL)
		abort();
	fprintf(f, "spool_dir = \"%s\";\n"
	    "domains = ( { name = \"file.test\"; next_hop = \"smtp:127.0.0.1:25\"; } );\n"
	    "control = { server = \"127.0.0.1:7443\"; cert = \"c\"; key = \"k\"; ca = \"a\"; };\n", dir);
	fclose(f);
	log_init("fuzz", LOG_LEVEL_ERROR, 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[600];
	struct mxd_config *cfg;
	if (dir[0] == '\0')
		setup();
	FILE *f = fopen(snap, "w");
	if (f == NULL || fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	if (mxd_config_load(conf, &cfg, err, sizeof(err)) != 0)
		abort();	/* a bad cache never makes the file's config unusable */
	if (mxd_config_domain(cfg, "file.test") == NULL && cfg->ndomains == 0)
		abort();
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (cfg->domains[i].name == NULL || cfg->domains[i].next_hop == NULL)
			abort();
	mxd_config_free(cfg);
	return 0;
}
