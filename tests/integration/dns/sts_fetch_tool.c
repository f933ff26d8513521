/* The project's own MTA-STS fetcher (lib/sts_fetch.c) as a command, for
 * tests that check what mxd serves the way a sending MTA fetches it:
 *
 *   sts_fetch_tool fetch DOMAIN CONNECT_HOST PORT CA_FILE
 *       fetch https://mta-sts.DOMAIN/.well-known/mta-sts.txt from
 *       CONNECT_HOST:PORT (SNI, Host and the certificate check stay
 *       mta-sts.DOMAIN), print "result=ok status=200" (or the RFC 8460
 *       result type and the reason) and the policy as sts_policy_render
 *       writes it; exit 0 only when the fetch succeeded.
 *   sts_fetch_tool parse FILE
 *       parse the policy file FILE with sts_policy_parse and print its
 *       rendering: the same text means the same policy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sts.h"
#include "sts_fetch.h"

static int
sts_fetch_tool_print(const struct sts_policy *p)
{
	struct buf b;

	buf_init(&b);
	sts_policy_render(p, &b);
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
	return 0;
}

static int
sts_fetch_tool_fetch(char **argv)
{
	struct sts_fetch_opts opts = { argv[3], 20000, argv[1], (unsigned)atoi(argv[2]) };
	struct sts_fetch_out out;

	enum sts_fetch_result r = sts_fetch(argv[0], &opts, &out);
	printf("result=%s status=%ld reason=\"%s\"\n",
	    r == STS_FETCH_OK ? "ok" : sts_fetch_result_type(r), out.http_status, out.reason);
	if (r == STS_FETCH_OK)
		sts_fetch_tool_print(out.policy);
	sts_fetch_out_free(&out);
	return r == STS_FETCH_OK ? 0 : 1;
}

static int
sts_fetch_tool_parse(const char *path)
{
	static char body[STS_POLICY_MAX + 1];
	struct sts_policy *p;
	char err[256];

	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return 2;
	}
	size_t n = fread(body, 1, sizeof(body), f);
	fclose(f);
	if (sts_policy_parse(body, n, &p, err, sizeof(err)) != STS_OK) {
		printf("invalid: %s\n", err);
		return 1;
	}
	sts_fetch_tool_print(p);
	sts_policy_free(p);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "fetch") == 0)
		return sts_fetch_tool_fetch(argv + 2);
	if (argc == 3 && strcmp(argv[1], "parse") == 0)
		return sts_fetch_tool_parse(argv[2]);
	fprintf(stderr, "usage: sts_fetch_tool fetch DOMAIN CONNECT_HOST PORT CA_FILE\n"
	    "       sts_fetch_tool parse FILE\n");
	return 2;
}
