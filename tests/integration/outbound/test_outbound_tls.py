#!/usr/bin/python3
"""Opportunistic STARTTLS to the MX: used when offered, recorded as
starttls-not-supported when not; a broken handshake falls back to plaintext
on the same address (and the failure is recorded); a REQUIRETLS message is
never handed to an MX without TLS and REQUIRETLS: it bounces with 5.7.30."""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, has_id, message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402


class OutboundTlsTest(outtest.OutboundTestCase):

    def one_mx(self, tag):
        dom = unique_domain(tag)
        (host,) = pick_hosts(1, self.port)
        mxname = f"mx.{dom}"
        self.dns.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {host}"])
        return dom, mxname, host

    def test_starttls_used_when_offered(self):
        dom, mxname, host = self.one_mx("tls")
        sink = self.mx_sink(host, name=mxname, tls=True)
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        self.send(m, [f"user@{dom}"], data)
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.split_received()[1], data)
        tls = got.env.get("tls") or {}
        self.assertTrue(tls.get("version"), f"the MX got the message without TLS: {got.env}")
        self.assertIn(tls["version"], ("TLSv1.2", "TLSv1.3"))
        # SNI names the MX host (what a server with several certificates
        # picks by), not the recipient domain.
        self.assertEqual(tls.get("sni"), mxname, f"SNI sent by mxd: {tls}")
        m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        sess = self.wait_session(m, ip=host)
        self.assertEqual(sess.get("starttls"), "established", sess)
        self.assertEqual(sess.get("result"), "success", sess)
        self.assertEqual(sess.get("tls_version"), tls["version"], sess)
        self.assertEqual(m.events("tls_fallback"), [])

    def test_plaintext_recorded_as_starttls_not_supported(self):
        dom, mxname, host = self.one_mx("plain")
        sink = self.mx_sink(host, name=mxname)
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.env.get("tls"), {}, got.env)
        sess = self.wait_session(m, ip=host)
        self.assertEqual(sess.get("starttls"), "not_offered", sess)
        self.assertEqual(sess.get("result"), "starttls-not-supported", sess)
        self.assertEqual(sess.get("tls_version"), "-", sess)

    def check_fallback(self, tls_break):
        dom, mxname, host = self.one_mx(f"tls{tls_break}")
        fake = self.fake_mx(host, name=mxname, tls=tls_break)
        m, local = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], data)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at {mxname} in plaintext")
        mail_from, rcpts, got, tls, _ = fake.messages[0]
        self.assertIsNone(tls)
        self.assertEqual((mail_from, rcpts), (SENDER, [rcpt]))
        self.assertEqual(mxtest.split_received(got)[1], data)
        # First the handshake, then plaintext on the same address.
        self.assertEqual([s["starttls"] for s in fake.sessions][:2], [True, False], fake.sessions)
        self.assertEqual(len(fake.messages), 1)
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:{mxname}[{host}]:{self.port}", rec)
        self.assertEqual(rec.get("attempts"), "1", "the fallback waited for a retry")
        fb = m.wait_event("tls_fallback", timeout=5)
        self.assertTrue(fb.get("reason"), fb)
        failed = self.wait_session(m, ip=host, starttls="attempted")
        self.assertEqual(failed.get("result"), "validation-failure", failed)
        self.assertEqual(failed.get("helo"), mxname, failed)
        self.assertEqual(failed.get("domain"), dom, failed)
        self.assertEqual(failed.get("mx"), mxname, failed)
        self.assertTrue(failed.get("error"), f"no error in the failed session's record: {failed}")
        self.assertEqual(m.events("bounced"), [])
        self.assertNoMail(local)

    def test_tls_handshake_answered_with_garbage_falls_back_to_plaintext(self):
        self.check_fallback("garbage")

    def test_tls_handshake_cut_off_falls_back_to_plaintext(self):
        self.check_fallback("close")

    def test_plaintext_session_after_tls_failure_is_not_a_tls_success(self):
        # The record of the plaintext retry: STARTTLS was offered and failed,
        # the mail went unencrypted; RFC 8460 counts no success for it.
        dom, mxname, host = self.one_mx("tlsrec")
        fake = self.fake_mx(host, name=mxname, tls="garbage")
        m, _ = self.outbound_mxd()
        self.send(m, [f"user@{dom}"], message(uuid.uuid4().hex[:12]))
        mxtest.wait_for(lambda: fake.messages, 15, what=f"the message at {mxname}")
        plain = self.wait_session(m, ip=host, messages="1")
        self.assertNotEqual(plain.get("result"), "success",
                            f"a plaintext session recorded as a TLS success: {plain}")

    def test_starttls_refused_with_454_goes_on_in_plaintext(self):
        # RFC 3207: after 454 the client decides; opportunistic TLS goes on.
        dom, mxname, host = self.one_mx("tls454")
        fake = self.fake_mx(host, name=mxname, tls="refuse")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], data)
        try:
            mxtest.wait_for(lambda: fake.messages, 10, what=f"the message at {mxname}")
        except TimeoutError:
            self.fail(f"an MX that answers STARTTLS with 454 never gets the mail; "
                      f"mxd said: {m.events('deferred', rcpt=f'<{rcpt}>')[:1]}")
        self.assertEqual(mxtest.split_received(fake.messages[0][2])[1], data)
        sess = self.wait_session(m, ip=host)
        self.assertNotEqual(sess.get("result"), "success",
                            f"a session without TLS recorded as a TLS success: {sess}")

    def test_plaintext_injected_after_starttls_reply_is_not_a_tls_success(self):
        dom, mxname, host = self.one_mx("inject")
        self.fake_mx(host, name=mxname, tls="inject")
        m, _ = self.outbound_mxd()
        self.send(m, [f"user@{dom}"], message(uuid.uuid4().hex[:12]))
        sess = self.wait_session(m, ip=host)
        self.assertEqual((sess.get("starttls"), sess.get("result")),
                         ("attempted", "validation-failure"),
                         f"a refused TLS start recorded as: {sess}")

    def test_plaintext_injected_after_starttls_reply_falls_back_to_plaintext(self):
        dom, mxname, host = self.one_mx("inject")
        fake = self.fake_mx(host, name=mxname, tls="inject")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(msg_id))
        try:
            mxtest.wait_for(lambda: fake.messages, 10, what=f"the message at {mxname}")
        except TimeoutError:
            self.fail("no plaintext fallback after a failed TLS start: the message "
                      f"stays deferred: {m.events('deferred', rcpt=f'<{rcpt}>')[-1:]}")
        self.assertIsNone(fake.messages[0][3])
        self.assertTrue(m.events("tls_fallback"))

    def send_requiretls(self, m, rcpt, data):
        """Submit over STARTTLS with MAIL FROM ... REQUIRETLS (RFC 8689)."""
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        c.starttls()
        ehlo = c.ehlo()
        self.assertIn("REQUIRETLS", " ".join(ehlo.lines).upper(),
                      f"mxd does not offer REQUIRETLS inside TLS: {ehlo}")
        self.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<{rcpt}>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(mxtest.dot_stuff(data) + b".\r\n")
        self.assertEqual(c.read_reply().code, 250)
        c.cmd("QUIT")

    def check_requiretls_bounce(self, tls_at_mx):
        dom, mxname, host = self.one_mx("reqtls")
        sink = self.mx_sink(host, name=mxname, tls=tls_at_mx)
        m, local = self.outbound_mxd(certs=[self.cert()])
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send_requiretls(m, rcpt, message(msg_id))
        q = m.wait_event("queued", timeout=10)
        self.assertEqual(q.get("requiretls"), "1", q)
        rec = m.wait_event("bounced", rcpt=f"<{rcpt}>", timeout=15)
        self.assertIn("5.7.30", rec.get("reply", ""), rec)
        self.assertTrue(rec["reply"].startswith("5"), rec)
        _, dsn = self.wait_dsn(local)
        self.assertEqual([v.strip() for v in dsn.field("status")], ["5.7.30"])
        self.assertTrue(any(rcpt in v for v in dsn.field("final-recipient")))
        self.assertIn("5.7.30", " ".join(dsn.field("diagnostic-code")))
        self.assertNoMail(sink)
        self.assertEqual(m.events("delivered", rcpt=f"<{rcpt}>"), [])
        return m, host

    def test_requiretls_message_to_plaintext_mx_bounces(self):
        self.check_requiretls_bounce(tls_at_mx=False)

    def test_requiretls_message_to_mx_without_requiretls_bounces(self):
        m, host = self.check_requiretls_bounce(tls_at_mx=True)
        sess = self.wait_session(m, ip=host)
        self.assertEqual(sess.get("starttls"), "established", sess)

    def test_requiretls_message_not_delivered_over_unverified_tls(self):
        # RFC 8689 4.2.1 and issue 4: REQUIRETLS needs DANE or enforced
        # MTA-STS; an unverified certificate (no policy) is not enough, even
        # when the MX advertises REQUIRETLS.
        dom, mxname, host = self.one_mx("reqtlsunv")
        fake = self.fake_mx(host, name=mxname, tls=True, requiretls=True)
        m, local = self.outbound_mxd(certs=[self.cert()])
        rcpt = f"user@{dom}"
        self.send_requiretls(m, rcpt, message(uuid.uuid4().hex[:12]))
        rec = m.wait_event(pred=lambda r: r.get("event") in ("bounced", "delivered", "deferred")
                           and r.get("rcpt") == f"<{rcpt}>", timeout=15)
        self.assertEqual(fake.messages, [],
                         f"a REQUIRETLS message went to an unauthenticated MX: {rec}")
        self.assertEqual(rec.get("event"), "bounced", rec)
        self.assertIn("5.7.30", rec.get("reply", ""), rec)


if __name__ == "__main__":
    outtest.main()
