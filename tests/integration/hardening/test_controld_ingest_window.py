#!/usr/bin/python3
"""An outcome's start time must be near now (issue 9, item 6).

The start time picks the day partition of `outcomes`, and controld creates a
day's partition when a batch brings one. Before, any start from 1970 to 9999
was taken: one enrolled host could create a table for every day of eight
millennia. Now a batch with a start time outside now - outcome_max_age_days
.. now + outcome_max_future (30 days, 1 day by default) is refused with
INVALID_ARGUMENT, storing nothing and creating no partition.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import INBOUND, MX1, grpc_channel  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

DAY_MS = 86400 * 1000


class IngestWindowTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.c = self.controld()
        ch = grpc_channel(self.c.addr, self.pki.mx1, self.pki.ca)
        self.addCleanup(ch.close)
        self.collector = self.svc.CollectorStub(ch)

    def batch(self, seq, start_ms):
        return self.pb.OutcomeBatch(host_id=MX1, seq=seq, outcomes=[self.pb.Outcome(
            seq=seq, session_id=f"s{seq}", direction=INBOUND, start_unix_ms=start_ms,
            end_unix_ms=start_ms + 5)])

    def partitions(self):
        return sorted(r[0] for r in self.sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'outcomes'::regclass"))

    def test_start_time_far_from_now_is_refused_without_a_partition(self):
        now = int(time.time() * 1000)
        before = self.partitions()
        refused = {
            "1970": 1000,
            "9999": 253402300799000,
            "31 days ago": now - 31 * DAY_MS,
            "2 days ahead": now + 2 * DAY_MS,
        }
        for seq, (what, start) in enumerate(refused.items(), 1):
            with self.assertRaises(self.grpc.RpcError, msg=what) as cm:
                self.collector.Export(self.batch(seq, start), timeout=15)
            self.assertEqual(cm.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT, what)
            self.assertIn("start time", cm.exception.details())
        self.assertEqual(self.partitions(), before)
        self.assertNotIn("outcomes_19700101", self.partitions())
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "0")
        self.assertEqual(len(self.c.events("batch_refused", host=MX1)), 4)

        # Inside the window: stored.
        for seq, start in ((10, now - 29 * DAY_MS), (11, now + 3600 * 1000), (12, now)):
            self.assertEqual(self.collector.Export(self.batch(seq, start), timeout=15).seq, seq)
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "3")

    def test_one_bad_outcome_refuses_the_whole_batch(self):
        now = int(time.time() * 1000)
        b = self.batch(1, now)
        b.outcomes.append(self.pb.Outcome(seq=2, session_id="s2", direction=INBOUND,
                                          start_unix_ms=1000))
        with self.assertRaises(self.grpc.RpcError) as cm:
            self.collector.Export(b, timeout=15)
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("seq 2", cm.exception.details())
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "0")


if __name__ == "__main__":
    cptest.main()
