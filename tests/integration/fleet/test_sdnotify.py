#!/usr/bin/python3
"""What systemd sees of mxd and controld as Type=notify services (issue 13,
item 2): each sends READY=1 on $NOTIFY_SOCKET only once its listeners accept
connections (mxd: SMTP greeting; controld: a mailctl call answered), mxd
sends RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload,
and both send STOPPING=1 on SIGTERM. The socket is a datagram socket this
test binds, as systemd's would be."""

import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import wait_for  # noqa: E402

mxtest = cptest.mxtest
setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


class NotifySocket:
    def __init__(self, wd):
        self.path = os.path.join(wd, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)  # mxd's master sends after dropping root
        self.seen = []

    def wait(self, prefix, timeout=20):
        """The first datagram starting with prefix (those before it kept in seen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.seen.append(msg)
            if msg.startswith(prefix):
                return msg
        raise AssertionError(f"no {prefix!r} on NOTIFY_SOCKET within {timeout}s; got {self.seen}")

    def close(self):
        self.sock.close()


class SdNotifyTest(cptest.FleetTestCase):

    def notify(self):
        n = NotifySocket(self.wd)
        self.addCleanup(n.close)
        return n

    def test_mxd_ready_after_listening_reloading_and_stopping(self):
        n = self.notify()
        sink = self.new_sink()
        m = mxtest.Mxd(self.wd, self.mxd_config(sink.next_hop), name="mxd")
        m.env = dict(os.environ, NOTIFY_SOCKET=n.path)
        self.services.append(m)
        m.write_config()
        m.spawn()
        ready = n.wait("READY=1")
        # Ready means accepting: a client greeted at once.
        s = mxtest.SmtpRaw(m.host, m.port)
        self.assertEqual(s.read_reply().code, 220)
        s.close()
        self.assertIn("STATUS=accepting mail", ready)

        m.send_signal(signal.SIGHUP)
        reloading = n.wait("RELOADING=1")
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        n.wait("READY=1")
        m.wait_event("reloaded", timeout=15)

        m.send_signal(signal.SIGTERM)
        n.wait("STOPPING=1")
        m.wait(15)

    def test_mxd_without_notify_socket_runs_as_before(self):
        sink = self.new_sink()
        m = self.mxd(self.mxd_config(sink.next_hop))
        s = mxtest.SmtpRaw(m.host, m.port)
        self.assertEqual(s.read_reply().code, 220)
        s.close()

    def test_controld_ready_when_it_answers_and_stopping(self):
        n = self.notify()
        c = self.controld(start=False)
        c.env = dict(c.env or os.environ, NOTIFY_SOCKET=n.path)
        c.spawn()
        ready = n.wait("READY=1", timeout=30)
        self.assertIn("STATUS=accepting calls", ready)
        # Ready means answering: mailctl gets its answer at once.
        self.assertEqual(self.mailctl(c, "hosts", check=False).returncode, 0)
        c.send_signal(signal.SIGTERM)
        n.wait("STOPPING=1")
        c.wait(20)


if __name__ == "__main__":
    cptest.main()
