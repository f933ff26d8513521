/* Growable byte buffer. Always NUL-terminated past len for convenience. */
#ifndef MXFLEET_BUF_H
#define MXFLEET_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_appendc(struct buf *b, char c);
void buf_appends(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Remove the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
