/* MTA-STS policy fetch over HTTPS with libcurl (RFC 8461 3.3). */
#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "buf.h"
#include "sts.h"
#include "sts_fetch.h"
#include "xmalloc.h"

#define STS_FETCH_PATH	"/.well-known/mta-sts.txt"
#define STS_HOST_MAX	300

struct sts_fetch_body {
	struct buf	b;
	int		too_large;
};

static pthread_once_t sts_fetch_once = PTHREAD_ONCE_INIT;
static CURLcode sts_fetch_init_rc;

static void
sts_fetch_global_init(void)
{
	sts_fetch_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *
sts_fetch_result_type(enum sts_fetch_result r)
{
	switch (r) {
	case STS_FETCH_OK:	return NULL;
	case STS_FETCH_ERROR:	return "sts-policy-fetch-error";
	case STS_FETCH_WEBPKI:	return "sts-webpki-invalid";
	case STS_FETCH_INVALID:	return "sts-policy-invalid";
	}
	return "sts-policy-fetch-error";
}

/* Stop at the cap even when the server sent no Content-Length (chunked or
 * close-delimited): returning short makes curl abort with CURLE_WRITE_ERROR. */
static size_t
sts_fetch_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct sts_fetch_body *body = arg;
	size_t n = size * nmemb;

	if (body->b.len + n > STS_POLICY_MAX) {
		body->too_large = 1;
		return 0;
	}
	buf_append(&body->b, ptr, n);
	return n;
}

/* "text/plain", any case, alone or followed by parameters. */
static int
sts_fetch_type_ok(const char *ct)
{
	size_t l = strlen("text/plain");

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "text/plain", l) != 0)
		return 0;
	ct += l;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Domain names only: they go into a URL and a CURLOPT_CONNECT_TO entry. */
static int
sts_fetch_domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > 253)
		return 0;
	for (const char *p = d; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return 0;
	return d[0] != '.' && strstr(d, "..") == NULL;
}

static void
sts_fetch_fail(struct sts_fetch_out *out, enum sts_fetch_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sts_fetch_fail(struct sts_fetch_out *out, enum sts_fetch_result r, const char *fmt, ...)
{
	va_list ap;

	out->result = r;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

static enum sts_fetch_result
sts_fetch_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
	case CURLE_SSL_CACERT:
#endif
		return STS_FETCH_WEBPKI;
	default:
		return STS_FETCH_ERROR;
	}
}

enum sts_fetch_result
sts_fetch(const char *domain, const struct sts_fetch_opts *opts, struct sts_fetch_out *out)
{
	static const struct sts_fetch_opts defaults;
	struct sts_fetch_body body;
	struct curl_slist *connect_to = NULL;
	char host[STS_HOST_MAX], url[STS_HOST_MAX + 64], cerr[CURL_ERROR_SIZE] = "";
	char perr[STS_ERR_MAX] = "";
	const char *ct = NULL;
	size_t dl;
	CURLcode rc;
	CURL *h;

	memset(out, 0, sizeof(*out));
	if (opts == NULL)
		opts = &defaults;
	buf_init(&body.b);
	body.too_large = 0;

	dl = strlen(domain);
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	snprintf(host, sizeof(host), "mta-sts.%.*s", (int)dl, domain);
	if (dl == 0 || !sts_fetch_domain_ok(host + 8)) {
		sts_fetch_fail(out, STS_FETCH_ERROR, "invalid policy domain \"%.100s\"", domain);
		return out->result;
	}
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(url, sizeof(url), "https://%s%s", host, STS_FETCH_PATH);

	pthread_once(&sts_fetch_once, sts_fetch_global_init);
	if (sts_fetch_init_rc != CURLE_OK) {
		sts_fetch_fail(out, STS_FETCH_ERROR, "curl_global_init: %s",
		    curl_easy_strerror(sts_fetch_init_rc));
		return out->result;
	}
	if ((h = curl_easy_init()) == NULL) {
		sts_fetch_fail(out, STS_FETCH_ERROR, "curl_easy_init failed");
		return out->result;
	}
	if (opts->connect_host != NULL || opts->connect_port != 0) {
		char entry[STS_HOST_MAX * 2 + 32];
		const char *to = opts->connect_host ? opts->connect_host : "";
		int v6 = strchr(to, ':') != NULL;

		/* "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT"; empty means same. */
		snprintf(entry, sizeof(entry), "%s:443:%s%s%s:%u", host,
		    v6 ? "[" : "", to, v6 ? "]" : "",
		    opts->connect_port ? opts->connect_port : 443);
		connect_to = curl_slist_append(NULL, entry);
		if (connect_to == NULL) {
			curl_easy_cleanup(h);
			sts_fetch_fail(out, STS_FETCH_ERROR, "out of memory");
			return out->result;
		}
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
	}

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	    opts->timeout_ms > 0 ? opts->timeout_ms : (long)STS_FETCH_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (opts->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)STS_POLICY_MAX);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sts_fetch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mxfleet-mta-sts/1");
	/* No cookies, no proxy from the environment: the fetch is to the
	 * policy host itself. */
	curl_easy_setopt(h, CURLOPT_PROXY, "");

	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->http_status);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);

	if (body.too_large || rc == CURLE_FILESIZE_EXCEEDED)
		sts_fetch_fail(out, STS_FETCH_ERROR, "%s: policy larger than %d bytes",
		    host, STS_POLICY_MAX);
	else if (rc != CURLE_OK)
		sts_fetch_fail(out, sts_fetch_curl_error(rc), "%s: %s%s%s", host,
		    curl_easy_strerror(rc), cerr[0] ? ": " : "", cerr);
	else if (out->http_status >= 300 && out->http_status < 400)
		sts_fetch_fail(out, STS_FETCH_ERROR,
		    "%s: HTTP %ld redirect (redirects are not followed)", host, out->http_status);
	else if (out->http_status != 200)
		sts_fetch_fail(out, STS_FETCH_ERROR, "%s: HTTP %ld, want 200", host,
		    out->http_status);
	else if (!sts_fetch_type_ok(ct)) {
		out->type_refused = 1;
		sts_fetch_fail(out, STS_FETCH_ERROR, "%s: Content-Type \"%.80s\", want text/plain",
		    host, ct ? ct : "(none)");
	} else {
		out->body_len = body.b.len;
		out->body = xmalloc(body.b.len + 1);
		if (body.b.len > 0)
			memcpy(out->body, body.b.data, body.b.len);
		out->body[body.b.len] = '\0';
		if (sts_policy_parse(out->body, out->body_len, &out->policy, perr,
		    sizeof(perr)) != STS_OK)
			sts_fetch_fail(out, STS_FETCH_INVALID, "%s: %s", host, perr);
		else
			out->result = STS_FETCH_OK;
	}

	curl_easy_cleanup(h);
	curl_slist_free_all(connect_to);
	buf_free(&body.b);
	return out->result;
}

void
sts_fetch_out_free(struct sts_fetch_out *out)
{
	if (out == NULL)
		return;
	sts_policy_free(out->policy);
	free(out->body);
	out->policy = NULL;
	out->body = NULL;
	out->body_len = 0;
}

void
sts_fetch_cb(void *arg, const char *domain, struct sts_fetch_out *out)
{
	sts_fetch(domain, arg, out);
}
