/* The spool envelope header, as read back from disk after a crash or by
 * hand-edited files: must parse or fail cleanly, never crash or leak. What
 * parses must hold what the rest of mxd relies on: the DSN parameters are
 * valid RFC 3461 syntax (they are passed on and quoted in DSN headers), and
 * dropping recipients keeps the parallel arrays in step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parameters for a next hop: one line's worth of printable ASCII. */
static void
check_params(const char *p)
{
	for (; *p; p++)
		if (*p < ' ' || *p > '~')
			abort();
}

static void
check_dsn(const struct spool_env *env)
{
	char params[1024];

	if (env->envid && !dsn_envid_ok(env->envid, strlen(env->envid)))
		abort();
	if (env->ret != DSN_RET_NONE && env->ret != DSN_RET_FULL && env->ret != DSN_RET_HDRS)
		abort();
	dsn_mail_params(env, params, sizeof(params));
	check_params(params);
	for (size_t i = 0; i < env->nrcpts; i++) {
		unsigned notify = spool_env_notify(env, i);
		const char *orcpt = spool_env_orcpt(env, i);
		if ((notify & DSN_NOTIFY_NEVER) && notify != DSN_NOTIFY_NEVER)
			abort();
		if (orcpt && !dsn_orcpt_ok(orcpt, strlen(orcpt)))
			abort();
		dsn_rcpt_params(env, i, params, sizeof(params));
		check_params(params);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_env env;
	long n = spool_parse_env((const char *)data, size, &env);
	if (n > 0) {
		if ((size_t)n > size || env.nrcpts == 0 || strchr(env.id, '/') != NULL)
			abort();
		check_dsn(&env);
		/* Drop recipients as a partial delivery would, chosen by the
		 * input's bytes; the survivors keep their own parameters. */
		size_t before = env.nrcpts, kept = 0;
		int *keep = calloc(before, sizeof(*keep));
		char **names = calloc(before, sizeof(*names));
		unsigned *notify = calloc(before, sizeof(*notify));
		if (keep == NULL || names == NULL || notify == NULL)
			abort();
		for (size_t i = 0; i < before; i++) {
			keep[i] = (data[i % size] >> (i % 8)) & 1;
			if (keep[i]) {
				names[kept] = strdup(env.rcpts[i]);
				notify[kept++] = spool_env_notify(&env, i);
			}
		}
		spool_env_keep(&env, keep);
		if (env.nrcpts != kept)
			abort();
		for (size_t i = 0; i < kept; i++) {
			if (strcmp(env.rcpts[i], names[i]) != 0 || spool_env_notify(&env, i) != notify[i])
				abort();
			free(names[i]);
		}
		check_dsn(&env);
		free(keep);
		free(names);
		free(notify);
		spool_env_free(&env);
	}
	return 0;
}
