#!/usr/bin/python3
"""Connection reuse and recipient grouping, counted at a CountingSink:

  * with delivery.destination_concurrency = 1, 20 messages to one next hop
    take fewer connections than messages: several transactions per
    connection (the agent keeps its connection for the next message);
  * a message that comes within delivery.connection_cache_time of the last
    one takes the idle connection, which is closed after that time;
  * one message to 120 recipients of one domain, with
    delivery.recipient_limit = 50, goes as transactions of 50, 50 and 20
    recipients, each recipient exactly once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, ids  # noqa: E402
import mxtest  # noqa: E402


class ConnectionReuseTest(pooltest.PoolTestCase):
    def test_messages_to_one_destination_share_connections(self):
        sink = self.counting_sink(eod_delay=0.2)
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop},
                          {"destination_concurrency": 1, "connection_cache_time": 5})
        msgs = ids("reuse", 20)
        self.submit(m, [(i, [f"rcpt@{LOCAL_DOMAIN}"]) for i in msgs])
        sink.wait_kept(msgs, 60)
        time.sleep(1)
        self.assertEqual(sink.copies_by_id(), {i: 1 for i in msgs})
        self.assertEqual(sink.max_busy, 1, sink.summary())
        self.assertLess(len(sink.conns), len(msgs), sink.summary())
        self.assertGreater(max(len(c.txns) for c in sink.conns), 1, sink.summary())

    def test_idle_connection_kept_for_connection_cache_time(self):
        sink = self.counting_sink()
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop}, {"connection_cache_time": 10})
        self.submit(m, [("first", [f"rcpt@{LOCAL_DOMAIN}"])])
        sink.wait_kept(["first"], 30)
        # Longer than the default (2 s), well within the configured time.
        time.sleep(4)
        self.assertEqual(sink.open, 1, f"connection not kept 4 s: {sink.summary()}")
        self.submit(m, [("second", [f"rcpt@{LOCAL_DOMAIN}"])])
        sink.wait_kept(["second"], 30)
        self.assertEqual([len(c.txns) for c in sink.conns], [2], sink.summary())
        # The idle limit ends it.
        sink.wait(lambda: sink.open == 0, 30, "the idle connection closed")

    def test_recipients_of_one_message_grouped_up_to_the_limit(self):
        sink = self.counting_sink()
        m = self.pool_mxd({LOCAL_DOMAIN: sink.next_hop}, {"recipient_limit": 50})
        rcpts = [f"r{i:03d}@{LOCAL_DOMAIN}" for i in range(120)]
        self.submit(m, [("grouped", rcpts)])
        mxtest.wait_for(lambda: sum(len(t.rcpts) for t in sink.kept("grouped")) >= 120,
                        60, interval=0.1, what="120 recipients at the sink")
        time.sleep(2)
        txns = sink.kept("grouped")
        self.assertEqual(sorted(len(t.rcpts) for t in txns), [20, 50, 50], txns)
        got = sorted(r for t in txns for r in t.rcpts)
        self.assertEqual(got, rcpts, "a recipient missing or delivered twice")
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")


if __name__ == "__main__":
    mxtest.main()
