#!/usr/bin/python3
"""TLS reports other domains send us (docs/reports.md, "Receiving"), from
controld's side: report mails handed over as an mxd hands them
(Collector.SubmitReport over gRPC, with the host's client certificate), read
tolerantly, stored once, refused with the reason and kept aside, shown by
`mailctl reports received` and `mailctl reports show`; and the addresses
the configuration snapshot gives every mxd (tlsrpt_addresses)."""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, HERE)
import cptest  # noqa: E402
from cptest import MX1, MX2, grpc_channel  # noqa: E402
import rptmail  # noqa: E402
from rptmail import DOMAIN  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

RCPT = "tlsrpt@" + DOMAIN


class ReceivedReportsTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.c = self.controld()
        self.n = 0

    def submit(self, mail, host=MX1, cert=None, mail_id=None, rcpt=RCPT):
        self.n += 1
        m = self.pb.ReceivedReportMail(
            host_id=host, id=mail_id or f"r{self.n}", message=mail,
            received_unix=int(time.time()), mail_from="bounces@sender.example",
            recipient=rcpt)
        ch = grpc_channel(self.c.addr, cert or (self.pki.mx1 if host == MX1 else self.pki.mx2),
                          self.pki.ca)
        try:
            return self.svc.CollectorStub(ch).SubmitReport(m, timeout=30)
        finally:
            ch.close()

    def received(self, *args):
        out = self.mailctl(self.c, "reports", "received", "--json", *args).stdout
        return json.loads(out)["reports"]

    def show(self, rid):
        return json.loads(self.mailctl(self.c, "reports", "show", f"r{rid}", "--json").stdout)

    def snapshot(self):
        ch = grpc_channel(self.c.addr, self.pki.mx1, self.pki.ca)
        try:
            stream = self.svc.FleetStub(ch).WatchConfig(
                self.pb.WatchRequest(host_id=MX1), timeout=10)
            return next(iter(stream))
        finally:
            ch.close()

    def test_snapshot_names_the_hosted_domains_tlsrpt_addresses(self):
        self.mailctl(self.c, "domain", "add", DOMAIN, "smtp:127.0.0.1:2525")
        self.mailctl(self.c, "domain", "add", "second.example", "smtp:127.0.0.1:2525")
        self.assertEqual(list(self.snapshot().tlsrpt_addresses), [],
                         "a domain whose DNS is not set up with mxfleet keeps its mail")
        self.mailctl(self.c, "dns", "set", DOMAIN)
        self.assertEqual(list(self.snapshot().tlsrpt_addresses), [RCPT])
        # Several rua, one outside the fleet, one upper case, one https:
        self.mailctl(self.c, "dns", "set", "second.example", "--tlsrpt-rua",
                     "mailto:Reports@Second.Example,mailto:tlsrpt@elsewhere.example,"
                     "https://reports.second.example/v1")
        self.assertEqual(list(self.snapshot().tlsrpt_addresses),
                         ["reports@second.example", RCPT])

    def test_reports_of_real_senders_are_stored_and_shown_with_their_counts(self):
        a1 = self.submit(rptmail.report_mail(rptmail.MICROSOFT, RCPT, gz=False,
                                             sender="tlsrpt-noreply@microsoft.example",
                                             org_domain="microsoft.example"))
        a2 = self.submit(rptmail.report_mail(rptmail.GOOGLE, RCPT, gz=True))
        a3 = self.submit(rptmail.report_mail(rptmail.OLDSTYLE, RCPT, gz=True,
                                             sender="postmaster@old.example",
                                             org_domain="old.example"))
        for a in (a1, a2, a3):
            self.assertFalse(a.refused, a.reason)
            self.assertFalse(a.duplicate)
        rows = {r["organization_name"]: r for r in self.received()}
        self.assertEqual(set(rows), {"Microsoft Corporation", "Google Inc.", "Old Style MTA"})
        ms = rows["Microsoft Corporation"]
        self.assertEqual((ms["total_success"], ms["total_failure"]), (4, 6))
        self.assertEqual(ms["report_id"], "133743605086584199+recv.example")
        self.assertEqual(ms["header_from"], "tlsrpt-noreply@microsoft.example")
        self.assertEqual(ms["host_id"], MX1)
        self.assertEqual(ms["recipient"], RCPT)
        self.assertIsNone(ms["refused"])
        g = rows["Google Inc."]
        self.assertEqual((g["total_success"], g["total_failure"]), (1029, 3))
        self.assertEqual(g["policy_domains"], [DOMAIN, "other.recv.example"])

        shown = self.show(ms["id"])
        sts = [p for p in shown["policies"] if p["policy-type"] == "sts"][0]
        self.assertEqual(sts["mx-host"], [], "Microsoft sends no mx-host")
        self.assertEqual([(f["receiving-ip"], f["failed-session-count"])
                          for f in sts["failure-details"]],
                         [("2001:db8::25", 3), ("192.0.2.25", 3)])
        self.assertNotIn("sending-mta-ip", sts["failure-details"][0])
        old = self.show(rows["Old Style MTA"]["id"])
        self.assertEqual(old["policies"][0]["mx-host"], ["*.recv.example"])
        self.assertEqual(old["begin_unix"], 1706745600, "a date without a zone is UTC")
        self.assertEqual(old["policies"][0]["failure-details"][0]["result-type"],
                         "sts-policy-fetch-error")

        text = self.mailctl(self.c, "reports", "show", f"r{g['id']}").stdout
        self.assertIn("failed 3 certificate-host-mismatch sending-mta-ip=209.85.220.41", text)
        self.assertIn("mx-host mx1.recv.example", text)
        listing = self.mailctl(self.c, "reports", "received").stdout
        self.assertRegex(listing, r"Google Inc\.\s+recv\.example,other\.recv\.example\s+1029\s+3")
        self.assertEqual([r["organization_name"] for r in
                          self.received("--domain", "other.recv.example")], ["Google Inc."])
        self.assertEqual(self.received("--domain", "nobody.example"), [])

    def test_a_resent_mail_is_stored_once(self):
        mail = rptmail.report_mail(rptmail.GOOGLE, RCPT)
        first = self.submit(mail, mail_id="20261205-abc")
        again = self.submit(mail, mail_id="20261205-abc")
        self.assertFalse(first.duplicate)
        self.assertTrue(again.duplicate)
        self.assertEqual(first.report, again.report)
        # The same id from another host is another mail.
        other = self.submit(mail, host=MX2, mail_id="20261205-abc")
        self.assertFalse(other.duplicate)
        self.assertEqual(len(self.received()), 2)
        self.assertEqual(self.scalar("SELECT count(*) FROM received_reports"), "2")

    def test_hostile_mails_are_refused_kept_aside_and_listed_with_the_reason(self):
        for name, mail, words in rptmail.hostile_mails(RCPT):
            with self.subTest(name):
                t0 = time.monotonic()
                a = self.submit(mail)
                self.assertLess(time.monotonic() - t0, 10)
                self.assertTrue(a.refused, name)
                self.assertIn(words, a.reason)
                self.assertTrue(self.c.events("tlsrpt_refused"), name)
        rows = self.received()
        self.assertEqual(len(rows), 5)
        for r in rows:
            self.assertTrue(r["refused"])
            self.assertGreater(r["raw_bytes"], 0, "the mail is kept aside")
        listing = self.mailctl(self.c, "reports", "received").stdout
        self.assertIn("REFUSED mail: no report part", listing)
        self.assertIn("REFUSED report: gzip", listing)
        line = [ln for ln in self.c.log_tail(400).splitlines() if "event=tlsrpt_refused" in ln][0]
        self.assertRegex(line, r"host=mx1\.fleet\.test .*reason=\"")
        # Still there, still answering.
        good = self.submit(rptmail.report_mail(rptmail.GOOGLE, RCPT))
        self.assertFalse(good.refused)

    def test_a_host_submits_only_as_itself(self):
        with self.assertRaises(self.grpc.RpcError) as e:
            self.submit(rptmail.report_mail(rptmail.GOOGLE, RCPT), host=MX1,
                        cert=self.pki.mx2)
        self.assertEqual(e.exception.code(), self.grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(self.received(), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
