#!/usr/bin/env python3
"""The fleet harness itself (fleetns.py): five hosts reachable over SSH by
ansible from the controller namespace, each with its own /etc, and nothing
left behind."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleetns  # noqa: E402

NAMES = [f"h{i}.fleet.test" for i in range(1, 6)]


@unittest.skipIf(fleetns.missing_tools(), f"fleetns needs {', '.join(fleetns.missing_tools())}")
class FleetNsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = fleetns.Fleet(NAMES)

    @classmethod
    def tearDownClass(cls):
        cls.fleet.destroy()

    def test_ansible_ping_reaches_five_hosts_over_ssh(self):
        if not shutil.which("ansible"):
            self.skipTest("ansible not installed (scripts/deps installs it)")
        inv = os.path.join(self.fleet.dir, "inventory")
        with open(inv, "w") as f:
            f.write(self.fleet.inventory({"fleet": NAMES}))
        p = self.fleet.controller_run(["ansible", "all", "-i", inv, "-m", "ansible.builtin.ping",
                                       "-f", "5"], check=False, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for n in NAMES:
            self.assertRegex(p.stdout, n.replace(".", r"\.") + r" \| SUCCESS")

    def test_a_session_lands_in_the_hosts_namespaces(self):
        h = self.fleet.hosts[2]
        p = self.fleet.ssh(h, "hostname; ip -o -4 addr show dev eth0")
        self.assertEqual(p.stdout.splitlines()[0], h.name)
        self.assertIn(f"inet {h.addr}/24", p.stdout)

    def test_a_file_under_etc_is_seen_only_on_its_host(self):
        path = "/etc/fleetns-test-marker"
        self.fleet.ssh(self.fleet.hosts[0], f"echo only-h1 > {path}")
        self.assertEqual(self.fleet.hosts[0].read(path), "only-h1\n")
        for h in self.fleet.hosts[1:]:
            p = self.fleet.ssh(h, f"test -e {path}", check=False)
            self.assertNotEqual(p.returncode, 0, f"{h.name} sees h1's {path}")
        self.assertFalse(os.path.exists(path), "the real machine sees a host's /etc")

    def test_no_fleet_address_exists_in_the_root_namespace(self):
        fleet = {fleetns.CONTROLLER_ADDR} | {h.addr for h in self.fleet.hosts}
        self.assertEqual(fleet & set(self.fleet.root_addresses()), set())

    def test_destroy_leaves_no_namespace_no_process_no_directory(self):
        f = fleetns.Fleet(["x1.fleet.test"])
        holder, d = f.hosts[0].holder.pid, f.dir
        namespaces = [f.hosts[0].netns, f.controller, f.switch]
        f.destroy()
        left = [ns for ns in fleetns._netns_list() if ns in namespaces]
        self.assertEqual(left, [])
        self.assertFalse(os.path.exists(f"/proc/{holder}"))
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + [a for a in sys.argv[1:] if a != "-v"])
