#!/usr/bin/python3
"""Two mxd hosts against one controld: each host's outcomes are counted
under its own name, and an mxd can not report as another host."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, MX2, many_sessions, parse_table, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


class TwoHostsTest(cptest.FleetTestCase):

    def test_each_host_counted_separately(self):
        c = self.controld()
        sink = self.sink()
        m1 = self.mxd_with_control(c, sink, cert=self.pki.mx1, name="mx1", host="127.0.0.11")
        m2 = self.mxd_with_control(c, sink, cert=self.pki.mx2, name="mx2", host="127.0.0.12")
        n1, n2 = 9, 4
        many_sessions(m1.host, m1.port, [f"a-{i}.test" for i in range(n1 - 2)], threads=2)
        many_sessions(m2.host, m2.port, [f"b-{i}.test" for i in range(n2 - 1)], threads=2)
        smtp_send(m1.host, m1.port, "m1tls", starttls=True)
        smtp_send(m1.host, m1.port, "m1plain")
        smtp_send(m2.host, m2.port, "m2tls", starttls=True)
        sink.wait_messages(3)

        self.assertEqual(self.wait_outcomes(n1, host=MX1), (n1, n1, n1))
        self.assertEqual(self.wait_outcomes(n2, host=MX2), (n2, n2, n2))
        # Each host's rows carry its own listener address.
        self.assertEqual(self.sql("SELECT host_id, local_ip, count(*) FROM outcomes "
                                  "WHERE direction = 1 GROUP BY 1, 2 ORDER BY 1"),
                         [(MX1, "127.0.0.11", str(n1)), (MX2, "127.0.0.12", str(n2))])
        # The seqs are per host: both start at 1 and none repeats (outbound
        # records to the next hop share the sequence).
        self.assertEqual(self.sql("SELECT host_id, min(seq), count(DISTINCT seq) = count(*) "
                                  "FROM outcomes GROUP BY 1 ORDER BY 1"),
                         [(MX1, "1", "t"), (MX2, "1", "t")])

        def hosts():
            rows = {h["HOST"]: h for h in parse_table(self.mailctl(c, "hosts").stdout)}
            ok = (rows.get(MX1, {}).get("OUTCOMES") == self.stored_total(MX1)
                  and rows.get(MX2, {}).get("OUTCOMES") == self.stored_total(MX2))
            return rows if ok else None
        rows = wait_for(hosts, 15, interval=0.5, what="both hosts in mailctl hosts")
        self.assertEqual(sorted(rows), [MX1, MX2])
        for h in (MX1, MX2):
            self.assertNotEqual(rows[h]["SEEN_AGO"], "-")
            self.assertNotEqual(rows[h]["CERT_EXPIRES"], "-")

        out = parse_table(self.mailctl(c, "outcomes", "--host", MX2).stdout)
        self.assertEqual({r["HOST"] for r in out}, {MX2})
        inbound = [r for r in out if r["DIRECTION"] == "inbound"]
        self.assertEqual(sum(int(r["SESSIONS"]) for r in inbound), n2)
        self.assertEqual([(r["STARTTLS"], r["TLS"], r["SESSIONS"]) for r in inbound
                          if r["STARTTLS"] == "established"], [("established", "TLSv1.3", "1")])
        out = parse_table(self.mailctl(c, "outcomes").stdout)
        self.assertEqual(sum(int(r["SESSIONS"]) for r in out
                             if r["HOST"] == MX1 and r["DIRECTION"] == "inbound"), n1)

    def test_mxd_can_not_report_as_another_host(self):
        """mx1's certificate with control.host_id = mx2: controld refuses
        (PERMISSION_DENIED), nothing is stored under either name, and mxd
        keeps serving mail."""
        c = self.controld()
        sink = self.sink()
        m = self.mxd_with_control(c, sink, cert=self.pki.mx1, control={"host_id": MX2})
        smtp_send(m.host, m.port, "imp")
        sink.wait_messages(1)
        m.wait_event("control_call_failed", timeout=15,
                     pred=lambda e: e.get("status") == "PERMISSION_DENIED")
        wait_for(lambda: c.metrics()["controld_identity_refused_total"] >= 3, 10, interval=0.2,
                 what="controld refusing Register, Heartbeat and the stream")
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "0")
        self.assertEqual(self.scalar("SELECT count(*) FROM hosts"), "0")
        self.assertTrue(c.events("identity_refused", peer=MX1, claimed=MX2))


if __name__ == "__main__":
    cptest.main()
