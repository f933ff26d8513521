#include "http_req.h"

#include <string.h>
#include <strings.h>

/* tchar (RFC 9110 5.6.2): the characters of a method or a field name. */
static int
http_req_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static size_t
http_req_token(const char *p, size_t len)
{
	size_t n = 0;
	while (n < len && http_req_tchar((unsigned char)p[n]))
		n++;
	return n;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
static int
http_req_line(const char *p, size_t len, struct http_req *out)
{
	size_t m = http_req_token(p, len);
	if (m == 0 || m == len || p[m] != ' ')
		return 400;
	if (m == 3 && memcmp(p, "GET", 3) == 0)
		out->method = HTTP_REQ_GET;
	else if (m == 4 && memcmp(p, "HEAD", 4) == 0)
		out->method = HTTP_REQ_HEAD;
	else
		out->method = HTTP_REQ_OTHER;
	size_t t = m + 1, e = t;
	while (e < len && (unsigned char)p[e] > 0x20 && (unsigned char)p[e] < 0x7f)
		e++;
	if (e == t || e == len || p[e] != ' ')
		return 400;
	out->target = p + t;
	out->target_len = e - t;
	const char *v = p + e + 1;
	if (len - e - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
	    v[6] != '.' || v[7] < '0' || v[7] > '9')
		return 400;
	if (v[5] != '1')
		return 505;
	out->http10 = v[7] == '0';
	return 0;
}

/* The characters of a host name (RFC 1123 2.1; "_" as some names have). */
static int
http_req_namechar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '-' || c == '_';
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2), kept lower-cased without
 * the port and a final dot. A bracketed IP literal is kept as it is: it
 * names no policy host, and the answer is a 404, not a 400. */
static int
http_req_host(const char *v, size_t len, struct http_req *out)
{
	size_t h = 0;
	if (len > 0 && v[0] == '[') {
		while (h < len && v[h] != ']')
			h++;
		if (h == len)
			return 400;
		h++;
	} else {
		while (h < len && http_req_namechar((unsigned char)v[h]))
			h++;
	}
	if (h < len) {
		if (v[h] != ':')
			return 400;
		for (size_t i = h + 1; i < len; i++)
			if (v[i] < '0' || v[i] > '9')
				return 400;
	}
	size_t n = h;
	if (n > 0 && v[n - 1] == '.' && v[0] != '[')
		n--;
	if (n > HTTP_REQ_HOST_MAX)
		return 400;
	for (size_t i = 0; i < n; i++)
		out->host[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
	out->host[n] = '\0';
	return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5) */
static int
http_req_field(const char *p, size_t len, struct http_req *out, int *seen_host)
{
	size_t n = http_req_token(p, len);
	/* A line starting with SP or HTAB is obs-fold; a space before the colon
	 * is refused outright (RFC 9112 5.1, 5.2). */
	if (n == 0 || n == len || p[n] != ':')
		return 400;
	size_t v = n + 1, e = len;
	for (size_t i = v; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 400;
	}
	while (v < e && (p[v] == ' ' || p[v] == '\t'))
		v++;
	while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	if (n != 4 || strncasecmp(p, "host", 4) != 0)
		return 0;
	if ((*seen_host)++)
		return 400;	/* RFC 9112 3.2: more than one Host is a 400 */
	return http_req_host(p + v, e - v, out);
}

enum http_req_result
http_req_parse(const char *buf, size_t len, struct http_req *out, int *status)
{
	size_t pos = 0;
	int seen_host = 0;

	memset(out, 0, sizeof(*out));
	*status = 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) + 1 : len;
		if (end > HTTP_REQ_HEAD_MAX) {
			*status = 431;
			return HTTP_REQ_ERROR;
		}
		if (nl == NULL)
			return HTTP_REQ_MORE;
		/* CRLF only: a bare LF or a CR inside a line is a 400. */
		size_t l = end - pos;
		if (l < 2 || buf[end - 2] != '\r' || memchr(buf + pos, '\r', l - 2) != NULL) {
			*status = 400;
			return HTTP_REQ_ERROR;
		}
		l -= 2;
		int r;
		if (pos == 0)
			r = http_req_line(buf, l, out);
		else if (l == 0)
			break;
		else
			r = http_req_field(buf + pos, l, out, &seen_host);
		if (r != 0) {
			*status = r;
			return HTTP_REQ_ERROR;
		}
		pos = end;
	}
	/* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. */
	if (!seen_host && !out->http10) {
		*status = 400;
		return HTTP_REQ_ERROR;
	}
	out->head_len = pos + 2;
	return HTTP_REQ_DONE;
}

int
http_req_target_is(const struct http_req *r, const char *path)
{
	return r->target_len == strlen(path) && memcmp(r->target, path, r->target_len) == 0;
}

const char *
http_req_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}
