#!/usr/bin/python3
"""A corrupt record in mxd's outcome journal is skipped and counted, never a
crash, and the records around it are delivered (mxd/uploader/journal.h,
docs/control-plane.md "The delivery guarantee" item 5)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, journal_records, many_sessions, parse_table, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

N = 12


class JournalCorruptTest(cptest.FleetTestCase):

    def test_corrupt_record_skipped_counted_rest_delivered(self):
        """Bytes flipped in the middle of a record's data: its header (and
        so its length) stays valid, its data CRC fails."""
        self.check_corruption(lambda off, ln: off + 24 + ln // 2)

    def test_damaged_record_header_skipped_counted_rest_delivered(self):
        """Bytes flipped inside a record's header (its length field): the
        reader must find the next record by scanning."""
        self.check_corruption(lambda off, ln: off + 5)

    def check_corruption(self, where):
        # controld is configured but not running: the records stay in the
        # journal, unacknowledged.
        c = self.controld(start=False)
        sink = self.sink()
        m = self.mxd_with_control(c, sink)
        names = [f"j-{i}.test" for i in range(N)]
        many_sessions(m.host, m.port, names, threads=1)
        self.wait_session_logged(m, N)
        jdir = os.path.join(m.config["spool_dir"], "journal")

        def committed():
            recs = journal_records(jdir)
            return recs if len(recs) >= N else None
        wait_for(committed, 10, interval=0.1, what=f"{N} records committed in {jdir}")
        m.stop()
        self.assertIsNone(m.stop_problem)

        recs = journal_records(jdir)
        self.assertEqual(len(recs), N, recs)
        self.assertEqual([r[3] for r in recs], list(range(1, N + 1)), "seqs 1..N in order")
        # Flip 4 bytes of the middle record, in the middle of the segment.
        path, off, ln, victim = recs[N // 2]
        pos = where(off, ln)
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(4)
            f.seek(pos)
            f.write(bytes(x ^ 0xFF for x in b))

        m.start()
        c.start()
        rows, seqs, _ = self.wait_outcomes(N - 1)
        self.assertEqual((rows, seqs), (N - 1, N - 1))
        stored = {int(r[0]): r[1] for r in self.sql(
            f"SELECT seq, remote_ehlo FROM outcomes WHERE host_id = '{MX1}'")}
        self.assertNotIn(victim, stored, "the corrupt record was stored")
        self.assertEqual(sorted(stored), [s for s in range(1, N + 1) if s != victim])
        # Which session was lost is known: the one in the victim's place.
        self.assertEqual(sorted(stored.values()),
                         sorted(n for i, n in enumerate(names) if i != N // 2))

        # Counted: hosts.corrupt, and what the operator sees.
        wait_for(lambda: self.scalar(f"SELECT corrupt FROM hosts WHERE host_id = '{MX1}'") == "1",
                 15, interval=0.25, what="hosts.corrupt = 1")
        h = [r for r in parse_table(self.mailctl(c, "hosts").stdout) if r["HOST"] == MX1]
        self.assertEqual((h[0]["CORRUPT"], h[0]["DROPPED"], h[0]["OUTCOMES"]),
                         ("1", "0", self.stored_total()), h)
        # mxd said so too, and did not crash.
        self.assertTrue(any(e.get("corrupt") == "1" for e in m.events("journal_open")),
                        "journal_open line with corrupt=1")
        self.assertFalse(m.events("child_died"), "an mxd process died")

        # New sessions after the repair flow as usual, and the count stays 1.
        more = [f"after-{i}.test" for i in range(3)]
        many_sessions(m.host, m.port, more, threads=1)
        rows, _, _ = self.wait_outcomes(N - 1 + 3)
        self.assertEqual(rows, N + 2)
        self.assertEqual(self.scalar(f"SELECT corrupt FROM hosts WHERE host_id = '{MX1}'"), "1")


if __name__ == "__main__":
    cptest.main()
