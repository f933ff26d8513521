#!/usr/bin/python3
"""Issue 9, item 8: one mxd process cannot read another's memory.

Every mxd process runs as the same configured user. A process that another
of that uid may ptrace (a "dumpable" one) gives up its memory to it through
/proc/PID/mem: before the fix an SMTP worker taken over by a hostile client
could read the control-plane private key out of the uploader and the SASL
passwords out of the delivery process. Now no mxd process is dumpable
(docs/mxd.md, "Processes"), unless `core_dumps = true` asks for it.

Root is needed (like ../test_privs.py): mxd must drop from root to the run
user, and the probe runs as that same user."""

import json
import os
import pwd
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import cptest  # noqa: E402
import mxtest  # noqa: E402
from cptest import setUpModule, tearDownModule  # noqa: E402,F401

# Run as the mxd user: read the first readable mapping of each pid through
# /proc/PID/mem, as a hijacked worker would. Prints {pid: result}.
PROBE = r"""
import errno, json, os, sys
out = {}
for pid in sys.argv[1:]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read().splitlines()
    except OSError as e:
        maps = []
    addr = None
    for line in maps:
        rng, perms = line.split()[:2]
        if perms.startswith("r"):
            addr = int(rng.split("-")[0], 16)
            break
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError as e:
        out[pid] = "open: " + errno.errorcode.get(e.errno, str(e.errno))
        continue
    try:
        if addr is None:
            out[pid] = "opened (maps unreadable)"
        else:
            data = os.pread(fd, 64, addr)
            out[pid] = f"read {len(data)} bytes at {addr:#x}"
    except OSError as e:
        out[pid] = "read: " + errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)
print(json.dumps(out))
"""

ROLES = ("mxd-uploader", "mxd-qmgr", "mxd-smtpd")
# Delivery agents come and go with the mail (forked by mxd-qmgr on demand).
AGENT = "mxd-smtp"
# The MTA-STS policy host runs when its default listener (port 443 of the
# SMTP address) could be bound; when it runs, the probe of every pid covers it.
HTTPS = "mxd-https"


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "(gone)"


class ProcessSecretsTest(cptest.FleetTestCase):
    def setUp(self):
        if not mxtest.IS_ROOT:
            self.skipTest("needs root: mxd must drop to its user and the probe run as it")
        super().setUp()

    def start(self, **over):
        c, m, s = self.fleet(**over)
        # The uploader has a key and uses it: the host is enrolled.
        m.wait_event("controld_connected", timeout=30)
        # controld's first snapshot makes mxd reload (new workers and a new
        # delivery process): probe the processes that run after it.
        m.wait_event("reloaded", timeout=30)
        cptest.quick_session(m.host, m.port, "probe.test")
        mxtest.wait_for(lambda: self.settled(m), 30, interval=0.2,
                        what="one uploader, one scheduler and one worker")
        return m

    def settled(self, m):
        names = sorted(comm(p) for p in m.pids() if p != m.proc.pid)
        return [n for n in names if n not in (AGENT, HTTPS)] == sorted(ROLES)

    def roles(self, m):
        """{role name: [pids]} of mxd's processes, by the name mxd gives them."""
        out = {}
        for pid in m.pids():
            if pid == m.proc.pid:
                out.setdefault("master", []).append(pid)
            else:
                out.setdefault(comm(pid), []).append(pid)
        missing = [r for r in ROLES if r not in out]
        self.assertFalse(missing, f"mxd's processes are {out}: no process named {missing}")
        return out

    def probe(self, pids):
        """What the mxd user gets reading each pid's memory."""
        pw = pwd.getpwnam(mxtest.RUN_USER)
        p = cptest.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                        "--clear-groups", "--inh-caps=-all", mxtest.PYTHON, "-c", PROBE,
                        *map(str, pids)], timeout=30)
        return {int(k): v for k, v in json.loads(p.stdout).items()}

    def test_uploader_and_delivery_memory_unreadable_by_the_mxd_user(self):
        m = self.start()
        roles = self.roles(m)
        pids = [p for r in ("mxd-uploader", "mxd-qmgr", AGENT) for p in roles.get(r, [])]
        got = self.probe(pids)
        for pid in pids:
            with self.subTest(role=comm(pid), pid=pid):
                self.assertRegex(got[pid], r"^open: (EACCES|EPERM)$",
                                 f"{comm(pid)}[{pid}]: the mxd user's attempt to read "
                                 f"its memory gave: {got[pid]}")

    def test_no_mxd_process_is_readable_by_the_mxd_user(self):
        # The workers hold the SMTP TLS keys and other clients' mail, the
        # master every key: none of them is left open either.
        m = self.start()
        got = self.probe(m.pids())
        readable = {f"{comm(p)}[{p}]": r for p, r in got.items()
                    if not r.startswith("open: ")}
        self.assertEqual(readable, {}, "mxd processes whose memory the mxd user can read")

    def test_core_dumps_switch_makes_children_dumpable(self):
        # The debugging switch exists and is the only way back: with it the
        # children (capabilities dropped) are readable again.
        m = self.start(core_dumps=True)
        roles = self.roles(m)
        got = self.probe(roles["mxd-uploader"])
        self.assertRegex(got[roles["mxd-uploader"][0]], r"^read \d+ bytes",
                         "core_dumps = true did not make the uploader dumpable")


if __name__ == "__main__":
    cptest.main()
