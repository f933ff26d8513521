"""Shared helpers for the outbound (direct MX delivery) integration tests.

A test here runs, on loopback only:

  * the private DNSSEC test DNS of tests/tools/dnstest (nsd + unbound), one
    setup per test file (or the one of `dnstest run` when DNSTEST_DIR is set),
    with per-test records added through DnsTest.add();
  * fake MX hosts: the aiosmtpd sink (tests/tools/sink.py), each on its own
    127.0.x.y address and all on the same port, which mxd uses for every
    remote MX (`delivery.remote_port`); a "dead" MX is an address where
    nothing listens on that port;
  * FakeMx, a small SMTP server in this process for behaviour the sink does
    not have: a STARTTLS that breaks (garbage, cut off, plaintext injected
    after the 220, a 454 refusal), REQUIRETLS inside TLS, no greeting, a
    slow answer to QUIT;
  * mxd, configured as a relay for trusted loopback clients with
    `resolver` = unbound, and example.test as its local domain with a sink
    as next hop (which receives the DSNs).

It builds on ../mxtest.py (Service, Mxd, Sink, configs, logfmt). Every wait
is bounded.

Environment (set by ctest; defaults for running a file by hand):
  MXD_BIN              the mxd binary (default build/bin/mxd)
  MXFLEET_SOURCE_DIR   the source tree (for tests/tools/dnstest)
  DNSTEST_DIR          use this running dnstest setup instead of starting one
  MXTEST_KEEP=1, MXTEST_VERBOSE=1  as in mxtest.py
"""

import email
import email.policy
import fcntl
import os
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
import warnings
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, MX_NAME, free_port, pick_host  # noqa: E402,F401

SRC = os.environ.get("MXFLEET_SOURCE_DIR",
                     os.path.abspath(os.path.join(HERE, "..", "..", "..")))
DNSTEST_PATH = os.path.join(SRC, "tests", "tools", "dnstest")
SENDER = f"sender@{LOCAL_DOMAIN}"
ZONE = "example.test"   # the secure test zone; test domains are below it


# ---------------------------------------------------------------- watchdog
# mxtest tears its services down on SIGTERM and at exit; a runner's SIGKILL
# would leave them (and nsd, unbound) running. Every process started from
# here inherits the watchdog's mark (mxtest.Watchdog); the watchdog kills what
# carries it, and removes the test directories, once this process is gone.

WATCHDOG = mxtest.Watchdog("OUTTEST_RUN", keep_env=("MXTEST_KEEP", "DNSTEST_KEEP"))
WATCHDOG.mark_self()
watch_dir = WATCHDOG.watch_dir


def load_dnstest():
    loader = SourceFileLoader("dnstest", DNSTEST_PATH)
    spec = spec_from_loader("dnstest", loader)
    mod = module_from_spec(spec)
    loader.exec_module(mod)
    return mod


dnstest = load_dnstest()


class Dns:
    """The test DNS of one test file: started here (with dnstest's watchdog,
    so a SIGKILLed test process does not leave nsd and unbound behind) unless
    DNSTEST_DIR names a running one."""

    def __init__(self):
        self.owned = False
        d = os.environ.get("DNSTEST_DIR")
        if not d:
            base = os.environ.get("DNSTEST_TMPDIR", tempfile.gettempdir())
            d = tempfile.mkdtemp(prefix="dnstest.outbound.", dir=base)
            self.owned = True
        self.dir = d
        self.t = dnstest.DnsTest(d)
        if self.owned:
            watch_dir(d)
            dnstest.start_watchdog(d)
            mxtest.register_emergency(("dns", d), self.down)
            self.t.up()
        self.env = self.t.env()
        self.resolver = self.env["RESOLVER"]
        self.lock = threading.Lock()

    def add(self, records):
        """Add records (zone file syntax, absolute names); returns once the
        resolver answers with them. Takes the lock `dnstest add` takes."""
        with self.lock, open(self.t.p("lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another process (dnstest add) may have changed the state.
            self.t = dnstest.DnsTest(self.dir)
            self.t.add(records)

    def query(self, name, qtype):
        """(rcode, [rdata bytes]) through the resolver, for preconditions."""
        st = self.t.state
        r = dnstest.dns_query(st["res_addr"], st["res_port"], name, qtype, timeout=2)
        if r is None:
            return None, []
        rcode, _, answers = r
        return rcode, [msg[off:off + ln] for typ, off, ln, msg in answers if typ == qtype]

    def stop_resolver(self):
        st = self.t.state
        dnstest.stop_pid(st.get("unbound_pid"), self.t.p("unbound", "unbound.conf"))
        st["unbound_pid"] = None
        self.t.save()

    def start_resolver(self):
        """unbound again, on the same port (its state keeps the port)."""
        self.t = dnstest.DnsTest(self.dir)
        port = self.t.state["res_port"]
        self.t.start_unbound()
        self.t.save()
        if self.t.state["res_port"] != port:
            raise AssertionError(f"unbound came back on port {self.t.state['res_port']}, "
                                 f"not {port} (which mxd is configured with)")

    def down(self):
        if self.owned:
            self.t = dnstest.DnsTest(self.dir)
            self.t.down()
            mxtest.unregister_emergency(("dns", self.dir))
            self.owned = False


def unique_domain(tag):
    return f"{tag}-{uuid.uuid4().hex[:8]}.{ZONE}"


def ip_key(ip):
    return socket.inet_aton(ip)


def pick_hosts(n, port):
    """n loopback addresses where nothing listens on port (and port is
    bindable there), in ascending address order."""
    out = []
    while len(out) < n:
        h = pick_host()
        if mxtest._proc_net_listening(h, port):
            continue
        try:
            with socket.socket() as s:
                s.bind((h, port))
        except OSError:
            continue
        out.append(h)
    return sorted(out, key=ip_key)


def remote_port():
    """A port that is free on the wildcard address: every fake MX listens on
    it on its own address, and a dead MX address refuses it."""
    return free_port("0.0.0.0")


def unfolded(text):
    return re.sub(r"\r?\n[ \t]+", " ", text)


class Dsn:
    """The parts of a DSN (RFC 3464) a user or a mail client looks at."""

    def __init__(self, data):
        self.raw = data
        self.msg = email.message_from_bytes(data, policy=email.policy.compat32)
        self.status_fields = []
        self.text = ""
        for part in self.msg.walk():
            ctype = part.get_content_type()
            if ctype == "message/delivery-status":
                for block in part.get_payload():
                    self.status_fields += [(k.lower(), unfolded(str(v))) for k, v in block.items()]
            elif ctype == "text/plain" and not self.text:
                self.text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")

    def field(self, name):
        return [v for k, v in self.status_fields if k == name.lower()]


# ---------------------------------------------------------------- SMTP servers in the test process

class SmtpSession:
    """One connection to an SmtpTestServer: its socket and reader (STARTTLS
    replaces both) and the transaction so far."""

    def __init__(self, conn):
        self.conn = conn
        self.f = conn.makefile("rb")
        self.mail = None             # the MAIL command line as received
        self.mail_from, self.params = None, ""
        self.rcpts = []              # the accepted RCPT addresses
        self.rcpt_lines = []         # ... and their command lines as received

    def send(self, *lines):
        """One write of the given reply lines, CRLF after each."""
        self.conn.sendall("".join(f"{x}\r\n" for x in lines).encode())


class SmtpTestServer:
    """A small SMTP server on (host, port) in threads of the test process
    (port 0: any free one), the skeleton of FakeMx, test_dsn_params.DsnHop
    and test_outbound_crash.HoldingHop. It answers one command at a time.

    A subclass sets its own attributes first and then calls this __init__,
    which starts serving. It changes what it needs through these:

      name, banner     the greeting is "220 {name} {banner}"
      greet(s)         says the greeting; True hangs up instead
      ehlo_lines(s)    the lines of the reply to EHLO/HELO (name, 8BITMIME)
      smtp_<VERB>(s, cmd)  one method per verb (cmd: the line without
                       CRLF); True hangs up after it. Here: EHLO, HELO,
                       MAIL, RCPT, DATA, RSET, NOOP, QUIT; another verb
                       gets unknown(s, cmd), a 502
      no_rcpts_reply   the reply to DATA without recipients (None: go on)
      message(s, data) keeps a message (data unstuffed) after the final
                       dot; returns the reply, or None to hang up without
      end_sessions_on_stop  after stop(), a session ends before its next
                       command (otherwise it goes on until the client leaves)

    s is the SmtpSession. `peers`: the client (ip, port) of every
    connection, in order."""

    name = "smtp.test"
    banner = "ESMTP"
    no_rcpts_reply = None
    end_sessions_on_stop = False

    def __init__(self, host, port=0):
        self.host = host
        self.peers = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def next_hop(self):
        return f"smtp:{self.host}:{self.port}"

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, peer = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.peers.append(peer)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        conn.settimeout(30)
        s = SmtpSession(conn)
        try:
            if self.greet(s):
                return
            while not (self.stopping and self.end_sessions_on_stop):
                line = s.f.readline(4096)
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = cmd.split(" ", 1)[0].upper()
                if getattr(self, f"smtp_{verb}", self.unknown)(s, cmd):
                    return
        except OSError:
            pass
        finally:
            try:
                s.f.close()
                s.conn.close()
            except OSError:
                pass

    # -- hooks

    def greet(self, s):
        s.send(f"220 {self.name} {self.banner}")

    def ehlo_lines(self, s):
        return [self.name, "8BITMIME"]

    def smtp_EHLO(self, s, cmd):
        lines = self.ehlo_lines(s)
        s.send(*(f"250{'-' if i < len(lines) - 1 else ' '}{x}" for i, x in enumerate(lines)))

    smtp_HELO = smtp_EHLO

    def smtp_MAIL(self, s, cmd):
        m = re.match(r"MAIL FROM:<([^>]*)>(.*)$", cmd, flags=re.I)
        s.mail = cmd
        s.mail_from, s.params = (m.group(1), m.group(2).strip()) if m else (cmd, "")
        s.rcpts, s.rcpt_lines = [], []
        s.send("250 2.1.0 Ok")

    def smtp_RCPT(self, s, cmd):
        s.rcpts.append(rcpt_address(cmd))
        s.rcpt_lines.append(cmd)
        s.send("250 2.1.5 Ok")

    def smtp_DATA(self, s, cmd):
        if not s.rcpts and self.no_rcpts_reply:
            s.send(self.no_rcpts_reply)
            return
        s.send("354 go ahead")
        data = b""
        while True:
            ln = s.f.readline(1 << 20)
            if not ln:
                return True
            if ln == b".\r\n":
                break
            data += ln[1:] if ln.startswith(b".") else ln
        reply = self.message(s, data)
        if reply is None:
            return True
        s.send(reply)

    def message(self, s, data):
        return "250 2.0.0 Ok"

    def smtp_RSET(self, s, cmd):
        s.send("250 2.0.0 Ok")

    smtp_NOOP = smtp_RSET

    def smtp_QUIT(self, s, cmd):
        s.send("221 2.0.0 Bye")
        return True

    def unknown(self, s, cmd):
        s.send("502 5.5.1 Unknown command")


def rcpt_address(cmd):
    """The address in a RCPT TO line (the whole line if it has none)."""
    return re.sub(r"^RCPT TO:<([^>]*)>.*$", r"\1", cmd, flags=re.I)


# ---------------------------------------------------------------- a scriptable MX

class FakeMx(SmtpTestServer):
    """A minimal SMTP server on (host, port) in a thread of the test
    process. It offers STARTTLS; what happens after the client's STARTTLS is
    set by `tls`:

      "garbage"  reads the ClientHello, answers with bytes that are no TLS
                 record, closes
      "close"    reads the ClientHello and closes without a word
      "inject"   sends plaintext right behind its 220 (CVE-2011-0411 style),
                 then behaves like "garbage"
      "refuse"   answers 454 4.7.0 and goes on in plaintext (RFC 3207)
      (cert, key)  a real handshake with that certificate; inside TLS it
                 advertises REQUIRETLS when `requiretls` is true
      None       STARTTLS is not offered

    quit_delay: seconds to wait before answering QUIT.
    greeting: False makes it close every connection before saying anything.
    pipelining: advertise PIPELINING (RFC 2920).
    extensions: further EHLO lines to advertise, e.g. ["SIZE 10000000",
      "SMTPUTF8"] (it only advertises them).
    mail_refusal: a reply (its lines, without CRLF) to every MAIL, after
      which it hangs up without reading or answering anything else: what a
      big provider does to a blocklisted sender.

    It answers one command at a time (also when it advertises PIPELINING)
    and keeps every message.
    sessions: one dict per connection {"starttls": bool, "tls": version or
    None}; messages: (mail_from, [rcpts], data as received, unstuffed,
    tls version or None, MAIL FROM parameters)."""

    banner = "ESMTP fake"

    def __init__(self, host, port, name, tls="garbage", requiretls=False, quit_delay=0,
                 greeting=True, tls1_only=False, pipelining=False, mail_refusal=None,
                 extensions=()):
        self.name = name
        self.greeting = greeting
        self.pipelining, self.mail_refusal = pipelining, mail_refusal
        self.extensions = list(extensions)
        self.tls, self.requiretls, self.quit_delay = tls, requiretls, quit_delay
        self.ctx = None
        if isinstance(tls, tuple):
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
            if tls1_only:
                # A receiver stuck on TLS 1.0 (shared/seeds/003).
                self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                self.ctx.minimum_version = ssl.TLSVersion.TLSv1
                self.ctx.maximum_version = ssl.TLSVersion.TLSv1
        self.sessions, self.messages = [], []
        super().__init__(host, port)

    def greet(self, s):
        s.info = {"starttls": False, "tls": None}
        with self.lock:
            self.sessions.append(s.info)
        if not self.greeting:
            return True
        return super().greet(s)

    def ehlo_lines(self, s):
        lines = super().ehlo_lines(s) + (["PIPELINING"] if self.pipelining else [])
        lines += self.extensions
        if s.info["tls"] is None and self.tls is not None:
            lines.append("STARTTLS")
        elif self.requiretls:
            lines.append("REQUIRETLS")
        return lines

    def smtp_STARTTLS(self, s, cmd):
        if s.info["tls"] is not None or self.tls is None:
            return self.unknown(s, cmd)
        s.info["starttls"] = True
        if self.tls == "refuse":
            s.send("454 4.7.0 TLS not available due to local problem")
            return
        if self.ctx is not None:
            s.send("220 2.0.0 Ready to start TLS")
            s.f.close()
            s.conn = self.ctx.wrap_socket(s.conn, server_side=True)
            s.f = s.conn.makefile("rb")
            s.info["tls"] = s.conn.version()
            return
        if self.tls == "inject":
            s.send("220 2.0.0 Ready to start TLS", "250 injected after the STARTTLS reply")
        else:
            s.send("220 2.0.0 Ready to start TLS")
        s.conn.settimeout(10)
        try:
            s.conn.recv(16384)   # the ClientHello
            if self.tls in ("garbage", "inject"):
                s.conn.sendall(b"this is not a TLS record, sorry\r\n" * 4)
        except OSError:
            pass
        return True

    def smtp_MAIL(self, s, cmd):
        if not self.mail_refusal:
            return super().smtp_MAIL(s, cmd)
        n = len(self.mail_refusal)
        s.send(*(f"{x[:3]}{'-' if i < n - 1 else ' '}{x[4:]}"
                 for i, x in enumerate(self.mail_refusal)))
        with self.lock:
            s.info["refused_mail"] = cmd
        return True

    def message(self, s, data):
        with self.lock:
            self.messages.append((s.mail_from, s.rcpts, data, s.info["tls"], s.params))
        return "250 2.0.0 Ok: stored by fake"

    def smtp_QUIT(self, s, cmd):
        with self.lock:
            s.info["quit"] = time.monotonic()
        time.sleep(self.quit_delay)
        return super().smtp_QUIT(s, cmd)


# ---------------------------------------------------------------- outcome records
# mxd journals every outcome record (what controld would get) in
# spool_dir/journal when it has a `control` section (mxd/uploader/uploader.c); no
# controld needs to run for that. The records are serialized
# mxfleet.v1.Outcome messages (proto/mxfleet.proto), decoded here with
# Python code that /usr/bin/protoc generates (Debian's python3-protobuf).

PROTO_DIR = os.path.join(SRC, "proto")
_pb2 = None


def outcome_pb2():
    """The mxfleet_pb2 module, generated once per process into a temporary
    directory."""
    global _pb2
    if _pb2 is None:
        import importlib
        import subprocess
        gen = tempfile.mkdtemp(prefix="outtest-pb2-")
        watch_dir(gen)
        subprocess.run(["/usr/bin/protoc", f"-I{PROTO_DIR}", f"--python_out={gen}",
                        os.path.join(PROTO_DIR, "mxfleet.proto")],
                       check=True, capture_output=True, timeout=60)
        sys.path.insert(0, gen)
        _pb2 = importlib.import_module("mxfleet_pb2")
    return _pb2


def journal_control(tc):
    """A `control` section for mxd's config that makes it journal its
    outcome records although no controld exists: a self-signed client
    certificate (made in tc's work directory) and a server address where
    nothing listens (the uploader keeps retrying, harmlessly)."""
    cert, key = tc.cert("control-client", cn=f"outtest-{uuid.uuid4().hex[:6]}.test")
    host = pick_host()
    return {"server": f"{host}:{free_port(host)}", "cert": cert, "key": key, "ca": cert}


def journal_records(journal_dir):
    """[(seq, data)] of the intact records in a journal directory, by the
    on-disk format of mxd/uploader/journal.h: segments %016x.seg = "MXJSEG01" + base
    seq u64, then records "MXJR" len u32 seq u64 crc32(data) u32
    crc32(header[0..20)) u32 + data. Read while mxd runs: a record being
    written (the tail) is left for the next read."""
    import struct
    import zlib
    out = []
    try:
        names = sorted(n for n in os.listdir(journal_dir) if n.endswith(".seg"))
    except FileNotFoundError:
        return out
    for name in names:
        with open(os.path.join(journal_dir, name), "rb") as f:
            data = f.read()
        if data[:8] != b"MXJSEG01":
            continue
        off = 16
        while off + 24 <= len(data):
            magic, ln, seq, crc, hcrc = struct.unpack_from("<4sIQII", data, off)
            if magic != b"MXJR" or zlib.crc32(data[off:off + 20]) != hcrc:
                break
            body = data[off + 24:off + 24 + ln]
            if len(body) < ln or zlib.crc32(body) != crc:
                break
            out.append((seq, body))
            off += 24 + ln
    return sorted(out)


def journal_outcomes(spool_dir):
    """The Outcome messages mxd journaled so far, in seq order (each with
    its journal seq set)."""
    pb2 = outcome_pb2()
    out = []
    for seq, body in journal_records(os.path.join(spool_dir, "journal")):
        o = pb2.Outcome.FromString(body)
        o.seq = seq
        out.append(o)
    return out


# ---------------------------------------------------------------- the test case

class OutboundTestCase(mxtest.MxTestCase):
    """One DNS setup per test class (setUpClass), one mxd per test."""

    dns = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not mxtest.mxd_available():
            raise RuntimeError(f"mxd not built ({mxtest.MXD_BIN})")
        for tool in (dnstest.NSD, dnstest.UNBOUND, dnstest.SIGNZONE):
            if not os.access(tool, os.X_OK):
                raise RuntimeError(f"{tool} missing (scripts/deps)")
        # dnstest keeps no handle on the servers it spawns: Python would
        # warn about each of them on every test.
        warnings.filterwarnings("ignore", category=ResourceWarning,
                                message=r"subprocess \d+ is still running")
        cls.dns = Dns()
        cls.addClassCleanup(cls.dns.down)
        cls.port = remote_port()

    def setUp(self):
        super().setUp()
        watch_dir(self.wd)

    # -- fake MX hosts

    def mx_sink(self, host, name, tls=False, **kw):
        """A sink as an MX on host:self.port whose greeting names `name`."""
        s = self.new_sink(name=f"mx-{host}", host=host, port=self.port, start=False,
                          tls=self.cert(f"mx-{host}", cn=name) if tls else None, **kw)
        s.argv += ["--hostname", name]
        s.start()
        return s

    def fake_mx(self, host, name, tls="garbage", requiretls=False, quit_delay=0, greeting=True,
                tls1_only=False, **kw):
        if tls is True:
            tls = self.cert(f"fake-{host}", cn=name)
        fx = FakeMx(host, self.port, name, tls, requiretls, quit_delay, greeting, tls1_only, **kw)
        self.addCleanup(fx.stop)
        return fx

    # -- mxd

    def outbound_mxd(self, certs=None, **over):
        """mxd relaying for 127.0.0.0/8 straight to the MX hosts; example.test
        is local with a sink as next hop (the DSNs land there)."""
        local = self.new_sink(name="local")
        cfg = self.mxd_config(local.next_hop, certs,
                              resolver=self.dns.resolver,
                              trusted_networks=["127.0.0.0/8"],
                              delivery={"remote_port": self.port, "retry_min": 1,
                                        "retry_max": 2})
        cfg = mxtest.deep_merge(cfg, over)
        return self.mxd(cfg), local

    def send(self, m, rcpts, data, sender=SENDER):
        """One message over plain SMTP from a trusted loopback client; the
        exact bytes (CRLF, no lines starting with a dot unless meant)."""
        replies = mxtest.send_message(m.host, m.port, sender, rcpts, data)
        codes = [r.code for r in replies]
        self.assertEqual(codes[-2], 250, f"mxd did not accept the message: {replies}")
        return replies

    def wait_dsn(self, local, to=SENDER, timeout=20):
        msg = local.wait_message(lambda x: x.mail_from == "" and x.rcpts == [to],
                                 timeout=timeout, what=f"DSN to {to}")
        return msg, Dsn(msg.data)

    def sessions(self, m, **match):
        return m.events("outbound_session", **match)

    def wait_session(self, m, timeout=15, **match):
        """An outbound_session record: written when the connection closes
        (idle close after ~2 s), just before mxd sends QUIT.

        The short pause after it keeps the test's teardown SIGTERM out of
        that QUIT exchange: a SIGTERM that lands there is lost by mxd's
        delivery process (test_outbound_shutdown.py shows that bug on its
        own) and would fail whichever test happened to be unlucky."""
        rec = m.wait_event("outbound_session", timeout=timeout, **match)
        time.sleep(0.3)
        return rec

    def assertNoMail(self, *sinks):
        for s in sinks:
            self.assertEqual(s.names(), [], f"{s.name} got mail it should not have")


def message(msg_id, subject="outbound test"):
    """A message whose bytes must arrive unchanged: a line with a leading dot
    (dot-stuffing both ways), a long line, trailing spaces, an empty line,
    a folded header."""
    return (f"From: <{SENDER}>\r\n"
            f"To: <someone@remote.example>\r\n"
            f"Subject: {subject}\r\n"
            f"  folded part of the subject\r\n"
            f"Message-ID: <{msg_id}@outtest>\r\n"
            f"X-Test-Id: {msg_id}\r\n"
            f"\r\n"
            f"first line\r\n"
            f".a line starting with a dot\r\n"
            f"..two dots\r\n"
            f"trailing spaces   \r\n"
            f"\r\n"
            f"{'x' * 900}\r\n"
            f"last line\r\n").encode()


def has_id(msg_id):
    return lambda x: f"X-Test-Id: {msg_id}".encode() in x.data


def ipv4_rdata(rdatas):
    return [socket.inet_ntoa(r) for r in rdatas if len(r) == 4]


main = mxtest.main
