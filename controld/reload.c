/* controld's SIGHUP reload (reload.h). */
#include "reload.h"

#include <event2/event.h>
#include <libconfig.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "grpc.h"
#include "log.h"
#include "pki.h"
#include "sdnotify.h"
#include "xmalloc.h"

/* Keys applied by a reload; every other top-level key needs a restart. */
static const char *const reload_applied[] = { "log_level", "tls", NULL };

static char *reload_path;
static config_t reload_started;		/* the file as controld started with it */
static int reload_have_started;

void
reload_init(const char *path)
{
	struct conf_err cerr;
	reload_path = xstrdup(path);
	reload_have_started = conf_load(&reload_started, path, &cerr) == 0;
}

void
reload_free(void)
{
	if (reload_have_started)
		config_destroy(&reload_started);
	reload_have_started = 0;
	free(reload_path);
	reload_path = NULL;
}

static int reload_same(const config_setting_t *a, const config_setting_t *b);

static int
reload_same_aggregate(const config_setting_t *a, const config_setting_t *b)
{
	int n = config_setting_length(a);
	if (n != config_setting_length(b))
		return 0;
	for (int i = 0; i < n; i++) {
		const config_setting_t *ea = config_setting_get_elem(a, (unsigned)i);
		const config_setting_t *eb = config_setting_is_group(a) ?
		    config_setting_get_member(b, config_setting_name(ea)) :
		    config_setting_get_elem(b, (unsigned)i);
		if (!reload_same(ea, eb))
			return 0;
	}
	return 1;
}

/* Same type and value, members compared by name, elements in order. */
static int
reload_same(const config_setting_t *a, const config_setting_t *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	int t = config_setting_type(a);
	if (t != config_setting_type(b))
		return 0;
	switch (t) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return config_setting_get_int64(a) == config_setting_get_int64(b);
	case CONFIG_TYPE_FLOAT: {
		double x = config_setting_get_float(a), y = config_setting_get_float(b);
		return !(x < y) && !(x > y);
	}
	case CONFIG_TYPE_BOOL:
		return config_setting_get_bool(a) == config_setting_get_bool(b);
	case CONFIG_TYPE_STRING:
		return strcmp(config_setting_get_string(a), config_setting_get_string(b)) == 0;
	default:
		return reload_same_aggregate(a, b);
	}
}

static int
reload_is_applied(const char *key, const struct controld *d)
{
	/* Without a TLS port there is no context to renew: tls is for a restart. */
	if (strcmp(key, "tls") == 0 && d->tls_srv == NULL)
		return 0;
	for (size_t i = 0; reload_applied[i]; i++)
		if (strcmp(key, reload_applied[i]) == 0)
			return 1;
	return 0;
}

static void
reload_note_key(const char *key, const config_setting_t *was, const config_setting_t *now,
    const struct controld *d, char *list, size_t listsz)
{
	if (reload_is_applied(key, d) || reload_same(was, now))
		return;
	log_warnx("event=reload_needs_restart key=%s reason=\"%s changed: needs a restart\"",
	    key, key);
	if (strlen(list) + strlen(key) + 2 < listsz) {
		if (list[0])
			strcat(list, ",");
		strcat(list, key);
	}
}

/* Each top-level key of either file that differs and is not applied. */
static void
reload_restart_keys(const struct controld *d, char *list, size_t listsz)
{
	config_t now;
	struct conf_err cerr;
	list[0] = '\0';
	if (!reload_have_started || conf_load(&now, reload_path, &cerr) < 0)
		return;
	const config_setting_t *r0 = config_root_setting(&reload_started);
	const config_setting_t *r1 = config_root_setting(&now);
	for (int pass = 0; pass < 2; pass++) {
		const config_setting_t *from = pass ? r1 : r0, *other = pass ? r0 : r1;
		for (int i = 0; i < config_setting_length(from); i++) {
			const config_setting_t *s = config_setting_get_elem(from, (unsigned)i);
			const char *key = config_setting_name(s);
			const config_setting_t *o = config_setting_get_member(other, key);
			if (pass == 0 || o == NULL)	/* a key of both: seen in pass 0 */
				reload_note_key(key, pass ? o : s, pass ? s : o, d, list, listsz);
		}
	}
	config_destroy(&now);
}

static void
reload_fail(const char *what, const char *err)
{
	char q[LOG_QUOTE_SIZE(400)];
	log_error("event=reload_failed stage=%s error=%s effect=old_settings_kept", what,
	    log_quote(q, sizeof(q), err, strlen(err), 400));
}

static void
reload_swap_str(char **dst, char **src)
{
	free(*dst);
	*dst = *src;
	*src = NULL;
}

/* The new context serves connections accepted from now on. */
static void
reload_apply_tls(struct controld *d, struct controld_config *n, SSL_CTX *ctx)
{
	X509 *was = d->tls ? SSL_CTX_get0_certificate(d->tls) : NULL;
	X509 *now = SSL_CTX_get0_certificate(ctx);
	int changed = was == NULL || now == NULL || X509_cmp(was, now) != 0;
	pki_server_enforce(ctx, d->revoked);
	grpc_server_set_tls(d->tls_srv, ctx);
	SSL_CTX_free(d->tls);
	d->tls = ctx;
	reload_swap_str(&d->cfg.cert, &n->cert);
	reload_swap_str(&d->cfg.key, &n->key);
	reload_swap_str(&d->cfg.ca, &n->ca);
	d->cfg.allow_multiple_ca = n->allow_multiple_ca;
	log_info("event=tls_reloaded cert=%s certificate_changed=%s", d->cfg.cert,
	    changed ? "yes" : "no");
}

static void
reload_apply_revocation_interval(struct controld *d, long long interval)
{
	if (interval == d->cfg.revocation_interval)
		return;
	d->cfg.revocation_interval = interval;
	if (d->revoke_ev) {
		struct timeval tv = { (time_t)interval, 0 };
		event_del(d->revoke_ev);
		event_add(d->revoke_ev, &tv);
	}
}

void
reload_run(struct controld *d)
{
	struct controld_config n;
	char err[1024], restart[256];
	SSL_CTX *ctx = NULL;

	sdnotify_reloading();
	log_info("event=reloading path=%s", reload_path);
	if (controld_config_load(reload_path, &n, err, sizeof(err)) < 0) {
		reload_fail("config", err);
		sdnotify("READY=1\nSTATUS=accepting calls");
		return;
	}
	if (d->tls_srv && n.cert && n.key && n.ca &&
	    (ctx = grpc_tls_server_ctx(n.cert, n.key, n.ca, err, sizeof(err))) == NULL) {
		reload_fail("tls", err);
		controld_config_free(&n);
		sdnotify("READY=1\nSTATUS=accepting calls");
		return;
	}
	if (ctx)
		reload_apply_tls(d, &n, ctx);
	if (d->tls_srv)
		reload_apply_revocation_interval(d, n.revocation_interval);
	d->cfg.log_level = n.log_level;
	log_set_level(n.log_level);
	controld_config_free(&n);
	reload_restart_keys(d, restart, sizeof(restart));
	log_info("event=reloaded tls=%s needs_restart=%s", ctx ? "reloaded" : "none",
	    restart[0] ? restart : "-");
	sdnotify("READY=1\nSTATUS=accepting calls");
}
