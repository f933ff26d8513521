#include "https_answer.h"
#include "https_config.h"

#include <stdio.h>
#include <string.h>

/* Returns the bytes of body sent. */
static size_t
https_answer_write(struct buf *out, int status, const char *body, size_t len, int head)
{
	buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_req_reason(status));
	if (status == 405)
		buf_appends(out, "Allow: GET, HEAD\r\n");
	buf_printf(out, "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", len);
	if (head)
		return 0;
	buf_append(out, body, len);
	return len;
}

size_t
https_answer_status(struct buf *out, int status, int head)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", http_req_reason(status));
	return https_answer_write(out, status, body, (size_t)n, head);
}

int
https_answer(const struct mxd_config *cfg, const char *in, size_t len, struct buf *out,
    struct https_answer_info *info)
{
	struct http_req req;
	int status;

	memset(info, 0, sizeof(*info));
	info->method = "-";
	enum http_req_result r = http_req_parse(in, len, &req, &status);
	if (r == HTTP_REQ_MORE)
		return 0;
	if (r == HTTP_REQ_DONE) {
		static const char *const names[] = {
			[HTTP_REQ_GET] = "GET", [HTTP_REQ_HEAD] = "HEAD", [HTTP_REQ_OTHER] = "other",
		};
		info->method = names[req.method];
		info->target = req.target;
		info->target_len = req.target_len;
		memcpy(info->host, req.host, sizeof(info->host));
	}
	int head = r == HTTP_REQ_DONE && req.method == HTTP_REQ_HEAD;
	const struct mxd_mta_sts *p = NULL;
	if (r == HTTP_REQ_DONE) {
		if (req.method == HTTP_REQ_OTHER)
			status = 405;
		else if (!http_req_target_is(&req, HTTPS_ANSWER_PATH) ||
		    (p = https_config_policy(cfg, req.host)) == NULL)
			status = 404;
		else
			status = 200;
	}
	info->status = status;
	info->body_len = p != NULL ? https_answer_write(out, 200, p->policy, p->len, head) :
	    https_answer_status(out, status, head);
	return 1;
}
