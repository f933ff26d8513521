#!/usr/bin/python3
"""Configuration snapshots: a domain added or removed with mailctl reaches
mxd within seconds without a restart, and an mxd started while controld is
down serves mail from its cached snapshot (docs/control-plane.md,
"Configuration snapshots")."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, parse_table, rcpt_reply, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

NEW = "new.test"
APPLY_WITHIN = 10  # seconds: "within a few seconds"


class ConfigSnapshotTest(cptest.FleetTestCase):

    def wait_rcpt(self, m, code, what):
        def check():
            r = rcpt_reply(m.host, m.port, f"someone@{NEW}")
            return r if r[0] == code else None
        try:
            return wait_for(check, APPLY_WITHIN, interval=0.25, what=what)
        except TimeoutError as e:
            raise AssertionError(f"{e}; RCPT now answers "
                                 f"{rcpt_reply(m.host, m.port, f'someone@{NEW}')}") from None

    def test_domain_add_and_rm_apply_without_restart(self):
        c, m, sink = self.fleet()
        pid = m.pid
        # Wait until mxd watches the configuration (the first snapshot).
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="mxd watching the configuration")
        code, text = rcpt_reply(m.host, m.port, f"someone@{NEW}")
        self.assertEqual(code, 554, text)

        out = self.mailctl(c, "domain", "add", NEW, sink.next_hop).stdout
        self.assertRegex(out, r"config version \d+: 1 domain")
        self.wait_rcpt(m, 250, f"RCPT @{NEW} accepted after domain add")
        listed = parse_table(self.mailctl(c, "domain", "list").stdout)
        self.assertEqual([(d["DOMAIN"], d["NEXT_HOP"]) for d in listed], [(NEW, sink.next_hop)])
        # Mail for the new domain goes to its next hop.
        smtp_send(m.host, m.port, "fornew", rcpt=f"user@{NEW}")
        msg = sink.wait_message(lambda x: x.rcpts == [f"user@{NEW}"], what="mail for new.test")
        self.assertEqual(cptest.mxtest.check_body(msg.data)[1], True)
        # mxd's own domain still works alongside.
        self.assertEqual(rcpt_reply(m.host, m.port, f"x@{cptest.LOCAL_DOMAIN}")[0], 250)

        self.mailctl(c, "domain", "rm", NEW)
        self.wait_rcpt(m, 554, f"RCPT @{NEW} refused again after domain rm")
        self.assertEqual(m.pid, pid, "mxd was restarted")
        self.assertTrue(m.running())
        self.assertFalse(m.events("child_died"), "an mxd process died")
        # The host reports the version it runs.
        v = int(self.scalar("SELECT version FROM config_state"))
        wait_for(lambda: self.scalar(
            f"SELECT config_version FROM hosts WHERE host_id = '{MX1}'") == str(v),
            10, interval=0.5, what=f"hosts.config_version = {v}")

    def test_started_while_controld_down_serves_cached_snapshot(self):
        c, m, sink = self.fleet()
        self.mailctl(c, "domain", "add", NEW, sink.next_hop)
        self.wait_rcpt(m, 250, f"RCPT @{NEW} accepted after domain add")
        cache = os.path.join(m.config["spool_dir"], "config-snapshot.pb")
        self.assertTrue(os.path.exists(cache), f"no cached snapshot {cache}")

        m.stop()
        self.assertIsNone(m.stop_problem)
        c.stop()
        m.start()
        # At once: no controld to wait for.
        code, text = rcpt_reply(m.host, m.port, f"someone@{NEW}")
        self.assertEqual(code, 250, f"cached snapshot not served: {code} {text}")
        smtp_send(m.host, m.port, "cached", rcpt=f"user@{NEW}", starttls=True)
        sink.wait_message(lambda x: x.rcpts == [f"user@{NEW}"], what="mail for new.test")

        # controld back with a change made meanwhile (through psql, as an
        # operator may): mxd picks it up.
        self.sql(f"DELETE FROM domains WHERE name = '{NEW}'")
        c.start()
        self.wait_rcpt(m, 554, f"RCPT @{NEW} refused after the change made while controld was down")


class TlsPolicyTest(cptest.FleetTestCase):
    """TLS policies live in PostgreSQL beside domains and routes and reach
    every mxd in its snapshot (outbound delivery, issue 4, applies them)."""

    def test_policy_set_reaches_mxd_and_bad_mode_is_refused(self):
        c, m, sink = self.fleet()
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="mxd watching the configuration")
        out = self.mailctl(c, "policy", "set", "bank.example", "dane-only").stdout
        self.assertRegex(out, r"config version \d+: 0 domain\(s\), 0 route\(s\), 1 TLS policy")
        v = int(self.scalar("SELECT version FROM config_state"))
        listed = parse_table(self.mailctl(c, "policy", "list").stdout)
        self.assertEqual([(p["DOMAIN"], p["MODE"]) for p in listed], [("bank.example", "dane-only")])
        # mxd reloads with it, and keeps it in its cache.
        m.wait_event("reloaded", timeout=APPLY_WITHIN,
                     pred=lambda r: r.get("tls_policies") == "1" and r.get("config_version") == str(v))
        cache = os.path.join(m.config["spool_dir"], "config-snapshot.pb")
        pb = cptest.grpc_stubs()[1]
        snap = pb.ConfigSnapshot()
        with open(cache, "rb") as f:
            snap.ParseFromString(f.read())
        self.assertEqual([(p.domain, p.mode) for p in snap.policies], [("bank.example", "dane-only")])

        # The same mode again changes nothing: no new version.
        self.mailctl(c, "policy", "set", "bank.example", "dane-only")
        self.assertEqual(int(self.scalar("SELECT version FROM config_state")), v)
        # A mode that does not exist is the operator's mistake: exit 1, nothing stored.
        r = self.mailctl(c, "policy", "set", "x.example", "maybe", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        self.assertEqual(self.scalar("SELECT count(*) FROM tls_policies"), "1")
        self.mailctl(c, "policy", "rm", "bank.example")
        self.assertEqual(parse_table(self.mailctl(c, "policy", "list").stdout), [])


if __name__ == "__main__":
    cptest.main()


class RouteSnapshotTest(cptest.FleetTestCase):
    """Routes and TLS policies set with mailctl are applied by mxd's delivery
    (docs/delivery.md): mail for a routed domain goes to the route's
    transport, and a policy asking for TLS holds it back from a next hop
    without STARTTLS."""

    def test_route_and_policy_from_controld_are_applied(self):
        c, m, sink = self.fleet(trusted_networks=["127.0.0.0/8"])
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="mxd watching the configuration")
        hub = self.sink(name="hub")
        # A transport mxd could not use is refused where the operator sees it.
        r = self.mailctl(c, "route", "add", "--recipient-domain", "routed.test", "smtps:hub:25",
                         check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("transport: expected smtp:HOST[:PORT]", r.stderr)

        self.mailctl(c, "route", "add", "--recipient-domain", "routed.test", hub.next_hop)
        v = int(self.scalar("SELECT version FROM config_state"))
        m.wait_event("reloaded", timeout=APPLY_WITHIN,
                     pred=lambda rec: rec.get("config_version") == str(v))
        smtp_send(m.host, m.port, "routed", rcpt="user@routed.test")
        hub.wait_message(lambda x: x.rcpts == ["user@routed.test"], what="routed mail at the hub")

        # encrypt for the hub's address: it offers no STARTTLS, so the next
        # message waits in the queue with the reason.
        self.mailctl(c, "policy", "set", hub.host, "encrypt")
        v = int(self.scalar("SELECT version FROM config_state"))
        m.wait_event("reloaded", timeout=APPLY_WITHIN,
                     pred=lambda rec: rec.get("config_version") == str(v))
        smtp_send(m.host, m.port, "held", rcpt="other@routed.test")
        rec = m.wait_event("deferred", rcpt="<other@routed.test>", timeout=20)
        self.assertIn(f"TLS policy encrypt for {hub.host}", rec["reply"])
        self.assertEqual(len(hub.names()), 1)
