#!/usr/bin/python3
"""MTA-STS (RFC 8461) applied to direct MX delivery, as an operator sees it.

Each test publishes `_mta-sts.<domain>` TXT and `mta-sts.<domain>` A in the
test DNS, serves the policy over HTTPS (Python's http.server + ssl, in this
process, on its own 127.0.x.y at the port mxd is told to use,
`delivery.sts_port`) with a certificate from a test CA made here by openssl,
and runs fake MX hosts (outtest.FakeMx) whose certificates that CA signed
for the right name, for another name, already expired, or that no trusted CA
signed. mxd trusts only that CA (`delivery.ca_file`).

What is checked is what an operator observes: where the mail went and over
what, the `event=outbound_session` record (policy=, result=), the
`event=sts_policy` record of the policy fetch, and deferral (451 4.7.5, never
a bounce) when an enforced policy leaves no usable MX.

Expired certificate: `openssl x509 -req -days -1` gives notAfter a day
before notBefore (= now), so the certificate is expired, not "not yet valid".
"""

import fcntl
import http.server
import os
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, message, pick_hosts, remote_port, unique_domain  # noqa: E402

import mxtest  # noqa: E402

STS_ID = "20240501T120000"


# ---------------------------------------------------------------- test PKI

def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


class Pki:
    """A test CA (trusted by mxd) and another CA (not trusted), in dir.
    leaf() makes certificates they sign, with exactly the given DNS names."""

    def __init__(self, d):
        self.dir = d
        for ca in ("ca", "otherca"):
            openssl("req", "-x509", *EC, "-nodes", "-days", "3",
                    "-subj", f"/CN=mxfleet mta-sts test {ca}", "-keyout", f"{ca}.key",
                    "-out", f"{ca}.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        self.ca = os.path.join(d, "ca.pem")
        self.n = 0
        self.lock = threading.Lock()

    def leaf(self, names, ca="ca", days=2):
        """(cert, key) for DNS names (first one as CN too), signed by ca;
        days=-1 gives an expired certificate."""
        with self.lock:
            self.n += 1
            base = f"leaf{self.n}"
        ext = os.path.join(self.dir, base + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n"
                    "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        openssl("req", *EC, "-nodes", "-subj", f"/CN={names[0]}",
                "-keyout", base + ".key", "-out", base + ".csr", cwd=self.dir)
        openssl("x509", "-req", "-in", base + ".csr", "-CA", f"{ca}.pem",
                "-CAkey", f"{ca}.key", "-set_serial", str(1000 + self.n),
                "-days", str(days), "-extfile", ext, "-out", base + ".pem", cwd=self.dir)
        cert, key = os.path.join(self.dir, base + ".pem"), os.path.join(self.dir, base + ".key")
        for p in (cert, key):
            os.chmod(p, 0o644)
        return cert, key


# ---------------------------------------------------------------- the policy server

def policy_text(mode, mx, max_age=86400):
    lines = ["version: STSv1", f"mode: {mode}", *[f"mx: {p}" for p in mx],
             f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


class StsServer:
    """HTTPS on (host, port) serving /.well-known/mta-sts.txt by Host header:
    policies[domain] = (status, content type, body). requests: the Host
    headers asked for, in order."""

    def __init__(self, host, port, cert, key, policies):
        self.policies = policies
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                h = (self.headers.get("Host") or "").split(":")[0].lower().rstrip(".")
                outer.requests.append((h, self.path))
                dom = h[len("mta-sts."):] if h.startswith("mta-sts.") else ""
                if self.path != "/.well-known/mta-sts.txt" or dom not in outer.policies:
                    status, ctype, body = 404, "text/plain", b"not here\n"
                else:
                    status, ctype, body = outer.policies[dom]
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (OSError, ssl.SSLError):
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass   # a client that rejects our certificate is expected

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv = Server((host, port), Handler)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------- tests

class MtaStsTest(outtest.OutboundTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = tempfile.mkdtemp(prefix="mtasts-pki-")
        os.chmod(d, 0o755)   # mxd's unprivileged user reads the CA file
        outtest.watch_dir(d)
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.pki = Pki(d)
        cls.sts_port = remote_port()

    # -- setup helpers

    def sts_domain(self, tag, mode="enforce", mx=None, body=None, status=200,
                   ctype="text/plain", https="good"):
        """A recipient domain with an MTA-STS TXT record and a policy served
        over HTTPS. mx: the policy's mx: patterns, "{dom}" standing for the
        domain (default "*.{dom}"). https: "good" (certificate from the
        trusted CA for mta-sts.<dom>), "untrusted" (from the other CA), or
        "down" (nothing listens). Returns (dom, server or None)."""
        dom = unique_domain(tag)
        (sts_host,) = pick_hosts(1, self.sts_port)
        srv = None
        if https != "down":
            cert, key = self.pki.leaf([f"mta-sts.{dom}"],
                                      ca="ca" if https == "good" else "otherca")
            if body is None:
                body = policy_text(mode, [p.format(dom=dom) for p in (mx or ["*.{dom}"])])
            srv = StsServer(sts_host, self.sts_port, cert, key,
                            {dom: (status, ctype, body)})
            self.addCleanup(srv.stop)
        self.dns.add([f'_mta-sts.{dom}. TXT "v=STSv1; id={STS_ID};"',
                      f"mta-sts.{dom}. A {sts_host}"])
        return dom, srv

    def mx_hosts(self, dom, names):
        """MX records (preference 10, 20, ...) and A records for names
        (relative to dom); returns their addresses, in that order."""
        hosts = pick_hosts(len(names), self.port)
        recs = []
        for i, (n, h) in enumerate(zip(names, hosts)):
            recs += [f"{dom}. MX {10 * (i + 1)} {n}.{dom}.", f"{n}.{dom}. A {h}"]
        self.dns.add(recs)
        return hosts

    def good_mx(self, host, name):
        return self.fake_mx(host, name, tls=self.pki.leaf([name]))

    def sts_mxd(self):
        m, local = self.outbound_mxd(delivery={"sts_port": self.sts_port,
                                               "ca_file": self.pki.ca})
        return m, local

    def send_one(self, m, dom):
        msg_id = uuid.uuid4().hex[:12]
        rcpt = f"user@{dom}"
        data = message(msg_id)
        self.send(m, [rcpt], data)
        return rcpt, data

    def got_over_tls(self, fake, rcpt, data, timeout=20):
        mxtest.wait_for(lambda: fake.messages, timeout, what=f"the message at {fake.name}")
        mail_from, rcpts, got, tls, _ = fake.messages[0]
        self.assertEqual((mail_from, rcpts), (SENDER, [rcpt]))
        self.assertEqual(mxtest.split_received(got)[1], data)
        self.assertIn(tls, ("TLSv1.2", "TLSv1.3"),
                      f"{fake.name} got the message without TLS under an enforced policy")

    def sts_session(self, m, host, result, timeout=20):
        """The outbound_session record for host with policy=sts."""
        rec = self.wait_session(m, timeout=timeout, ip=host, policy="sts", result=result)
        return rec

    def assertHop(self, rec, hop):
        """next_hop names this MX and address (mxd prefixes hops under a
        policy with "sts+")."""
        self.assertIn(rec.get("next_hop", "").split("+")[-1], (hop,), rec)

    def assertDeferredNotBounced(self, m, rcpt, timeout=20):
        """Deferred, and deferred again on the retry (the policy applies
        from the cache then); never bounced or delivered."""
        rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=timeout)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", attempts="2", timeout=timeout)
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [],
                         "a message bounced for MTA-STS")
        self.assertEqual(m.events("delivered", rcpt=f"<{rcpt}>"), [])
        return rec

    def assertDeferReply(self, rec):
        """The reply kept for the deferred recipient (what a delay DSN and
        the final return quote) is the contract's 451 4.7.5."""
        reply = rec.get("reply", "")
        self.assertTrue(reply.startswith("451") and "4.7.5" in reply,
                        f"deferred without 451 4.7.5: reply=\"{reply}\" in {rec}")

    def assertPolicyUsed(self, m, dom, mode):
        rec = m.wait_event("sts_policy", domain=dom, timeout=10,
                           pred=lambda r: r.get("mode"))
        self.assertEqual((rec.get("id"), rec.get("mode")), (STS_ID, mode), rec)
        self.assertIn(rec.get("source"), ("fetched", "cache", "stale"), rec)
        return rec

    def assertNoDeliveryAt(self, fake):
        self.assertEqual(fake.messages, [], f"{fake.name} got the message")

    # -- enforce

    def test_enforce_valid_certificate_delivered_over_tls(self):
        dom, srv = self.sts_domain("stsok", mx=["mx.{dom}"])
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.good_mx(host, f"mx.{dom}")
        m, local = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertHop(rec, f"mx:mx.{dom}[{host}]:{self.port}")
        sess = self.sts_session(m, host, "success")
        self.assertEqual(sess.get("starttls"), "established", sess)
        self.assertEqual(sess.get("mx"), f"mx.{dom}", sess)
        self.assertEqual(sess.get("domain"), dom, sess)
        pol = self.assertPolicyUsed(m, dom, "enforce")
        self.assertEqual(pol.get("source"), "fetched", pol)
        self.assertIn((f"mta-sts.{dom}", "/.well-known/mta-sts.txt"), srv.requests)
        self.assertEqual(m.events("tls_fallback"), [])
        self.assertNoMail(local)

    def test_enforce_certificate_for_another_name_skips_to_next_mx(self):
        dom, _ = self.sts_domain("stsname")
        h1, h2 = self.mx_hosts(dom, ["mx1", "mx2"])
        bad = self.fake_mx(h1, f"mx1.{dom}", tls=self.pki.leaf([f"other.{dom}"]))
        good = self.good_mx(h2, f"mx2.{dom}")
        m, _ = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(good, rcpt, data)
        sess = self.sts_session(m, h1, "certificate-host-mismatch")
        self.assertEqual(sess.get("mx"), f"mx1.{dom}", sess)
        self.assertNoDeliveryAt(bad)
        # No plaintext retry at the MX whose certificate failed.
        self.assertFalse([s for s in bad.sessions if not s["starttls"]],
                         f"plaintext session at mx1 after a policy failure: {bad.sessions}")
        self.assertEqual(m.events("tls_fallback"), [])
        self.sts_session(m, h2, "success")
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertHop(rec, f"mx:mx2.{dom}[{h2}]:{self.port}")

    def test_enforce_self_signed_certificate_only_mx_deferred(self):
        dom, _ = self.sts_domain("stsself")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.cert("selfsigned", cn=f"mx.{dom}"))
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.sts_session(m, host, "certificate-not-trusted")
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertEqual(m.events("tls_fallback"), [])
        self.assertDeferReply(deferred)

    def test_enforce_certificate_from_untrusted_ca_deferred(self):
        dom, _ = self.sts_domain("stsotherca")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"mx.{dom}"], ca="otherca"))
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.sts_session(m, host, "certificate-not-trusted")
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertDeferReply(deferred)

    def test_enforce_expired_certificate_deferred(self):
        dom, _ = self.sts_domain("stsexpired")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"mx.{dom}"], days=-1))
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.sts_session(m, host, "certificate-expired")
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertDeferReply(deferred)

    def test_enforce_mx_without_starttls_not_used_in_plaintext(self):
        dom, _ = self.sts_domain("stsnotls")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=None)
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        sess = self.sts_session(m, host, "starttls-not-supported")
        self.assertEqual(sess.get("messages"), "0", sess)
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertDeferReply(deferred)

    def test_enforce_mx_matching_no_pattern_never_contacted(self):
        # The preferred MX is not in the policy: the mail goes to the backup,
        # and the preferred one sees no connection at all.
        dom, _ = self.sts_domain("stspattern", mx=["backup.{dom}"])
        h1, h2 = self.mx_hosts(dom, ["primary", "backup"])
        primary = self.good_mx(h1, f"primary.{dom}")
        backup = self.good_mx(h2, f"backup.{dom}")
        m, _ = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(backup, rcpt, data)
        self.sts_session(m, h2, "success")
        self.assertEqual(primary.sessions, [], "mxd connected to an MX the policy excludes")
        self.assertEqual(self.sessions(m, ip=h1), [])
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertHop(rec, f"mx:backup.{dom}[{h2}]:{self.port}")

    def test_enforce_mx_cname_certificate_names_only_the_target(self):
        # seed-002: the MX name is mx1.<dom>, a CNAME to host.<provider>;
        # the certificate names only host.<provider>. RFC 8461 4.1 checks the
        # certificate against the MX name, so this is a mismatch.
        prov = unique_domain("provider")
        dom, _ = self.sts_domain("stscname", mx=["mx1.{dom}"])
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx1.{dom}.", f"mx1.{dom}. CNAME host.{prov}.",
                      f"host.{prov}. A {host}"])
        fake = self.fake_mx(host, f"host.{prov}", tls=self.pki.leaf([f"host.{prov}"]))
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        sess = self.sts_session(m, host, "certificate-host-mismatch")
        self.assertEqual(sess.get("mx"), f"mx1.{dom}", sess)
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertDeferReply(deferred)

    # -- testing, none

    def test_testing_mode_bad_certificate_delivered_and_failure_recorded(self):
        dom, _ = self.sts_domain("ststesting", mode="testing")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"other.{dom}"]))
        m, _ = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at mx.{dom}")
        self.assertEqual(mxtest.split_received(fake.messages[0][2])[1], data)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.sts_session(m, host, "certificate-host-mismatch")
        self.assertPolicyUsed(m, dom, "testing")
        self.assertEqual(m.events("deferred", rcpt=f"<{rcpt}>"), [],
                         "testing mode deferred the message")

    def test_testing_mode_mx_without_starttls_delivered_in_plaintext(self):
        dom, _ = self.sts_domain("ststestplain", mode="testing")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=None)
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at mx.{dom}")
        self.assertIsNone(fake.messages[0][3])
        self.sts_session(m, host, "starttls-not-supported")

    def test_mode_none_is_no_policy(self):
        dom, _ = self.sts_domain("stsnone", mode="none")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=None)
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at mx.{dom}")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(m.events("deferred", rcpt=f"<{rcpt}>"), [])

    # -- fetch problems: no policy, opportunistic delivery

    def check_fetch_problem(self, tag, result, **kw):
        dom, srv = self.sts_domain(tag, **kw)
        (host,) = self.mx_hosts(dom, ["mx"])
        # A plaintext-only MX: an enforced policy would never use it.
        fake = self.fake_mx(host, f"mx.{dom}", tls=None)
        m, _ = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        ev = m.wait_event("sts_policy", domain=dom, result=result, timeout=20)
        self.assertTrue(ev.get("reason"), f"no reason in {ev}")
        mxtest.wait_for(lambda: fake.messages, 20,
                        what=f"the message at mx.{dom} (opportunistic, no usable policy)")
        self.assertEqual(mxtest.split_received(fake.messages[0][2])[1], data)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [])
        sess = self.wait_session(m, ip=host, messages="1")
        # No policy was applied; RFC 8460 may still report the failure.
        self.assertIn(sess.get("result"), (result, "starttls-not-supported"), sess)
        return sess

    def test_policy_fetch_error_server_down_delivers_opportunistically(self):
        self.check_fetch_problem("stsdown", "sts-policy-fetch-error", https="down")

    def test_policy_http_404_is_fetch_error(self):
        self.check_fetch_problem("sts404", "sts-policy-fetch-error", status=404,
                                 body=b"no policy here\n")

    def test_invalid_policy_body(self):
        self.check_fetch_problem("stsinvalid", "sts-policy-invalid",
                                 body=b"version: STSv1\r\nmode: enforce\r\n")

    def test_policy_server_certificate_not_trusted_is_webpki_invalid(self):
        self.check_fetch_problem("stswebpki", "sts-webpki-invalid", https="untrusted")

    def test_policy_fetch_failure_is_in_the_outbound_record(self):
        # Issue 4: an RFC 8460 result for every attempt, and the outcome
        # record (what controld gets) is where the report comes from: the
        # session made while the policy could not be fetched carries
        # policy=sts and the fetch failure as its result, not only the
        # sts_policy log line.
        sess = self.check_fetch_problem("stsrecord", "sts-policy-fetch-error", https="down")
        self.assertEqual((sess.get("policy"), sess.get("result")),
                         ("sts", "sts-policy-fetch-error"),
                         f"the fetch failure is missing from the outbound record: {sess}")

    # -- cache

    def test_second_message_uses_cached_policy(self):
        dom, srv = self.sts_domain("stscache")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.good_mx(host, f"mx.{dom}")
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        mxtest.wait_for(lambda: len(fake.messages) >= 1, 20, what="first message")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.send_one(m, dom)
        mxtest.wait_for(lambda: len(fake.messages) >= 2, 20, what="second message")
        self.assertTrue(all(x[3] for x in fake.messages), fake.messages)
        fetched = m.events("sts_policy", domain=dom, source="fetched")
        self.assertEqual(len(fetched), 1, f"policy fetched more than once: {fetched}")
        self.assertEqual(len(srv.requests), 1, srv.requests)


    # -- refresh and the check before a return (RFC 8461 10.2)

    def set_sts_id(self, dom, new_id):
        """Replace the domain's _mta-sts TXT record (a new policy id)."""
        with self.dns.lock, open(self.dns.t.p("lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.dns.t = outtest.dnstest.DnsTest(self.dns.dir)
            self.dns.t.delete(f"_mta-sts.{dom}.", "TXT")
            self.dns.t.add([f'_mta-sts.{dom}. TXT "v=STSv1; id={new_id};"'])

    def test_cached_policy_refreshed_before_it_expires(self):
        dom, srv = self.sts_domain("stsrefresh", body=None)
        srv.policies[dom] = (200, "text/plain", policy_text("enforce", [f"*.{dom}"], max_age=6))
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.good_mx(host, f"mx.{dom}")
        m, _ = self.outbound_mxd(delivery={"sts_port": self.sts_port, "ca_file": self.pki.ca,
                                           "sts_refresh_interval": 1})
        rcpt, _ = self.send_one(m, dom)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=20)
        self.assertEqual(len(srv.requests), 1)
        # No mail for it, yet past half its max_age the policy is fetched again.
        rec = m.wait_event("sts_refresh", domain=dom, timeout=15)
        self.assertEqual((rec["result"], rec["id"]), ("ok", STS_ID), rec)
        self.assertGreaterEqual(len(srv.requests), 2)
        self.assertEqual(len(fake.messages), 1)

    def test_return_waits_while_a_changed_policy_cannot_be_fetched(self):
        """Enforce leaves no usable MX until max_age; then the domain
        publishes a new policy id whose policy can not be fetched: the
        message is not returned under the old policy. Once the new policy
        can be fetched (and allows the MX), it is delivered."""
        dom, srv = self.sts_domain("stshold", mx=["nomatch.{dom}"])
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.good_mx(host, f"mx.{dom}")
        m, local = self.outbound_mxd(delivery={"sts_port": self.sts_port, "ca_file": self.pki.ca,
                                               "max_age": 4})
        rcpt, data = self.send_one(m, dom)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=20)
        srv.policies[dom] = (404, "text/plain", b"gone\n")
        self.set_sts_id(dom, "20990101T000000")
        rec = m.wait_event("sts_recheck", domain=dom, result="fetch_failed", timeout=20)
        self.assertEqual((rec["applied_id"], rec["dns_id"]), (STS_ID, "20990101T000000"), rec)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=10,
                     pred=lambda r: int(r["attempts"]) >= 4)
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [])
        self.assertEqual(m.events("expired", rcpt=f"<{rcpt}>"), [])
        self.assertNoMail(local)
        srv.policies[dom] = (200, "text/plain", policy_text("enforce", [f"*.{dom}"]))
        self.got_over_tls(fake, rcpt, data)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)

    def test_unchanged_policy_is_rechecked_then_the_message_returned(self):
        dom, srv = self.sts_domain("stsunchanged", mx=["nomatch.{dom}"])
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.good_mx(host, f"mx.{dom}")
        m, local = self.outbound_mxd(delivery={"sts_port": self.sts_port, "ca_file": self.pki.ca,
                                               "max_age": 3})
        rcpt, _ = self.send_one(m, dom)
        rec = m.wait_event("sts_recheck", domain=dom, timeout=20)
        self.assertEqual((rec["result"], rec["applied_id"]), ("unchanged", STS_ID), rec)
        m.wait_event("expired", rcpt=f"<{rcpt}>", timeout=10)
        _, dsn = self.wait_dsn(local)
        self.assertNoDeliveryAt(fake)

    # -- REQUIRETLS (RFC 8689) under an enforced policy

    def test_requiretls_delivered_to_a_verified_mx_under_enforce(self):
        """An enforced MTA-STS policy that verified the MX, which offers
        REQUIRETLS: the REQUIRETLS message goes there, over TLS."""
        dom, _ = self.sts_domain("reqsts", mx=["mx.{dom}"])
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"mx.{dom}"]), requiretls=True)
        m, _ = self.outbound_mxd(certs=[self.cert()],
                                 delivery={"sts_port": self.sts_port, "ca_file": self.pki.ca})
        rcpt = f"user@{dom}"
        data = message(uuid.uuid4().hex[:12])
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        c.starttls()
        c.ehlo()
        self.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}> REQUIRETLS").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<{rcpt}>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(mxtest.dot_stuff(data) + b".\r\n")
        self.assertEqual(c.read_reply().code, 250)
        c.cmd("QUIT")
        self.got_over_tls(fake, rcpt, data)
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [])


    def test_tls_required_no_makes_an_enforce_failure_non_fatal(self):
        """RFC 8689 5: a message with "TLS-Required: No" is delivered even
        when the enforced policy's checks fail; the failure is still
        recorded."""
        dom, _ = self.sts_domain("stsoptional")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.cert("selfsigned", cn=f"mx.{dom}"))
        m, _ = self.sts_mxd()
        rcpt = f"user@{dom}"
        msg_id = uuid.uuid4().hex[:12]
        data = b"TLS-Required: No\r\n" + message(msg_id)
        self.send(m, [rcpt], data)
        mxtest.wait_for(lambda: fake.messages, 20, what="the message despite the failed policy")
        self.assertEqual(mxtest.split_received(fake.messages[0][2])[1], data)
        m.wait_event("tls_required_no", timeout=5)
        self.sts_session(m, host, "certificate-not-trusted")
        self.assertEqual(m.events("deferred", rcpt=f"<{rcpt}>"), [])


    # -- a receiver that only speaks TLS 1.0 (shared/seeds/003)

    def test_tls10_only_mx_opportunistic_falls_back_to_plaintext(self):
        """No policy: mxd's TLS >= 1.2 handshake fails, the message goes in
        plaintext, and the session says so."""
        dom = unique_domain("tls10plain")
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"mx.{dom}"]), tls1_only=True)
        m, _ = self.sts_mxd()
        rcpt, data = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what="the message in plaintext")
        self.assertIsNone(fake.messages[0][3], "delivered over TLS 1.0?")
        m.wait_event("tls_fallback", timeout=10)
        rec = self.wait_session(m, timeout=20, ip=host, starttls="attempted")
        self.assertEqual(rec.get("result"), "validation-failure", rec)

    def test_tls10_only_mx_under_enforce_is_recorded_and_deferred(self):
        dom, _ = self.sts_domain("tls10sts", mx=["mx.{dom}"])
        (host,) = self.mx_hosts(dom, ["mx"])
        fake = self.fake_mx(host, f"mx.{dom}", tls=self.pki.leaf([f"mx.{dom}"]), tls1_only=True)
        m, _ = self.sts_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.sts_session(m, host, "validation-failure")
        deferred = self.assertDeferredNotBounced(m, rcpt)
        self.assertNoDeliveryAt(fake)
        self.assertDeferReply(deferred)
        self.assertEqual(m.events("tls_fallback"), [])


if __name__ == "__main__":
    outtest.main()
