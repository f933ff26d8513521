#!/usr/bin/python3
"""A next hop that accepts connections and never says a word holds the
agents sent to it, and only those: the mail of a local domain whose next
hop is fast keeps flowing. stalled.test's next hop is a silent
CountingSink; example.test's a normal one. 20 messages go to stalled.test
first; once its next hop holds a connection, 30 messages to example.test
all arrive within 30 s, while stalled.test's mail is still queued."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, ids  # noqa: E402
import mxtest  # noqa: E402


class LocalBesideStalledTest(pooltest.PoolTestCase):
    def test_local_mail_flows_while_a_next_hop_stalls(self):
        stalled = self.counting_sink(silent=True)
        local = self.counting_sink()
        m = self.pool_mxd({LOCAL_DOMAIN: local.next_hop, "stalled.test": stalled.next_hop})
        self.submit(m, [(i, ["user@stalled.test"]) for i in ids("stall", 20)])
        stalled.wait(lambda: stalled.open > 0, 30, "a connection to the silent next hop")

        msgs = ids("local", 30)
        t0 = time.monotonic()
        self.submit(m, [(i, [f"user@{LOCAL_DOMAIN}"]) for i in msgs])
        local.wait_kept(msgs, 30)
        t1 = time.monotonic()
        self.assertEqual(local.copies_by_id(), {i: 1 for i in msgs})
        with stalled.lock:
            held = [c for c in stalled.conns if c.opened <= t1 and (c.closed or t1) >= t0]
        self.assertTrue(held, "no connection to the silent next hop meanwhile: nothing was tested")
        queued = [r for r in self.queue_list(m)[0] if r.get("rcpt") == "user@stalled.test"]
        self.assertEqual(len(queued), 20, "stalled.test's mail is not all queued")
        print(f"30 local messages in {t1 - t0:.1f}s beside a stalled next hop", file=sys.stderr)


if __name__ == "__main__":
    mxtest.main()
