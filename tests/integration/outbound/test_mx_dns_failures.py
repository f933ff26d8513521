#!/usr/bin/python3
"""Direct MX delivery when DNS says no or says nothing: a domain that does
not exist and a null MX (RFC 7505) bounce at once with a DSN to the sender;
a SERVFAIL, a resolver that is down or unreachable defer the message, which
is delivered once DNS answers again."""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, has_id, message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402

NXDOMAIN = 3


class MxDnsFailureTest(outtest.OutboundTestCase):

    def check_bounce_dsn(self, local, m, rcpt, status, reply_part, msg_id):
        """The DSN a user gets: a multipart/report naming the recipient, the
        status, the reason as mxd saw it, and the original headers."""
        _, dsn = self.wait_dsn(local)
        self.assertEqual(dsn.msg.get_content_type(), "multipart/report")
        self.assertEqual(dsn.msg.get_param("report-type"), "delivery-status")
        self.assertTrue(any(outtest.MX_NAME in v for v in dsn.field("reporting-mta")),
                        dsn.field("reporting-mta"))
        self.assertTrue(any(rcpt in v for v in dsn.field("final-recipient")),
                        dsn.field("final-recipient"))
        self.assertEqual([v.strip().lower() for v in dsn.field("action")], ["failed"])
        self.assertEqual([v.strip() for v in dsn.field("status")], [status])
        diag = " ".join(dsn.field("diagnostic-code"))
        self.assertIn(reply_part, diag, f"Diagnostic-Code does not quote the reason: {diag!r}")
        # Nobody answered for the recipient: there is no remote MTA to name.
        self.assertEqual(dsn.field("remote-mta"), [])
        self.assertIn(f"Message-ID: <{msg_id}@outtest>".encode(), dsn.raw,
                      "the DSN does not carry the original headers")
        self.assertTrue(dsn.text.strip(), "no human-readable part")
        rec = m.wait_event("dsn", timeout=5)
        self.assertEqual(rec.get("to"), f"<{SENDER}>", rec)
        self.assertEqual(rec.get("kind"), "failure", rec)

    def queue_empty(self, m, timeout=10):
        queue = os.path.join(m.config["spool_dir"], "queue")
        mxtest.wait_for(lambda: not os.listdir(queue), timeout, what="spool queue empty")

    def test_nonexistent_domain_bounces_with_dsn(self):
        dom = unique_domain("nxdomain")
        rcode, _ = self.dns.query(dom, 15)
        self.assertEqual(rcode, NXDOMAIN, "test precondition: the domain must not exist")
        m, local = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(msg_id))
        rec = m.wait_event("bounced", rcpt=f"<{rcpt}>", timeout=15)
        self.assertTrue(rec.get("reply", "").startswith("550 5.1.2"), rec)
        self.assertIn(dom, rec["reply"], rec)
        self.assertEqual(m.events("deferred"), [], "NXDOMAIN is final, not a reason to retry")
        self.check_bounce_dsn(local, m, rcpt, "5.1.2", "5.1.2", msg_id)
        self.queue_empty(m)

    def test_null_mx_bounces_without_contacting_the_domain(self):
        dom = unique_domain("nullmx")
        (host,) = pick_hosts(1, self.port)
        # The domain has an address too: an implicit-MX fallback would go there.
        self.dns.add([f"{dom}. MX 0 .", f"{dom}. A {host}"])
        watch = self.fake_mx(host, name=dom)
        m, local = self.outbound_mxd()
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(msg_id))
        rec = m.wait_event("bounced", rcpt=f"<{rcpt}>", timeout=15)
        self.assertTrue(rec.get("reply", "").startswith("556 5.1.10"), rec)
        self.check_bounce_dsn(local, m, rcpt, "5.1.10", "556 5.1.10", msg_id)
        self.queue_empty(m)
        self.assertEqual(watch.sessions, [], "mxd connected to a null-MX domain's address")
        self.assertEqual(self.sessions(m), [], "an outbound session for a null-MX domain")

    def test_servfail_defers_and_never_bounces(self):
        # The lame zone: unbound answers SERVFAIL at once.
        dom = f"x{uuid.uuid4().hex[:6]}.{self.dns.env['DNSTEST_ZONE_LAME'].rstrip('.')}"
        m, local = self.outbound_mxd()
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(uuid.uuid4().hex[:12]))
        first = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15)
        self.assertTrue(first.get("reply", "").startswith("451 4.4.3"), first)
        # retry_min 1: the next attempt comes within seconds and says the same.
        again = m.wait_event("deferred", rcpt=f"<{rcpt}>", attempts="2", timeout=15)
        self.assertTrue(again.get("reply", "").startswith("451 4.4.3"), again)
        self.assertEqual(m.events("bounced"), [])
        self.assertEqual(m.events("dsn"), [])
        self.assertNoMail(local)
        self.assertTrue(os.listdir(os.path.join(m.config["spool_dir"], "queue")),
                        "the deferred message is no longer in the queue")

    def test_resolver_down_defers_then_delivers_when_it_is_back(self):
        dom = unique_domain("dnsdown")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}")
        m, local = self.outbound_mxd()
        self.dns.stop_resolver()
        # Whatever happens below, the next tests need the resolver.
        self.addCleanup(lambda: self.dns.t.state.get("unbound_pid") or self.dns.start_resolver())
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(msg_id))
        rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=20)
        self.assertTrue(rec.get("reply", "").startswith("451 4.4.3"), rec)
        self.assertNoMail(sink)
        self.dns.start_resolver()
        sink.wait_message(has_id(msg_id), timeout=20)
        done = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(done.get("next_hop"), f"mx:mx.{dom}[{host}]:{self.port}", done)
        self.assertEqual(m.events("bounced"), [])
        self.assertEqual(m.events("dsn"), [])

    def test_unreachable_resolver_defers_then_delivers_after_reload(self):
        dom = unique_domain("deadres")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        sink = self.mx_sink(host, name=f"mx.{dom}")
        dead = f"127.0.0.1:{mxtest.free_port('127.0.0.1')}"
        m, local = self.outbound_mxd(resolver=dead)
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(msg_id))
        rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=20)
        self.assertTrue(rec.get("reply", "").startswith("451 4.4.3"), rec)
        self.assertNoMail(sink)
        # The operator fixes the resolver address: SIGHUP.
        m.reload(mxtest.deep_merge(m.config, {"resolver": self.dns.resolver}))
        sink.wait_message(has_id(msg_id), timeout=30)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(m.events("bounced"), [])


if __name__ == "__main__":
    outtest.main()
