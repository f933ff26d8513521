#!/usr/bin/python3
"""A stop (or a reload, which restarts the scheduler) in the middle of a
transaction: the scheduler waits a while for its agents, then ends the
transaction, and the message is tried again as soon as mxd runs again -
not after delivery.retry_min, since the destination did nothing wrong.
What was delivered meanwhile is recorded and never sent again, also when
an agent answers and exits at once."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, agent_pids, qmgr_pid  # noqa: E402
import mxtest  # noqa: E402

RCPT = f"rcpt@{LOCAL_DOMAIN}"


class StopMidTransactionTest(pooltest.PoolTestCase):
    def test_transaction_cut_by_a_stop_is_retried_at_once_after_restart(self):
        sink = self.counting_sink(hold=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop}, {"retry_min": 300, "retry_max": 600})
        self.submit(m, [("cut", [RCPT])])
        sink.wait(sink.holding.is_set, 30, "the transaction held at the final dot")
        m.stop(timeout=20)
        self.assertIsNone(m.stop_problem, m.stop_problem)
        m.start()
        t0 = time.monotonic()
        # retry_min is 300 s: only a message due at once arrives in time.
        sink.wait(lambda: [t for t in sink.kept("cut") if not t.held], 30,
                  "the message delivered soon after the restart")
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn(len(sink.kept("cut")), (1, 2), sink.txns)
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")

    def test_results_that_came_back_during_a_stop_are_recorded(self):
        # One message, two recipients, one transaction each, one at a time:
        # the first is held at the final dot, the second waits its turn.
        # The stop comes, the held one is answered 250 within the grace:
        # after the restart only the second is sent.
        a, b = f"a@{LOCAL_DOMAIN}", f"b@{LOCAL_DOMAIN}"
        sink = self.counting_sink(hold=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 1, "recipient_limit": 1,
                           "retry_min": 300, "retry_max": 600})
        self.submit(m, [("two", [a, b])])
        sink.wait(sink.holding.is_set, 30, "the first transaction held at the final dot")
        stopper = threading.Thread(target=lambda: m.stop(timeout=30))
        stopper.start()
        time.sleep(1)   # inside the scheduler's grace (half of shutdown_timeout 5 s)
        sink.release()
        stopper.join()
        self.assertIsNone(m.stop_problem, m.stop_problem)
        held = [t.rcpts for t in sink.txns if t.held][0]
        other = b if held == [a] else a
        m.start()
        sink.wait(lambda: [t for t in sink.kept() if other in t.rcpts], 30,
                  f"{other} (not tried before the stop) delivered at once after the restart")
        time.sleep(3)
        got = [t.rcpts for t in sink.kept()]
        self.assertEqual(sum(held[0] in r for r in got), 1,
                         f"{held[0]} got 250 during the stop and was sent again: {sink.txns}")
        self.assertEqual(sum(other in r for r in got), 1, sink.txns)

    def test_answer_then_exit_of_an_agent_counts(self):
        # An agent told to stop (SIGTERM) finishes its transaction, answers
        # and exits at once; the scheduler, busy for a moment, reads the
        # answer and the end together. The answer counts.
        sink = self.counting_sink(hold=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop}, {"retry_min": 300, "retry_max": 600})
        self.submit(m, [("term", [RCPT])])
        sink.wait(sink.holding.is_set, 30, "the transaction held at the final dot")
        agents = mxtest.wait_for(lambda: agent_pids(m), 10, what="an mxd-smtp agent")
        for pid in agents:
            os.kill(pid, signal.SIGTERM)
        qmgr = qmgr_pid(m)
        time.sleep(0.3)
        os.kill(qmgr, signal.SIGSTOP)
        try:
            sink.release()
            mxtest.wait_for(lambda: not any(mxtest.alive(p) for p in agents), 10,
                            what="the agent gone after its answer")
        finally:
            os.kill(qmgr, signal.SIGCONT)
        m.wait_event("delivered", rcpt=f"<{RCPT}>", timeout=10)
        self.assertEqual(m.events("deferred"), [], "a delivered recipient recorded as deferred")
        self.assertEqual(len(sink.kept("term")), 1, sink.txns)


if __name__ == "__main__":
    mxtest.main()
