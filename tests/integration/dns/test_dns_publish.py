#!/usr/bin/python3
"""A hosted domain's DNS published and checked end to end (docs/dns.md,
"Push" and "Check"), on real components: knot serving the DNSSEC-signed
zone dyn.test. and accepting TSIG-signed RFC 2136 updates, unbound
validating in front of it (tests/tools/dnstest), PostgreSQL, controld and two
mxd that report their names, addresses and keys and serve the MTA-STS policy.

`mailctl dns push` sends what the zone lacks and a second push sends nothing;
the pushed records resolve through the validating resolver as secure;
`mailctl dns check` then finds nothing wrong (the reverse DNS of the two
hosts is published in dnstest's 127.in-addr.arpa.); a record removed behind controld's back is found by the
check and put back by the next push, alone; a policy change gives a new id,
reaches both mxd, is reported as a stale id until pushed, and is clean after.
A wrong TSIG secret is refused with a clear error and changes nothing."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import cptest  # noqa: E402
import outtest  # noqa: E402
from cptest import MX1, MX2, wait_for  # noqa: E402
from mxtest import common_free_port  # noqa: E402

DOMAIN = "dyn.test"
DNS = None


def setUpModule():
    global DNS
    cptest.setUpModule()
    DNS = outtest.Dns()


def tearDownModule():
    if DNS:
        DNS.down()
    cptest.tearDownModule()


def zones_config(wd):
    """controld's dns.zones for dyn.test.: knot, and the TSIG key dnstest made
    (its secret in a 0600 file, as controld requires)."""
    env = DNS.env
    secret = os.path.join(wd, "tsig.key")
    with open(secret, "w") as f:
        f.write(env["DNSTEST_TSIG_SECRET"] + "\n")
    os.chmod(secret, 0o600)
    return cptest.mxtest.LCList([{
        "name": DOMAIN, "server": env["DNSTEST_UPDATE_SERVER"],
        "tsig_name": env["DNSTEST_TSIG_NAME"], "tsig_algorithm": env["DNSTEST_TSIG_ALG"],
        "tsig_secret_file": secret}])


class DnsPublishTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        env = DNS.env
        self.addrs, smtp_port = self.smtp_listeners()
        self.https_port = common_free_port(self.addrs)
        certs = {}
        for short, addr in zip(("mx1", "mx2"), self.addrs):
            certs[short] = cptest.mxtest.make_cert(self.cert_dir(), f"smtp-{short}",
                                                   f"{short}.{DOMAIN}",
                                                   sans=(f"mta-sts.{DOMAIN}",))
        self.certs = certs
        self.ca_file = os.path.join(self.wd, "dns-ca.pem")
        with open(self.ca_file, "w") as out:
            for c in certs.values():
                with open(c[0]) as f:
                    out.write(f.read())
        self.c = self.controld(config={"dns": {
            "resolver": env["RESOLVER"], "timeout": 5, "smtp_port": smtp_port,
            "https_port": self.https_port, "ca_file": self.ca_file,
            "zones": zones_config(self.wd)}})
        self.sink_ = self.sink()
        self.mxd = {}
        for host_id, short, addr in ((MX1, "mx1", self.addrs[0]), (MX2, "mx2", self.addrs[1])):
            cert = certs[short]
            self.mxd[host_id] = self.mxd_with_control(
                self.c, self.sink_, cert=getattr(self.pki, short), name=short, host=addr,
                port=smtp_port, hostname=f"{short}.{DOMAIN}",
                mta_sts_listen=[f"{addr}:{self.https_port}"],
                tls={"certificates": cptest.mxtest.LCList([{"cert": cert[0], "key": cert[1]}])})
        DNS.add([".".join(reversed(a.split("."))) + f".in-addr.arpa. 300 IN PTR {m}.{DOMAIN}."
                 for m, a in zip(("mx1", "mx2"), self.addrs)])
        wait_for(lambda: self.scalar("SELECT count(*) FROM host_identity WHERE next_spki <> ''")
                 == "2", 30, interval=0.25, what="both hosts' identities stored")
        self.mailctl(self.c, "domain", "add", DOMAIN, self.sink_.next_hop)
        self.dns("set", DOMAIN, "--publish", "--ttl", "300")

    # -- what a subclass may choose

    def smtp_listeners(self):
        """The two hosts' addresses and their (common) SMTP port."""
        addrs = [cptest.mxtest.pick_host(), cptest.mxtest.pick_host()]
        return addrs, common_free_port(addrs)

    def cert_dir(self):
        """Where the hosts' certificates and keys are made."""
        return self.wd

    # -- helpers

    def dns(self, *args, check=True):
        return self.mailctl(self.c, "dns", *args, check=check, timeout=200)

    def push(self):
        return json.loads(self.dns("push", DOMAIN, "--json").stdout)

    def check(self):
        r = self.dns("check", DOMAIN, "--json", check=False)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return json.loads(r.stdout)

    def findings(self, report, severity=("error", "warning")):
        return sorted((f["code"], f["subject"]) for f in report["findings"]
                      if f["severity"] in severity)

    def dnstest(self, *args):
        subprocess.run([outtest.DNSTEST_PATH, "control", DNS.dir, *args], check=True,
                       capture_output=True, timeout=60)

    def flush_resolver(self):
        """What a resolver shows once the old records' TTL has run out."""
        self.dnstest("unbound", "flush_zone", f"{DOMAIN}.")

    def policy_id(self):
        return json.loads(self.dns("records", DOMAIN, "--format", "json").stdout)["mta_sts"]["id"]

    def served_policy(self, addr):
        p = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", self.ca_file,
                            "--resolve", f"mta-sts.{DOMAIN}:{self.https_port}:{addr}",
                            f"https://mta-sts.{DOMAIN}:{self.https_port}/.well-known/mta-sts.txt"],
                           capture_output=True, text=True, timeout=30)
        return p.stdout if p.returncode == 0 else None

    # -- tests

    def test_push_check_drift_and_policy_change(self):
        records = json.loads(self.dns("records", DOMAIN, "--format", "json").stdout)
        self.assertEqual(records["errors"], [])
        want = {(r["owner"], r["type"], r["rdata"]) for r in records["records"]}

        first = self.push()
        added = {(r["owner"], r["type"], r["rdata"]) for r in first["added"]}
        self.assertEqual(added, want)
        self.assertEqual(first["deleted"], [])
        # Idempotent: the second push finds nothing to send.
        again = self.dns("push", DOMAIN).stdout
        self.assertIn("nothing sent", again)

        # What was pushed resolves through the validating resolver, secure.
        rcode, mx = DNS.query(f"{DOMAIN}.", 15)  # MX
        self.assertEqual(rcode, 0)
        self.assertEqual(len(mx), 2)
        tlsa = [r for r in want if r[1] == "TLSA"]
        self.assertEqual(len(tlsa), 4)  # current and next key of each host

        report = self.check()
        self.assertEqual(self.findings(report), [], json.dumps(report, indent=1))

        # Drift: mx1's next-key TLSA removed behind controld's back.
        owner = f"_25._tcp.mx1.{DOMAIN}."
        nxt = self.scalar(f"SELECT next_spki FROM host_identity WHERE host_id = '{MX1}'")
        for args in (("knot", "zone-begin", f"{DOMAIN}."),
                     ("knot", "zone-unset", f"{DOMAIN}.", owner, "TLSA", "3", "1", "1", nxt),
                     ("knot", "zone-commit", f"{DOMAIN}."),
                     ("unbound", "flush_zone", f"{DOMAIN}.")):
            subprocess.run([outtest.DNSTEST_PATH, "control", DNS.dir, *args], check=True,
                           capture_output=True, timeout=60)
        wait_for(lambda: len(DNS.query(owner, 52)[1]) == 1, 20, interval=0.5,
                 what="one TLSA left in the resolver's answers")
        report = self.check()
        codes = {c for c, _ in self.findings(report)}
        self.assertEqual(codes, {"tlsa-next-missing"}, json.dumps(report, indent=1))
        fixed = self.push()
        self.assertEqual([(r["owner"], r["type"], r["rdata"].upper()) for r in fixed["added"]],
                         [(owner, "TLSA", f"3 1 1 {nxt}".upper())])
        self.assertEqual(fixed["deleted"], [])
        self.flush_resolver()
        self.assertEqual(self.findings(self.check()), [])

        # A policy change: new id, on both mxd, stale in DNS until pushed.
        old_id = self.policy_id()
        self.dns("set", DOMAIN, "--publish", "--ttl", "300", "--max-age", "86400")
        new_id = self.policy_id()
        self.assertNotEqual(new_id, old_id)
        for addr in self.addrs:
            wait_for(lambda: "max_age: 86400" in (self.served_policy(addr) or ""), 20,
                     interval=0.25, what=f"the new policy served by {addr}")
        codes = {c for c, _ in self.findings(self.check())}
        self.assertIn("sts-id-stale", codes)
        changed = self.push()
        self.assertEqual([(r["owner"], r["type"]) for r in changed["added"]],
                         [(f"_mta-sts.{DOMAIN}.", "TXT")])
        self.assertEqual(len(changed["deleted"]), 1)
        self.assertIn(new_id, changed["added"][0]["rdata"])
        self.flush_resolver()
        self.assertEqual(self.findings(self.check()), [])

    def test_push_refused_while_the_records_have_an_error(self):
        soa = DNS.query(f"{DOMAIN}.", 6)[1]
        # An alias no certificate covers: the policy would fail senders.
        self.dns("set", DOMAIN, "--publish", "--ttl", "300", "--alias", f"mail.{DOMAIN}={MX1}")
        r = self.dns("push", DOMAIN, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # the operator's to fix
        self.assertIn("FAILED_PRECONDITION", r.stderr)
        self.assertIn("nothing sent", r.stderr)
        self.assertIn("cert-name-missing", r.stderr)
        self.assertEqual(DNS.query(f"{DOMAIN}.", 6)[1], soa)
        self.assertEqual(self.scalar("SELECT count(*) FROM dns_pushed"), "0")

    def test_wrong_tsig_secret_is_refused_and_changes_nothing(self):
        soa = DNS.query(f"{DOMAIN}.", 6)[1]
        self.assertEqual(len(soa), 1)
        secret = os.path.join(self.wd, "tsig.key")
        with open(secret, "w") as f:
            f.write("c2VjcmV0LXRoYXQtaXMtd3Jvbmc=\n")
        self.c.stop()
        self.c.start()
        r = self.dns("push", DOMAIN, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("PERMISSION_DENIED", r.stderr)
        self.assertIn("TSIG", r.stderr.upper())
        self.assertNotIn("c2VjcmV0", r.stderr)
        self.assertEqual(DNS.query(f"{DOMAIN}.", 6)[1], soa)  # serial unchanged
        self.assertEqual(self.scalar("SELECT count(*) FROM dns_pushed"), "0")


if __name__ == "__main__":
    cptest.main()
