#include "tls.h"
#include "log.h"
#include "xmalloc.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One SSL_CTX per set of names; it holds up to one certificate per key type,
 * which OpenSSL picks from by the client's signature algorithms. */
struct tls_group {
	SSL_CTX	*ctx;
	X509	*leaf;		/* first certificate loaded, for SNI matching */
	int	 has_rsa;
	int	 has_ec;
	int	 has_other;
};

struct tls_server {
	struct tls_group	*groups;
	size_t			 ngroups;
};

static int tls_trace_idx = -1;

void
tls_error_string(char *out, size_t outsz)
{
	unsigned long e, last = 0;
	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0) {
		snprintf(out, outsz, "unknown");
		return;
	}
	const char *lib = ERR_lib_error_string(last);
	const char *reason = ERR_reason_error_string(last);
	snprintf(out, outsz, "%s:%s", lib ? lib : "?", reason ? reason : "?");
}

int
tls_version_parse(const char *s)
{
	if (strcmp(s, "TLSv1") == 0 || strcmp(s, "TLSv1.0") == 0)
		return TLS1_VERSION;
	if (strcmp(s, "TLSv1.1") == 0)
		return TLS1_1_VERSION;
	if (strcmp(s, "TLSv1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(s, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	return -1;
}

const char *
tls_version_name(int v)
{
	switch (v) {
	case TLS1_VERSION: return "TLSv1";
	case TLS1_1_VERSION: return "TLSv1.1";
	case TLS1_2_VERSION: return "TLSv1.2";
	case TLS1_3_VERSION: return "TLSv1.3";
	default: return "unknown";
	}
}

static void
tls_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
    SSL *ssl, void *arg)
{
	struct tls_trace *t = SSL_get_ex_data(ssl, tls_trace_idx);
	const unsigned char *p = buf;
	if (t == NULL || len == 0)
		return;
	if (content_type == SSL3_RT_HANDSHAKE) {
		if (write_p)
			t->last_out = p[0];
		else
			t->last_in = p[0];
	} else if (content_type == SSL3_RT_ALERT && len >= 2) {
		if (write_p)
			t->alert_out = p[1];
		else
			t->alert_in = p[1];
	}
}

static void
tls_trace_attach(SSL *ssl, struct tls_trace *trace)
{
	if (trace == NULL)
		return;
	tls_trace_init(trace);
	SSL_set_ex_data(ssl, tls_trace_idx, trace);
	SSL_set_msg_callback(ssl, tls_msg_cb);
}

static void
tls_global_init(void)
{
	if (tls_trace_idx < 0)
		tls_trace_idx = SSL_get_ex_new_index(0, "mxfleet trace", NULL, NULL, NULL);
}

void
tls_trace_init(struct tls_trace *t)
{
	t->last_in = t->last_out = -1;
	t->alert_in = t->alert_out = -1;
}

static const char *
tls_hs_name(int type)
{
	switch (type) {
	case SSL3_MT_CLIENT_HELLO: return "client_hello";
	case SSL3_MT_SERVER_HELLO: return "server_hello";
	case SSL3_MT_NEWSESSION_TICKET: return "new_session_ticket";
	case SSL3_MT_ENCRYPTED_EXTENSIONS: return "encrypted_extensions";
	case SSL3_MT_CERTIFICATE: return "certificate";
	case SSL3_MT_SERVER_KEY_EXCHANGE: return "server_key_exchange";
	case SSL3_MT_CERTIFICATE_REQUEST: return "certificate_request";
	case SSL3_MT_SERVER_DONE: return "server_hello_done";
	case SSL3_MT_CERTIFICATE_VERIFY: return "certificate_verify";
	case SSL3_MT_CLIENT_KEY_EXCHANGE: return "client_key_exchange";
	case SSL3_MT_FINISHED: return "finished";
	default: return "other";
	}
}

const char *
tls_trace_stage(const struct tls_trace *t)
{
	static _Thread_local char stage[64];
	if (t->last_in < 0 && t->last_out < 0)
		return "before_client_hello";
	/* Name the last message each way: "in:client_hello,out:finished". */
	snprintf(stage, sizeof(stage), "in:%s,out:%s",
	    t->last_in < 0 ? "none" : tls_hs_name(t->last_in),
	    t->last_out < 0 ? "none" : tls_hs_name(t->last_out));
	return stage;
}

void
tls_trace_reason(const struct tls_trace *t, int saw_eof, unsigned long ossl_err,
    char *out, size_t outsz)
{
	if (t->alert_in >= 0)
		snprintf(out, outsz, "alert_received:%s",
		    SSL_alert_desc_string_long(t->alert_in << 0));
	else if (saw_eof)
		snprintf(out, outsz, "eof");
	else if (ossl_err) {
		const char *r = ERR_reason_error_string(ossl_err);
		snprintf(out, outsz, "%s%s%s", r ? r : "error",
		    t->alert_out >= 0 ? ";alert_sent:" : "",
		    t->alert_out >= 0 ? SSL_alert_desc_string_long(t->alert_out) : "");
	} else if (t->alert_out >= 0)
		snprintf(out, outsz, "alert_sent:%s", SSL_alert_desc_string_long(t->alert_out));
	else
		snprintf(out, outsz, "error");
	/* SSL_alert_desc_string_long has spaces; logfmt values stay unquoted. */
	for (char *p = out; *p; p++)
		if (*p == ' ')
			*p = '_';
}

static int
tls_set_common(SSL_CTX *ctx, int min_version, int tickets)
{
	if (!SSL_CTX_set_min_proto_version(ctx, min_version))
		return -1;
	/* OpenSSL 3 refuses TLS < 1.2 at the default security level; an operator
	 * who asked for old versions means it. */
	if (min_version < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (!tickets) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	static const unsigned char sid[] = "mxfleet";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	return 0;
}

static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_server *ts = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < ts->ngroups; i++) {
		if (X509_check_host(ts->groups[i].leaf, name, 0, 0, NULL) == 1) {
			if (i > 0)
				SSL_set_SSL_CTX(ssl, ts->groups[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* Unknown name: keep the default certificate rather than fail; an MX is
	 * reached by many names and a mismatch is the client's to judge. */
	return SSL_TLSEXT_ERR_OK;
}

static int
tls_same_names(X509 *a, X509 *b)
{
	return X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) == 0;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	for (size_t i = 0; i < ts->ngroups; i++) {
		SSL_CTX_free(ts->groups[i].ctx);
		X509_free(ts->groups[i].leaf);
	}
	free(ts->groups);
	free(ts);
}

static X509 *
tls_read_leaf(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

int
tls_server_new(struct tls_server **out, const struct tls_cert_spec *certs,
    size_t ncerts, int min_version, int session_tickets, char *err, size_t errsz)
{
	struct tls_server *ts = xcalloc(1, sizeof(*ts));
	char ebuf[256];

	*out = NULL;	/* on failure too: callers free what they got */
	tls_global_init();
	ts->groups = xcalloc(ncerts ? ncerts : 1, sizeof(*ts->groups));
	for (size_t i = 0; i < ncerts; i++) {
		/* Say why a file can not be used (permissions!) before OpenSSL
		 * turns it into "system lib". */
		const char *files[2] = { certs[i].cert, certs[i].key };
		for (int k = 0; k < 2; k++) {
			FILE *f = fopen(files[k], "r");
			if (f == NULL) {
				snprintf(err, errsz, "%s: %s", files[k], strerror(errno));
				goto fail;
			}
			fclose(f);
		}
		X509 *leaf = tls_read_leaf(certs[i].cert);
		if (leaf == NULL) {
			snprintf(err, errsz, "%s: cannot read a PEM certificate", certs[i].cert);
			goto fail;
		}
		int type = EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
		struct tls_group *g = NULL;
		for (size_t j = 0; j < ts->ngroups; j++) {
			struct tls_group *c = &ts->groups[j];
			int busy = type == EVP_PKEY_RSA ? c->has_rsa :
			    type == EVP_PKEY_EC ? c->has_ec : c->has_other;
			if (!busy && tls_same_names(c->leaf, leaf)) {
				g = c;
				break;
			}
		}
		if (g == NULL) {
			g = &ts->groups[ts->ngroups++];
			g->ctx = SSL_CTX_new(TLS_server_method());
			if (g->ctx == NULL || tls_set_common(g->ctx, min_version, session_tickets) < 0) {
				X509_free(leaf);
				snprintf(err, errsz, "cannot create TLS context");
				goto fail;
			}
			g->leaf = leaf;
			X509_up_ref(leaf);
		}
		X509_free(leaf);
		if (SSL_CTX_use_certificate_chain_file(g->ctx, certs[i].cert) != 1) {
			tls_error_string(ebuf, sizeof(ebuf));
			snprintf(err, errsz, "%s: %s", certs[i].cert, ebuf);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(g->ctx, certs[i].key, SSL_FILETYPE_PEM) != 1) {
			tls_error_string(ebuf, sizeof(ebuf));
			snprintf(err, errsz, "%s: %s", certs[i].key, ebuf);
			goto fail;
		}
		if (SSL_CTX_check_private_key(g->ctx) != 1) {
			snprintf(err, errsz, "%s: key does not match certificate %s",
			    certs[i].key, certs[i].cert);
			goto fail;
		}
		if (type == EVP_PKEY_RSA)
			g->has_rsa = 1;
		else if (type == EVP_PKEY_EC)
			g->has_ec = 1;
		else
			g->has_other = 1;
	}
	if (ts->ngroups == 0) {
		/* No certificate: a context is still useful for nothing; callers
		 * check tls_server_ssl() == NULL and do not offer STARTTLS. */
		*out = ts;
		return 0;
	}
	SSL_CTX_set_tlsext_servername_callback(ts->groups[0].ctx, tls_sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ts->groups[0].ctx, ts);
	*out = ts;
	return 0;
fail:
	ERR_clear_error();
	tls_server_free(ts);
	return -1;
}

SSL *
tls_server_ssl(struct tls_server *ts, struct tls_trace *trace)
{
	if (ts == NULL || ts->ngroups == 0)
		return NULL;
	SSL *ssl = SSL_new(ts->groups[0].ctx);
	if (ssl == NULL)
		return NULL;
	tls_trace_attach(ssl, trace);
	return ssl;
}

SSL_CTX *
tls_client_ctx_new(int min_version, char *err, size_t errsz)
{
	tls_global_init();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL || tls_set_common(ctx, min_version, 1) < 0) {
		snprintf(err, errsz, "cannot create TLS client context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static int
tls_sni_ok(const char *name)
{
	unsigned char a[16];
	return name != NULL && name[0] != '\0' && inet_pton(AF_INET, name, a) != 1 &&
	    inet_pton(AF_INET6, name, a) != 1;
}

SSL *
tls_client_ssl(SSL_CTX *ctx, const char *sni, struct tls_trace *trace)
{
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL)
		return NULL;
	if (tls_sni_ok(sni))
		SSL_set_tlsext_host_name(ssl, sni);
	tls_trace_attach(ssl, trace);
	return ssl;
}
