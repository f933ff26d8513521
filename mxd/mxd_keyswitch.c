/* The next key's certificate and the switch to it (mxd_keyswitch.h). */
#include "mxd_keyswitch.h"
#include "log.h"
#include "mxd_identity.h"
#include "mxd_keyfile.h"
#include "pki.h"
#include "tls.h"
#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- configuration ---- */

int
mxd_keyswitch_config(struct mxd_config *cfg, const config_setting_t *tls, struct conf_err *err)
{
	const char *s;
	int r;

	if ((r = conf_get_string(tls, "next_cert", &s, err)) < 0)
		return -1;
	if (r == 1) {
		if (s[0] == '\0')
			return conf_error(err, config_setting_get_member(tls, "next_cert"),
			    "expected a file path");
		free(cfg->next_cert);
		cfg->next_cert = xstrdup(s);
	}
	return 0;
}

void
mxd_keyswitch_config_free(struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->nkey_switches; i++)
		free(cfg->key_switches[i].host_id);
	free(cfg->key_switches);
	free(cfg->next_cert);
}

void
mxd_keyswitch_merge_snapshot(struct mxd_config *cfg, const Mxfleet__V1__ConfigSnapshot *s)
{
	for (size_t i = 0; i < s->n_key_switches; i++) {
		const Mxfleet__V1__KeySwitch *k = s->key_switches[i];
		if (!tlsid_spki_valid(k->to_spki_sha256)) {
			log_warnx("event=snapshot_key_switch_ignored host_id=%.100s reason=spki",
			    k->host_id);
			continue;
		}
		cfg->key_switches = xreallocarray(cfg->key_switches, cfg->nkey_switches + 1,
		    sizeof(*cfg->key_switches));
		struct mxd_key_switch *ks = &cfg->key_switches[cfg->nkey_switches++];
		ks->host_id = xstrdup(k->host_id);
		memcpy(ks->to_spki, k->to_spki_sha256, TLSID_SPKI_HEX);
	}
}

char *
mxd_keyswitch_next_cert_path(const struct mxd_config *cfg)
{
	if (cfg->next_cert)
		return xstrdup(cfg->next_cert);
	if (cfg->ncerts > 0)
		return xasprintf("%s.next", cfg->certs[0].cert);
	return NULL;
}

/* ---- the next certificate ---- */

/* stat, not access: access() checks with the real uid and without the
 * master's CAP_DAC_READ_SEARCH. */
int
mxd_keyswitch_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int64_t
mxd_keyswitch_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* Read the leaf of path into w (spki compared with next_spki, validity).
 * 0, or -1 with why in w->why; errno EACCES when unreadable for lack of
 * permission. */
static int
mxd_keyswitch_read(struct mxd_next_cert_watch *w, const char *path, const char *next_spki)
{
	X509 *x = NULL;
	struct tlsid_cert tc;
	char err[300];

	w->matches = 0;
	w->not_before = w->not_after = 0;
	snprintf(w->spki, sizeof(w->spki), "%s", next_spki);
	if (tlsid_read_cert(path, &x, err, sizeof(err)) < 0) {
		int saved = errno;
		snprintf(w->why, sizeof(w->why), "%s", err);
		errno = saved;
		return -1;
	}
	int rc = tlsid_cert_describe(x, &tc, err, sizeof(err));
	if (rc == 0) {
		w->matches = strcmp(tc.spki, next_spki) == 0;
		w->not_before = mxd_keyswitch_time(X509_get0_notBefore(x));
		w->not_after = mxd_keyswitch_time(X509_get0_notAfter(x));
		if (!w->matches)
			snprintf(w->why, sizeof(w->why), "%s: its public key (SPKI %.16s) is not the"
			    " next key's (%.16s)", path, tc.spki, next_spki);
		tlsid_cert_clear(&tc);
	} else
		snprintf(w->why, sizeof(w->why), "%s: %s", path, err);
	X509_free(x);
	errno = 0;
	return rc;
}

/* 1 when what w holds is ready at now, else 0 with why. */
static int
mxd_keyswitch_verdict(struct mxd_next_cert_watch *w, const char *path, time_t now)
{
	if (!w->matches)
		return 0;
	if ((int64_t)now < w->not_before) {
		snprintf(w->why, sizeof(w->why), "%s: not valid before %lld", path,
		    (long long)w->not_before);
		return 0;
	}
	if ((int64_t)now > w->not_after) {
		snprintf(w->why, sizeof(w->why), "%s: expired at %lld", path,
		    (long long)w->not_after);
		return 0;
	}
	w->why[0] = '\0';
	return 1;
}

int
mxd_keyswitch_cert_ready(const char *path, const char *next_spki, time_t now, char *why,
    size_t whysz)
{
	struct mxd_next_cert_watch w;
	int rc;

	memset(&w, 0, sizeof(w));
	if (next_spki == NULL || next_spki[0] == '\0') {
		snprintf(why, whysz, "there is no next key yet");
		return 0;
	}
	if (!mxd_keyswitch_exists(path) && errno == ENOENT) {
		snprintf(why, whysz, "%s: no certificate for the next key there", path);
		return 0;
	}
	if (mxd_keyswitch_read(&w, path, next_spki) < 0)
		rc = errno == EACCES ? -1 : 0;
	else
		rc = mxd_keyswitch_verdict(&w, path, now);
	snprintf(why, whysz, "%s", w.why);
	return rc;
}

static int
mxd_keyswitch_same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int
mxd_keyswitch_watch(struct mxd_next_cert_watch *w, Mxfleet__V1__HostIdentity *id, time_t now)
{
	struct stat st;
	int ready = 0;

	if (id == NULL || id->next_cert_path == NULL || id->next_cert_path[0] == '\0')
		return 0;
	const char *path = id->next_cert_path;
	int found = stat(path, &st) == 0;
	if (!found && errno == EACCES)
		return 0;	/* only the master may look there: its answer stands */
	if (id->next_spki_sha256[0] == '\0' || !found) {
		w->st.st_ino = 0;
		snprintf(w->why, sizeof(w->why), "%s: no certificate for the next key there", path);
	} else if (w->st.st_ino != 0 && mxd_keyswitch_same_stat(&w->st, &st) &&
	    strcmp(w->spki, id->next_spki_sha256) == 0) {
		ready = mxd_keyswitch_verdict(w, path, now);
	} else if (mxd_keyswitch_read(w, path, id->next_spki_sha256) < 0 && errno == EACCES) {
		/* Only the master may read it: its answer stands. */
		w->st.st_ino = 0;
		return 0;
	} else {
		w->st = st;
		ready = mxd_keyswitch_verdict(w, path, now);
	}
	if (ready == (id->next_cert_ready != 0))
		return 0;
	id->next_cert_ready = ready;
	if (ready)
		log_info("event=next_cert_ready path=%s", path);
	else
		log_info("event=next_cert_not_ready why=\"%s\"", w->why);
	return 1;
}

/* ---- the switch ---- */

/* The control plane's name for this host: control.host_id, else the CN of
 * control.cert (as the uploader says it). */
static int
mxd_keyswitch_host_id(const struct mxd_config *cfg, char *out, size_t outsz)
{
	enum pki_role role;
	time_t not_after;
	char err[300];

	if (cfg->control_host_id) {
		snprintf(out, outsz, "%s", cfg->control_host_id);
		return 0;
	}
	if (pki_describe(cfg->control_cert, out, outsz, &role, &not_after, err, sizeof(err)) < 0) {
		log_warnx("event=key_switch_failed error=\"%s\"", err);
		return -1;
	}
	return 0;
}

static int
mxd_keyswitch_spki_of_key(const char *path, char spki[TLSID_SPKI_HEX])
{
	EVP_PKEY *k = NULL;
	char err[300];
	int rc = tlsid_read_key(path, &k, err, sizeof(err)) < 0 ? -1 : tlsid_spki_sha256(k, spki);
	EVP_PKEY_free(k);
	return rc;
}

static int
mxd_keyswitch_spki_of_cert(const char *path, char spki[TLSID_SPKI_HEX])
{
	X509 *x = NULL;
	struct tlsid_cert tc;
	char err[300];
	if (tlsid_read_cert(path, &x, err, sizeof(err)) < 0)
		return -1;
	int rc = tlsid_cert_describe(x, &tc, err, sizeof(err));
	X509_free(x);
	if (rc == 0) {
		memcpy(spki, tc.spki, TLSID_SPKI_HEX);
		tlsid_cert_clear(&tc);
	}
	return rc;
}

/* The files of a switch: the first certificate's, and the next ones. */
struct mxd_keyswitch_files {
	const char	*cert, *key;
	char		*ncert, *nkey;
};

static int
mxd_keyswitch_rename(const char *from, const char *to, char *err, size_t errsz)
{
	if (rename(from, to) == 0 && mxd_keyfile_fsync_dir(to) == 0 &&
	    mxd_keyfile_fsync_dir(from) == 0)
		return 0;
	snprintf(err, errsz, "%s -> %s: %s", from, to, strerror(errno));
	return -1;
}

/* path becomes path.prev and next becomes path: renames only, so each file
 * keeps its owner and mode (a reloading master may not link or copy a
 * file of root's). A cut between the two leaves path missing beside
 * path.prev and next, which mxd_keyswitch_finish puts in place. */
static int
mxd_keyswitch_shift(const char *path, const char *next, char *err, size_t errsz)
{
	char *prev = xasprintf("%s.prev", path);
	int rc = mxd_keyswitch_rename(path, prev, err, errsz) < 0 ||
	    mxd_keyswitch_rename(next, path, err, errsz) < 0 ? -1 : 0;
	free(prev);
	return rc;
}

/* The next certificate and key become the first certificate's files. They
 * are first loaded as the reload will load them; the key moves before the
 * certificate. */
static int
mxd_keyswitch_promote(const struct mxd_config *cfg, const struct mxd_keyswitch_files *f,
    char *err, size_t errsz)
{
	struct tls_cert_spec spec = { f->ncert, f->nkey };
	struct tls_server *t = NULL;
	struct stat st;

	if (tls_server_new(&t, &spec, 1, cfg->tls_min_version, cfg->session_tickets, err,
	    errsz) < 0)
		return -1;
	tls_server_free(t);
	if (mxd_keyfile_fsync(f->ncert) < 0 || mxd_keyfile_fsync(f->nkey) < 0) {
		snprintf(err, errsz, "cannot fsync the next certificate or key: %s",
		    strerror(errno));
		return -1;
	}
	if (mxd_keyswitch_shift(f->key, f->nkey, err, errsz) < 0 ||
	    mxd_keyswitch_shift(f->cert, f->ncert, err, errsz) < 0)
		return -1;
	if (stat(f->key, &st) == 0 && (st.st_mode & 07777) != 0600 && chmod(f->key, 0600) < 0)
		log_warn("event=key_mode_not_set path=%s mode=0600", f->key);
	return 0;
}

/* A switch cut midway (the files as mxd_keyswitch_promote left them): the
 * key, then the certificate, moved on to the next ones. Only with the
 * .prev beside a missing file, or a key that is the next certificate's. */
static void
mxd_keyswitch_finish(const struct mxd_keyswitch_files *f)
{
	char kspki[TLSID_SPKI_HEX], cspki[TLSID_SPKI_HEX], nspki[TLSID_SPKI_HEX], err[600];
	char *kprev = xasprintf("%s.prev", f->key), *cprev = xasprintf("%s.prev", f->cert);
	int rc = 0, done = 0;

	if (!mxd_keyswitch_exists(f->key) && mxd_keyswitch_exists(kprev) &&
	    mxd_keyswitch_exists(f->nkey) && mxd_keyswitch_exists(f->ncert))
		rc = mxd_keyswitch_rename(f->nkey, f->key, err, sizeof(err));
	if (rc == 0 && !mxd_keyswitch_exists(f->nkey) && mxd_keyswitch_exists(f->ncert) &&
	    mxd_keyswitch_spki_of_key(f->key, kspki) == 0 &&
	    mxd_keyswitch_spki_of_cert(f->ncert, nspki) == 0 && strcmp(kspki, nspki) == 0) {
		if (!mxd_keyswitch_exists(f->cert) && mxd_keyswitch_exists(cprev)) {
			rc = mxd_keyswitch_rename(f->ncert, f->cert, err, sizeof(err));
			done = 1;
		} else if (mxd_keyswitch_spki_of_cert(f->cert, cspki) == 0 &&
		    strcmp(cspki, kspki) != 0) {
			rc = mxd_keyswitch_shift(f->cert, f->ncert, err, sizeof(err));
			done = 1;
		}
	}
	if (rc < 0)
		log_error("event=key_switch_failed error=\"%s\"", err);
	else if (done)
		log_info("event=key_switch_completed new_spki=%s cert=%s key=%s", kspki, f->cert,
		    f->key);
	free(kprev);
	free(cprev);
}

static void
mxd_keyswitch_to(const struct mxd_config *cfg, const struct mxd_keyswitch_files *f,
    const char *to, time_t now)
{
	char cur[TLSID_SPKI_HEX], next[TLSID_SPKI_HEX], why[600];

	if (mxd_keyswitch_spki_of_cert(f->cert, cur) == 0 && strcmp(cur, to) == 0)
		return;		/* switched already: the snapshot still says so */
	if (!mxd_keyswitch_exists(f->nkey) || mxd_keyswitch_spki_of_key(f->nkey, next) < 0 ||
	    strcmp(next, to) != 0) {
		log_warnx("event=key_switch_ignored to_spki=%s reason=\"neither the key served nor"
		    " the next key (%s)\"", to, f->nkey);
		return;
	}
	if (mxd_keyswitch_cert_ready(f->ncert, next, now, why, sizeof(why)) != 1) {
		log_warnx("event=key_switch_waiting to_spki=%s missing=\"%s\" action=\"put a"
		    " certificate for the next key at %s (a CSR: mxd -c FILE csr), then reload"
		    " mxd\"", to, why, f->ncert);
		return;
	}
	if (mxd_keyswitch_promote(cfg, f, why, sizeof(why)) < 0) {
		log_error("event=key_switch_failed to_spki=%s error=\"%s\" action=\"the reloading"
		    " mxd needs write access to the directories of the certificate and key, or"
		    " restart mxd: the switch runs at start\"", to, why);
		return;
	}
	log_info("event=key_switched old_spki=%s new_spki=%s cert=%s key=%s prev=%s.prev", cur, to,
	    f->cert, f->key, f->cert);
}

void
mxd_keyswitch_apply(const struct mxd_config *cfg, time_t now)
{
	char host_id[256];

	if (cfg->ncerts == 0 || cfg->control_server == NULL)
		return;
	struct mxd_keyswitch_files f = { cfg->certs[0].cert, cfg->certs[0].key,
	    mxd_keyswitch_next_cert_path(cfg), mxd_keyfile_next_key_path(cfg) };
	mxd_keyswitch_finish(&f);
	for (size_t i = 0; i < cfg->nkey_switches; i++) {
		if (i == 0 && mxd_keyswitch_host_id(cfg, host_id, sizeof(host_id)) < 0)
			break;
		if (strcmp(cfg->key_switches[i].host_id, host_id) == 0) {
			mxd_keyswitch_to(cfg, &f, cfg->key_switches[i].to_spki, now);
			break;
		}
	}
	free(f.ncert);
	free(f.nkey);
}

/* ---- the certificate request ---- */

/* "DNS:a,DNS:b": the host name, then the names the first certificate
 * covers now (the next one must cover them too). */
static char *
mxd_keyswitch_csr_names(const struct mxd_config *cfg)
{
	char *san = xasprintf("DNS:%s", cfg->hostname);
	X509 *x = NULL;
	struct tlsid_cert tc;
	char err[300];

	if (cfg->ncerts == 0 || tlsid_read_cert(cfg->certs[0].cert, &x, err, sizeof(err)) < 0)
		return san;
	if (tlsid_cert_describe(x, &tc, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < tc.nnames; i++) {
			if (strcasecmp(tc.names[i], cfg->hostname) == 0)
				continue;
			char *more = xasprintf("%s,DNS:%s", san, tc.names[i]);
			free(san);
			san = more;
		}
		tlsid_cert_clear(&tc);
	}
	X509_free(x);
	return san;
}

int
mxd_keyswitch_csr(const struct mxd_config *cfg, FILE *out, char *err, size_t errsz)
{
	char *path = mxd_keyfile_next_key_path(cfg);
	EVP_PKEY *k = NULL;
	X509_REQ *req = NULL;
	int rc = -1;

	if (path == NULL) {
		snprintf(err, errsz, "no next key: no tls.certificates and no tls.next_key");
		return -1;
	}
	if (tlsid_read_key(path, &k, err, errsz) < 0)
		goto out;
	char *san = mxd_keyswitch_csr_names(cfg);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	req = X509_REQ_new();
	if (ext && exts && req && sk_X509_EXTENSION_push(exts, ext) > 0 &&
	    X509_REQ_set_version(req, 0) == 1 && X509_NAME_add_entry_by_txt(
	    X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
	    (const unsigned char *)cfg->hostname, -1, -1, 0) == 1 &&
	    X509_REQ_add_extensions(req, exts) == 1 && X509_REQ_set_pubkey(req, k) == 1 &&
	    X509_REQ_sign(req, k, EVP_sha256()) > 0 && PEM_write_X509_REQ(out, req) == 1)
		rc = 0;
	else
		snprintf(err, errsz, "%s: cannot make a certificate request with it", path);
	if (exts && sk_X509_EXTENSION_num(exts) > 0)
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	else {
		sk_X509_EXTENSION_free(exts);
		X509_EXTENSION_free(ext);
	}
	free(san);
out:
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	free(path);
	return rc;
}
