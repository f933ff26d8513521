#!/usr/bin/python3
"""swaks and BDAT clients against mxd: the message reaches the next hop byte
for byte, behind exactly one Received: header that mxd prepends (naming the
TLS version and cipher when the session used TLS)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, MX_NAME, split_received, unfold  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
RCPT = f"rcpt@{LOCAL_DOMAIN}"


def sample_message(tag):
    """Message text with LF line ends (swaks turns them into CRLF) and the
    kinds of lines that break naive relays: leading dots, a folded header,
    trailing blanks, 8-bit text, a long line."""
    long_line = "L" * 900 + "-end"
    return (
        f"From: Sender <{SENDER}>\n"
        f"To: Rcpt <{RCPT}>\n"
        f"Subject: byte test {tag}\n"
        f"Message-ID: <{tag}@swaks.test>\n"
        "X-Folded: first part\n"
        "\tcontinued part\n"
        f"X-Tag: {tag}\n"
        "\n"
        ".leading dot line\n"
        "..two leading dots\n"
        ".\n"
        "trailing blanks   \n"
        "tab\there\n"
        "\u00fcn\u00efc\u00f6d\u00e9 8-bit line\n"
        f"{long_line}\n"
        "\n"
        "last line"
    )


def swaks_wire_bytes(text):
    """What swaks 20201014 transmits as the message for --data @file, once
    the server undoes dot-stuffing: CRLF line ends plus the CRLF it always
    puts before the closing dot."""
    return text.encode("utf-8").replace(b"\n", b"\r\n") + b"\r\n"


def tls_facts_from_swaks(output):
    m = re.search(r"=== TLS started with cipher (\S+?):(\S+?):(\d+)", output)
    return (m.group(1), m.group(2)) if m else (None, None)


def norm_version(v):
    return re.sub(r"[^a-z0-9]", "", v.lower()).replace("tlsv", "tls")


class SwaksBase(mxtest.MxTestCase):
    def swaks(self, tag, *extra, timeout=60):
        path = os.path.join(self.wd, f"{tag}.eml")
        text = sample_message(tag)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        argv = ["swaks", "--server", f"{self.m.host}:{self.m.port}",
                "--helo", "swaks.client.test", "--from", SENDER, "--to", RCPT,
                "--data", f"@{path}", "--timeout", "20", *extra]
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=timeout, errors="replace")
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, f"swaks failed:\n{out}")
        return text, out

    def arrived(self, tag):
        return self.sink.wait_message(
            lambda m: f"X-Tag: {tag}".encode() in m.data, timeout=20,
            what=f"message {tag}")

    def assert_byte_for_byte(self, text, msg):
        received, rest = split_received(msg.data)
        self.assertIsNotNone(received, "no Received: header on top: "
                             f"{msg.data[:200]!r}")
        self.assertEqual(rest, swaks_wire_bytes(text),
                         "message changed between swaks and the next hop")
        self.assertNotRegex(rest.split(b"\r\n\r\n")[0].decode("utf-8", "replace"),
                            r"(?mi)^received:", "more than one Received: added")
        self.assertEqual(msg.mail_from, SENDER)
        self.assertEqual(msg.rcpts, [RCPT])
        return unfold(received)



class SwaksTest(SwaksBase):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard()

    def test_plain(self):
        text, out = self.swaks("plain1")
        self.assertRegex(out, r"<-  250[ -]2\.0\.0 Ok: queued as \S+")
        received = self.assert_byte_for_byte(text, self.arrived("plain1"))
        self.assertIn(MX_NAME, received)
        self.assertIn("swaks.client.test", received, "Received lacks the HELO name")

    def test_starttls(self):
        text, out = self.swaks("tls1", "--tls")
        version, cipher = tls_facts_from_swaks(out)
        self.assertIsNotNone(cipher, f"swaks did not report TLS:\n{out}")
        received = self.assert_byte_for_byte(text, self.arrived("tls1"))
        self.assertIn(cipher, received, "Received: does not name the TLS cipher")
        self.assertIn(norm_version(version), norm_version(received),
                      f"Received: does not name {version}")

    def test_starttls_tls12(self):
        text, out = self.swaks("tls12", "--tls", "--tls-protocol", "tlsv1_2")
        version, cipher = tls_facts_from_swaks(out)
        self.assertEqual(version, "TLSv1.2", out)
        received = self.assert_byte_for_byte(text, self.arrived("tls12"))
        self.assertIn(cipher, received)
        self.assertIn("tls12", norm_version(received))

    def test_pipelining(self):
        text, out = self.swaks("pipe1", "--pipeline")
        self.assertIn("PIPELINING", out, "EHLO reply lacks PIPELINING")
        self.assertNotRegex(out, r"(?i)does not support pipelining")
        self.assert_byte_for_byte(text, self.arrived("pipe1"))

    def test_pipelining_over_tls(self):
        text, out = self.swaks("pipetls", "--pipeline", "--tls")
        self.assert_byte_for_byte(text, self.arrived("pipetls"))

    def test_plain_received_has_no_tls(self):
        _, out = self.swaks("plain2")
        received, _ = split_received(self.arrived("plain2").data)
        self.assertNotRegex(unfold(received), r"TLS_AES|ECDHE|TLSv1\.[23]",
                            "plaintext session described as TLS")


class NoReceivedHeaderTest(SwaksBase):
    """received_header = false: the next hop gets exactly what swaks sent."""

    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard(received_header=False)

    def test_exact_bytes(self):
        text, _ = self.swaks("norcvd", "--tls")
        msg = self.arrived("norcvd")
        self.assertEqual(msg.data, swaks_wire_bytes(text))


class BdatTest(mxtest.MxTestCase):
    """BDAT (CHUNKING) from a raw socket: swaks 20201014 cannot send it."""

    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard()

    def message(self, tag):
        # BDAT carries bytes as they are: no dot-stuffing, so a lone "." line
        # and a CRLF.CRLF sequence inside are message content that mxd must
        # dot-stuff when it relays with DATA.
        return (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: bdat {tag}\r\n"
                f"X-Tag: {tag}\r\n\r\n"
                "line one\r\n.\r\n.leading dot\r\n..two\r\nafter\r\n\r\n.\r\n"
                "binary-ish \x01\x7f\r\nend\r\n").encode()

    def session(self, tls=False):
        c = self.raw(self.m)
        self.assertEqual(c.read_reply().code, 220)
        r = c.ehlo()
        self.assertIn("CHUNKING", r.text.upper().split())
        if tls:
            c.starttls()
            c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        return c

    def expect_arrival(self, tag, body):
        msg = self.sink.wait_message(lambda m: f"X-Tag: {tag}".encode() in m.data,
                                     timeout=20, what=f"BDAT message {tag}")
        received, rest = split_received(msg.data)
        self.assertIsNotNone(received)
        self.assertEqual(rest, body, "BDAT message changed on the way")
        return unfold(received)

    def test_single_chunk_last(self):
        body = self.message("bdat1")
        c = self.session()
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        r = c.read_reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertRegex(r.lines[-1], r"queued as \S+")
        self.assertReply(c.cmd("QUIT"), 221)
        self.expect_arrival("bdat1", body)

    def test_many_chunks_then_bdat_0_last(self):
        body = self.message("bdat2")
        # Cut inside a CRLF, right after "\r\n." and inside the "\r\n.\r\n"
        # sequence, so chunk edges never line up with lines.
        cuts = sorted({body.index(b"line one") + 8 + 1,   # between CR and LF
                       body.index(b"\r\n.\r\n") + 3,      # after "\r\n."
                       body.index(b".leading") + 1,
                       len(body) - 3})
        chunks, prev = [], 0
        for cut in cuts:
            chunks.append(body[prev:cut])
            prev = cut
        chunks.append(body[prev:])
        c = self.session()
        for chunk in chunks:
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            self.assertReply(c.read_reply(), 250)
        r = c.cmd("BDAT 0 LAST")
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.cmd("QUIT"), 221)
        self.expect_arrival("bdat2", body)

    def test_pipelined_chunks_over_tls(self):
        body = self.message("bdat3")
        half = len(body) // 2
        c = self.session(tls=True)
        c.send(b"BDAT %d\r\n" % half + body[:half]
               + b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:]
               + b"QUIT\r\n")
        replies = c.read_until_closed(timeout=15)
        self.assertEqual([r.code for r in replies], [250, 250, 221], replies)
        received = self.expect_arrival("bdat3", body)
        cipher = c.sock.cipher()[0]
        self.assertIn(cipher, received)

    def test_bdat_without_final_crlf(self):
        # Legal in BDAT; relaying with DATA then needs a CRLF before the dot.
        body = self.message("bdat5").rstrip(b"\r\n") + b"\r\nno line end"
        c = self.session()
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertReply(c.read_reply(), 250)
        msg = self.sink.wait_message(lambda m: b"X-Tag: bdat5" in m.data, timeout=20,
                                     what="BDAT message without final CRLF")
        _, rest = split_received(msg.data)
        self.assertIn(rest, (body, body + b"\r\n"))

    def test_bdat_then_data_in_same_session(self):
        body = self.message("bdat4")
        c = self.session()
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<{RCPT}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        second = body.replace(b"bdat4", b"data4")
        c.send(mxtest.dot_stuff(second) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.expect_arrival("bdat4", body)
        self.expect_arrival("data4", second)


if __name__ == "__main__":
    mxtest.main()
