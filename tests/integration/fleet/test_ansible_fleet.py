#!/usr/bin/env python3
"""A fleet stood up by ansible/site.yml from the packages `make deb` built,
over SSH, on five hosts that are network namespaces (fleetns.py):

  ca.fleet.test    fleet CA; also the senders (swaks) and the next hop (sink)
  pg1.fleet.test   PostgreSQL primary, controld
  pg2.fleet.test   PostgreSQL standby (streaming replication), controld
  mx1.fleet.test   mxd
  mx2.fleet.test   mxd

Mail sent to both MX hosts reaches the next hop, the outcomes of both hosts
are in PostgreSQL (and on the standby), and a second run of the playbook
changes nothing.

Environment: MXFLEET_DEB_DIR holds mxfleet-{mxd,controld,mailctl}_*.deb
built from this tree; without it the test skips (`make check-fleet` builds
the packages and sets it). MXTEST_KEEP=1 keeps the work dir (/mnt/fleetns-*).
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleetns  # noqa: E402

SRC = os.environ.get("MXFLEET_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..", "..")))
DEB_DIR = os.environ.get("MXFLEET_DEB_DIR")
ANSIBLE_DIR = os.path.join(SRC, "ansible")
SINK = os.path.join(SRC, "tests", "tools", "sink.py")
PACKAGES = ["mxfleet-mxd", "mxfleet-controld", "mxfleet-mailctl"]

CA, PG1, PG2, MX1, MX2 = (f"{n}.fleet.test" for n in ("ca", "pg1", "pg2", "mx1", "mx2"))
GROUPS = {
    "fleet_ca": [CA],
    "postgresql_primary": [PG1],
    "postgresql_standby": [PG2],
    "controld": [PG1, PG2],
    "mxd": [MX1, MX2],
}
DOMAIN = "fleet.example"
SINK_PORT = 2525
PLAYBOOK_TIMEOUT = 1500


def skip_reason():
    if fleetns.missing_tools():
        return "fleetns needs " + ", ".join(fleetns.missing_tools())
    if "build-asan" in os.environ.get("MXD_BIN", ""):
        return ("the ASan build: the packages come from the plain build (make deb), "
                "where this test runs")
    for tool in ("ansible-playbook", "swaks", "pg_createcluster"):
        if not shutil.which(tool):
            return f"{tool} not installed (scripts/deps)"
    if not DEB_DIR:
        return ("MXFLEET_DEB_DIR is not set: the full fleet test provisions from the "
                "packages of this tree and runs under `make check-fleet`")
    missing = [p for p in PACKAGES if not glob.glob(os.path.join(DEB_DIR, p + "_*.deb"))]
    if missing:
        return (f"no {', '.join(missing)} package in {DEB_DIR}: run `make deb` first "
                "(the fleet is provisioned from the packages)")
    return None


def recap(output):
    """PLAY RECAP counters per host: {host: {"ok": n, "changed": n, ...}}."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


@unittest.skipIf(skip_reason(), skip_reason())
class AnsibleFleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = fleetns.Fleet([CA, PG1, PG2, MX1, MX2])
        try:
            cls._provision()
        except BaseException:
            cls._dump_logs()
            cls.fleet.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.destroy()

    @classmethod
    def _provision(cls):
        f = cls.fleet
        ca = f.by_name[CA]
        cls.inventory = os.path.join(f.dir, "inventory")
        with open(cls.inventory, "w") as fh:
            fh.write(f.inventory(GROUPS))
        cls.vars = os.path.join(f.dir, "vars.json")
        with open(cls.vars, "w") as fh:
            json.dump({
                "mxfleet_deb_dir": DEB_DIR,
                "mxfleet_manage_hosts_file": True,
                "postgresql_mxfleet_password": "fleet-test-db",
                "postgresql_replication_password": "fleet-test-repl",
                "mxd_domains": [{"name": DOMAIN, "next_hop": f"smtp:{ca.addr}:{SINK_PORT}",
                                 "recipient_check": "any"}],
                "mxd_delivery": {"retry_min": 1, "retry_max": 2},
                "mxd_mta_sts_listen": [],
                "mxd_control_heartbeat_interval": 1,
            }, fh)
        # The next hop, on the CA host.
        cls.maildir = "/srv/sink"
        ca.run(["mkdir", "-p", cls.maildir])
        ca.sh(f"nohup /usr/bin/python3 {SINK} --maildir {cls.maildir} --pidfile /run/sink.pid "
              f"--listen {ca.addr}:{SINK_PORT} >/var/log/sink.log 2>&1 &")
        cls.first = cls.playbook()

    runs = 0

    @classmethod
    def playbook(cls):
        """Run site.yml; its output (also in the work dir's playbook-N.log)."""
        cls.runs += 1
        log = os.path.join(cls.fleet.dir, f"playbook-{cls.runs}.log")
        with open(log, "w") as out:
            try:
                rc = cls.fleet.controller_run(
                    ["ansible-playbook", "-i", cls.inventory, "-e", "@" + cls.vars, "site.yml"],
                    check=False, timeout=PLAYBOOK_TIMEOUT, cwd=ANSIBLE_DIR,
                    capture_output=False, stdout=out, stderr=subprocess.STDOUT).returncode
            except subprocess.TimeoutExpired:
                rc = "(killed after %d s)" % PLAYBOOK_TIMEOUT
        with open(log) as f:
            text = f.read()
        if rc != 0:
            raise AssertionError(f"ansible-playbook exited {rc}:\n{text[-12000:]}")
        return text

    @classmethod
    def _dump_logs(cls):
        for h in cls.fleet.hosts:
            if h.holder is None or h.holder.poll() is not None:
                continue
            p = h.sh("tail -n 30 /var/log/mxfleet/*.log /var/log/postgresql/*.log 2>/dev/null",
                     check=False)
            if p.stdout.strip():
                print(f"---- {h.name}\n{p.stdout}", file=sys.stderr)

    # -- helpers

    def psql(self, host, sql):
        p = self.fleet.by_name[host].run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-d", "mxfleet", "-c", sql])
        return [line.split("|") for line in p.stdout.splitlines() if line]

    def wait(self, what, fn, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.5)
        self.fail(f"timed out waiting for {what} (last: {last!r})")

    def sink_messages(self):
        p = self.fleet.by_name[CA].sh(f"cat {self.maildir}/new/* 2>/dev/null", check=False)
        return p.stdout

    # -- tests

    def test_1_mail_through_both_mx_hosts_reaches_the_next_hop_and_postgresql(self):
        ca = self.fleet.by_name[CA]
        for mx in (MX1, MX2):
            p = ca.run(["swaks", "--server", f"{mx}:25", "--from", "sender@origin.example",
                        "--to", f"user@{DOMAIN}", "--helo", "ca.fleet.test",
                        "--header", f"Subject: through {mx}", "--timeout", "30"],
                       check=False, timeout=60)
            self.assertEqual(p.returncode, 0, f"swaks to {mx}:\n{p.stdout}{p.stderr}")
        got = self.wait("both messages at the next hop",
                        lambda: all(f"Subject: through {mx}" in self.sink_messages()
                                    for mx in (MX1, MX2)))
        self.assertTrue(got)
        for mx in (MX1, MX2):
            rows = self.wait(f"{mx}'s inbound outcome in PostgreSQL", lambda mx=mx: self.psql(
                PG1, f"SELECT count(*) FROM outcomes WHERE host_id = '{mx}' AND direction = 1 "
                "HAVING count(*) > 0"))
            self.assertGreaterEqual(int(rows[0][0]), 1)
        # The standby replays them.
        rows = self.wait("the outcomes on the standby", lambda: self.psql(
            PG2, "SELECT count(DISTINCT host_id) FROM outcomes HAVING count(DISTINCT host_id) = 2"))
        self.assertEqual(rows[0][0], "2")

    def test_2_both_mx_hosts_registered_with_controld(self):
        rows = self.psql(PG1, "SELECT host_id FROM hosts ORDER BY host_id")
        self.assertEqual([r[0] for r in rows], [MX1, MX2])

    def test_3_the_standby_streams_from_the_primary(self):
        self.assertEqual(self.psql(PG2, "SELECT pg_is_in_recovery()"), [["t"]])
        rows = self.psql(PG1, "SELECT client_addr, state FROM pg_stat_replication")
        self.assertEqual(rows, [[self.fleet.by_name[PG2].addr, "streaming"]])

    def test_4_no_private_key_on_the_controller(self):
        # The controller's files are the work dir's controller-home and
        # ansible-local; no PEM key may be there.
        found = []
        for sub in ("controller-home", "ansible-local"):
            for root, _, files in os.walk(os.path.join(self.fleet.dir, sub)):
                for name in files:
                    with open(os.path.join(root, name), "rb") as fh:
                        if b"PRIVATE KEY-----" in fh.read():
                            found.append(os.path.join(root, name))
        self.assertEqual(found, [])

    def test_5_a_second_run_changes_nothing(self):
        counters = recap(self.playbook())
        self.assertEqual(sorted(counters), sorted([CA, PG1, PG2, MX1, MX2]))
        changed = {h: c["changed"] for h, c in counters.items() if c["changed"]}
        self.assertEqual(changed, {}, "hosts with changed tasks on the second run")
        self.assertTrue(all(c["failed"] == 0 and c["unreachable"] == 0 for c in counters.values()))


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + [a for a in sys.argv[1:] if a != "-v"])
