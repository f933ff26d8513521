#!/usr/bin/python3
"""What mxd tells an MX on MAIL FROM, and what it does when the MX lacks
something the message needs:

  * SIZE=<exact size>, BODY=8BITMIME and SMTPUTF8 go to an MX that offers
    them (RFC 1870, 6152, 6531);
  * mail with a UTF-8 address to an MX without SMTPUTF8 is returned at
    once with 5.6.7 (RFC 6531 3.4), the MX never gets it;
  * plain ASCII mail whose client asked for SMTPUTF8 goes to such an MX
    without the parameter (nothing in it needs it)."""

import os
import re
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402


def eight_bit_message(msg_id, subject="Grüße aus Köln"):
    return (f"From: <{SENDER}>\r\n"
            f"Subject: {subject}\r\n"
            f"Message-ID: <{msg_id}@outtest>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n"
            f"\r\n"
            f"Straße, naïve café\r\n").encode()


class MailParamsTest(outtest.OutboundTestCase):

    def one_fake(self, tag, extensions):
        dom = unique_domain(tag)
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        fake = self.fake_mx(host, name=f"mx.{dom}", tls=None, extensions=extensions)
        return dom, fake

    def submit(self, m, mail_params, rcpt, data):
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}> {mail_params}"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{rcpt}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(mxtest.dot_stuff(data) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        c.cmd("QUIT")

    def wait_fake_message(self, fake, timeout=20):
        mxtest.wait_for(lambda: fake.messages, timeout, what="the message at the MX")
        return fake.messages[0]

    def test_size_8bitmime_and_smtputf8_passed_on(self):
        # aiosmtpd as the MX: it offers SIZE, 8BITMIME and SMTPUTF8.
        dom = unique_domain("params")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}", size_limit=20000000)
        m, _ = self.outbound_mxd()
        rcpt = f"jürgen@{dom}"
        msg_id = uuid.uuid4().hex[:12]
        data = eight_bit_message(msg_id)
        self.submit(m, "BODY=8BITMIME SMTPUTF8", rcpt, data)
        got = sink.wait_message(lambda x: f"<{msg_id}@outtest>".encode() in x.data, timeout=20)
        self.assertEqual(got.rcpts, [rcpt])
        self.assertTrue(got.data.endswith(data), "the 8-bit message changed on its way")
        params = " ".join(got.env["mail_options"])
        words = params.upper().split()
        self.assertIn("BODY=8BITMIME", words, params)
        self.assertIn("SMTPUTF8", words, params)
        size = re.search(r"(?i)\bSIZE=(\d+)\b", params)
        self.assertIsNotNone(size, f"no SIZE on MAIL FROM: {params!r}")
        # The size announced is the size sent (Received: header included).
        self.assertEqual(int(size.group(1)), len(got.data), params)

    def test_utf8_address_to_mx_without_smtputf8_is_returned_with_5_6_7(self):
        dom, fake = self.one_fake("noutf8", ["SIZE 20000000"])
        m, local = self.outbound_mxd()
        rcpt = f"jürgen@{dom}"
        msg_id = uuid.uuid4().hex[:12]
        self.submit(m, "BODY=8BITMIME SMTPUTF8", rcpt, eight_bit_message(msg_id))
        rec = m.wait_event("bounced", rcpt=f"<{rcpt}>", timeout=15)
        self.assertIn("5.6.7", rec.get("reply", ""), rec)
        self.assertIn("SMTPUTF8", rec.get("reply", ""), rec)
        self.assertEqual(m.events("deferred"), [])
        _, dsn = self.wait_dsn(local)
        self.assertEqual([v.strip() for v in dsn.field("status")], ["5.6.7"])
        # RFC 6533 3: the UTF-8 address as utf-8-addr-xtext, and the
        # UTF-8 headers returned as message/global-headers.
        self.assertEqual([v.strip() for v in dsn.field("final-recipient")],
                         [f"utf-8; j\\x{{FC}}rgen@{dom}"])
        types = [p.get_content_type() for p in dsn.msg.walk()]
        self.assertIn("message/global-headers", types)
        self.assertIn(f"Message-ID: <{msg_id}@outtest>".encode(), dsn.raw)
        self.assertIn("Subject: Grüße aus Köln".encode(), dsn.raw)
        self.assertIn(f"mx.{dom}", " ".join(dsn.field("diagnostic-code")))
        self.assertEqual(fake.messages, [], "the MX got UTF-8 mail it did not ask for")

    def test_utf8_header_only_to_mx_without_smtputf8_is_returned_too(self):
        # ASCII addresses, UTF-8 in the Subject: the headers need SMTPUTF8.
        dom, fake = self.one_fake("hdrutf8", [])
        m, _ = self.outbound_mxd()
        rcpt = f"user@{dom}"
        self.submit(m, "BODY=8BITMIME SMTPUTF8", rcpt, eight_bit_message(uuid.uuid4().hex[:12]))
        rec = m.wait_event("bounced", rcpt=f"<{rcpt}>", timeout=15)
        self.assertIn("5.6.7", rec.get("reply", ""), rec)
        self.assertEqual(fake.messages, [])

    def test_ascii_mail_flagged_smtputf8_goes_without_the_parameter(self):
        dom, fake = self.one_fake("asciiutf8", [])
        m, _ = self.outbound_mxd()
        rcpt = f"user@{dom}"
        data = outtest.message(uuid.uuid4().hex[:12])
        self.submit(m, "SMTPUTF8", rcpt, data)
        _, rcpts, got, _, params = self.wait_fake_message(fake)
        self.assertEqual(rcpts, [rcpt])
        self.assertTrue(got.endswith(data))
        self.assertNotIn("SMTPUTF8", params.upper(), params)
        self.assertEqual(m.events("bounced"), [])


if __name__ == "__main__":
    outtest.main()
