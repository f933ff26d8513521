/* Lists of the same shape in several places of mxd's configuration: the
 * listening addresses (listen, mta_sts_listen) and the certificates
 * (tls.certificates, mta_sts_certs). */
#ifndef MXD_CONFIG_LIST_H
#define MXD_CONFIG_LIST_H

#include <stddef.h>

#include "conf.h"
#include "tls.h"

/* An array of "IPv4:PORT" / "[IPv6]:PORT" strings into *out (replacing what
 * was there). 0, or -1 with err. */
int mxd_config_list_addrs(const config_setting_t *array, char ***out, size_t *n,
    struct conf_err *err);
void mxd_config_list_addrs_free(char **addrs, size_t n);
/* A list of { cert = ...; key = ...; } groups into *out (replacing what was
 * there). 0, or -1 with err. */
int mxd_config_list_certs(const config_setting_t *list, struct tls_cert_spec **out, size_t *n,
    struct conf_err *err);
void mxd_config_list_certs_free(struct tls_cert_spec *certs, size_t n);

/* The typed getters of conf.h into a config's fields, for mxd_config.c and
 * the parts parsed in files of their own (mxd_config_control.c): 1 set,
 * 0 absent (*out untouched), -1 with err. */
int mxd_config_int(const config_setting_t *g, const char *key, long long min, long long max,
    int *out, struct conf_err *err);
int mxd_config_strdup(const config_setting_t *g, const char *key, char **out,
    struct conf_err *err);

#endif
