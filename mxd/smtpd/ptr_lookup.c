/* The client's reverse-DNS name on a worker's loop (ptr_lookup.h): evdns
 * queries, their cancellation and the count that bounds them. What is made
 * of the answers is ptr_name.c's. */
#include "ptr_lookup.h"
#include "ptr_name.h"
#include "xmalloc.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ptr_lookup {
	struct ptr_lookup	*next, *prev;
	struct ptr_resolver	*r;
	struct evdns_request	*req;		/* the query in flight */
	ptr_lookup_cb		 cb;		/* NULL: cancelled */
	void			*arg;
	int			 family;	/* AF_INET or AF_INET6 */
	unsigned char		 addr[16];	/* the client's */
	char			 name[PTR_NAME_SIZE];
};

struct ptr_resolver {
	struct evdns_base	*dns;
	struct ptr_lookup	*lookups;	/* in flight, cancelled ones too */
	int			 n, max;
};

struct ptr_resolver *
ptr_resolver_new(struct event_base *base, const char *server, int max_lookups, char *err,
    size_t errsz)
{
	char num[16];
	/* No /etc/resolv.conf, no search list: only mxd's resolver. */
	struct evdns_base *dns = evdns_base_new(base, 0);

	if (dns == NULL) {
		snprintf(err, errsz, "evdns_base_new failed");
		return NULL;
	}
	if (evdns_base_nameserver_ip_add(dns, server) != 0) {
		snprintf(err, errsz, "not an IP[:PORT] address: %s", server);
		evdns_base_free(dns, 0);
		return NULL;
	}
	snprintf(num, sizeof(num), "%d", PTR_LOOKUP_TIMEOUT_S);
	evdns_base_set_option(dns, "timeout:", num);
	snprintf(num, sizeof(num), "%d", PTR_LOOKUP_ATTEMPTS);
	evdns_base_set_option(dns, "attempts:", num);
	/* 0x20 case games are for open resolvers on paths we do not trust;
	 * ours is the operator's, and some servers answer in lower case. */
	evdns_base_set_option(dns, "randomize-case:", "0");
	struct ptr_resolver *r = xcalloc(1, sizeof(*r));
	r->dns = dns;
	r->max = max_lookups > 0 ? max_lookups : 1;
	return r;
}

static void
ptr_lookup_free(struct ptr_lookup *l)
{
	struct ptr_resolver *r = l->r;

	if (l->prev)
		l->prev->next = l->next;
	else
		r->lookups = l->next;
	if (l->next)
		l->next->prev = l->prev;
	r->n--;
	free(l);
}

void
ptr_resolver_free(struct ptr_resolver *r)
{
	if (r == NULL)
		return;
	evdns_base_free(r->dns, 0);	/* no callbacks: the lookups go below */
	while (r->lookups)
		ptr_lookup_free(r->lookups);
	free(r);
}

/* The answer is in (name, or ""): the session learns it, the lookup ends. */
static void
ptr_lookup_done(struct ptr_lookup *l, const char *name)
{
	if (l->cb)
		l->cb(l->arg, name);
	ptr_lookup_free(l);
}

/* The name's A or AAAA records: the client's address among them confirms. */
static void
ptr_lookup_forward_cb(int result, char type, int count, int ttl, void *addrs, void *arg)
{
	struct ptr_lookup *l = arg;
	int want = l->family == AF_INET ? DNS_IPv4_A : DNS_IPv6_AAAA;
	size_t alen = l->family == AF_INET ? 4 : 16;

	(void)ttl;
	l->req = NULL;
	if (result == DNS_ERR_NONE && type == want &&
	    ptr_name_confirms(addrs, count, alen, l->addr))
		ptr_lookup_done(l, l->name);
	else
		ptr_lookup_done(l, "");
}

/* The PTR answer (evdns hands the first name only): a hostname is looked
 * up forward, anything else ends the lookup with no name. */
static void
ptr_lookup_reverse_cb(int result, char type, int count, int ttl, void *addrs, void *arg)
{
	struct ptr_lookup *l = arg;

	(void)ttl;
	l->req = NULL;
	if (l->cb == NULL || result != DNS_ERR_NONE || type != DNS_PTR || count < 1 ||
	    ptr_name_clean(*(const char **)addrs, l->name, sizeof(l->name)) < 0) {
		ptr_lookup_done(l, "");
		return;
	}
	if (l->family == AF_INET)
		l->req = evdns_base_resolve_ipv4(l->r->dns, l->name, DNS_QUERY_NO_SEARCH,
		    ptr_lookup_forward_cb, l);
	else
		l->req = evdns_base_resolve_ipv6(l->r->dns, l->name, DNS_QUERY_NO_SEARCH,
		    ptr_lookup_forward_cb, l);
	if (l->req == NULL)
		ptr_lookup_done(l, "");
}

struct ptr_lookup *
ptr_lookup_start(struct ptr_resolver *r, const struct sockaddr *sa, ptr_lookup_cb cb, void *arg)
{
	unsigned char addr[16];
	int family = ptr_name_client(sa, addr);

	if (family < 0 || r->n >= r->max)
		return NULL;
	struct ptr_lookup *l = xcalloc(1, sizeof(*l));
	l->r = r;
	l->cb = cb;
	l->arg = arg;
	l->family = family;
	memcpy(l->addr, addr, sizeof(addr));
	l->next = r->lookups;
	if (r->lookups)
		r->lookups->prev = l;
	r->lookups = l;
	r->n++;
	/* evdns calls back from the loop only (deferred callbacks). */
	if (family == AF_INET) {
		struct in_addr in;
		memcpy(&in, addr, 4);
		l->req = evdns_base_resolve_reverse(r->dns, &in, DNS_QUERY_NO_SEARCH,
		    ptr_lookup_reverse_cb, l);
	} else {
		struct in6_addr in6;
		memcpy(&in6, addr, 16);
		l->req = evdns_base_resolve_reverse_ipv6(r->dns, &in6, DNS_QUERY_NO_SEARCH,
		    ptr_lookup_reverse_cb, l);
	}
	if (l->req == NULL) {
		ptr_lookup_free(l);
		return NULL;
	}
	return l;
}

void
ptr_lookup_cancel(struct ptr_lookup *l)
{
	if (l == NULL)
		return;
	l->cb = NULL;
	/* evdns still calls back (DNS_ERR_CANCEL, or the answer it already
	 * had): that call frees l, and until then l counts against max. */
	if (l->req)
		evdns_cancel_request(l->r->dns, l->req);
}
