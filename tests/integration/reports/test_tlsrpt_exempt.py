#!/usr/bin/python3
"""Which delivery sessions the TLS reports we send count (RFC 8460;
docs/reports.md, "Aggregation"), from a real fleet: a private PostgreSQL,
controld with a `reports` group, and an mxd reporting to it that delivers
straight to fake MX hosts on loopback found through the signed test DNS of
tests/tools/dnstest (as the outbound tests do).

- A session that carried only TLS reports (envelope sender =
  controld.conf reports.mail_from, in any case) is stored with
  outcomes.tlsrpt_exempt and counted in no report: no reports about
  reports, which would loop.
- A session in which the operator's policy said "none" (STARTTLS offered,
  not used) is no TLS session: neither a success nor a failure.
- The error text of a failed session is in failure-reason-code, never in
  additional-information (a URI in RFC 8460 4.4)."""

import json
import os
import shutil
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import cptest  # noqa: E402
import outtest  # noqa: E402
from outtest import has_id, message, pick_hosts, unique_domain  # noqa: E402
import mxtest  # noqa: E402
from mxtest import LCList  # noqa: E402

SUBMITTER = "reports.fleet.test"
MAIL_FROM = f"tlsrpt-noreply@{SUBMITTER}"
REPORTS = {"organization_name": "Fleet Test Org", "contact_info": "mailto:tlsrpt@fleet.test",
           "submitter": SUBMITTER, "mail_from": MAIL_FROM}
ORDINARY = f"alice@{SUBMITTER}"
APPLY_WITHIN = 20

DNS = None


def setUpModule():
    global DNS
    cptest.setUpModule()
    DNS = outtest.Dns()


def tearDownModule():
    try:
        if DNS is not None:
            DNS.down()
    finally:
        cptest.tearDownModule()


class TlsrptExemptTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        self.port = outtest.remote_port()

    def one_mx(self, tag, tls):
        """A domain whose one MX is a sink on its own address (so no two
        domains share a cached connection), with or without STARTTLS."""
        dom = unique_domain(tag)
        mxname = f"mx.{dom}"
        (host,) = pick_hosts(1, self.port)
        DNS.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {host}"])
        sink = self.new_sink(name=f"mx-{host}", host=host, port=self.port, start=False,
                             tls=self.cert(f"mx-{host}", cn=mxname) if tls else None)
        sink.argv += ["--hostname", mxname]
        sink.env = cptest.child_env()
        sink.start()
        return dom, host, sink

    def fleet_with_reports(self, policies):
        c = self.controld(config={"reports": REPORTS})
        local = self.sink()
        m = self.mxd_with_control(
            c, local, resolver=DNS.resolver, trusted_networks=["127.0.0.0/8"],
            delivery={"remote_port": self.port, "retry_min": 1, "retry_max": 2},
            tls_policies=LCList(policies))
        # The first snapshot (with the reports' sender) makes mxd reload, and
        # the host's registration may make another version: mail is sent once
        # mxd runs the settled one (a reload restarts the delivery agents).
        deadline = time.time() + APPLY_WITHIN
        while True:
            v = self.scalar("SELECT version FROM config_state")
            m.wait_event("reloaded", timeout=max(1, deadline - time.time()),
                         pred=lambda r: r.get("config_version") == v)
            time.sleep(2)
            if self.scalar("SELECT version FROM config_state") == v:
                return c, m

    def send(self, m, sender, dom):
        msg_id = uuid.uuid4().hex[:12]
        replies = mxtest.send_message(m.host, m.port, sender, [f"u@{dom}"], message(msg_id))
        self.assertEqual(replies[-2].code, 250, f"mxd did not accept the message: {replies}")
        return msg_id

    def stored(self, host, want):
        """The outbound outcomes controld stored for the MX at host, once
        there are want of them: [(tlsrpt_exempt, result_type, frc, ai)]."""
        q = ("SELECT tlsrpt_exempt, pr->>'result_type', coalesce(pr->>'failure_reason_code', ''),"
             " coalesce(pr->>'additional_information', '') FROM outcomes,"
             " jsonb_array_elements(policy_results) pr"
             f" WHERE direction = 2 AND remote_ip = '{host}' ORDER BY seq")

        def rows():
            out = [list(r) for r in self.sql(q)]
            return out if len(out) >= want else None
        return cptest.wait_for(rows, 30, interval=0.3, what=f"{want} outcome(s) for {host}")

    def preview(self, c, dom):
        day = time.strftime("%Y-%m-%d", time.gmtime())
        return self.mailctl(c, "reports", "preview", "--domain", dom, "--day", day, "--json",
                            check=False)

    def summary(self, c, dom):
        r = self.preview(c, dom)
        self.assertEqual(r.returncode, 0, r.stderr)
        rep = json.loads(r.stdout)
        self.assertEqual(len(rep["policies"]), 1)
        return rep["policies"][0]

    def test_sessions_carrying_reports_are_stored_exempt_and_not_reported(self):
        ok_dom, ok_host, ok_sink = self.one_mx("exok", tls=True)
        rp_dom, rp_host, rp_sink = self.one_mx("exrp", tls=True)
        c, m = self.fleet_with_reports([])
        # the cached snapshot carries the sender (what the delivery agents use)
        self.assertEqual(self.cached_sender(m), MAIL_FROM)

        ok_id = self.send(m, ORDINARY, ok_dom)
        rp_id = self.send(m, "TLSRPT-NoReply@Reports.Fleet.Test", rp_dom)
        ok_sink.wait_message(has_id(ok_id), timeout=30)
        rp_sink.wait_message(has_id(rp_id), timeout=30)
        self.assertEqual(self.stored(ok_host, 1), [["f", "success", "", ""]])
        self.assertEqual(self.stored(rp_host, 1), [["t", "success", "", ""]])
        rec = m.wait_event("outbound_session", ip=rp_host)
        self.assertEqual(rec.get("tlsrpt_exempt"), "1")
        self.assertNotIn("tlsrpt_exempt", m.wait_event("outbound_session", ip=ok_host))

        self.assertEqual(self.summary(c, ok_dom)["summary"],
                         {"total-successful-session-count": 1, "total-failure-session-count": 0})
        r = self.preview(c, rp_dom)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"no TLS results for {rp_dom}", r.stderr)

    def test_failures_of_report_mail_are_not_reported_and_text_is_a_reason_code(self):
        # tls_policies encrypt to an MX without STARTTLS: every session fails.
        bad_dom, bad_host, _ = self.one_mx("exbad", tls=False)
        rbad_dom, rbad_host, _ = self.one_mx("exrbad", tls=False)
        c, m = self.fleet_with_reports([{"domain": bad_dom, "mode": "encrypt"},
                                        {"domain": rbad_dom, "mode": "encrypt"}])
        self.send(m, ORDINARY, bad_dom)
        self.send(m, MAIL_FROM, rbad_dom)
        (ex, rt, frc, ai), *_ = self.stored(bad_host, 1)
        self.assertEqual((ex, rt, ai), ("f", "starttls-not-supported", ""))
        self.assertRegex(frc, rf"^451 4\.7\.4 TLS policy encrypt for {bad_dom}: .*"
                              "starttls-not-supported$")
        self.assertEqual(self.stored(rbad_host, 1)[0][:2], ["t", "starttls-not-supported"])

        pol = self.summary(c, bad_dom)
        self.assertEqual(pol["summary"]["total-successful-session-count"], 0)
        fails = pol["summary"]["total-failure-session-count"]
        self.assertGreaterEqual(fails, 1)
        (fd,) = pol["failure-details"]
        self.assertEqual(fd["result-type"], "starttls-not-supported")
        self.assertEqual(fd["failure-reason-code"], frc)
        self.assertNotIn("additional-information", fd)
        self.assertEqual(fd["failed-session-count"], fails)
        r = self.preview(c, rbad_dom)
        self.assertEqual(r.returncode, 1, r.stdout)

    def test_session_without_tls_by_policy_is_not_a_tls_session(self):
        none_dom, none_host, none_sink = self.one_mx("exnone", tls=True)
        c, m = self.fleet_with_reports([{"domain": none_dom, "mode": "none"}])
        msg_id = self.send(m, ORDINARY, none_dom)
        got = none_sink.wait_message(has_id(msg_id), timeout=30)
        self.assertEqual(got.env["tls"], {})
        self.assertEqual(self.stored(none_host, 1), [["f", "tls-not-used", "", ""]])
        rec = m.wait_event("outbound_session", ip=none_host)
        self.assertEqual((rec["starttls"], rec["result"]), ("offered", "tls-not-used"))
        r = self.preview(c, none_dom)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn(f"no TLS results for {none_dom}", r.stderr)

    def cached_sender(self, m):
        pb = cptest.grpc_stubs()[1]
        snap = pb.ConfigSnapshot()
        with open(os.path.join(m.config["spool_dir"], "config-snapshot.pb"), "rb") as f:
            snap.ParseFromString(f.read())
        return snap.tlsrpt_sender

    def test_changed_mail_from_reaches_mxd_after_controld_restart(self):
        c, m = self.fleet_with_reports([])
        self.assertEqual(self.cached_sender(m), MAIL_FROM)
        v1 = int(self.scalar("SELECT version FROM config_state"))
        # restarted unchanged: no new version
        c.stop(timeout=10)
        c.start()
        self.assertEqual(int(self.scalar("SELECT version FROM config_state")), v1)
        c.stop(timeout=10)
        c.config["reports"] = dict(REPORTS, mail_from=f"reports@mail.{SUBMITTER}")
        c.start()
        v2 = self.scalar("SELECT version FROM config_state")
        self.assertEqual(int(v2), v1 + 1)
        m.wait_event("reloaded", timeout=APPLY_WITHIN, pred=lambda r: r.get("config_version") == v2)
        self.assertEqual(self.cached_sender(m), f"reports@mail.{SUBMITTER}")

    def test_migration_keeps_existing_day_partitions_and_their_rows(self):
        # A database migrated before 013, with a day partition and a row in it
        old_schema = os.path.join(self.wd, "schema-012")
        os.mkdir(old_schema)
        for f in sorted(os.listdir(cptest.SCHEMA_DIR)):
            if f.endswith(".sql") and f < "013":
                shutil.copy(os.path.join(cptest.SCHEMA_DIR, f), old_schema)
        c = self.controld(start=False, migrate=False, config={"schema_dir": old_schema})
        c.migrate()
        self.sql("SELECT outcomes_ensure_partition(date '2026-01-31')")
        self.sql("INSERT INTO outcomes (host_id, seq, batch_seq, session_id, direction, start_ts,"
                 " local_ip, local_port, remote_ip, remote_port, remote_ehlo, remote_ptr,"
                 " starttls, tls_version, tls_cipher, sni, tls_fail_stage, tls_fail_reason,"
                 " messages, recipients) VALUES ('mx1', 1, 1, 's1', 2, '2026-01-31 10:00Z',"
                 " '192.0.2.1', 1025, '198.51.100.5', 25, 'mx', '', 4, 'TLSv1.3', 'c', '', '', '',"
                 " 1, 1)")
        c.config["schema_dir"] = cptest.SCHEMA_DIR
        c.migrate()
        self.assertEqual(self.sql("SELECT tlsrpt_exempt FROM outcomes_20260131"), [("f",)])
        self.assertEqual(self.sql("SELECT attnotnull FROM pg_attribute WHERE attrelid ="
                                  " 'outcomes_20260131'::regclass AND attname = 'tlsrpt_exempt'"),
                         [("t",)])


if __name__ == "__main__":
    import unittest
    unittest.main()
