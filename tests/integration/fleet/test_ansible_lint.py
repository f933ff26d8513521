#!/usr/bin/env python3
"""ansible/ as an operator receives it: the playbook parses, ansible-lint's
production profile has nothing to say, and every role variable is in its
role's README with its default."""

import os
import re
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("MXFLEET_SOURCE_DIR",
                     os.path.abspath(os.path.join(HERE, "..", "..", "..")))
ANSIBLE_DIR = os.path.join(SRC, "ansible")
ROLES = ["fleet_ca", "postgresql", "controld", "mxd", "mxfleet_common"]


def run(argv, timeout=240):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", NO_COLOR="1", PY_COLORS="0",
               ANSIBLE_LOCAL_TEMP="/tmp/.ansible-lint-test-tmp")
    return subprocess.run(argv, cwd=ANSIBLE_DIR, capture_output=True, text=True,
                          timeout=timeout, env=env)


class AnsibleLintTest(unittest.TestCase):
    def test_site_yml_passes_syntax_check(self):
        if not shutil.which("ansible-playbook"):
            self.skipTest("ansible-playbook not installed (scripts/deps installs ansible)")
        p = run(["ansible-playbook", "-i", "inventory.example", "--syntax-check", "site.yml"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_ansible_lint_production_profile_is_clean(self):
        if not shutil.which("ansible-lint"):
            self.skipTest("ansible-lint not installed (scripts/deps installs it)")
        p = run(["ansible-lint", "--profile", "production", "--nocolor", "-p"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("production", p.stdout + p.stderr)

    def test_every_role_default_is_documented_in_the_roles_readme(self):
        for role in ROLES:
            with self.subTest(role=role):
                rdir = os.path.join(ANSIBLE_DIR, "roles", role)
                with open(os.path.join(rdir, "defaults", "main.yml")) as f:
                    names = re.findall(r"^([a-z][a-z0-9_]*):", f.read(), re.M)
                self.assertTrue(names, f"{role} has no defaults")
                with open(os.path.join(rdir, "README.md")) as f:
                    readme = f.read()
                # A row of the variables table: | `name` ... | default | meaning |
                missing = [n for n in names
                           if not re.search(r"^\|[^|\n]*`" + n + r"`[^|\n]*\|[^|\n]+\|", readme, re.M)]
                self.assertEqual(missing, [], f"{role}/README.md lacks a table row for these")

    def test_no_task_holding_a_host_key_may_log_it(self):
        with open(os.path.join(ANSIBLE_DIR, "roles", "fleet_ca", "tasks", "issue.yml")) as f:
            tasks = f.read().split("\n- name: ")
        holders = [t for t in tasks if ".key" in t and ("slurp" in t or "stdin" in t)]
        self.assertEqual(len(holders), 2, "expected the slurp and the write of the key")
        for t in holders:
            self.assertIn("no_log: true", t, t.splitlines()[0])
            self.assertNotIn("ansible.builtin.copy", t, "copy writes content to a local temp file")
        with open(os.path.join(ANSIBLE_DIR, "ansible.cfg")) as f:
            self.assertRegex(f.read(), r"(?m)^pipelining\s*=\s*True")


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + [a for a in sys.argv[1:] if a != "-v"])
