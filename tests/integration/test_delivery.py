#!/usr/bin/python3
"""Hand-off to the next hop: retries while it is down or says 4xx, bounces
with an RFC 3464 DSN that quotes the next hop's full multi-line reply, LMTP
per-recipient replies, STARTTLS to the next hop."""

import email
import email.policy
import os
import re
import smtplib
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, MX_NAME, check_body, make_body  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
GOOD = f"good@{LOCAL_DOMAIN}"
BAD = f"bad@{LOCAL_DOMAIN}"
REPLY_LINES = ("550-5.1.1 <bad@example.test>: first line of the refusal",
               "550 5.1.1 second line: no such mailbox here")
SCRIPTED = "\n".join(line[:3] + " " + line[4:] for line in REPLY_LINES)


def send(m, rcpts, msg_id, sender=SENDER):
    with smtplib.SMTP(m.host, m.port, timeout=10, local_hostname="delivery.test") as s:
        return s.sendmail(sender, rcpts, make_body(msg_id))


def has_id(msg_id):
    return lambda x: f"X-Test-Id: {msg_id}".encode() in x.data


def unfolded(text):
    return re.sub(r"\r?\n[ \t]+", " ", text)


class Dsn:
    """The parts of a DSN a user (or a mail client) looks at."""

    def __init__(self, data):
        self.raw = data
        self.msg = email.message_from_bytes(data, policy=email.policy.compat32)
        self.status_fields = []   # [(name, value)] from message/delivery-status
        self.text = ""
        for part in self.msg.walk():
            ctype = part.get_content_type()
            if ctype == "message/delivery-status":
                for block in part.get_payload():
                    self.status_fields += [(k.lower(), unfolded(v)) for k, v in block.items()]
            elif ctype == "text/plain" and not self.text:
                payload = part.get_payload(decode=True) or b""
                self.text = payload.decode("utf-8", "replace")

    def field(self, name):
        return [v for k, v in self.status_fields if k == name.lower()]


class DeliveryTest(mxtest.MxTestCase):
    def wait_dsn(self, sink, to=SENDER, timeout=30):
        msg = sink.wait_message(lambda x: x.mail_from == "" and x.rcpts == [to],
                                timeout=timeout, what=f"DSN to {to}")
        return msg, Dsn(msg.data)

    def check_dsn_structure(self, dsn, failed_rcpt):
        ctype = dsn.msg.get_content_type()
        self.assertEqual(ctype, "multipart/report", f"DSN is {ctype}")
        self.assertEqual(dsn.msg.get_param("report-type"), "delivery-status")
        self.assertTrue(dsn.status_fields, "no message/delivery-status part")
        self.assertTrue(any(MX_NAME in v for v in dsn.field("reporting-mta")),
                        f"Reporting-MTA does not name {MX_NAME}: {dsn.field('reporting-mta')}")
        finals = dsn.field("final-recipient")
        self.assertTrue(any(failed_rcpt in v for v in finals), finals)
        self.assertIn("failed", [v.strip().lower() for v in dsn.field("action")])
        self.assertTrue(dsn.text.strip(), "no human-readable part")

    def test_next_hop_down_then_up(self):
        down = self.new_sink(start=False)
        m = self.mxd(self.mxd_config(down.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        self.assertEqual(send(m, [GOOD], msg_id), {})
        rec = m.wait_event("deferred", timeout=15)
        self.assertTrue(any(str(down.port) in v for v in rec.values()),
                        f"deferred line does not name the next hop: {rec}")
        time.sleep(1)
        down.start()
        got = down.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(check_body(got.data), (msg_id, True))
        m.wait_event("delivered", timeout=10)
        queue = os.path.join(m.config["spool_dir"], "queue")
        mxtest.wait_for(lambda: not os.listdir(queue), 10, what="spool queue empty")

    def test_4xx_is_retried(self):
        sink_a = self.new_sink(name="tempfail",
                           rcpt_replies={GOOD: "451 4.3.0 try again later"})
        m = self.mxd(self.mxd_config(sink_a.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        send(m, [GOOD], msg_id)
        rec = m.wait_event("deferred", timeout=15)
        self.assertIn("try again later", " ".join(rec.values()), rec)
        # The same address now answers 250.
        sink_a.stop()
        sink_b = self.new_sink(name="recovered", host=sink_a.host, port=sink_a.port)
        got = sink_b.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.rcpts, [GOOD])
        self.assertEqual(sink_a.messages(), [])

    def test_550_multiline_reply_bounces_with_dsn(self):
        sink = self.new_sink(rcpt_replies={BAD: SCRIPTED})
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        self.assertEqual(send(m, [GOOD, BAD], msg_id), {})
        got = sink.wait_message(has_id(msg_id))
        self.assertEqual(got.rcpts, [GOOD])
        dsn_msg, dsn = self.wait_dsn(sink)
        self.check_dsn_structure(dsn, BAD)
        self.assertIn("5.1.1", " ".join(dsn.field("status")))
        self.assertNotIn(GOOD, " ".join(dsn.field("final-recipient")),
                         "the delivered recipient is reported as failed")
        everything = dsn.msg.as_string()
        for line in REPLY_LINES:
            self.assertIn(line[4:], unfolded(everything),
                          f"DSN does not quote reply line {line!r}")
        diag = " ".join(dsn.field("diagnostic-code"))
        self.assertRegex(diag, r"(?i)^smtp;", f"Diagnostic-Code: {diag!r}")
        for line in REPLY_LINES:
            self.assertIn(line[4:], diag, "Diagnostic-Code lacks part of the reply")
        # RFC 3464 2.3.5: Remote-MTA is "dns; <host name or [address]>".
        for value in dsn.field("remote-mta"):
            self.assertRegex(value.strip(), r"(?i)^dns;\s*(\[?[0-9.]+\]?|[a-z0-9.-]+)$",
                             f"Remote-MTA is not an MTA name: {value!r}")
        # The original can be recognised from the DSN.
        self.assertIn(f"{msg_id}@mxtest", everything, "DSN does not identify the message")
        rec = m.wait_event("bounced", timeout=10)
        joined = " ".join(rec.values())
        for line in REPLY_LINES:
            self.assertIn(line[4:], joined, f"bounced log line lacks {line!r}: {rec}")
        # Exactly one DSN.
        time.sleep(2)
        dsns = [x for x in sink.messages() if x.mail_from == ""]
        self.assertEqual(len(dsns), 1, dsns)

    def test_lmtp_per_recipient_failure(self):
        sink = self.new_sink(name="lmtp", lmtp=True,
                         data_replies={BAD: "552 5.2.2 mailbox full\n552 5.2.2 over quota by 1 MB"})
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        send(m, [GOOD, BAD], msg_id)
        got = sink.wait_message(has_id(msg_id))
        self.assertEqual(got.rcpts, [GOOD])
        _, dsn = self.wait_dsn(sink)
        self.check_dsn_structure(dsn, BAD)
        self.assertIn("over quota by 1 MB", unfolded(dsn.msg.as_string()))
        time.sleep(2)
        again = [x for x in sink.messages() if has_id(msg_id)(x) and x.mail_from]
        self.assertEqual([x.rcpts for x in again], [[GOOD]],
                         "good recipient delivered again (LMTP replies misread)")

    def test_no_dsn_for_null_sender(self):
        sink = self.new_sink(rcpt_replies={BAD: "550 5.1.1 nobody"})
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        with smtplib.SMTP(m.host, m.port, timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.docmd("MAIL FROM:<>")[0], 250)
            self.assertEqual(s.docmd(f"RCPT TO:<{BAD}>")[0], 250)
            self.assertEqual(s.data(make_body("nullsender"))[0], 250)
        m.wait_event("bounced", timeout=15)
        time.sleep(2)
        self.assertEqual(sink.messages(), [], "a bounce was answered with a DSN")

    def test_max_age_bounces(self):
        sink = self.new_sink()
        nowhere = mxtest.free_addr()
        cfg = self.mxd_config(sink.next_hop, None,
                              delivery={"retry_min": 1, "retry_max": 1, "max_age": 4})
        cfg["domains"] = mxtest.LCList(list(cfg["domains"]) + [
            {"name": "down.test", "next_hop": f"smtp:{nowhere[0]}:{nowhere[1]}"}])
        m = self.mxd(cfg)
        msg_id = uuid.uuid4().hex[:10]
        send(m, ["user@down.test"], msg_id)
        _, dsn = self.wait_dsn(sink, timeout=30)
        self.check_dsn_structure(dsn, "user@down.test")


    def test_delay_dsn_once_while_still_retrying(self):
        """After delivery.delay_dsn seconds of deferral the sender gets one
        RFC 3464 notice with Action: delayed, and mxd keeps trying."""
        sink = self.new_sink()
        nowhere = mxtest.free_addr()
        cfg = self.mxd_config(sink.next_hop, None,
                              delivery={"retry_min": 1, "retry_max": 1, "delay_dsn": 2})
        cfg["domains"] = mxtest.LCList(list(cfg["domains"]) + [
            {"name": "slow.test", "next_hop": f"smtp:{nowhere[0]}:{nowhere[1]}"}])
        m = self.mxd(cfg)
        send(m, ["user@slow.test"], uuid.uuid4().hex[:10])
        _, dsn = self.wait_dsn(sink, timeout=30)
        self.assertEqual([v.strip().lower() for v in dsn.field("action")], ["delayed"])
        self.assertTrue(any("user@slow.test" in v for v in dsn.field("final-recipient")))
        self.assertTrue(all(v.strip().startswith("4.") for v in dsn.field("status")),
                        dsn.field("status"))
        # Still queued and retried; no second notice.
        m.wait_event("deferred", timeout=10, pred=lambda r: int(r.get("attempts", "0")) >= 4)
        dsns = [x for x in sink.messages() if x.mail_from == ""]
        self.assertEqual(len(dsns), 1, "more than one delay notice")
        self.assertTrue(os.listdir(os.path.join(m.config["spool_dir"], "queue")))


class NextHopTlsTest(mxtest.MxTestCase):
    def test_starttls_to_next_hop_when_offered(self):
        cert = self.cert("sink", "sink.example.test")
        sink = self.new_sink(tls=cert)
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        send(m, [GOOD], msg_id)
        got = sink.wait_message(has_id(msg_id))
        self.assertIn(got.env["tls"].get("version"), ("TLSv1.2", "TLSv1.3"),
                      "mxd did not use the next hop's STARTTLS")
        # The next hop is an address: RFC 6066 3 has no SNI for literals.
        self.assertIsNone(got.env["tls"].get("sni"), f"SNI sent: {got.env['tls']}")

    def test_next_hop_tls_none(self):
        cert = self.cert("sink", "sink.example.test")
        sink = self.new_sink(tls=cert)
        m = self.mxd(self.mxd_config(sink.next_hop, None,
                                     delivery={"next_hop_tls": "none"}))
        msg_id = uuid.uuid4().hex[:10]
        send(m, [GOOD], msg_id)
        got = sink.wait_message(has_id(msg_id))
        self.assertEqual(got.env["tls"], {}, "STARTTLS used although next_hop_tls = none")


if __name__ == "__main__":
    mxtest.main()
