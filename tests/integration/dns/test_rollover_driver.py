#!/usr/bin/python3
"""controld drives a host's TLSA key rollover (docs/dns.md, "Rollover") on
real components: knot serving the signed zone dyn.test. (tests/tools/dnstest),
PostgreSQL, controld stepping every second (dns.rollover_interval = 1) and
asking the zone's authoritative server directly (dns.zones[].servers), two
mxd that reported their names, served keys and next keys.

`mailctl tls rollover mx1` starts it; the next key's TLSA record is confirmed
on the server and the wait (2 x the TTL served) is shown with its end; a
controld killed with SIGKILL during the wait resumes from the stored state
(same state, same end); once the host reports a certificate for its next key
the rollover is at switch: the key_switches row is there and the snapshot a
WatchConfig client receives carries it. Refused: an unknown host, a host
with no next key, a second rollover of a host.

Then, with the host's side written by the test (see below), the rollover
goes on through next and retire to done: controld pushes the zone without
the old key's TLSA record (knot, asked directly, no longer serves it; the new
key's and the following next key's are there), and the key_switches row is
gone from the table and the snapshot.

`mailctl tls rollover HOST --cancel` ends a rollover at switch: done, the
status says cancelled, the KeySwitch leaves the table and the snapshot, the
driver leaves it alone; refused when there is none or it is done.

The host's side is written by the test (into host_identity and
host_certs, with both mxd stopped so that no heartbeat overwrites it) to
show the driver's steps one by one; test_rollover_dane.py walks the same
rollover with a real mxd switching and DANE senders delivering."""

import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_dns_publish as pub  # noqa: E402
from test_dns_publish import cptest, outtest, DOMAIN  # noqa: E402
from cptest import MX1, MX2, wait_for  # noqa: E402

TTL = 10  # the wait is 2 x TTL = 20 s: long enough to kill and restart controld in it


def setUpModule():
    pub.setUpModule()


def tearDownModule():
    pub.tearDownModule()


class RolloverDriverTest(pub.DnsPublishTest):
    # The publish tests are test_dns_publish.py's; this class reuses its setUp.
    test_push_check_drift_and_policy_change = None
    test_push_refused_while_the_records_have_an_error = None
    test_wrong_tsig_secret_is_refused_and_changes_nothing = None

    def controld(self, *args, config=None, **kw):
        if config and "dns" in config:
            config["dns"]["rollover_interval"] = 1
            zone = config["dns"]["zones"][0]
            zone["servers"] = [zone["server"]]
        return super().controld(*args, config=config, **kw)

    def tls(self, *args, check=True):
        return self.mailctl(self.c, "tls", *args, check=check, timeout=60)

    def status(self, host=MX1):
        return json.loads(self.tls("rollover", host, "--status", "--json").stdout)

    def wait_state(self, state, timeout=60):
        wait_for(lambda: self.status()["state"] == state, timeout, interval=0.5,
                 what=f"rollover of {MX1} at {state}: {self.status()}")
        return self.status()

    def snapshot_switches(self):
        grpc, pb, svc = cptest.grpc_stubs()
        ch = cptest.grpc_channel(self.c.addr, self.pki.mx2, self.pki.ca)
        try:
            stream = svc.FleetStub(ch).WatchConfig(pb.WatchRequest(host_id=MX2), timeout=10)
            try:
                snap = next(stream)
            finally:
                stream.cancel()
        finally:
            ch.close()
        return [(k.host_id, k.to_spki_sha256) for k in snap.key_switches]

    def served_tlsa(self):
        """The SPKIs of mx1's TLSA 3 1 1 records as knot serves them, asked
        directly (no resolver cache)."""
        host, port = pub.DNS.env["DNSTEST_UPDATE_SERVER"].rsplit(":", 1)
        r = outtest.dnstest.dns_query(host, int(port), f"_25._tcp.mx1.{DOMAIN}.", 52,
                                      timeout=2, rd=False, do=False)
        self.assertIsNotNone(r, "knot did not answer")
        _, _, answers = r
        return {msg[off + 3:off + ln].hex() for typ, off, ln, msg in answers
                if typ == 52 and msg[off:off + 3] == b"\x03\x01\x01"}

    def test_rollover_walks_to_done_and_resumes_after_a_kill(self):
        self.dns("set", DOMAIN, "--publish", "--ttl", str(TTL))
        self.push()
        # From here the hosts' reports are the test's: no heartbeat rewrites them.
        for m in self.mxd.values():
            m.stop()
        old = self.scalar(f"SELECT spki_sha256 FROM host_certs WHERE host_id = '{MX1}'"
                          " AND retired_at IS NULL")
        new = self.scalar(f"SELECT next_spki FROM host_identity WHERE host_id = '{MX1}'")

        # Refusals.
        r = self.tls("rollover", "mx-nosuch", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no host mx-nosuch is known", r.stderr)
        self.sql(f"UPDATE host_identity SET next_spki = '' WHERE host_id = '{MX2}'")
        r = self.tls("rollover", MX2, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"host {MX2} reports no next key", r.stderr)
        r = self.tls("rollover", MX1, "--status", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no rollover of host {MX1}", r.stderr)

        started = self.tls("rollover", MX1).stdout
        self.assertIn("state       publish", started)
        self.assertIn(f"new key     {new}", started)
        self.assertIn(f"old key     {old}", started)
        r = self.tls("rollover", MX1, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"a rollover of host {MX1} is not done yet", r.stderr)

        # The next key's TLSA is on the server already (pushed above): wait.
        st = self.wait_state("wait", 30)
        self.assertIn(f"{2} x TTL {TTL}", st["status"])
        self.assertGreaterEqual(st["wait_until_unix"] - st["entered_unix"], 2 * TTL)
        self.assertTrue(self.c.events("rollover", host=MX1, state="wait"))

        # Killed inside the wait, controld resumes where it was.
        self.c.send_signal(signal.SIGKILL)
        self.c.wait(10)
        self.c.start()
        again = self.status()
        self.assertEqual((again["state"], again["wait_until_unix"]),
                         ("wait", st["wait_until_unix"]))

        # The wait is over; the host has no certificate for its next key yet.
        st = self.wait_state("switch", 2 * TTL + 30)
        self.assertIn("waiting for a certificate", st["status"])
        self.assertEqual(self.scalar("SELECT count(*) FROM key_switches"), "0")
        self.sql(f"UPDATE host_identity SET next_cert_ready = true,"
                 f" next_cert_path = '/etc/mxd/next.pem' WHERE host_id = '{MX1}'")
        wait_for(lambda: self.scalar(f"SELECT to_spki FROM key_switches WHERE host_id = '{MX1}'")
                 == new, 30, interval=0.5, what="the key_switches row of mx1")
        self.assertIn(f"switching host {MX1}", self.status()["status"])
        # The snapshot a host's WatchConfig receives (controld reads it again
        # within CONTROLD_WATCH_POLL_MS of the change).
        wait_for(lambda: self.snapshot_switches() == [(MX1, new)], 20, interval=0.5,
                 what=f"key_switches in the snapshot: {self.snapshot_switches()}")
        self.assertTrue(self.c.events("rollover", host=MX1, state="switch"))

        # The host's side, written by the test (mxd's own is in
        # test_rollover_dane.py), in one
        # transaction (one report): it serves the new key, the old one is
        # retired, and it has made a following next key.
        following = "ab" * 32
        self.assertEqual(self.served_tlsa(), {old, new})
        self.sql(f"INSERT INTO host_certs (host_id, spki_sha256, names, not_after, key_type)"
                 f" SELECT host_id, '{new}', names, not_after, key_type FROM host_certs"
                 f" WHERE host_id = '{MX1}' AND spki_sha256 = '{old}';"
                 f" UPDATE host_certs SET retired_at = now() WHERE host_id = '{MX1}'"
                 f" AND spki_sha256 = '{old}';"
                 f" UPDATE host_identity SET next_spki = '{following}', next_cert_ready = false,"
                 f" next_cert_path = '' WHERE host_id = '{MX1}'")
        st = self.wait_state("done", 60)
        self.assertIn("is retired", st["status"])
        self.assertEqual(self.served_tlsa(), {new, following})
        self.assertEqual(self.scalar("SELECT count(*) FROM key_switches"), "0")
        wait_for(lambda: self.snapshot_switches() == [], 20, interval=0.5,
                 what="no key_switches in the snapshot")
        # One step may cross several states (switch -> next -> retire here).
        self.assertTrue(self.c.events("rollover", host=MX1, state="retire", **{"from": "switch"}))
        self.assertTrue(self.c.events("rollover", host=MX1, state="done", **{"from": "retire"}))
        self.assertTrue(self.c.events("rollover_push", host=MX1, domain=DOMAIN))
        # A new rollover of the host may start once this one is done.
        self.assertIn("state       publish", self.tls("rollover", MX1).stdout)

    def test_cancel_ends_the_rollover_and_withdraws_the_switch(self):
        """mailctl tls rollover HOST --cancel: the rollover is done (a new
        one may start), its KeySwitch leaves the table and the snapshot,
        and the driver leaves it alone."""
        self.dns("set", DOMAIN, "--publish", "--ttl", "2")
        self.push()
        for m in self.mxd.values():
            m.stop()
        new = self.scalar(f"SELECT next_spki FROM host_identity WHERE host_id = '{MX1}'")
        r = self.tls("rollover", MX1, "--cancel", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"no rollover of host {MX1}", r.stderr)

        self.tls("rollover", MX1)
        self.sql(f"UPDATE host_identity SET next_cert_ready = true,"
                 f" next_cert_path = '/etc/mxd/next.pem' WHERE host_id = '{MX1}'")
        wait_for(lambda: self.snapshot_switches() == [(MX1, new)], 60, interval=0.5,
                 what=f"the rollover at switch, in the snapshot: {self.status()}")

        st = json.loads(self.tls("rollover", MX1, "--cancel", "--json").stdout)
        self.assertEqual(st["state"], "done")
        self.assertIn("cancelled at ", st["status"])
        self.assertIn("in state switch", st["status"])
        self.assertEqual(self.scalar("SELECT count(*) FROM key_switches"), "0")
        wait_for(lambda: self.snapshot_switches() == [], 20, interval=0.5,
                 what="no key_switches in the snapshot")
        self.assertTrue(self.c.events("rollover", host=MX1, state="done", **{"from": "cancel"}))
        # Several driver ticks later (dns.rollover_interval = 1) nothing moved.
        time.sleep(3)
        self.assertEqual(self.status()["status"], st["status"])

        r = self.tls("rollover", MX1, "--cancel", check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"the rollover of host {MX1} is done already", r.stderr)
        self.assertIn("state       publish", self.tls("rollover", MX1).stdout)


if __name__ == "__main__":
    cptest.main()
