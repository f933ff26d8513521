#!/usr/bin/python3
"""mailctl for scripts and monitoring (issue 13, item 5): every command that
prints takes --json (after the command, or before it: `mailctl --json CMD`)
and then prints one JSON document on stdout that says what the text says;
errors go to stderr with a non-zero exit. `mailctl hosts` shows each host's
health (state ok / warn / stale, problems on WARN lines) and exits 0 only
when every host is healthy. A real controld and mxd; a second host's
heartbeats are sent by the test over gRPC with mx2's certificate, exactly
as a lagging mxd would send them."""

import json
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import MX1, MX2, parse_table, wait_for  # noqa: E402

mxtest = cptest.mxtest
setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

DOMAIN = "example.org"


class MailctlJsonTest(cptest.FleetTestCase):

    def js(self, c, *args, global_form=False):
        """mailctl ARGS --json (or mailctl --json ARGS): exit 0, nothing on
        stderr, one JSON document on stdout."""
        argv = ["--json", *args] if global_form else [*args, "--json"]
        p = self.mailctl(c, *argv, check=False)
        self.assertEqual(p.returncode, 0, f"mailctl {' '.join(argv)}: {p.stderr}")
        self.assertEqual(p.stderr, "", f"mailctl {' '.join(argv)}")
        return json.loads(p.stdout)

    def hosts(self, c, *args):
        """(exit status, text, JSON document) of mailctl hosts ARGS, text
        and JSON saying the same (asked again while a heartbeat changed
        something in between)."""
        for _ in range(10):
            t = self.mailctl(c, "hosts", *args, check=False)
            j = self.mailctl(c, "hosts", *args, "--json", check=False)
            self.assertIn(t.returncode, (0, 1), t.stderr)
            doc = json.loads(j.stdout)
            rows = parse_table(t.stdout.split("\n\n")[0])
            if (t.returncode == j.returncode
                    and [(r["HOST"], r["STATE"]) for r in rows]
                    == [(h["host_id"], h["state"]) for h in doc["hosts"]]):
                return t.returncode, t.stdout, doc
            time.sleep(0.3)
        raise AssertionError(f"mailctl hosts: text and JSON differ:\n{t.stdout}\n{j.stdout}")

    def heartbeat(self, c, **fields):
        """One Heartbeat as mx2 (its certificate), fields as given; returns
        once mailctl hosts shows them (controld answers a heartbeat before
        its write is done)."""
        grpc, pb, svc = cptest.grpc_stubs()
        ch = cptest.grpc_channel(c.addr, self.pki.mx2, self.pki.ca)
        self.addCleanup(ch.close)
        req = pb.HeartbeatRequest(host_id=MX2, version="test", **fields)
        svc.FleetStub(ch).Heartbeat(req, timeout=10)

        def shown():
            h = [h for h in self.hosts(c)[2]["hosts"] if h["host_id"] == MX2]
            return h and all(h[0].get(k, 0) == v for k, v in fields.items())
        wait_for(shown, 20, interval=0.3, what="mx2's heartbeat in mailctl hosts")

    def healthy(self, c):
        """Wait until mailctl hosts says every host is ok and on the newest
        config; its (text, JSON)."""
        def ok():
            rc, text, doc = self.hosts(c)
            return (text, doc) if rc == 0 and doc["hosts"] and \
                all(h["config_behind"] == 0 for h in doc["hosts"]) else None
        return wait_for(ok, 20, interval=0.5, what="mailctl hosts exit 0")

    # ---- --json on every command that prints

    def test_configuration_commands_print_json_matching_the_text(self):
        c, m, sink = self.fleet()
        before = self.js(c, "domain", "list")
        self.assertEqual(before, {"domains": []})

        added = self.js(c, "domain", "add", DOMAIN, "smtp:127.0.0.1:2525")
        self.assertEqual(added["change"], "AddDomain")
        self.assertEqual(added["request"], {"name": DOMAIN, "next_hop": "smtp:127.0.0.1:2525"})
        self.assertGreater(added["config_version"], 1)
        self.assertEqual(added["domains"], 1)
        listed = self.js(c, "domain", "list")
        self.assertEqual(listed, {"domains": [{"name": DOMAIN, "next_hop": "smtp:127.0.0.1:2525"}]})
        self.assertEqual(self.js(c, "domain", "list", global_form=True), listed)
        text = parse_table(self.mailctl(c, "domain", "list").stdout)
        self.assertEqual([(r["DOMAIN"], r["NEXT_HOP"]) for r in text],
                         [(d["name"], d["next_hop"]) for d in listed["domains"]])

        v = self.js(c, "domain", "recipients", DOMAIN, "add", "alice", "bob")["config_version"]
        self.assertGreater(v, added["config_version"])
        mode = self.js(c, "domain", "recipients", DOMAIN, "mode", "list")
        self.assertEqual((mode["change"], mode["request"]["mode"]), ("SetRecipientCheck", "list"))
        rcpts = self.js(c, "domain", "recipients", DOMAIN, "list")
        self.assertEqual(rcpts, {"domain": DOMAIN, "mode": "list", "local_parts": ["alice", "bob"]})
        self.assertEqual(self.mailctl(c, "domain", "recipients", DOMAIN, "list").stdout,
                         "domain=example.org mode=list recipients=2\nalice\nbob\n")

        self.js(c, "route", "add", "--recipient-domain", "example.net", "smtp:10.0.0.9:25")
        routes = self.js(c, "route", "list")
        self.assertEqual(routes["routes"], [{"match_sender_domain": "",
                                             "match_recipient_domain": "example.net",
                                             "min_attempt": 0, "transport": "smtp:10.0.0.9:25"}])
        text = parse_table(self.mailctl(c, "route", "list").stdout)
        self.assertEqual([(r["RECIPIENT_DOMAIN"], r["TRANSPORT"]) for r in text],
                         [("example.net", "smtp:10.0.0.9:25")])

        self.js(c, "policy", "set", "bank.example", "dane-only", global_form=True)
        self.assertEqual(self.js(c, "policy", "list"),
                         {"policies": [{"domain": "bank.example", "mode": "dane-only"}]})
        self.assertIn("bank.example", self.mailctl(c, "policy", "list").stdout)

        dns = self.js(c, "dns", "set", DOMAIN, "--hosts", MX1)
        self.assertEqual(dns["change"], "SetDomainDns")
        # Exit 1 when an error blocks publishing (this fleet has no public
        # address): the records and the errors are in the document anyway.
        p = self.mailctl(c, "dns", "records", DOMAIN, "--json", check=False)
        recs = json.loads(p.stdout)
        self.assertEqual((recs["domain"], p.returncode), (DOMAIN, 1 if recs["errors"] else 0))
        self.assertEqual(self.js(c, "dns", "show", DOMAIN, global_form=True)["hosts"], [MX1])

        # Removals say what they changed, and the lists follow.
        last = 0
        for args in (("policy", "rm", "bank.example"),
                     ("route", "rm", "--recipient-domain", "example.net", "smtp:10.0.0.9:25"),
                     ("domain", "recipients", DOMAIN, "rm", "bob"),
                     ("domain", "rm", DOMAIN)):
            r = self.js(c, *args)
            self.assertGreater(r["config_version"], last, args)
            last = r["config_version"]
        self.assertEqual(self.js(c, "policy", "list"), {"policies": []})
        self.assertEqual(self.js(c, "route", "list"), {"routes": []})
        self.assertEqual(self.js(c, "domain", "list"), {"domains": []})
        # The snapshot version the hosts get is the one the last change named.
        self.assertEqual(int(self.scalar("SELECT version FROM config_state")), last)

    def test_errors_go_to_stderr_with_a_nonzero_exit(self):
        c = self.controld()
        for args in (("domain", "rm", "nosuch.example", "--json"),
                     ("--json", "policy", "rm", "nosuch.example"),
                     ("domain", "recipients", "nosuch.example", "list", "--json")):
            p = self.mailctl(c, *args, check=False)
            self.assertEqual(p.returncode, 1, args)
            self.assertEqual(p.stdout, "", args)
            self.assertIn("NOT_FOUND", p.stderr, args)
        p = self.mailctl(c, "route", "add", "--json", check=False)
        self.assertEqual((p.returncode, p.stdout), (2, ""))
        self.assertIn("usage", p.stderr)

    def test_outcomes_json_counts_what_the_table_counts(self):
        c, m, sink = self.fleet()
        cptest.many_sessions(m.host, m.port, ["a.test", "b.test", "c.test"], threads=1)
        self.wait_outcomes(3)
        doc = self.js(c, "outcomes", "--host", MX1)
        self.assertGreater(doc["since_unix"], time.time() - 86400 - 60)
        text = parse_table(self.mailctl(c, "outcomes", "--host", MX1).stdout)
        self.assertEqual(
            sorted((r["DIRECTION"], r["STARTTLS"], int(r["SESSIONS"])) for r in text),
            sorted((r["direction"], r["starttls"], r["sessions"]) for r in doc["rows"]))
        self.assertEqual(sum(r["sessions"] for r in doc["rows"] if r["direction"] == "inbound"), 3)
        self.assertEqual({r["host_id"] for r in doc["rows"]}, {MX1})

    def test_pki_commands_print_json(self):
        d = os.path.join(self.wd, "pki")
        mailctl = [cptest.MAILCTL]
        init = json.loads(cptest.run(mailctl + ["--json", "pki", "init", d]).stdout)
        self.assertEqual(init, {"dir": d, "ca_cert": f"{d}/ca.pem", "ca_key": f"{d}/ca.key"})
        issued = json.loads(cptest.run(mailctl + ["pki", "issue", d, "mx9.fleet.test",
                                                  "--days", "20", "--json"]).stdout)
        self.assertEqual((issued["name"], issued["role"], issued["cert"]),
                         ("mx9.fleet.test", "host", f"{d}/mx9.fleet.test.pem"))
        shown = json.loads(cptest.run(mailctl + ["pki", "show", issued["cert"], "--json"]).stdout)
        text = cptest.run(mailctl + ["pki", "show", issued["cert"]]).stdout
        fields = dict(kv.split("=", 1) for kv in text.split())
        self.assertEqual((shown["name"], shown["role"], shown["not_after"], shown["serial"]),
                         (fields["name"], fields["role"], fields["not_after"], fields["serial"]))
        self.assertAlmostEqual(shown["not_after_unix"], time.time() + 20 * 86400, delta=600)
        p = cptest.run(mailctl + ["pki", "show", os.path.join(d, "nothing.pem"), "--json"],
                       check=False)
        self.assertEqual((p.returncode, p.stdout), (1, ""))

        c = self.controld()
        rev = self.js(c, "pki", "revoke", self.pki.dir, MX2)
        self.assertEqual((rev["name"], rev["newly_revoked"]), (MX2, True))
        self.assertEqual(rev["serial"], json.loads(cptest.run(
            mailctl + ["pki", "show", self.pki.mx2[0], "--json"]).stdout)["serial"])
        self.assertFalse(self.js(c, "pki", "revoke", self.pki.dir, MX2)["newly_revoked"])
        self.assertEqual(self.sql("SELECT name FROM revoked_certificates"), [(MX2,)])

    # ---- mailctl hosts: health at a glance

    def test_hosts_healthy_host_exits_0_with_state_ok(self):
        c, m, sink = self.fleet()
        text, doc = self.healthy(c)
        rows = {r["HOST"]: r for r in parse_table(text)}
        self.assertEqual(rows[MX1]["STATE"], "ok")
        self.assertRegex(rows[MX1]["SEEN_AGO"], r"^\d+s$")
        self.assertNotIn("WARN", text)
        h = [h for h in doc["hosts"] if h["host_id"] == MX1][0]
        self.assertEqual((h["state"], h["problems"]), ("ok", []))
        self.assertTrue(doc["ok"])
        latest = int(self.scalar("SELECT version FROM config_state"))
        self.assertEqual((h["config_version"], h["config_version_latest"], h["config_behind"]),
                         (latest, latest, 0))
        self.assertLess(h["last_seen_ago_seconds"], 5)
        self.assertIn("queue_messages", h)
        self.assertGreater(h["cert_not_after_unix"], time.time() + 14 * 86400)

    def test_hosts_stale_when_heartbeats_stop(self):
        c, m, sink = self.fleet()  # heartbeat_interval 1
        self.healthy(c)
        m.killpg(signal.SIGKILL)
        m.wait(10)

        def stale():
            rc, text, doc = self.hosts(c, "--stale-after", "3")
            return (rc, text, doc) if rc == 1 else None
        rc, text, doc = wait_for(stale, 20, interval=0.5, what="mx1 stale")
        self.assertEqual(parse_table(text.split("\n\n")[0])[0]["STATE"], "stale")
        self.assertRegex(text, rf"(?m)^WARN {re.escape(MX1)}: not seen for \d+s")
        h = doc["hosts"][0]
        self.assertEqual(h["state"], "stale")
        self.assertEqual([p["code"] for p in h["problems"]], ["stale"])
        self.assertFalse(doc["ok"])
        # The threshold is the operator's: 3 intervals of their heartbeat.
        rc, text, doc = self.hosts(c, "--stale-after", "3600")
        self.assertEqual((rc, doc["hosts"][0]["state"]), (0, "ok"))

    def test_hosts_shows_a_host_behind_on_config(self):
        c, m, sink = self.fleet()
        self.healthy(c)
        v = self.js(c, "domain", "add", DOMAIN, "smtp:127.0.0.1:2525")["config_version"]
        # mx2 still runs the snapshot before the change.
        self.heartbeat(c, config_version=v - 1, cert_not_after_unix=int(time.time()) + 90 * 86400)
        # Right after a change being behind is normal (until the next
        # heartbeat): shown, not a problem.
        rc, text, doc = self.hosts(c, "--stale-after", "60")
        h = {h["host_id"]: h for h in doc["hosts"]}
        self.assertEqual((h[MX2]["config_behind"], h[MX2]["problems"]), (1, []), text)
        self.assertGreater(h[MX2]["config_latest_unix"], time.time() - 60)
        # Still behind once the change is older than the window: a problem.
        time.sleep(5)
        self.heartbeat(c, config_version=v - 1, cert_not_after_unix=int(time.time()) + 90 * 86400)
        rc, text, doc = self.hosts(c, "--stale-after", "3")
        self.assertEqual(rc, 1, text)
        row = {r["HOST"]: r for r in parse_table(text.split("\n\n")[0])}[MX2]
        self.assertEqual((row["STATE"], row["CONFIG"], row["BEHIND"]), ("warn", str(v - 1), "1"))
        self.assertIn(f"WARN {MX2}: config version {v - 1}, 1 behind {v}", text)
        h = {h["host_id"]: h for h in doc["hosts"]}
        self.assertEqual((h[MX2]["config_behind"], h[MX2]["config_version_latest"]), (1, v))
        self.assertEqual([p["code"] for p in h[MX2]["problems"]], ["config_behind"])
        # The real mxd follows the change and stays healthy.
        wait_for(lambda: [x for x in self.hosts(c)[2]["hosts"]
                          if x["host_id"] == MX1 and x["state"] == "ok"
                          and x["config_version"] == v], 20, interval=0.5,
                 what="mx1 on the new version")

    def test_hosts_flags_certificate_expiry_refused_batches_and_quarantine(self):
        c = self.controld()
        # A host certificate valid for 5 days, issued as an operator would.
        cptest.run([cptest.MAILCTL, "pki", "issue", self.pki.dir, "mx3.fleet.test",
                    "--days", "5"])
        s = self.sink()
        self.mxd_with_control(c, s, cert=self.pki.pair("mx3.fleet.test"))

        def listed():
            rc, text, doc = self.hosts(c)
            h = doc["hosts"][0] if doc["hosts"] else {}
            return (rc, text, doc) if h.get("cert_not_after_unix") and h["config_behind"] == 0 \
                else None
        rc, text, doc = wait_for(listed, 20, interval=0.5, what="mx3 in mailctl hosts")
        self.assertEqual(rc, 1, text)
        self.assertRegex(text, r"(?m)^WARN mx3\.fleet\.test: certificate expires in [45]d ")
        h = doc["hosts"][0]
        self.assertEqual((h["state"], [p["code"] for p in h["problems"]]),
                         ("warn", ["cert_expiring"]))
        # --cert-warn-days moves the threshold.
        self.assertEqual(self.hosts(c, "--cert-warn-days", "3")[0], 0)

        # mx2 reports an expired certificate, refused batches, quarantined records.
        self.heartbeat(c, config_version=int(self.scalar("SELECT version FROM config_state")),
                       cert_not_after_unix=int(time.time()) - 3600, batches_refused=2,
                       outcomes_quarantined=1)
        rc, text, doc = self.hosts(c)
        self.assertEqual(rc, 1)
        h = {h["host_id"]: h for h in doc["hosts"]}[MX2]
        self.assertEqual(sorted(p["code"] for p in h["problems"]),
                         ["batches_refused", "cert_expired", "outcomes_quarantined"])
        self.assertIn(f"WARN {MX2}: certificate expired", text)
        self.assertIn(f"WARN {MX2}: 2 outcome batches refused", text)
        self.assertIn(f"WARN {MX2}: 1 outcome record(s) quarantined", text)
        row = {r["HOST"]: r for r in parse_table(text.split("\n\n")[0])}[MX2]
        self.assertEqual((row["REFUSED"], row["QUARANTINED"]), ("2", "1"))

    def test_hosts_with_no_hosts_exits_0(self):
        c = self.controld()
        rc, text, doc = self.hosts(c)
        self.assertEqual((rc, doc["hosts"], doc["ok"]), (0, [], True))


if __name__ == "__main__":
    cptest.main()
