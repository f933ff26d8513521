#!/usr/bin/python3
"""A next hop's hostile reply does not make mxd's DSN malformed mail.

The next hop (an LMTP sink) refuses one recipient after DATA with a
multi-line 550 whose text holds a bare CR followed by what looks like a
header field, control characters (BEL, ESC, DEL), 8-bit text, a line of
1500 octets of words and one of 1200 octets without white space. The DSN
that mxd then sends the sender must be mail that Python's email package
parses under the SMTP policy with raise_on_defect set and without a single
defect: CRLF line ends only, no control characters, no line over 998
octets, the remote text escaped (\\x{0D}, \\x{07}) in the text part and in
Diagnostic-Code, no injected field, a boundary nobody could have guessed."""

import email
import email.parser
import email.policy
import os
import re
import smtplib
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, MX_NAME, make_body  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
GOOD = f"good@{LOCAL_DOMAIN}"
BAD = f"bad@{LOCAL_DOMAIN}"
WORDS = " ".join(["word"] * 300)
BLOB = "z" * 1200
HOSTILE = "\n".join([
    "550-5.1.1 first line\rX-Injected: yes",
    "550-5.1.1 bell\x07 escape\x1b[31m delete\x7f",
    "550-5.1.1 Empf\u00e4nger unbekannt",
    "550-5.1.1 " + WORDS,
    "550-5.1.1 " + BLOB,
    "550 5.1.1 last line",
])
STRICT = email.policy.SMTP.clone(raise_on_defect=True)


def unfold(value):
    # RFC 5322 2.2.3: unfolding removes the CRLF before white space.
    return re.sub(r"\r?\n(?=[ \t])", "", str(value))


class DsnWellformedTest(mxtest.MxTestCase):
    def hostile_dsn(self):
        sink = self.new_sink(name="lmtp", lmtp=True, data_replies={BAD: HOSTILE})
        m = self.mxd(self.mxd_config(sink.next_hop, None))
        msg_id = uuid.uuid4().hex[:10]
        with smtplib.SMTP(m.host, m.port, timeout=10, local_hostname="client.test") as s:
            self.assertEqual(s.sendmail(SENDER, [GOOD, BAD], make_body(msg_id)), {})
        dsn = sink.wait_message(lambda x: x.mail_from == "" and x.rcpts == [SENDER],
                                timeout=60, what=f"DSN to {SENDER}")
        return dsn.data

    def test_hostile_reply_gives_a_dsn_without_defects(self):
        raw = self.hostile_dsn()

        # The octets: CRLF only, no control characters, 7-bit (the original
        # was ASCII), no line longer than 998 octets.
        self.assertTrue(raw.endswith(b"\r\n"))
        for i, line in enumerate(raw.split(b"\r\n")):
            self.assertNotIn(b"\r", line, f"bare CR in line {i}: {line[:120]!r}")
            self.assertNotIn(b"\n", line, f"bare LF in line {i}: {line[:120]!r}")
            self.assertLessEqual(len(line), 998, f"line {i} is {len(line)} octets")
            bad = [c for c in line if (c < 0x20 and c != 0x09) or c >= 0x7f]
            self.assertEqual(bad, [], f"control or 8-bit octets in line {i}: {line[:120]!r}")
        self.assertIsNone(re.search(rb"(?m)^X-Injected", raw), "the reply injected a field")

        # Strict parsing: any defect raises; none may be recorded either.
        msg = email.parser.BytesParser(policy=STRICT).parsebytes(raw)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        boundary = msg.get_boundary()
        self.assertNotIn(MX_NAME, boundary, "boundary built from the host name")
        self.assertEqual(raw.count(boundary.encode()), 5,
                         "boundary occurs outside the Content-Type and delimiters")
        types, blocks = [], []
        for part in msg.walk():
            self.assertEqual(part.defects, [], f"defects in {part.get_content_type()}")
            for name, value in part.items():
                self.assertEqual(list(getattr(value, "defects", ())), [],
                                 f"defects in field {name}: {value!r}")
            types.append(part.get_content_type())
            if part.get_content_type() == "message/delivery-status":
                blocks = part.get_payload()
        self.assertEqual(types[:3], ["multipart/report", "text/plain", "message/delivery-status"],
                         types)
        self.assertIn("text/rfc822-headers", types)

        # RFC 3464 2.1: per-message fields, then one block for the refused
        # recipient, none of them "X-Injected".
        self.assertGreaterEqual(len(blocks), 2, blocks)
        self.assertIn(MX_NAME, str(blocks[0]["Reporting-MTA"]))
        rcpt = [b for b in blocks[1:] if BAD in str(b["Final-Recipient"])]
        self.assertEqual(len(rcpt), 1, [str(b) for b in blocks])
        rcpt = rcpt[0]
        self.assertEqual(str(rcpt["Action"]).strip(), "failed")
        self.assertEqual(str(rcpt["Status"]).strip(), "5.1.1")
        for b in blocks:
            self.assertNotIn("X-Injected", b.keys())
        diag = unfold(rcpt["Diagnostic-Code"])
        self.assertTrue(diag.startswith("smtp;"), diag)
        for want in ("first line\\x{0D}X-Injected: yes", "bell\\x{07} escape\\x{1B}[31m",
                     "delete\\x{7F}", "Empf\\x{E4}nger unbekannt", WORDS, "last line"):
            self.assertIn(want, diag, f"Diagnostic-Code lacks {want[:40]!r}")
        # No white space to fold at: cut, each character kept.
        self.assertEqual(diag.count("z"), len(BLOB))

        # The text part quotes the same lines, escaped alike.
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        body = text.get_content()
        self.assertIn("first line\\x{0D}X-Injected: yes", body)
        self.assertIn("bell\\x{07} escape\\x{1B}[31m", body)
        self.assertIn("last line", body)


if __name__ == "__main__":
    mxtest.main()
