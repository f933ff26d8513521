#!/usr/bin/python3
"""A real, unmodified Debian Postfix as mxd's next hop: Postfix offers
PIPELINING, CHUNKING, DSN and 8BITMIME, so mxd sends with BDAT (RFC 3030),
several chunks for a large message, and the bytes arrive unchanged at the
sink Postfix relays to. A message Postfix refuses (over its size limit) is
returned to the sender quoting Postfix's reply, and the next message goes.

Needs root (Postfix's master runs as root and drops to mail_owner)."""

import os
import shutil
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402
from test_postfix_client import POSTFIX, PostfixInstance  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"


def big_message(tag, size):
    """CRLF lines, some starting with dots, 8-bit text, about size bytes."""
    head = (f"From: <{SENDER}>\r\nTo: <x@remote.test>\r\nSubject: bdat {tag}\r\n"
            f"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{tag}@bdat.test>\r\n"
            f"X-Test-Id: {tag}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode()
    lines, n, i = [], len(head), 0
    while n < size:
        line = (f".line {i} with a leading dot, naïve café ☕ " + "x" * 60 + "\r\n").encode()
        if i % 7 == 0:
            line = b"." + line
        lines.append(line)
        n += len(line)
        i += 1
    return head + b"".join(lines) + b"last line\r\n"


class PostfixNextHopTest(mxtest.MxTestCase):

    def setUp(self):
        super().setUp()
        if not mxtest.IS_ROOT:
            self.fail("a private Postfix instance needs root")
        if not os.access(POSTFIX, os.X_OK) or not shutil.which("script"):
            self.fail("postfix or script(1) missing (scripts/deps)")

    def fleet(self, size_limit=10240000):
        sink = self.new_sink(name="final")
        pf = PostfixInstance(os.path.join(self.wd, "postfix"),
                             f"remote.test = smtp:[{sink.host}]:{sink.port}",
                             mxtest.pick_host(),
                             {"smtp_tls_security_level": "none",
                              "message_size_limit": str(size_limit)}.items())
        self.addCleanup(pf.stop)
        pf.start()
        local = self.new_sink(name="local")
        cfg = self.mxd_config(local.next_hop, trusted_networks=["127.0.0.0/8"],
                              relay_next_hop=f"smtp:{pf.host}:{pf.port}")
        m = self.mxd(cfg)
        return m, pf, sink, local

    def send(self, m, data, rcpt="user@remote.test"):
        replies = mxtest.send_message(m.host, m.port, SENDER, [rcpt], data, timeout=60)
        self.assertEqual(replies[-2].code, 250, replies)

    def test_bdat_chunks_arrive_unchanged(self):
        m, pf, sink, _ = self.fleet()
        small, large = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        small_data = big_message(small, 300)
        large_data = big_message(large, 3 * 1024 * 1024 + 12345)   # four 1 MiB chunks
        self.send(m, small_data)
        self.send(m, large_data)
        for tag, data in ((small, small_data), (large, large_data)):
            got = sink.wait_message(lambda x, t=tag: f"X-Test-Id: {t}".encode() in x.data,
                                    timeout=60, what=f"message {tag} via Postfix")
            # The sink sees Postfix's Received:, then mxd's, then the original.
            rest = got.data
            for _ in range(2):
                hdr, rest = mxtest.split_received(rest)
                self.assertIsNotNone(hdr, got.data[:300])
            self.assertEqual(rest, data, "the message changed on its way through BDAT")
        mxtest.wait_for(lambda: len(m.events("delivered")) == 2, 10, what="two deliveries")
        self.assertEqual([r["transfer"] for r in m.events("delivered")], ["BDAT", "BDAT"])
        self.assertIn("status=sent", pf.log())

    def test_refused_message_is_returned_and_the_next_one_goes(self):
        m, pf, sink, local = self.fleet(size_limit=1024 * 1024)
        big, small = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        self.send(m, big_message(big, 2 * 1024 * 1024), rcpt="big@remote.test")
        self.send(m, big_message(small, 500), rcpt="small@remote.test")
        rec = m.wait_event("bounced", rcpt="<big@remote.test>", timeout=60)
        self.assertTrue(rec["reply"].startswith("552"), rec)
        dsn = local.wait_message(lambda x: x.mail_from == "" and x.rcpts == [SENDER],
                                 timeout=30, what="DSN for the refused message")
        self.assertIn(b"552", dsn.data)
        sink.wait_message(lambda x: f"X-Test-Id: {small}".encode() in x.data, timeout=60,
                          what="the next message")
        self.assertEqual(m.events("delivered", rcpt="<small@remote.test>")[0]["transfer"], "BDAT")


if __name__ == "__main__":
    mxtest.main()
