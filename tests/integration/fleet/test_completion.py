#!/usr/bin/python3
"""Bash completion of mailctl (cli/mailctl.bash-completion, issue 13 item
5): what an operator gets on TAB, computed by bash itself with the script
sourced: commands, subcommands, options and their fixed values, and host
names from a running controld (nothing, quietly, when none answers)."""

import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import MX1, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

SCRIPT = os.path.join(cptest.SRC, "cli", "mailctl.bash-completion")


def complete(words, env=None, timeout=20):
    """COMPREPLY of _mailctl for the command line `words` (the cursor at
    the end of the last word; "" to complete a new word), sorted."""
    line = " ".join(shlex.quote(w) for w in words)
    script = (f"source {shlex.quote(SCRIPT)}\n"
              f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
              "_mailctl\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, timeout=timeout, env=env or cptest.child_env())
    if p.returncode != 0 or p.stderr:
        raise AssertionError(f"bash completion of {words}: {p.returncode} {p.stderr}")
    return sorted(w for w in p.stdout.splitlines() if w)


class CompletionWithoutControldTest(cptest.unittest.TestCase):

    def test_commands(self):
        self.assertEqual(complete(["mailctl", "re"]), ["reports"])
        self.assertEqual(complete(["mailctl", "po"]), ["policy"])
        self.assertIn("queue", complete(["mailctl", ""]))
        self.assertIn("hosts", complete(["mailctl", "--json", ""]))
        self.assertIn("hosts", complete(["mailctl", "--socket", "/x.sock", ""]))

    def test_subcommands(self):
        self.assertEqual(complete(["mailctl", "queue", ""]), ["drop", "list", "retry"])
        self.assertEqual(complete(["mailctl", "domain", "r"]), ["recipients", "rm"])
        self.assertEqual(complete(["mailctl", "pki", ""]), ["init", "issue", "revoke", "show"])
        self.assertEqual(complete(["mailctl", "domain", "recipients", "example.org", "mode", ""]),
                         ["any", "list", "verify"])
        self.assertEqual(complete(["mailctl", "policy", "set", "bank.example", "dane"]),
                         ["dane", "dane-only"])

    def test_options_and_their_values(self):
        self.assertIn("--json", complete(["mailctl", "hosts", "--"]))
        self.assertIn("--stale-after", complete(["mailctl", "hosts", "--"]))
        self.assertEqual(complete(["mailctl", "queue", "list", "--"]), ["--host", "--json"])
        self.assertEqual(complete(["mailctl", "tls", "inbound", "--by", ""]),
                         ["host", "remote-ip", "sender-domain", "stage"])
        self.assertIn("--day", complete(["mailctl", "reports", "preview", "--d"]))
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertIn(today, complete(["mailctl", "reports", "send-now", "--day", ""]))
        self.assertEqual(complete(["mailctl", "dns", "records", "ex.org", "--format", ""]),
                         ["json", "zone"])
        self.assertIn("--since", complete(["mailctl", "outcomes", "--"]))

    def test_host_names_quietly_nothing_without_controld(self):
        env = cptest.child_env({"MAILCTL_SOCKET": "/nonexistent/controld.sock"})
        t0 = time.monotonic()
        self.assertEqual(complete([cptest.MAILCTL, "outcomes", "--host", ""], env=env), [])
        self.assertEqual(complete([cptest.MAILCTL, "tls", "rollover", ""], env=env), [])
        self.assertEqual(complete([cptest.MAILCTL, "dns", "show", ""], env=env), [])
        self.assertLess(time.monotonic() - t0, 10)


class CompletionWithControldTest(cptest.FleetTestCase):

    def test_host_names_from_controld(self):
        c, m, sink = self.fleet()
        wait_for(lambda: MX1 in self.mailctl(c, "hosts", check=False).stdout, 20,
                 interval=0.5, what="mx1 in mailctl hosts")
        # The mailctl on the line, with the connection options on the line.
        words = [cptest.MAILCTL, "--socket", c.socket, "queue", "list", "--host", ""]
        self.assertEqual(complete(words), [MX1])
        self.assertEqual(complete([cptest.MAILCTL, "--socket", c.socket, "tls", "rollover",
                                   "mx"]), [MX1])
        # Or from the environment.
        env = cptest.child_env({"MAILCTL_SOCKET": c.socket})
        self.assertEqual(complete([cptest.MAILCTL, "outcomes", "--host", ""], env=env), [MX1])
        self.mailctl(c, "domain", "add", "example.org", "smtp:127.0.0.1:2525")
        self.assertEqual(complete([cptest.MAILCTL, "dns", "show", ""], env=env), ["example.org"])


if __name__ == "__main__":
    cptest.main()
