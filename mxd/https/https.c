/* mxd-https: the MTA-STS policy host (docs/dns.md#mta-sts-hosting).
 *
 * One process, forked and supervised by the master, which bound the
 * listeners (port 443 needs root) and loaded the certificates before
 * dropping privileges. libevent + bufferevent_openssl; one request per
 * connection, answered by https_answer (no I/O there). A connection lives
 * HTTPS_CONN_TIMEOUT seconds at most, handshake and answer included (then
 * HTTPS_LINGER more while the client reads the answer and closes), and at
 * most HTTPS_MAX_CONNS are open: past that the listeners pause and the
 * kernel's backlog holds newcomers, so a client that opens connections and
 * sends nothing holds a slot for seconds, never the process.
 *
 * SIGUSR1 (a reload started a successor): stop listening, let the open
 * connections end, exit. SIGTERM/SIGINT: close everything and exit. */
#include "https.h"
#include "https_answer.h"
#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct https_conn {
	struct https_server	*srv;
	struct https_conn	*prev, *next;
	struct bufferevent	*bev;
	SSL			*ssl;
	struct event		*timer;
	char			 ip[64];
	int			 handshaken;
	int			 answered;
	int			 lingering;	/* answer sent: reading until the client closes */
};

struct https_server {
	struct event_base	 *base;
	struct mxd_config	 *cfg;
	struct tls_server	 *tls;
	struct evconnlistener	**listeners;
	size_t			  nlisteners;
	int			  paused;	/* at HTTPS_MAX_CONNS */
	struct https_conn	 *conns;
	int			  nconns;
	int			  draining;
	struct event		 *sig[4];
};

static void
https_listeners_enable(struct https_server *srv, int on)
{
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (on)
			evconnlistener_enable(srv->listeners[i]);
		else
			evconnlistener_disable(srv->listeners[i]);
	}
	srv->paused = !on;
}

static void
https_conn_free(struct https_conn *c)
{
	struct https_server *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	event_free(c->timer);
	bufferevent_free(c->bev);	/* frees the SSL and closes the socket */
	free(c);
	if (srv->paused && srv->nconns < HTTPS_MAX_CONNS && !srv->draining)
		https_listeners_enable(srv, 1);
	if (srv->draining && srv->nconns == 0)
		event_base_loopexit(srv->base, NULL);
}

static void
https_conn_log(const struct https_conn *c, const struct https_answer_info *info)
{
	char host[LOG_QUOTE_SIZE(HTTP_REQ_HOST_MAX)], path[LOG_QUOTE_SIZE(200)];
	log_info("event=mta_sts_request remote=%s method=%s host=%s path=%s status=%d bytes=%zu",
	    c->ip, info->method, log_quote(host, sizeof(host), info->host, strlen(info->host),
	    HTTP_REQ_HOST_MAX), info->target ? log_quote(path, sizeof(path), info->target,
	    info->target_len, 200) : "-", info->status, info->body_len);
}

static void
https_conn_readcb(struct bufferevent *bev, void *arg)
{
	struct https_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct https_answer_info info;
	struct buf out;

	if (c->answered) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	/* One byte past the cap is enough to know the head is too long. */
	size_t len = evbuffer_get_length(in);
	if (len > HTTP_REQ_HEAD_MAX + 1)
		len = HTTP_REQ_HEAD_MAX + 1;
	const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	buf_init(&out);
	if (https_answer(c->srv->cfg, data, len, &out, &info) == 0) {
		buf_free(&out);
		return;
	}
	https_conn_log(c, &info);
	c->answered = 1;
	bufferevent_disable(bev, EV_READ);
	bufferevent_write(bev, out.data, out.len);
	buf_free(&out);
}

/* The answer is out. Closing now, with the rest of a refused request
 * unread, would make the kernel send a reset that can destroy the answer
 * before the client reads it: say close_notify and read (and drop) what
 * comes until the client closes, HTTPS_LINGER seconds at most. */
static void
https_conn_writecb(struct bufferevent *bev, void *arg)
{
	struct https_conn *c = arg;
	if (!c->answered || c->lingering || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	c->lingering = 1;
	SSL_shutdown(c->ssl);
	struct timeval tv = { HTTPS_LINGER, 0 };
	evtimer_add(c->timer, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_enable(bev, EV_READ);
}

static void
https_conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct https_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->handshaken = 1;
		return;
	}
	if (!c->handshaken) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		const char *r = e ? ERR_reason_error_string(e) : NULL;
		char q[LOG_QUOTE_SIZE(100)];
		log_info("event=mta_sts_tls_failed remote=%s reason=%s", c->ip,
		    r ? log_quote(q, sizeof(q), r, strlen(r), 100) : (what & BEV_EVENT_EOF) ?
		    "eof" : "error");
	} else if (!c->answered)
		log_info("event=mta_sts_closed remote=%s reason=%s", c->ip,
		    (what & BEV_EVENT_EOF) ? "eof" : "error");
	ERR_clear_error();
	https_conn_free(c);
}

static void
https_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct https_conn *c = arg;
	if (!c->lingering)
		log_info("event=mta_sts_timeout remote=%s stage=%s seconds=%d", c->ip,
		    !c->handshaken ? "handshake" : c->answered ? "answer" : "request",
		    HTTPS_CONN_TIMEOUT);
	https_conn_free(c);
}

static void
https_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct https_server *srv = arg;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL *ssl = tls_server_ssl(srv->tls, NULL);
	struct bufferevent *bev = ssl ? bufferevent_openssl_socket_new(srv->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (bev == NULL) {
		log_warnx("event=mta_sts_conn_failed reason=tls_setup");
		if (ssl)
			SSL_free(ssl);
		close(fd);
		return;
	}
	struct https_conn *c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->bev = bev;
	c->ssl = ssl;
	netaddr_ntop(sa, c->ip, sizeof(c->ip));
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	if (++srv->nconns >= HTTPS_MAX_CONNS)
		https_listeners_enable(srv, 0);
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, https_conn_readcb, https_conn_writecb, https_conn_eventcb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, HTTP_REQ_HEAD_MAX + 1);
	c->timer = evtimer_new(srv->base, https_conn_timeout, c);
	struct timeval tv = { HTTPS_CONN_TIMEOUT, 0 };
	evtimer_add(c->timer, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
https_accept_error(struct evconnlistener *l, void *arg)
{
	log_warn("event=accept_error listener=mta_sts");
}

static void
https_stop_listening(struct https_server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	srv->nlisteners = 0;
}

static void
https_signal(evutil_socket_t sig, short what, void *arg)
{
	struct https_server *srv = arg;

	if (sig == SIGHUP)
		return;		/* the master's: it starts a successor */
	https_stop_listening(srv);
	if (sig == SIGUSR1) {
		srv->draining = 1;
		if (srv->nconns == 0)
			event_base_loopexit(srv->base, NULL);
		return;
	}
	while (srv->conns)
		https_conn_free(srv->conns);
	event_base_loopexit(srv->base, NULL);
}

void
https_main(struct mxd_config *cfg, struct tls_server *tls, const int *fds, size_t nfds)
{
	static const int sigs[4] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
	struct https_server srv;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.tls = tls;
	if ((srv.base = event_base_new()) == NULL)
		fatalx("event=event_base_failed");
	srv.listeners = xcalloc(nfds + 1, sizeof(*srv.listeners));
	for (size_t i = 0; i < nfds; i++) {
		srv.listeners[i] = evconnlistener_new(srv.base, https_accept, &srv,
		    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1, fds[i]);
		if (srv.listeners[i] == NULL)
			fatalx("event=listener_failed listener=mta_sts");
		evconnlistener_set_error_cb(srv.listeners[i], https_accept_error);
	}
	srv.nlisteners = nfds;
	for (int i = 0; i < 4; i++) {
		srv.sig[i] = evsignal_new(srv.base, sigs[i], https_signal, &srv);
		event_add(srv.sig[i], NULL);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	log_info("event=mta_sts_started listeners=%zu policies=%zu", nfds, cfg->nmta_sts);
	event_base_dispatch(srv.base);
	while (srv.conns)
		https_conn_free(srv.conns);
	https_stop_listening(&srv);
	free(srv.listeners);
	for (int i = 0; i < 4; i++)
		event_free(srv.sig[i]);
	event_base_free(srv.base);
	tls_server_free(tls);
	mxd_config_free(cfg);
	log_info("event=mta_sts_stopped");
	exit(0);
}
