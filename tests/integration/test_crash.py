#!/usr/bin/python3
"""Crash safety: clients stream messages while mxd is killed with SIGKILL at
a random moment; after a restart on the same spool every message that got a
250 reaches the next hop (duplicates allowed), and nothing that arrives is
corrupted."""

import os
import random
import signal
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, check_body, make_body  # noqa: E402

TOTAL = 300
CLIENTS = 4
ROUNDS = 3  # later crashes hit a spool that already recovered once


class Streamer:
    """CLIENTS threads sending distinct messages until told to stop or until
    the server goes away. acked maps message id -> the 250 text."""

    def __init__(self, m, ids, rnd):
        self.m = m
        self.ids = list(ids)
        self.rnd = rnd
        self.lock = threading.Lock()
        self.acked = {}
        self.failed = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(CLIENTS)]

    def next_id(self):
        with self.lock:
            return self.ids.pop(0) if self.ids else None

    def run(self):
        s = None
        try:
            while not self.stop.is_set():
                msg_id = self.next_id()
                if msg_id is None:
                    return
                # Mostly small messages, some large enough that a kill is
                # likely to land in the middle of DATA.
                size = self.rnd.choice([300, 2000, 20000, 150000])
                body = make_body(msg_id, size=size)
                try:
                    if s is None:
                        s = smtplib.SMTP(self.m.host, self.m.port, timeout=10,
                                         local_hostname="crash.client.test")
                    s.sendmail(f"sender@{LOCAL_DOMAIN}", [f"rcpt@{LOCAL_DOMAIN}"], body)
                    with self.lock:
                        self.acked[msg_id] = True
                except (smtplib.SMTPException, OSError):
                    with self.lock:
                        self.failed.append(msg_id)
                    s = None
                    return  # the server is gone (or refused): stop this client
        finally:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def start(self):
        for t in self.threads:
            t.start()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)


class CrashTest(mxtest.MxTestCase):
    def test_sigkill_while_streaming(self):
        seed = int(os.environ.get("MXTEST_SEED", random.randrange(1 << 30)))
        print(f"\ncrash test seed {seed} (MXTEST_SEED to repeat)", file=sys.stderr)
        rnd = random.Random(seed)
        sink = self.new_sink()
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        all_ids = [f"crash{seed:x}-{i:04d}" for i in range(TOTAL)]
        acked = set()
        per_round = TOTAL // ROUNDS
        for rnd_no in range(ROUNDS):
            ids = all_ids[rnd_no * per_round:(rnd_no + 1) * per_round]
            streamer = Streamer(m, ids, rnd)
            kill_at = rnd.randint(per_round // 10, per_round * 3 // 4)
            streamer.start()
            mxtest.wait_for(lambda: len(streamer.acked) >= kill_at
                            or not any(t.is_alive() for t in streamer.threads),
                            90, what=f"{kill_at} acknowledged messages")
            time.sleep(rnd.random() * 0.05)
            # The whole process group: workers and delivery must die too.
            m.killpg(signal.SIGKILL)
            m.wait(10)
            streamer.stop.set()
            self.assertTrue(streamer.join(30), "client threads hung after the kill")
            acked |= set(streamer.acked)
            print(f"round {rnd_no}: killed after {len(streamer.acked)} acks "
                  f"({len(streamer.failed)} transactions cut)", file=sys.stderr)
            self.assertGreaterEqual(len(streamer.acked), kill_at,
                                    "clients stopped before the kill: "
                                    f"{streamer.failed[:3]}\n{m.log_tail(20)}")
            mxtest.wait_for(lambda: not mxtest._proc_net_listening(m.host, m.port),
                            10, what="listener gone after SIGKILL")
            m.start()

        def missing():
            seen = {check_body(x.data)[0] for x in sink.messages()}
            return acked - seen
        try:
            mxtest.wait_for(lambda: not missing(), 60, interval=0.3,
                            what="every acknowledged message at the next hop")
        except TimeoutError:
            lost = sorted(missing())
            self.fail(f"{len(lost)} of {len(acked)} acknowledged messages never "
                      f"arrived, e.g. {lost[:5]}")

        messages = sink.messages()
        corrupt = [x.name for x in messages if not check_body(x.data)[1]]
        self.assertEqual(corrupt, [], "corrupted messages at the next hop")
        for x in messages:
            received, rest = x.split_received()
            self.assertIsNotNone(received, f"{x.name} lacks mxd's Received:")
            self.assertTrue(rest.startswith(b"From: "), f"{x.name}: two Received: headers")
        ids = [check_body(x.data)[0] for x in messages]
        dups = len(ids) - len(set(ids))
        print(f"{len(acked)} acknowledged, {len(set(ids))} distinct delivered, "
              f"{dups} duplicates", file=sys.stderr)
        unknown = set(ids) - set(all_ids)
        self.assertEqual(unknown, set())

        # The spool drains and nothing was judged corrupt.
        spool = m.config["spool_dir"]
        mxtest.wait_for(lambda: not os.listdir(os.path.join(spool, "queue")), 30,
                        what="spool queue/ empty after delivery")
        corrupt_dir = os.path.join(spool, "corrupt")
        if os.path.isdir(corrupt_dir):
            self.assertEqual(os.listdir(corrupt_dir), [], "spool files judged corrupt")


class SpoolRecoveryTest(mxtest.MxTestCase):
    """docs/mxd.md, Spool: at start tmp/ is emptied, queue/ is delivered and
    files that do not parse go to corrupt/, kept."""

    def test_recovery_sets_aside_damaged_files(self):
        sink = self.new_sink(start=False)
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        good_id = "spool-good"
        with smtplib.SMTP(m.host, m.port, timeout=10) as s:
            s.sendmail(f"sender@{LOCAL_DOMAIN}", [f"rcpt@{LOCAL_DOMAIN}"],
                       make_body(good_id, size=5000))
        self.assertEqual(m.stop(), 0)
        spool = m.config["spool_dir"]
        queue = os.path.join(spool, "queue")
        (name,) = os.listdir(queue)
        with open(os.path.join(queue, name), "rb") as f:
            data = f.read()
        st = os.stat(os.path.join(queue, name))
        # A torn copy (as a broken disk or a foreign tool could leave), a
        # file that is not a spool file at all, and a receive in progress.
        planted = {
            os.path.join(queue, name[:-1] + ("0" if name[-1] != "0" else "1")):
                data[:len(data) * 2 // 3].replace(good_id.encode(), b"spool-torn"),
            os.path.join(queue, "not-a-spool-file"): b"garbage\n" * 10,
            os.path.join(spool, "tmp", name[:-2] + "ff"): data[:100],
        }
        for path, content in planted.items():
            with open(path, "wb") as f:
                f.write(content)
            os.chown(path, st.st_uid, st.st_gid)
            os.chmod(path, 0o600)
        sink.start()
        m.start()
        got = sink.wait_message(lambda x: check_body(x.data)[0] == good_id, timeout=20)
        self.assertTrue(check_body(got.data)[1])
        time.sleep(2)
        self.assertTrue(m.running(), "mxd died on damaged spool files")
        for x in sink.messages():
            self.assertEqual(check_body(x.data), (good_id, True),
                             f"damaged spool file delivered: {x.data[:300]!r}")
        self.assertEqual(os.listdir(os.path.join(spool, "tmp")), [],
                         "tmp/ not emptied at start")
        corrupt = sorted(os.listdir(os.path.join(spool, "corrupt")))
        self.assertEqual(len(corrupt), 2, f"corrupt/ holds {corrupt}")
        self.assertEqual(os.listdir(queue), [], "queue/ not drained")


if __name__ == "__main__":
    mxtest.main()
