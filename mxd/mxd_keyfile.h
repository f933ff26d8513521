/* mxd's key files (mxd_keyfile.c). */
#ifndef MXD_KEYFILE_H
#define MXD_KEYFILE_H

#include "mxd_config.h"

/* tls.next_key, or "<first certificate's key>.next"; NULL without
 * certificates. Allocated. */
char *mxd_keyfile_next_key_path(const struct mxd_config *cfg);
/* fsync a file by its path; -1 with errno. */
int mxd_keyfile_fsync(const char *path);
/* fsync the directory that holds path; -1 with errno. */
int mxd_keyfile_fsync_dir(const char *path);

#endif
