#!/usr/bin/python3
"""Every database statement controld runs has a time limit (issue 9, item 6).

controld's database calls block its event loop. Before, a lock held by
someone else in PostgreSQL (an operator's open transaction, a long
migration by hand) stalled a call for as long as the lock was held, and
every host's calls with it. Now the session's statement_timeout (config key
`statement_timeout`, seconds) makes the server cancel the statement: the
call fails with UNAVAILABLE saying so, and controld goes on serving.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import INBOUND, MX1, grpc_channel, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


class StatementTimeoutTest(cptest.FleetTestCase):
    needs_mxd = False

    def hold_lock(self, table, seconds=90):
        """Another session takes an ACCESS EXCLUSIVE lock on table and keeps
        it (until killed, or seconds)."""
        p = subprocess.Popen(
            [cptest.PSQL, "-X", "-q", "-d", self.database, "-c",
             f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; "
             f"SELECT pg_sleep({seconds}); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cptest.child_env())

        held = ("FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock' "
                f"AND relation = '{table}'::regclass")

        def release():
            # The backend, not only psql: it would sleep on, holding the lock.
            self.sql(f"SELECT pg_terminate_backend(pid) {held}")
            p.kill()
            p.wait(10)
            wait_for(lambda: self.scalar(f"SELECT count(*) {held}") == "0", 15, interval=0.2,
                     what=f"the lock on {table} released")
        self.addCleanup(release)
        wait_for(lambda: self.scalar(f"SELECT count(*) {held}") == "1", 15, interval=0.2,
                 what=f"the lock on {table}")
        return release

    def test_call_blocked_by_a_lock_fails_after_statement_timeout(self):
        grpc, pb, svc = cptest.grpc_stubs()
        c = self.controld(config={"statement_timeout": 1})
        self.mailctl(c, "domain", "add", "before.test", "smtp:192.0.2.1:25")
        release = self.hold_lock("domains")
        t0 = time.monotonic()
        r = self.mailctl(c, "domain", "list", check=False, timeout=60)
        took = time.monotonic() - t0
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("statement timeout", r.stderr)
        self.assertLess(took, 20, "the call waited for the lock")
        # controld was not stalled: health and ingest still work meanwhile.
        self.assertEqual(c.http_get("/healthz"), (200, "ok\n"))
        now = int(time.time() * 1000)
        with grpc_channel(c.addr, self.pki.mx1, self.pki.ca) as ch:
            ack = svc.CollectorStub(ch).Export(pb.OutcomeBatch(host_id=MX1, seq=1, outcomes=[
                pb.Outcome(seq=1, session_id="s1", direction=INBOUND, start_unix_ms=now)]),
                timeout=15)
        self.assertEqual(ack.seq, 1)
        # The lock gone, the same call works.
        release()
        self.assertIn("before.test", self.mailctl(c, "domain", "list").stdout)

    def test_timeout_survives_a_reconnect(self):
        c = self.controld(config={"statement_timeout": 1})
        self.mailctl(c, "domain", "list")
        # Cut controld's session: its next call reconnects.
        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'mxfleet-controld'")
        wait_for(lambda: self.mailctl(c, "domain", "list", check=False).returncode == 0, 20,
                 interval=0.5, what="controld reconnected")
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mxfleet-controld'"),
            "1")
        self.hold_lock("domains")
        t0 = time.monotonic()
        r = self.mailctl(c, "domain", "list", check=False, timeout=60)
        self.assertIn("statement timeout", r.stderr)
        self.assertLess(time.monotonic() - t0, 20)


if __name__ == "__main__":
    cptest.main()
