#!/usr/bin/python3
"""What each mxd reports of itself for DNS (issue 11, item 1), as an
operator reads it in PostgreSQL: host_identity holds the host's MX name,
its addresses and the SPKI SHA-256 of the next key mxd created (0600, kept
across restarts); host_certs holds the SPKI the openssl CLI computes for the
certificate it serves, and a key it stopped serving gets retired_at.
Heartbeats that repeat the same identity do not make a new configuration
version. A broken next key stops mxd at start with a clear message; a
hostile host's junk never reaches the tables."""

import os
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
import mxtest  # noqa: E402
from cptest import MX1, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


def openssl_spki(cert=None, key=None):
    """TLSA 3 1 1 data as an operator computes it with the openssl CLI."""
    if cert:
        cmd = f"openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform DER"
    else:
        cmd = f"openssl pkey -in '{key}' -pubout -outform DER"
    out = subprocess.run(f"set -o pipefail; {cmd} | sha256sum", shell=True, check=True,
                         capture_output=True, text=True, timeout=30, executable="/bin/bash")
    return out.stdout.split()[0]


def openssl_not_after(cert):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-enddate"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return int(subprocess.run(["date", "-u", "-d", out.strip().split("=", 1)[1], "+%s"],
                              check=True, capture_output=True, text=True).stdout)


class HostIdentityTest(cptest.FleetTestCase):

    def smtp_cert(self, basename="smtp"):
        return self.cert(basename, cn=mxtest.MX_NAME, sans=("mta-sts.example.test",))

    def mxd_serving(self, c, cert, **over):
        tls = {"certificates": mxtest.LCList([{"cert": cert[0], "key": cert[1]}])}
        tls.update(over.pop("tls", {}))
        return self.mxd_with_control(c, self.sink(), tls=tls, **over)

    def identity(self):
        rows = self.sql("SELECT hostname, array_to_string(addresses, ' '), next_spki, "
                        f"updated_at FROM host_identity WHERE host_id = '{MX1}'")
        return rows[0] if rows else None

    def certs(self):
        """{spki: (names, not_after unix, key_type, retired)} of MX1."""
        rows = self.sql("SELECT spki_sha256, array_to_string(names, ' '), "
                        "extract(epoch FROM not_after)::bigint, key_type, retired_at IS NOT NULL "
                        f"FROM host_certs WHERE host_id = '{MX1}'")
        return {r[0]: (r[1], int(r[2]), r[3], r[4] == "t") for r in rows}

    def version(self):
        return int(self.scalar("SELECT version FROM config_state"))

    def test_registered_host_reports_its_certificate_and_next_key(self):
        c = self.controld()
        cert = self.smtp_cert()
        m = self.mxd_serving(c, cert)
        next_key = cert[1] + ".next"

        ident = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")
        self.assertEqual(ident[0], mxtest.MX_NAME)
        self.assertEqual(ident[1], m.host)  # listen's address: no public_addresses set
        st = os.stat(next_key)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(ident[2], openssl_spki(key=next_key))
        spki = openssl_spki(cert=cert[0])
        certs = wait_for(lambda: self.certs() or None, 10, interval=0.2, what="host_certs")
        self.assertEqual(certs, {spki: ("mx1.example.test mta-sts.example.test",
                                        openssl_not_after(cert[0]), "rsa", False)})

        # Heartbeats repeating the same identity change nothing: no new
        # configuration version, the row untouched; the key is seen again.
        wait_for(lambda: m.events("config_snapshot") or None, 15, interval=0.2,
                 what="mxd took the snapshot")
        v, ident = self.version(), self.identity()
        seen = self.scalar(f"SELECT last_seen FROM host_certs WHERE spki_sha256 = '{spki}'")
        t0 = self.scalar("SELECT now()")
        wait_for(lambda: self.scalar(f"SELECT last_seen > '{t0}'::timestamptz + interval "
                                     f"'4 seconds' FROM hosts WHERE host_id = '{MX1}'") == "t",
                 20, interval=0.25, what="heartbeats (one a second) for four seconds more")
        self.assertEqual(self.version(), v)
        self.assertEqual(self.identity(), ident)
        self.assertNotEqual(
            self.scalar(f"SELECT last_seen FROM host_certs WHERE spki_sha256 = '{spki}'"), seen)

        # A restart reads the next key, never replaces it.
        with open(next_key, "rb") as f:
            key_bytes = f.read()
        m.stop()
        m.start()
        wait_for(lambda: m.events("controld_connected") or None, 15, interval=0.2,
                 what="mxd reconnected")
        with open(next_key, "rb") as f:
            self.assertEqual(f.read(), key_bytes)
        self.assertEqual(self.identity()[2], ident[2])

        # A new certificate (new key) and SIGHUP: the new key is served, the
        # old one retired.
        for p in cert:
            os.unlink(p)
        new = self.smtp_cert()
        new_spki = openssl_spki(cert=new[0])
        self.assertNotEqual(new_spki, spki)
        m.reload()

        def rotated():
            cs = self.certs()
            return cs if new_spki in cs and cs[spki][3] else None
        certs = wait_for(rotated, 20, interval=0.25, what="the new key stored, the old retired")
        self.assertFalse(certs[new_spki][3])
        self.assertTrue(certs[spki][3])
        self.assertEqual(self.identity()[2], ident[2])  # the next key stays the next key

        # mailctl hosts shows the MX name, the next key and the key served
        # now (the retired one no longer), as SPKI prefixes.
        rows = cptest.parse_table(self.mailctl(c, "hosts").stdout)
        self.assertEqual([(r["HOST"], r["MX"], r["NEXT_KEY"], r["KEYS"]) for r in rows],
                         [(MX1, mxtest.MX_NAME, ident[2][:12], new_spki[:12])])

    def test_promoting_the_next_key(self):
        """The rollover an operator does: a certificate for the next key,
        the next key becomes the key, SIGHUP. The served key is the one DNS
        already had as next; a new next key appears (at once when the
        reloading mxd may write there, else at the next start)."""
        c = self.controld()
        cert = self.smtp_cert()
        m = self.mxd_serving(c, cert)
        next_key = cert[1] + ".next"
        old_spki = openssl_spki(cert=cert[0])
        ident = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")
        promoted = ident[2]

        subprocess.run(["openssl", "req", "-new", "-x509", "-key", next_key, "-out", cert[0],
                        "-days", "30", "-subj", f"/CN={mxtest.MX_NAME}",
                        "-addext", f"subjectAltName=DNS:{mxtest.MX_NAME}"],
                       check=True, capture_output=True, timeout=60)
        os.rename(next_key, cert[1])
        m.reload()

        def rotated():
            cs = self.certs()
            return cs if promoted in cs and cs[old_spki][3] else None
        certs = wait_for(rotated, 20, interval=0.25, what="the promoted key served")
        self.assertFalse(certs[promoted][3])
        if mxtest.IS_ROOT:
            # The reloading master runs as the unprivileged user: it cannot
            # write next to root's keys, says so, and reports no next key.
            m.wait_event("next_key_not_created", timeout=10)
            wait_for(lambda: self.identity()[2] == "", 10, interval=0.2,
                     what="no next key reported")
            self.assertFalse(os.path.exists(next_key))
            m.stop()
            m.start()
        new_next = wait_for(lambda: os.path.exists(next_key) and self.identity()[2], 20,
                            interval=0.2, what="a new next key reported")
        self.assertEqual(new_next, openssl_spki(key=next_key))
        self.assertNotIn(new_next, (promoted, old_spki))

    def test_public_addresses_and_named_next_key(self):
        c = self.controld()
        next_key = os.path.join(self.wd, "keys", "smtp-next.pem")
        os.mkdir(os.path.dirname(next_key), 0o700)
        self.mxd_serving(c, self.smtp_cert(), tls={"next_key": next_key},
                         public_addresses=["192.0.2.25", "2001:DB8::25"])
        ident = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")
        self.assertEqual(ident[1], "192.0.2.25 2001:db8::25")
        self.assertEqual(ident[2], openssl_spki(key=next_key))
        self.assertEqual(stat.S_IMODE(os.stat(next_key).st_mode), 0o600)

    def test_bad_next_key_refuses_start(self):
        c = self.controld()
        cert = self.smtp_cert()
        with open(cert[1] + ".next", "w") as f:
            f.write("this is not a key\n")
        m = self.mxd_serving(c, cert, start=False)
        m.write_config()
        want = f"mxd: next_key {cert[1]}.next: not an unencrypted PEM private key"
        for check in ([], ["-n"]):
            p = subprocess.run([mxtest.MXD_BIN, "-c", m.conf_path, *check], env=m.env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(want, p.stderr)
        with open(cert[1] + ".next") as f:
            self.assertEqual(f.read(), "this is not a key\n")  # left for the operator
        self.assertEqual(self.scalar("SELECT count(*) FROM host_identity"), "0")

    def test_bad_next_key_at_reload_keeps_the_old_configuration(self):
        c = self.controld()
        cert = self.smtp_cert()
        m = self.mxd_serving(c, cert)
        before = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")
        with open(cert[1] + ".next", "w") as f:
            f.write("broken\n")
        m.reload()
        e = m.wait_event("reload_failed", timeout=15)
        self.assertIn(f"next_key {cert[1]}.next: not an unencrypted PEM private key",
                      e["error"])
        self.assertTrue(m.running())
        cptest.smtp_send(m.host, m.port, "after-reload")  # still serving mail
        self.assertEqual(self.identity()[2], before[2])

    def test_hostile_identity_is_refused_naming_the_field(self):
        c = self.controld()
        grpc, pb, svc = cptest.grpc_stubs()
        chan = cptest.grpc_channel((c.host, c.port), self.pki.mx1, self.pki.ca)
        self.addCleanup(chan.close)
        fleet = svc.FleetStub(chan)
        good = "ab" * 32
        cases = [
            (pb.HostIdentity(hostname="bad host!"), "identity.hostname"),
            (pb.HostIdentity(hostname="mx.test", addresses=["1.2.3.4; DROP"]),
             "identity.addresses[0]"),
            (pb.HostIdentity(hostname="mx.test", next_spki_sha256="AB" * 32),
             "identity.next_spki_sha256"),
            (pb.HostIdentity(hostname="mx.test", certs=[
                pb.HostCert(spki_sha256=good, names=["mx.test"]),
                pb.HostCert(spki_sha256="x")]), "identity.certs[1].spki_sha256"),
            (pb.HostIdentity(hostname="mx.test", certs=[
                pb.HostCert(spki_sha256=good, names=["ok.test", "bad name"])]),
             "identity.certs[0].names[1]"),
            (pb.HostIdentity(hostname="mx.test", addresses=["192.0.2.1"] * 17),
             "identity.addresses"),
            (pb.HostIdentity(hostname="mx.test", next_cert_path="/etc/x\n.pem"),
             "identity.next_cert_path"),
            (pb.HostIdentity(hostname="mx.test", next_cert_path="/" + "a" * 2000),
             "identity.next_cert_path"),
        ]
        for ident, field in cases:
            for call, req in ((fleet.Register, pb.RegisterRequest(host_id=MX1, version="x",
                                                                  identity=ident)),
                              (fleet.Heartbeat, pb.HeartbeatRequest(host_id=MX1,
                                                                    identity=ident))):
                with self.assertRaises(grpc.RpcError) as cm:
                    call(req, timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn(field, cm.exception.details())
        self.assertEqual(self.scalar("SELECT count(*) FROM host_identity"), "0")
        self.assertEqual(self.scalar("SELECT count(*) FROM host_certs"), "0")
        # The operator sees which host sent what.
        refused = c.events("host_identity_refused", host=MX1)
        self.assertEqual(len(refused), 2 * len(cases))
        self.assertIn("identity.hostname", refused[0]["reason"])
        # A well-formed one is stored.
        fleet.Register(pb.RegisterRequest(host_id=MX1, version="x", identity=pb.HostIdentity(
            hostname="mx.test", addresses=["192.0.2.1"], certs=[
                pb.HostCert(spki_sha256=good, names=["*.mx.test"], key_type="ec")])),
            timeout=10)
        self.assertEqual(self.sql("SELECT hostname, addresses::text FROM host_identity"),
                         [("mx.test", "{192.0.2.1}")])
        self.assertEqual(self.sql("SELECT spki_sha256, names::text, key_type FROM host_certs"),
                         [(good, "{*.mx.test}", "ec")])


if __name__ == "__main__":
    cptest.main()
