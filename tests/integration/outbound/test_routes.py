#!/usr/bin/python3
"""Routes, transports and the operator's TLS policies (issue 4, item 1).

mxd relays for trusted loopback clients. A route (first match wins) by
recipient domain, sender domain and attempt number sends mail to a
smarthost over SMTP or to a submission server with SASL PLAIN over TLS;
tls_policies (Postfix's levels) decide how much TLS a destination gets.

Real peers only: the aiosmtpd sink (tests/tools/sink.py) as smarthosts and
an aiosmtpd submission server in this process with STARTTLS and AUTH PLAIN.
No DNS here: the direct-MX side of the policies is in test_tls_policies.py.
"""

import os
import ssl
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import LCList, LOCAL_DOMAIN, free_port, wait_for  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
USER = "fleet@provider.test"
PASSWORD = "s3cret-Pa55-never-logged"


def message(tag):
    return (f"From: <{SENDER}>\r\nTo: <x@remote.test>\r\nSubject: route {tag}\r\n"
            f"X-Test-Id: {tag}\r\n\r\nbody of {tag}\r\n").encode()


def has_id(tag):
    return lambda x: f"X-Test-Id: {tag}".encode() in x.data


class SubmissionServer:
    """A submission server (aiosmtpd): STARTTLS when given a certificate,
    AUTH PLAIN required (only inside TLS when it has a certificate)."""

    def __init__(self, host, port, cert=None, user=USER, password=PASSWORD):
        self.user, self.password = user, password
        self.received = []      # (mail_from, rcpts, content, login)
        self.logins = []        # (mechanism, login, accepted)
        self.lock = threading.Lock()
        ctx = None
        if cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*cert)
        self.controller = Controller(
            self, hostname=host, port=port, server_hostname="submission.test",
            tls_context=ctx, require_starttls=False, auth_required=True,
            auth_require_tls=ctx is not None, authenticator=self._authenticate,
            ready_timeout=10)
        self.controller.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login == self.user.encode() and
              auth_data.password == self.password.encode())
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        with self.lock:
            self.logins.append((mechanism, login, ok))
        if not ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if session.auth_data else None
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content, login, bool(session.ssl)))
        return "250 2.0.0 submitted"

    def stop(self):
        self.controller.stop()


class RouteTest(mxtest.MxTestCase):

    def relay_mxd(self, relay, **over):
        """mxd relaying for 127.0.0.0/8 through `relay` unless a route says
        otherwise; example.test is local (a sink: the DSNs land there)."""
        local = self.new_sink(name="local")
        cfg = self.mxd_config(local.next_hop, trusted_networks=["127.0.0.0/8"],
                              relay_next_hop=relay.next_hop if relay else None)
        if relay is None:
            cfg.pop("relay_next_hop", None)
        cfg = mxtest.deep_merge(cfg, over)
        return self.mxd(cfg), local

    def send(self, m, rcpts, data, sender=SENDER):
        replies = mxtest.send_message(m.host, m.port, sender, rcpts, data)
        self.assertEqual(replies[-2].code, 250, f"mxd did not accept the message: {replies}")

    def submission(self, cert=True, **kw):
        port = free_port("127.0.0.1")
        crt = self.cert("submission", cn="localhost") if cert else None
        srv = SubmissionServer("127.0.0.1", port, crt, **kw)
        self.addCleanup(srv.stop)
        return srv, port, crt

    def password_file(self, text=PASSWORD):
        path = os.path.join(self.wd, "provider.secret")
        with open(path, "w") as f:
            f.write(text + "\n")
        os.chmod(path, 0o600)
        return path

    def assertSecretNotLogged(self, m):
        self.assertNotIn(PASSWORD, m.log_text())
        import base64
        self.assertNotIn(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
                         m.log_text())

    # -- routes

    def test_recipient_and_sender_domain_routes_first_match_wins(self):
        relay = self.new_sink(name="relay")
        smarthost = self.new_sink(name="smarthost")
        vip = self.new_sink(name="vip")
        unused = self.new_sink(name="unused")
        m, _ = self.relay_mxd(relay, routes=LCList([
            {"recipient_domain": "routed.test", "transport": smarthost.next_hop},
            {"sender_domain": "vip.test", "transport": vip.next_hop},
            {"recipient_domain": "routed.test", "transport": unused.next_hop},
        ]))
        self.send(m, ["a@routed.test", "b@elsewhere.test"], message("r1"))
        got = smarthost.wait_message(has_id("r1"))
        self.assertEqual(got.rcpts, ["a@routed.test"])
        got = relay.wait_message(has_id("r1"))
        self.assertEqual(got.rcpts, ["b@elsewhere.test"])
        # The sender's domain picks the route when no recipient route matched first.
        self.send(m, ["c@elsewhere.test", "d@routed.test"], message("r2"), sender="boss@vip.test")
        self.assertEqual(vip.wait_message(has_id("r2")).rcpts, ["c@elsewhere.test"])
        self.assertEqual(smarthost.wait_message(has_id("r2")).rcpts, ["d@routed.test"])
        self.assertEqual(unused.names(), [])
        rec = m.wait_event("delivered", rcpt="<a@routed.test>")
        self.assertEqual(rec["next_hop"], smarthost.next_hop)

    def test_route_by_attempt_number(self):
        """A route with min_attempt takes over from the second attempt: the
        first goes to a relay that defers."""
        relay = self.new_sink(name="relay", rcpt_replies={"x@slow.test": "451 4.3.0 try later"})
        fallback = self.new_sink(name="fallback")
        m, _ = self.relay_mxd(relay, routes=LCList([
            {"recipient_domain": "slow.test", "min_attempt": 2, "transport": fallback.next_hop},
        ]))
        self.send(m, ["x@slow.test"], message("a1"))
        got = fallback.wait_message(has_id("a1"), timeout=30)
        self.assertEqual(got.rcpts, ["x@slow.test"])
        first = m.wait_event("deferred", rcpt="<x@slow.test>")
        self.assertEqual(first["attempts"], "1")
        self.assertEqual(first["next_hop"], relay.next_hop)
        done = m.wait_event("delivered", rcpt="<x@slow.test>")
        self.assertEqual(done["attempts"], "2")
        self.assertEqual(done["next_hop"], fallback.next_hop)
        self.assertEqual(relay.names(), [])

    def test_route_transport_mx_without_resolver_is_refused_at_rcpt(self):
        """A route that says mx while no resolver is configured can never
        deliver: the client hears so at RCPT, nothing is queued."""
        relay = self.new_sink(name="relay")
        m, _ = self.relay_mxd(relay, routes=LCList([
            {"recipient_domain": "direct.test", "transport": "mx"}]))
        replies = mxtest.send_message(m.host, m.port, SENDER, ["z@direct.test"], message("mx1"))
        self.assertEqual(replies[3].code, 451)
        self.assertIn("no route to remote domains", str(replies[3]))
        self.send(m, ["y@other.test"], message("mx2"))
        relay.wait_message(has_id("mx2"))
        self.assertEqual(relay.names(), [relay.names()[0]])

    def test_bad_route_is_a_clear_config_error(self):
        cfg = self.mxd_config(None, routes=LCList([
            {"recipient_domain": "a.test", "transport": "smtps:host:25"}]))
        path = os.path.join(self.wd, "check.conf")
        with open(path, "w") as f:
            f.write(mxtest.libconfig_text(cfg))
        res = subprocess.run([mxtest.MXD_BIN, "-n", "-c", path], capture_output=True,
                             text=True, timeout=20)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("transport", res.stderr)
        self.assertIn("submission:HOST[:PORT]", res.stderr)

    # -- submission with SASL PLAIN over TLS

    def test_submission_with_sasl_plain_over_tls(self):
        srv, port, crt = self.submission()
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"submission:localhost:{port}"}]),
            submission_auth=LCList([{"server": f"localhost:{port}", "user": USER,
                                     "password_file": self.password_file()}]),
            delivery={"ca_file": crt[0]})
        self.send(m, ["out@provider-dest.test"], message("s1"))
        wait_for(lambda: srv.received, 20, what="message at the submission server")
        mail_from, rcpts, content, login, tls = srv.received[0]
        self.assertEqual((mail_from, rcpts, login, tls),
                         (SENDER, ["out@provider-dest.test"], USER, True))
        self.assertIn(b"X-Test-Id: s1", content)
        self.assertEqual(srv.logins, [("PLAIN", USER, True)])
        rec = m.wait_event("auth", user=USER)
        self.assertEqual(rec["mechanism"], "PLAIN")
        self.assertSecretNotLogged(m)

    def test_submission_wrong_password_defers_and_keeps_the_message(self):
        srv, port, crt = self.submission()
        m, local = self.relay_mxd(None, routes=LCList([
            {"transport": f"submission:localhost:{port}"}]),
            submission_auth=LCList([{"server": f"localhost:{port}", "user": USER,
                                     "password_file": self.password_file("wrong")}]),
            delivery={"ca_file": crt[0]})
        self.send(m, ["out@provider-dest.test"], message("s2"))
        rec = m.wait_event("deferred", rcpt="<out@provider-dest.test>", timeout=20)
        self.assertIn("4.7.8", rec["reply"])
        self.assertIn("535", rec["reply"])
        self.assertEqual(srv.received, [])
        self.assertEqual(local.names(), [], "an authentication failure is not the sender's: no DSN")
        self.assertTrue(os.listdir(os.path.join(self.wd, "spool", "queue")))
        self.assertNotIn("wrong", m.events("auth_failed")[0].get("reply", ""))

    def test_submission_never_sends_the_password_in_plaintext(self):
        srv, port, _ = self.submission(cert=False)      # AUTH PLAIN offered, no STARTTLS
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"submission:localhost:{port}"}]),
            submission_auth=LCList([{"server": f"localhost:{port}", "user": USER,
                                     "password_file": self.password_file()}]))
        self.send(m, ["out@provider-dest.test"], message("s3"))
        rec = m.wait_event("deferred", rcpt="<out@provider-dest.test>", timeout=20)
        self.assertIn("4.7.4", rec["reply"])
        self.assertIn("starttls-not-supported", rec["reply"])
        self.assertEqual(srv.logins, [])
        self.assertEqual(srv.received, [])
        rec = m.wait_event("outbound_session", result="starttls-not-supported")
        self.assertEqual(rec["policy"], "no-policy-found")

    def test_submission_without_credentials_defers_with_reason(self):
        srv, port, crt = self.submission()
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"submission:localhost:{port}"}]), delivery={"ca_file": crt[0]})
        self.send(m, ["out@provider-dest.test"], message("s4"))
        rec = m.wait_event("deferred", rcpt="<out@provider-dest.test>", timeout=20)
        self.assertIn("no submission_auth entry", rec["reply"])
        self.assertEqual(srv.logins, [])

    def test_submission_certificate_must_name_the_host(self):
        port = free_port("127.0.0.1")
        crt = self.cert("other", cn="not-localhost.test")
        srv = SubmissionServer("127.0.0.1", port, crt)
        self.addCleanup(srv.stop)
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"submission:localhost:{port}"}]),
            submission_auth=LCList([{"server": f"localhost:{port}", "user": USER,
                                     "password_file": self.password_file()}]),
            delivery={"ca_file": crt[0]})
        self.send(m, ["out@provider-dest.test"], message("s5"))
        rec = m.wait_event("deferred", rcpt="<out@provider-dest.test>", timeout=20)
        self.assertIn("4.7.5", rec["reply"])
        self.assertIn("certificate-host-mismatch", rec["reply"])
        self.assertEqual(srv.logins, [], "credentials went to an unverified server")

    # -- the operator's TLS policies for next hops

    def test_policy_encrypt_refuses_plaintext_next_hop(self):
        relay = self.new_sink(name="relay", host="127.0.0.1")
        m, _ = self.relay_mxd(relay, tls_policies=LCList([
            {"domain": "127.0.0.1", "mode": "encrypt"}]))
        self.send(m, ["p@plain.test"], message("e1"))
        rec = m.wait_event("deferred", rcpt="<p@plain.test>", timeout=20)
        self.assertIn("4.7.4", rec["reply"])
        self.assertIn("TLS policy encrypt for 127.0.0.1", rec["reply"])
        self.assertEqual(relay.names(), [])
        rec = m.wait_event("outbound_session", result="starttls-not-supported")
        self.assertIn("error", rec)

    def test_policy_verify_and_none_for_next_hops(self):
        good = self.cert("good", cn="localhost")
        relay = self.new_sink(name="relay", host="127.0.0.1", tls=good)
        m, _ = self.relay_mxd(None, routes=LCList([
            {"recipient_domain": "v.test", "transport": f"smtp:localhost:{relay.port}"},
            {"recipient_domain": "n.test", "transport": f"smtp:127.0.0.1:{relay.port}"}]),
            tls_policies=LCList([{"domain": "localhost", "mode": "verify"},
                                 {"domain": "127.0.0.1", "mode": "none"}]),
            delivery={"ca_file": good[0]})
        self.send(m, ["a@v.test"], message("v1"))
        self.send(m, ["b@n.test"], message("n1"))
        self.assertTrue(relay.wait_message(has_id("v1")).env["tls"],
                        "verify: the message went over TLS")
        self.assertEqual(relay.wait_message(has_id("n1")).env["tls"], {},
                         "none: plaintext although STARTTLS was offered")

    def test_policy_verify_refuses_a_certificate_for_another_name(self):
        bad = self.cert("bad", cn="someone-else.test")
        relay = self.new_sink(name="relay", host="127.0.0.1", tls=bad)
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"smtp:localhost:{relay.port}"}]),
            tls_policies=LCList([{"domain": "localhost", "mode": "verify"}]),
            delivery={"ca_file": bad[0]})
        self.send(m, ["a@v.test"], message("v2"))
        rec = m.wait_event("deferred", rcpt="<a@v.test>", timeout=20)
        self.assertIn("4.7.5", rec["reply"])
        self.assertIn("certificate-host-mismatch", rec["reply"])
        self.assertEqual(relay.names(), [])
        rec = m.wait_event("outbound_session", result="certificate-host-mismatch")
        self.assertEqual(rec["starttls"], "established")

    def test_policy_verify_next_hop_by_address_checks_its_ip_name(self):
        # A next hop given as an address: no SNI (RFC 6066), and verify
        # wants a certificate for that address, not a host name.
        ip = mxtest.pick_host()
        good = self.cert("ipgood", cn=ip)   # its only name: IP:<ip>
        relay = self.new_sink(name="relay", host=ip, tls=good)
        m, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"smtp:{ip}:{relay.port}"}]),
            tls_policies=LCList([{"domain": ip, "mode": "verify"}]),
            delivery={"ca_file": good[0]})
        self.send(m, ["a@v.test"], message("ip1"))
        got = relay.wait_message(has_id("ip1"))
        self.assertTrue(got.env["tls"], "verify: the message went over TLS")
        self.assertIsNone(got.env["tls"].get("sni"), got.env["tls"])

        # The same address with a certificate for a host name: refused.
        bad = self.cert("ipbad", cn="someone-else.test")
        other = mxtest.pick_host()
        relay2 = self.new_sink(name="relay2", host=other, tls=bad)
        m2, _ = self.relay_mxd(None, routes=LCList([
            {"transport": f"smtp:{other}:{relay2.port}"}]),
            tls_policies=LCList([{"domain": other, "mode": "verify"}]),
            delivery={"ca_file": bad[0]})
        self.send(m2, ["b@v.test"], message("ip2"))
        rec = m2.wait_event("deferred", rcpt="<b@v.test>", timeout=20)
        self.assertIn("certificate-host-mismatch", rec["reply"])
        self.assertEqual(relay2.names(), [])


if __name__ == "__main__":
    mxtest.main()
