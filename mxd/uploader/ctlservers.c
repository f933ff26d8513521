/* Which controld the uploader talks to (ctlservers.h). */
#include "ctlservers.h"
#include "grpc.h"
#include "log.h"
#include "mxd_config.h"

#include <stdio.h>
#include <string.h>

void
ctlservers_init(struct ctlservers *cs, const struct mxd_control_server *list, size_t n,
    const char *authority)
{
	memset(cs, 0, sizeof(*cs));
	cs->list = list;
	cs->n = n;
	cs->authority = authority;
}

const char *
ctlservers_addr(const struct ctlservers *cs)
{
	return cs->list[cs->cur].addr;
}

const char *
ctlservers_host(const struct ctlservers *cs)
{
	return cs->list[cs->cur].host;
}

int
ctlservers_port(const struct ctlservers *cs)
{
	return cs->list[cs->cur].port;
}

const char *
ctlservers_authority(const struct ctlservers *cs)
{
	return cs->authority ? cs->authority : cs->list[cs->cur].host;
}

int
ctlservers_failed(struct ctlservers *cs, const char *why, char *line, size_t linesz)
{
	char q[LOG_QUOTE_SIZE(200)];
	const char *failed = cs->list[cs->cur].addr;
	size_t prev = cs->cur;

	line[0] = '\0';
	log_quote(q, sizeof(q), why, strlen(why), 200);
	cs->failures++;
	if (cs->n > 1)
		cs->cur = (cs->cur + 1) % cs->n;
	if (cs->failures < cs->n)
		snprintf(line, linesz, "event=control_failover server=%s state=unreachable "
		    "error=%s next=%s", failed, q, cs->list[cs->cur].addr);
	else if (cs->failures == cs->n)
		snprintf(line, linesz, "event=controld_unreachable servers=%zu server=%s error=%s "
		    "action=\"%s\"", cs->n, failed, q, cs->n > 1 ?
		    "every server failed; trying each in turn with backoff" : "retrying with backoff");
	return cs->cur != prev;
}

void
ctlservers_connected(struct ctlservers *cs)
{
	cs->failures = 0;
}

int
ctlservers_status_is_fault(int status)
{
	return status == GRPC_UNAVAILABLE || status == GRPC_DEADLINE_EXCEEDED ||
	    status == GRPC_INTERNAL || status == GRPC_UNKNOWN;
}
