/* Logging: one logfmt line per event ("ts=... level=... prog=... key=value ...").
 * log_warn appends errno's text, log_warnx does not. fatal/fatalx mean the
 * environment failed (clean exit 1); panic means a bug in us (abort). */
#ifndef MXFLEET_LOG_H
#define MXFLEET_LOG_H

#include <stddef.h>
#include <stdarg.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_init(const char *prog, enum log_level level, int use_syslog);
void log_set_level(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level level);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Render untrusted text as a logfmt value: truncated to max bytes, wrapped in
 * double quotes, with quotes, backslashes and non-printable bytes escaped.
 * Always NUL-terminates; returns out. out must hold at least 4*max+8 bytes. */
char *log_quote(char *out, size_t outsz, const char *in, size_t inlen, size_t max);

#define LOG_QUOTE_SIZE(max) (4 * (max) + 8)

#endif
