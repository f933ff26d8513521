#!/usr/bin/python3
"""controld follows a promoted standby (docs/control-plane.md, "High
availability of the database"): `database` names a primary and its
streaming-replication standby; the primary is stopped and the standby
promoted while an mxd relays real SMTP sessions; controld reconnects to the
new primary on its own, every outcome is stored there exactly once,
/healthz, `mailctl hosts` and configuration changes work again, the report
round (an advisory-lock singleton) runs again, and controld logged the
failover without the password. A controld started with the standby listed
first lands on the primary."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgrepl  # noqa: E402
import cptest  # noqa: E402
from cptest import MX1, parse_table, rcpt_reply, smtp_send, wait_for  # noqa: E402

setUpModule = pgrepl.setUpModule
tearDownModule = pgrepl.tearDownModule

DB = "mxfleet"
PASSWORD = "Pw-never-logged-7d1e"  # trust auth ignores it; it must not show in a log
NEW = "after-failover.test"
REPORTS = {"organization_name": "Fleet Test Org", "contact_info": "mailto:tlsrpt@fleet.test",
           "submitter": "fleet.test",
           "send": {"enabled": True, "interval": 1, "jitter": 0, "window": 0}}
RECOVER_WITHIN = 30  # seconds from the promotion to controld answering again


class PgFailoverTest(cptest.FleetTestCase):

    def setUp(self):
        if cptest.CLUSTER is None:
            self.skipTest("no cluster (setUpModule did not run)")
        # Before MxTestCase.setUp: cleanups run last in, first out, so the
        # servers go after controld and mxd have stopped.
        self.repl = pgrepl.ReplicatedPostgres()
        self.addCleanup(self.repl.destroy)
        cptest.mxtest.MxTestCase.setUp(self)
        cptest.watch_dir(self.wd)
        cptest.CLUSTER.pg = self.repl
        self.pki = cptest.CLUSTER.pki
        self.pg = self.repl.primary
        self.repl.primary.createdb(DB)
        self.repl.wait_replayed()  # a standby without the database refuses logins
        self.dbname = DB
        self.database = self.repl.uri(DB).replace("postgres@", f"postgres:{PASSWORD}@")

    # -- what an operator looks at

    def connected_to(self, c):
        return [e.get("server") for e in c.events("db_connected")]

    def wait_healthy(self, c, timeout=RECOVER_WITHIN):
        try:
            wait_for(lambda: c.http_get("/healthz")[0] == 200, timeout, interval=0.25,
                     what="/healthz answering 200 ok")
        except TimeoutError as e:
            raise AssertionError(f"{e}; now {c.http_get('/healthz')}") from None

    def send(self, m, sink, names):
        for n in names:
            smtp_send(m.host, m.port, n)
        return [f"client-{n}.test" for n in names]

    def send_spaced(self, m, sink, names, gap):
        """send, one message every gap seconds (in a thread: failures go to
        self.sent_errors)."""
        for n in names:
            try:
                smtp_send(m.host, m.port, n)
            except Exception as e:  # noqa: BLE001 -- reported by the test
                self.sent_errors.append(f"{n}: {e}")
            time.sleep(gap)

    def assertExactlyOnce(self, ehlos):
        rows, seqs, sessions = self.wait_outcomes(len(ehlos), timeout=60)
        stored = [r[0] for r in self.sql(
            f"SELECT remote_ehlo FROM outcomes WHERE host_id = '{MX1}' AND direction = 1")]
        self.assertEqual(sorted(set(ehlos) - set(stored)), [], "sessions never stored")
        self.assertEqual(sorted({e for e in stored if stored.count(e) > 1}), [],
                         "sessions stored twice")
        self.assertEqual((rows, seqs, sessions), (len(ehlos),) * 3)
        # Outbound (mxd's relay sessions to the sink) too: no (host, seq) or
        # session id twice, whatever the direction.
        total, dseq, dsess = self.sql(
            "SELECT count(*), count(DISTINCT (host_id, seq)), count(DISTINCT session_id)"
            " FROM outcomes")[0]
        self.assertEqual((total, dseq), (total, total), "an outcome stored twice")
        self.assertEqual(dsess, total, "a session id stored twice")

    # -- the tests

    def test_controld_follows_promoted_standby_nothing_lost_nothing_twice(self):
        self.sent_errors = []
        c = self.controld(config={"reports": REPORTS})
        sink = self.sink()
        m = self.mxd_with_control(c, sink)
        primary, standby = self.repl.server("primary"), self.repl.server("standby")
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="mxd watching the configuration")
        before = self.send(m, sink, [f"pre{i}" for i in range(6)])
        sink.wait_messages(6)
        self.assertExactlyOnce(before)
        self.repl.wait_replayed()
        self.assertEqual(self.connected_to(c), [primary])

        # Mail keeps coming while the primary stops and the standby is
        # promoted: mxd takes it, controld answers UNAVAILABLE meanwhile.
        sender = threading.Thread(target=self.send_spaced,
                                  args=(m, sink, [f"mid{i}" for i in range(10)], 0.4))
        sender.start()
        try:
            took = self.repl.failover()
        finally:
            sender.join(60)
        self.pg = self.repl.standby
        t0 = time.monotonic()
        self.assertFalse(sender.is_alive())
        self.assertEqual(self.sent_errors, [])
        during = [f"client-mid{i}.test" for i in range(10)]
        self.wait_healthy(c)
        recovered = time.monotonic() - t0
        after = self.send(m, sink, [f"post{i}" for i in range(6)])
        sink.wait_messages(22)
        self.assertExactlyOnce(before + during + after)

        # controld logged the failover, once, and never the password.
        self.assertEqual(self.connected_to(c), [primary, standby])
        line = c.events("db_connected", server=standby)[0]
        self.assertEqual(line.get("msg"), f"database: connected to {standby} (read-write)")
        self.assertNotIn(PASSWORD, c.log_text())
        # Meanwhile the calls that needed the database answered UNAVAILABLE.
        self.assertTrue(c.events("db_error"), "no call failed while there was no primary")
        hosts = parse_table(self.mailctl(c, "hosts").stdout)
        self.assertIn(MX1, [h.get("HOST") for h in hosts])
        # A configuration change after the failover reaches mxd.
        self.assertEqual(rcpt_reply(m.host, m.port, f"someone@{NEW}")[0], 554)
        self.mailctl(c, "domain", "add", NEW, sink.next_hop)
        wait_for(lambda: rcpt_reply(m.host, m.port, f"someone@{NEW}")[0] == 250, 15,
                 interval=0.25, what=f"RCPT @{NEW} accepted after domain add")
        self.assertEqual(self.scalar(f"SELECT count(*) FROM domains WHERE name = '{NEW}'"), "1")
        # The report round (advisory-lock singleton) runs again: no round
        # fails any more once controld is back.
        failed = len(c.events("tlsrpt_round_failed"))
        time.sleep(3.5)
        self.assertEqual(len(c.events("tlsrpt_round_failed")), failed,
                         "report rounds still failing after the failover: "
                         f"{c.events('tlsrpt_round_failed')[-1:]}")
        print(f"\nfailover: stop+promote {took:.1f}s, controld healthy {recovered:.1f}s "
              "after the promotion", file=sys.stderr)

    def test_controld_started_with_the_standby_listed_first_lands_on_the_primary(self):
        # No target_session_attrs: controld asks for read-write itself.
        self.database = self.repl.uri(DB, order=("standby", "primary"))
        c = self.controld()
        self.assertEqual(self.connected_to(c), [self.repl.server("primary")])
        self.wait_healthy(c, timeout=15)
        self.mailctl(c, "domain", "add", NEW, "smtp:127.0.0.1:2525")
        self.assertIn(NEW, self.mailctl(c, "domain", "list").stdout)
        self.repl.wait_replayed()
        self.assertEqual(self.repl.standby.scalar(
            f"SELECT count(*) FROM domains WHERE name = '{NEW}'", db=DB), "1")


if __name__ == "__main__":
    cptest.main()
