#!/usr/bin/python3
"""Issue 9 item 2: a client that floods commands cannot make mxd grow.

A client that pipelines `EHLO a` and never reads its replies used to grow one
worker by gigabytes (every reply queued in memory). mxd now stops reading a
session's input while that session's unsent replies are above a bound, and
counts junk commands (EHLO, HELO, NOOP, RSET, VRFY, HELP): past
limits.junk_commands the session ends with 421. A paused session is not
dropped or garbled: once the client reads, mxd reads again, and every
command gets its reply, in order."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
RCPT = f"rcpt@{LOCAL_DOMAIN}"
FLOOD_SECONDS = 8
# Growth of all mxd processes together while one client floods. Before the
# fix it passed this bound within a second or two of flooding.
RSS_GROWTH_BOUND_KB = 64 * 1024
EHLO = b"EHLO a\r\n"
# The flooder stops here at the latest: its EHLOs stay under the
# limits.junk_commands of the test (1000000), so its QUIT is reached.
FLOOD_MAX_BYTES = 6 * 1024 * 1024


def total_rss_kb(m):
    total = 0
    for pid in m.pids():
        try:
            total += int(mxtest.proc_status(pid).get("VmRSS", "0 kB").split()[0])
        except (OSError, ValueError):
            pass    # a process that just exited
    return total


class Flooder(threading.Thread):
    """Sends pipelined EHLO for `seconds` and never reads a reply."""

    def __init__(self, m, seconds, source):
        super().__init__(daemon=True)
        self.sock = socket.create_connection((m.host, m.port), timeout=5,
                                             source_address=(source, 0))
        self.seconds = seconds
        self.sent = 0

    def run(self):
        chunk = EHLO * 8192
        deadline = time.monotonic() + self.seconds
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline and self.sent < FLOOD_MAX_BYTES:
            try:
                self.sent += self.sock.send(chunk[:FLOOD_MAX_BYTES - self.sent])
            except (socket.timeout, BlockingIOError):
                continue    # the server stopped reading: exactly what we want
            except OSError:
                return

    def read_backlog_and_quit(self, timeout):
        """Finish the EHLO line a partial send may have cut, read a reply to
        every EHLO sent, then QUIT. Returns (EHLO replies read, EHLOs sent,
        421 replies read, the reply to QUIT)."""
        cut = self.sent % len(EHLO)
        if cut:
            self.sock.settimeout(timeout)
            self.sock.sendall(EHLO[cut:])
            self.sent += len(EHLO) - cut
        want = self.sent // len(EHLO)
        seen = refused = 0
        carry = b""
        deadline = time.monotonic() + timeout
        # A reply's last line is "250 ..." (its other lines "250-..."),
        # always after a newline: the greeting's or the reply before.
        while seen < want:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = self.sock.recv(1 << 20)
            if not data:
                break
            data = carry + data
            seen += data.count(b"\n250 ")
            refused += data.count(b"\n421 ")
            carry = data[-4:]
        self.sock.settimeout(timeout)
        self.sock.sendall(b"QUIT\r\n")
        rest = b""
        while not rest.endswith(b"\r\n"):
            more = self.sock.recv(4096)
            if not more:
                break
            rest += more
        return seen, want, refused, rest

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class SmtpFloodTest(mxtest.MxTestCase):
    def test_pipelined_ehlo_flood_without_reading_keeps_worker_small(self):
        # A junk limit this high leaves the output bound alone to stop it.
        m, sink = self.standard(tls=False, limits={"junk_commands": 1000000})
        # One served session first, so the worker exists and is warmed up.
        replies = mxtest.send_message(m.host, m.port, SENDER, [RCPT],
                                      mxtest.make_body("before-flood"))
        self.assertEqual(replies[-2].code, 250, replies)
        base = total_rss_kb(m)
        flooder = Flooder(m, FLOOD_SECONDS, source="127.0.0.1")
        self.addCleanup(flooder.close)
        flooder.start()
        peak = base
        served = None
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            peak = max(peak, total_rss_kb(m))
            if served is None and time.monotonic() > deadline - FLOOD_SECONDS / 2:
                # Another client, meanwhile, is served normally.
                served = mxtest.send_message(m.host, m.port, SENDER, [RCPT],
                                             mxtest.make_body("during-flood"),
                                             timeout=30)
            time.sleep(0.2)
        flooder.join(timeout=10)
        peak = max(peak, total_rss_kb(m))
        self.assertLess(peak - base, RSS_GROWTH_BOUND_KB,
                        f"mxd grew from {base} kB to {peak} kB while one client "
                        f"sent {flooder.sent} bytes of EHLO without reading")
        self.assertGreater(flooder.sent, 0)
        self.assertIsNotNone(served, "no session tried during the flood")
        self.assertEqual(served[-2].code, 250, f"session during the flood: {served}")
        sink.wait_message(lambda msg: b"during-flood" in msg.data, timeout=30,
                          what="message sent during the flood")

        # The flooder reads at last: its paused session is read again,
        # answers every EHLO it sent, then its QUIT.
        seen, want, refused, quit_reply = flooder.read_backlog_and_quit(timeout=240)
        self.assertEqual(refused, 0, "the flooder got 421")
        self.assertEqual(seen, want, f"replies to the {want} EHLOs sent")
        self.assertTrue(quit_reply.startswith(b"221 "), f"QUIT after the backlog: {quit_reply!r}")

    def test_slow_reader_of_a_long_pipeline_gets_every_reply(self):
        # Far more replies (8 MiB) than the kernel's socket buffers and the
        # 256 KiB at which mxd pauses can hold, read a little at a time
        # through a small receive buffer: mxd pauses and resumes many times,
        # and drops or reorders nothing.
        n = 600000
        m, _ = self.standard(tls=False, limits={"junk_commands": n + 10})
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect((m.host, m.port))
        sender = threading.Thread(target=sock.sendall, daemon=True,
                                  args=(b"NOOP\r\n" * n + b"QUIT\r\n",))
        sender.start()
        data = bytearray()
        deadline = time.monotonic() + 240
        while not data.endswith(b"221 2.0.0 Bye\r\n") and time.monotonic() < deadline:
            more = sock.recv(8192)
            if not more:
                break
            data += more
            time.sleep(0.001)
        sender.join(timeout=30)
        lines = bytes(data).split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"220 "), lines[:2])
        self.assertEqual(lines[-1], b"")
        self.assertEqual(lines[-2], b"221 2.0.0 Bye", f"the end: {lines[-4:]}")
        noops = lines[1:-2]
        self.assertEqual(len(noops), n, f"replies to {n} NOOPs")
        self.assertEqual(set(noops), {b"250 2.0.0 Ok"})

    def test_101st_noop_gets_421_and_disconnect(self):
        m, _ = self.standard(tls=False)
        c = self.raw(m)
        self.assertReply(c.read_reply(), 220)
        for i in range(100):
            self.assertReply(c.cmd("NOOP"), 250, msg=f"NOOP {i + 1} refused")
        self.assertReply(c.cmd("NOOP"), 421, "4.7.0")
        self.assertEqual(c.read_until_closed(timeout=10), [])
        m.wait_event("too_many_junk_commands")

    def test_junk_commands_are_forgiven_after_an_accepted_message(self):
        # 3 x 40 junk commands exceed 100 in total, but each message accepted
        # starts the count again (as Postfix does).
        m, sink = self.standard(tls=False)
        c = self.raw(m)
        self.assertReply(c.read_reply(), 220)
        self.assertReply(c.ehlo(), 250)
        for n in range(3):
            for _ in range(20):
                self.assertReply(c.cmd("NOOP"), 250)
                self.assertReply(c.cmd("RSET"), 250)
            self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
            self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(mxtest.dot_stuff(mxtest.make_body(f"junk-{n}")) + b".\r\n")
            self.assertReply(c.read_reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        sink.wait_messages(3, timeout=30)

    def test_a_few_junk_commands_do_not_disturb_a_session(self):
        m, sink = self.standard(tls=False)
        c = self.raw(m)
        self.assertReply(c.read_reply(), 220)
        for line in ("EHLO a.test", "HELP", "NOOP", "VRFY x", "RSET", "HELO b.test",
                     "EHLO c.test"):
            self.assertLess(c.cmd(line).code, 400, line)
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(mxtest.dot_stuff(mxtest.make_body("few-junk")) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        sink.wait_messages(1, timeout=30)


if __name__ == "__main__":
    mxtest.main()
