/* The MTA-STS policy host's request head parser and answer (mxd/https/
 * http_req.c, https_answer.c), as mxd-https feeds them what a client sent:
 * any bytes give "read more" or one well-formed answer, never a crash, a
 * read outside the input or a policy for a host that is not its own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_req.h"
#include "https_answer.h"
#include "log.h"
#include "mxd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char alpha_host[] = "mta-sts.alpha.test", alpha_domain[] = "alpha.test",
	alpha_policy[] = "version: STSv1\r\nmode: enforce\r\nmx: mx.alpha.test\r\nmax_age: 86400\r\n",
	beta_host[] = "mta-sts.beta.test", beta_domain[] = "beta.test",
	beta_policy[] = "version: STSv1\r\nmode: testing\r\nmx: *.beta.test\r\nmax_age: 600\r\n",
	id[] = "1";

static void
check_answer(const struct buf *out, const struct https_answer_info *info)
{
	if (out->len < 12 || memcmp(out->data, "HTTP/1.1 ", 9) != 0)
		abort();
	if (info->status < 200 || info->status > 599)
		abort();
	if (strstr(out->data, "\r\nConnection: close\r\n") == NULL)
		abort();
	/* A 200 carries the policy of the Host asked for, and only then. */
	int alpha = strstr(out->data, "mx.alpha.test") != NULL;
	int beta = strstr(out->data, "*.beta.test") != NULL;
	int head = strcmp(info->method, "HEAD") == 0;
	if (info->status == 200 && !((alpha || head) && strcmp(info->host, alpha_host) == 0) &&
	    !((beta || head) && strcmp(info->host, beta_host) == 0))
		abort();
	if (info->status != 200 && (alpha || beta))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mxd_mta_sts policies[2] = {
		{ alpha_domain, alpha_host, alpha_policy, sizeof(alpha_policy) - 1, id },
		{ beta_domain, beta_host, beta_policy, sizeof(beta_policy) - 1, id },
	};
	static struct mxd_config cfg;
	struct https_answer_info info;
	struct http_req req;
	struct buf out;
	int status;

	log_init("fuzz", LOG_LEVEL_ERROR, 0);
	cfg.mta_sts = policies;
	cfg.nmta_sts = 2;
	/* A private copy of exactly size bytes: ASan sees any read past it. */
	char *in = malloc(size ? size : 1);
	memcpy(in, data, size);
	enum http_req_result r = http_req_parse(in, size, &req, &status);
	if (r == HTTP_REQ_DONE) {
		if (req.head_len > size || req.head_len > HTTP_REQ_HEAD_MAX ||
		    req.target < in || req.target + req.target_len > in + size)
			abort();
		for (const char *h = req.host; *h; h++)
			if (*h >= 'A' && *h <= 'Z')
				abort();
		/* What the server reparses as bytes arrive: the head alone is done. */
		struct http_req again;
		if (http_req_parse(in, req.head_len, &again, &status) != HTTP_REQ_DONE)
			abort();
	} else if (r == HTTP_REQ_ERROR && status != 400 && status != 431 && status != 505)
		abort();
	buf_init(&out);
	if (https_answer(&cfg, in, size, &out, &info) == 1)
		check_answer(&out, &info);
	else if (r != HTTP_REQ_MORE || out.len != 0)
		abort();
	buf_free(&out);
	free(in);
	return 0;
}
