/* The scheduler <-> delivery agent messages (mxd/qmgr/agent_msg.h): a job
 * as an agent reads it, a result as the scheduler reads it. Neither decoder
 * may crash, read out of bounds or leak; what decodes is within its limits
 * and reads the same after being encoded again. The first input byte picks
 * the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_agent_job(const uint8_t *p, size_t n)
{
	struct agent_job *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct buf out;
	const uint8_t *body;
	size_t len;

	if (agent_job_decode(p, n, a) == 0) {
		if (a->n > AGENT_JOB_RCPTS_MAX || strnlen(a->id, sizeof(a->id)) == sizeof(a->id))
			abort();
		buf_init(&out);
		agent_job_encode(a, &out);
		if (agent_frame_peek(&out, &body, &len) != 1 || len != n ||
		    agent_job_decode(body, len, b) != 0 || memcmp(a, b, sizeof(*a)) != 0)
			abort();
		buf_free(&out);
	}
	free(a);
	free(b);
}

static int
fuzz_same_str(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static void
fuzz_agent_result(const uint8_t *p, size_t n)
{
	struct agent_result a, b;
	struct buf out;
	const uint8_t *body;
	size_t len;

	if (agent_result_decode(p, n, &a) != 0)
		return;
	if (a.n > AGENT_JOB_RCPTS_MAX || a.fb > QMGR_FB_PROGRESS)
		abort();
	/* Encode reads st by recipient index: lay the results out so. */
	uint32_t top = 0;
	for (size_t k = 0; k < a.n; k++)
		if (a.idx[k] > top)
			top = a.idx[k];
	if (top < 100000) {
		struct rcpt_state *view = calloc((size_t)top + 1, sizeof(*view));
		unsigned char *seen = calloc((size_t)top + 1, 1);
		int dup = 0;	/* a repeated index: the later result wins in view */
		for (size_t k = 0; k < a.n; k++) {
			dup |= seen[a.idx[k]];
			seen[a.idx[k]] = 1;
			view[a.idx[k]] = a.st[k];
		}
		free(seen);
		buf_init(&out);
		agent_result_encode(a.fb, view, a.idx, a.n, &out);
		if (agent_frame_peek(&out, &body, &len) != 1 || agent_result_decode(body, len, &b) != 0)
			abort();
		for (size_t k = 0; !dup && k < a.n; k++) {
			const struct rcpt_state *x = &a.st[k], *y = &b.st[k];
			if (b.idx[k] != a.idx[k] || x->result != y->result || x->code != y->code ||
			    !fuzz_same_str(x->reply, y->reply) || !fuzz_same_str(x->hop, y->hop) ||
			    !fuzz_same_str(x->mta, y->mta) || strcmp(x->sts_id, y->sts_id) != 0)
				abort();
		}
		agent_result_free(&b);
		buf_free(&out);
		free(view);
	}
	agent_result_free(&a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* An exact-size copy: the decoders must honour len. */
	uint8_t *p = malloc(size - 1 ? size - 1 : 1);
	memcpy(p, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_agent_result(p, size - 1);
	else
		fuzz_agent_job(p, size - 1);
	free(p);
	return 0;
}
