#!/usr/bin/python3
"""A queue of 100,000 deferred messages (issue 10, item 6), on a real mxd:

  * restart recovery: mxd started on a spool holding N deferred messages
    (written beforehand by tests/bench/queue/spoolfill through mxd's spool
    API) lists all N with `queue list`, keeps their schedule (none is
    tried before its time), and delivers the few that are due at once;
  * `mxd -c FILE queue list` prints all N (postqueue -p prints everything)
    and exits 0: the answer, tens of MB, is not cut by a deadline;
  * delivery goes on while a big listing is served: a message submitted
    while a slow client reads the listing reaches the next hop before the
    listing ends.

N is 100,000 (MXTEST_QUEUE_N overrides it): about a minute on a loaded
2-core machine, the ASan build included. The figures (fill, recovery,
listing, scheduler RSS) are printed; tests/bench/queue measures them."""

import os
import pwd
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN  # noqa: E402
import mxtest  # noqa: E402

N = int(os.environ.get("MXTEST_QUEUE_N", "100000"))
DUE = 5                 # messages due at once in the restarted queue
DEFER_SEC = 3600        # the others' next attempt
RCPT = f"rcpt@{LOCAL_DOMAIN}"
RECOVERY_BOUND = 240    # seconds: scan, and the first full listing
LIST_BOUND = 240        # seconds for the command-line listing of N
SPOOLFILL = os.path.join(os.path.dirname(mxtest.MXD_BIN), "spoolfill")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class SlowLister(threading.Thread):
    """LIST over the socket as controld would send it, read slowly (64 KiB
    every 50 ms: never silent for long, but slower than mxd writes)."""

    def __init__(self, path, pause=0.05):
        super().__init__(daemon=True)
        self.path, self.pause = path, pause
        self.data = b""
        self.error = None
        self.t_first = self.t_end = None

    def run(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(60)
                s.connect(self.path)
                s.sendall(b"LIST\n")
                parts = []
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    if self.t_first is None:
                        self.t_first = time.monotonic()
                    parts.append(chunk)
                    time.sleep(self.pause)
                self.data = b"".join(parts)
        except OSError as e:
            self.error = e
        self.t_end = time.monotonic()

    def records(self):
        lines = self.data.decode().splitlines()
        return lines[-1] if lines else "", [x for x in lines if x.startswith("MSG ")]


class Queue100kTest(pooltest.PoolTestCase):
    def fill(self, spool, n, due_in, tag):
        """n messages written into the spool: ({queue id: X-Test-Id}, seconds)."""
        pw = pwd.getpwnam(mxtest.RUN_USER) if mxtest.IS_ROOT else None
        argv = [SPOOLFILL, "-d", spool, "-n", str(n), "-t", RCPT, "-D", str(due_in),
                "-T", tag]
        if pw:
            argv += ["-u", str(pw.pw_uid), "-g", str(pw.pw_gid)]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        ids = dict(line.split() for line in p.stdout.splitlines())
        self.assertEqual(len(ids), n)
        return ids, time.monotonic() - t0

    def test_restart_list_and_deliver_with_100k_queued(self):
        self.assertTrue(os.access(SPOOLFILL, os.X_OK), f"not built: {SPOOLFILL}")
        sink = self.counting_sink()
        cfg = self.mxd_config(None, None, delivery={"retry_min": DEFER_SEC,
                                                     "retry_max": DEFER_SEC})
        cfg["domains"] = mxtest.LCList([{"name": LOCAL_DOMAIN, "next_hop": sink.next_hop}])
        spool = cfg["spool_dir"]
        deferred, t_fill = self.fill(spool, N, DEFER_SEC, "deferred")
        due, _ = self.fill(spool, DUE, 0, "due")
        total = N + DUE
        print(f"\nfilled {N} deferred messages in {t_fill:.1f}s", file=sys.stderr)

        # Restart recovery: everything listed, the due ones delivered.
        t0 = time.monotonic()
        m = self.mxd(cfg)
        sock = os.path.join(spool, "queue.sock")
        mxtest.wait_for_file(sock, 30)
        first = SlowLister(sock, pause=0)
        first.run()
        t_listed = time.monotonic() - t0
        self.assertIsNone(first.error, f"first listing: {first.error}")
        last, msgs = first.records()
        self.assertTrue(last.startswith("OK "), f"listing ended with {last!r} after "
                        f"{len(msgs)} records, {len(first.data)} bytes")
        self.assertGreaterEqual(len(msgs), N, last)
        self.assertLess(t_listed, RECOVERY_BOUND)
        sink.wait_kept(due.values(), 120)
        t_due = time.monotonic() - t0
        qpid = pooltest.qmgr_pid(m)
        rss = rss_kib(qpid) if qpid else -1
        print(f"restart: all listed after {t_listed:.1f}s, due mail delivered after "
              f"{t_due:.1f}s; mxd-qmgr RSS {rss} KiB with {total} queued "
              f"({rss * 1024 / total:.0f} B/message at most)", file=sys.stderr)

        # The operator's command: every message, exit 0.
        t1 = time.monotonic()
        p = subprocess.run([mxtest.MXD_BIN, "-c", m.conf_path, "queue", "list"],
                           capture_output=True, text=True, timeout=LIST_BOUND + 60)
        t_cli = time.monotonic() - t1
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertIn(f"-- {N} messages queued", p.stdout[-200:])
        self.assertIn(sorted(deferred)[N // 2], p.stdout)
        print(f"mxd -c FILE queue list: {N} messages, {len(p.stdout)} bytes in "
              f"{t_cli:.1f}s", file=sys.stderr)

        # A slow reader: delivery goes on while its listing is served.
        slow = SlowLister(sock)
        slow.start()
        mxtest.wait_for(lambda: slow.t_first is not None or not slow.is_alive(), 60,
                        what="the listing's first bytes")
        qids = self.submit(m, [("during-list", [RCPT])])
        sink.wait_kept(["during-list"], 60)
        t_delivered = time.monotonic()
        slow.join(LIST_BOUND)
        self.assertFalse(slow.is_alive(), "the slow listing did not end")
        self.assertIsNone(slow.error, f"slow listing: {slow.error}")
        self.assertLess(t_delivered, slow.t_end,
                        "the listing ended before the message was delivered: "
                        "nothing shows that delivery went on meanwhile")
        last, msgs = slow.records()
        self.assertEqual(last, f"OK {N} messages")
        listed = {mxtest.parse_logfmt(x[4:])["id"] for x in msgs}
        self.assertEqual(listed, set(deferred))
        self.assertNotIn(qids["during-list"], listed)
        print(f"slow listing: {len(slow.data)} bytes in {slow.t_end - slow.t_first:.1f}s, "
              f"a message delivered {slow.t_end - t_delivered:.1f}s before its end",
              file=sys.stderr)

        # None of the deferred ones was tried: the schedule survived.
        self.assertEqual(sorted(sink.copies_by_id()), sorted([*due.values(), "during-list"]))


if __name__ == "__main__":
    import unittest
    unittest.main()
