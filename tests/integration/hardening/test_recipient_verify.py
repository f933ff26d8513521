#!/usr/bin/python3
"""Recipient verification (issue 9, item 4; docs/mxd.md, "Recipient
checks"): a domain with recipient_check = "verify" asks its next hop at RCPT
time (a probe: MAIL FROM:<>, RCPT TO, QUIT), as Postfix's
reject_unverified_recipient. An unknown recipient gets 550 5.1.1 and nothing
is queued or bounced; a known one is accepted and delivered; answers are
cached (a second RCPT does not probe again); a next hop that is down or hangs
gives 450 4.1.1 within recipient_verify.timeout, and the worker serves other
sessions meanwhile."""

import os
import select
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402
# MAIL (RET=FULL) from SENDER, each RCPT, DATA when one was accepted.
from test_backscatter import SENDER, one_transaction as transaction  # noqa: E402
import cptest  # noqa: E402  (test_backscatter put ../control on the path)

# PostgreSQL and the fleet PKI for ControldVerifyTest, once for the file.
setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

from aiosmtpd.controller import Controller  # noqa: E402

KNOWN = ("alice", "bob")
VERIFY_TIMEOUT = 4      # recipient_verify.timeout in these tests
DEFAULT_TIMEOUT = 10    # its default (docs/mxd.md), for the hanging next hop
SETTLE = 4              # seconds given to a DSN or delivery that should not come


def open_transaction(test, m):
    """A raw session to m, past EHLO and MAIL FROM, closed at cleanup."""
    c = mxtest.SmtpRaw(m.host, m.port, timeout=30)
    test.addCleanup(c.close)
    test.assertEqual(c.read_reply().code, 220)
    test.assertEqual(c.ehlo().code, 250)
    test.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}>").code, 250)
    return c


class Mailboxes:
    """The next hop: an SMTP server that knows two users, refuses any other
    recipient with 550 5.1.1 at RCPT, and counts the probes (RCPTs of a
    transaction with the null sender) per address."""

    def __init__(self):
        self.lock = threading.Lock()
        self.probes = {}
        self.messages = []  # (mail_from, [rcpts])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if envelope.mail_from in ("", "<>"):
            with self.lock:
                self.probes[address.lower()] = self.probes.get(address.lower(), 0) + 1
        if local not in KNOWN:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK: stored"

    def probe_count(self, addr):
        with self.lock:
            return self.probes.get(addr.lower(), 0)

    def delivered(self):
        with self.lock:
            return list(self.messages)


class RecipientVerifyTest(mxtest.MxTestCase):

    def setUp(self):
        super().setUp()
        self.boxes = Mailboxes()
        self.host = mxtest.pick_host()
        self.ctl = Controller(self.boxes, hostname=self.host, port=mxtest.free_port(self.host),
                              ready_timeout=10)
        self.ctl.start()
        self.addCleanup(self.ctl.stop)
        self.hop = f"smtp:{self.host}:{self.ctl.port}"

    def verify_mxd(self, extra_domains=(), timeout=VERIFY_TIMEOUT):
        verify = {"timeout": timeout} if timeout != DEFAULT_TIMEOUT else {}
        cfg = self.mxd_config(self.hop, workers=1, recipient_verify=verify)
        cfg["domains"] = mxtest.LCList(
            [{"name": LOCAL_DOMAIN, "next_hop": self.hop, "recipient_check": "verify"}]
            + list(extra_domains))
        return self.mxd(cfg)

    def assertQueueEmpty(self, m):
        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(^|\s)0 messages", f"mxd still holds mail:\n{out}")

    def assertTempFail(self, reply, addr):
        self.assertEqual(reply.code, 450, f"RCPT <{addr}>: {reply}")
        self.assertIn(f"4.1.1 <{addr}>: Recipient address rejected: Recipient address "
                      "verification failed: try again later", reply.lines[-1])

    def test_unknown_gets_550_known_is_delivered_and_answers_are_cached(self):
        m = self.verify_mxd()
        alice, nobody = f"alice@{LOCAL_DOMAIN}", f"nobody@{LOCAL_DOMAIN}"
        replies, end = transaction(m, [alice, nobody], "first")
        self.assertEqual(replies[alice].code, 250, replies[alice])
        self.assertEqual(replies[nobody].code, 550, replies[nobody])
        self.assertIn(f"5.1.1 <{nobody}>: Recipient address rejected: User unknown",
                      replies[nobody].lines[-1])
        self.assertEqual(end.code, 250, end)
        mxtest.wait_for(lambda: any(alice in r for _, r in self.boxes.delivered()), 20,
                        what="the message delivered to alice")
        self.assertEqual(self.boxes.probe_count(alice), 1)
        self.assertEqual(self.boxes.probe_count(nobody), 1)

        # Within the TTLs, both answers come from the worker's cache.
        replies, end = transaction(m, [nobody, "ALICE@" + LOCAL_DOMAIN.upper()], "second")
        self.assertEqual(replies[nobody].code, 550, replies[nobody])
        self.assertEqual(replies["ALICE@" + LOCAL_DOMAIN.upper()].code, 250)
        self.assertEqual(end.code, 250, end)
        self.assertEqual(self.boxes.probe_count(alice), 1, "alice was probed again")
        self.assertEqual(self.boxes.probe_count(nobody), 1, "nobody was probed again")

        # Nothing for nobody was queued, and no DSN went anywhere.
        mxtest.wait_for(lambda: len(self.boxes.delivered()) == 2, 20,
                        what="the second message delivered")
        time.sleep(SETTLE)
        for frm, rcpts in self.boxes.delivered():
            self.assertEqual(frm, SENDER, "a DSN was sent")
            self.assertNotIn(nobody, [r.lower() for r in rcpts])
        self.assertQueueEmpty(m)
        rec = m.wait_event("rcpt_verify", result="rejected")
        self.assertEqual(rec.get("rcpt"), nobody)
        m.wait_event("rcpt_refused", reason="user_unknown", rcpt=nobody)

    def test_next_hop_down_gets_450_and_nothing_is_queued(self):
        down_host = mxtest.pick_host()
        down = f"smtp:{down_host}:{mxtest.free_port(down_host)}"
        m = self.verify_mxd([{"name": "down.test", "next_hop": down,
                              "recipient_check": "verify"}])
        for attempt in ("first", "again"):   # a failure is not cached
            replies, end = transaction(m, ["carol@down.test"], attempt)
            self.assertTempFail(replies["carol@down.test"], "carol@down.test")
            self.assertEqual(end.code, 503, end)
        self.assertEqual(len(m.events("rcpt_verify", result="failed")), 2)
        time.sleep(SETTLE)
        self.assertEqual(self.boxes.delivered(), [])
        self.assertQueueEmpty(m)

    def test_hanging_next_hop_gets_450_within_the_deadline_others_are_served(self):
        # Accepts connections (the kernel's backlog) and never says a word.
        hang_host = mxtest.pick_host()
        hang = socket.socket()
        hang.bind((hang_host, 0))
        hang.listen(16)
        self.addCleanup(hang.close)
        m = self.verify_mxd([{"name": "hang.test",
                              "next_hop": f"smtp:{hang_host}:{hang.getsockname()[1]}",
                              "recipient_check": "verify"}], timeout=DEFAULT_TIMEOUT)
        c = open_transaction(self, m)
        started = time.monotonic()
        # RCPT and a pipelined NOOP: the NOOP waits behind the probe.
        c.send(b"RCPT TO:<dave@hang.test>\r\nNOOP\r\n")

        # The one worker serves another session meanwhile.
        alice = f"alice@{LOCAL_DOMAIN}"
        replies, end = transaction(m, [alice], "meanwhile")
        self.assertEqual(replies[alice].code, 250, replies[alice])
        self.assertEqual(end.code, 250, end)
        # ... while the first session still waits for its probe.
        self.assertEqual(select.select([c.sock], [], [], 0)[0], [],
                         "the first session was answered before the other was served")

        rcpt = c.read_reply(timeout=DEFAULT_TIMEOUT + 20)
        elapsed = time.monotonic() - started
        self.assertTempFail(rcpt, "dave@hang.test")
        self.assertEqual(c.read_reply().code, 250)   # the NOOP, after the RCPT's reply
        self.assertLess(elapsed, DEFAULT_TIMEOUT + 15, "no answer within the deadline")
        rec = m.wait_event("rcpt_verify", result="failed")
        self.assertIn("timeout", rec.get("why", ""))
        c.cmd("QUIT")

    def test_lmtp_unix_next_hop(self):
        sock = os.path.join(self.wd, "lmtp.sock")
        nobody = f"nobody@{LOCAL_DOMAIN}"
        sink = self.new_sink(unix=sock, lmtp=True, tcp=False,
                             rcpt_replies={nobody: "550 5.1.1 no such user here"})
        cfg = self.mxd_config(sink.next_hop, workers=1)
        cfg["domains"] = mxtest.LCList([{"name": LOCAL_DOMAIN, "next_hop": sink.next_hop,
                                         "recipient_check": "verify"}])
        m = self.mxd(cfg)
        bob = f"bob@{LOCAL_DOMAIN}"
        replies, end = transaction(m, [bob, nobody], "lmtp")
        self.assertEqual(replies[bob].code, 250, replies[bob])
        self.assertEqual(replies[nobody].code, 550, replies[nobody])
        self.assertEqual(end.code, 250, end)
        msg = sink.wait_message(lambda x: bob in x.rcpts, what="bob's copy")
        self.assertEqual(msg.rcpts, [bob])


class ControldVerifyTest(cptest.FleetTestCase):
    """`mailctl domain recipients DOMAIN mode verify`: stored by controld,
    pushed in the snapshot, and every mxd starts probing the next hop."""

    DOMAIN = "verified.test"

    def test_mode_verify_from_mailctl_reaches_mxd_without_restart(self):
        boxes = Mailboxes()
        host = mxtest.pick_host()
        ctl = Controller(boxes, hostname=host, port=mxtest.free_port(host), ready_timeout=10)
        ctl.start()
        self.addCleanup(ctl.stop)
        c = self.controld()
        m = self.mxd_with_control(c, self.sink())
        pid = m.pid
        self.mailctl(c, "domain", "add", self.DOMAIN, f"smtp:{host}:{ctl.port}")

        def rcpt(local):
            return cptest.rcpt_reply(m.host, m.port, f"{local}@{self.DOMAIN}")[0]
        mxtest.wait_for(lambda: rcpt("ghost") == 250, 20, interval=0.25,
                        what="the domain applied, any local part before a mode is set")
        self.assertEqual(boxes.probe_count(f"ghost@{self.DOMAIN}"), 0)

        self.mailctl(c, "domain", "recipients", self.DOMAIN, "mode", "verify")
        self.assertEqual(self.scalar(
            f"SELECT recipient_check FROM domains WHERE name = '{self.DOMAIN}'"), "verify")
        mxtest.wait_for(lambda: rcpt("ghost") == 550, 20, interval=0.25,
                        what="an unknown recipient refused once mode verify is pushed")
        self.assertGreaterEqual(boxes.probe_count(f"ghost@{self.DOMAIN}"), 1)
        self.assertEqual(rcpt("alice"), 250)
        self.assertEqual(boxes.probe_count(f"alice@{self.DOMAIN}"), 1)
        listed = self.mailctl(c, "domain", "recipients", self.DOMAIN, "list").stdout
        self.assertEqual(listed.splitlines()[0], f"domain={self.DOMAIN} mode=verify recipients=0")
        self.assertEqual(m.pid, pid, "mxd was restarted")


if __name__ == "__main__":
    unittest.main()
