#!/usr/bin/python3
"""Configuration snapshots of any realistic size (issue 9, item 10).

A cached snapshot of 1 MiB or more was ignored when mxd started: with
controld down, every controld-managed domain vanished and its mail got 554.
Here 10,000 domains (a snapshot of about 1.2 MiB) reach mxd through controld,
mxd is restarted while controld is down, and mail to the last domain is still
accepted and delivered.

And controld refuses, on AddDomain, the names and next hops mxd could not
use, with INVALID_ARGUMENT and a message that says what is wrong."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import cptest  # noqa: E402
from cptest import parse_table, rcpt_reply, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

NDOMAINS = 10000
PAD = "p" * 63  # a longest label: 10,000 entries make a snapshot over 1 MiB


def domain(i):
    return f"d{i:05d}.{PAD}.large-snapshot.test"


class LargeSnapshotTest(cptest.FleetTestCase):

    def test_ten_thousand_domains_served_from_cache_with_controld_down(self):
        c, m, sink = self.fleet()
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 20, interval=0.2,
                 what="mxd watching the configuration")
        # One statement: one new configuration version, pushed to mxd.
        self.sql(f"INSERT INTO domains (name, next_hop) SELECT format('d%s.{PAD}"
                 f".large-snapshot.test', lpad(i::text, 5, '0')), '{sink.next_hop}'"
                 f" FROM generate_series(1, {NDOMAINS}) AS i")
        last, first = domain(NDOMAINS), domain(1)
        self.assertEqual(self.scalar(f"SELECT count(*) FROM domains WHERE name = '{last}'"), "1")
        version = self.scalar("SELECT version FROM config_state")
        cache = os.path.join(m.config["spool_dir"], "config-snapshot.pb")

        def cached():
            try:
                return os.path.getsize(cache) > (1 << 20) and self.scalar(
                    f"SELECT config_version FROM hosts WHERE host_id = '{cptest.MX1}'") == version
            except OSError:
                return False
        wait_for(cached, 60, interval=0.5, what=f"a snapshot of version {version} over 1 MiB"
                 f" cached at {cache}")
        self.assertGreater(os.path.getsize(cache), 1 << 20)
        # Applied live too, without blocking the master (a reload that took
        # minutes would hold SIGTERM back as well).
        m.wait_event("reloaded", timeout=60,
                     pred=lambda e: e.get("domains") == str(NDOMAINS + 1))

        m.stop()
        self.assertIsNone(m.stop_problem)
        c.stop()
        m.start()
        self.assertFalse(m.events("snapshot_ignored"), "mxd ignored its cached snapshot")
        for d in (first, last):
            code, text = rcpt_reply(m.host, m.port, f"someone@{d}")
            self.assertEqual(code, 250, f"RCPT @{d} with controld down: {code} {text}")
        smtp_send(m.host, m.port, "large", rcpt=f"user@{last}")
        sink.wait_message(lambda x: x.rcpts == [f"user@{last}"], timeout=30,
                          what="mail for the last of 10,000 domains")
        self.assertFalse(m.events("child_died"), "an mxd process died")

    def test_add_domain_refuses_bad_names_and_next_hops(self):
        c = self.controld()
        hop = "smtp:127.0.0.1:2525"
        bad = [
            ("a..b", hop, "empty label"),
            ("-x.test", hop, "hyphen"),
            (("l" * 300) + ".test", hop, "longer than 63"),
            ("exa mple.test", hop, "letters, digits and hyphens"),
            ("ex_ample.test", hop, "letters, digits and hyphens"),
            ("bücher.test", hop, "xn--"),
            ("x@y.test", hop, "letters, digits and hyphens"),
            ("a." * 127 + "test", hop, "253"),
            ("ok.test", "host:99999", "smtp:HOST"),
            ("ok.test", "smtp:host.test:99999", "port"),
            ("ok.test", "smtp:host.test:0", "port"),
            ("ok.test", "smtp:bad..host:25", "next_hop host"),
            ("ok.test", "lmtp:-bad.test:24", "next_hop host"),
        ]
        for name, nh, why in bad:
            with self.subTest(name=name[:40], next_hop=nh):
                p = self.mailctl(c, "domain", "add", name, nh, check=False)
                self.assertNotEqual(p.returncode, 0, p.stdout)
                self.assertIn("INVALID_ARGUMENT", p.stderr)
                self.assertIn(why, p.stderr)
        self.assertEqual(parse_table(self.mailctl(c, "domain", "list").stdout), [],
                         "a refused domain was stored")

        # Good ones are taken; a trailing dot is the same name without it.
        good = [("example.test.", "example.test", hop),
                ("xn--bcher-kva.test", "xn--bcher-kva.test", "lmtp:127.0.0.1:24"),
                ("Mixed-Case.Test", "Mixed-Case.Test", "smtp:[::1]:25"),
                ("x1.test", "x1.test", "smtp:relay.example.test"),
                ("unix.test", "unix.test", "lmtp:unix:/run/lmtp.sock")]
        for name, _, nh in good:
            self.mailctl(c, "domain", "add", name, nh)
        listed = {d["DOMAIN"]: d["NEXT_HOP"] for d in
                  parse_table(self.mailctl(c, "domain", "list").stdout)}
        self.assertEqual(listed, {stored: nh for _, stored, nh in good})
        p = self.mailctl(c, "domain", "add", "EXAMPLE.test.", hop, check=False)
        self.assertIn("ALREADY_EXISTS", p.stderr)


if __name__ == "__main__":
    cptest.main()
