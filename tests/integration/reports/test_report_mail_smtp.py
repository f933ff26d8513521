#!/usr/bin/python3
"""TLS reports other domains send to a hosted domain's TLSRPT address, end
to end (docs/reports.md, "Receiving"): Python's smtplib sends report mails
to a real mxd, which keeps them in <spool>/reports/ (not relayed) and hands
them to controld (Collector.SubmitReport); `mailctl reports received` and
`show` show them. An ordinary recipient of the same message still reaches
the sink; a mail resent to controld is stored once; hostile mails are
refused, kept aside and listed, with mxd and controld still running."""

import json
import os
import shutil
import smtplib
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, HERE)
import cptest  # noqa: E402
from cptest import MX1, wait_for  # noqa: E402
import rptmail  # noqa: E402
from rptmail import DOMAIN  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

RCPT = "tlsrpt@" + DOMAIN
USER = "user@" + DOMAIN


class ReportMailSmtpTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        self.c, self.m, self.sink_ = self.fleet()
        self.mailctl(self.c, "domain", "add", DOMAIN, self.sink_.next_hop)
        self.mailctl(self.c, "dns", "set", DOMAIN)
        v = self.scalar("SELECT version FROM config_state")
        wait_for(lambda: self.scalar(
            f"SELECT config_version FROM hosts WHERE host_id = '{MX1}'") == v,
            20, interval=0.3, what=f"mxd on config version {v}")
        time.sleep(1)  # the master's reload after the uploader saw it
        self.reports_dir = os.path.join(self.m.config["spool_dir"], "reports")

    def send(self, mail, rcpts, sender="noreply-smtp-tls-reporting@google.example"):
        s = smtplib.SMTP(self.m.host, self.m.port, timeout=30)
        try:
            s.ehlo()
            s.sendmail(sender, rcpts, mail)
            s.quit()
        finally:
            s.close()

    def received(self):
        return json.loads(self.mailctl(self.c, "reports", "received", "--json").stdout)["reports"]

    def wait_received(self, n, what):
        return wait_for(lambda: (lambda r: r if len(r) >= n else None)(self.received()),
                        30, interval=0.5, what=what)

    def pending(self):
        return [n for n in os.listdir(self.reports_dir) if not n.startswith(".")] \
            if os.path.isdir(self.reports_dir) else []

    def test_report_mails_reach_controld_and_an_ordinary_recipient_is_relayed(self):
        self.send(rptmail.report_mail(rptmail.MICROSOFT, RCPT, gz=False,
                                      sender="tlsrpt-noreply@microsoft.example",
                                      org_domain="microsoft.example"), [RCPT],
                  sender="tlsrpt-noreply@microsoft.example")
        self.send(rptmail.report_mail(rptmail.GOOGLE, RCPT), [RCPT, USER])
        self.send(rptmail.report_mail(rptmail.OLDSTYLE, RCPT.upper()), [RCPT.upper()])
        rows = {r["organization_name"]: r for r in self.wait_received(3, "three reports")}
        self.assertEqual(set(rows), {"Microsoft Corporation", "Google Inc.", "Old Style MTA"})
        ms, g = rows["Microsoft Corporation"], rows["Google Inc."]
        self.assertEqual((ms["total_success"], ms["total_failure"]), (4, 6))
        self.assertEqual((g["total_success"], g["total_failure"]), (1029, 3))
        self.assertEqual(ms["mail_from"], "tlsrpt-noreply@microsoft.example")
        self.assertEqual(ms["host_id"], MX1)
        self.assertEqual(ms["recipient"], RCPT)
        self.assertEqual(rows["Old Style MTA"]["total_success"], 7)
        shown = self.mailctl(self.c, "reports", "show", f"r{ms['id']}").stdout
        self.assertIn("failed 3 validation-failure receiving-mx-hostname=mail.recv.example"
                      " receiving-ip=192.0.2.25", shown)

        # The ordinary recipient of Google's message reached the sink; the
        # report address never did.
        msg = self.sink_.wait_message(lambda x: USER in x.rcpts, what="mail for user@")
        self.assertEqual(msg.rcpts, [USER])
        self.assertIn(b"application/tlsrpt+gzip", msg.data)
        time.sleep(1)
        self.assertFalse([x for x in self.sink_.messages() if RCPT in x.rcpts])
        wait_for(lambda: self.pending() == [], 10, what="reports/ emptied after the acks")
        self.assertTrue(self.m.events("tlsrpt_kept"))

    def test_a_mail_sent_while_controld_is_down_arrives_once(self):
        self.c.stop()
        self.send(rptmail.report_mail(rptmail.GOOGLE, RCPT), [RCPT])
        self.assertEqual(len(self.pending()), 1, "kept in reports/ while controld is away")
        kept = os.path.join(self.reports_dir, self.pending()[0])
        copy = os.path.join(self.wd, "kept-copy")
        shutil.copy(kept, copy)
        owner = os.stat(kept)
        self.c.start()
        rows = self.wait_received(1, "the report after controld came back")
        self.assertEqual(rows[0]["organization_name"], "Google Inc.")
        wait_for(lambda: self.pending() == [], 15, what="reports/ emptied after the ack")
        # The ack lost (mxd stopped between controld's commit and the
        # unlink): the same file is sent again and stored once.
        self.m.stop()
        shutil.copy(copy, kept)
        os.chown(kept, owner.st_uid, owner.st_gid)   # mxd's user, as it wrote it
        self.m.start()
        wait_for(lambda: self.pending() == [], 30, what="the resent file acknowledged")
        # The log line may follow the unlink by a moment.
        wait_for(lambda: self.m.events("tlsrpt_submitted", duplicate="1"), 10,
                 what="the duplicate logged")
        self.assertEqual(len(self.received()), 1)
        self.assertEqual(self.scalar("SELECT count(*) FROM received_reports"), "1")

    def test_hostile_mails_are_refused_listed_and_nothing_stops(self):
        hostile = rptmail.hostile_mails(RCPT)
        for name, mail, _ in hostile:
            self.send(mail, [RCPT])
        rows = self.wait_received(len(hostile), "every hostile mail stored aside")
        self.assertTrue(all(r["refused"] for r in rows), rows)
        reasons = " | ".join(r["refused"] for r in rows)
        for name, _, words in hostile:
            self.assertIn(words, reasons, name)
        self.assertEqual(len(self.c.events("tlsrpt_refused")), len(hostile))
        self.assertTrue(self.m.running())
        self.assertFalse(self.m.events("child_died"))
        # Still working: a good report after them.
        self.send(rptmail.report_mail(rptmail.GOOGLE, RCPT), [RCPT])
        self.wait_received(len(hostile) + 1, "a good report after the hostile ones")

    def test_a_mail_controld_will_never_take_is_set_aside_and_the_next_ones_flow(self):
        self.c.stop()
        self.c.config["max_message"] = 65536
        self.c.start()
        big = rptmail.report_mail(rptmail.GOOGLE, RCPT).replace(
            b"This is an aggregate", b"x" * 100000 + b"\r\nThis is an aggregate")
        self.send(big, [RCPT])
        self.send(rptmail.report_mail(rptmail.MICROSOFT, RCPT), [RCPT])
        rows = self.wait_received(1, "the small report after the big one")
        self.assertEqual(rows[0]["organization_name"], "Microsoft Corporation")
        aside = [n for n in os.listdir(self.reports_dir) if n.startswith(".refused-")]
        self.assertEqual(len(aside), 1, os.listdir(self.reports_dir))
        self.assertTrue(self.m.events("tlsrpt_set_aside"))
        self.assertEqual(self.pending(), [])

    def test_a_report_mail_over_the_size_cap_is_refused_at_data(self):
        big = rptmail.plain_mail(RCPT, text="x" * 100 + "\n") + b"y" * 76 + b"\r\n"
        big += (b"z" * 998 + b"\r\n") * (4200 * 1024 // 1000)
        with self.assertRaises(smtplib.SMTPDataError) as e:
            self.send(big, [RCPT])
        self.assertEqual(e.exception.smtp_code, 552)
        self.assertEqual(self.pending(), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
