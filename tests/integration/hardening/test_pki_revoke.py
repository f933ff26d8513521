#!/usr/bin/python3
"""Issue 9, item 7: certificates the fleet can take back, and roles the CA
signs rather than text anyone can write.

  * `mailctl pki revoke DIR NAME` stores the serial in PostgreSQL; the
    controld that took the call refuses the certificate at once, every other
    replica at its next reload (tls.revocation_interval, 5 s by default),
    and connections already open with it are closed: the host's outcomes
    stop being stored.
  * An expired certificate and one from another CA are refused at the
    handshake, whatever their subject says.
  * The role (host or admin) is the subjectAltName URI mxfleet:role:*
    signed by the fleet CA: OU=admin text makes nobody an admin.
  * tls.ca holding two CA certificates is refused at startup unless
    tls.allow_multiple_ca says so.

The certificates the fleet CA did not issue through mailctl (expired, no
role URI) are made here with python3-cryptography and the fleet CA's key,
as anyone holding that key could."""

import datetime
import os
import socket
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import cptest  # noqa: E402
import mxtest  # noqa: E402
from cptest import CONTROLD_NAME, MX1, MX2, setUpModule, tearDownModule  # noqa: E402,F401

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
ROLE_HOST = "mxfleet:role:host"
ROLE_ADMIN = "mxfleet:role:admin"


def make_cert(out_dir, name, ca_pair, cn, ou, uris=(), days=(-1, 30)):
    """A client certificate signed by the CA in ca_pair (cert, key files),
    subject OU=ou/CN=cn, SAN DNS:cn plus the URIs, valid from now+days[0]
    to now+days[1] days. Returns (cert path, key path)."""
    with open(ca_pair[0], "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(ca_pair[1], "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(cn)] + [x509.UniformResourceIdentifier(u) for u in uris]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mxfleet"),
                                     x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
                                     x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    crt_path, key_path = os.path.join(out_dir, name + ".pem"), os.path.join(out_dir, name + ".key")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(crt_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return crt_path, key_path


def handshake(controld, pair, ca, timeout=10):
    """'ok' when controld takes the client certificate (its HTTP/2 SETTINGS
    arrive after the handshake), else how it refused. With TLS 1.3 the
    server checks the client's certificate after its own Finished, so a
    refusal shows as an alert (or EOF) on the first read."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*pair)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(controld.addr, timeout=timeout)
    try:
        with ctx.wrap_socket(raw, server_hostname=CONTROLD_NAME) as s:
            s.sendall(H2_PREFACE)
            data = s.recv(64)
            return "ok" if data else "refused: eof"
    except ssl.SSLError as e:
        return f"refused: {e.reason or e}"
    except (ConnectionResetError, BrokenPipeError) as e:
        return f"refused: {e}"
    finally:
        raw.close()


class PkiRevokeTest(cptest.FleetTestCase):
    def ca_pair(self):
        return self.pki.ca, self.pki.path("ca.key")

    def admin_call(self, controld, pair, *args):
        """mailctl over TLS with the given client certificate."""
        return cptest.run([cptest.MAILCTL, "--server", f"{controld.host}:{controld.port}",
                           "--cert", pair[0], "--key", pair[1], "--ca", self.pki.ca,
                           "--authority", CONTROLD_NAME, *args], check=False, timeout=40)

    def test_revoked_host_refused_at_handshake_by_every_replica(self):
        c1 = self.controld()
        c2 = self.controld(name="controld2", migrate=False)
        sink = self.sink()
        m = self.mxd_with_control(c1, sink)
        cptest.quick_session(m.host, m.port, "before.test")
        before = self.wait_outcomes(1)[0]
        for c in (c1, c2):
            self.assertEqual(handshake(c, self.pki.mx1, self.pki.ca), "ok", c.name)

        p = self.mailctl(c1, "pki", "revoke", self.pki.dir, MX1)
        revoked_at = time.monotonic()
        self.assertIn("revoked", p.stdout)
        self.assertNotIn("already", p.stdout)

        # The replica that took the call refuses at once; the other within
        # its reload interval (5 s), given generous slack for a loaded machine.
        got = handshake(c1, self.pki.mx1, self.pki.ca)
        self.assertTrue(got.startswith("refused"), f"controld after revoke: {got}")
        got2 = mxtest.wait_for(
            lambda: (lambda r: r if r.startswith("refused") else None)(
                handshake(c2, self.pki.mx1, self.pki.ca)),
            20, interval=0.5, what="the other replica refusing the revoked certificate")
        took = time.monotonic() - revoked_at
        self.assertLess(took, 20, f"second replica took {took:.1f}s")
        self.assertTrue(c2.events("tls_peer_refused", reason="revoked"),
                        f"controld2 did not log the refusal ({got2})")
        # Another host of the fleet is not affected.
        for c in (c1, c2):
            self.assertEqual(handshake(c, self.pki.mx2, self.pki.ca), "ok",
                             f"{c.name} refuses mx2 too")

        # mxd's open connection was closed, and what it sends now is not stored.
        mxtest.wait_for(lambda: c1.events("revocations_loaded"), 10, what="reload logged")
        closed = sum(int(e.get("connections_closed", 0)) for e in c1.events("revocations_loaded"))
        self.assertGreaterEqual(closed, 1, "mxd's connection was left open")
        for i in range(3):
            cptest.quick_session(m.host, m.port, f"after{i}.test")
        self.wait_session_logged(m, 4)
        time.sleep(8)  # several upload attempts and heartbeats
        self.assertEqual(self.outcome_counts()[0], before,
                         "outcomes of a revoked host were stored")

        again = self.mailctl(c1, "pki", "revoke", self.pki.dir, MX1)
        self.assertIn("already revoked", again.stdout)
        rows = self.sql("SELECT name FROM revoked_certificates")
        self.assertEqual(rows, [(MX1,)])

    def test_revoked_admin_refused(self):
        c = self.controld()
        self.assertEqual(self.admin_call(c, self.pki.admin, "hosts").returncode, 0)
        self.mailctl(c, "pki", "revoke", self.pki.dir, "admin")
        p = self.admin_call(c, self.pki.admin, "hosts")
        self.assertNotEqual(p.returncode, 0, "a revoked admin certificate still works")
        # The local socket (root on the controld host) still works.
        self.assertEqual(self.mailctl(c, "hosts").returncode, 0)

    def test_expired_certificate_refused(self):
        c = self.controld()
        good = make_cert(self.wd, "fresh", self.ca_pair(), "mx9.fleet.test", "host",
                         [ROLE_HOST])
        expired = make_cert(self.wd, "expired", self.ca_pair(), "mx9.fleet.test", "host",
                            [ROLE_HOST], days=(-30, -1))
        self.assertEqual(handshake(c, good, self.pki.ca), "ok")
        got = handshake(c, expired, self.pki.ca)
        self.assertTrue(got.startswith("refused"), f"expired certificate: {got}")

    def test_other_ca_with_admin_ou_and_role_refused(self):
        c = self.controld()
        st_crt, _ = self.pki.stranger()
        st_dir = os.path.dirname(st_crt)
        stranger_admin = make_cert(self.wd, "stranger-admin", (f"{st_dir}/ca.pem",
                                   f"{st_dir}/ca.key"), "admin", "admin", [ROLE_ADMIN])
        got = handshake(c, stranger_admin, self.pki.ca)
        self.assertTrue(got.startswith("refused"), f"another CA's admin certificate: {got}")
        p = self.admin_call(c, stranger_admin, "hosts")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("HOST", p.stdout)
        got = handshake(c, self.pki.stranger(), self.pki.ca)
        self.assertTrue(got.startswith("refused"), f"another CA's host certificate: {got}")

    def test_admin_ou_text_is_not_the_admin_role(self):
        c = self.controld()
        # OU=admin from the fleet CA, but no role URI: not an admin.
        no_role = make_cert(self.wd, "ou-admin", self.ca_pair(), "admin2", "admin")
        p = self.admin_call(c, no_role, "hosts")
        self.assertNotEqual(p.returncode, 0, f"OU=admin without a role acted as admin: {p.stdout}")
        # OU=admin with the host role: a host, refused by the Admin service.
        as_host = make_cert(self.wd, "ou-admin-host", self.ca_pair(), "admin3", "admin",
                            [ROLE_HOST])
        self.assertEqual(handshake(c, as_host, self.pki.ca), "ok")
        p = self.admin_call(c, as_host, "hosts")
        self.assertNotEqual(p.returncode, 0, f"OU=admin with the host role acted as admin: "
                            f"{p.stdout}")
        self.assertIn("PERMISSION_DENIED", p.stderr)
        # What mailctl pki issue --admin makes is an admin.
        p = self.admin_call(c, self.pki.admin, "hosts")
        self.assertEqual(p.returncode, 0, p.stderr)
        shown = cptest.run([cptest.MAILCTL, "pki", "show", self.pki.admin[0]]).stdout
        self.assertIn("role=admin", shown)
        shown = cptest.run([cptest.MAILCTL, "pki", "show", no_role[0]]).stdout
        self.assertIn("role=none", shown)

    def test_two_cas_in_tls_ca_refused_unless_allowed(self):
        st_crt, _ = self.pki.stranger()
        bundle = os.path.join(self.wd, "two-cas.pem")
        with open(bundle, "w") as out:
            for path in (self.pki.ca, os.path.join(os.path.dirname(st_crt), "ca.pem")):
                with open(path) as f:
                    out.write(f.read())
        c = self.controld(migrate=False, start=False, config={"tls": {"ca": bundle}})
        c.write_config()
        p = cptest.run([cptest.CONTROLD_BIN, "-n", "-c", c.conf_path], check=False)
        self.assertEqual(p.returncode, 1, f"two CAs accepted: {p.stdout}{p.stderr}")
        self.assertIn("allow_multiple_ca", p.stderr)
        c.config["tls"]["allow_multiple_ca"] = True
        c.write_config()
        p = cptest.run([cptest.CONTROLD_BIN, "-n", "-c", c.conf_path], check=False)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    cptest.main()
