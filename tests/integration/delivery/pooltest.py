"""Shared helpers of the delivery-pool tests (issue 10): a next hop that
counts what mxd's delivery agents do to it, and the mxd set-ups around it.

CountingSink is an SMTP server in threads of the test process, on its own
127.0.x.y address: outbound/test_outbound_crash.py's HoldingHop (which can
hold its reply to the final dot) with counters. It records:

  * every connection (ConnInfo): when it opened and closed, its
    transactions;
  * every transaction (Txn): sender, recipients, the X-Test-Id of the
    message (mxtest.make_body), when MAIL came, when the final reply went
    and which reply;
  * how many connections were open at once and how many were busy at once
    (max_open, max_busy). A connection is busy from its accept until the
    reply to its first message, and from each MAIL until that
    transaction's reply; in between it is idle (a cached connection
    waiting for the next message) and after QUIT it is closing. Busy
    connections are what a destination's concurrency window limits.

What it does to its client:

  data_delay     seconds to wait before the 354 to DATA
  eod_delay      seconds to wait before the reply to the final dot
  silent         accept every connection and never say a word (until stop)
  hold           transactions still to hold at the final dot (counts down):
                 no reply until the client is gone (its process was
                 killed) or release() is called; a held transaction counts
                 as kept (the server has the message, the client does not
                 know)
  tempfail_rcpts recipient addresses answered 451 at RCPT (a set; change
                 it while running under `lock`)

Every wait is bounded; stop() ends every session at once.
"""

import os
import re
import smtplib
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import mxtest  # noqa: E402
import outtest  # noqa: E402  (its watchdog also cleans up after a killed test run)
from mxtest import LCList, LOCAL_DOMAIN, check_body, make_body  # noqa: E402
from test_outbound_crash import HoldingHop  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
SILENT_LIMIT = 120   # seconds a silent sink keeps a connection at most


class ConnInfo:
    def __init__(self, peer, opened):
        self.peer, self.opened, self.closed = peer, opened, None
        self.state = "busy"        # busy | idle | closing
        self.txns = []


class Txn:
    def __init__(self, conn, mail_from, t_mail):
        self.conn, self.mail_from, self.t_mail = conn, mail_from, t_mail
        self.rcpts, self.msg_id = [], None
        self.t_reply, self.reply = None, None
        self.held = False          # its reply was held
        self.kept = False          # answered 250, or held (the server has it)

    def __repr__(self):
        return (f"<Txn {self.msg_id} rcpts={len(self.rcpts)} reply={self.reply!r}"
                f" held={self.held}>")


class CountingSink(HoldingHop):
    banner = "ESMTP counting sink"

    def __init__(self, host=None, port=0, data_delay=0, eod_delay=0, silent=False,
                 hold=0, tempfail_rcpts=(), greet_delay=0):
        self.data_delay, self.eod_delay, self.silent = data_delay, eod_delay, silent
        self.greet_delay = greet_delay
        self.first_greeting = None   # monotonic time the first banner went out
        self.tempfail_rcpts = set(tempfail_rcpts)
        self.conns, self.txns = [], []
        self.open = self.busy = self.max_open = self.max_busy = 0
        self.first_reply = None    # monotonic time of the first reply to a final dot
        self.stopped = threading.Event()
        self._tl = threading.local()
        super().__init__("counting.test", host, port)
        self.hold = hold   # nobody knows the port yet

    # -- what a test reads

    def kept(self, msg_id=None):
        """Transactions the server keeps, of msg_id or all."""
        with self.lock:
            return [t for t in self.txns if t.kept and (msg_id is None or t.msg_id == msg_id)]

    def copies_by_id(self):
        """{msg_id: number of kept copies}."""
        out = {}
        for t in self.kept():
            out[t.msg_id] = out.get(t.msg_id, 0) + 1
        return out

    def wait_kept(self, ids, timeout):
        """Wait until every id in ids has at least one kept copy."""
        ids = set(ids)
        try:
            self.wait(lambda: not (ids - set(self.copies_by_id())), timeout,
                      f"{len(ids)} messages at {self.host}:{self.port}")
        except TimeoutError as e:
            missing = sorted(ids - set(self.copies_by_id()))
            raise TimeoutError(f"{e}; {len(missing)} missing: {missing[:5]}") from None

    def wait(self, pred, timeout, what):
        """mxtest.wait_for, failing with the counts as they are then."""
        try:
            return mxtest.wait_for(pred, timeout, interval=0.1, what=what)
        except TimeoutError as e:
            raise TimeoutError(f"{e} ({self.summary()})") from None

    def opened_before_first_reply(self):
        """Connections accepted before any transaction was answered: the
        start of the destination's concurrency window."""
        with self.lock:
            first = self.first_reply
            return sum(1 for c in self.conns if first is None or c.opened < first)

    def opened_before_first_greeting(self):
        """Connections accepted before the first banner went out: what the
        window allowed before any connection of this destination was known
        to work (it grows when one is greeted)."""
        with self.lock:
            first = self.first_greeting
            return sum(1 for c in self.conns if first is None or c.opened < first)

    def summary(self):
        with self.lock:
            return (f"{len(self.conns)} connections, {len(self.txns)} transactions, "
                    f"max_open={self.max_open} max_busy={self.max_busy} "
                    f"open={self.open} busy={self.busy}")

    def stop(self):
        self.stopped.set()
        super().stop()

    # -- bookkeeping (under self.lock)

    def _set_state(self, info, state):
        if info.state == state:
            return
        if info.state == "busy":
            self.busy -= 1
        if state == "busy":
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        info.state = state

    def _session(self, conn):
        try:
            peer = conn.getpeername()
        except OSError:   # gone already
            peer = None
        info = ConnInfo(peer, time.monotonic())
        with self.lock:
            self.conns.append(info)
            self.open += 1
            self.busy += 1
            self.max_open = max(self.max_open, self.open)
            self.max_busy = max(self.max_busy, self.busy)
        self._tl.info = info
        try:
            super()._session(conn)
        finally:
            with self.lock:
                self._set_state(info, "closing")
                info.closed = time.monotonic()
                self.open -= 1

    # -- the SMTP side

    def greet(self, s):
        s.info = self._tl.info
        if self.silent:
            self.stopped.wait(SILENT_LIMIT)
            return True
        if self.greet_delay:
            self.stopped.wait(self.greet_delay)
        ok = super().greet(s)
        with self.lock:
            if self.first_greeting is None:
                self.first_greeting = time.monotonic()
        return ok

    def smtp_MAIL(self, s, cmd):
        super().smtp_MAIL(s, cmd)
        with self.lock:
            self._set_state(s.info, "busy")
            s.txn = Txn(s.info, s.mail_from, time.monotonic())
            s.info.txns.append(s.txn)
            self.txns.append(s.txn)

    def smtp_RCPT(self, s, cmd):
        addr = outtest.rcpt_address(cmd)
        with self.lock:
            refuse = addr.lower() in self.tempfail_rcpts
        if refuse:
            s.send("451 4.3.0 busy, try again later")
            return
        super().smtp_RCPT(s, cmd)
        s.txn.rcpts.append(addr)

    def smtp_DATA(self, s, cmd):
        if s.rcpts and self.data_delay:
            self.stopped.wait(self.data_delay)
        return super().smtp_DATA(s, cmd)

    def smtp_QUIT(self, s, cmd):
        with self.lock:
            self._set_state(s.info, "closing")
        return super().smtp_QUIT(s, cmd)

    def message(self, s, data):
        txn = s.txn
        txn.msg_id = check_body(data)[0]
        with self.lock:
            hold = self.hold > 0
            if hold:
                self.hold -= 1
                txn.held = txn.kept = True
        if hold:
            self.holding.set()
            gone = self._hold_reply(s.conn)
            self.holding.clear()
            if gone:
                return None
        elif self.eod_delay:
            self.stopped.wait(self.eod_delay)
        reply = "250 2.0.0 Ok: stored"
        with self.lock:
            txn.kept, txn.reply, txn.t_reply = True, reply, time.monotonic()
            if self.first_reply is None:
                self.first_reply = txn.t_reply
            self._set_state(s.info, "idle")
        return reply


# ---------------------------------------------------------------- mxd around it

class PoolTestCase(mxtest.MxTestCase):
    """MxTestCase with counting sinks and mxd configured for the pool."""

    def counting_sink(self, **kw):
        sink = CountingSink(**kw)
        # Cleanups run last-in first-out: the sinks end their sessions
        # before mxd is stopped, so no agent waits on a silent peer then.
        self.addCleanup(sink.stop)
        return sink

    def pool_mxd(self, domains, delivery=None, **over):
        """mxd whose local domains are domains ({name: next_hop}), with the
        `delivery` group merged over the test defaults (retry after 1-2 s)."""
        cfg = self.mxd_config(None, None, delivery=delivery or {}, **over)
        cfg["domains"] = LCList({"name": d, "next_hop": h} for d, h in domains.items())
        m = self.mxd(cfg)
        mxtest.wait_for_file(os.path.join(cfg["spool_dir"], "queue.sock"), 20)
        return m

    def submit(self, m, items, timeout=30):
        """Send messages over one SMTP session: items is [(msg_id, [rcpts])].
        Returns {msg_id: queue id} from the 250 replies."""
        qids = {}
        with smtplib.SMTP(m.host, m.port, timeout=timeout, local_hostname="pool.test") as s:
            s.ehlo()
            for msg_id, rcpts in items:
                code, text = s.mail(SENDER)
                self.assertEqual(code, 250, text)
                for r in rcpts:
                    code, text = s.rcpt(r)
                    self.assertEqual(code, 250, f"RCPT {r}: {text}")
                code, text = s.data(make_body(msg_id))
                self.assertEqual(code, 250, text)
                found = re.search(rb"queued as (\S+)", text)
                qids[msg_id] = found.group(1).decode() if found else None
        return qids

    def queue_list(self, m):
        """The MSG records of `queue list`, over the socket as controld
        reads them: [{id, rcpt, last_reply, ...}], and the time it took."""
        t0 = time.monotonic()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(os.path.join(m.config["spool_dir"], "queue.sock"))
            s.sendall(b"LIST\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        took = time.monotonic() - t0
        lines = out.decode().splitlines()
        self.assertTrue(lines and lines[-1].startswith("OK "), f"LIST answered {lines[-3:]}")
        return [mxtest.parse_logfmt(x[4:]) for x in lines if x.startswith("MSG ")], took


def procs_by_comm(m):
    """{comm: [pid, ...]} over mxd's process tree, and {pid: parent pid}."""
    names, parents = {}, {}
    for pid in m.pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        names.setdefault(comm, []).append(pid)
        parents[pid] = int(stat[stat.rfind(")") + 2:].split()[1])
    return names, parents


def qmgr_pid(m):
    """The pid of mxd's scheduler, mxd-qmgr, a child of the master."""
    names, parents = procs_by_comm(m)
    found = [p for p in names.get("mxd-qmgr", []) if parents.get(p) == m.pid]
    return found[0] if len(found) == 1 else None


def agent_pids(m):
    """The delivery agents: mxd-smtp processes, children of mxd-qmgr."""
    q = qmgr_pid(m)
    names, parents = procs_by_comm(m)
    return [p for p in names.get("mxd-smtp", []) if q and parents.get(p) == q]


def ids(tag, n):
    return [f"{tag}{i:03d}" for i in range(n)]
