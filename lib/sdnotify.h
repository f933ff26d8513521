/* systemd's service notification protocol (sd_notify(3)), for Type=notify
 * units: newline-separated assignments such as "READY=1",
 * "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1", "STATUS=text", sent as
 * one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or
 * '@' + a name in the abstract namespace).
 *
 * Written here rather than linking libsystemd: the protocol is one
 * sendmsg() and the daemons run without systemd too (tests, containers),
 * where NOTIFY_SOCKET is unset and every call does nothing. */
#ifndef MXFLEET_SDNOTIFY_H
#define MXFLEET_SDNOTIFY_H

/* 1 sent, 0 nothing to send to (NOTIFY_SOCKET unset or empty), -1 when the
 * socket name is unusable or sending failed (errno says why). Never blocks
 * (the datagram is sent MSG_DONTWAIT). */
int sdnotify(const char *state);

/* "RELOADING=1" with the MONOTONIC_USEC systemd 253+ asks for
 * (Type=notify-reload); older systemd ignores the extra field. */
int sdnotify_reloading(void);

#endif
