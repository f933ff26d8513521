/* Time helpers: a monotonic clock for timeouts and RFC 5322 dates for headers. */
#ifndef MXFLEET_TIMEUTIL_H
#define MXFLEET_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds from an arbitrary start, never going backwards. */
uint64_t timeutil_mono_ms(void);
/* Wall-clock milliseconds since 1970 (outcome timestamps). */
int64_t timeutil_wall_ms(void);
/* "Mon, 23 Nov 2026 15:52:30 +0000" into out (>= 40 bytes). */
char *timeutil_rfc5322(char *out, size_t outsz, time_t t);
/* A duration for people: "45s", "3m05s", "2h10m", "4d03h" (negative: 0s). */
char *timeutil_duration(char *out, size_t outsz, long long s);

#endif
