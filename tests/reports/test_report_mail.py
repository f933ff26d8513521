"""The mail that carries a TLS report to a mailto: rua, checked by tools
that are not ours.

tlsrpt_mail_tool (TLSRPT_MAIL_TOOL) composes and DKIM-signs report mails
with controld's code and a key made as controld makes a domain's DKIM keys.
Debian's python3-dkim verifies each signature (its dnsfunc answers with the
key's TXT record), and must refuse it once a signed header or a body byte
changes or a signed header is added. Python's email package reads the
multipart/report of RFC 8460 5.3; the report part gunzips to JSON that
validates against rfc8460.schema.json.
"""
import email
import email.policy
import email.utils
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_report_schema import FILENAME_RE, load_schema, utc_seconds  # noqa: E402

# RFC 8460 5.3: "Report" FWS "Domain:" FWS domain FWS "Submitter:" FWS
# domain FWS "Report-ID:" FWS "<" id-left "@" id-right ">"
SUBJECT_RE = re.compile(
    r"^Report Domain: (?P<domain>[A-Za-z0-9.-]+) Submitter: (?P<submitter>[A-Za-z0-9.-]+)"
    r" Report-ID: <(?P<id>[^<>@\s]+@[^<>@\s]+)>$")

SIGNED = ["from", "to", "date", "subject", "message-id", "tls-report-domain",
          "tls-report-submitter", "tls-required", "mime-version", "content-type"]


def unfold(value):
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def dkim_tags(raw):
    m = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", raw, re.S | re.M)
    value = re.sub(rb"\s+", b"", m.group(1)).decode()
    return dict(t.split("=", 1) for t in value.split(";") if t)


class ReportMail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.validator = load_schema()
        cls.tmp = tempfile.TemporaryDirectory(prefix="tlsrpt-mail-")
        tool = os.environ["TLSRPT_MAIL_TOOL"]
        out = subprocess.run([tool, cls.tmp.name], check=True, capture_output=True,
                             text=True, timeout=60).stdout
        cls.mails = {}
        for line in out.splitlines():
            name, domain, sent = line.split("\t")
            cls.mails[name] = (domain, int(sent))
        with open(os.path.join(cls.tmp.name, "dkim.txt"), encoding="ascii") as f:
            selector, domain, txt = f.read().rstrip("\n").split("\t")
        cls.selector, cls.domain = selector, domain
        cls.key_name = f"{selector}._domainkey.{domain}."
        cls.txt = txt.encode()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def raw(self, name, ext=".eml"):
        with open(os.path.join(self.tmp.name, name + ext), "rb") as f:
            return f.read()

    def dns_answering(self, txt):
        """A dnsfunc for python3-dkim: txt for our key's name, nothing else."""
        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return txt if name.rstrip(".") + "." == self.key_name else None
        return dnsfunc

    def dnsfunc(self, name, timeout=5):
        return self.dns_answering(self.txt)(name, timeout)

    def verify(self, raw):
        return dkim.verify(raw, dnsfunc=self.dnsfunc, tlsrpt=True)

    def parsed(self, name):
        return email.message_from_bytes(self.raw(name), policy=email.policy.default)

    def test_tool_wrote_every_mail(self):
        self.assertEqual(sorted(self.mails), ["full", "long_names"])

    def test_python3_dkim_verifies_every_mail(self):
        for name in self.mails:
            with self.subTest(mail=name):
                self.assertTrue(self.verify(self.raw(name)))

    def test_strict_tlsrpt_verifier_wants_the_key_record_to_say_s_tlsrpt(self):
        # RFC 8460 3: the key record SHOULD carry s=tlsrpt
        raw = self.raw("full")
        self.assertFalse(dkim.verify(raw, dnsfunc=self.dnsfunc, tlsrpt="strict"))
        self.assertTrue(dkim.verify(raw, dnsfunc=self.dns_answering(self.txt + b"; s=tlsrpt"),
                                    tlsrpt="strict"))

    def test_a_relay_adding_received_keeps_the_signature_valid(self):
        raw = b"Received: from controld by mx1.mxfleet.example\r\n" + self.raw("full")
        self.assertTrue(self.verify(raw))

    def test_changed_tls_report_domain_fails_verification(self):
        raw = self.raw("full")
        bad = raw.replace(b"TLS-Report-Domain: recipient.example",
                          b"TLS-Report-Domain: recipient.exampla", 1)
        self.assertNotEqual(bad, raw)
        self.assertFalse(self.verify(bad))

    def test_changed_body_byte_fails_verification(self):
        raw = self.raw("full")
        head, body = raw.split(b"\r\n\r\n", 1)
        i = body.index(b"H4sI") + 10      # a byte inside the gzip's base64
        flipped = b"A" if body[i:i + 1] != b"A" else b"B"
        self.assertFalse(self.verify(head + b"\r\n\r\n" + body[:i] + flipped + body[i + 1:]))
        bad = raw.replace(b"Policy domain: recipient.example", b"Policy domain: recipient.exampla")
        self.assertNotEqual(bad, raw)
        self.assertFalse(self.verify(bad))

    def test_added_second_report_header_fails_verification(self):
        # oversigning: h= signs one instance more than the mail holds
        raw = self.raw("full")
        sig_end = re.search(rb"\r\n(?![ \t])", raw).end()
        for added in (b"TLS-Report-Domain: attacker.example\r\n",
                      b"Subject: Report Domain: attacker.example\r\n",
                      b"From: someone@attacker.example\r\n",
                      b"TLS-Required: Yes\r\n"):
            with self.subTest(added=added):
                # at the top, as relays add headers, and at the bottom
                self.assertFalse(self.verify(raw[:sig_end] + added + raw[sig_end:]))
                self.assertFalse(self.verify(
                    raw.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n", 1)))

    def test_signature_names_the_domain_selector_clock_and_report_headers(self):
        for name, (_, sent) in self.mails.items():
            with self.subTest(mail=name):
                tags = dkim_tags(self.raw(name))
                self.assertEqual(tags["v"], "1")
                self.assertEqual(tags["a"], "rsa-sha256")
                self.assertEqual(tags["c"], "relaxed/relaxed")
                self.assertEqual(tags["d"], self.domain)
                self.assertEqual(tags["s"], self.selector)
                self.assertEqual(int(tags["t"]), sent)
                self.assertNotIn("l", tags)    # RFC 8460 3: no body length limit
                h = tags["h"].split(":")
                for header in SIGNED:
                    self.assertEqual(h.count(header), 2, header)   # signed and oversigned

    def test_same_inputs_give_the_same_bytes(self):
        for name in self.mails:
            with self.subTest(mail=name):
                self.assertEqual(self.raw(name), self.raw(name, ".again.eml"))

    def test_lines_are_crlf_and_shorter_than_998(self):
        for name in self.mails:
            with self.subTest(mail=name):
                raw = self.raw(name)
                self.assertTrue(raw.endswith(b"\r\n"))
                self.assertNotRegex(raw, rb"[^\r]\n")
                self.assertNotRegex(raw, rb"\r[^\n]")
                for line in raw.split(b"\r\n"):
                    self.assertLess(len(line), 998)
                    self.assertTrue(all(b < 0x80 for b in line))

    def test_subject_and_tls_headers_are_rfc8460_and_rfc8689(self):
        for name, (domain, sent) in self.mails.items():
            with self.subTest(mail=name):
                msg = self.parsed(name)
                report = json.loads(self.raw(name, ".json"))
                m = SUBJECT_RE.match(unfold(str(msg["Subject"])))
                self.assertIsNotNone(m, msg["Subject"])
                self.assertEqual(m["domain"], domain)
                self.assertEqual(m["submitter"], msg["TLS-Report-Submitter"])
                self.assertEqual(m["id"], report["report-id"])
                self.assertEqual(msg["TLS-Report-Domain"], domain)
                self.assertEqual(msg["TLS-Required"], "No")
                self.assertEqual(msg["MIME-Version"], "1.0")
                self.assertEqual(len(msg.get_all("From")), 1)
                self.assertEqual(email.utils.parsedate_to_datetime(msg["Date"]).timestamp(), sent)
                self.assertRegex(msg["Message-ID"], r"^<[^<>@\s]+@[^<>@\s]+>$")

    def test_full_mail_headers_are_the_callers(self):
        msg = self.parsed("full")
        self.assertEqual(msg["From"], "tlsrpt-noreply@mxfleet.example")
        self.assertEqual(msg["To"], "tlsrpt@recipient.example")
        self.assertEqual(msg["TLS-Report-Submitter"], "mxfleet.example")
        self.assertEqual(msg["Message-ID"],
                         "<0123456789abcdef.20240101.recipient.example@mxfleet.example>")
        self.assertEqual(self.parsed("long_names")["Message-ID"], "<given.id@mxfleet.example>")

    def test_multipart_report_holds_text_and_the_gzip_report(self):
        for name, (domain, _) in self.mails.items():
            with self.subTest(mail=name):
                msg = self.parsed(name)
                self.assertEqual(msg.get_content_type(), "multipart/report")
                self.assertEqual(msg.get_param("report-type"), "tlsrpt")
                parts = list(msg.iter_parts())
                self.assertEqual([p.get_content_type() for p in parts],
                                 ["text/plain", "application/tlsrpt+gzip"])
                self.assertIn("aggregate SMTP TLS report", parts[0].get_content())
                gz = parts[1]
                self.assertEqual(gz["Content-Transfer-Encoding"], "base64")
                self.assertEqual(gz.get_content_disposition(), "attachment")
                encoded = gz.get_payload(decode=False).strip().split("\n")
                self.assertTrue(all(len(line.rstrip("\r")) <= 76 for line in encoded))
                doc = json.loads(gzip.decompress(gz.get_payload(decode=True)))
                self.assertEqual([e.message for e in self.validator.iter_errors(doc)], [])
                self.assertEqual(json.dumps(doc, sort_keys=True),
                                 json.dumps(json.loads(self.raw(name, ".json")), sort_keys=True))
                fname = FILENAME_RE.match(gz.get_filename())
                self.assertIsNotNone(fname, gz.get_filename())
                self.assertEqual(fname["sender"], msg["TLS-Report-Submitter"])
                self.assertEqual(fname["domain"], domain)
                self.assertEqual(int(fname["begin"]),
                                 utc_seconds(doc["date-range"]["start-datetime"]))
                self.assertEqual(int(fname["end"]), utc_seconds(doc["date-range"]["end-datetime"]))

    def test_unique_id_goes_into_the_file_name(self):
        part = list(self.parsed("long_names").iter_parts())[1]
        self.assertTrue(part.get_filename().endswith("!u7.json.gz"), part.get_filename())
        part = list(self.parsed("full").iter_parts())[1]
        self.assertEqual(part.get_filename(),
                         "mxfleet.example!recipient.example!1704067200!1704153599.json.gz")


if __name__ == "__main__":
    unittest.main()
