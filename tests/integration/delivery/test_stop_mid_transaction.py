#!/usr/bin/python3
"""A stop (or a reload, which restarts the scheduler) in the middle of a
transaction: the scheduler waits a while for its agents, then ends the
transaction, and the message is tried again as soon as mxd runs again -
not after delivery.retry_min, since the destination did nothing wrong."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN  # noqa: E402
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


if __name__ == "__main__":
    mxtest.main()
