/* mxd's key files: where the next key is, and writing files durably (a
 * file's data, then its directory's entry). A leaf: mxd_identity.c (the
 * next key's creation) and mxd_keyswitch.c (the switch's renames) call it. */
#include "mxd_keyfile.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <unistd.h>

#include "xmalloc.h"

char *
mxd_keyfile_next_key_path(const struct mxd_config *cfg)
{
	if (cfg->next_key)
		return xstrdup(cfg->next_key);
	if (cfg->ncerts > 0)
		return xasprintf("%s.next", cfg->certs[0].key);
	return NULL;
}

int
mxd_keyfile_fsync(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int
mxd_keyfile_fsync_dir(const char *path)
{
	char *copy = xstrdup(path);
	int rc = mxd_keyfile_fsync(dirname(copy));
	free(copy);
	return rc;
}
