#!/usr/bin/python3
"""The host's part of a TLSA key rollover (issue 11, item 7; docs/dns.md,
"Rollover"), as an operator and a sender observe it. A certificate for the
next key dropped at tls.next_cert reaches controld as next_cert_ready
within a heartbeat or two, without a reload. When controld's snapshot
carries a KeySwitch for the host, mxd switches: a session opened before
completes its message, a new STARTTLS session gets the new key, the old
files are kept as .prev, host_certs shows the old key retired and
host_identity a new next key. Without a ready certificate mxd logs
key_switch_waiting and changes nothing; the same KeySwitch in a later
snapshot does not switch again."""

import os
import shutil
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


def spki_of(cert=None, key=None, der=None):
    """TLSA 3 1 1 data as an operator computes it with the openssl CLI."""
    if der is not None:
        cmd, data = "openssl x509 -inform DER -pubkey -noout | openssl pkey -pubin -outform DER", der
    elif cert:
        cmd, data = f"openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform DER", None
    else:
        cmd, data = f"openssl pkey -in '{key}' -pubout -outform DER", None
    out = subprocess.run(f"set -o pipefail; {cmd} | sha256sum", shell=True, check=True,
                         input=data, capture_output=True, timeout=30, executable="/bin/bash")
    return out.stdout.decode().split()[0]


def cert_for_key(key, out):
    """What the operator does once DNS has the next key: a certificate for it."""
    subprocess.run(["openssl", "req", "-new", "-x509", "-key", key, "-out", out, "-days", "30",
                    "-subj", f"/CN={mxtest.MX_NAME}",
                    "-addext", f"subjectAltName=DNS:{mxtest.MX_NAME}"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(out, 0o644)


class KeySwitchTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        # The reloading master runs as the unprivileged user: the key
        # directory is writable by it, as docs/dns.md asks for a switch
        # without a restart.
        self.keys = os.path.join(self.wd, "keys")
        os.mkdir(self.keys, 0o700)
        if mxtest.IS_ROOT:
            shutil.chown(self.keys, mxtest.RUN_USER)

    def serving(self, c):
        cert = mxtest.make_cert(self.keys, "smtp", mxtest.MX_NAME)
        tls = {"certificates": mxtest.LCList([{"cert": cert[0], "key": cert[1]}])}
        self.mail = self.sink()
        return self.mxd_with_control(c, self.mail, tls=tls), cert

    def identity(self):
        rows = self.sql("SELECT next_spki, next_cert_ready, next_cert_path FROM host_identity "
                        f"WHERE host_id = '{MX1}'")
        return (rows[0][0], rows[0][1] == "t", rows[0][2]) if rows else None

    def served(self):
        """{spki: retired} of MX1 in host_certs."""
        rows = self.sql("SELECT spki_sha256, retired_at IS NOT NULL FROM host_certs "
                        f"WHERE host_id = '{MX1}'")
        return {r[0]: r[1] == "t" for r in rows}

    def settled(self, m):
        """mxd has reloaded with controld's current configuration version:
        no reload is on its way."""
        def current():
            v = self.scalar("SELECT version FROM config_state")
            got = [e["config_version"] for e in m.events("reloaded")]
            return got and got[-1] == v
        wait_for(current, 30, interval=0.2, what="mxd at controld's configuration version")

    def switch_to(self, spki):
        """What controld's rollover does at its switch step."""
        self.sql(f"INSERT INTO key_switches (host_id, to_spki) VALUES ('{MX1}', '{spki}')")

    def starttls_session(self, m):
        s = mxtest.SmtpRaw(m.host, m.port)
        self.assertEqual(s.read_reply().code, 220)
        self.assertEqual(s.ehlo().code, 250)
        s.starttls()
        self.assertEqual(s.ehlo().code, 250)
        return s, spki_of(der=s.sock.getpeercert(binary_form=True))

    def served_key(self, m, want=None):
        """The key a new STARTTLS session gets; with want, the first such
        key within 15 s that is want (else the last one seen)."""
        seen = []

        def look():
            s, key = self.starttls_session(m)
            s.close()
            seen.append(key)
            return want is None or key == want
        try:
            wait_for(look, 15, interval=0.2, what=f"a STARTTLS session with key {want}")
        except TimeoutError:
            pass
        return seen[-1]

    def test_switch_keeps_open_sessions_and_serves_the_new_key(self):
        c = self.controld()
        m, cert = self.serving(c)
        next_key, next_cert = cert[1] + ".next", cert[0] + ".next"
        old = spki_of(cert=cert[0])
        ident = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")
        nxt = ident[0]
        self.assertEqual(nxt, spki_of(key=next_key))
        self.assertEqual(ident[1:], (False, next_cert))

        # The certificate dropped in place reaches controld without a
        # reload: the uploader sees it before a heartbeat.
        uploader = m.wait_event("uploader_started", timeout=10)["pid"]
        self.settled(m)
        cert_for_key(next_key, next_cert)
        m.wait_event("next_cert_ready", timeout=20, pid=uploader)
        wait_for(lambda: self.identity()[1] or None, 20, interval=0.2,
                 what="next_cert_ready in host_identity")

        # A session opened before the switch, on the old certificate.
        s, before = self.starttls_session(m)
        self.addCleanup(s.close)
        self.assertEqual(before, old)
        self.assertEqual(s.cmd(f"MAIL FROM:<sender@{mxtest.LOCAL_DOMAIN}>").code, 250)
        self.assertEqual(s.cmd(f"RCPT TO:<rcpt@{mxtest.LOCAL_DOMAIN}>").code, 250)

        self.switch_to(nxt)
        e = m.wait_event("key_switched", timeout=30)
        self.assertEqual((e["old_spki"], e["new_spki"]), (old, nxt))
        m.wait_event("reloaded", timeout=15, pred=lambda r: r["ts"] >= e["ts"])

        # The old session completes its message after the switch.
        self.assertEqual(s.cmd("DATA").code, 354)
        s.send(b"Subject: opened before the switch\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(s.read_reply().code, 250)
        self.assertEqual(s.cmd("QUIT").code, 221)
        s.close()

        # A new session gets the new key (once the old worker has stopped
        # listening: a sender retrying meanwhile may still meet the old one).
        self.assertEqual(self.served_key(m, want=nxt), nxt)

        # The files: the next ones promoted, the old ones kept as .prev.
        self.assertEqual(spki_of(cert=cert[0]), nxt)
        self.assertEqual(spki_of(key=cert[1]), nxt)
        self.assertEqual(stat.S_IMODE(os.stat(cert[1]).st_mode), 0o600)
        self.assertEqual(spki_of(cert=cert[0] + ".prev"), old)
        self.assertEqual(spki_of(key=cert[1] + ".prev"), old)
        self.assertFalse(os.path.exists(next_cert))

        # controld: the new key served, the old retired, a new next key.
        wait_for(lambda: self.served() == {old: True, nxt: False} or None, 20, interval=0.25,
                 what=f"host_certs: {nxt[:12]} served, {old[:12]} retired")
        new_next = wait_for(lambda: self.identity()[0] not in (nxt, old) and self.identity(),
                            20, interval=0.2, what="a new next key in host_identity")
        self.assertEqual(new_next, (spki_of(key=next_key), False, next_cert))
        self.mail.wait_message(lambda msg: b"opened before the switch" in msg.data,
                               what="the message of the session opened before the switch")
        with open(next_key, "rb") as f:
            next_bytes = f.read()

        # The same KeySwitch in a later snapshot switches nothing.
        n = len(m.events("reloaded"))
        self.sql(f"UPDATE key_switches SET created_at = now() WHERE host_id = '{MX1}'")
        wait_for(lambda: len(m.events("reloaded")) > n or None, 30, interval=0.2,
                 what="the next snapshot's reload")
        self.assertEqual(len(m.events("key_switched")), 1)
        self.assertEqual(spki_of(cert=cert[0]), nxt)
        with open(next_key, "rb") as f:
            self.assertEqual(f.read(), next_bytes)
        self.assertEqual(self.served_key(m), nxt)

    def test_switch_without_a_ready_certificate_waits_and_changes_nothing(self):
        c = self.controld()
        m, cert = self.serving(c)
        next_key, next_cert = cert[1] + ".next", cert[0] + ".next"
        old = spki_of(cert=cert[0])
        nxt = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")[0]
        # A certificate, but for another key: not ready either.
        other = mxtest.make_cert(self.keys, "other", mxtest.MX_NAME)
        shutil.copy(other[0], next_cert)

        self.switch_to(nxt)
        e = m.wait_event("key_switch_waiting", timeout=30)
        self.assertEqual(e["to_spki"], nxt)
        self.assertIn("is not the next key's", e["missing"])
        self.assertIn(next_cert, e["action"])
        m.wait_event("reloaded", timeout=15, pred=lambda r: r["ts"] >= e["ts"])
        self.assertEqual(m.events("key_switched"), [])
        self.assertEqual(spki_of(cert=cert[0]), old)
        self.assertEqual(spki_of(key=next_key), nxt)
        self.assertFalse(os.path.exists(cert[0] + ".prev"))
        self.assertEqual(self.served_key(m), old)
        self.assertEqual(self.identity(), (nxt, False, next_cert))

        # No certificate at all: the line says where to put one.
        os.unlink(next_cert)
        n = len(m.events("key_switch_waiting"))
        self.sql(f"UPDATE key_switches SET created_at = now() WHERE host_id = '{MX1}'")
        wait_for(lambda: len(m.events("key_switch_waiting")) > n or None, 30, interval=0.2,
                 what="key_switch_waiting again")
        e = m.events("key_switch_waiting")[-1]
        self.assertIn("no certificate for the next key", e["missing"])
        self.assertEqual(spki_of(cert=cert[0]), old)

    def test_root_key_directory_switches_at_the_next_start(self):
        """The reloading master (not root) cannot rename in root's key
        directory: it says so and changes nothing; the restart switches."""
        if not mxtest.IS_ROOT:
            self.skipTest("needs root: the master gives up root only when started as root")
        shutil.chown(self.keys, "root")
        c = self.controld()
        m, cert = self.serving(c)
        old = spki_of(cert=cert[0])
        nxt = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")[0]
        cert_for_key(cert[1] + ".next", cert[0] + ".next")
        # The uploader may not look into root's 0700 directory: the master's
        # check at a reload reports it.
        m.reload()
        wait_for(lambda: self.identity()[1] or None, 20, interval=0.2, what="next_cert_ready")

        self.switch_to(nxt)
        e = m.wait_event("key_switch_failed", timeout=30)
        self.assertIn("restart mxd", e["action"])
        self.assertEqual(spki_of(cert=cert[0]), old)
        self.assertEqual(m.events("key_switched"), [])

        m.stop()
        m.start()
        e = m.wait_event("key_switched", timeout=15)
        self.assertEqual((e["old_spki"], e["new_spki"]), (old, nxt))
        self.assertEqual(self.served_key(m), nxt)
        wait_for(lambda: self.served() == {old: True, nxt: False} or None, 20, interval=0.25,
                 what="host_certs after the restart")

    def test_switch_cut_between_its_renames_is_completed(self):
        """A crash after the key moved and before the certificate did: the
        next start finishes the switch instead of failing on a key that
        does not match its certificate."""
        c = self.controld()
        m, cert = self.serving(c)
        nxt = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")[0]
        m.stop()
        cert_for_key(cert[1] + ".next", cert[0] + ".next")
        os.rename(cert[1], cert[1] + ".prev")
        os.rename(cert[1] + ".next", cert[1])
        m.start()
        m.wait_event("key_switch_completed", timeout=15, new_spki=nxt)
        self.assertEqual(self.served_key(m), nxt)
        self.assertFalse(os.path.exists(cert[0] + ".next"))
        self.assertTrue(os.path.exists(cert[0] + ".prev"))

    def test_csr_for_the_next_key(self):
        """mxd -c FILE csr: a request for the next key naming the host,
        which a CA (here the key itself) turns into a ready certificate."""
        c = self.controld()
        m, cert = self.serving(c)
        nxt = wait_for(self.identity, 20, interval=0.2, what="host_identity of mx1")[0]
        p = subprocess.run([mxtest.MXD_BIN, "-c", m.conf_path, "csr"], env=m.env,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        req = subprocess.run(["openssl", "req", "-noout", "-verify", "-subject", "-text"],
                             input=p.stdout, capture_output=True, timeout=30, check=True)
        text = req.stdout.decode()
        self.assertIn(f"CN = {mxtest.MX_NAME}", text)
        self.assertIn(f"DNS:{mxtest.MX_NAME}", text)
        pub = subprocess.run("set -o pipefail; openssl req -noout -pubkey | openssl pkey -pubin"
                             " -outform DER | sha256sum", shell=True, executable="/bin/bash",
                             input=p.stdout, capture_output=True, timeout=30, check=True)
        self.assertEqual(pub.stdout.decode().split()[0], nxt)

        csr = os.path.join(self.wd, "next.csr")
        with open(csr, "wb") as f:
            f.write(p.stdout)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-signkey", cert[1] + ".next",
                        "-out", cert[0] + ".next", "-days", "30", "-copy_extensions", "copy"],
                       check=True, capture_output=True, timeout=60)
        os.chmod(cert[0] + ".next", 0o644)
        wait_for(lambda: self.identity()[1] or None, 20, interval=0.2,
                 what="next_cert_ready in host_identity")


if __name__ == "__main__":
    cptest.main()
