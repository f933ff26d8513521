#!/usr/bin/python3
"""mailctl queue list|retry|drop across the fleet through controld (issue 13,
item 5): two mxd whose next hop is down hold mail in their queues; mailctl
lists both hosts' queues (or one with --host), drops a message on one host
(gone from its spool, mxd's own `queue list` agrees), delivers the other
host's mail at once with `retry all` once the next hop is up, and names a
stopped host with a clear error and a non-zero exit while the other still
answers. The heartbeat's queue counts reach Admin.ListHosts."""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import MX1, MX2, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

# Long enough that nothing is retried on its own during the test.
SLOW_RETRY = {"delivery": {"retry_min": 600, "retry_max": 3600}}


class QueueRemoteTest(cptest.FleetTestCase):

    def local_ids(self, m):
        """The ids mxd's own `queue list` shows (a reload restarts the
        scheduler: its socket may be missing for a moment)."""
        def listed():
            rc, out, _ = m.queue("list")
            return out if rc == 0 else None
        out = wait_for(listed, 10, interval=0.2, what=f"mxd queue list on {m.name}")
        return sorted(line.split()[0] for line in out.splitlines()
                      if line and not line.startswith((" ", "--")))

    def deferred(self, m, n):
        """Wait until m holds n messages, each tried once (deferred)."""
        def ready():
            rc, out, _ = m.queue("list")
            return rc == 0 and out.count("attempts 1") == n
        wait_for(ready, 30, interval=0.3, what=f"{n} deferred messages on {m.name}")
        return self.local_ids(m)

    def queue_json(self, c, *args, check=True):
        p = self.mailctl(c, "queue", *args, "--json", check=check)
        return {h["host"]: h for h in json.loads(p.stdout)["hosts"]}, p

    def list_hosts(self, c):
        grpc, pb, svc = cptest.grpc_stubs()
        ch = cptest.grpc_channel(c.addr, self.pki.admin, self.pki.ca)
        self.addCleanup(ch.close)
        return {h.host_id: h for h in svc.AdminStub(ch).ListHosts(pb.Empty(), timeout=10).hosts}

    def test_list_drop_retry_and_a_stopped_host(self):
        c = self.controld()
        sink = self.new_sink(start=False)  # the next hop is down: mail defers
        sink.env = cptest.child_env()
        m1 = self.mxd_with_control(c, sink, cert=self.pki.mx1, name="mx1", host="127.0.0.11",
                                   **SLOW_RETRY)
        m2 = self.mxd_with_control(c, sink, cert=self.pki.mx2, name="mx2", host="127.0.0.12",
                                   **SLOW_RETRY)
        for i in range(2):
            smtp_send(m1.host, m1.port, f"one-{i}")
        for i in range(3):
            smtp_send(m2.host, m2.port, f"two-{i}")
        ids1, ids2 = self.deferred(m1, 2), self.deferred(m2, 3)

        # Both hosts' queues, as text and as JSON.
        out = self.mailctl(c, "queue", "list").stdout
        self.assertIn("-- 5 messages queued on 2 hosts", out)
        for i in ids1:
            self.assertIn(f"{i}  host {MX1}", out)
        for i in ids2:
            self.assertIn(f"{i}  host {MX2}", out)
        self.assertIn("from: <sender@example.test>", out)
        self.assertIn("to:   <rcpt@example.test>", out)
        hosts, _ = self.queue_json(c, "list")
        self.assertEqual(sorted(hosts), [MX1, MX2])
        self.assertEqual((hosts[MX1]["total"], hosts[MX2]["total"]), (2, 3))
        self.assertEqual(sorted(m["id"] for m in hosts[MX1]["messages"]), ids1)
        self.assertEqual(sorted(m["id"] for m in hosts[MX2]["messages"]), ids2)
        msg = hosts[MX1]["messages"][0]
        self.assertEqual((msg["sender"], msg["recipients"], msg["attempts"]),
                         ("sender@example.test", ["rcpt@example.test"], 1))
        self.assertGreater(msg["size"], 200)
        self.assertGreater(msg["next_attempt_unix"], time.time() + 300)

        # One host only; a bounded listing says how many it left out.
        hosts, _ = self.queue_json(c, "list", "--host", MX1)
        self.assertEqual(sorted(hosts), [MX1])
        hosts, _ = self.queue_json(c, "list", "--host", MX2, "--max", "1")
        self.assertEqual((len(hosts[MX2]["messages"]), hosts[MX2]["truncated"]), (1, 2))
        self.assertIn(f"{MX2}: truncated, 2 more",
                      self.mailctl(c, "queue", "list", "--host", MX2, "--max", "1").stdout)

        # The heartbeat's counts, in ListHosts.
        def counted():
            h = self.list_hosts(c)
            return h if (h[MX1].queue_messages, h[MX2].queue_messages) == (2, 3) else None
        h = wait_for(counted, 15, interval=0.5, what="queue counts in ListHosts")
        self.assertLessEqual(h[MX2].queue_oldest_unix, time.time())
        self.assertGreater(h[MX2].queue_oldest_unix, time.time() - 120)

        # Drop one of mx1's: gone from the listing, mx1's spool and its own list.
        gone = ids1[0]
        out = self.mailctl(c, "queue", "drop", gone, "--host", MX1).stdout
        self.assertIn(f"{MX1}: dropped: {gone}", out)
        hosts, _ = self.queue_json(c, "list", "--host", MX1)
        self.assertEqual([m["id"] for m in hosts[MX1]["messages"]], ids1[1:])
        self.assertFalse(os.path.exists(os.path.join(self.wd, "mx1-spool", "queue", gone)))
        self.assertEqual(self.local_ids(m1), ids1[1:])
        p = self.mailctl(c, "queue", "drop", gone, "--host", MX1, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"host {MX1}: no such message: {gone}", p.stderr)

        # The next hop comes up: retry all delivers mx2's mail now, not in 10 minutes.
        sink.start()
        t0 = time.monotonic()
        out = self.mailctl(c, "queue", "retry", "all", "--host", MX2).stdout
        self.assertIn(f"{MX2}: retry scheduled: 3 messages", out)
        sink.wait_messages(3, timeout=20)
        self.assertLess(time.monotonic() - t0, 30)
        wait_for(lambda: self.local_ids(m2) == [], 15, interval=0.3, what="mx2's queue empty")
        self.assertEqual(self.local_ids(m1), ids1[1:])  # mx1 was not asked

        # A stopped host is named, the other still answers, the exit is 1.
        m2.stop()
        t0 = time.monotonic()
        p = self.mailctl(c, "queue", "list", "--wait", "3", check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stderr, rf"host {MX2}: not connected to controld "
                                   r"\(last seen \d+s ago\)")
        self.assertIn(f"{ids1[1]}  host {MX1}", p.stdout)
        self.assertIn("-- 1 message queued on 1 host (some hosts did not answer)", p.stdout)
        self.assertLess(time.monotonic() - t0, 15)
        hosts, p = self.queue_json(c, "list", "--wait", "2", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertFalse(hosts[MX2]["ok"])
        self.assertIn("not connected to controld", hosts[MX2]["error"])
        self.assertEqual(hosts[MX1]["total"], 1)

        # A host that took the command and is stuck on it says so.
        qmgr = [p for p in m1.pids() if self.comm(p) == "mxd-qmgr"]
        self.assertEqual(len(qmgr), 1)
        os.kill(qmgr[0], signal.SIGSTOP)
        try:
            p = self.mailctl(c, "queue", "list", "--host", MX1, "--wait", "2", check=False)
        finally:
            os.kill(qmgr[0], signal.SIGCONT)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"host {MX1}: did not answer within 2 s", p.stderr)
        hosts, _ = self.queue_json(c, "list", "--host", MX1)
        self.assertEqual([m["id"] for m in hosts[MX1]["messages"]], ids1[1:])

    @staticmethod
    def comm(pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip()
        except OSError:
            return ""

    def test_unknown_host_and_bad_requests_are_refused(self):
        c = self.controld()
        p = self.mailctl(c, "queue", "list", "--host", "nosuch.test", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown host: nosuch.test", p.stderr)
        p = self.mailctl(c, "queue", "drop", "../etc", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("message id", p.stderr)
        p = self.mailctl(c, "queue", "list", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no host seen in the last hour", p.stderr)


if __name__ == "__main__":
    cptest.main()
