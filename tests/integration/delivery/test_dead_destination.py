#!/usr/bin/python3
"""A dead destination beside a live one: dead.test's next hop is an
address where nothing listens, example.test's a CountingSink. After
delivery.dead_after connection failures in a row mxd logs
`event=destination_dead` and defers dead.test's mail without connecting
(`queue list`: 451 4.4.1 ... not answering); example.test's mail goes
meanwhile. Once dead.test's next hop listens, the probe after
delivery.dead_time finds it alive (`event=destination_alive`) and its mail
is delivered, each message once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pooltest  # noqa: E402
from pooltest import LOCAL_DOMAIN, ids  # noqa: E402
import mxtest  # noqa: E402

DEAD_AFTER = 3
DEAD_TIME = 10


class DeadDestinationTest(pooltest.PoolTestCase):
    def test_dead_destination_waits_while_the_live_one_delivers(self):
        live = self.counting_sink()
        host, port = mxtest.free_addr()
        dead_hop = f"smtp:{host}:{port}"
        m = self.pool_mxd({LOCAL_DOMAIN: live.next_hop, "dead.test": dead_hop},
                          {"dead_after": DEAD_AFTER, "dead_time": DEAD_TIME})
        a_ids, b_ids = ids("dead", 20), ids("live", 20)
        t0 = time.monotonic()
        self.submit(m, [x for pair in zip(
            [(i, ["user@dead.test"]) for i in a_ids],
            [(i, [f"user@{LOCAL_DOMAIN}"]) for i in b_ids]) for x in pair])

        live.wait_kept(b_ids, 30)
        self.assertLess(time.monotonic() - t0, 30)
        dead = m.wait_event("destination_dead", timeout=30, destination=dead_hop)
        self.assertGreaterEqual(int(dead["failures"]), DEAD_AFTER, dead)
        self.assertGreater(int(dead["until"]), time.time() - 5, dead)
        self.assertEqual(m.events("destination_dead", destination=live.next_hop), [])

        # Every one of dead.test's messages waits, and those tried after
        # the verdict say why without a connection attempt.
        def dead_replies():
            recs, _ = self.queue_list(m)
            waiting = {r["id"]: r for r in recs if r.get("rcpt") == "user@dead.test"}
            said = [r for r in waiting.values()
                    if r.get("last_reply", "").startswith("451 4.4.1 ")]
            return (len(waiting), said) if said else None
        waiting, said = mxtest.wait_for(dead_replies, 15, interval=0.2,
                                        what="queue list with a 451 4.4.1 reply")
        self.assertEqual(waiting, 20, "dead.test's mail is not all queued")
        reply = said[0]["last_reply"]
        self.assertIn(dead_hop, reply)
        self.assertIn("not answering", reply)
        self.assertEqual(live.copies_by_id(), {i: 1 for i in b_ids})

        # The next hop comes up: the probe after dead_time finds it.
        up = self.counting_sink(host=host, port=port)
        up.wait_kept(a_ids, DEAD_TIME + 60)
        m.wait_event("destination_alive", timeout=10, destination=dead_hop)
        time.sleep(2)
        self.assertEqual(up.copies_by_id(), {i: 1 for i in a_ids})
        mxtest.wait_for(lambda: not self.queue_list(m)[0], 15, what="an empty queue")


if __name__ == "__main__":
    mxtest.main()
