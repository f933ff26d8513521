#!/usr/bin/python3
"""Direct MX delivery: which server gets the mail. A single MX gets the
message unchanged; MX preference order; the backup MX when the preferred one
does not answer; the next address of a host; the implicit MX (an A record
only); equal preferences share the load; a refusal of MAIL FROM followed by a
hang-up is reported as that refusal; the operator's source address is the
one the MX sees and the outcome record names; relaying stays refused for
untrusted clients."""

import os
import socket
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, has_id, message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402  (outtest put it on the path)


class MxRoutingTest(outtest.OutboundTestCase):

    def test_single_mx_receives_the_message_unchanged(self):
        dom = unique_domain("single")
        mxname = f"mx.{dom}"
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {host}"])
        sink = self.mx_sink(host, name=f"greeting-{dom}")
        m, local = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], data)

        got = sink.wait_message(has_id(msg_id), timeout=20)
        received, rest = got.split_received()
        self.assertIsNotNone(received, "no Received: header prepended by mxd")
        self.assertEqual(rest, data, "the message changed on its way to the MX")
        self.assertEqual(got.mail_from, SENDER)
        self.assertEqual(got.rcpts, [rcpt])

        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:{mxname}[{host}]:{self.port}", rec)
        self.assertTrue(rec.get("reply", "").startswith("250"), rec)
        # Nothing bounced: no DSN came back to the sender.
        self.assertEqual(m.events("dsn"), [])
        self.assertNoMail(local)

    def test_outbound_record_names_domain_mx_and_greeting(self):
        dom = unique_domain("record")
        mxname = f"mx.{dom}"
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {host}"])
        sink = self.mx_sink(host, name=f"greeting-{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"a@{dom}", f"b@{dom}"], message(msg_id))
        sink.wait_message(has_id(msg_id), timeout=20)
        # Written when the connection closes (idle close after ~2 s).
        sess = self.wait_session(m, ip=host)
        self.assertEqual(sess.get("helo"), f"greeting-{dom}", sess)
        self.assertEqual(sess.get("starttls"), "not_offered", sess)
        self.assertEqual(sess.get("result"), "starttls-not-supported", sess)
        self.assertEqual((sess.get("messages"), sess.get("rcpts")), ("1", "2"), sess)
        self.assertEqual(sess.get("domain"), dom, f"outbound_session names the wrong domain: {sess}")
        self.assertEqual(sess.get("mx"), mxname, f"outbound_session names the wrong MX: {sess}")

    def test_preferred_mx_gets_the_mail(self):
        dom = unique_domain("pref")
        a, b = pick_hosts(2, self.port)
        # The backup is written first and has the lower address: only the
        # preference may decide.
        self.dns.add([f"{dom}. MX 20 backup.{dom}.", f"{dom}. MX 10 primary.{dom}.",
                      f"backup.{dom}. A {a}", f"primary.{dom}. A {b}"])
        backup = self.mx_sink(a, name=f"backup.{dom}")
        primary = self.mx_sink(b, name=f"primary.{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        primary.wait_message(has_id(msg_id), timeout=20)
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:primary.{dom}[{b}]:{self.port}", rec)
        self.assertNoMail(backup)

    def test_backup_mx_when_preferred_does_not_answer(self):
        dom = unique_domain("backup")
        dead, live = pick_hosts(2, self.port)
        self.dns.add([f"{dom}. MX 10 primary.{dom}.", f"{dom}. MX 20 backup.{dom}.",
                      f"primary.{dom}. A {dead}", f"backup.{dom}. A {live}"])
        backup = self.mx_sink(live, name=f"backup.{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        self.send(m, [f"user@{dom}"], data)
        got = backup.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.split_received()[1], data)
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:backup.{dom}[{live}]:{self.port}", rec)
        # Within the same attempt: no deferral, no retry.
        self.assertEqual(rec.get("attempts"), "1", rec)
        self.assertEqual(m.events("deferred"), [])
        failed = m.events("connect_failed", next_hop=f"mx:primary.{dom}[{dead}]:{self.port}")
        self.assertTrue(failed, "the preferred MX was not tried first")

    def test_backup_mx_when_preferred_closes_without_greeting(self):
        dom = unique_domain("nogreet")
        mute, live = pick_hosts(2, self.port)
        self.dns.add([f"{dom}. MX 10 primary.{dom}.", f"{dom}. MX 20 backup.{dom}.",
                      f"primary.{dom}. A {mute}", f"backup.{dom}. A {live}"])
        primary = self.fake_mx(mute, name=f"primary.{dom}", tls=None, greeting=False)
        backup = self.mx_sink(live, name=f"backup.{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        backup.wait_message(has_id(msg_id), timeout=20)
        self.assertTrue(primary.sessions, "the preferred MX was not tried first")
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:backup.{dom}[{live}]:{self.port}", rec)
        self.assertEqual(rec.get("attempts"), "1", rec)

    def test_tempfail_from_preferred_mx_is_retried_there_not_at_backup(self):
        # A server answered: its 4xx is the answer for this attempt.
        dom = unique_domain("tempfail")
        a, b = pick_hosts(2, self.port)
        rcpt = f"user@{dom}"
        self.dns.add([f"{dom}. MX 10 primary.{dom}.", f"{dom}. MX 20 backup.{dom}.",
                      f"primary.{dom}. A {a}", f"backup.{dom}. A {b}"])
        primary = self.mx_sink(a, name=f"primary.{dom}",
                               rcpt_replies={rcpt: "451 4.3.0 try again later"})
        backup = self.mx_sink(b, name=f"backup.{dom}")
        m, _ = self.outbound_mxd()
        self.send(m, [rcpt], message(uuid.uuid4().hex[:12]))
        first = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15)
        self.assertIn("451 4.3.0 try again later", first.get("reply", ""), first)
        self.assertEqual(first.get("next_hop"), f"mx:primary.{dom}[{a}]:{self.port}", first)
        # The retry (retry_min 1) goes to the preferred MX again.
        again = m.wait_event("deferred", rcpt=f"<{rcpt}>", attempts="2", timeout=15)
        self.assertEqual(again.get("next_hop"), f"mx:primary.{dom}[{a}]:{self.port}", again)
        self.assertNoMail(primary, backup)
        self.assertEqual(m.events("bounced"), [])

    def test_connection_failure_record_names_the_address_tried(self):
        dom = unique_domain("connfail")
        dead, live = pick_hosts(2, self.port)
        self.dns.add([f"{dom}. MX 10 primary.{dom}.", f"{dom}. MX 20 backup.{dom}.",
                      f"primary.{dom}. A {dead}", f"backup.{dom}. A {live}"])
        backup = self.mx_sink(live, name=f"backup.{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        backup.wait_message(has_id(msg_id), timeout=20)
        sess = self.wait_session(m, mx=f"primary.{dom}")
        self.assertEqual(sess.get("result"), "connection-failure", sess)
        self.assertEqual(sess.get("domain"), dom, sess)
        self.assertIn("refused", sess.get("error", "").lower(), sess)
        self.assertEqual(sess.get("ip"), dead,
                         f"the connection-failure record does not name the address tried: {sess}")

    def test_next_address_of_a_host_when_the_first_does_not_answer(self):
        dom = unique_domain("addrs")
        dead, live = pick_hosts(2, self.port)
        mxname = f"mx.{dom}"
        self.dns.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {live}", f"{mxname}. A {dead}"])
        rcode, rdatas = self.dns.query(mxname, 1)
        self.assertEqual(outtest.ipv4_rdata(rdatas), [dead, live],
                         "test precondition: the resolver should list the dead address first")
        sink = self.mx_sink(live, name=mxname)
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        sink.wait_message(has_id(msg_id), timeout=20)
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:{mxname}[{live}]:{self.port}", rec)
        self.assertEqual(rec.get("attempts"), "1", rec)
        self.assertTrue(m.events("connect_failed", next_hop=f"mx:{mxname}[{dead}]:{self.port}"),
                        "the first address was not tried")

    def test_ipv6_address_of_an_mx(self):
        dom = unique_domain("v6")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", self.port))
        except OSError as e:
            self.skipTest(f"no [::1]:{self.port} here: {e}")
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. AAAA ::1"])
        sink = self.mx_sink("::1", name=f"mx.{dom}")
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        self.send(m, [f"user@{dom}"], data)
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.split_received()[1], data)
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:mx.{dom}[::1]:{self.port}", rec)

    def test_implicit_mx_is_the_domain_itself(self):
        dom = unique_domain("implicit")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. A {host}"])
        sink = self.mx_sink(host, name=dom)
        m, _ = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        data = message(msg_id)
        self.send(m, [f"user@{dom}"], data)
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.split_received()[1], data)
        rec = m.wait_event("delivered", rcpt=f"<user@{dom}>", timeout=10)
        self.assertEqual(rec.get("next_hop"), f"mx:{dom}[{host}]:{self.port}", rec)

    def test_equal_preferences_share_the_load(self):
        dom = unique_domain("equal")
        a, b, c = pick_hosts(3, self.port)
        self.dns.add([f"{dom}. MX 10 a.{dom}.", f"{dom}. MX 10 b.{dom}.",
                      f"{dom}. MX 20 c.{dom}.",
                      f"a.{dom}. A {a}", f"b.{dom}. A {b}", f"c.{dom}. A {c}"])
        sa = self.mx_sink(a, name=f"a.{dom}")
        sb = self.mx_sink(b, name=f"b.{dom}")
        sc = self.mx_sink(c, name=f"c.{dom}")
        m, _ = self.outbound_mxd()
        n = 16
        client = mxtest.SmtpRaw(m.host, m.port)
        self.addCleanup(client.close)
        client.read_reply()
        client.ehlo()
        for i in range(n):
            for line, code in ((f"MAIL FROM:<{SENDER}>", 250), (f"RCPT TO:<u{i}@{dom}>", 250),
                               ("DATA", 354)):
                r = client.cmd(line)
                self.assertEqual(r.code, code, r)
            client.send(mxtest.dot_stuff(message(f"eq{i}-{uuid.uuid4().hex[:6]}")) + b".\r\n")
            self.assertEqual(client.read_reply().code, 250)
        client.cmd("QUIT")
        mxtest.wait_for(lambda: len(sa.names()) + len(sb.names()) >= n, 40,
                        what=f"{n} messages at a.{dom} and b.{dom}")
        self.assertNoMail(sc)
        counts = (len(sa.names()), len(sb.names()))
        self.assertEqual(sum(counts), n)
        self.assertTrue(all(counts), f"one of two equal-preference MX got all {n} messages: {counts}")

    BLOCKED = ["550-5.7.1 Service unavailable, Client host [192.0.2.1] blocked",
               "550 5.7.1 using a blocklist; see https://blocklist.example/lookup"]

    def check_mail_refused_then_hangup(self, pipelining):
        """shared/seeds/004: a provider that answers MAIL FROM with 550 and
        closes the connection without answering RCPT or DATA. The message
        is returned with that 550 (both lines) at once; it is not deferred
        as a lost connection, and nobody else gets it."""
        dom = unique_domain("blocked")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        fake = self.fake_mx(host, name=f"mx.{dom}", tls=None, pipelining=pipelining,
                            mail_refusal=self.BLOCKED)
        m, local = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        rcpts = [f"a@{dom}", f"b@{dom}"]
        self.send(m, rcpts, message(msg_id))

        for r in rcpts:
            rec = m.wait_event("bounced", rcpt=f"<{r}>", timeout=15)
            for line in self.BLOCKED:
                self.assertIn(line[4:], rec.get("reply", ""), f"not the MX's refusal: {rec}")
        self.assertEqual(m.events("deferred"), [], "the 550 was taken for a lost connection")
        self.assertEqual([s.get("refused_mail", "")[:10] for s in fake.sessions],
                         ["MAIL FROM:"], "one session, ended by the refusal of MAIL")
        self.assertEqual(fake.messages, [])

        _, dsn = self.wait_dsn(local)
        self.assertEqual([v.strip().lower() for v in dsn.field("action")], ["failed", "failed"])
        self.assertEqual([v.strip() for v in dsn.field("status")], ["5.7.1", "5.7.1"])
        diag = " ".join(dsn.field("diagnostic-code"))
        for line in self.BLOCKED:
            self.assertIn(line[4:], diag, f"Diagnostic-Code lacks a line of the reply: {diag!r}")
        self.assertIn(f"Message-ID: <{msg_id}@outtest>".encode(), dsn.raw)
        queue = os.path.join(m.config["spool_dir"], "queue")
        mxtest.wait_for(lambda: not os.listdir(queue), 10, what="spool queue empty")

    def test_mail_from_refused_then_hangup_is_that_refusal_pipelined(self):
        self.check_mail_refused_then_hangup(pipelining=True)

    def test_mail_from_refused_then_hangup_is_that_refusal(self):
        self.check_mail_refused_then_hangup(pipelining=False)

    def test_source_address_is_what_the_mx_sees_and_the_record_says(self):
        dom = unique_domain("source")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}")
        src = outtest.pick_host()
        m, _ = self.outbound_mxd(delivery={"source_ipv4": src},
                                 control=outtest.journal_control(self))
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"user@{dom}"], message(msg_id))
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.env["peer"][0], src, "the MX saw another address")
        self.wait_session(m, ip=host)

        def record():
            for o in outtest.journal_outcomes(m.config["spool_dir"]):
                if o.policy_results and o.policy_results[0].policy_domain == dom:
                    return o
            return None
        o = mxtest.wait_for(record, 15, interval=0.2, what="the outbound outcome record")
        self.assertEqual((o.local_ip, o.policy_results[0].sending_mta_ip), (src, src), o)

    def test_source_address_not_on_this_host_defers_with_the_reason(self):
        dom = unique_domain("badsource")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}")
        # TEST-NET-1: never assigned here, so bind() fails before any packet.
        m, _ = self.outbound_mxd(delivery={"source_ipv4": "192.0.2.25"})
        self.send(m, [f"user@{dom}"], message(uuid.uuid4().hex[:12]))
        rec = m.wait_event("deferred", rcpt=f"<user@{dom}>", timeout=15)
        self.assertIn("source address 192.0.2.25", rec.get("reply", ""), rec)
        self.assertEqual(m.events("bounced"), [])
        self.assertEqual(sink.names(), [])

    def test_untrusted_client_may_not_relay(self):
        dom = unique_domain("relay")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}")
        trusted, untrusted = outtest.pick_host(), outtest.pick_host()
        m, _ = self.outbound_mxd(trusted_networks=[f"{trusted}/32"])
        c = self.raw(m, source=untrusted)
        c.read_reply()
        c.ehlo()
        self.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}>").code, 250)
        self.assertReply(c.cmd(f"RCPT TO:<user@{dom}>"), 554, "5.7.1")
        c.cmd("QUIT")
        # The trusted client may.
        msg_id = uuid.uuid4().hex[:12]
        replies = mxtest.send_message(m.host, m.port, SENDER, [f"user@{dom}"], message(msg_id),
                                      source=trusted)
        self.assertEqual(replies[-2].code, 250, replies)
        sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(len(sink.names()), 1)


if __name__ == "__main__":
    outtest.main()
