#!/usr/bin/python3
"""SMTP smuggling and STARTTLS command injection, from raw sockets.

Every end-of-data other than <CRLF>.<CRLF>, and bare CR or LF inside DATA,
must get 550 5.5.2 for the whole message; nothing of it (neither the cover
message nor the smuggled one) may reach the next hop, and the session goes
on after the real end of data. Plaintext pipelined after STARTTLS must never
be executed."""

import os
import ssl
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
RCPT = f"rcpt@{LOCAL_DOMAIN}"

# Candidate end-of-data sequences that some receivers and next hops accept.
FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "CR.LF": b"\r.\n",
    "LF.CR": b"\n.\r",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
    "CRLF.LFCRLF": b"\r\n.\n\r\n",
}


def cover_and_smuggled(tag, fake_end):
    cover = (f"From: <{SENDER}>\r\nSubject: cover {tag}\r\n\r\ncover body").encode()
    smuggled = (f"MAIL FROM:<ceo@{LOCAL_DOMAIN}>\r\n"
                f"RCPT TO:<victim@{LOCAL_DOMAIN}>\r\n"
                "DATA\r\n"
                f"From: <ceo@{LOCAL_DOMAIN}>\r\nSubject: SMUGGLED {tag}\r\n\r\n"
                "wire the money").encode()
    return cover + fake_end + smuggled + b"\r\n.\r\n"


def control_message(tag):
    return (f"From: <{SENDER}>\r\nSubject: control {tag}\r\n"
            f"X-Tag: control-{tag}\r\n\r\nlegit\r\n").encode()


class SmugglingTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard()

    def start_data(self, c):
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)

    def send_control(self, c, tag):
        """A clean transaction on the same session: proves the session
        resynchronised on the real end of data."""
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(control_message(tag) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)

    def refused_payload(self, tag, payload):
        c = self.raw(self.m)
        self.start_data(c)
        c.send(payload)
        r = c.read_reply(timeout=15)
        self.assertReply(r, 550, "5.5.2", f"{tag}: data was not refused with 550 5.5.2: {r}")
        extra = c.pending(wait=0.5)
        self.assertEqual(extra, b"", f"{tag}: replies beyond the one for DATA: {extra!r}")
        self.send_control(c, tag)
        c.close()

    def assert_nothing_delivered(self, tags):
        # Each session ends with a control message: once all of them are at
        # the sink, anything queued before them had its chance too.
        for tag in tags:
            self.sink.wait_message(lambda m, t=tag: f"X-Tag: control-{t}".encode() in m.data,
                                   timeout=30, what=f"control message {tag}")
        time.sleep(1.5)
        leaked = [m for m in self.sink.messages()
                  if b"SMUGGLED" in m.data or b"cover " in m.data
                  or b"bare " in m.data or "victim@" in " ".join(m.rcpts)]
        self.assertEqual(leaked, [], "refused data reached the next hop: "
                         + "; ".join(repr(m.data[:300]) for m in leaked))

    def test_fake_end_of_data_variants(self):
        tags = []
        for name, fake_end in FAKE_ENDS.items():
            tag = f"{name}-{uuid.uuid4().hex[:6]}"
            with self.subTest(variant=name):
                self.refused_payload(tag, cover_and_smuggled(tag, fake_end))
                tags.append(tag)
        self.assert_nothing_delivered(tags)

    def test_bare_lf_and_bare_cr_in_body(self):
        tags = []
        for name, bad in (("bareLF", b"line one\nline two"),
                          ("bareCR", b"line one\rline two"),
                          ("bareLF-header", b"X-A: 1\nX-B: 2"),
                          ("bareCR-before-CRLF", b"line\r\r\nmore")):
            tag = f"{name}-{uuid.uuid4().hex[:6]}"
            payload = (f"Subject: bare {tag}\r\n\r\n").encode() + bad + b"\r\nend\r\n.\r\n"
            if name == "bareLF-header":
                payload = bad + (f"\r\nSubject: bare {tag}\r\n\r\nbody\r\n.\r\n").encode()
            with self.subTest(variant=name):
                self.refused_payload(tag, payload)
                tags.append(tag)
        self.assert_nothing_delivered(tags)

    def test_refusal_does_not_count_as_a_message(self):
        """The refused message must not be queued even when the sender's
        session is cut right after the refusal."""
        tag = f"cut-{uuid.uuid4().hex[:6]}"
        c = self.raw(self.m)
        self.start_data(c)
        c.send(cover_and_smuggled(tag, b"\n.\n"))
        self.assertReply(c.read_reply(timeout=15), 550)
        c.close()
        ctl = f"ctl-{uuid.uuid4().hex[:6]}"
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.send_control(c, ctl)
        self.assert_nothing_delivered([ctl])


class StarttlsInjectionTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard()

    def inject(self, first, second=None):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        c.send(first)
        if second is not None:
            c.send(second)  # separate segment, sent before reading the 220
        r = c.read_reply()
        self.assertReply(r, 220)
        self.assertEqual(c.buf, b"", "plaintext replies after 220 to STARTTLS")
        try:
            c.sock = mxtest.insecure_client_context().wrap_socket(c.sock)
        except (ssl.SSLError, ConnectionError) as e:
            if second is None:
                self.fail(f"TLS handshake broken by injected plaintext: {e}")
            # Bytes that arrive after the server began TLS are read as TLS
            # records; dropping that connection is a safe outcome. What
            # matters is that none of it was executed.
            self.assert_nothing_from_injection()
            return
        extra = c.pending(wait=1.0)
        self.assertEqual(extra, b"", f"injected commands answered inside TLS: {extra!r}")
        # The session must start over: EHLO first.
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 503)
        c.ehlo()
        # No transaction survived: the injected MAIL was not executed.
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 503)
        tag = uuid.uuid4().hex[:8]
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(control_message(tag) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        c.cmd("QUIT")
        msg = self.sink.wait_message(lambda m: f"control-{tag}".encode() in m.data,
                                     timeout=20, what="control message")
        self.assertEqual(msg.mail_from, SENDER)
        self.assertEqual(msg.rcpts, [RCPT])
        self.assert_nothing_from_injection()

    def assert_nothing_from_injection(self):
        for m in self.sink.messages():
            self.assertNotIn(f"evil@{LOCAL_DOMAIN}", m.mail_from)
            self.assertNotIn(f"victim@{LOCAL_DOMAIN}", m.rcpts)

    def test_same_segment(self):
        self.inject(f"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@{LOCAL_DOMAIN}>\r\n"
                    f"RCPT TO:<victim@{LOCAL_DOMAIN}>\r\n".encode())

    def test_next_segment_before_220(self):
        self.inject(b"STARTTLS\r\n",
                    f"MAIL FROM:<evil@{LOCAL_DOMAIN}>\r\n".encode())

    def test_injected_ehlo(self):
        self.inject(b"STARTTLS\r\nEHLO injected.test\r\n")


if __name__ == "__main__":
    mxtest.main()
