#!/usr/bin/python3
"""controld with its PostgreSQL frozen (SIGSTOP on the postmaster and every
process of the cluster: connections open, nothing answers, the slow case).
controld's event loop never waits for the database (docs/control-plane.md,
"Database workers"): Heartbeat is acknowledged, WatchConfig sends the last
snapshot controld read, /healthz says unhealthy naming the database, each
within a second. After SIGCONT ingest resumes and every outcome sent while
the database was frozen is stored exactly once. A call that gives up while
its database work waits is dropped without harm (run under ASan too)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, many_sessions, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

PROMPT = 1.0     # seconds: what "answers at once" means here


class FrozenDatabaseTest(cptest.FleetTestCase):

    def stubs(self, c, cert):
        grpc, pb, svc = cptest.grpc_stubs()
        ch = cptest.grpc_channel(c.addr, cert, self.pki.ca)
        self.addCleanup(ch.close)
        return grpc, pb, svc, ch

    def timed(self, what, fn):
        """(result, seconds) of fn(); an exception is a failure naming what."""
        t0 = time.monotonic()
        try:
            r = fn()
        except Exception as e:  # noqa: BLE001
            self.fail(f"{what} with the database frozen: {e!r} after "
                      f"{time.monotonic() - t0:.2f}s")
        return r, time.monotonic() - t0

    def assert_stored_once(self, names, timeout=90):
        rows, seqs, _ = self.wait_outcomes(len(names), timeout=timeout)
        stored = [r[0] for r in self.sql(
            f"SELECT remote_ehlo FROM outcomes WHERE host_id = '{MX1}' AND direction = 1")]
        self.assertEqual(sorted(stored), sorted(names),
                         "every session's outcome stored once, nothing else")
        self.assertEqual((rows, seqs), (len(names), len(names)))

    def test_heartbeat_watch_healthz_answer_while_frozen_then_every_outcome_once(self):
        c, m, sink = self.fleet()
        # The host's identity, once stored, is part of the configuration (its
        # MX name is in the MTA-STS policies): wait for it, so the version
        # read below is the one the frozen database keeps.
        wait_for(lambda: self.scalar("SELECT count(*) FROM host_identity") == "1", 20,
                 interval=0.2, what="mx1's identity stored")
        self.mailctl(c, "domain", "add", "frozen.test", sink.next_hop)
        grpc, pb, svc, ch = self.stubs(c, self.pki.mx1)
        fleet = svc.FleetStub(ch)
        version = fleet.Heartbeat(pb.HeartbeatRequest(host_id=MX1), timeout=10).config_version
        self.assertGreater(version, 0)
        wait_for(lambda: c.http_get("/healthz") == (200, "ok\n"), 15, interval=0.2,
                 what="/healthz 200 before the freeze")
        before = [f"pre-{i}.test" for i in range(5)]
        many_sessions(m.host, m.port, before, threads=1)
        self.assert_stored_once(before)

        pids = self.pg.freeze()
        try:
            frozen = [f"frozen-{i}.test" for i in range(20)]
            many_sessions(m.host, m.port, frozen, threads=2)
            self.wait_session_logged(m, len(before) + len(frozen))
            time.sleep(1.5)     # mxd's batches and heartbeats now wait on the database

            for i in range(3):
                r, took = self.timed("Heartbeat", lambda: fleet.Heartbeat(
                    pb.HeartbeatRequest(host_id=MX1, version="test"), timeout=5))
                self.assertLess(took, PROMPT, f"Heartbeat {i} took {took:.2f}s")
                self.assertEqual(r.config_version, version)

            def first_snapshot():
                stream = fleet.WatchConfig(pb.WatchRequest(host_id=MX1), timeout=5)
                try:
                    return next(stream)
                finally:
                    stream.cancel()
            snap, took = self.timed("WatchConfig", first_snapshot)
            self.assertLess(took, PROMPT, f"WatchConfig's first snapshot took {took:.2f}s")
            self.assertEqual(snap.version, version)
            self.assertIn("frozen.test", [d.name for d in snap.domains])

            (status, body), took = self.timed("/healthz", lambda: c.http_get("/healthz", 5))
            self.assertLess(took, PROMPT, f"/healthz took {took:.2f}s")
            self.assertNotEqual(status, 200, f"/healthz with the database frozen: {body!r}")
            self.assertIn("database", body)
            self.assertEqual(c.http_get("/metrics", 5)[0], 200)
        finally:
            self.pg.thaw(pids)
        self.assert_stored_once(before + frozen)
        wait_for(lambda: c.http_get("/healthz") == (200, "ok\n"), 30, interval=0.2,
                 what="/healthz 200 again after SIGCONT")
        # The host's heartbeats are written again.
        wait_for(lambda: self.scalar(f"SELECT last_seen > now() - interval '3 seconds' "
                                     f"FROM hosts WHERE host_id = '{MX1}'") == "t",
                 20, interval=0.5, what="mx1's last_seen moving again")
        self.assertTrue(c.running())

    def test_calls_given_up_while_frozen_are_dropped_and_controld_goes_on(self):
        """An Export and admin calls whose client gives up (deadline) while
        their database work waits: their results are dropped when the work
        finishes, controld answers the next calls, and the batch sent again
        is stored once (a duplicate if the abandoned copy was stored)."""
        c = self.controld()
        grpc, pb, svc, ch = self.stubs(c, self.pki.mx1)
        _, _, _, admin_ch = self.stubs(c, self.pki.admin)
        admin = svc.AdminStub(admin_ch)
        admin.ListHosts(pb.Empty(), timeout=10)
        now_ms = int(time.time() * 1000)
        batch = pb.OutcomeBatch(host_id=MX1, seq=1, outcomes=[
            pb.Outcome(seq=1, session_id="abandoned", direction=1, start_unix_ms=now_ms)])

        pids = self.pg.freeze()
        try:
            for call in (lambda: svc.CollectorStub(ch).Export(batch, timeout=0.5),
                         lambda: admin.ListHosts(pb.Empty(), timeout=0.5),
                         lambda: admin.ListDomains(pb.Empty(), timeout=0.5)):
                with self.assertRaises(grpc.RpcError) as cm:
                    call()
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            (status, _), took = self.timed("/healthz", lambda: c.http_get("/healthz", 5))
            self.assertNotEqual(status, 200)
        finally:
            self.pg.thaw(pids)
        # The abandoned jobs finish (stored, or failed if a worker's connect
        # timed out meanwhile) and their answers are dropped.
        wait_for(lambda: (lambda m: m["controld_db_jobs_queued"] == 0
                          and m["controld_db_workers_busy"] == 0)(c.metrics()),
                 60, interval=0.2, what="controld's database jobs done")
        stored_before = self.scalar("SELECT count(*) FROM outcomes")
        ack = svc.CollectorStub(ch).Export(batch, timeout=10)
        self.assertEqual(ack.seq, 1)
        self.assertEqual(ack.duplicate, stored_before == "1")
        self.assertEqual(len(admin.ListHosts(pb.Empty(), timeout=10).hosts), 1)
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "1")
        self.assertTrue(c.running())


if __name__ == "__main__":
    cptest.main()
