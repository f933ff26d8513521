#!/usr/bin/python3
"""The operator's TLS policies (tls_policies; controld's `mailctl policy set`)
for direct MX delivery, and the "mx" route transport, against the signed test
DNS and real MX sinks on loopback.

none: plaintext although STARTTLS is offered; verify: the certificate must
name the MX host; secure: it must name the recipient domain or a subdomain;
dane-only: an MX without DNSSEC-signed TLSA is not used; an operator policy
replaces MTA-STS discovery; a route "mx" exempts a domain from a smarthost."""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import has_id, message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402  (outtest put it on the path)
from mxtest import LCList  # noqa: E402


class TlsPolicyTest(outtest.OutboundTestCase):

    def one_mx(self, tag, mx_name=None, tls=True):
        dom = unique_domain(tag)
        mxname = mx_name or f"mx.{dom}"
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 {mxname}.", f"{mxname}. A {host}"])
        sink = self.mx_sink(host, name=mxname, tls=tls)
        return dom, mxname, host, sink

    def mx_cert(self, host):
        # mx_sink(tls=True) made a self-signed certificate for its greeting
        # name: trusting it as the CA makes PKIX succeed exactly when the
        # name checked is the one it carries.
        return os.path.join(self.wd, f"mx-{host}.pem")

    def test_none_sends_plaintext_although_starttls_is_offered(self):
        dom, _, host, sink = self.one_mx("pnone")
        m, _ = self.outbound_mxd(tls_policies=LCList([{"domain": dom, "mode": "none"}]))
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"u@{dom}"], message(msg_id))
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertEqual(got.env["tls"], {})
        sess = self.wait_session(m, ip=host)
        self.assertEqual(sess["starttls"], "offered")

    def test_verify_needs_a_certificate_naming_the_mx(self):
        dom, mxname, host, sink = self.one_mx("pverify")
        m, _ = self.outbound_mxd(tls_policies=LCList([{"domain": dom, "mode": "verify"}]),
                                 delivery={"ca_file": self.mx_cert(host)})
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [f"u@{dom}"], message(msg_id))
        got = sink.wait_message(has_id(msg_id), timeout=20)
        self.assertTrue(got.env["tls"])
        rec = m.wait_event("delivered", rcpt=f"<u@{dom}>")
        self.assertEqual(rec["next_hop"], f"verify+mx:{mxname}[{host}]:{self.port}")

    def test_verify_refuses_an_untrusted_certificate(self):
        dom, mxname, host, sink = self.one_mx("puntrusted")
        m, local = self.outbound_mxd(tls_policies=LCList([{"domain": dom, "mode": "verify"}]))
        self.send(m, [f"u@{dom}"], message(uuid.uuid4().hex[:12]))
        rec = m.wait_event("deferred", rcpt=f"<u@{dom}>", timeout=20)
        self.assertIn(f"TLS policy verify for {dom}: {mxname}: certificate-not-trusted",
                      rec["reply"])
        self.assertNoMail(sink, local)
        sess = m.wait_event("outbound_session", result="certificate-not-trusted")
        self.assertEqual(sess["domain"], dom)

    def test_secure_accepts_a_subdomain_name_and_refuses_another_domain(self):
        dom, mxname, host, sink = self.one_mx("psecure")          # mx.<dom>: a subdomain
        other = unique_domain("provider")
        dom2, mx2, host2, sink2 = self.one_mx("psecure2", mx_name=f"mx.{other}")
        bundle = os.path.join(self.wd, "ca-bundle.pem")
        with open(bundle, "w") as out:
            for h in (host, host2):
                with open(self.mx_cert(h)) as f:
                    out.write(f.read())
        m, local = self.outbound_mxd(
            tls_policies=LCList([{"domain": dom, "mode": "secure"},
                                 {"domain": dom2, "mode": "secure"}]),
            delivery={"ca_file": bundle})
        ok_id, bad_id = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        self.send(m, [f"u@{dom}"], message(ok_id))
        self.send(m, [f"u@{dom2}"], message(bad_id))
        self.assertTrue(sink.wait_message(has_id(ok_id), timeout=20).env["tls"])
        rec = m.wait_event("deferred", rcpt=f"<u@{dom2}>", timeout=20)
        self.assertIn(f"TLS policy secure for {dom2}: {mx2}: certificate-host-mismatch",
                      rec["reply"])
        self.assertNoMail(sink2)

    def test_dane_only_skips_an_mx_without_tlsa(self):
        dom, _, host, sink = self.one_mx("pdaneonly")
        m, local = self.outbound_mxd(tls_policies=LCList([{"domain": dom, "mode": "dane-only"}]))
        self.send(m, [f"u@{dom}"], message(uuid.uuid4().hex[:12]))
        rec = m.wait_event("deferred", rcpt=f"<u@{dom}>", timeout=20)
        self.assertIn("TLS policy dane-only", rec["reply"])
        self.assertTrue(m.events("dane_only_skipped", domain=dom))
        self.assertNoMail(sink, local)

    def test_route_mx_exempts_a_domain_from_the_smarthost(self):
        dom, mxname, host, sink = self.one_mx("pexempt", tls=False)
        smarthost = self.new_sink(name="smarthost")
        m, _ = self.outbound_mxd(routes=LCList([
            {"recipient_domain": dom, "transport": "mx"},
            {"transport": smarthost.next_hop}]))
        a, b = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        self.send(m, [f"u@{dom}"], message(a))
        self.send(m, ["v@elsewhere.test"], message(b))
        sink.wait_message(has_id(a), timeout=20)
        smarthost.wait_message(has_id(b), timeout=20)
        rec = m.wait_event("delivered", rcpt=f"<u@{dom}>")
        self.assertEqual(rec["next_hop"], f"mx:{mxname}[{host}]:{self.port}")


if __name__ == "__main__":
    outtest.main()
