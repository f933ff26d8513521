#!/usr/bin/python3
"""A whole TLSA key rollover (issue 11, item 7; docs/dns.md, "Rollover")
with two DANE senders delivering to the host throughout.

The fleet: PostgreSQL, controld stepping the rollover every second and
asking knot (dnstest's signed zone dyn.test.) directly, and two mxd,
mx1.dyn.test and mx2.dyn.test, listening on port 25 of their own loopback
addresses (a DANE sender looks up `_25._tcp.<mx>`; Postfix connects to the
port its TLSA name says). mx2 is stopped once its records are published, so
every delivery goes to mx1, the host being rolled. The records' TTL is 5 s
(`mailctl dns set --ttl 5`), so the rollover's wait is 10 s.

The senders resolve through a validating unbound on port 53 of a loopback
address, forwarding to dnstest's resolver and caching as a sender's
resolver does:
  - mxd itself (`resolver` = that unbound; DANE is on by default for a
    secure TLSA RRset): its outbound_session record says policy=tlsa,
    result=success for mx1's address;
  - a private Debian Postfix with `smtp_tls_security_level = dane` and
    `smtp_dns_support_level = dnssec`, in a mount namespace whose
    /etc/resolv.conf names that unbound (`options trust-ad`): its log says
    "Verified TLS connection established to mx1.dyn.test".

A message from each sender is delivered and DANE-verified before the
rollover, during its wait, after the switch and once it is done. controld
is killed with SIGKILL during the wait and again once the switch is
issued; each time it resumes. The operator's part is what docs/dns.md
says: a certificate for the next key, made from `mxd -c FILE csr`, put at
tls.next_cert. At the end mx1 serves the new key, knot serves the TLSA
records of the new key and of the following next key only, and the old key
is retired in host_certs.

Needs root: port 25 and 53, Postfix, a mount namespace."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import test_dns_publish as pub  # noqa: E402
import test_rollover_driver as drv  # noqa: E402
from test_dns_publish import cptest, outtest, DOMAIN  # noqa: E402
from cptest import MX1, MX2, wait_for  # noqa: E402
from test_key_switch import spki_of  # noqa: E402
from test_postfix_client import POSTFIX, PostfixInstance  # noqa: E402

mxtest = cptest.mxtest
TTL = 5
SENDER = "sender@example.test"


def setUpModule():
    pub.setUpModule()


def tearDownModule():
    pub.tearDownModule()


class SenderResolver:
    """A validating unbound on addr:53, forwarding the test namespace to
    dnstest's resolver: the only kind of resolver glibc (and so Postfix)
    can be pointed at, and a cache that keeps records for their TTL."""

    def __init__(self, wd):
        env = pub.DNS.env
        self.dir = os.path.join(wd, "resolver")
        os.makedirs(self.dir)
        self.addr = outtest.pick_hosts(1, 53)[0]
        upstream = f"{env['DNSTEST_RESOLVER_ADDR']}@{env['DNSTEST_RESOLVER_PORT']}"
        conf = os.path.join(self.dir, "unbound.conf")
        lines = [
            "server:", f"  interface: {self.addr}", "  port: 53", "  do-ip6: no",
            "  do-daemonize: no", '  username: ""', '  chroot: ""',
            f'  directory: "{self.dir}"', f'  pidfile: "{self.dir}/unbound.pid"',
            f'  logfile: "{self.dir}/unbound.log"', "  use-syslog: no", "  verbosity: 1",
            "  val-log-level: 2", "  num-threads: 1", "  so-reuseport: no",
            "  access-control: 127.0.0.0/8 allow", "  do-not-query-localhost: no",
            '  module-config: "validator iterator"',
            f'  trust-anchor-file: "{env["DNSTEST_TRUST_ANCHOR"]}"',
            '  local-zone: "." refuse', '  local-zone: "test." transparent',
            '  local-zone: "127.in-addr.arpa." transparent',
            "remote-control:", "  control-enable: no"]
        for zone in ("test.", "127.in-addr.arpa."):
            lines += ["forward-zone:", f'  name: "{zone}"', f"  forward-addr: {upstream}"]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([outtest.dnstest.UNBOUND_CHECKCONF, conf], check=True,
                       capture_output=True, timeout=30)
        with open(os.path.join(self.dir, "stderr.log"), "ab") as log:
            self.proc = subprocess.Popen([outtest.dnstest.UNBOUND, "-d", "-c", conf],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        mxtest.register_emergency(("resolver", self.dir), self.stop)

        def secure():
            r = outtest.dnstest.dns_query(self.addr, 53, f"{DOMAIN}.", 6, timeout=1)
            return r is not None and r[0] == 0 and bool(r[1] & outtest.dnstest.FLAG_AD)
        wait_for(secure, 30, interval=0.2, what=f"unbound on {self.addr}:53 answering securely")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        mxtest.unregister_emergency(("resolver", self.dir))


class DanePostfix(PostfixInstance):
    """A private Postfix that delivers dyn.test by its MX records with DANE,
    started in a mount namespace where /etc/resolv.conf names `resolver`."""

    def __init__(self, root, resolver, bind_address):
        super().__init__(root, f"{DOMAIN} = smtp:{DOMAIN}", bind_address, settings={
            "smtp_dns_support_level": "dnssec",
            "smtp_tls_security_level": "dane",
            "smtp_host_lookup": "dns",
        }.items())
        self.resolv = os.path.join(root, "resolv.conf")
        with open(self.resolv, "w") as f:
            # glibc strips the AD bit unless told the resolver is trusted.
            f.write(f"nameserver {resolver}\noptions trust-ad\n")

    def control(self, action, timeout=30):
        if action != "start":
            return super().control(action, timeout)
        inner = (f"mount --bind {shlex.quote(self.resolv)} /etc/resolv.conf && "
                 f"exec {shlex.quote(POSTFIX)} -c {shlex.quote(self.etc)} start")
        cmd = shlex.join(["unshare", "-m", "--propagation", "private", "sh", "-c", inner])
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           text=True, timeout=timeout, errors="replace")
        return p.returncode, (p.stdout + p.stderr).replace("\r", "")


class RolloverDaneTest(drv.RolloverDriverTest):
    # This class's own test only: the driver test is test_rollover_driver.py's.
    test_rollover_walks_to_done_and_resumes_after_a_kill = None

    def smtp_listeners(self):
        if not mxtest.IS_ROOT:
            self.skipTest("port 25 and 53, Postfix and a mount namespace need root")
        if not os.access(POSTFIX, os.X_OK) or not shutil.which("script") \
                or not shutil.which("unshare"):
            self.fail("postfix, script(1) or unshare(1) missing (scripts/deps)")
        return outtest.pick_hosts(2, 25), 25

    def cert_dir(self):
        # The switch renames the key files: the directory belongs to the
        # user mxd's reloading master runs as (docs/dns.md).
        d = os.path.join(self.wd, "keys")
        os.makedirs(d, 0o700, exist_ok=True)
        shutil.chown(d, mxtest.RUN_USER)
        return d

    # -- the senders

    def start_senders(self):
        self.resolver = SenderResolver(self.wd)
        self.addCleanup(self.resolver.stop)
        resolver = f"{self.resolver.addr}:53"
        local = self.new_sink(name="sender-local")
        # self.mxd is the fleet's {host: Mxd} here (test_dns_publish.py).
        self.sender = mxtest.MxTestCase.mxd(self, self.mxd_config(
            local.next_hop, resolver=resolver, trusted_networks=["127.0.0.0/8"],
            delivery={"retry_min": 1, "retry_max": 2}), name="sender")
        self.pf_src = mxtest.pick_host()
        self.pf = DanePostfix(os.path.join(self.wd, "postfix"), self.resolver.addr, self.pf_src)
        self.addCleanup(self.pf.stop)
        self.addCleanup(self._postfix_log_on_failure)
        self.pf.start()

    def _postfix_log_on_failure(self):
        if self._failed():
            print(f"\n----- postfix maillog -----\n{self.pf.log()[-6000:]}", file=sys.stderr)

    def verified_by_postfix(self):
        return len(re.findall(r"Verified TLS connection established to "
                              + re.escape(f"mx1.{DOMAIN}[{self.addrs[0]}]:25"), self.pf.log()))

    def dane_by_mxd(self):
        return len(self.sender.events("outbound_session", ip=self.addrs[0], policy="tlsa",
                                      result="success"))

    def deliver_round(self, tag):
        """One message from each sender to dyn.test: both arrive, and each
        sender verified mx1 with DANE for it."""
        ours, postfix = self.dane_by_mxd(), self.verified_by_postfix()
        ids = {}
        for who in ("mxd", "postfix"):
            ids[who] = f"{tag}-{who}-{uuid.uuid4().hex[:8]}"
            data = (f"From: <{SENDER}>\r\nTo: <{who}@{DOMAIN}>\r\nSubject: {tag}\r\n"
                    f"X-Test-Id: {ids[who]}\r\n\r\nsent {tag}\r\n").encode()
            m = self.sender if who == "mxd" else None
            host, port = (m.host, m.port) if m else (self.pf.host, self.pf.port)
            codes = [r.code for r in mxtest.send_message(host, port, SENDER,
                                                         [f"{who}@{DOMAIN}"], data)]
            self.assertEqual(codes[-2], 250, f"{who} did not take the message ({tag})")
        for who, msg_id in ids.items():
            self.sink_.wait_message(lambda x, i=msg_id: f"X-Test-Id: {i}".encode() in x.data,
                                    timeout=60, what=f"the message sent by {who} {tag}")
        wait_for(lambda: self.dane_by_mxd() > ours, 20, interval=0.2,
                 what=f"mxd's outbound_session policy=tlsa result=success to mx1 ({tag})")
        wait_for(lambda: self.verified_by_postfix() > postfix, 20, interval=0.2,
                 what=f"Postfix's 'Verified TLS connection established' to mx1 ({tag})")

    def served_key(self):
        """The key a new STARTTLS session with mx1 gets."""
        s = mxtest.SmtpRaw(self.addrs[0], 25)
        try:
            self.assertEqual(s.read_reply().code, 220)
            s.ehlo()
            s.starttls()
            return spki_of(der=s.sock.getpeercert(binary_form=True))
        finally:
            s.close()

    def kill_controld(self):
        self.c.send_signal(signal.SIGKILL)
        self.c.wait(10)
        self.c.start()

    def operator_certificate(self, m1):
        """docs/dns.md: a certificate for the next key, from mxd's request
        (here signed by the key itself: DANE-EE names no CA)."""
        cert, key = self.certs["mx1"]
        p = subprocess.run([mxtest.MXD_BIN, "-c", m1.conf_path, "csr"], env=m1.env,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        csr = os.path.join(self.wd, "mx1-next.csr")
        with open(csr, "wb") as f:
            f.write(p.stdout)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-signkey", key + ".next",
                        "-out", cert + ".next", "-days", "30", "-copy_extensions", "copy"],
                       check=True, capture_output=True, timeout=60)
        os.chmod(cert + ".next", 0o644)

    # -- the test

    def test_dane_senders_deliver_throughout_a_rollover(self):
        self.dns("set", DOMAIN, "--publish", "--ttl", str(TTL))
        self.push()
        m1 = self.mxd[MX1]
        self.mxd[MX2].stop()
        old = spki_of(cert=self.certs["mx1"][0])
        new = self.scalar(f"SELECT next_spki FROM host_identity WHERE host_id = '{MX1}'")
        self.assertEqual(self.served_tlsa(), {old, new})
        self.start_senders()
        self.deliver_round("before the rollover")

        self.assertIn("state       publish", self.tls("rollover", MX1).stdout)
        self.wait_state("wait", 30)
        self.kill_controld()
        self.assertEqual(self.status()["state"], "wait")
        self.deliver_round("during the wait")

        # The wait ends; the host needs a certificate for its next key.
        st = self.wait_state("switch", 2 * TTL + 30)
        self.assertIn("waiting for a certificate", st["status"])
        self.operator_certificate(m1)
        e = m1.wait_event("key_switched", timeout=60)
        self.assertEqual((e["old_spki"], e["new_spki"]), (old, new))
        self.kill_controld()
        wait_for(lambda: self.served_key() == new, 20, interval=0.2,
                 what="mx1 serving the new key")
        self.deliver_round("after the switch")

        st = self.wait_state("done", 60)
        following = self.scalar(f"SELECT next_spki FROM host_identity WHERE host_id = '{MX1}'")
        self.assertNotIn(following, (old, new, ""))
        self.assertEqual(self.served_tlsa(), {new, following})
        rows = self.sql(f"SELECT spki_sha256, retired_at IS NOT NULL FROM host_certs"
                        f" WHERE host_id = '{MX1}'")
        self.assertEqual({r[0]: r[1] == "t" for r in rows}, {old: True, new: False})
        self.deliver_round("after the rollover")
        self.assertEqual(self.served_key(), new)


if __name__ == "__main__":
    cptest.main()
