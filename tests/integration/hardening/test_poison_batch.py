#!/usr/bin/python3
"""A poison batch does not stop outcome upload (issue 9, item 5).

Outbound records carry the whole MTA-STS policy, one record per MX address
tried: a message to a domain with a ~60 KiB policy and 80 MX addresses makes
80 records of ~60 KiB. Cut by record count only, they went out as one 4.8 MiB
batch, over controld's 4 MiB max_message: refused with RESOURCE_EXHAUSTED and
resent forever, and nothing after it was ever stored. The records are written
into mxd's journal in its on-disk format (mxd/uploader/journal.h), exactly as the
uploader would have appended them.

A record that controld refuses even alone (here: controld's max_message is
set below one record's size) is quarantined to a file, counted in `mailctl
hosts` and on /metrics, logged with its gRPC status, and the rest of the
journal flows on."""

import os
import struct
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import cptest  # noqa: E402
from cptest import (INBOUND, MX1, OUTBOUND, many_sessions, parse_table,  # noqa: E402
                    wait_for)

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

BIG_RECORDS = 80           # 80 x ~60 KiB: over 4 MiB in one batch
POLICY_LINES = 2100        # ~58 KiB of policy strings per record


def outcome(seq, policy_lines=0, name="big"):
    """A packed Outcome like the ones deliver.c emits for an MTA-STS domain."""
    _, pb, _ = cptest.grpc_stubs()
    now = int(time.time() * 1000)
    o = pb.Outcome(session_id=f"{name}-{seq}", direction=OUTBOUND, start_unix_ms=now - 50,
                   end_unix_ms=now, local_ip="127.0.0.1", local_port=40000 + seq,
                   remote_ip="127.0.0.2", remote_port=25, remote_ehlo=f"mx{seq}.big.test",
                   messages=1, recipients=1)
    if policy_lines:
        pr = o.policy_results.add()
        pr.policy_type = "sts"
        pr.policy_domain = "big.test"
        pr.policy_strings.extend(["version: STSv1", "mode: enforce", "max_age: 86400"])
        pr.policy_strings.extend(f"mx: mx{i:05d}.big-policy.test" for i in range(policy_lines))
        pr.mx_host.extend(["*.big-policy.test"])
        pr.result_type = "success"
        pr.receiving_mx_hostname = f"mx{seq}.big.test"
        pr.receiving_ip = "127.0.0.2"
    return o.SerializeToString()


def write_segment(path, base, records):
    """Overwrite the segment at path (keeping its owner: mxd runs unprivileged)
    with records [(seq, data)], in mxd/uploader/journal.h's layout."""
    out = bytearray(b"MXJSEG01" + struct.pack("<Q", base))
    for seq, data in records:
        hdr = b"MXJR" + struct.pack("<IQI", len(data), seq, zlib.crc32(data))
        out += hdr + struct.pack("<I", zlib.crc32(hdr)) + data
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(out)


class PoisonBatchTest(cptest.FleetTestCase):

    def journal_with(self, c, records, **mxd_kw):
        """mxd reporting to controld c (not running yet), its journal holding
        exactly records [(seq, data)] when it starts. Returns (mxd, sink)."""
        sink = self.sink()
        m = self.mxd_with_control(c, sink, **mxd_kw)
        jdir = os.path.join(m.config["spool_dir"], "journal")
        wait_for(lambda: os.path.exists(os.path.join(jdir, "%016x.seg" % 1)), 10,
                 interval=0.1, what="the journal's first segment")
        m.stop()
        self.assertIsNone(m.stop_problem)
        segs = sorted(n for n in os.listdir(jdir) if n.endswith(".seg"))
        self.assertEqual(segs, ["%016x.seg" % 1], "an empty journal")
        write_segment(os.path.join(jdir, segs[0]), 1, records)
        return m, sink

    def outbound_stored(self):
        return int(self.scalar(f"SELECT count(*) FROM outcomes WHERE host_id = '{MX1}'"
                               f" AND direction = {OUTBOUND}"))

    def later_sessions_flow(self, m, n=3):
        names = [f"after-{i}.test" for i in range(n)]
        many_sessions(m.host, m.port, names, threads=1)
        self.wait_outcomes(n, direction=INBOUND, timeout=60)
        got = {r[0] for r in self.sql(f"SELECT remote_ehlo FROM outcomes WHERE host_id = '{MX1}'"
                                      f" AND direction = {INBOUND}")}
        self.assertTrue(set(names) <= got, f"later sessions missing: {got}")

    def test_records_over_max_message_together_all_reach_postgresql(self):
        c = self.controld(start=False)
        records = [(s, outcome(s, POLICY_LINES)) for s in range(1, BIG_RECORDS + 1)]
        sizes = [len(d) for _, d in records]
        self.assertTrue(55 << 10 < min(sizes) and max(sizes) < 64 << 10, sizes[:3])
        self.assertGreater(sum(sizes), 4 << 20, "together over controld's max_message")
        m, _ = self.journal_with(c, records)
        m.start()
        c.start()
        try:
            wait_for(lambda: self.outbound_stored() >= BIG_RECORDS, 90, interval=0.5,
                     what=f"{BIG_RECORDS} large outbound records in PostgreSQL")
        except TimeoutError as e:
            refused = [e.get("status") for e in m.events("stream_closed")]
            raise AssertionError(f"{e}; stored {self.outbound_stored()}, "
                                 f"stream closes: {refused[:5]}") from None
        rows = self.sql(f"SELECT seq, jsonb_array_length(policy_results->0->'policy_strings')"
                        f" FROM outcomes WHERE host_id = '{MX1}' AND direction = {OUTBOUND}"
                        " ORDER BY seq")
        self.assertEqual([int(r[0]) for r in rows], list(range(1, BIG_RECORDS + 1)))
        # Records under the bound are stored whole: nothing truncated.
        self.assertEqual({int(r[1]) for r in rows}, {POLICY_LINES + 3})
        # No batch was refused on the way.
        self.assertFalse(m.events("batch_refused"), "a batch was refused")
        self.later_sessions_flow(m)

    def test_record_refused_alone_is_quarantined_counted_and_the_rest_flows(self):
        # controld takes messages of at most 16 KiB: the 40 KiB record can
        # never be stored, the small ones around it can.
        c = self.controld(start=False, config={"max_message": 16384})
        poison = 6
        records = [(s, outcome(s, 1500 if s == poison else 0, name="q")) for s in range(1, 12)]
        self.assertGreater(len(records[poison - 1][1]), 16384)
        m, _ = self.journal_with(c, records)
        m.start()
        c.start()
        try:
            wait_for(lambda: self.outbound_stored() >= 10, 90, interval=0.5,
                     what="the 10 storable records in PostgreSQL")
        except TimeoutError as e:
            raise AssertionError(f"{e}; stored {self.outbound_stored()}") from None
        seqs = [int(r[0]) for r in self.sql(
            f"SELECT seq FROM outcomes WHERE host_id = '{MX1}' AND direction = {OUTBOUND}"
            " ORDER BY seq")]
        self.assertEqual(seqs, [s for s in range(1, 12) if s != poison])

        # mxd said why, with the gRPC status, and kept the record in a file.
        refused = m.wait_event("batch_refused", timeout=10)
        self.assertEqual(refused.get("status"), "RESOURCE_EXHAUSTED", refused)
        q = m.wait_event("outcome_quarantined", timeout=10)
        self.assertEqual(q.get("seq"), str(poison), q)
        qdir = os.path.join(m.config["spool_dir"], "journal-quarantine")
        qfiles = os.listdir(qdir)
        self.assertEqual(len(qfiles), 1, qfiles)
        with open(os.path.join(qdir, qfiles[0]), "rb") as f:
            self.assertEqual(f.read(), records[poison - 1][1], "the quarantined record, whole")

        # The operator sees it: mailctl hosts and controld's metrics.
        def host_row():
            # Exit 1: mailctl hosts shows the problem (a WARN line).
            out = self.mailctl(c, "hosts", check=False).stdout.split("\n\n")[0]
            rows = [r for r in parse_table(out) if r["HOST"] == MX1]
            return rows[0] if rows and rows[0].get("QUARANTINED") == "1" else None
        row = wait_for(host_row, 30, interval=0.5, what="QUARANTINED 1 in mailctl hosts")
        self.assertGreaterEqual(int(row["REFUSED"]), 1, row)
        metrics = wait_for(lambda: (lambda mm: mm if mm.get(
            "controld_host_outcomes_quarantined_total", 0) >= 1 else None)(c.metrics()),
            30, interval=0.5, what="controld_host_outcomes_quarantined_total >= 1")
        self.assertGreaterEqual(metrics.get("controld_host_batches_refused_total", 0), 1)
        self.later_sessions_flow(m)
        # The quarantined record is counted once, not again at every heartbeat.
        time.sleep(3)
        self.assertEqual(c.metrics().get("controld_host_outcomes_quarantined_total"), 1)
        self.assertEqual(self.scalar(
            f"SELECT outcomes_quarantined FROM hosts WHERE host_id = '{MX1}'"), "1")

        # Dealt with and deleted by the operator: the count follows.
        os.unlink(os.path.join(qdir, qfiles[0]))
        wait_for(lambda: self.scalar(
            f"SELECT outcomes_quarantined FROM hosts WHERE host_id = '{MX1}'") == "0",
            30, interval=0.5, what="outcomes_quarantined back to 0 after the file is deleted")


if __name__ == "__main__":
    cptest.main()
