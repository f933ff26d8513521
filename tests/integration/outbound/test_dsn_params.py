#!/usr/bin/python3
"""RFC 3461 (DSN) parameters end to end: what a client gives on MAIL FROM
(RET, ENVID) and RCPT TO (NOTIFY, ORCPT) reaches a next hop that offers DSN
unchanged, also after a partial delivery; past a next hop without DSN the
sender gets a "relayed" success notice, after LMTP a "delivered" one;
failure notices follow NOTIFY and RET and quote ENVID and ORCPT; malformed
parameters are refused with 501 by name and the session goes on.

Next hops are configured per domain (no DNS needed): example.test (the
sender's, where the DSNs land) and plain.test go to aiosmtpd sinks, which do
not offer DSN; dsn.test goes to DsnHop, a small SMTP server in this process
that offers DSN and keeps the exact MAIL and RCPT command lines it got
(aiosmtpd upper-cases parameters and refuses RET/ENVID, so it cannot show
what was passed on). Every wait is bounded."""

import os
import re
import smtplib
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import Dsn, has_id  # noqa: E402

import mxtest  # noqa: E402  (outtest put it on the path)
from mxtest import LOCAL_DOMAIN  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
ENVID = "QQ+2B314159"          # xtext for "QQ+314159"
ENVID_SHOWN = "QQ+314159"


class DsnHop(outtest.SmtpTestServer):
    """An SMTP next hop offering DSN (and PIPELINING unless told not to).
    rcpt_replies: {address: "550 5.1.1 ..."} refuses those recipients.
    messages: one dict per message: "mail" (the MAIL FROM line as received),
    "rcpts" (the accepted RCPT TO lines), "data" (unstuffed content)."""

    name = "dsnhop.example.test"
    no_rcpts_reply = "554 5.5.1 no valid recipients"

    def __init__(self, host, port, pipelining=True, rcpt_replies=None):
        self.pipelining = pipelining
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.messages = []
        super().__init__(host, port)

    def wait_message(self, pred, timeout=20):
        def find():
            with self.lock:
                return next((m for m in self.messages if pred(m)), None)
        return mxtest.wait_for(find, timeout, what="message at the DSN next hop")

    def ehlo_lines(self, s):
        return super().ehlo_lines(s) + ["DSN"] + (["PIPELINING"] if self.pipelining else [])

    def smtp_RCPT(self, s, cmd):
        reply = self.rcpt_replies.get(outtest.rcpt_address(cmd).lower())
        if reply:
            s.send(reply)
        else:
            super().smtp_RCPT(s, cmd)

    def message(self, s, data):
        with self.lock:
            self.messages.append({"mail": s.mail, "rcpts": s.rcpt_lines, "data": data})
        return "250 2.0.0 Ok: queued by dsnhop"


def body(msg_id):
    return (f"From: <{SENDER}>\r\n"
            f"To: <someone@dsn.test>\r\n"
            f"Subject: dsn parameters {msg_id}\r\n"
            f"Message-ID: <{msg_id}@dsntest>\r\n"
            f"X-Test-Id: {msg_id}\r\n"
            f"\r\n"
            f"the body line {msg_id}\r\n").encode()


class DsnParamsTest(mxtest.MxTestCase):

    def setUp(self):
        super().setUp()
        outtest.watch_dir(self.wd)

    def start(self, dsn_hop=None, plain_replies=None, extra_domains=(), **over):
        """mxd with example.test -> the local sink (DSNs land there),
        plain.test -> a sink without DSN, dsn.test -> dsn_hop."""
        local = self.new_sink(name="local")
        plain = self.new_sink(name="plain", rcpt_replies=plain_replies)
        cfg = self.mxd_config(local.next_hop, None, **over)
        domains = list(cfg["domains"]) + [{"name": "plain.test", "next_hop": plain.next_hop}]
        if dsn_hop is not None:
            domains.append({"name": "dsn.test", "next_hop": dsn_hop.next_hop})
        cfg["domains"] = mxtest.LCList(domains + list(extra_domains))
        return self.mxd(cfg), local, plain

    def dsn_hop(self, **kw):
        hop = DsnHop(*mxtest.free_addr(), **kw)
        self.addCleanup(hop.stop)
        return hop

    def smtp(self, m):
        s = smtplib.SMTP(m.host, m.port, timeout=10, local_hostname="client.test")
        self.addCleanup(s.close)
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        return s

    def transaction(self, m, mail_options, rcpts, data):
        """One message; rcpts is [(address, [options])]. Every reply must
        be positive."""
        s = self.smtp(m)
        code, text = s.mail(SENDER, mail_options)
        self.assertEqual(code, 250, text)
        for addr, opts in rcpts:
            code, text = s.rcpt(addr, opts)
            self.assertEqual(code, 250, f"RCPT {addr} {opts}: {code} {text}")
        code, text = s.data(data)
        self.assertEqual(code, 250, text)
        s.quit()

    def dsns(self, local):
        return [x for x in local.messages() if x.mail_from == "" and x.rcpts == [SENDER]]

    def wait_dsn(self, local, timeout=20):
        msg = local.wait_message(lambda x: x.mail_from == "" and x.rcpts == [SENDER],
                                 timeout=timeout, what=f"DSN to {SENDER}")
        return Dsn(msg.data)

    # ------------------------------------------------------------ inbound

    def test_ehlo_offers_dsn(self):
        m, _, _ = self.start()
        s = self.smtp(m)
        self.assertTrue(s.has_extn("dsn"), f"EHLO lacks DSN: {s.esmtp_features}")

    def test_malformed_parameters_get_501_by_name_and_session_goes_on(self):
        m, local, _ = self.start()
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        for bad, name in (("RET=ALL", "RET"), ("ENVID=a=b", "ENVID"),
                          ("RET=FULL RET=HDRS", "RET")):
            r = c.cmd(f"MAIL FROM:<{SENDER}> {bad}")
            self.assertReply(r, 501, "5.5.4")
            self.assertIn(name, r.text, f"501 for {bad!r} does not name {name}: {r}")
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}> RET=HDRS ENVID={ENVID}"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<first@{LOCAL_DOMAIN}> NOTIFY=FAILURE"), 250)
        for bad, name in (("NOTIFY=SOMETIMES", "NOTIFY"), ("NOTIFY=NEVER,SUCCESS", "NOTIFY"),
                          ("NOTIFY=DELAY NOTIFY=DELAY", "NOTIFY"), ("ORCPT=a@b", "ORCPT"),
                          ("ORCPT=rfc822;" + "x" * 500, "ORCPT")):
            r = c.cmd(f"RCPT TO:<bad@{LOCAL_DOMAIN}> {bad}")
            self.assertReply(r, 501, "5.5.4")
            self.assertIn(name, r.text, f"501 for {bad[:40]!r} does not name {name}: {r}")
        # Unknown parameters are refused as before.
        self.assertEqual(c.cmd(f"RCPT TO:<bad@{LOCAL_DOMAIN}> FOO=1").code, 555)
        # Nothing else was lost: the transaction and its first recipient stand.
        self.assertReply(c.cmd(f"RCPT TO:<second@{LOCAL_DOMAIN}> NOTIFY=NEVER"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msg_id = uuid.uuid4().hex[:10]
        c.send(mxtest.dot_stuff(body(msg_id)) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        c.cmd("QUIT")
        got = local.wait_message(has_id(msg_id))
        self.assertEqual(sorted(got.rcpts), [f"first@{LOCAL_DOMAIN}", f"second@{LOCAL_DOMAIN}"])

    # ------------------------------------------------------------ passed on

    def test_next_hop_with_dsn_receives_the_same_parameters(self):
        hop = self.dsn_hop()
        m, local, _ = self.start(dsn_hop=hop)
        msg_id = uuid.uuid4().hex[:10]
        orcpt = "rfc822;original+2Buser@example.org"
        self.transaction(m, ["RET=HDRS", f"ENVID={ENVID}"],
                         [("user@dsn.test", ["NOTIFY=SUCCESS,FAILURE", f"ORCPT={orcpt}"]),
                          ("other@dsn.test", [])],
                         body(msg_id))
        got = hop.wait_message(lambda x: f"X-Test-Id: {msg_id}".encode() in x["data"])
        self.assertRegex(got["mail"], rf"^MAIL FROM:<{SENDER}>.* RET=HDRS ENVID={re.escape(ENVID)}$")
        self.assertEqual(got["rcpts"], [
            f"RCPT TO:<user@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT={orcpt}",
            "RCPT TO:<other@dsn.test>"])
        # That next hop notifies now: mxd sends no success notice of its own.
        m.wait_event("delivered", rcpt="<user@dsn.test>", timeout=10)
        time.sleep(1)
        self.assertEqual(m.events("dsn"), [])
        self.assertEqual(self.dsns(local), [])

    def test_dsn_parameters_survive_a_partial_delivery(self):
        """One recipient is delivered at once, the other's next hop is down:
        the spool file is rewritten for the one left, and its NOTIFY and
        ORCPT (and the message's RET and ENVID) still reach the hop later."""
        host, port = mxtest.free_addr()
        m, local, plain = self.start(
            extra_domains=[{"name": "later.test", "next_hop": f"smtp:{host}:{port}"}])
        msg_id = uuid.uuid4().hex[:10]
        self.transaction(m, ["RET=FULL", f"ENVID={ENVID}"],
                         [("now@plain.test", []),
                          ("user@later.test", ["NOTIFY=DELAY,FAILURE", "ORCPT=rfc822;orig@later.test"])],
                         body(msg_id))
        plain.wait_message(has_id(msg_id))
        m.wait_event("deferred", rcpt="<user@later.test>", timeout=15)
        hop = DsnHop(host, port, pipelining=False)
        self.addCleanup(hop.stop)
        got = hop.wait_message(lambda x: f"X-Test-Id: {msg_id}".encode() in x["data"], timeout=30)
        self.assertTrue(got["mail"].endswith(f" RET=FULL ENVID={ENVID}"), got["mail"])
        self.assertEqual(len(got["rcpts"]), 1, got["rcpts"])
        m = re.fullmatch(r"RCPT TO:<user@later\.test> NOTIFY=(\S+) ORCPT=rfc822;orig@later\.test",
                         got["rcpts"][0])
        self.assertIsNotNone(m, got["rcpts"])
        # The order of the NOTIFY list carries no meaning (RFC 3461 4.1).
        self.assertEqual(sorted(m.group(1).split(",")), ["DELAY", "FAILURE"])

    # ------------------------------------------------------------ mxd notifies

    def test_next_hop_without_dsn_yields_a_relayed_notice(self):
        m, local, plain = self.start()
        msg_id = uuid.uuid4().hex[:10]
        self.transaction(m, ["RET=HDRS", f"ENVID={ENVID}"],
                         [("user@plain.test", ["NOTIFY=SUCCESS,FAILURE",
                                               "ORCPT=rfc822;original+2Buser@example.org"])],
                         body(msg_id))
        got = plain.wait_message(has_id(msg_id))
        # Nothing a server without DSN could not understand was passed on.
        self.assertEqual(got.env["rcpt_options"], [])
        self.assertFalse([o for o in got.env["mail_options"] if o.startswith(("RET", "ENVID"))],
                         got.env["mail_options"])
        dsn = self.wait_dsn(local)
        self.assertEqual(dsn.msg.get_content_type(), "multipart/report")
        self.assertEqual([v.strip() for v in dsn.field("action")], ["relayed"])
        self.assertEqual([v.strip() for v in dsn.field("status")], ["2.0.0"])
        self.assertEqual([v.strip() for v in dsn.field("final-recipient")], ["rfc822; user@plain.test"])
        self.assertEqual([v.strip() for v in dsn.field("original-recipient")],
                         ["rfc822; original+user@example.org"])
        self.assertEqual([v.strip() for v in dsn.field("original-envelope-id")], [ENVID_SHOWN])
        self.assertTrue(dsn.field("remote-mta"), "no Remote-MTA for a relayed recipient")
        # A success notice returns the headers only.
        raw = dsn.raw.decode("utf-8", "replace")
        self.assertIn(f"Message-ID: <{msg_id}@dsntest>", raw)
        self.assertNotIn(f"the body line {msg_id}", raw)

    def test_lmtp_final_delivery_yields_a_delivered_notice(self):
        store = self.new_sink(name="store", lmtp=True)
        m, local, _ = self.start(extra_domains=[{"name": "box.test", "next_hop": store.next_hop}])
        msg_id = uuid.uuid4().hex[:10]
        self.transaction(m, [], [("user@box.test", ["NOTIFY=SUCCESS"]),
                                 ("quiet@box.test", [])], body(msg_id))
        store.wait_message(has_id(msg_id))
        dsn = self.wait_dsn(local)
        self.assertEqual([v.strip() for v in dsn.field("action")], ["delivered"])
        self.assertEqual([v.strip() for v in dsn.field("final-recipient")], ["rfc822; user@box.test"])
        self.assertEqual(dsn.field("original-envelope-id"), [])
        time.sleep(1)
        self.assertEqual(len(self.dsns(local)), 1, "more than one notice")

    def test_5xx_notify_never_gets_no_dsn_and_notify_failure_does(self):
        m, local, plain = self.start(plain_replies={
            "never@plain.test": "550 5.1.1 no such user (never)",
            "fail@plain.test": "550 5.1.1 no such user (fail)"})
        msg_id = uuid.uuid4().hex[:10]
        self.transaction(m, [f"ENVID={ENVID}"],
                         [("never@plain.test", ["NOTIFY=NEVER"]),
                          ("fail@plain.test", ["NOTIFY=FAILURE", "ORCPT=rfc822;fail-orig@example.org"])],
                         body(msg_id))
        dsn = self.wait_dsn(local)
        self.assertEqual([v.strip() for v in dsn.field("final-recipient")], ["rfc822; fail@plain.test"])
        self.assertEqual([v.strip() for v in dsn.field("action")], ["failed"])
        self.assertEqual([v.strip() for v in dsn.field("original-recipient")],
                         ["rfc822; fail-orig@example.org"])
        self.assertEqual([v.strip() for v in dsn.field("original-envelope-id")], [ENVID_SHOWN])
        self.assertIn("5.1.1", " ".join(dsn.field("status")))
        self.assertNotIn("never@plain.test", dsn.raw.decode("utf-8", "replace"))
        # No RET: the headers come back, not the body.
        self.assertIn("text/rfc822-headers", dsn.raw.decode())
        self.assertNotIn(f"the body line {msg_id}", dsn.raw.decode())
        m.wait_event("dsn_suppressed", reason="notify", timeout=10)
        time.sleep(1)
        self.assertEqual(len(self.dsns(local)), 1, "NOTIFY=NEVER recipient got a notice")

    def test_notify_never_alone_gets_no_dsn_at_all(self):
        m, local, _ = self.start(plain_replies={"never@plain.test": "550 5.1.1 no such user"})
        self.transaction(m, [], [("never@plain.test", ["NOTIFY=NEVER"])], body("never"))
        m.wait_event("bounced", rcpt="<never@plain.test>", timeout=15)
        m.wait_event("dsn_suppressed", reason="notify", timeout=10)
        time.sleep(1)
        self.assertEqual(self.dsns(local), [])
        self.assertEqual(m.events("dsn"), [])

    def test_ret_full_failure_returns_the_whole_message(self):
        m, local, _ = self.start(plain_replies={"gone@plain.test": "550 5.1.1 gone"})
        msg_id = uuid.uuid4().hex[:10]
        self.transaction(m, ["RET=FULL"], [("gone@plain.test", [])], body(msg_id))
        dsn = self.wait_dsn(local)
        parts = {p.get_content_type(): p for p in dsn.msg.walk()}
        self.assertIn("message/rfc822", parts, f"no message/rfc822 part: {list(parts)}")
        returned = parts["message/rfc822"].get_payload()[0]
        self.assertEqual(returned["Message-ID"], f"<{msg_id}@dsntest>")
        self.assertIn(f"the body line {msg_id}", returned.get_payload())


if __name__ == "__main__":
    outtest.main()
