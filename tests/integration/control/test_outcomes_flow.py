#!/usr/bin/python3
"""Outcomes flow from mxd to PostgreSQL: every SMTP session an mxd serves
shows up once in controld's outcomes table with its TLS facts, `mailctl
outcomes` counts it, and `mailctl hosts` shows the host alive."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import (ESTABLISHED, INBOUND, MX1, OFFERED, parse_table,  # noqa: E402
                    smtp_send)

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

N_TLS = 7
N_PLAIN = 5


class OutcomesFlowTest(cptest.FleetTestCase):

    def test_every_session_is_stored_once_with_its_tls_facts(self):
        c, m, sink = self.fleet()
        ids = [f"tls{i}" for i in range(N_TLS)] + [f"plain{i}" for i in range(N_PLAIN)]
        for msg_id in ids:
            smtp_send(m.host, m.port, msg_id, starttls=msg_id.startswith("tls"))
        sink.wait_messages(len(ids))

        rows, seqs, sessions = self.wait_outcomes(len(ids))
        self.assertEqual((rows, seqs, sessions), (len(ids),) * 3,
                         "each session stored exactly once")
        got = {r[0]: r[1:] for r in self.sql(
            "SELECT remote_ehlo, starttls, tls_version, tls_cipher, messages, recipients, "
            f"local_ip, local_port FROM outcomes WHERE host_id = '{MX1}' AND direction = {INBOUND}")}
        self.assertEqual(sorted(got), sorted(f"client-{i}.test" for i in ids))
        for msg_id in ids:
            starttls, version, cipher, msgs, rcpts, lip, lport = got[f"client-{msg_id}.test"]
            self.assertEqual((msgs, rcpts, lip, lport), ("1", "1", m.host, str(m.port)), msg_id)
            if msg_id.startswith("tls"):
                self.assertEqual(int(starttls), ESTABLISHED, msg_id)
                self.assertEqual(version, "TLSv1.3", msg_id)
                self.assertTrue(cipher, f"{msg_id}: no cipher recorded")
            else:
                self.assertEqual(int(starttls), OFFERED, msg_id)
                self.assertEqual(version, "", msg_id)

        # What the operator sees.
        out = parse_table(self.mailctl(c, "outcomes").stdout)
        mine = {(r["STARTTLS"], r["TLS"]): int(r["SESSIONS"]) for r in out
                if r["HOST"] == MX1 and r["DIRECTION"] == "inbound"}
        self.assertEqual(mine, {("established", "TLSv1.3"): N_TLS, ("offered", "-"): N_PLAIN},
                         f"mailctl outcomes:\n{out}")
        out_host = parse_table(self.mailctl(c, "outcomes", "--host", MX1).stdout)
        self.assertEqual(sum(int(r["SESSIONS"]) for r in out_host if r["DIRECTION"] == "inbound"),
                         len(ids))

    def test_hosts_shows_the_host_alive_with_version_and_cert_expiry(self):
        c, m, sink = self.fleet()
        smtp_send(m.host, m.port, "one", starttls=True)
        self.wait_outcomes(1)
        show = cptest.run([cptest.MAILCTL, "pki", "show", self.pki.mx1[0]]).stdout
        not_after = show.split("not_after=")[1].split()[0]
        version = cptest.run([cptest.MXD_BIN, "-V"]).stdout.split()[-1]

        def row():
            hosts = parse_table(self.mailctl(c, "hosts").stdout)
            r = [h for h in hosts if h["HOST"] == MX1]
            return r[0] if r and int(r[0]["OUTCOMES"]) >= 1 and r[0]["CERT_EXPIRES"] != "-" else None
        h = cptest.wait_for(row, 20, interval=0.5, what="mx1 in mailctl hosts")
        self.assertEqual(h["VERSION"], version)
        self.assertRegex(h["SEEN_AGO"], r"^\d+s$", f"last seen not recent: {h}")
        self.assertLess(int(h["SEEN_AGO"][:-1]), 30, f"last seen not recent: {h}")
        # pki show prints the expiry to the second as well.
        self.assertEqual(h["CERT_EXPIRES"][:19], not_after[:19], h)
        self.assertEqual((h["DROPPED"], h["CORRUPT"]), ("0", "0"))
        # last_seen moves with the heartbeats (control.heartbeat_interval = 1).
        first = self.scalar(f"SELECT extract(epoch FROM last_seen) FROM hosts WHERE host_id = '{MX1}'")
        cptest.wait_for(lambda: self.scalar(
            f"SELECT extract(epoch FROM last_seen) FROM hosts WHERE host_id = '{MX1}'") != first,
            10, interval=0.5, what="last_seen to move with heartbeats")
        # The same answer over mutual TLS with the admin certificate.
        hosts = parse_table(self.mailctl_admin_tls(c, "hosts").stdout)
        self.assertIn(MX1, [r["HOST"] for r in hosts])

    def test_control_key_may_be_readable_by_root_only(self):
        """The control certificate, key and CA where `mailctl pki` put them
        (a 0700 root directory, keys 0600 root), mxd started as root with
        `user`: like its SMTP keys, mxd loads them before it drops root, and
        the host's outcomes reach controld. (A regression test: the uploader
        used to read them after dropping root and died in a loop.)"""
        if not cptest.IS_ROOT:
            self.skipTest("needs root (mxd drops to `user`)")
        c = self.controld()
        sink = self.sink()
        m = self.mxd_with_control(c, sink)
        smtp_send(m.host, m.port, "rootkey", starttls=True)
        sink.wait_messages(1)
        try:
            self.wait_outcomes(1, timeout=15)
        except AssertionError as e:
            died = m.events("child_died", role="uploader")
            unreadable = m.events("cert_unreadable")
            raise AssertionError(
                f"{e}; uploader died {len(died)} times; "
                f"{unreadable[0] if unreadable else 'no cert_unreadable line'}") from None


if __name__ == "__main__":
    cptest.main()
