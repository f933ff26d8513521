#!/usr/bin/python3
"""DANE (RFC 7672) applied to direct MX delivery, as an operator sees it.

The recipient domains and their MX hosts are in the DNSSEC-signed test zone
example.test. (so the MX RRset is secure); TLSA records are published at
`_25._tcp.<mx host>` -- port 25 in the name although mxd is told to reach
the MX hosts on another port (`delivery.remote_port`), as RFC 7672 says.
The MX hosts are outtest.FakeMx servers with certificates made here by
openssl: self-signed ones (DANE-EE needs no CA), ones from the test CA of
test_mta_sts.Pki (DANE-TA 2 0 1 names that CA's certificate, which the MX
sends in its chain), and ones whose key no TLSA record names.

A bogus TLSA answer is made with a CNAME from the secure
`_25._tcp.<mx>.<dom>.example.test.` to a TLSA record in bogus.test. (whose
signatures expired): the MX's own name and address stay secure, only the
TLSA answer fails validation. An MX named in bogus.test. itself would have
no usable address at all, which tests nothing about DANE.

What is checked is what an operator observes: where the mail went and over
what, the `event=outbound_session` record (policy=tlsa, result=), the
`event=dane` record, and deferral (451 4.7.5, never a bounce, never
plaintext) when DANE leaves no usable MX.

TLSA data: 3 1 1 is the SHA-256 of the certificate's SubjectPublicKeyInfo
(`openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER |
sha256sum`); 2 0 1 the SHA-256 of the whole CA certificate (DER).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import SENDER, message, pick_hosts, remote_port, unique_domain  # noqa: E402
from test_mta_sts import Pki, StsServer, policy_text  # noqa: E402  (not the test class)

import mxtest  # noqa: E402

TLSA_TYPE = 52
CNAME_TYPE = 5
MX_TYPE = 15
SERVFAIL = 2


# ---------------------------------------------------------------- TLSA data

def _run(cmd, data=None):
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def spki_sha256(cert):
    """TLSA 3 1 1 / 2 1 1 data: SHA-256 of the SubjectPublicKeyInfo (DER)."""
    pub = _run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"])
    der = _run(["openssl", "pkey", "-pubin", "-outform", "DER"], pub)
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert):
    """TLSA x 0 1 data: SHA-256 of the whole certificate (DER)."""
    der = _run(["openssl", "x509", "-in", cert, "-outform", "DER"])
    return hashlib.sha256(der).hexdigest()


def random_hash():
    """32 bytes no certificate of ours hashes to."""
    return os.urandom(32).hex()


def tlsa(name, usage, selector, mtype, data):
    return f"_25._tcp.{name}. TLSA {usage} {selector} {mtype} {data}"


# ---------------------------------------------------------------- tests

class DaneTest(outtest.OutboundTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = tempfile.mkdtemp(prefix="dane-pki-")
        os.chmod(d, 0o755)   # mxd's unprivileged user reads the CA file
        outtest.watch_dir(d)
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.pki = Pki(d)
        cls.sts_port = remote_port()

    # -- setup helpers

    def mx_hosts(self, dom, names, extra=()):
        """MX records (preference 10, 20, ...) for the full host names
        `names`, A records for them, and `extra` records, in one change;
        returns the addresses, in that order."""
        hosts = pick_hosts(len(names), self.port)
        recs = []
        for i, (n, h) in enumerate(zip(names, hosts)):
            recs += [f"{dom}. MX {10 * (i + 1)} {n}.", f"{n}. A {h}"]
        self.dns.add(recs + list(extra))
        return hosts

    def self_signed(self, name, cn=None):
        """A self-signed certificate (ECDSA) for cn (default: name)."""
        return self.cert(f"ss-{uuid.uuid4().hex[:8]}", cn=cn or name, kind="ecdsa")

    def chain_of(self, leaf, ca="ca"):
        """(cert file with leaf + CA certificate, key): what an MX sends for
        DANE-TA, where the trust anchor must be in the presented chain."""
        cert, key = leaf
        out = cert[:-len(".pem")] + "-chain.pem"
        with open(out, "w") as f, open(cert) as c, open(os.path.join(self.pki.dir, f"{ca}.pem")) as a:
            f.write(c.read() + a.read())
        os.chmod(out, 0o644)
        return out, key

    def dane_mxd(self, sts=False):
        if sts:
            m, _ = self.outbound_mxd(delivery={"sts_port": self.sts_port,
                                               "ca_file": self.pki.ca})
        else:
            m, _ = self.outbound_mxd()
        return m

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
                      f"{fake.name} got the message without TLS under DANE")

    def dane_session(self, m, host, result, timeout=20):
        """The outbound_session record for host with policy=tlsa and result.
        On a timeout, says what mxd recorded for that host instead."""
        try:
            return self.wait_session(m, timeout=timeout, ip=host, policy="tlsa", result=result)
        except TimeoutError:
            seen = [(r.get("policy"), r.get("result"), r.get("starttls"), r.get("error"))
                    for r in self.sessions(m, ip=host)]
            self.fail(f"no outbound_session ip={host} policy=tlsa result={result}; "
                      f"mxd recorded (policy, result, starttls, error) {seen}")

    def assertDaneEvent(self, m, dom, mx, tlsa_n, usable):
        rec = m.wait_event("dane", domain=dom, mx=mx, timeout=10)
        self.assertEqual((rec.get("tlsa"), rec.get("usable")), (str(tlsa_n), str(usable)), rec)
        return rec

    def assertHop(self, rec, hop):
        self.assertEqual(rec.get("next_hop", "").split("+")[-1], hop, rec)

    def assertDeferredNotBounced(self, m, rcpt, timeout=20):
        """Deferred, and again on the retry; never bounced or delivered; the
        reply kept is the contract's 451 4.7.5."""
        rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=timeout)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", attempts="2", timeout=timeout)
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [], "a message bounced for DANE")
        self.assertEqual(m.events("delivered", rcpt=f"<{rcpt}>"), [])
        reply = rec.get("reply", "")
        self.assertTrue(reply.startswith("451") and "4.7.5" in reply,
                        f"deferred without 451 4.7.5: reply=\"{reply}\" in {rec}")
        return rec

    def assertNoPlaintext(self, m, fake):
        self.assertEqual(fake.messages, [], f"{fake.name} got the message")
        plain = [s for s in fake.sessions if not s["starttls"]]
        # A session without STARTTLS at an MX that offers it is a plaintext
        # retry (or a plaintext delivery attempt): never under DANE.
        if fake.tls is not None:
            self.assertEqual(plain, [], f"plaintext session at {fake.name} under DANE: "
                                        f"{fake.sessions}")
        self.assertEqual(m.events("tls_fallback"), [], "plaintext fallback under DANE")

    # -- DANE-EE 3 1 1

    def test_dane_ee_matching_self_signed_delivered_over_tls(self):
        dom = unique_domain("daneok")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertHop(rec, f"mx:{mx}[{host}]:{self.port}")
        sess = self.dane_session(m, host, "success")
        self.assertEqual(sess.get("starttls"), "established", sess)
        self.assertEqual((sess.get("mx"), sess.get("domain")), (mx, dom), sess)
        self.assertDaneEvent(m, dom, mx, 1, 1)
        self.assertEqual(m.events("tls_fallback"), [])

    def test_dane_ee_ignores_name_issuer_and_expiry(self):
        # RFC 7672 3.1.1: with DANE-EE only the key matters. This
        # certificate names another host, comes from a CA mxd does not
        # trust, and expired yesterday.
        dom = unique_domain("daneeeonly")
        mx = f"mx.{dom}"
        cert = self.pki.leaf([f"someone-else.{dom}"], ca="otherca", days=-1)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        self.dane_session(m, host, "success")

    def test_dane_ee_mismatch_skips_to_next_mx(self):
        dom = unique_domain("danebad")
        mx1, mx2 = f"mx1.{dom}", f"mx2.{dom}"
        c1, c2 = self.self_signed(mx1), self.self_signed(mx2)
        h1, h2 = self.mx_hosts(dom, [mx1, mx2], [tlsa(mx1, 3, 1, 1, random_hash()),
                                                  tlsa(mx2, 3, 1, 1, spki_sha256(c2[0]))])
        bad = self.fake_mx(h1, mx1, tls=c1)
        good = self.fake_mx(h2, mx2, tls=c2)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(good, rcpt, data)
        rec = m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.assertHop(rec, f"mx:{mx2}[{h2}]:{self.port}")
        sess = self.dane_session(m, h1, "tlsa-invalid")
        self.assertEqual(sess.get("mx"), mx1, sess)
        self.dane_session(m, h2, "success")
        self.assertNoPlaintext(m, bad)

    def test_dane_ee_mismatch_only_mx_deferred(self):
        dom = unique_domain("danebadonly")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash())])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.dane_session(m, host, "tlsa-invalid")
        self.assertDeferredNotBounced(m, rcpt)
        self.assertNoPlaintext(m, fake)

    def test_one_matching_record_of_several_is_enough(self):
        # A TLSA RRset during a key rollover: the old key's hash and the new
        # one's. The certificate matches the second record.
        dom = unique_domain("danerollover")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash()),
                                            tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        self.dane_session(m, host, "success")
        self.assertDaneEvent(m, dom, mx, 2, 2)

    # -- no STARTTLS, broken STARTTLS

    def test_mx_without_starttls_not_used_in_plaintext(self):
        dom = unique_domain("danenotls")
        mx = f"mx.{dom}"
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash())])
        fake = self.fake_mx(host, mx, tls=None)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        sess = self.dane_session(m, host, "dane-required")
        self.assertEqual(sess.get("messages"), "0", sess)
        self.assertDeferredNotBounced(m, rcpt)
        self.assertEqual(fake.messages, [], "delivered in plaintext under DANE")

    def test_refused_starttls_no_plaintext_fallback(self):
        # The MX offers STARTTLS but answers it with 454: without a policy
        # mxd would go on in plaintext; under DANE it must not.
        dom = unique_domain("danerefuse")
        mx = f"mx.{dom}"
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash())])
        fake = self.fake_mx(host, mx, tls="refuse")
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.assertDeferredNotBounced(m, rcpt)
        self.assertEqual(fake.messages, [], "delivered in plaintext under DANE")
        self.assertEqual(m.events("tls_fallback"), [], "plaintext fallback under DANE")
        recs = self.sessions(m, ip=host)
        self.assertTrue(recs, "no outbound_session for the MX")
        self.assertTrue(all(r.get("policy") == "tlsa" and r.get("result") != "success"
                            for r in recs), recs)

    # -- DNSSEC status of the TLSA answer

    def test_bogus_tlsa_answer_is_dnssec_invalid_and_mx_not_used(self):
        dom = unique_domain("danebogus")
        mx1, mx2 = f"mx1.{dom}", f"mx2.{dom}"
        c1, c2 = self.self_signed(mx1), self.self_signed(mx2)
        target = f"_25._tcp.{uuid.uuid4().hex[:8]}.bogus.test."
        h1, h2 = self.mx_hosts(dom, [mx1, mx2], [
            # mx1's TLSA lives in the zone whose signatures expired; the
            # certificate even matches it: a bogus answer is never used.
            f"_25._tcp.{mx1}. CNAME {target}",
            f"{target} TLSA 3 1 1 {spki_sha256(c1[0])}",
            tlsa(mx2, 3, 1, 1, spki_sha256(c2[0]))])
        # Precondition: the resolver fails that TLSA lookup, mx1's address is fine.
        rcode, _ = self.dns.query(f"_25._tcp.{mx1}", TLSA_TYPE)
        self.assertEqual(rcode, SERVFAIL, "the TLSA answer for mx1 is not bogus")
        self.assertEqual(outtest.ipv4_rdata(self.dns.query(mx1, 1)[1]), [h1])
        bad = self.fake_mx(h1, mx1, tls=c1)
        good = self.fake_mx(h2, mx2, tls=c2)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(good, rcpt, data)
        self.dane_session(m, h2, "success")
        self.assertEqual(bad.messages, [], "mail went to an MX whose TLSA answer is bogus")
        # The failure is recorded for mx1 (mxd need not connect to it).
        rec = m.wait_event("outbound_session", mx=mx1, result="dnssec-invalid", timeout=10)
        self.assertIn(rec.get("policy"), ("tlsa",), rec)

    def test_bogus_tlsa_answer_only_mx_deferred(self):
        dom = unique_domain("danebogusonly")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        target = f"_25._tcp.{uuid.uuid4().hex[:8]}.bogus.test."
        (host,) = self.mx_hosts(dom, [mx], [f"_25._tcp.{mx}. CNAME {target}",
                                            f"{target} TLSA 3 1 1 {spki_sha256(cert[0])}"])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        m.wait_event("outbound_session", mx=mx, result="dnssec-invalid", timeout=20)
        self.assertEqual(fake.messages, [], "mail went to an MX whose TLSA answer is bogus")
        # No MX left after a DANE (DNSSEC) failure: 451 4.7.5, like every
        # other DANE failure -- not "could not be reached" (4.4.1): mxd
        # never tried to reach it, and the operator must see why.
        self.assertDeferredNotBounced(m, rcpt)
        self.assertEqual(fake.sessions, [], "mxd connected to an MX whose TLSA answer is bogus")

    def test_tlsa_lookup_failure_mx_not_used(self):
        # RFC 7672 2.2: a TLSA lookup that fails (here SERVFAIL from a lame
        # delegation, not a validation failure) for a secure MX host makes
        # that host unusable: no delivery without authentication, no
        # plaintext. The CNAME keeps the MX's own name and address secure.
        dom = unique_domain("danelame")
        mx1, mx2 = f"mx1.{dom}", f"mx2.{dom}"
        c2 = self.self_signed(mx2)
        target = f"_25._tcp.{uuid.uuid4().hex[:8]}.lame.test."
        h1, h2 = self.mx_hosts(dom, [mx1, mx2], [f"_25._tcp.{mx1}. CNAME {target}",
                                                  tlsa(mx2, 3, 1, 1, spki_sha256(c2[0]))])
        rcode, _ = self.dns.query(f"_25._tcp.{mx1}", TLSA_TYPE)
        self.assertEqual(rcode, SERVFAIL, "the TLSA lookup for mx1 does not fail")
        bad = self.fake_mx(h1, mx1, tls=None)
        good = self.fake_mx(h2, mx2, tls=c2)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        mxtest.wait_for(lambda: good.messages or bad.messages, 20, what="the message at an MX")
        self.assertEqual(bad.messages, [], "mail went in plaintext to an MX whose TLSA "
                                           "lookup failed (SERVFAIL treated as no TLSA)")
        self.got_over_tls(good, rcpt, data)

    def test_insecure_zone_tlsa_not_applied(self):
        # Domain, MX and TLSA all in the unsigned zone: the TLSA record
        # (which matches nothing) is not DNSSEC-authentic, so no DANE:
        # opportunistic TLS as without any policy.
        dom = f"danein-{uuid.uuid4().hex[:8]}.insecure.test"
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash())])
        self.assertEqual(len(self.dns.query(dom, MX_TYPE)[1]), 1, "MX not published")
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at {mx}")
        self.assertEqual(mxtest.split_received(fake.messages[0][2])[1], data)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        sess = self.wait_session(m, ip=host, messages="1", timeout=15)
        self.assertEqual(sess.get("policy"), "no-policy-found", sess)
        self.assertEqual(m.events("dane"), [], "DANE applied from an insecure zone")

    def test_secure_mx_with_host_in_insecure_zone_no_dane(self):
        # RFC 7672 2.2.2: the MX RRset is secure, but the host (and its
        # TLSA) are in an unsigned zone: DANE does not apply. The MX offers
        # no STARTTLS, so DANE applied by mistake would keep the mail back.
        dom = unique_domain("danehostin")
        mx = f"mx-{uuid.uuid4().hex[:8]}.insecure.test"
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, random_hash())])
        fake = self.fake_mx(host, mx, tls=None)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at {mx}")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        sess = self.wait_session(m, ip=host, messages="1", timeout=15)
        self.assertEqual(sess.get("policy"), "no-policy-found", sess)
        self.assertEqual(m.events("dane"), [])

    def test_pkix_usages_only_do_not_make_dane_apply(self):
        # Secure TLSA records with usages 0 and 1 only: ignored for SMTP
        # (RFC 7672 3.1.3), so no DANE, and a plaintext-only MX gets the mail.
        dom = unique_domain("danepkix")
        mx = f"mx.{dom}"
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 1, 1, 1, random_hash()),
                                            tlsa(mx, 0, 0, 1, random_hash())])
        fake = self.fake_mx(host, mx, tls=None)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        mxtest.wait_for(lambda: fake.messages, 20, what=f"the message at {mx}")
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        sess = self.wait_session(m, ip=host, messages="1", timeout=15)
        self.assertEqual(sess.get("policy"), "no-policy-found", sess)

    # -- DANE-TA

    def test_dane_ta_2_0_1_leaf_signed_by_test_ca(self):
        dom = unique_domain("daneta")
        mx = f"mx.{dom}"
        chain = self.chain_of(self.pki.leaf([mx]))
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 2, 0, 1, cert_sha256(self.pki.ca))])
        fake = self.fake_mx(host, mx, tls=chain)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        sess = self.dane_session(m, host, "success")
        self.assertEqual(sess.get("starttls"), "established", sess)
        self.assertDaneEvent(m, dom, mx, 1, 1)

    def test_dane_ta_leaf_from_another_ca_not_used(self):
        dom = unique_domain("danetaother")
        mx = f"mx.{dom}"
        chain = self.chain_of(self.pki.leaf([mx], ca="otherca"), ca="otherca")
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 2, 0, 1, cert_sha256(self.pki.ca))])
        fake = self.fake_mx(host, mx, tls=chain)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.dane_session(m, host, "tlsa-invalid")
        self.assertDeferredNotBounced(m, rcpt)
        self.assertNoPlaintext(m, fake)

    def test_dane_ta_checks_the_mx_name(self):
        # RFC 7672 3.2.3: under DANE-TA the leaf must name the MX host (or
        # the TLSA base domain). Signed by the right CA, but for another name.
        dom = unique_domain("danetaname")
        mx = f"mx.{dom}"
        chain = self.chain_of(self.pki.leaf([f"other.{dom}"]))
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 2, 0, 1, cert_sha256(self.pki.ca))])
        fake = self.fake_mx(host, mx, tls=chain)
        m = self.dane_mxd()
        rcpt, _ = self.send_one(m, dom)
        self.assertDeferredNotBounced(m, rcpt)
        self.assertNoPlaintext(m, fake)
        recs = self.sessions(m, ip=host)
        self.assertTrue(recs and all(r.get("policy") == "tlsa" and r.get("result") != "success"
                                     for r in recs), recs)

    # -- mixed records, CNAME

    def test_pkix_records_beside_dane_ee_are_not_counted_usable(self):
        dom = unique_domain("danemixed")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 1, 1, 1, spki_sha256(cert[0])),
                                            tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        self.dane_session(m, host, "success")
        self.assertDaneEvent(m, dom, mx, 2, 1)

    def test_mx_name_is_a_cname_tlsa_at_the_mx_name(self):
        # The MX name is a (secure) CNAME to a host of a provider; the TLSA
        # record is published at the MX name (RFC 7672 2.2.2 falls back to
        # it when the target has none). DANE applies; the record names the MX.
        prov = unique_domain("daneprov")
        dom = unique_domain("danecname")
        mx = f"mx.{dom}"
        cert = self.self_signed(f"host.{prov}")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 {mx}.", f"{mx}. CNAME host.{prov}.",
                      f"host.{prov}. A {host}", tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, f"host.{prov}", tls=cert)
        m = self.dane_mxd()
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        sess = self.dane_session(m, host, "success")
        self.assertEqual(sess.get("mx"), mx, sess)

    # -- REQUIRETLS (RFC 8689) under DANE

    def test_requiretls_delivered_to_a_dane_verified_mx(self):
        # Issue 4: a REQUIRETLS message goes to an MX that DANE verified and
        # that offers REQUIRETLS.
        dom = unique_domain("danereqtls")
        mx = f"mx.{dom}"
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert, requiretls=True)
        m, _ = self.outbound_mxd(certs=[self.cert()])
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
        try:
            self.got_over_tls(fake, rcpt, data)
        except TimeoutError:
            self.fail("REQUIRETLS message not delivered to a DANE-verified MX: "
                      f"{m.events('bounced', rcpt=f'<{rcpt}>')}")
        self.assertEqual(m.events("bounced", rcpt=f"<{rcpt}>"), [])
        self.assertTrue(fake.messages[0][4].upper().find("REQUIRETLS") >= 0,
                        f"MAIL FROM without REQUIRETLS: {fake.messages[0][4]}")

    # -- DANE and MTA-STS

    def test_dane_wins_over_mta_sts(self):
        # An enforced MTA-STS policy whose only mx: pattern names another
        # host (and a self-signed certificate no CA vouches for): under
        # MTA-STS this MX would never be contacted. DANE applies instead
        # (RFC 8461 2) and the mail goes there.
        dom = unique_domain("danests")
        mx = f"mx.{dom}"
        (sts_host,) = pick_hosts(1, self.sts_port)
        scert, skey = self.pki.leaf([f"mta-sts.{dom}"])
        srv = StsServer(sts_host, self.sts_port, scert, skey,
                        {dom: (200, "text/plain", policy_text("enforce", [f"nomatch.{dom}"]))})
        self.addCleanup(srv.stop)
        cert = self.self_signed(mx)
        (host,) = self.mx_hosts(dom, [mx], [
            f'_mta-sts.{dom}. TXT "v=STSv1; id=20240501T120000;"',
            f"mta-sts.{dom}. A {sts_host}",
            tlsa(mx, 3, 1, 1, spki_sha256(cert[0]))])
        fake = self.fake_mx(host, mx, tls=cert)
        m = self.dane_mxd(sts=True)
        rcpt, data = self.send_one(m, dom)
        self.got_over_tls(fake, rcpt, data)
        m.wait_event("delivered", rcpt=f"<{rcpt}>", timeout=10)
        self.dane_session(m, host, "success")
        self.assertEqual(self.sessions(m, ip=host, policy="sts"), [],
                         "the session was recorded under MTA-STS, not DANE")
        self.assertEqual(m.events("sts_mx_refused", mx=mx), [],
                         "MTA-STS refused an MX that DANE verified")


if __name__ == "__main__":
    outtest.main()
