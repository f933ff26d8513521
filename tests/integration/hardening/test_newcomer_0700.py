"""A newcomer's first commands from a clone under root's home (mode 0700).

A fresh Debian machine's root clones into /root, which others may not enter:
mxd (dropped to nobody), Postfix's daemons and PostgreSQL (as postgres) could
not reach directories below the clone, so `make demo` died in initdb and the
benchmark smoke tests could not start mxd or Postfix. These tests lay a copy of
the scripts the README's commands run in a 0700 directory and run them with
this build's binaries.
"""

import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import mxtest  # noqa: E402
from mxtest import IS_ROOT, alive, common_free_port, pick_host  # noqa: E402

SRC = os.environ.get("MXFLEET_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..", "..")))
BIN = os.path.dirname(os.path.abspath(mxtest.MXD_BIN))
CONTROLD_BIN = os.environ.get("CONTROLD_BIN", os.path.join(BIN, "controld"))
MAILCTL = os.environ.get("MAILCTL", os.path.join(BIN, "mailctl"))
WATCHDOG = mxtest.Watchdog("NEWCOMER_RUN")




def private_clone():
    """A 0700 directory (as /root is) holding what the README's commands use:
    scripts/, schema/ and tests/. Returns (top, repo)."""
    top = tempfile.mkdtemp(prefix="newcomer-")
    os.chmod(top, 0o700)
    WATCHDOG.watch_dir(top)
    repo = os.path.join(top, "mxfleet")
    os.mkdir(repo)
    for d in ("scripts", "schema", "tests"):
        shutil.copytree(os.path.join(SRC, d), os.path.join(repo, d),
                        ignore=shutil.ignore_patterns("__pycache__"))
    return top, repo


class NewcomerTest(unittest.TestCase):
    def setUp(self):
        if not IS_ROOT:
            self.fail("this test reproduces root's first commands: run it as root")
        WATCHDOG.mark_self()
        self.top, self.repo = private_clone()
        self.addCleanup(shutil.rmtree, self.top, True)

    def fleet_env(self):
        env = dict(os.environ)
        mx1, mx2 = pick_host(), pick_host()
        # One SMTP port for both, as port 25 is: `dns check` probes every MX
        # on controld's one dns.smtp_port.
        port = common_free_port([mx1, mx2])
        env.update(MXD_BIN=mxtest.MXD_BIN, CONTROLD_BIN=CONTROLD_BIN, MAILCTL_BIN=MAILCTL,
                   MX1_HOST=mx1, MX1_PORT=str(port), MX2_HOST=mx2, MX2_PORT=str(port))
        return env

    def test_demo_runs_from_a_clone_under_a_0700_directory(self):
        link = os.path.join(self.repo, "demo")
        env = self.fleet_env()

        def down():
            target = os.path.realpath(link)
            subprocess.run([os.path.join(self.repo, "scripts", "fleet"), "down", target],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120, env=env)
            if target.startswith("/tmp/mxfleet-demo."):
                shutil.rmtree(target, ignore_errors=True)
        self.addCleanup(down)
        p = subprocess.run([os.path.join(self.repo, "scripts", "demo")], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300, env=env)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, f"make demo's script failed:\n{out[-4000:]}")
        # The fleet lives in a 0755 directory of its own, linked from the clone.
        self.assertTrue(os.path.islink(link), out[-2000:])
        target = os.path.realpath(link)
        WATCHDOG.watch_dir(target)
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o755)
        # What the demo promises a newcomer: the three messages at the next
        # hop, and their sessions recorded in PostgreSQL through controld.
        self.assertEqual(len(os.listdir(os.path.join(target, "maildir", "new"))), 3)
        self.assertRegex(out, r"== \$MAILCTL hosts")
        self.assertTrue(re.search(r"^mx1\.fleet\.test\s", out, re.M), out[-3000:])
        self.assertIn("demo: the fleet is still running", out)
        # ... and a recipient the domain does not have, refused at RCPT.
        self.assertIn("550 5.1.1 <nobody@example.test>: Recipient address rejected", out)
        self.check_demo_dns(target, out, env)

    def check_demo_dns(self, target, out, env):
        """The demo's DNS part: it hosts dyn.test, whose zone the fleet's own
        DNS serves signed and validates; both mxd serve the MTA-STS host with
        a certificate the demo CA verifies; `fleet down` stops the DNS too."""
        for cmd in ("dns set dyn.test --publish", "dns records dyn.test", "dns push dyn.test",
                    "dns check dyn.test"):
            self.assertIn(f"$ mailctl {cmd}\n", out)
        # The records controld generates from what both mxd report, nothing to fix.
        for rr in ("dyn.test. 3600 IN MX 10 mx1.dyn.test.", "dyn.test. 3600 IN MX 10 mx2.dyn.test.",
                   "mta-sts.dyn.test. 3600 IN A " + env["MX1_HOST"],
                   "mx2.dyn.test. 3600 IN A " + env["MX2_HOST"]):
            self.assertIn(rr + "\n", out)
        self.assertNotIn("; error ", out)
        # Pushed to the zone's primary once; the second push finds nothing to
        # send; the live DNS, STARTTLS and policy then agree with controld.
        self.assertRegex(out, r"\$ mailctl dns push dyn\.test\ndns push dyn\.test: \d+ record\(s\) "
                         r"added, 0 deleted\n\+ _25\._tcp\.mx1\.dyn\.test\. 3600 IN TLSA 3 1 1 ")
        self.assertIn("$ mailctl dns push dyn.test\ndns push dyn.test: nothing sent", out)
        self.assertIn("$ mailctl dns check dyn.test\ndns check dyn.test: 0 error(s), 0 warning(s)", out)
        fenv = {}
        with open(os.path.join(target, "fleet.env")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                fenv[k] = v
        self.assertEqual(fenv["DNS_DOMAIN"], "dyn.test")
        path = os.path.join(self.repo, "tests", "tools", "dnstest")
        spec = importlib.util.spec_from_loader(
            "dnstest", importlib.machinery.SourceFileLoader("dnstest", path))
        dnstest = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(dnstest)
        addr, _, port = fenv["DNS_RESOLVER"].rpartition(":")
        r = dnstest.dns_query(addr, int(port), "dyn.test.", 6, timeout=5)
        self.assertIsNotNone(r, f"no answer from the resolver {fenv['DNS_RESOLVER']}")
        self.assertEqual(r[0], 0)
        self.assertTrue(r[1] & dnstest.FLAG_AD, "dyn.test. is not validated as secure")
        # The hosts' addresses have reverse DNS (a PTR) for the check to find.
        for host in (env["MX1_HOST"], env["MX2_HOST"]):
            rev = ".".join(reversed(host.split("."))) + ".in-addr.arpa."
            r = dnstest.dns_query(addr, int(port), rev, 12, timeout=5)
            self.assertTrue(r and r[0] == 0 and any(a[0] == 12 for a in r[2]), f"no PTR {rev}")
        # Each mxd serves the policy the demo printed, to a client that
        # verifies the certificate for mta-sts.dyn.test with the demo CA.
        ctx = ssl.create_default_context(cafile=fenv["DEMO_CA"])
        for host in (fenv["MX1_HOST"], fenv["MX2_HOST"]):
            answer = b""
            with socket.create_connection((host, int(fenv["MTA_STS_PORT"])), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="mta-sts.dyn.test") as s:
                    s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
                              b"Host: mta-sts.dyn.test\r\n\r\n")
                    while len(answer) < 65536:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
            self.assertRegex(answer, rb"^HTTP/1\.1 200 ")
            self.assertIn(b"\r\n\r\nversion: STSv1\r\nmode: enforce\r\nmx: mx1.dyn.test\r\n"
                          b"mx: mx2.dyn.test\r\n", answer)
        self.assertIn("version: STSv1\nmode: enforce\nmx: mx1.dyn.test\nmx: mx2.dyn.test\n", out)
        with open(os.path.join(target, "dns", "state.json")) as f:
            st = json.load(f)
        pids = [st[k] for k in ("nsd_pid", "knot_pid", "unbound_pid")]
        with open(os.path.join(target, "pg", "data", "postmaster.pid")) as f:
            pids.append(int(f.readline()))
        # As the demo says: `scripts/fleet down demo`, through the link in the
        # clone (which postgres may not enter), stops everything.
        p = subprocess.run([os.path.join(self.repo, "scripts", "fleet"), "down", "demo"],
                           cwd=self.repo, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=120, env=env)
        self.assertIn("fleet: stopped DNS (nsd, knot, unbound)", p.stdout)
        for pid in pids:
            self.assertFalse(alive(pid), f"{pid} (DNS or PostgreSQL) runs after fleet down")

    def test_fleet_refuses_a_directory_others_cannot_reach_before_starting_anything(self):
        inside = os.path.join(self.top, "fleet")
        p = subprocess.run([os.path.join(self.repo, "scripts", "fleet"), "up", inside],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120, env=self.fleet_env())
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{self.top} is mode 700", p.stderr)
        # Nothing was started: no next hop, no PostgreSQL cluster.
        self.assertEqual(sorted(os.listdir(inside)), [])

    def test_benchmarks_put_their_work_directory_where_dropped_daemons_can_reach(self):
        sys.path.insert(0, os.path.join(self.repo, "tests", "bench"))
        import benchdir
        bin_dir = os.path.join(self.repo, "build", "bin")
        self.assertEqual(benchdir.default_work_dir(bin_dir), "/var/tmp")
        err = benchdir.check_work_dir(os.path.join(self.repo, "build"))
        self.assertIn(f"{self.top} is mode 700", err)
        # An explicit --work-dir there is refused before anything starts.
        for script in ("smtp_accept", "ingest"):
            p = subprocess.run(
                ["/usr/bin/python3", os.path.join(self.repo, "tests", "bench", script),
                 "--quick", "--bin-dir", BIN, "--work-dir", os.path.join(self.repo, "build")],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(f"{self.top} is mode 700", p.stderr)
        # A clone that others may enter keeps the spools on the build's disk.
        open_top = tempfile.mkdtemp(prefix="newcomer-open-")
        self.addCleanup(shutil.rmtree, open_top, True)
        os.chmod(open_top, 0o755)
        self.assertEqual(benchdir.default_work_dir(os.path.join(open_top, "build", "bin")),
                         os.path.join(open_top, "build"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
