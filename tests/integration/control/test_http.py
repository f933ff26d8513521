#!/usr/bin/python3
"""controld's HTTP port: /healthz says whether PostgreSQL is reachable,
/metrics counts what was stored (docs/control-plane.md, controld); while
PostgreSQL is down calls answer UNAVAILABLE and nothing is stored."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, many_sessions, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


class HttpTest(cptest.FleetTestCase):

    def test_healthz_ok_then_503_while_postgresql_is_down(self):
        grpc, pb, svc = cptest.grpc_stubs()
        c = self.controld()
        self.assertEqual(c.http_get("/healthz"), (200, "ok\n"))
        self.pg.stop()
        try:
            st, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
                c.http_get("/healthz")), 10, interval=0.2, what="/healthz 503")
            self.assertTrue(body.strip(), "503 without a reason")
            # Calls answer UNAVAILABLE (the caller retries), nothing stored.
            ch = cptest.grpc_channel(c.addr, self.pki.mx1, self.pki.ca)
            self.addCleanup(ch.close)
            b = pb.OutcomeBatch(host_id=MX1, seq=1, outcomes=[pb.Outcome(
                seq=1, session_id="s1", direction=1, start_unix_ms=int(time.time() * 1000))])
            with self.assertRaises(grpc.RpcError) as cm:
                svc.CollectorStub(ch).Export(b, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            r = cptest.run([cptest.MAILCTL, "--socket", c.socket, "hosts"], check=False)
            self.assertEqual(r.returncode, 3, f"mailctl with the database down: {r}")
            self.assertEqual(c.http_get("/metrics")[0], 200, "/metrics needs no database")
        finally:
            self.pg.start()
        wait_for(lambda: c.http_get("/healthz") == (200, "ok\n"), 15, interval=0.2,
                 what="/healthz 200 again after PostgreSQL is back")
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "0")
        m = c.metrics()
        self.assertGreaterEqual(m["controld_db_errors_total"], 1)
        self.assertGreaterEqual(m["controld_ingest_errors_total"], 1)
        self.assertEqual(m["controld_outcomes_stored_total"], 0)
        self.assertTrue(c.running())

    def test_metrics_count_stored_outcomes(self):
        c, m, sink = self.fleet()
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="controld_config_watchers 1")
        before = c.metrics()
        for name in ("controld_batches_total", "controld_outcomes_stored_total",
                     "controld_outcomes_duplicate_total", "controld_ingest_errors_total",
                     "controld_db_errors_total", "controld_identity_refused_total",
                     "controld_grpc_calls_total", "controld_config_watchers"):
            self.assertIn(name, before)
        status, text = c.http_get("/metrics")
        self.assertIn("# TYPE controld_outcomes_stored_total counter", text)
        n = 15
        many_sessions(m.host, m.port, [f"m-{i}.test" for i in range(n)], threads=2)
        self.wait_outcomes(n)
        after = wait_for(lambda: (lambda x: x if x["controld_outcomes_stored_total"]
                                  - before["controld_outcomes_stored_total"] >= n else None)(
            c.metrics()), 10, interval=0.2, what="stored counter to move")
        self.assertEqual(after["controld_outcomes_stored_total"]
                         - before["controld_outcomes_stored_total"], n)
        self.assertGreater(after["controld_batches_total"], before["controld_batches_total"])
        self.assertGreater(after["controld_grpc_calls_total"], before["controld_grpc_calls_total"])
        self.assertEqual(after["controld_outcomes_duplicate_total"], 0)
        self.assertEqual(c.http_get("/nothing")[0], 404)


if __name__ == "__main__":
    cptest.main()
