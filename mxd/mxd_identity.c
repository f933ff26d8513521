/* The host's identity for controld's DNS (mxd_identity.h). */
#include "mxd_identity.h"
#include "mxd_keyfile.h"
#include "log.h"
#include "mxd_keyswitch.h"
#include "netaddr.h"
#include "tlsid.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ---- */

/* An IP literal in its canonical text (inet_ntop), or -1. */
static int
mxd_identity_ip(const char *s, char *out, size_t outsz)
{
	unsigned char a[sizeof(struct in6_addr)];
	int af = strchr(s, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, s, a) != 1 || inet_ntop(af, a, out, (socklen_t)outsz) == NULL)
		return -1;
	return 0;
}

static void
mxd_identity_add_address(char ***list, size_t *n, const char *ip)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*list)[i], ip) == 0)
			return;
	*list = xreallocarray(*list, *n + 1, sizeof(**list));
	(*list)[(*n)++] = xstrdup(ip);
}

int
mxd_identity_config(struct mxd_config *cfg, const config_setting_t *root, struct conf_err *err)
{
	config_setting_t *g;
	const char *s;
	int r;

	if ((r = conf_get_aggregate(root, "tls", CONFIG_TYPE_GROUP, &g, err)) < 0)
		return -1;
	if (r == 1 && (r = conf_get_string(g, "next_key", &s, err)) < 0)
		return -1;
	if (r == 1) {
		if (s[0] == '\0')
			return conf_error(err, config_setting_get_member(g, "next_key"),
			    "expected a file path");
		free(cfg->next_key);
		cfg->next_key = xstrdup(s);
	}
	if ((r = conf_get_aggregate(root, "public_addresses", CONFIG_TYPE_ARRAY, &g, err)) < 0)
		return -1;
	if (r == 0)
		return 0;
	int n = config_setting_length(g);
	if (n > MXD_IDENTITY_MAX_ADDRESSES)
		return conf_error(err, g, "at most %d addresses", MXD_IDENTITY_MAX_ADDRESSES);
	cfg->public_addresses_set = 1;
	for (int i = 0; i < n; i++) {
		char ip[INET6_ADDRSTRLEN];
		if (conf_elem_string(g, (unsigned)i, &s, err) < 0)
			return -1;
		if (mxd_identity_ip(s, ip, sizeof(ip)) < 0)
			return conf_error(err, config_setting_get_elem(g, (unsigned)i),
			    "expected an IPv4 or IPv6 address like 192.0.2.1 or 2001:db8::1");
		mxd_identity_add_address(&cfg->public_addresses, &cfg->npublic_addresses, ip);
	}
	return 0;
}

void
mxd_identity_config_free(struct mxd_config *cfg)
{
	for (size_t i = 0; i < cfg->npublic_addresses; i++)
		free(cfg->public_addresses[i]);
	free(cfg->public_addresses);
	free(cfg->next_key);
}

/* A new EC P-256 key at path, mode 0600: written to a temporary file,
 * fsync'd, renamed over path (never over another key: link() would fail
 * if one appeared meanwhile) and the directory fsync'd, so a crash leaves
 * either no key or a whole one. */
static int
mxd_identity_create_key(const char *path, EVP_PKEY **out, char *err, size_t errsz)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	EVP_PKEY *k = EVP_EC_gen("P-256");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int ok = k != NULL && f != NULL && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1 &&
	    fflush(f) == 0 && fsync(fd) == 0;
	int saved = errno;
	if (f)
		fclose(f);
	else if (fd >= 0)
		close(fd);
	if (ok && link(tmp, path) < 0) {
		saved = errno;
		ok = 0;
	}
	unlink(tmp);
	free(tmp);
	if (!ok || mxd_keyfile_fsync_dir(path) < 0) {
		int e = ok ? errno : saved;
		/* Under the packaged unit /etc is read-only (ProtectSystem=strict):
		 * the usual way to meet this is a certificate kept under /etc. */
		snprintf(err, errsz, "%s: cannot create the next key: %s%s", path,
		    k == NULL ? "key generation failed" : strerror(e),
		    k != NULL && e == EROFS ?
			" (mxd writes tls.next_key and switches certificates itself: keep "
			"them in a directory it may write, /var/lib/mxfleet under the "
			"systemd unit)" : "");
		EVP_PKEY_free(k);
		return -1;
	}
	*out = k;
	log_info("event=next_key_created path=%s type=ec", path);
	return 0;
}

/* The next key's SPKI SHA-256 into spki ("" when there is no next key). */
static int
mxd_identity_next_spki(const struct mxd_config *cfg, enum mxd_next_key_mode mode, char *spki,
    char *err, size_t errsz)
{
	char *path = mxd_keyfile_next_key_path(cfg);
	EVP_PKEY *k = NULL;
	int rc = 0;
	spki[0] = '\0';
	if (path == NULL)
		return 0;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (mode == MXD_NEXT_KEY_READ)
			log_info("event=next_key_missing path=%s action=\"created when mxd starts\"",
			    path);
		else if ((rc = mxd_identity_create_key(path, &k, err, errsz)) < 0 &&
		    mode == MXD_NEXT_KEY_TRY) {
			/* Key directories are root's: the next start creates it. */
			log_warnx("event=next_key_not_created error=\"%s\" action=\"reported as none;"
			    " created at the next start\"", err);
			rc = 0;
		}
	} else if ((rc = tlsid_read_key(path, &k, err, errsz)) < 0) {
		char why[400];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errsz, "next_key %s (tls.next_key in docs/dns.md#host-identity)", why);
	}
	if (k != NULL && tlsid_spki_sha256(k, spki) < 0) {
		snprintf(err, errsz, "%s: the next key's public key cannot be encoded", path);
		rc = -1;
	}
	EVP_PKEY_free(k);
	free(path);
	return rc;
}

/* ---- the identity ---- */

/* public_addresses, else the addresses listen names (not the wildcards). */
static void
mxd_identity_addresses(const struct mxd_config *cfg, Mxfleet__V1__HostIdentity *id)
{
	if (cfg->public_addresses_set) {
		for (size_t i = 0; i < cfg->npublic_addresses; i++)
			mxd_identity_add_address(&id->addresses, &id->n_addresses,
			    cfg->public_addresses[i]);
		return;
	}
	for (size_t i = 0; i < cfg->nlisten && id->n_addresses < MXD_IDENTITY_MAX_ADDRESSES; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		char ip[INET6_ADDRSTRLEN];
		if (netaddr_parse_hostport(cfg->listen[i], &ss, &sl) < 0)
			continue;
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		if (ss.ss_family == AF_INET && s4->sin_addr.s_addr != htonl(INADDR_ANY))
			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		else if (ss.ss_family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		else
			continue;
		mxd_identity_add_address(&id->addresses, &id->n_addresses, ip);
	}
	if (id->n_addresses == 0)
		log_warnx("event=no_public_addresses listen=wildcard hint=\"DNS generation will "
		    "miss this host's addresses: set public_addresses (docs/dns.md#host-identity)\"");
}

/* The leaf of each tls.certificates entry. */
static int
mxd_identity_certs(const struct mxd_config *cfg, Mxfleet__V1__HostIdentity *id, char *err,
    size_t errsz)
{
	size_t n = cfg->ncerts;
	if (n > MXD_IDENTITY_MAX_CERTS) {
		log_warnx("event=identity_certs_cut certificates=%zu reported=%d", n,
		    MXD_IDENTITY_MAX_CERTS);
		n = MXD_IDENTITY_MAX_CERTS;
	}
	id->certs = xcalloc(n + 1, sizeof(*id->certs));
	for (size_t i = 0; i < n; i++) {
		X509 *x = NULL;
		struct tlsid_cert tc;
		char why[300];
		if (tlsid_read_cert(cfg->certs[i].cert, &x, err, errsz) < 0)
			return -1;
		int rc = tlsid_cert_describe(x, &tc, why, sizeof(why));
		X509_free(x);
		if (rc < 0) {
			snprintf(err, errsz, "%s: %s", cfg->certs[i].cert, why);
			return -1;
		}
		if (tc.names_dropped)
			log_warnx("event=identity_names_cut cert=%s names_left_out=%zu",
			    cfg->certs[i].cert, tc.names_dropped);
		Mxfleet__V1__HostCert *hc = xmalloc(sizeof(*hc));
		mxfleet__v1__host_cert__init(hc);
		hc->names = tc.names;		/* taken over */
		hc->n_names = tc.nnames;
		hc->spki_sha256 = xstrdup(tc.spki);
		hc->not_after_unix = tc.not_after;
		hc->key_type = xstrdup(tc.key_type);
		id->certs[id->n_certs++] = hc;
	}
	return 0;
}

static void
mxd_identity_free_msg(Mxfleet__V1__HostIdentity *id)
{
	for (size_t i = 0; i < id->n_addresses; i++)
		free(id->addresses[i]);
	free(id->addresses);
	for (size_t i = 0; i < id->n_certs; i++) {
		for (size_t k = 0; k < id->certs[i]->n_names; k++)
			free(id->certs[i]->names[k]);
		free(id->certs[i]->names);
		free(id->certs[i]->spki_sha256);
		free(id->certs[i]->key_type);
		free(id->certs[i]);
	}
	free(id->certs);
}

/* Whether the certificate for the next key is in place (mxd_keyswitch.h). */
static int
mxd_identity_next_cert(const Mxfleet__V1__HostIdentity *id)
{
	char why[600];
	if (id->next_cert_path[0] == '\0')
		return 0;
	int ready = mxd_keyswitch_cert_ready(id->next_cert_path, id->next_spki_sha256, time(NULL),
	    why, sizeof(why)) == 1;
	if (ready)
		log_info("event=next_cert_ready path=%s", id->next_cert_path);
	else if (mxd_keyswitch_exists(id->next_cert_path))
		log_warnx("event=next_cert_not_ready why=\"%s\"", why);
	return ready;
}

int
mxd_identity_build(const struct mxd_config *cfg, enum mxd_next_key_mode mode, uint8_t **out,
    size_t *outlen, char *err, size_t errsz)
{
	Mxfleet__V1__HostIdentity id = MXFLEET__V1__HOST_IDENTITY__INIT;
	char spki[TLSID_SPKI_HEX];
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	id.hostname = cfg->hostname;
	id.next_spki_sha256 = spki;
	mxd_identity_addresses(cfg, &id);
	char *next_cert = mxd_keyswitch_next_cert_path(cfg);
	id.next_cert_path = next_cert ? next_cert : (char *)"";
	if (mxd_identity_certs(cfg, &id, err, errsz) == 0 &&
	    mxd_identity_next_spki(cfg, mode, spki, err, errsz) == 0) {
		id.next_cert_ready = mxd_identity_next_cert(&id);
		size_t n = mxfleet__v1__host_identity__get_packed_size(&id);
		if (n > MXD_IDENTITY_MAX_BYTES)
			snprintf(err, errsz, "the host identity takes %zu bytes, over %u: fewer"
			    " certificates or names", n, MXD_IDENTITY_MAX_BYTES);
		else {
			*out = xmalloc(n ? n : 1);
			*outlen = mxfleet__v1__host_identity__pack(&id, *out);
			rc = 0;
			log_info("event=host_identity hostname=%s addresses=%zu certificates=%zu"
			    " next_spki=%.16s", cfg->hostname, id.n_addresses, id.n_certs,
			    spki[0] ? spki : "none");
		}
	}
	mxd_identity_free_msg(&id);
	free(next_cert);
	return rc;
}

/* ---- master -> uploader ---- */

int
mxd_identity_channel_new(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	int sz = (int)MXD_IDENTITY_MAX_BYTES * 2;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	return 0;
}

void
mxd_identity_send(int fd, const uint8_t *msg, size_t len)
{
	if (send(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		log_warn("event=identity_not_sent bytes=%zu hint=\"controld keeps the identity"
		    " of the last start or reload\"", len);
}

Mxfleet__V1__HostIdentity *
mxd_identity_recv(int fd)
{
	uint8_t *buf = xmalloc(MXD_IDENTITY_MAX_BYTES);
	Mxfleet__V1__HostIdentity *id = NULL;
	ssize_t n;
	/* Several reloads in a row: the last one counts. */
	while ((n = recv(fd, buf, MXD_IDENTITY_MAX_BYTES, MSG_DONTWAIT)) > 0) {
		if (id)
			mxfleet__v1__host_identity__free_unpacked(id, NULL);
		id = mxfleet__v1__host_identity__unpack(NULL, (size_t)n, buf);
		if (id == NULL)
			log_warnx("event=identity_unreadable bytes=%zd", n);
	}
	free(buf);
	return id;
}
