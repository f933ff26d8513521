/* The outcome record of a session, from a worker to the uploader process.
 *
 * Workers never wait for the journal or controld: each record is one
 * datagram on a SOCK_SEQPACKET socket to the uploader, sent without blocking.
 * If the uploader falls so far behind that the socket is full, the record is
 * dropped and counted in a counter shared by all of mxd's processes, which
 * the uploader reports to controld: losing a record is never silent. */
#ifndef MXD_OUTCOME_H
#define MXD_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

#include "mxfleet.pb-c.h"

#define OUTCOME_MAX_RECORD	65536
/* What a cut string ends with, and the last element of a shortened list
 * ("[N more truncated]"): a reader of the stored record sees it was cut. */
#define OUTCOME_TRUNCATED	"...[truncated]"

struct outcome_sink {
	int		 fd;		/* -1: no control plane configured */
	uint64_t	*dropped;	/* shared (MAP_SHARED) counter */
};

/* Master: the socket pair and the shared counter, before forking. */
int outcome_channel_new(int fds[2], uint64_t **dropped);
/* Packs o and sends it without blocking; a full channel counts it dropped. */
void outcome_emit(struct outcome_sink *s, const Mxfleet__V1__Outcome *o);
/* Packs o into out[0..max). A record that would be larger is kept, smaller:
 * the strings of its policy results (policy strings, mx-host patterns, the
 * free text) are cut to a length that halves until the record fits, each
 * cut string ending in OUTCOME_TRUNCATED, and lists longer than a bound that
 * halves too end with "[N more truncated]". o itself is not changed.
 * Returns the packed length (*truncated says whether anything was cut), or
 * 0 if even the smallest form does not fit. */
size_t outcome_pack_bounded(const Mxfleet__V1__Outcome *o, uint8_t *out, size_t max,
    int *truncated);
/* Uploader: take the count of records dropped since the last call. */
uint64_t outcome_take_dropped(uint64_t *dropped);
/* Set (or replace) the seq field of a packed Outcome by appending it:
 * protobuf takes the last value of a repeated scalar field. Returns the new
 * length (out must hold len + 11 bytes). */
size_t outcome_append_seq(uint8_t *out, const uint8_t *rec, size_t len, uint64_t seq);

#endif
