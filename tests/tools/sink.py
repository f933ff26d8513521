#!/usr/bin/python3
"""Next-hop sink for mxfleet tests: an SMTP or LMTP server that stores mail.

Every accepted message becomes one file DIR/new/NAME holding exactly the
bytes received after DATA (dot-unstuffed), and a sidecar DIR/env/NAME.json
with the envelope and session facts (protocol, TLS, HELO, peer). Both are
written to DIR/tmp first and renamed, the sidecar before the message, so a
reader that sees DIR/new/NAME always finds its sidecar complete.

Run with /usr/bin/python3: aiosmtpd comes from Debian's python3-aiosmtpd.
"""

import argparse
import asyncio
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

# Lines of a relayed message may legitimately be long (8BITMIME, BDAT input
# relayed by DATA); the sink must not be the component that rejects them.
LINE_LIMIT = 1 << 20


class SinkSMTP(SMTP):
    line_length_limit = LINE_LIMIT
    command_size_limit = 4096


class SinkLMTP(LMTP):
    line_length_limit = LINE_LIMIT
    command_size_limit = 4096


def format_reply(text):
    """Turn 'CODE TEXT' lines (separated by a newline or a literal '\\n')
    into one SMTP reply, setting the continuation markers correctly."""
    lines = [ln for ln in text.replace("\\n", "\n").split("\n") if ln.strip()]
    if not lines:
        raise ValueError("empty reply")
    out = []
    for i, line in enumerate(lines):
        code, rest = line[:3], line[4:] if len(line) > 3 else ""
        if not (code.isdigit() and len(code) == 3):
            raise ValueError(f"reply line without a 3-digit code: {line!r}")
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{rest}")
    return "\r\n".join(out)


def parse_scripted(items, what):
    replies = {}
    for item in items or ():
        addr, eq, reply = item.partition("=")
        if not eq:
            raise SystemExit(f"sink: {what} needs ADDR=REPLY, got {item!r}")
        replies[addr.strip().lower()] = format_reply(reply)
    return replies


class Store:
    """Maildir-style writer: DIR/tmp -> DIR/env + DIR/new."""

    def __init__(self, root):
        self.root = root
        for sub in ("tmp", "new", "env"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.counter = itertools.count(1)

    def _write(self, tmpname, data, final):
        tmp = os.path.join(self.root, "tmp", tmpname)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)

    def save(self, content, meta):
        # Names sort in arrival order: nanosecond time, then a counter.
        name = f"{time.time_ns():020d}.{os.getpid()}_{next(self.counter):06d}.sink"
        meta = dict(meta, name=name, size=len(content))
        envdata = json.dumps(meta, indent=1, sort_keys=True).encode()
        self._write(name + ".json", envdata,
                    os.path.join(self.root, "env", name + ".json"))
        self._write(name, content, os.path.join(self.root, "new", name))
        return name


class Handler:
    def __init__(self, store, proto, rcpt_replies, data_replies):
        self.store = store
        self.proto = proto
        self.rcpt_replies = rcpt_replies
        self.data_replies = data_replies

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return reply or "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        tls = {}
        if session.ssl:
            obj = session.ssl.get("ssl_object")
            if obj is not None:
                tls = {"version": obj.version(), "cipher": obj.cipher()[0],
                       "sni": getattr(obj, "mxfleet_sni", None)}
        mail_from = envelope.mail_from
        meta = {
            "proto": self.proto,
            "mail_from": "" if mail_from == "<>" else mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "helo": session.host_name,
            "peer": list(session.peer) if isinstance(session.peer, tuple) else session.peer,
            "tls": tls,
            "time": time.time(),
        }
        if self.proto != "lmtp":
            self.store.save(envelope.original_content, meta)
            return "250 2.0.0 OK: stored"
        # LMTP answers once per accepted recipient; a scripted failure for a
        # recipient keeps the message from being stored for that recipient.
        replies, delivered = [], []
        for rcpt in envelope.rcpt_tos:
            reply = self.data_replies.get(rcpt.lower(), "250 2.0.0 OK: stored")
            replies.append(reply)
            if reply.startswith("2"):
                delivered.append(rcpt)
        if delivered:
            self.store.save(envelope.original_content,
                            dict(meta, rcpt_tos=delivered))
        return "\r\n".join(replies)


def parse_hostport(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"sink: --listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


async def serve(args):
    store = Store(args.maildir)
    proto = "lmtp" if (args.lmtp or args.unix) else "smtp"
    handler = Handler(store, proto,
                      parse_scripted(args.rcpt_reply, "--rcpt-reply"),
                      parse_scripted(args.data_reply, "--data-reply"))
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

        def remember_sni(obj, name, ctx):
            # The name the client asked for (None without SNI), kept in
            # the message's metadata.
            obj.mxfleet_sni = name
        tls_context.sni_callback = remember_sni
    cls = SinkLMTP if proto == "lmtp" else SinkSMTP

    def factory():
        return cls(handler, hostname=args.hostname, enable_SMTPUTF8=True,
                   decode_data=False, data_size_limit=args.size_limit,
                   tls_context=tls_context, timeout=args.timeout)

    loop = asyncio.get_running_loop()
    servers = []
    where = []
    if args.listen:
        host, port = parse_hostport(args.listen)
        srv = await loop.create_server(factory, host=host, port=port,
                                       reuse_address=True)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        where.append(f"{host}:{port}")
        if args.port_file:
            write_atomically(args.port_file, f"{port}\n")
    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        srv = await loop.create_unix_server(factory, path=args.unix)
        # mxd connects after dropping root; the socket must be writable by it.
        os.chmod(args.unix, 0o666)
        servers.append(srv)
        where.append(f"unix:{args.unix}")

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    # Ready signal: the pidfile appears only once every listener is bound.
    if args.pidfile:
        write_atomically(args.pidfile, f"{os.getpid()}\n")
    print(f"sink ready pid={os.getpid()} proto={proto} listen={','.join(where)} "
          f"maildir={args.maildir}", flush=True)
    try:
        await stop
    finally:
        for srv in servers:
            srv.close()
        if args.unix and os.path.exists(args.unix):
            os.unlink(args.unix)
        if args.pidfile and os.path.exists(args.pidfile):
            os.unlink(args.pidfile)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", metavar="HOST:PORT",
                    help="TCP address (port 0 picks one; see --port-file)")
    ap.add_argument("--unix", metavar="PATH", help="LMTP on a unix socket")
    ap.add_argument("--maildir", required=True, metavar="DIR")
    ap.add_argument("--lmtp", action="store_true", help="speak LMTP on --listen")
    ap.add_argument("--tls-cert", metavar="FILE", help="offer STARTTLS")
    ap.add_argument("--tls-key", metavar="FILE")
    ap.add_argument("--rcpt-reply", action="append", metavar="ADDR=REPLY",
                    help="scripted RCPT reply, e.g. 'u@d=550 5.1.1 no such user'; "
                         "several lines separated by '\\n'")
    ap.add_argument("--data-reply", action="append", metavar="ADDR=REPLY",
                    help="LMTP only: scripted per-recipient reply after DATA")
    ap.add_argument("--hostname", default="sink.example.test")
    ap.add_argument("--size-limit", type=int, default=None, metavar="BYTES",
                    help="advertise SIZE BYTES and refuse larger messages")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="idle seconds before the sink drops a session")
    ap.add_argument("--pidfile", metavar="FILE",
                    help="written once listening (the ready signal)")
    ap.add_argument("--port-file", metavar="FILE",
                    help="write the bound TCP port here (useful with port 0)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not args.listen and not args.unix:
        ap.error("need --listen or --unix")
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr,
                        format="sink %(levelname)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
