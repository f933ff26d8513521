#!/usr/bin/python3
"""SIGKILL in the delivery pool loses nothing and duplicates at most what
was in flight:

  * a delivery agent (`mxd-smtp`, child of `mxd-qmgr`) killed while its
    next hop holds the reply to the final dot: the message is delivered
    again later (a new transaction answered 250 after the kill); the next
    hop has it once or twice (the held copy may have been kept), never zero
    times; mxd-qmgr itself lives on;
  * the scheduler (`mxd-qmgr`) killed during a load of 50 messages: the
    master starts a new one, which recovers the queue from the spool; all
    50 arrive, no message more than twice, and no more duplicates than
    deliveries could have been in flight (destination_concurrency)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, agent_pids, ids, qmgr_pid  # noqa: E402
import mxtest  # noqa: E402

RCPT = f"rcpt@{LOCAL_DOMAIN}"
IN_FLIGHT = 5   # destination_concurrency of the scheduler test


class AgentKillTest(pooltest.PoolTestCase):
    def test_agent_killed_mid_transaction_message_delivered_later(self):
        sink = self.counting_sink(hold=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop})
        self.submit(m, [("held", [RCPT])])
        sink.wait(sink.holding.is_set, 30, "the transaction held at the final dot")
        qmgr = mxtest.wait_for(lambda: qmgr_pid(m), 10, what="mxd-qmgr, a child of the master")
        agents = mxtest.wait_for(lambda: agent_pids(m), 10, what="an mxd-smtp agent of mxd-qmgr")
        t_kill = time.monotonic()
        for pid in agents:
            os.kill(pid, signal.SIGKILL)

        sink.wait(lambda: [t for t in sink.kept("held") if not t.held], 60,
                  "the message delivered again after the kill")
        time.sleep(3)
        again = [t for t in sink.kept("held") if not t.held]
        self.assertGreater(again[0].t_mail, t_kill)
        self.assertIn(len(sink.kept("held")), (1, 2), sink.txns)
        self.assertEqual(len(again), 1, f"delivered more than once after the kill: {sink.txns}")
        self.assertEqual(qmgr_pid(m), qmgr, "mxd-qmgr did not survive its agent's death")
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")

    def test_scheduler_killed_under_load_restarted_nothing_lost(self):
        sink = self.counting_sink(eod_delay=0.3)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": IN_FLIGHT})
        old = mxtest.wait_for(lambda: qmgr_pid(m), 10, what="mxd-qmgr, a child of the master")
        msgs = ids("load", 50)
        self.submit(m, [(i, [RCPT]) for i in msgs])
        sink.wait(lambda: len(sink.copies_by_id()) >= 10, 60, "10 messages delivered")
        os.kill(old, signal.SIGKILL)
        new = mxtest.wait_for(lambda: (qmgr_pid(m) or old) != old and qmgr_pid(m), 30,
                              what="a new mxd-qmgr started by the master")
        self.assertTrue(mxtest.alive(m.pid), "the master died")
        sink.wait_kept(msgs, 120)
        time.sleep(3)
        copies = sink.copies_by_id()
        self.assertEqual(sorted(copies), msgs)
        self.assertLessEqual(max(copies.values()), 2, copies)
        extra = sum(copies.values()) - len(msgs)
        self.assertLessEqual(extra, IN_FLIGHT, f"{extra} duplicates: {copies}")
        self.assertEqual(qmgr_pid(m), new)
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")


if __name__ == "__main__":
    mxtest.main()
