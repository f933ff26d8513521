#!/usr/bin/python3
"""mxd's queue-control socket (spool_dir/queue.sock) and its client,
`mxd -c FILE queue list|retry ID|retry all|drop ID`: an operator sees what
waits and why, makes a message go now, and removes one without a DSN.

The next hop is an aiosmtpd sink that answers 451 to the recipients, so
messages stay queued; the retry interval is ten minutes, so whatever is
delivered during a test was delivered because the operator asked."""

import os
import pwd
import smtplib
import socket
import stat
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
ALICE = f"alice@{LOCAL_DOMAIN}"
BOB = f"bob@{LOCAL_DOMAIN}"
TEMPFAIL = "451 4.3.0 mailbox busy, try again later"
RETRY_SEC = 600  # far beyond any wait below


def has_id(msg_id):
    return lambda x: f"X-Test-Id: {msg_id}".encode() in x.data


class QueueControlTest(mxtest.MxTestCase):

    # -- helpers

    def start(self, tempfail=(ALICE, BOB)):
        """A sink that defers `tempfail`, and mxd relaying to it."""
        sink = self.new_sink(name="busy", rcpt_replies={r: TEMPFAIL for r in tempfail})
        m = self.mxd(self.mxd_config(sink.next_hop, None,
                                     delivery={"retry_min": RETRY_SEC, "retry_max": RETRY_SEC}))
        self.wait_socket(m)
        return m, sink

    def wait_socket(self, m, count=1):
        """The delivery process says it listens (count: after restarts)."""
        mxtest.wait_for(lambda: len(m.events("queue_control_listening")) >= count, 10,
                        what="queue-control socket")

    def accepting_sink(self, busy):
        """The same next hop, now accepting everything."""
        busy.stop()
        return self.new_sink(name="open", host=busy.host, port=busy.port)

    def send(self, m, rcpts, msg_id):
        with smtplib.SMTP(m.host, m.port, timeout=10, local_hostname="client.test") as s:
            self.assertEqual(s.sendmail(SENDER, rcpts, make_body(msg_id)), {})

    def deferred_id(self, m, rcpt):
        """The queue id of the message deferred for rcpt (from mxd's log)."""
        return m.wait_event("deferred", timeout=15, rcpt=f"<{rcpt}>")["id"]

    def sock_path(self, m):
        return os.path.join(m.config["spool_dir"], "queue.sock")

    def request(self, m, data, shut=True, timeout=10):
        """Bytes straight to the socket; the whole answer, up to the close."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock_path(m))
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode()
                out += chunk

    def spool_file(self, m, qid):
        return os.path.join(m.config["spool_dir"], "queue", qid)

    # -- tests

    def test_list_shows_deferred_message_and_retry_delivers_it_at_once(self):
        m, busy = self.start()
        msg_id = uuid.uuid4().hex[:10]
        self.send(m, [ALICE], msg_id)
        qid = self.deferred_id(m, ALICE)

        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)
        self.assertIn(qid, out)
        self.assertIn(f"from: <{SENDER}>", out)
        self.assertIn(f"to:   <{ALICE}>", out)
        self.assertIn("attempts 1", out)
        self.assertIn(f"last reply: {TEMPFAIL}", out)
        self.assertIn("-- 1 message queued", out)

        # The same over the wire, as controld will read it.
        ans = self.request(m, b"LIST\n").splitlines()
        self.assertEqual(ans[-1], "OK 1 messages", ans)
        self.assertEqual(len(ans), 2, ans)
        line = ans[0]
        self.assertTrue(line.startswith(f"MSG id={qid} "), line)
        rec = mxtest.parse_logfmt(line[4:])
        self.assertEqual(rec["from"], SENDER)
        self.assertEqual(rec["rcpt"], ALICE)
        self.assertEqual(rec["attempts"], "1")
        self.assertEqual(rec["last_reply"], TEMPFAIL)
        now = time.time()
        self.assertLessEqual(abs(int(rec["created"]) - now), 60, rec)
        self.assertGreater(int(rec["next"]), now + RETRY_SEC - 60, "next attempt is not the retry time")

        rc, out, err = m.queue("retry", "0000deadbeef0000")
        self.assertNotEqual(rc, 0)
        self.assertIn("no such message: 0000deadbeef0000", err)

        sink = self.accepting_sink(busy)
        t0 = time.monotonic()
        rc, out, err = m.queue("retry", qid)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"retry scheduled: {qid}", out)
        got = sink.wait_message(has_id(msg_id), timeout=15)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(got.rcpts, [ALICE])
        m.wait_event("delivered", timeout=10, id=qid)
        m.wait_event("retry_requested", timeout=5, id=qid, by="queue-control")
        mxtest.wait_for(lambda: not os.path.exists(self.spool_file(m, qid)), 10,
                        what="spool file removed after delivery")
        rc, out, err = m.queue("list")
        self.assertEqual((rc, out.strip()), (0, "-- 0 messages queued"), err)

    def test_drop_removes_message_without_dsn_and_retry_all_sends_the_rest(self):
        m, busy = self.start()
        keep_id, drop_id = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
        self.send(m, [ALICE], keep_id)
        keep = self.deferred_id(m, ALICE)
        self.send(m, [BOB], drop_id)
        gone = self.deferred_id(m, BOB)
        self.assertTrue(os.path.exists(self.spool_file(m, gone)))

        rc, out, err = m.queue("drop", gone)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"dropped: {gone}", out)
        self.assertFalse(os.path.exists(self.spool_file(m, gone)), "spool file still there")
        m.wait_event("dropped", timeout=5, id=gone, by="queue-control")
        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)
        self.assertIn(keep, out)
        self.assertNotIn(gone, out)
        self.assertIn("-- 1 message queued", out)
        rc, out, err = m.queue("drop", gone)
        self.assertNotEqual(rc, 0, "dropped twice")
        self.assertIn(f"no such message: {gone}", err)

        sink = self.accepting_sink(busy)
        rc, out, err = m.queue("retry", "all")
        self.assertEqual(rc, 0, err)
        self.assertIn("retry scheduled: 1 messages", out)
        sink.wait_message(has_id(keep_id), timeout=15)
        # A DSN would go to SENDER, a local address at this same next hop.
        time.sleep(2)
        self.assertEqual([x for x in sink.messages() if has_id(drop_id)(x)], [],
                         "the dropped message was delivered")
        self.assertEqual([x for x in sink.messages() if x.mail_from == ""], [],
                         "dropping sent a DSN")
        self.assertEqual(m.events("bounced"), [])

    def test_socket_is_private_to_mxd_user(self):
        m, _ = self.start()
        st = os.lstat(self.sock_path(m))
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))
        want = pwd.getpwnam(mxtest.RUN_USER).pw_uid if mxtest.IS_ROOT else os.geteuid()
        self.assertEqual(st.st_uid, want, "socket not owned by mxd's user")

    def test_stale_socket_is_replaced_and_removed_at_stop(self):
        m, busy = self.start()
        m.stop()
        path = self.sock_path(m)
        self.assertFalse(os.path.exists(path), "socket left behind at a clean stop")
        # What a killed mxd would leave: a socket nobody listens on.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path)
        self.assertTrue(os.path.exists(path))
        m.start()
        self.wait_socket(m, count=2)
        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)
        self.assertIn("-- 0 messages queued", out)

    def test_client_says_when_mxd_is_not_running(self):
        cfg = self.mxd_config(None, None)
        m = self.mxd(cfg, start=False)
        m.write_config()
        rc, out, err = m.queue("list")
        self.assertNotEqual(rc, 0)
        self.assertIn("queue.sock", err)
        self.assertIn("not running", err)
        rc, out, err = m.queue("frobnicate")
        self.assertEqual(rc, 2, "a usage error is not exit 2")
        self.assertIn("usage:", err)

    def test_protocol_errors_are_one_line(self):
        m, _ = self.start()
        self.assertEqual(self.request(m, b"FROB\n"), "ERR unknown command\n")
        self.assertEqual(self.request(m, b"RETRY\n"), "ERR usage: RETRY <id>|ALL\n")
        self.assertEqual(self.request(m, b"DROP ../../etc/passwd\n"), "ERR malformed message id\n")
        self.assertEqual(self.request(m, b"retry 0000deadbeef0000\r\n"),
                         "ERR no such message: 0000deadbeef0000\n")
        self.assertEqual(self.request(m, b"LIST" + b" " * 300 + b"\n", shut=False),
                         "ERR line too long\n")
        self.assertEqual(self.request(m, b"list"), "OK 0 messages\n", "a last line without LF")

    def test_stalled_client_does_not_stop_delivery(self):
        m, busy = self.start(tempfail=())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stalled:
            stalled.connect(self.sock_path(m))
            stalled.sendall(b"LI")   # and nothing more
            time.sleep(0.2)
            msg_id = uuid.uuid4().hex[:10]
            t0 = time.monotonic()
            self.send(m, [ALICE], msg_id)
            busy.wait_message(has_id(msg_id), timeout=15)
            self.assertLess(time.monotonic() - t0, 10)
            # The server gave up on it after its time limit.
            stalled.settimeout(10)
            self.assertEqual(stalled.recv(100), b"")
        m.wait_event("queue_control_no_request", timeout=5)
        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    mxtest.main()
