/* The TLS report inside a received mail (tlsrpt_mime.h). A small MIME
 * walker: header blocks, Content-Type and Content-Disposition parameters,
 * multipart boundaries, base64 and quoted-printable. Everything it reads is
 * bounded by the message's length, its nesting by TLSRPT_MIME_DEPTH and its
 * part count by TLSRPT_MIME_PARTS. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlsrpt_mime.h"
#include "utf8.h"
#include "xmalloc.h"

struct span {
	const char	*p;
	size_t		 n;
};

/* What one entity's headers say about it. */
struct mime_entity {
	struct span	ctype;		/* the whole Content-Type value */
	struct span	cte;		/* Content-Transfer-Encoding */
	struct span	cdisp;		/* Content-Disposition */
	struct span	body;
};

struct mime_walk {
	struct tlsrpt_mime	*out;
	size_t			 parts;
	char			*err;
	size_t			 errlen;
};

static int mime_fail(struct mime_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
mime_fail(struct mime_walk *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->err, w->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The line at off: [*start, *start + *len) without its CR LF or LF; the
 * offset of the next line, or n at the end. */
static size_t
mime_line(const char *p, size_t n, size_t off, size_t *len)
{
	const char *nl = memchr(p + off, '\n', n - off);
	size_t end = nl ? (size_t)(nl - p) : n;

	*len = end - off;
	if (*len > 0 && p[off + *len - 1] == '\r')
		(*len)--;
	return nl ? end + 1 : n;
}

static int
mime_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- headers ---- */

/* The value of header name in the block [0, hdr_end): from after the colon
 * to the end of its last continuation line, or an empty span. */
static struct span
mime_header(const char *p, size_t hdr_end, const char *name)
{
	size_t nlen = strlen(name), off = 0, len;

	while (off < hdr_end) {
		size_t next = mime_line(p, hdr_end, off, &len);
		if (len > nlen && p[off + nlen] == ':' && strncasecmp(p + off, name, nlen) == 0) {
			size_t end = next;
			while (end < hdr_end && mime_ws(p[end]))
				end = mime_line(p, hdr_end, end, &len);
			return (struct span){ p + off + nlen + 1, end - off - nlen - 1 };
		}
		off = next;
	}
	return (struct span){ NULL, 0 };
}

/* Splits an entity into its headers and body: the header block ends at the
 * first empty line. A body part without one is all headers and an empty
 * body (RFC 2046 5.1.1: body-part := MIME-part-headers [CRLF *OCTET]); the
 * message itself must have one (-1). */
static int
mime_entity(const char *p, size_t n, int is_part, struct mime_entity *e)
{
	size_t off = 0, len, hdr_end = n, body = n;

	memset(e, 0, sizeof(*e));
	while (off < n) {
		size_t next = mime_line(p, n, off, &len);
		if (len == 0) {
			hdr_end = off;
			body = next;
			break;
		}
		off = next;
	}
	if (body == n && hdr_end == n && !is_part)
		return -1;
	e->ctype = mime_header(p, hdr_end, "Content-Type");
	e->cte = mime_header(p, hdr_end, "Content-Transfer-Encoding");
	e->cdisp = mime_header(p, hdr_end, "Content-Disposition");
	e->body = (struct span){ p + body, n - body };
	return 0;
}

/* A header value as one line for the operator: unfolded, every run of white
 * space and control characters as one space, bytes
 * that are not UTF-8 as '?', cut at TLSRPT_MIME_HEADER_MAX. */
static char *
mime_header_text(struct span v)
{
	char *s = xmalloc(TLSRPT_MIME_HEADER_MAX + 1);
	size_t o = 0;

	for (size_t i = 0; i < v.n && o < TLSRPT_MIME_HEADER_MAX; ) {
		unsigned char c = (unsigned char)v.p[i];
		uint32_t cp;
		int l;
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (o > 0 && s[o - 1] != ' ')
				s[o++] = ' ';
			i++;
		} else if (c < 0x80) {
			s[o++] = (char)c;
			i++;
		} else if ((l = utf8_decode((const unsigned char *)v.p + i, v.n - i, &cp)) > 0 &&
		    o + (size_t)l <= TLSRPT_MIME_HEADER_MAX) {
			memcpy(s + o, v.p + i, (size_t)l);
			o += (size_t)l;
			i += (size_t)l;
		} else {
			s[o++] = '?';
			i++;
		}
	}
	while (o > 0 && s[o - 1] == ' ')
		o--;
	size_t lead = 0;
	while (lead < o && s[lead] == ' ')
		lead++;
	memmove(s, s + lead, o - lead);
	s[o - lead] = '\0';
	return s;
}

/* ---- Content-Type and its parameters ---- */

/* The media type (type/subtype, lower case, anything but printable ASCII
 * as '?') of a Content-Type value; text/plain when there is none (RFC 2045
 * 5.2). Also reads a Content-Transfer-Encoding value. */
static char *
mime_media_type(struct span v)
{
	size_t i = 0, j;

	while (i < v.n && (mime_ws(v.p[i]) || v.p[i] == '\r' || v.p[i] == '\n'))
		i++;
	for (j = i; j < v.n && v.p[j] != ';' && !mime_ws(v.p[j]) && v.p[j] != '\r' &&
	    v.p[j] != '\n'; j++)
		;
	if (j == i || j - i > 127)
		return xstrdup("text/plain");
	char *t = xstrndup(v.p + i, j - i);
	for (char *c = t; *c; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
		else if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			*c = '?';	/* not a token character: printable in errors */
	}
	return t;
}

/* The value of parameter name in a Content-Type or Content-Disposition
 * value (token or quoted-string, RFC 2045 5.1), or NULL. */
static char *
mime_param(struct span v, const char *name)
{
	size_t nlen = strlen(name), i = 0;

	while (i < v.n) {
		/* The next ';' outside a quoted-string (RFC 2045 5.1). */
		int quoted = 0;
		for (; i < v.n && (quoted || v.p[i] != ';'); i++) {
			if (v.p[i] == '\\' && quoted && i + 1 < v.n)
				i++;
			else if (v.p[i] == '"')
				quoted = !quoted;
		}
		if (i >= v.n)
			return NULL;
		i++;
		while (i < v.n && (mime_ws(v.p[i]) || v.p[i] == '\r' || v.p[i] == '\n'))
			i++;
		if (v.n - i <= nlen || strncasecmp(v.p + i, name, nlen) != 0 ||
		    v.p[i + nlen] != '=')
			continue;
		i += nlen + 1;
		char *val = xmalloc(v.n - i + 1);
		size_t o = 0;
		if (i < v.n && v.p[i] == '"') {
			for (i++; i < v.n && v.p[i] != '"'; i++) {
				if (v.p[i] == '\\' && i + 1 < v.n)
					i++;
				if (v.p[i] != '\r' && v.p[i] != '\n')
					val[o++] = v.p[i];
			}
		} else {
			for (; i < v.n && v.p[i] != ';' && !mime_ws(v.p[i]) && v.p[i] != '\r' &&
			    v.p[i] != '\n'; i++)
				val[o++] = v.p[i];
		}
		val[o] = '\0';
		return val;
	}
	return NULL;
}

static int
mime_ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && strcasecmp(s + n - t, tail) == 0;
}

/* Is a part of this type (and file name) a TLS report? RFC 8460 5.3 names
 * application/tlsrpt+gzip and +json; some senders label the file
 * generically. */
static int
mime_is_report(const char *type, const char *filename)
{
	static const char *const generic[] = {
		"application/gzip", "application/x-gzip", "application/json",
		"application/octet-stream", "application/zip",
	};

	if (strcmp(type, "application/tlsrpt+gzip") == 0 ||
	    strcmp(type, "application/tlsrpt+json") == 0)
		return 1;
	if (filename == NULL || !(mime_ends_with(filename, ".json.gz") ||
	    mime_ends_with(filename, ".json") || mime_ends_with(filename, ".gz")))
		return 0;
	for (size_t i = 0; i < sizeof(generic) / sizeof(generic[0]); i++)
		if (strcmp(type, generic[i]) == 0)
			return 1;
	return 0;
}

/* ---- transfer encodings ---- */

static int
mime_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* base64 (RFC 2045 6.8): white space and line breaks skipped, '=' ends the
 * data; any other character is an error. */
static int
mime_base64(struct span in, unsigned char **out, size_t *outlen)
{
	unsigned char *o = xmalloc(in.n / 4 * 3 + 3);
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	for (size_t i = 0; i < in.n; i++) {
		unsigned char c = (unsigned char)in.p[i];
		if (c == '=')
			break;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		int v = mime_b64_value(c);
		if (v < 0) {
			free(o);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (unsigned char)(acc >> bits);
		}
	}
	*out = o;
	*outlen = n;
	return 0;
}

static int
mime_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* quoted-printable (RFC 2045 6.7): =XX, soft line breaks; an '=' that is
 * neither is kept as it is. */
static void
mime_qp(struct span in, unsigned char **out, size_t *outlen)
{
	unsigned char *o = xmalloc(in.n + 1);
	size_t n = 0;

	for (size_t i = 0; i < in.n; i++) {
		if (in.p[i] != '=') {
			o[n++] = (unsigned char)in.p[i];
			continue;
		}
		size_t j = i + 1;
		while (j < in.n && mime_ws(in.p[j]))
			j++;
		if (j < in.n && (in.p[j] == '\n' || (in.p[j] == '\r' && j + 1 < in.n &&
		    in.p[j + 1] == '\n'))) {
			i = in.p[j] == '\r' ? j + 1 : j;
			continue;
		}
		int hi = i + 2 < in.n ? mime_hex(in.p[i + 1]) : -1;
		int lo = hi >= 0 ? mime_hex(in.p[i + 2]) : -1;
		if (lo >= 0) {
			o[n++] = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else
			o[n++] = '=';
	}
	*out = o;
	*outlen = n;
}

static int
mime_decode(struct mime_walk *w, const struct mime_entity *e, const char *type)
{
	char *cte = e->cte.p ? mime_media_type(e->cte) : xstrdup("7bit");
	struct tlsrpt_mime *m = w->out;
	int rc = 0;

	if (strcmp(cte, "base64") == 0) {
		if (mime_base64(e->body, &m->report, &m->report_len) < 0)
			rc = mime_fail(w, "the %s part's base64 does not decode", type);
	} else if (strcmp(cte, "quoted-printable") == 0) {
		mime_qp(e->body, &m->report, &m->report_len);
	} else if (strcmp(cte, "7bit") == 0 || strcmp(cte, "8bit") == 0 ||
	    strcmp(cte, "binary") == 0) {
		m->report = xmalloc(e->body.n + 1);
		memcpy(m->report, e->body.p, e->body.n);
		m->report_len = e->body.n;
	} else
		rc = mime_fail(w, "the %s part has an unknown transfer encoding \"%.40s\"", type,
		    cte);
	if (rc == 0)
		m->content_type = xstrdup(type);
	free(cte);
	return rc;
}

/* ---- the walk ---- */

static int mime_walk_entity(struct mime_walk *w, struct span s, int depth);

/* Is the line [p, p + len) a delimiter of boundary b ("--b" or the close
 * "--b--", trailing white space allowed)? 1 delimiter, 2 close, 0 neither. */
static int
mime_delimiter(const char *p, size_t len, const char *b, size_t blen)
{
	if (len < blen + 2 || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b, blen) != 0)
		return 0;
	size_t i = blen + 2;
	int close = len >= i + 2 && p[i] == '-' && p[i + 1] == '-';
	if (close)
		i += 2;
	while (i < len && mime_ws(p[i]))
		i++;
	return i < len ? 0 : close ? 2 : 1;
}

/* The parts of a multipart body (RFC 2046 5.1.1): the preamble and epilogue
 * are skipped; a body whose close delimiter is missing ends at its end. */
static int
mime_walk_multipart(struct mime_walk *w, struct span body, const char *b, int depth)
{
	size_t blen = strlen(b), off = 0, len, start = 0;
	int in_part = 0;

	while (off < body.n) {
		size_t line = off, next = mime_line(body.p, body.n, off, &len);
		int d = mime_delimiter(body.p + line, len, b, blen);
		off = next;
		if (d == 0)
			continue;
		if (in_part) {
			/* The line break before the delimiter belongs to it. */
			size_t end = line;
			if (end > start && body.p[end - 1] == '\n')
				end--;
			if (end > start && body.p[end - 1] == '\r')
				end--;
			if (mime_walk_entity(w, (struct span){ body.p + start, end - start },
			    depth + 1) < 0)
				return -1;
		}
		if (d == 2)
			return 0;
		in_part = 1;
		start = next;
	}
	if (in_part && start < body.n)
		return mime_walk_entity(w, (struct span){ body.p + start, body.n - start },
		    depth + 1);
	return 0;
}

static int
mime_walk_entity(struct mime_walk *w, struct span s, int depth)
{
	struct mime_entity e;
	int rc = 0;

	if (depth > TLSRPT_MIME_DEPTH)
		return mime_fail(w, "multiparts nested deeper than %d", TLSRPT_MIME_DEPTH);
	if (++w->parts > TLSRPT_MIME_PARTS)
		return mime_fail(w, "more than %d parts", TLSRPT_MIME_PARTS);
	if (mime_entity(s.p, s.n, depth > 0, &e) < 0)
		return mime_fail(w, "the message's header block has no end");
	char *type = mime_media_type(e.ctype);
	char *boundary = NULL, *filename = NULL;
	if (strncmp(type, "multipart/", 10) == 0) {
		boundary = mime_param(e.ctype, "boundary");
		if (boundary == NULL || boundary[0] == '\0' || strlen(boundary) > 200)
			rc = mime_fail(w, "a %.60s part without a usable boundary", type);
		else
			rc = mime_walk_multipart(w, e.body, boundary, depth);
	} else {
		filename = e.cdisp.p ? mime_param(e.cdisp, "filename") : NULL;
		if (filename == NULL)
			filename = mime_param(e.ctype, "name");
		if (mime_is_report(type, filename)) {
			if (w->out->report != NULL)
				rc = mime_fail(w, "more than one report part");
			else
				rc = mime_decode(w, &e, type);
		}
	}
	free(type);
	free(boundary);
	free(filename);
	return rc;
}

int
tlsrpt_mime_extract(const void *msg, size_t len, struct tlsrpt_mime *out, char *err,
    size_t errlen)
{
	struct mime_walk w = { out, 0, err, errlen };
	struct span s = { msg, len };
	struct mime_entity top;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (mime_walk_entity(&w, s, 0) == 0 && out->report == NULL)
		mime_fail(&w, "no report part (application/tlsrpt+gzip or application/tlsrpt+json)");
	if (err[0]) {
		tlsrpt_mime_free(out);
		return -1;
	}
	(void)mime_entity(s.p, s.n, 0, &top);
	size_t hdr_end = (size_t)(top.body.p - s.p);
	static const char *const names[] = {
		"From", "Message-ID", "Subject", "TLS-Report-Domain", "TLS-Report-Submitter",
	};
	char **slots[] = {
		&out->from, &out->message_id, &out->subject, &out->report_domain,
		&out->report_submitter,
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct span v = mime_header(s.p, hdr_end, names[i]);
		if (v.p != NULL)
			*slots[i] = mime_header_text(v);
	}
	return 0;
}

void
tlsrpt_mime_free(struct tlsrpt_mime *m)
{
	if (m == NULL)
		return;
	free(m->from);
	free(m->message_id);
	free(m->subject);
	free(m->report_domain);
	free(m->report_submitter);
	free(m->content_type);
	free(m->report);
	memset(m, 0, sizeof(*m));
}
