#!/usr/bin/python3
"""Per-destination concurrency: mxd opens several connections at once to a
slow next hop, starting at delivery.initial_concurrency, growing with each
connection greeted and never above delivery.destination_concurrency or a
`destinations` override. Every message arrives exactly once.

The next hop is a CountingSink that waits 1 s before answering the final
dot, so deliveries overlap only when mxd runs them in parallel."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, ids  # noqa: E402
import mxtest  # noqa: E402

RCPT = f"rcpt@{LOCAL_DOMAIN}"


class ConcurrencyWindowTest(pooltest.PoolTestCase):
    def run_load(self, m, tag, n):
        msgs = ids(tag, n)
        self.submit(m, [(i, [RCPT]) for i in msgs])
        return msgs

    def assert_each_once(self, sink, m, msgs, timeout):
        sink.wait_kept(msgs, timeout)
        time.sleep(3)   # a duplicate would come now
        copies = sink.copies_by_id()
        self.assertEqual({i: copies.get(i) for i in msgs}, {i: 1 for i in msgs},
                         "a message was not delivered exactly once")
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")

    def test_window_starts_low_grows_and_stays_under_the_ceiling(self):
        # The banner comes after 1 s: until a connection is greeted the
        # window stays at its start (it grows by one per greeted connection).
        sink = self.counting_sink(eod_delay=1, greet_delay=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 8, "initial_concurrency": 2})
        msgs = self.run_load(m, "win", 60)
        # One at a time, 60 messages take a minute; in parallel about 10 s.
        sink.wait(lambda: sink.max_busy > 2, 40, "more than 2 deliveries at once")
        self.assert_each_once(sink, m, msgs, 120)
        self.assertLessEqual(sink.max_busy, 8, sink.summary())
        self.assertLessEqual(sink.opened_before_first_greeting(), 2,
                             f"the window did not start at 2: {sink.summary()}")

    def test_destinations_override_caps_one_destination(self):
        sink = self.counting_sink(eod_delay=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 10,
                           "destinations": [{"name": sink.next_hop, "concurrency": 3}]})
        msgs = self.run_load(m, "cap", 30)
        # The default window start (5) is above the override: 3 at once from
        # the start, never more.
        sink.wait(lambda: sink.max_busy >= 3, 40, "3 deliveries at once")
        self.assert_each_once(sink, m, msgs, 120)
        self.assertEqual(sink.max_busy, 3, sink.summary())

    def test_nexthop_concurrency_caps_every_next_hop(self):
        # The class's ceiling (configured next hops) under the global one.
        sink = self.counting_sink(eod_delay=1)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 10, "nexthop_concurrency": 2,
                           "mx_concurrency": 9})
        msgs = self.run_load(m, "cls", 20)
        sink.wait(lambda: sink.max_busy >= 2, 40, "2 deliveries at once")
        self.assert_each_once(sink, m, msgs, 120)
        self.assertEqual(sink.max_busy, 2, sink.summary())


if __name__ == "__main__":
    mxtest.main()
