#!/usr/bin/python3
"""SIGKILL during delivery loses nothing.

mxd delivers to next hops that are real SMTP servers in this process
(HoldingHop): they take MAIL, RCPT and the whole DATA, then may hold their
reply to the final dot for as long as the test likes -- the moment a kill
hurts most, with the message on the wire and mxd waiting for the verdict.

  * the whole mxd (master, workers, scheduler) SIGKILLed while its
    scheduler waits for the reply to DATA, restarted on the same
    spool: the message arrives afterwards, and the spool drains;
  * the same, when the next hop had already stored the message and only its
    250 was lost: the message arrives twice, which is allowed (RFC 5321
    6.1, the RFC 1047 window), never zero times;
  * only the scheduler SIGKILLed in the middle of a message whose
    recipients sit at two next hops, one of which already took its share:
    mxd's master starts a new scheduler, which finishes the job;
  * a spool file damaged while its message waits for a retry: moved to
    corrupt/ unchanged (kept for the operator), never delivered, never lost,
    and the messages beside it are delivered.

Every wait is bounded (mxtest.wait_for); outtest's watchdog cleans up after
a test process that is itself killed.
"""

import os
import re
import signal
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402  (puts ../mxtest.py on the path, starts the watchdog)
from outtest import SENDER, pick_host  # noqa: E402

import mxtest  # noqa: E402
from mxtest import LCList, check_body, make_body  # noqa: E402


# ---------------------------------------------------------------- a next hop that can stall

class HoldingHop(outtest.SmtpTestServer):
    """A small SMTP server on (host, port) in threads of the test process.

    It takes MAIL, RCPT and DATA one command at a time (no PIPELINING). At
    the final dot of a transaction it may hold its reply:

      hold          number of transactions still to hold (counts down)
      store_first   a held transaction is stored before the reply is held
                    (the next hop has the message, the sender does not know)
      tempfail      every RCPT gets 451 (a next hop that is up but busy)

    A held transaction waits until the client goes away (its process was
    killed) or release() is called. Lists, each entry (mail_from, [rcpts],
    data): `stored` what this server keeps (answered 250, or store_first);
    `held` every transaction whose reply was held; `cut` those held ones
    whose client vanished before any reply. `peers`: client (ip, port) of
    every connection, in order."""

    banner = "ESMTP holding hop"
    no_rcpts_reply = "503 5.5.1 no valid recipients"
    end_sessions_on_stop = True

    def __init__(self, name, host=None, port=None):
        self.name = name
        self.hold, self.store_first, self.tempfail = 0, False, False
        self.stored, self.held, self.cut = [], [], []
        self.holding = threading.Event()   # a transaction is being held now
        self.released = threading.Event()
        super().__init__(host or pick_host(), port or 0)

    def release(self):
        self.released.set()

    def stop(self):
        self.stopping = True   # before the release: a held session then ends
        self.released.set()
        super().stop()

    def copies(self, rcpt):
        """How many stored messages name rcpt."""
        with self.lock:
            return sum(rcpt in r for _, r, _ in self.stored)

    def _hold_reply(self, conn):
        """Wait, bounded, until the client is gone (True) or release()."""
        deadline = time.monotonic() + 120
        conn.settimeout(0.1)
        while not self.released.is_set() and time.monotonic() < deadline:
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        conn.settimeout(30)
        return False

    def smtp_RCPT(self, s, cmd):
        if self.tempfail:
            s.send("451 4.3.0 busy, try again later")
        else:
            super().smtp_RCPT(s, cmd)

    def message(self, s, data):
        txn = (s.mail_from, list(s.rcpts), data)
        with self.lock:
            hold = self.hold > 0
            if hold:
                self.hold -= 1
                self.held.append(txn)
                if self.store_first:
                    self.stored.append(txn)
        if hold:
            self.holding.set()
            gone = self._hold_reply(s.conn)
            self.holding.clear()
            if gone:
                if not self.store_first:
                    with self.lock:
                        self.cut.append(txn)
                return None
        if not hold or not self.store_first:
            with self.lock:
                self.stored.append(txn)
        return "250 2.0.0 Ok: stored"


# ---------------------------------------------------------------- tests

def msg_id_of(data):
    return check_body(data)[0]


class OutboundCrashTest(mxtest.MxTestCase):

    def setUp(self):
        super().setUp()
        outtest.watch_dir(self.wd)

    def hop(self, name):
        h = HoldingHop(name)
        self.addCleanup(h.stop)
        return h

    def crash_mxd(self, domains):
        """mxd whose local domains go to the given next hops:
        domains = {domain: HoldingHop}."""
        cfg = self.mxd_config()
        cfg["domains"] = LCList({"name": d, "next_hop": h.next_hop} for d, h in domains.items())
        cfg["delivery"] = {"retry_min": 1, "retry_max": 2}
        return self.mxd(cfg)

    def submit(self, m, rcpts, msg_id, size=200000):
        """One message; returns its bytes. The body checks itself
        (mxtest.make_body), so a copy anywhere can be told intact."""
        data = make_body(msg_id, size=size)
        replies = mxtest.send_message(m.host, m.port, SENDER, rcpts, data)
        self.assertEqual(replies[-2].code, 250, f"mxd did not take the message: {replies}")
        return data

    def queue(self, m):
        return os.listdir(os.path.join(m.config["spool_dir"], "queue"))

    def wait_queue_empty(self, m, timeout=20, corrupt_ok=False):
        """queue/ drains; unless told otherwise, nothing went to corrupt/
        (a kill must never leave a file that mxd cannot read)."""
        mxtest.wait_for(lambda: not self.queue(m), timeout, interval=0.1,
                        what=f"spool queue/ empty (holds {self.queue(m)})")
        if not corrupt_ok:
            corrupt = os.path.join(m.config["spool_dir"], "corrupt")
            self.assertEqual(os.listdir(corrupt) if os.path.isdir(corrupt) else [], [],
                             "spool files judged corrupt")

    def delivery_pid(self, m, after=0):
        """The pid of mxd's scheduler: the one that logged
        event=delivery_started (the after-th such line or later), checked
        to be a child of the master."""
        def find():
            recs = m.events("delivery_started")
            return recs[after] if len(recs) > after else None
        rec = mxtest.wait_for(find, 10, interval=0.1, what="event=delivery_started")
        pid = int(rec["pid"])
        self.assertIn(pid, mxtest._children(m.pid), f"delivery pid {pid} is no child of mxd")
        return pid

    def assertIntact(self, hop, msg_id):
        for _, _, data in hop.stored:
            got, rest = mxtest.split_received(data)
            self.assertIsNotNone(got, f"{hop.name}: a copy without mxd's Received:")
            self.assertEqual(check_body(rest), (msg_id, True), f"{hop.name}: a damaged copy")

    def kill_whole_mxd(self, m):
        """SIGKILL to master, workers and scheduler at once (the
        process group, as in test_crash.py); returns once all are gone."""
        pids = m.pids()
        self.assertGreaterEqual(len(pids), 3, f"mxd is not master + workers + delivery: {pids}")
        m.killpg(signal.SIGKILL)
        m.wait(10)
        mxtest.wait_for(lambda: not any(mxtest.alive(p) for p in pids), 10,
                        what=f"every mxd process gone after SIGKILL ({pids})")
        mxtest.wait_for(lambda: not mxtest._proc_net_listening(m.host, m.port), 10,
                        what="mxd's listener gone after SIGKILL")

    # -- (a) the whole mxd

    def test_sigkill_of_whole_mxd_during_data_then_restart_delivers_once(self):
        dom = f"crash-{uuid.uuid4().hex[:8]}.test"
        hop = self.hop(f"hop.{dom}")
        hop.hold = 1
        m = self.crash_mxd({dom: hop})
        msg_id = f"wholekill-{uuid.uuid4().hex[:8]}"
        rcpt = f"user@{dom}"
        self.submit(m, [rcpt], msg_id)
        self.assertTrue(hop.holding.wait(20), "mxd never reached the end of DATA at the next hop")
        self.kill_whole_mxd(m)
        mxtest.wait_for(lambda: hop.cut, 10, what="the next hop noticing its client is gone")
        self.assertEqual(hop.stored, [], "the held transaction was stored")
        self.assertEqual(len(self.queue(m)), 1, "the message is not in queue/ after the kill")

        m.start()
        mxtest.wait_for(lambda: hop.stored, 20, what="the message at the next hop after the restart")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.wait_queue_empty(m)
        # The next hop never said 250 to the first copy: it is not its
        # message, so exactly one copy is right.
        time.sleep(0.5)
        self.assertEqual(len(hop.stored), 1, f"copies at the next hop: {len(hop.stored)}")
        self.assertEqual(hop.stored[0][:2], (SENDER, [rcpt]))
        self.assertIntact(hop, msg_id)
        self.assertEqual(m.events("bounced"), [])

    def test_sigkill_of_whole_mxd_after_next_hop_stored_gives_duplicate_not_loss(self):
        # The next hop wrote the message down and its 250 never reached
        # mxd, which was killed while waiting for it. mxd cannot know: it
        # must send again. Two copies is the expected outcome here (RFC
        # 5321 6.1 accepts a duplicate over a loss); one would mean mxd
        # forgot a message it never got a 250 for.
        dom = f"crashdup-{uuid.uuid4().hex[:8]}.test"
        hop = self.hop(f"hop.{dom}")
        hop.hold, hop.store_first = 1, True
        m = self.crash_mxd({dom: hop})
        msg_id = f"lostack-{uuid.uuid4().hex[:8]}"
        rcpt = f"user@{dom}"
        self.submit(m, [rcpt], msg_id)
        self.assertTrue(hop.holding.wait(20), "mxd never reached the end of DATA at the next hop")
        self.kill_whole_mxd(m)
        m.start()
        mxtest.wait_for(lambda: len(hop.stored) >= 2, 20,
                        what="the message sent again after the restart")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.wait_queue_empty(m)
        time.sleep(0.5)
        self.assertEqual(hop.copies(rcpt), 2, "copies at the next hop")
        self.assertIntact(hop, msg_id)

    # -- (b) only the scheduler

    def test_sigkill_of_delivery_process_mid_message_restarted_and_finished(self):
        # One message, four recipients at two next hops, delivered by two
        # agents at once: A takes its two recipients (250) while B holds its
        # reply to DATA, and the scheduler (its agents with it) is killed
        # there.
        tag = uuid.uuid4().hex[:8]
        dom_a, dom_b = f"a-{tag}.test", f"b-{tag}.test"
        hop_a, hop_b = self.hop(f"hop.{dom_a}"), self.hop(f"hop.{dom_b}")
        hop_b.hold = 1
        m = self.crash_mxd({dom_a: hop_a, dom_b: hop_b})
        rcpts_a = [f"u1@{dom_a}", f"u2@{dom_a}"]
        rcpts_b = [f"v1@{dom_b}", f"v2@{dom_b}"]
        msg_id = f"delivkill-{tag}"
        self.submit(m, rcpts_a + rcpts_b, msg_id)

        self.assertTrue(hop_b.holding.wait(20), "mxd never reached the end of DATA at hop B")
        mxtest.wait_for(lambda: hop_a.stored, 20, what="hop A taking its recipients")
        self.assertEqual([r for _, r, _ in hop_a.stored], [rcpts_a],
                         "hop A's one transaction, while B holds its DATA")
        old = self.delivery_pid(m)
        workers = [p for p in mxtest._children(m.pid) if p != old]
        os.kill(old, signal.SIGKILL)

        # The master notices and starts a new scheduler; the rest of
        # mxd is untouched.
        died = m.wait_event("child_died", timeout=10, role="delivery")
        self.assertEqual((died.get("pid"), died.get("signal")), (str(old), "9"), died)
        new = self.delivery_pid(m, after=1)
        self.assertNotEqual(new, old)
        self.assertTrue(m.running(), "the master died with its scheduler")
        self.assertTrue(all(mxtest.alive(p) for p in workers), "workers died with the scheduler")
        mxtest.wait_for(lambda: hop_b.cut, 10, what="hop B noticing its client is gone")

        mxtest.wait_for(lambda: hop_b.stored, 20, what="the message at hop B after the restart")
        for r in rcpts_a + rcpts_b:
            m.wait_event("delivered", rcpt=f"<{r}>", pred=lambda e: e["pid"] == str(new), timeout=10)
        self.wait_queue_empty(m)
        time.sleep(0.5)

        # B's recipients: its first transaction never got a 250, so once.
        for r in rcpts_b:
            self.assertEqual(hop_b.copies(r), 1, f"copies for {r} at hop B")
        # A's recipients: A said 250 before the kill, but mxd writes down
        # which recipients are done only when the whole attempt of the
        # message is over (every job answered, qmgr_attempt_finish), so the
        # new scheduler sends A's share again. A duplicate is
        # allowed; a loss is not. At most one extra copy per kill.
        for r in rcpts_a:
            n = hop_a.copies(r)
            self.assertIn(n, (1, 2), f"copies for {r} at hop A")
        print(f"\nhop A copies per recipient after a kill between hops: "
              f"{[hop_a.copies(r) for r in rcpts_a]}", file=sys.stderr)
        self.assertIntact(hop_a, msg_id)
        self.assertIntact(hop_b, msg_id)
        # Nobody got a recipient that is not theirs.
        self.assertTrue(all(set(r) <= set(rcpts_a) for _, r, _ in hop_a.stored), hop_a.stored)
        self.assertTrue(all(set(r) <= set(rcpts_b) for _, r, _ in hop_b.stored), hop_b.stored)

        # The restarted mxd still takes and delivers mail.
        msg2 = f"after-{tag}"
        self.submit(m, [f"v3@{dom_b}"], msg2, size=500)
        mxtest.wait_for(lambda: hop_b.copies(f"v3@{dom_b}"), 20, what="a new message after recovery")
        self.wait_queue_empty(m)

    # -- (c) a spool file damaged while queued

    def test_spool_file_damaged_while_queued_moves_to_corrupt_and_is_kept(self):
        dom = f"corrupt-{uuid.uuid4().hex[:8]}.test"
        hop = self.hop(f"hop.{dom}")
        hop.tempfail = True   # up, but every recipient deferred for now
        m = self.crash_mxd({dom: hop})
        rcpt = f"user@{dom}"
        ids = {k: f"{k}-{uuid.uuid4().hex[:8]}" for k in ("torn", "envelope", "good")}
        for msg_id in ids.values():
            self.submit(m, [rcpt], msg_id, size=5000)
        spool = m.config["spool_dir"]
        queue = os.path.join(spool, "queue")
        mxtest.wait_for(lambda: len(m.events("deferred", rcpt=f"<{rcpt}>")) >= 3, 20,
                        what="all three messages deferred once")

        files = {}
        for name in os.listdir(queue):
            with open(os.path.join(queue, name), "rb") as f:
                data = f.read()
            msg_id = re.search(rb"X-Test-Id: (\S+)\r\n", data).group(1).decode()
            files[msg_id] = (name, data)
        self.assertEqual(set(files), set(ids.values()), "queue/ does not hold the three messages")

        # Damage two files as a failing disk or a careless tool would: one
        # loses its last 1000 bytes, the other gets a recipient line that is
        # no longer <...>. Each replaced whole (rename), owner and mode kept.
        planted = {}
        for kind in ("torn", "envelope"):
            name, data = files[ids[kind]]
            if kind == "torn":
                bad = data[:-1000]
            else:
                bad = data.replace(f"rcpt <{rcpt}>".encode(), f"rcpt {rcpt}>".encode(), 1)
                self.assertNotEqual(bad, data, "no rcpt line in the spool file to damage")
            path = os.path.join(queue, name)
            st = os.stat(path)
            tmp = os.path.join(spool, f".damage-{name}")
            with open(tmp, "wb") as f:
                f.write(bad)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, st.st_mode & 0o7777)
            os.rename(tmp, path)
            planted[name] = bad

        corrupt_dir = os.path.join(spool, "corrupt")
        mxtest.wait_for(lambda: set(planted) <= set(os.listdir(corrupt_dir)), 20,
                        what=f"both damaged files in corrupt/ (have {os.listdir(corrupt_dir)})")
        for name, bad in planted.items():
            with open(os.path.join(corrupt_dir, name), "rb") as f:
                self.assertEqual(f.read(), bad, f"corrupt/{name} is not the file as it was")
            m.wait_event("spool_corrupt", id=name, timeout=5)
        self.assertEqual(sorted(os.listdir(queue)), [files[ids["good"]][0]])

        # The next hop takes mail again: the intact message goes, the
        # damaged ones stay set aside.
        hop.tempfail = False
        mxtest.wait_for(lambda: hop.stored, 20, what="the intact message at the next hop")
        self.wait_queue_empty(m, corrupt_ok=True)
        time.sleep(0.5)
        self.assertEqual([msg_id_of(mxtest.split_received(d)[1]) for _, _, d in hop.stored],
                         [ids["good"]])
        self.assertIntact(hop, ids["good"])
        self.assertEqual(sorted(os.listdir(corrupt_dir)), sorted(planted))
        self.assertTrue(m.running(), "mxd died on damaged spool files")
        self.assertEqual(m.events("child_died"), [], "a process died on damaged spool files")


if __name__ == "__main__":
    mxtest.main()
