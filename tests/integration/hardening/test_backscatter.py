#!/usr/bin/python3
"""Backscatter (issue 9, item 4): a hosted domain with a recipient list
refuses an unknown recipient at RCPT time with 550 5.1.1, so the message to
it is never spooled and no DSN ever goes to the (unverified) sender; a known
recipient of the same transaction is delivered. The list comes from mxd.conf
(`recipients`, `recipients_file`) or from controld (`mailctl domain
recipients ...`), and a change through mailctl reaches mxd without a restart.
A domain with no check keeps accepting any local part, and mxd names it in a
warning at startup (docs/mxd.md, "Recipient checks")."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import mxtest  # noqa: E402
import cptest  # noqa: E402
from cptest import parse_table, rcpt_reply, wait_for  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

SENDER = f"sender@{LOCAL_DOMAIN}"   # delivered to the sink too: a DSN would show there
UNKNOWN = f"nobody@{LOCAL_DOMAIN}"
# The next hop would refuse the unknown recipient, as a real mailbox store
# does: accepted at RCPT, that refusal is what turns into a DSN to SENDER.
SINK_KW = {"rcpt_replies": {UNKNOWN: "550 5.1.1 no such user here"}}
SETTLE = 4  # seconds given to a DSN that should not come (retry_min is 1 s)
APPLY_WITHIN = 15


def one_transaction(m, rcpts, msg_id):
    """MAIL (RET=FULL), each RCPT, then DATA if any was accepted. Returns
    {rcpt: Reply} and the reply to the end of DATA (None without DATA)."""
    c = mxtest.SmtpRaw(m.host, m.port, timeout=15)
    try:
        assert c.read_reply().code == 220
        assert c.ehlo().code == 250
        r = c.cmd(f"MAIL FROM:<{SENDER}> RET=FULL")
        assert r.code == 250, r
        replies = {a: c.cmd(f"RCPT TO:<{a}>") for a in rcpts}
        end = None
        if any(r.code == 250 for r in replies.values()):
            assert c.cmd("DATA").code == 354
            c.send(mxtest.dot_stuff(mxtest.make_body(msg_id, size=300)) + b".\r\n")
            end = c.read_reply()
        else:
            end = c.cmd("DATA")
        c.cmd("QUIT")
        return replies, end
    finally:
        c.close()


class BackscatterAsserts:

    def assertUnknown(self, reply, addr):
        self.assertEqual(reply.code, 550, f"RCPT <{addr}>: {reply}")
        self.assertIn(f"5.1.1 <{addr}>: Recipient address rejected: User unknown",
                      reply.lines[-1])

    def assertNoDsnAndEmptyQueue(self, m, sink):
        """Nothing for the sender at the sink (no DSN, no delay notice) and
        nothing left in mxd's queue."""
        time.sleep(SETTLE)
        dsns = [x for x in sink.messages() if x.rcpts == [SENDER] or x.mail_from == ""]
        self.assertEqual(dsns, [], "a DSN went to the sender")
        self.assertFalse([x for x in sink.messages() if UNKNOWN in x.rcpts],
                         "the unknown recipient reached the next hop")
        rc, out, err = m.queue("list")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(^|\s)0 messages", f"mxd still holds mail:\n{out}")


class ConfigFileRecipientsTest(BackscatterAsserts, mxtest.MxTestCase):
    """Domains of mxd.conf, no controld."""

    def listed_mxd(self, sink, **domain_over):
        cfg = self.mxd_config(sink.next_hop)
        dom = {"name": LOCAL_DOMAIN, "next_hop": sink.next_hop,
               "recipients": ["alice", f"Bob@{LOCAL_DOMAIN.upper()}", "sender"]}
        dom.update(domain_over)
        cfg["domains"] = mxtest.LCList([dom])
        return self.mxd(cfg)

    def test_unknown_recipient_gets_550_at_rcpt_and_no_dsn(self):
        sink = self.new_sink(**SINK_KW)
        m = self.listed_mxd(sink)
        replies, end = one_transaction(
            m, ["alice@" + LOCAL_DOMAIN, UNKNOWN, "BOB@" + LOCAL_DOMAIN.upper()], "mixed")
        self.assertEqual(replies["alice@" + LOCAL_DOMAIN].code, 250)
        self.assertUnknown(replies[UNKNOWN], UNKNOWN)
        # Local parts and the domain compare ignoring ASCII case.
        self.assertEqual(replies["BOB@" + LOCAL_DOMAIN.upper()].code, 250)
        self.assertEqual(end.code, 250, end)
        msg = sink.wait_message(lambda x: "alice@" + LOCAL_DOMAIN in x.rcpts,
                                what="the known recipients' copy")
        self.assertEqual(sorted(msg.rcpts), sorted(["alice@" + LOCAL_DOMAIN,
                                                    "BOB@" + LOCAL_DOMAIN.upper()]))
        # A transaction with only the unknown recipient has nothing to send.
        replies, end = one_transaction(m, [UNKNOWN], "unknown-only")
        self.assertUnknown(replies[UNKNOWN], UNKNOWN)
        self.assertEqual(end.code, 503, end)
        self.assertNoDsnAndEmptyQueue(m, sink)
        self.assertEqual(len(sink.names()), 1)
        rec = m.wait_event("rcpt_refused", reason="user_unknown")
        self.assertEqual(rec.get("rcpt"), UNKNOWN)

    def test_recipients_file_and_subaddress_delimiter(self):
        sink = self.new_sink(**SINK_KW)
        path = os.path.join(self.wd, "recipients.txt")
        with open(path, "w") as f:
            f.write("# one address per line\nalice\n\n  carol@%s  \n" % LOCAL_DOMAIN)
        os.chmod(path, 0o644)
        cfg = self.mxd_config(sink.next_hop, recipient_delimiter="+")
        cfg["domains"] = mxtest.LCList([{"name": LOCAL_DOMAIN, "next_hop": sink.next_hop,
                                         "recipients_file": path}])
        m = self.mxd(cfg)
        self.assertEqual(rcpt_reply(m.host, m.port, f"carol@{LOCAL_DOMAIN}")[0], 250)
        self.assertEqual(rcpt_reply(m.host, m.port, f"alice+lists@{LOCAL_DOMAIN}")[0], 250)
        code, text = rcpt_reply(m.host, m.port, f"alicia+alice@{LOCAL_DOMAIN}")
        self.assertEqual(code, 550, text)
        self.assertIn("User unknown", text)
        # The file is read again on reload: a new line applies without a restart.
        self.assertEqual(rcpt_reply(m.host, m.port, f"dave@{LOCAL_DOMAIN}")[0], 550)
        with open(path, "a") as f:
            f.write("dave\n")
        m.reload()
        wait_for(lambda: rcpt_reply(m.host, m.port, f"dave@{LOCAL_DOMAIN}")[0] == 250,
                 APPLY_WITHIN, interval=0.25, what="dave accepted after reload")

    def test_domain_without_check_is_named_in_a_startup_warning(self):
        sink = self.new_sink()
        cfg = self.mxd_config(sink.next_hop)
        cfg["domains"] = mxtest.LCList([
            {"name": LOCAL_DOMAIN, "next_hop": sink.next_hop},
            {"name": "catchall.test", "next_hop": sink.next_hop, "recipient_check": "any"},
            {"name": "listed.test", "next_hop": sink.next_hop,
             "recipients": ["a"]},
        ])
        m = self.mxd(cfg)
        rec = m.wait_event("recipient_check_missing", domain=LOCAL_DOMAIN)
        self.assertEqual(rec.get("risk"), "backscatter")
        named = {r.get("domain") for r in m.events("recipient_check_missing")}
        self.assertEqual(named, {LOCAL_DOMAIN})
        # Today's behaviour for the unchecked domain: any local part.
        self.assertEqual(rcpt_reply(m.host, m.port, f"whoever@{LOCAL_DOMAIN}")[0], 250)
        self.assertEqual(rcpt_reply(m.host, m.port, "whoever@catchall.test")[0], 250)
        self.assertEqual(rcpt_reply(m.host, m.port, "whoever@listed.test")[0], 550)
        # `mxd -n` (checking a configuration) says so too.
        p = cptest.run([mxtest.MXD_BIN, "-n", "-c", m.conf_path])
        self.assertIn(f"event=recipient_check_missing domain={LOCAL_DOMAIN} risk=backscatter",
                      p.stderr)
        self.assertNotIn("domain=catchall.test risk", p.stderr)

    def test_bad_recipient_entries_are_refused_at_load(self):
        sink = self.new_sink()
        cfg = self.mxd_config(sink.next_hop)
        cfg["domains"] = mxtest.LCList([{"name": LOCAL_DOMAIN, "next_hop": sink.next_hop,
                                         "recipients": ["x@other.test"]}])
        m = self.mxd(cfg, start=False)
        m.write_config()
        p = cptest.run([mxtest.MXD_BIN, "-n", "-c", m.conf_path], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not an address of example.test", p.stderr)
        cfg["domains"][0]["recipients"] = ["alice"]
        cfg["domains"][0]["recipient_check"] = "verify"
        m.write_config(cfg)
        p = cptest.run([mxtest.MXD_BIN, "-n", "-c", m.conf_path], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("recipient_check verify takes no recipients list", p.stderr)


class ControldRecipientsTest(BackscatterAsserts, cptest.FleetTestCase):
    """The recipient list of a controld domain, set with mailctl."""

    DOMAIN = "hosted.test"

    def rcpt(self, m, local):
        return rcpt_reply(m.host, m.port, f"{local}@{self.DOMAIN}")[0]

    def wait_rcpt(self, m, local, code, what):
        try:
            wait_for(lambda: self.rcpt(m, local) == code, APPLY_WITHIN, interval=0.25, what=what)
        except TimeoutError as e:
            raise AssertionError(f"{e}; RCPT now answers {self.rcpt(m, local)}") from None

    def test_list_from_mailctl_reaches_mxd_and_refuses_unknown_at_rcpt(self):
        c = self.controld()
        sink = self.sink()
        m = self.mxd_with_control(c, sink)
        pid = m.pid
        wait_for(lambda: c.metrics().get("controld_config_watchers") == 1, 15, interval=0.2,
                 what="mxd watching the configuration")
        self.mailctl(c, "domain", "add", self.DOMAIN, sink.next_hop)
        self.wait_rcpt(m, "anyone", 250, "domain applied (no check yet: any local part)")

        out = self.mailctl(c, "domain", "recipients", self.DOMAIN, "add", "alice",
                           f"Bob@{self.DOMAIN.upper()}").stdout
        self.assertRegex(out, r"config version \d+")
        # Adding does not switch the check on: the list is used from `mode list`.
        self.assertEqual(self.rcpt(m, "anyone"), 250)
        self.mailctl(c, "domain", "recipients", self.DOMAIN, "mode", "list")
        self.wait_rcpt(m, "anyone", 550, "unknown refused once mode list is pushed")
        code, text = rcpt_reply(m.host, m.port, f"anyone@{self.DOMAIN}")
        self.assertIn(f"5.1.1 <anyone@{self.DOMAIN}>: Recipient address rejected: User unknown",
                      text)
        self.assertEqual(self.rcpt(m, "alice"), 250)
        self.assertEqual(self.rcpt(m, "BOB"), 250)

        listed = self.mailctl(c, "domain", "recipients", self.DOMAIN, "list").stdout
        head, *rows = listed.splitlines()
        self.assertEqual(head, f"domain={self.DOMAIN} mode=list recipients=2")
        self.assertEqual(rows, ["alice", "bob"])

        # The mixed transaction: the known recipient delivered, the unknown
        # refused at RCPT and never bounced.
        replies, end = one_transaction(m, [f"alice@{self.DOMAIN}", f"ghost@{self.DOMAIN}"],
                                       "fleet-mixed")
        self.assertUnknown(replies[f"ghost@{self.DOMAIN}"], f"ghost@{self.DOMAIN}")
        self.assertEqual(end.code, 250, end)
        sink.wait_message(lambda x: x.rcpts == [f"alice@{self.DOMAIN}"], what="alice's copy")
        time.sleep(SETTLE)
        self.assertFalse([x for x in sink.messages() if x.mail_from == "" or
                          f"ghost@{self.DOMAIN}" in x.rcpts], "a DSN or the unknown's copy")

        # Changes reach mxd without a restart.
        self.mailctl(c, "domain", "recipients", self.DOMAIN, "add", "carol")
        self.wait_rcpt(m, "carol", 250, "carol accepted after add")
        self.mailctl(c, "domain", "recipients", self.DOMAIN, "rm", "bob")
        self.wait_rcpt(m, "bob", 550, "bob refused after rm")
        self.mailctl(c, "domain", "recipients", self.DOMAIN, "mode", "any")
        self.wait_rcpt(m, "anyone", 250, "any local part again after mode any")
        self.assertEqual(m.pid, pid, "mxd was restarted")
        self.assertFalse(m.events("child_died"), "an mxd process died")

    def test_mailctl_refuses_what_it_cannot_do(self):
        c = self.controld()
        self.mailctl(c, "domain", "add", self.DOMAIN, "smtp:127.0.0.1:25")
        r = self.mailctl(c, "domain", "recipients", "nosuch.test", "add", "x", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("NOT_FOUND", r.stderr)
        r = self.mailctl(c, "domain", "recipients", self.DOMAIN, "add", "x@other.test",
                         check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        self.assertIn("x@other.test", r.stderr)
        r = self.mailctl(c, "domain", "recipients", self.DOMAIN, "mode", "maybe", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        self.assertEqual(self.scalar(
            f"SELECT recipient_check = '' FROM domains WHERE name = '{self.DOMAIN}'"), "t")
        # A removed domain takes its list with it.
        self.mailctl(c, "domain", "recipients", self.DOMAIN, "add", "x", "y")
        self.assertEqual(self.scalar("SELECT count(*) FROM domain_recipients"), "2")
        self.mailctl(c, "domain", "rm", self.DOMAIN)
        self.assertEqual(self.scalar("SELECT count(*) FROM domain_recipients"), "0")
        self.assertEqual(parse_table(self.mailctl(c, "domain", "list").stdout), [])


if __name__ == "__main__":
    cptest.main()
