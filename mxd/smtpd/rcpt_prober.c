/* Recipient verification probes on a worker's libevent loop (rcpt_prober.h):
 * the dialogue is rcpt_probe.c's, the answers go to rcpt_verify.c's cache. */
#include "rcpt_prober.h"
#include "rcpt_probe.h"
#include "log.h"
#include "timeutil.h"
#include "xmalloc.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

struct rcpt_prober_wait {
	struct rcpt_prober_wait	*next;
	struct rcpt_prober_job	*job;
	rcpt_prober_cb		 cb;
	void			*arg;
};

/* One probe: from the connect to the deciding reply, then until QUIT has
 * left (or the deadline). */
struct rcpt_prober_job {
	struct rcpt_prober_job	*next, *prev;
	struct rcpt_prober	*p;
	struct bufferevent	*bev;
	struct event		*deadline;
	struct rcpt_probe	 probe;
	char			 hop[300];	/* for logs */
	int			 reported;	/* the answer went to the cache */
	struct evdns_getaddrinfo_request *lookup;	/* the next hop's name */
	char			 fail_why[160];	/* set: the deadline fails it now */
	struct rcpt_prober_wait	*waiters;
};

struct rcpt_prober {
	struct event_base	*base;
	const struct mxd_config	*cfg;
	struct rcpt_verify_cache *cache;
	struct rcpt_prober_job	*jobs;
	struct evdns_base	*dns;	/* made at the first next hop given by name */
};

static int64_t
rcpt_prober_clock(void *arg)
{
	(void)arg;
	return (int64_t)(timeutil_mono_ms() / 1000);
}

struct rcpt_prober *
rcpt_prober_new(struct event_base *base, const struct mxd_config *cfg)
{
	struct rcpt_prober *p = xcalloc(1, sizeof(*p));
	struct rcpt_verify_opts o = {
		.positive_ttl = cfg->verify_positive_ttl,
		.negative_ttl = cfg->verify_negative_ttl,
		/* a probe ends by its deadline; the mark must not outlive it much */
		.pending_ttl = cfg->verify_timeout + 5,
		.max_entries = (size_t)cfg->verify_cache_size,
	};
	p->base = base;
	p->cfg = cfg;
	p->cache = rcpt_verify_cache_new(&o, rcpt_prober_clock, NULL);
	return p;
}

static void
rcpt_prober_job_free(struct rcpt_prober_job *j)
{
	struct rcpt_prober *p = j->p;

	while (j->waiters) {
		struct rcpt_prober_wait *w = j->waiters;
		j->waiters = w->next;
		free(w);
	}
	if (j->lookup)
		evdns_getaddrinfo_cancel(j->lookup);	/* its callback leaves j alone */
	if (j->bev)
		bufferevent_free(j->bev);
	if (j->deadline)
		event_free(j->deadline);
	rcpt_probe_free(&j->probe);
	if (j->prev)
		j->prev->next = j->next;
	else
		p->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	free(j);
}

void
rcpt_prober_free(struct rcpt_prober *p)
{
	if (p == NULL)
		return;
	while (p->jobs)
		rcpt_prober_job_free(p->jobs);	/* cancels their lookups */
	if (p->dns)
		evdns_base_free(p->dns, 0);
	rcpt_verify_cache_free(p->cache);
	free(p);
}

/* The probe has its answer: the cache learns it, the waiting sessions get
 * it. The job itself lives on while QUIT leaves. */
static void
rcpt_prober_report(struct rcpt_prober_job *j)
{
	static const char *const names[] = {
		[RCPT_PROBE_ACCEPTED] = "accepted", [RCPT_PROBE_REJECTED] = "rejected",
		[RCPT_PROBE_FAILED] = "failed",
	};
	char a[LOG_QUOTE_SIZE(100)], why[LOG_QUOTE_SIZE(200)];

	if (j->reported)
		return;
	j->reported = 1;
	enum rcpt_probe_result r = j->probe.result;
	rcpt_verify_cache_done(j->p->cache, j->probe.addr, r);
	log_info("event=rcpt_verify rcpt=%s next_hop=%s result=%s why=%s",
	    log_quote(a, sizeof(a), j->probe.addr, strlen(j->probe.addr), 100), j->hop, names[r],
	    log_quote(why, sizeof(why), j->probe.why, strlen(j->probe.why), 200));
	while (j->waiters) {
		struct rcpt_prober_wait *w = j->waiters;
		j->waiters = w->next;
		rcpt_prober_cb cb = w->cb;
		void *arg = w->arg;
		free(w);
		cb(arg, r);	/* may cancel other waiters: they are off the list already */
	}
}

/* Send what the dialogue holds; once it is done and sent, the probe ends. */
static void
rcpt_prober_flush(struct rcpt_prober_job *j)
{
	size_t len;
	const char *out = rcpt_probe_output(&j->probe, &len);
	if (len > 0) {
		bufferevent_write(j->bev, out, len);
		rcpt_probe_sent(&j->probe, len);
	}
}

static void
rcpt_prober_readcb(struct bufferevent *bev, void *arg)
{
	struct rcpt_prober_job *j = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), used = 0;

	if (j->reported) {
		evbuffer_drain(in, len);
		return;
	}
	const char *data = (const char *)evbuffer_pullup(in, -1);
	int done = rcpt_probe_input(&j->probe, data, len, &used);
	evbuffer_drain(in, used);
	rcpt_prober_flush(j);
	if (done)
		rcpt_prober_report(j);	/* the write callback ends the job once QUIT left */
}

static void
rcpt_prober_writecb(struct bufferevent *bev, void *arg)
{
	struct rcpt_prober_job *j = arg;
	if (j->reported && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		rcpt_prober_job_free(j);
}

static void
rcpt_prober_fail(struct rcpt_prober_job *j, const char *why)
{
	rcpt_probe_fail(&j->probe, why);
	rcpt_prober_report(j);
	rcpt_prober_job_free(j);
}

static void
rcpt_prober_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct rcpt_prober_job *j = arg;
	char why[160];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (j->reported) {
		rcpt_prober_job_free(j);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "the next hop closed the connection");
	else
		snprintf(why, sizeof(why), "connection to the next hop failed: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	rcpt_prober_fail(j, why);
}

static void
rcpt_prober_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rcpt_prober_job *j = arg;
	(void)fd;
	(void)what;
	if (j->reported) {
		rcpt_prober_job_free(j);	/* QUIT did not leave in time */
		return;
	}
	rcpt_prober_fail(j, j->fail_why[0] ? j->fail_why : "timeout (recipient_verify.timeout)");
}

/* The next hop's name resolved (or not). Called from the loop, or from
 * inside evdns_getaddrinfo for a name in /etc/hosts; a failure is handed to
 * the deadline's callback so that it, too, reaches the sessions from the
 * loop. A cancelled lookup is its job being freed: nothing to do. */
static void
rcpt_prober_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct rcpt_prober_job *j = arg;

	if (err == EVUTIL_EAI_CANCEL) {
		if (ai)
			evutil_freeaddrinfo(ai);
		return;
	}
	j->lookup = NULL;
	if (err != 0 || ai == NULL) {
		struct timeval now = { 0, 0 };
		snprintf(j->fail_why, sizeof(j->fail_why), "next hop name not resolved: %s",
		    evutil_gai_strerror(err));
		evtimer_add(j->deadline, &now);
	} else
		(void)bufferevent_socket_connect(j->bev, ai->ai_addr, (int)ai->ai_addrlen);
	if (ai)
		evutil_freeaddrinfo(ai);
}

/* Connect to the next hop. Callbacks are deferred, so a failure (even one
 * libevent sees at once) reaches rcpt_prober_eventcb from the loop, never
 * from inside rcpt_prober_check; should none come, the deadline ends it. */
static void
rcpt_prober_connect(struct rcpt_prober_job *j, const struct mxd_nexthop *nh)
{
	struct rcpt_prober *p = j->p;

	j->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (j->bev == NULL)
		return;
	bufferevent_setcb(j->bev, rcpt_prober_readcb, rcpt_prober_writecb, rcpt_prober_eventcb, j);
	bufferevent_enable(j->bev, EV_READ | EV_WRITE);
	if (nh->is_unix) {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", nh->path);
		(void)bufferevent_socket_connect(j->bev, (struct sockaddr *)&sun, sizeof(sun));
	} else {
		/* An address connects without a lookup. A name is resolved by
		 * libevent's own resolver (/etc/hosts, then the servers of
		 * /etc/resolv.conf) on this loop: getaddrinfo would stop every
		 * session of the worker while a slow DNS server took its time,
		 * and a client can ask for a new probe with every RCPT. */
		struct evutil_addrinfo hints;
		char port[16];
		if (p->dns == NULL)
			p->dns = evdns_base_new(p->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		snprintf(port, sizeof(port), "%d", nh->port);
		/* Our own request, not bufferevent_socket_connect_hostname's: libevent
		 * 2.1 keeps a bufferevent whose lookup is pending alive after it is
		 * freed, and offers no way to cancel that lookup. */
		if (p->dns != NULL)
			j->lookup = evdns_getaddrinfo(p->dns, nh->host, port, &hints,
			    rcpt_prober_resolved, j);
		else
			(void)bufferevent_socket_connect_hostname(j->bev, NULL, AF_UNSPEC,
			    nh->host, nh->port);
	}
}

static struct rcpt_prober_job *
rcpt_prober_find(struct rcpt_prober *p, const char *addr)
{
	for (struct rcpt_prober_job *j = p->jobs; j; j = j->next)
		if (!j->reported && strcasecmp(j->probe.addr, addr) == 0)
			return j;
	return NULL;
}

enum rcpt_verify_status
rcpt_prober_check(struct rcpt_prober *p, const struct mxd_domain *dom, const char *addr,
    rcpt_prober_cb cb, void *arg, struct rcpt_prober_wait **wait)
{
	enum rcpt_verify_status st = rcpt_verify_cache_lookup(p->cache, addr);
	struct rcpt_prober_job *j;

	*wait = NULL;
	if (st == RCPT_VERIFY_KNOWN || st == RCPT_VERIFY_UNKNOWN)
		return st;
	struct rcpt_prober_wait *w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	*wait = w;
	if (st == RCPT_VERIFY_PENDING && (j = rcpt_prober_find(p, addr)) != NULL) {
		w->job = j;
		w->next = j->waiters;
		j->waiters = w;
		return st;
	}
	j = xcalloc(1, sizeof(*j));
	j->p = p;
	rcpt_probe_init(&j->probe, p->cfg->hostname, addr, dom->nh.proto == MXD_NH_LMTP);
	snprintf(j->hop, sizeof(j->hop), "%s", dom->next_hop ? dom->next_hop : "?");
	j->waiters = w;
	w->job = j;
	j->next = p->jobs;
	if (p->jobs)
		p->jobs->prev = j;
	p->jobs = j;
	struct timeval tv = { p->cfg->verify_timeout, 0 };
	j->deadline = evtimer_new(p->base, rcpt_prober_deadline, j);
	evtimer_add(j->deadline, &tv);
	rcpt_prober_connect(j, &dom->nh);
	return RCPT_VERIFY_MISS;
}

void
rcpt_prober_cancel(struct rcpt_prober_wait *w)
{
	if (w == NULL)
		return;
	struct rcpt_prober_wait **pp = &w->job->waiters;
	for (; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			free(w);
			return;
		}
}
