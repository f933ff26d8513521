#!/usr/bin/python3
"""Deadlines that bound a delivery (issue 10, item 5).

A next hop that trickles its greeting or its reply one byte a second never
falls silent long enough for a per-read timeout, and used to hold mxd's
delivery connection for as long as it liked. With delivery.command_timeout,
data_timeout and transaction_timeout set to a few seconds, mxd cuts each
such session off at its deadline, defers the message with a 451 4.4.2
timeout reply that names what was not complete, and the mail for another
destination (a normal sink) still goes out.

Real peers on loopback: mxd relays for trusted loopback clients by routes to
a trickling SMTP server in this process and to the aiosmtpd sink.
"""

import os
import socket
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import mxtest  # noqa: E402
from mxtest import LCList, LOCAL_DOMAIN, free_port, pick_host, wait_for  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
SLOW, FAST = "slow.test", "fast.test"



class TricklePeer:
    """An SMTP server on loopback that is never silent for long but never
    done either. mode:

      "greeting"  its 220 comes one byte every `delay` seconds (~200 bytes)
      "data"      answers promptly up to the end of the message, then its
                  250 to the final dot comes one byte every `delay` seconds
      "slow"      answers every command in full, each after `delay` seconds

    `sessions`: per connection {"start", "end" (monotonic), "sent" (bytes of
    the trickled reply sent; in "slow" mode, replies sent)}. The session ends when the client hangs up
    (a write fails) or the trickle is complete."""

    GREETING = b"220 " + b"slow.test-trickles-its-greeting " * 6 + b"ESMTP\r\n"
    FINAL = b"250 2.0.0 Ok: queued, after a reply that takes minutes to arrive " * 2 + b"\r\n"

    def __init__(self, mode, delay=1.0):
        self.mode, self.delay = mode, delay
        self.host = pick_host()
        self.port = free_port(self.host)
        self.sessions = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def next_hop(self):
        return f"smtp:{self.host}:{self.port}"

    def stop(self):
        self.stopping = True
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            info = {"start": time.monotonic(), "end": None, "sent": 0}
            with self.lock:
                self.sessions.append(info)
            threading.Thread(target=self._session, args=(conn, info), daemon=True).start()

    def _trickle(self, conn, info, data):
        for i in range(len(data)):
            if self.stopping:
                return
            conn.sendall(data[i:i + 1])
            info["sent"] += 1
            time.sleep(self.delay)

    def _reply(self, conn, info, line):
        if self.mode == "slow":
            time.sleep(self.delay)
            info["sent"] += 1   # replies, each whole
        conn.sendall(line)

    def _session(self, conn, info):
        conn.settimeout(60)
        f = conn.makefile("rb")
        try:
            if self.mode == "greeting":
                self._trickle(conn, info, self.GREETING)
                return
            self._reply(conn, info, b"220 slow.test ESMTP\r\n")
            while not self.stopping:
                line = f.readline(4096)
                if not line:
                    return
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb in (b"EHLO", b"HELO"):
                    self._reply(conn, info, b"250 slow.test\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    self._reply(conn, info, b"250 2.0.0 Ok\r\n")
                elif verb == b"DATA":
                    self._reply(conn, info, b"354 go ahead\r\n")
                    while True:
                        ln = f.readline(1 << 20)
                        if not ln or ln == b".\r\n":
                            break
                    if self.mode == "data":
                        self._trickle(conn, info, self.FINAL)
                        return
                    self._reply(conn, info, b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"502 5.5.1 Unknown command\r\n")
        except OSError:
            pass   # the client hung up: what the tests wait for
        finally:
            info["end"] = time.monotonic()
            try:
                f.close()
                conn.close()
            except OSError:
                pass


class DeadlineTest(mxtest.MxTestCase):

    def relay_mxd(self, slow, fast, **delivery):
        """mxd relaying for 127.0.0.0/8: slow.test to the trickling peer,
        fast.test to a sink; no retry during the test."""
        local = self.new_sink(name="local")
        d = {"command_timeout": 3, "data_timeout": 3, "retry_min": 600, "retry_max": 1200}
        d.update(delivery)
        cfg = self.mxd_config(local.next_hop, trusted_networks=["127.0.0.0/8"],
                              routes=LCList([
                                  {"recipient_domain": SLOW, "transport": slow.next_hop},
                                  {"recipient_domain": FAST, "transport": fast.next_hop}]),
                              delivery=d)
        return self.mxd(cfg)

    def send(self, m, rcpt, tag):
        replies = mxtest.send_message(m.host, m.port, SENDER, [rcpt], mxtest.make_body(tag))
        self.assertEqual(replies[-2].code, 250, f"mxd did not accept the message: {replies}")

    def peer(self, mode, delay=1.0):
        p = TricklePeer(mode, delay)
        self.addCleanup(p.stop)
        return p

    def cut_off_while_other_mail_goes(self, slow, m, fast, want):
        """Mail for slow.test first; once the peer holds mxd's connection,
        mail for fast.test. The second arrives, the first is deferred with
        `want` in its reply, and the peer saw mxd hang up long before its
        trickle was done."""
        rcpt = f"user@{SLOW}"
        self.send(m, rcpt, "slow-" + uuid.uuid4().hex[:8])
        wait_for(lambda: slow.sessions, 30, what="mxd's connection at the trickling peer")
        tag = "fast-" + uuid.uuid4().hex[:8]
        self.send(m, f"user@{FAST}", tag)
        # The trickle alone would take minutes: mxd must not wait for it.
        got = fast.wait_message(lambda x: mxtest.check_body(x.data)[0] == tag, timeout=40)
        self.assertEqual(mxtest.check_body(got.data), (tag, True))
        rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=30)
        self.assertIn(want, rec.get("reply", ""), rec)
        self.assertIn(f"{slow.host}:{slow.port}", rec.get("reply", ""), rec)
        self.assertEqual(rec.get("next_hop"), slow.next_hop, rec)
        s = wait_for(lambda: slow.sessions[0] if slow.sessions[0]["end"] else None, 30,
                     what="mxd hanging up on the trickling peer")
        self.assertGreater(s["sent"], 1, "the peer was not trickling: the test proves nothing")
        self.assertLess(s["end"] - s["start"], 30, f"mxd held the session for too long: {s}")
        return rec

    def test_trickling_greeting_is_cut_off_and_other_mail_still_goes(self):
        slow, fast = self.peer("greeting"), self.new_sink(name="fast")
        m = self.relay_mxd(slow, fast)
        self.cut_off_while_other_mail_goes(
            slow, m, fast, "451 4.4.2 timeout: greeting not complete after 3 s from")
        # The session's outcome record says why it ended.
        rec = m.wait_event("outbound_session", ip=slow.host, timeout=10)
        self.assertIn("timeout: greeting not complete", rec.get("error", ""), rec)
        self.assertEqual(m.events("delivered", rcpt=f"<user@{SLOW}>"), [])

    def test_trickling_end_of_data_reply_is_cut_off_at_data_timeout(self):
        slow, fast = self.peer("data"), self.new_sink(name="fast")
        m = self.relay_mxd(slow, fast, command_timeout=30)
        self.cut_off_while_other_mail_goes(
            slow, m, fast, "451 4.4.2 timeout: end of data answer not complete after 3 s from")

    def test_transaction_deadline_cuts_off_replies_that_each_come_in_time(self):
        # Each reply comes after 1.5 s, within command_timeout (3 s); the
        # greeting, EHLO, MAIL, RCPT and DATA together pass 5 s.
        slow, fast = self.peer("slow", delay=1.5), self.new_sink(name="fast")
        m = self.relay_mxd(slow, fast, transaction_timeout=5)
        rec = self.cut_off_while_other_mail_goes(
            slow, m, fast, f"451 4.4.2 timeout: transaction with {slow.host}:{slow.port} "
            "not complete after 5 s")
        self.assertRegex(rec.get("reply", ""), r"after 5 s \((MAIL|RCPT|DATA|end of data) answer\)")

    def test_deadline_keys_are_checked(self):
        cfg = self.mxd_config(None, delivery={"command_timeout": 0})
        path = os.path.join(self.wd, "check.conf")
        with open(path, "w") as f:
            f.write(mxtest.libconfig_text(cfg))
        import subprocess
        res = subprocess.run([mxtest.MXD_BIN, "-n", "-c", path], capture_output=True,
                             text=True, timeout=20)
        self.assertNotEqual(res.returncode, 0, res.stderr)
        self.assertIn("delivery.command_timeout", res.stderr)


if __name__ == "__main__":
    mxtest.main()
