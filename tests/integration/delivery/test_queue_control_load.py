#!/usr/bin/python3
"""Queue control while 200 messages flow to a slow next hop (a
CountingSink that waits 1 s before answering each final dot):

  * `mxd -c FILE queue list` answers within a few seconds and lists the
    mail still queued;
  * `queue drop ID` of a queued message removes it: it is never delivered
    afterwards (a transaction of it that had begun before the drop may end;
    the scheduler cannot take back what an agent already sends);
  * `queue retry all` sends at once what waits for a retry: 5 messages
    whose recipient the next hop refused with 451 at first (retry interval
    ten minutes);
  * the rest all arrive, each once, in parallel (well under the 200 s one
    connection at a time would take)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, ids  # noqa: E402
import mxtest  # noqa: E402

RCPT = f"rcpt@{LOCAL_DOMAIN}"
FLAKY = f"flaky@{LOCAL_DOMAIN}"
RETRY_SEC = 600
LIST_BOUND = 5   # seconds


class QueueControlLoadTest(pooltest.PoolTestCase):
    def timed_list(self, m):
        t0 = time.monotonic()
        rc, out, err = m.queue("list")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertLess(took, LIST_BOUND, f"queue list took {took:.1f}s under load")
        return out

    def test_list_drop_retry_while_mail_flows(self):
        sink = self.counting_sink(eod_delay=1, tempfail_rcpts=[FLAKY])
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 10, "initial_concurrency": 10,
                           "retry_min": RETRY_SEC, "retry_max": RETRY_SEC})
        flaky = ids("flaky", 5)
        bulk = ids("bulk", 200)
        self.submit(m, [(i, [FLAKY]) for i in flaky])
        qids = self.submit(m, [(i, [RCPT]) for i in bulk])
        t_sent = time.monotonic()

        # Under load: listed, answered quickly. The victim of the drop: in
        # the middle of what the next hop has not seen yet, far from the
        # deliveries in flight whichever end of the queue goes first.
        out = self.timed_list(m)
        listed = [r["id"] for r in self.queue_list(m)[0]]
        seen = {t.msg_id for t in sink.txns}
        unseen = [i for i in bulk if i not in seen and qids[i] in listed]
        self.assertGreater(len(unseen), 20, f"too little mail waits to test: {sink.summary()}")
        victim_id = unseen[len(unseen) // 2]
        victim = qids[victim_id]
        self.assertIn(victim, out)

        t0 = time.monotonic()
        rc, out, err = m.queue("drop", victim)
        t_drop = time.monotonic()
        self.assertEqual(rc, 0, err)
        self.assertIn(f"dropped: {victim}", out)
        self.assertLess(t_drop - t0, LIST_BOUND, "queue drop took too long under load")
        m.wait_event("dropped", timeout=10, id=victim, by="queue-control")
        self.assertNotIn(victim, self.timed_list(m))

        # The flaky messages wait for their retry, ten minutes away.
        mxtest.wait_for(lambda: len({r["id"] for r in m.events("deferred", rcpt=f"<{FLAKY}>")})
                        == len(flaky), 60, interval=0.2, what="the flaky messages deferred")
        with sink.lock:
            sink.tempfail_rcpts.clear()
        rc, out, err = m.queue("retry", "all")
        self.assertEqual(rc, 0, err)
        self.assertIn("retry scheduled:", out)
        sink.wait_kept(flaky, 60)

        rest = [i for i in bulk if i != victim_id]
        sink.wait_kept(rest, 120)
        self.assertLess(time.monotonic() - t_sent, 120)
        time.sleep(2)
        copies = sink.copies_by_id()
        self.assertEqual({i: copies.get(i) for i in rest + flaky},
                         {i: 1 for i in rest + flaky})
        late = [t for t in sink.txns if t.msg_id == victim_id and t.t_mail > t_drop]
        self.assertEqual(late, [], "the dropped message was sent after the drop")
        self.assertLessEqual(copies.get(victim_id, 0), 1)
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")


if __name__ == "__main__":
    mxtest.main()
