/* The scheduler <-> delivery agent messages (agent_msg.h). */
#include <stdlib.h>
#include <string.h>

#include "agent_msg.h"
#include "xmalloc.h"

void
rcpt_set(struct rcpt_state *r, enum rcpt_result res, int code, const char *text, const char *hop,
    const char *mta)
{
	r->result = res;
	r->code = code;
	free(r->reply);
	free(r->hop);
	free(r->mta);
	r->reply = xstrdup(text ? text : "");
	r->hop = hop ? xstrdup(hop) : NULL;
	r->mta = hop && mta ? xstrdup(mta) : NULL;
}

void
rcpt_state_clear(struct rcpt_state *r)
{
	free(r->reply);
	free(r->hop);
	free(r->mta);
	r->reply = r->hop = r->mta = NULL;
}

/* ---- fields ---- */

static void
agent_put_u32(struct buf *b, uint32_t v)
{
	unsigned char p[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
	    (unsigned char)(v >> 8), (unsigned char)v };
	buf_append(b, p, 4);
}

/* NULL and "" differ: NULL is sent as length 0xffffffff. */
static void
agent_put_str(struct buf *b, const char *s)
{
	if (s == NULL) {
		agent_put_u32(b, UINT32_MAX);
		return;
	}
	size_t n = strlen(s);
	agent_put_u32(b, (uint32_t)n);
	buf_append(b, s, n);
}

struct agent_rd {
	const uint8_t	*p;
	size_t		 left;
	int		 bad;
};

static uint32_t
agent_get_u32(struct agent_rd *r)
{
	if (r->left < 4) {
		r->bad = 1;
		return 0;
	}
	uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 |
	    r->p[3];
	r->p += 4;
	r->left -= 4;
	return v;
}

/* A copy (NUL-terminated, no NUL inside), or NULL for NULL or bad input. */
static char *
agent_get_str(struct agent_rd *r)
{
	uint32_t n = agent_get_u32(r);
	if (r->bad || n == UINT32_MAX)
		return NULL;
	if (n > r->left || memchr(r->p, '\0', n) != NULL) {
		r->bad = 1;
		return NULL;
	}
	char *s = xstrndup((const char *)r->p, n);
	r->p += n;
	r->left -= n;
	return s;
}

/* Into a fixed buffer; too long or missing is bad input. */
static void
agent_get_fixed(struct agent_rd *r, char *out, size_t size)
{
	char *s = agent_get_str(r);
	if (s == NULL || strlen(s) >= size)
		r->bad = 1;
	else
		memcpy(out, s, strlen(s) + 1);
	free(s);
}

static size_t
agent_frame_begin(struct buf *out)
{
	size_t at = out->len;
	agent_put_u32(out, 0);
	return at;
}

static void
agent_frame_end(struct buf *out, size_t at)
{
	uint32_t n = (uint32_t)(out->len - at - AGENT_FRAME_HDR);
	unsigned char *p = (unsigned char *)out->data + at;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
}

int
agent_frame_peek(const struct buf *in, const uint8_t **body, size_t *len)
{
	if (in->len < AGENT_FRAME_HDR)
		return 0;
	struct agent_rd r = { (const uint8_t *)in->data, in->len, 0 };
	uint32_t n = agent_get_u32(&r);
	if (n > AGENT_MSG_MAX)
		return -1;
	if (in->len - AGENT_FRAME_HDR < n)
		return 0;
	*body = (const uint8_t *)in->data + AGENT_FRAME_HDR;
	*len = n;
	return 1;
}

/* ---- jobs ---- */

void
agent_job_encode(const struct agent_job *job, struct buf *out)
{
	size_t at = agent_frame_begin(out);
	agent_put_u32(out, (uint32_t)job->kind);
	agent_put_str(out, job->id);
	agent_put_u32(out, (uint32_t)job->attempt);
	agent_put_u32(out, (uint32_t)job->expired);
	agent_put_u32(out, (uint32_t)job->n);
	for (size_t i = 0; i < job->n; i++)
		agent_put_u32(out, job->idx[i]);
	agent_frame_end(out, at);
}

int
agent_job_decode(const uint8_t *p, size_t len, struct agent_job *out)
{
	struct agent_rd r = { p, len, 0 };
	memset(out, 0, sizeof(*out));
	uint32_t kind = agent_get_u32(&r);
	agent_get_fixed(&r, out->id, sizeof(out->id));
	uint32_t attempt = agent_get_u32(&r), expired = agent_get_u32(&r), n = agent_get_u32(&r);
	if (r.bad || (kind != AGENT_JOB_DELIVER && kind != AGENT_JOB_STS_REFRESH) ||
	    attempt > 1000000 || expired > 1 || n > AGENT_JOB_RCPTS_MAX)
		return -1;
	out->kind = (enum agent_job_kind)kind;
	out->attempt = (int)attempt;
	out->expired = (int)expired;
	out->n = n;
	for (size_t i = 0; i < n; i++)
		out->idx[i] = agent_get_u32(&r);
	return r.bad || r.left != 0 ? -1 : 0;
}

/* ---- results ---- */

#define AGENT_F_DSN_PASSED	1u
#define AGENT_F_LMTP		2u
#define AGENT_F_STS_HOLD	4u
#define AGENT_F_STORED		8u

void
agent_result_encode(enum qmgr_feedback fb, const struct rcpt_state *st, const uint32_t *idx,
    size_t n, struct buf *out)
{
	size_t at = agent_frame_begin(out);
	agent_put_u32(out, (uint32_t)fb);
	agent_put_u32(out, (uint32_t)n);
	for (size_t k = 0; k < n; k++) {
		const struct rcpt_state *s = &st[idx[k]];
		agent_put_u32(out, idx[k]);
		agent_put_u32(out, (uint32_t)s->result);
		agent_put_u32(out, (uint32_t)s->code);
		agent_put_u32(out, (s->dsn_passed ? AGENT_F_DSN_PASSED : 0) |
		    (s->lmtp ? AGENT_F_LMTP : 0) | (s->sts_hold ? AGENT_F_STS_HOLD : 0) |
		    (s->stored ? AGENT_F_STORED : 0));
		agent_put_str(out, s->reply);
		agent_put_str(out, s->hop);
		agent_put_str(out, s->mta);
		agent_put_str(out, s->transfer);
		agent_put_str(out, s->sts_id);
	}
	agent_frame_end(out, at);
}

/* transfer points at a constant: only the names the agents use. */
static const char *
agent_transfer_name(const char *s)
{
	if (s == NULL)
		return NULL;
	if (strcmp(s, "BDAT") == 0)
		return "BDAT";
	return "DATA";
}

static void
agent_get_rcpt(struct agent_rd *r, uint32_t *idx, struct rcpt_state *s)
{
	*idx = agent_get_u32(r);
	uint32_t res = agent_get_u32(r), code = agent_get_u32(r), flags = agent_get_u32(r);
	if (res > RCPT_FINAL || code > 999)
		r->bad = 1;
	s->result = (enum rcpt_result)res;
	s->code = (int)code;
	s->dsn_passed = (flags & AGENT_F_DSN_PASSED) != 0;
	s->lmtp = (flags & AGENT_F_LMTP) != 0;
	s->sts_hold = (flags & AGENT_F_STS_HOLD) != 0;
	s->stored = (flags & AGENT_F_STORED) != 0;
	s->reply = agent_get_str(r);
	s->hop = agent_get_str(r);
	s->mta = agent_get_str(r);
	char *t = agent_get_str(r);
	s->transfer = agent_transfer_name(t);
	free(t);
	char *id = agent_get_str(r);
	if (id != NULL && strlen(id) < sizeof(s->sts_id))
		memcpy(s->sts_id, id, strlen(id) + 1);
	else
		r->bad = 1;
	free(id);
}

int
agent_result_decode(const uint8_t *p, size_t len, struct agent_result *out)
{
	struct agent_rd r = { p, len, 0 };
	memset(out, 0, sizeof(*out));
	uint32_t fb = agent_get_u32(&r), n = agent_get_u32(&r);
	if (r.bad || fb > QMGR_FB_PROGRESS || n > AGENT_JOB_RCPTS_MAX)
		return -1;
	out->fb = (enum qmgr_feedback)fb;
	out->idx = xcalloc(n ? n : 1, sizeof(*out->idx));
	out->st = xcalloc(n ? n : 1, sizeof(*out->st));
	out->n = n;
	for (size_t k = 0; k < n && !r.bad; k++)
		agent_get_rcpt(&r, &out->idx[k], &out->st[k]);
	if (r.bad || r.left != 0) {
		agent_result_free(out);
		return -1;
	}
	return 0;
}

void
agent_result_free(struct agent_result *r)
{
	for (size_t k = 0; k < r->n; k++)
		rcpt_state_clear(&r->st[k]);
	free(r->st);
	free(r->idx);
	memset(r, 0, sizeof(*r));
}
