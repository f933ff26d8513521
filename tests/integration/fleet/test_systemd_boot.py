#!/usr/bin/python3
"""mxd and controld under a real systemd as PID 1 (issue 13, item 2).

test_units.py checks the unit files with systemd-analyze and the daemons'
system calls with strace; this test runs them. A throwaway copy of this
machine (an overlay of / with a tmpfs on top, so nothing reaches the real
system) boots with systemd-nspawn --boot. The packages built by CPack are
installed in it with dpkg as an operator would, and the test then does what
an operator does with systemctl and looks at what they would see:

  * the postinst scripts enable both units and start them: mxd runs its
    default configuration (loopback only, accepts nothing) and is active,
    which with Type=notify means it sent READY=1;
  * configured for the fleet (a PostgreSQL and a next hop outside the
    container, certificates from `mailctl pki`), a restart makes mail flow
    to the next hop and the outcome reach PostgreSQL through controld;
  * the sandbox holds: each daemon runs as its user with the unit's
    capability bounding set, no_new_privs, a seccomp filter and a read-only
    /usr;
  * `systemctl reload` reloads; a broken file keeps the running daemon and
    its old settings, and a restart with it fails in ExecStartPre with the
    parser's message in the journal;
  * a crashed mxd is restarted by Restart=on-failure;
  * `systemctl stop` ends both cleanly (Result=success);
  * a second boot of the same container starts both by themselves (the
    units are enabled) and mail flows again.

Network: the test re-runs itself in a new network, mount and PID namespace
(unshare); the container shares that network namespace, so all traffic is on
a loopback of the test's own. When the test process dies, the kernel ends
the PID namespace and everything in it, the container included.

Needs root, systemd-nspawn (systemd-container), dpkg and cpack
(scripts/deps). MXFLEET_DEB_DIR: use the packages there instead of running
cpack."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
INSIDE = "MXBOOT_INSIDE"

if __name__ == "__main__" and os.geteuid() == 0 and not os.environ.get(INSIDE) \
        and shutil.which("unshare"):
    # Our own network, mount and PID namespaces; --kill-child: when unshare
    # goes (a ctest timeout kills it), the test and its container go too.
    os.environ[INSIDE] = "1"
    os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private",
                          "--pid", "--fork", "--mount-proc", "--kill-child",
                          "/usr/bin/python3", os.path.abspath(__file__)] + sys.argv[1:])

sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import CONTROLD_NAME, MX1, wait_for  # noqa: E402
sys.path.insert(0, HERE)
# Names only: the module's DebTest must not be collected here.
from test_deb import PACKAGES, cpack, run  # noqa: E402

mxtest = cptest.mxtest
SMTP_PORT = 25
GRPC_PORT = 7443
# mxd's CapabilityBoundingSet= (mxd/systemd/mxd.service), as bit numbers:
# CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2, CAP_SETGID 6,
# CAP_SETUID 7, CAP_NET_BIND_SERVICE 10.
MXD_CAPBND = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 6) | (1 << 7) | (1 << 10)


def build_packages(out):
    """The three .deb files: MXFLEET_DEB_DIR's, or CPack's from the build tree."""
    given = os.environ.get("MXFLEET_DEB_DIR")
    if given:
        debs = {os.path.basename(d).split("_")[0]: d
                for d in glob.glob(os.path.join(given, "*.deb"))}
    else:
        debs = cpack(out)
    if set(debs) != set(PACKAGES):
        raise AssertionError(f"expected the packages {PACKAGES}, found {sorted(debs.values())}")
    return sorted(debs.values())


class Container:
    """A copy of this machine booted by systemd-nspawn: an overlay whose
    lower layer is / (not the mounts under it) and whose upper layer is a
    tmpfs, in this process's mount namespace; the container shares this
    process's network namespace."""

    def __init__(self, base):
        self.base = base
        self.upper = os.path.join(base, "upper")
        self.root = os.path.join(base, "root")
        self.log = os.path.join(base, "nspawn.log")
        self.proc = None
        self.leader = None
        self.boots = 0
        os.makedirs(self.upper)
        os.makedirs(self.root)
        # The upper layer must not lie inside the lower one: its own tmpfs.
        self.must(["mount", "-t", "tmpfs", "-o", "mode=0755", "mxboot", self.upper])
        os.makedirs(os.path.join(self.upper, "up"))
        os.makedirs(os.path.join(self.upper, "work"))
        self.must(["mount", "-t", "overlay", "mxboot", "-o",
                   f"lowerdir=/,upperdir={self.upper}/up,workdir={self.upper}/work", self.root])
        self.quiet_boot()

    @staticmethod
    def must(cmd):
        r = run(cmd)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: {r.stdout}{r.stderr}")

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def quiet_boot(self):
        """Mask every unit this machine enables (its sshd, Postfix, name
        servers, PostgreSQL, timers): they would bind the test's loopback
        ports or do work of their own. Let package scripts start daemons:
        no policy-rc.d (a container image's "exit 101")."""
        etc = self.path("/etc/systemd/system")
        for wants in glob.glob(os.path.join(etc, "*.wants")):
            for unit in os.listdir(wants):
                link = os.path.join(etc, unit)
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink("/dev/null", link)
        for gone in ("/usr/sbin/policy-rc.d", "/etc/machine-id"):
            if os.path.lexists(self.path(gone)):
                os.unlink(self.path(gone))
        # A machine id of its own (systemd writes one at boot when empty).
        with open(self.path("/etc/machine-id"), "w"):
            pass

    def boot(self, timeout=120):
        self.boots += 1
        logf = open(self.log, "a")
        logf.write(f"\n===== boot {self.boots} =====\n")
        logf.flush()
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", self.root, "-M", f"mxboot{os.getpid()}",
             "--register=no", "--keep-unit", "--link-journal=no", "--console=read-only",
             f"--network-namespace-path=/proc/{os.getpid()}/ns/net", "--boot"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            env=cptest.child_env())
        logf.close()
        self.leader = wait_for(self._find_leader, 30, interval=0.2,
                               what="the container's systemd (PID 1 inside)")
        state = wait_for(self._running, timeout, interval=0.5,
                         what="systemctl is-system-running: running or degraded")
        return state

    def _find_leader(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self.proc.returncode}:\n"
                                 + self.log_tail())
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                with open(status) as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except (OSError, ValueError):
                continue
            nspid = fields.get("NSpid", "").split()
            if len(nspid) >= 2 and nspid[-1] == "1" and fields["Name"].strip() == "systemd":
                return int(nspid[0])
        return None

    def _running(self):
        r = self.sh("systemctl is-system-running", check=False, timeout=15)
        state = r.stdout.strip()
        return state if state in ("running", "degraded") else None

    def sh(self, script, check=True, timeout=60):
        """A shell command inside the container, as root."""
        r = run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-p", "--",
                 "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                 "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "LC_ALL=C", "/bin/sh", "-c", script],
                timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"in the container: {script}\n-> {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def show(self, unit, *props):
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit):
        return self.sh(f"journalctl -u {unit} --no-pager -o cat", check=False).stdout

    def log_tail(self, n=6000):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def poweroff(self, timeout=90):
        """An orderly shutdown: SIGTERM makes systemd-nspawn ask the
        container's systemd to power off."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return "killed"

    def destroy(self):
        self.poweroff(30)
        for m in (self.root, self.upper):
            run(["umount", "-l", m])


class SystemdBootTest(unittest.TestCase):
    """One container for the class; the tests run in name order and build
    on each other (install, configure, operate, stop, boot again)."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("booting a container needs root")
        if os.environ.get("MXFLEET_SANITIZE") == "1" and not os.environ.get("MXFLEET_DEB_DIR"):
            # Seen: LeakSanitizer dies at every start in the unit's sandbox
            # (it needs ptrace-like access the seccomp filter and
            # ProcSubset=pid take away), and users install the plain build.
            raise unittest.SkipTest("the ASan+UBSan build cannot run in the units' sandbox; "
                                    "this test runs the plain build's packages (make check-plain)")
        if not os.environ.get(INSIDE):
            raise AssertionError("not in the test's own namespaces (unshare missing?)")
        missing = [t for t in ("systemd-nspawn", "nsenter", "dpkg", "cpack")
                   if not shutil.which(t)]
        if missing:
            raise AssertionError(f"missing {missing}: run scripts/deps")
        cls.base = tempfile.mkdtemp(prefix="mxboot-")
        cptest.watch_dir(cls.base)
        os.chmod(cls.base, 0o755)
        cls.container = None
        cls.pg = None
        cls.pki = None
        cls.sink = None
        try:
            cls._setup()
        except BaseException:
            cls._dump()
            cls._cleanup()
            raise

    @classmethod
    def _setup(cls):
        cptest.run(["ip", "link", "set", "lo", "up"])
        cls.debs = build_packages(os.path.join(cls.base, "deb"))
        cls.pg = cptest.Postgres().init()
        cls.pg.createdb("mxfleet")
        cls.pki = cptest.Pki()
        cls.smtp_cert = mxtest.make_cert(cls.pki.base, "smtp", MX1)
        cls.sink = mxtest.Sink(cls.base, name="nexthop", host="127.0.0.2")
        cls.sink.env = cptest.child_env()
        cls.sink.start()
        cls.container = Container(os.path.join(cls.base, "c"))
        debdir = cls.container.path("/root/mxfleet-debs")
        os.makedirs(debdir)
        for d in cls.debs:
            shutil.copy(d, debdir)
        cls.container.boot()

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    @classmethod
    def _cleanup(cls):
        if cls.container:
            cls.container.destroy()
        if cls.sink:
            cls.sink.stop()
        if cls.pg:
            cls.pg.destroy()
        if cls.pki:
            cls.pki.destroy()
        if not os.environ.get("MXTEST_KEEP"):
            shutil.rmtree(cls.base, ignore_errors=True)
        cptest.WATCHDOG.kill_marked()

    @classmethod
    def _dump(cls):
        c = cls.container
        if not c or not c.leader:
            if c:
                print(f"\n----- systemd-nspawn -----\n{c.log_tail()}", file=sys.stderr)
            return
        for unit in ("mxd", "controld"):
            r = c.sh(f"systemctl status {unit} --no-pager -l; journalctl -u {unit} "
                     "--no-pager -o short-monotonic | tail -60", check=False)
            print(f"\n----- {unit} in the container -----\n{r.stdout}{r.stderr}",
                  file=sys.stderr)
        print("\n----- failed units -----\n"
              + c.sh("systemctl --failed --no-pager", check=False).stdout, file=sys.stderr)

    def run(self, result=None):
        result = super().run(result)
        if result and (result.failures or result.errors):
            type(self)._dump()
        return result

    # -- helpers

    @property
    def c(self):
        return self.container

    def active(self, unit):
        return self.c.sh(f"systemctl is-active {unit}", check=False).stdout.strip()

    def wait_active(self, unit, timeout=60):
        return wait_for(lambda: self.active(unit) == "active", timeout, interval=0.3,
                        what=f"{unit} active")

    def main_pid(self, unit):
        pid = int(self.c.show(unit, "MainPID")["MainPID"])
        self.assertGreater(pid, 0, f"{unit} has no main process")
        return pid

    def proc_status(self, pid):
        out = self.c.sh(f"cat /proc/{pid}/status").stdout
        return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines()
                                          if ":" in line)}

    def install_file(self, path, text, mode, owner="root", group="root"):
        full = self.c.path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        self.c.sh(f"chown {owner}:{group} {path} && chmod {mode:o} {path}")

    def install_copy(self, src, path, mode, owner="root", group="root"):
        with open(src) as f:
            self.install_file(path, f.read(), mode, owner, group)

    def send(self, tag, port=SMTP_PORT):
        cptest.smtp_send("127.0.0.1", port, tag)
        return self.sink.wait_message(lambda m: tag.encode() in m.data, 60,
                                      what=f"message {tag}")

    def outcomes(self):
        return int(self.pg.scalar(f"SELECT count(*) FROM outcomes WHERE host_id = '{MX1}' "
                                  "AND direction = 1", db="mxfleet"))

    def wait_outcomes(self, n, timeout=60):
        return wait_for(lambda: self.outcomes() >= n, timeout, interval=0.3,
                        what=f"{n} inbound outcomes of {MX1} in PostgreSQL")

    def mailctl(self, *args, check=True):
        return self.c.sh("mailctl --socket /run/controld/admin.sock " + " ".join(args),
                         check=check)

    def configure(self, tls_dir="/var/lib/mxfleet/tls"):
        """The fleet configuration, as the Ansible roles would write it:
        certificates from `mailctl pki` under /etc/mxfleet/pki, controld's
        key readable by group controld, mxd's by root only."""
        pki = self.pki
        self.install_copy(pki.ca, "/etc/mxfleet/pki/ca.pem", 0o644)
        self.install_copy(pki.controld[0], "/etc/mxfleet/pki/controld.pem", 0o644)
        self.install_copy(pki.controld[1], "/etc/mxfleet/pki/controld.key", 0o640,
                          group="controld")
        self.install_copy(pki.mx1[0], "/etc/mxfleet/pki/mx1.pem", 0o644)
        self.install_copy(pki.mx1[1], "/etc/mxfleet/pki/mx1.key", 0o600)
        # mxd writes beside its certificate (tls.next_key, the files of a key
        # switch): under /var/lib/mxfleet, as the mxd role puts them.
        self.install_copy(self.smtp_cert[0], f"{tls_dir}/smtp.pem", 0o644)
        self.install_copy(self.smtp_cert[1], f"{tls_dir}/smtp.key", 0o600)
        type(self).controld_conf = mxtest.libconfig_text({
            "database": self.pg.uri("mxfleet"),
            "schema_dir": "/usr/share/mxfleet/schema",
            "socket": "/run/controld/admin.sock",
            "listen": f"127.0.0.1:{GRPC_PORT}",
            "http": "127.0.0.1:9464",
            "log_level": "info",
            "tls": {"cert": "/etc/mxfleet/pki/controld.pem",
                    "key": "/etc/mxfleet/pki/controld.key",
                    "ca": "/etc/mxfleet/pki/ca.pem"},
        })
        self.install_file("/etc/mxfleet/controld.conf", self.controld_conf, 0o640,
                          group="controld")
        type(self).mxd_conf = mxtest.libconfig_text({
            "hostname": MX1,
            "listen": [f"127.0.0.1:{SMTP_PORT}"],
            "user": "mxd",
            "spool_dir": "/var/spool/mxfleet",
            "log_level": "info",
            "domains": mxtest.LCList([{"name": mxtest.LOCAL_DOMAIN,
                                       "next_hop": self.sink.next_hop}]),
            "delivery": {"retry_min": 1, "retry_max": 2},
            "tls": {"certificates": mxtest.LCList([{"cert": f"{tls_dir}/smtp.pem",
                                                     "key": f"{tls_dir}/smtp.key"}])},
            "control": {"server": f"127.0.0.1:{GRPC_PORT}", "authority": CONTROLD_NAME,
                        "cert": "/etc/mxfleet/pki/mx1.pem", "key": "/etc/mxfleet/pki/mx1.key",
                        "ca": "/etc/mxfleet/pki/ca.pem", "heartbeat_interval": 1},
        })
        self.install_file("/etc/mxfleet/mxd.conf", self.mxd_conf, 0o644)

    # -- the tests, in order

    def test_1_packages_install_enable_and_start_the_units(self):
        r = self.c.sh("dpkg -i /root/mxfleet-debs/*.deb", timeout=300)
        self.assertNotIn("error", r.stderr.lower(), r.stderr)
        for unit in ("mxd", "controld"):
            self.assertEqual(self.c.sh(f"systemctl is-enabled {unit}").stdout.strip(),
                             "enabled")
        # Type=notify: "active" only after mxd's READY=1 (listeners bound,
        # spool recovered). The default configuration accepts nothing.
        self.wait_active("mxd")
        s = mxtest.SmtpRaw("127.0.0.1", SMTP_PORT)
        try:
            self.assertEqual(s.read_reply().code, 220)
            self.assertEqual(s.cmd("EHLO boot.test").code, 250)
            self.assertEqual(s.cmd("MAIL FROM:<a@boot.test>").code, 250)
            r = s.cmd(f"RCPT TO:<b@{mxtest.LOCAL_DOMAIN}>")
            self.assertEqual(r.code, 554, f"the default mxd.conf relays: {r}")
        finally:
            s.close()
        self.assertIn("event=started", self.c.journal("mxd"))

    def test_2_a_certificate_under_etc_is_refused_with_the_reason(self):
        """With a control section mxd creates its next key beside the
        certificate; the unit keeps /etc read-only (ProtectSystem=strict).
        Found by this test: the packaged mxd.conf and mxd.conf(5) showed
        certificates under /etc. Now the start fails saying where to put them."""
        self.configure(tls_dir="/etc/mxfleet/tls")
        r = self.c.sh("systemctl restart mxd", check=False, timeout=90)
        self.assertNotEqual(r.returncode, 0, "mxd started with its next key under /etc")
        journal = self.c.journal("mxd")
        self.assertIn("/etc/mxfleet/tls/smtp.key.next: cannot create the next key: "
                      "Read-only file system", journal)
        self.assertIn("/var/lib/mxfleet under the systemd unit", journal)
        self.c.sh("systemctl stop mxd; systemctl reset-failed mxd", check=False)

    def test_3_configured_mail_flows_and_the_outcome_reaches_postgresql(self):
        self.configure()
        self.c.sh("runuser -u controld -- controld -c /etc/mxfleet/controld.conf migrate",
                  timeout=120)
        # restart returns once the unit is active (Type=notify: READY=1);
        # mxd may be "reloading" a moment later, for controld's first
        # config snapshot.
        self.c.sh("systemctl restart controld", timeout=90)
        self.wait_active("controld")
        self.c.sh("systemctl restart mxd", timeout=90)
        self.wait_active("mxd")
        self.assertIn("event=next_key_created path=/var/lib/mxfleet/tls/smtp.key.next",
                      self.c.journal("mxd"))
        self.send("boot-flow-1")
        self.wait_outcomes(1)
        hosts = json.loads(self.mailctl("--json", "hosts").stdout)
        mx = [h for h in hosts.get("hosts", []) if h.get("host_id") == MX1]
        self.assertEqual(len(mx), 1, hosts)
        self.assertEqual(mx[0].get("state"), "ok", hosts)

    def test_4_each_daemon_runs_as_its_user_inside_its_sandbox(self):
        ids = {u: self.c.sh(f"id -u {u}").stdout.strip() for u in ("mxd", "controld")}
        for unit, user in (("mxd", "mxd"), ("controld", "controld")):
            pid = self.main_pid(unit)
            st = self.proc_status(pid)
            self.assertEqual(st["Uid"].split(), [ids[user]] * 4, f"{unit}: {st['Uid']}")
            self.assertEqual(st["NoNewPrivs"], "1", unit)
            self.assertEqual(st["Seccomp"], "2", f"{unit}: no seccomp filter")
            capbnd = int(st["CapBnd"], 16)
            if unit == "controld":
                self.assertEqual(capbnd, 0, "controld: CapabilityBoundingSet= is empty")
                self.assertEqual(int(st["CapEff"], 16), 0)
            else:
                self.assertEqual(capbnd, MXD_CAPBND, f"mxd: CapBnd {st['CapBnd']}")
                self.assertEqual(int(st["CapEff"], 16) & ~(1 << 2), 0,
                                 f"mxd keeps more than CAP_DAC_READ_SEARCH: {st['CapEff']}")
            # ProtectSystem=strict: /usr is read-only in the unit's mounts,
            # even to a root process entering them.
            r = self.c.sh(f"nsenter -t {pid} -m -- touch /usr/.mxboot-probe", check=False)
            self.assertNotEqual(r.returncode, 0, f"{unit}: /usr writable")
            self.assertIn("Read-only file system", r.stderr, unit)
            # PrivateTmp=: its /tmp is not the machine's.
            self.c.sh("touch /tmp/.mxboot-host")
            r = self.c.sh(f"nsenter -t {pid} -m -- test -e /tmp/.mxboot-host", check=False)
            self.assertNotEqual(r.returncode, 0, f"{unit}: sees the machine's /tmp")
        # Every process of mxd, not only the master, runs as mxd.
        pids = self.c.sh("systemctl show mxd -p ControlGroup --value").stdout.strip()
        procs = self.c.sh(f"cat /sys/fs/cgroup/unified{pids}/cgroup.procs "
                          f"2>/dev/null || cat /sys/fs/cgroup{pids}/cgroup.procs "
                          f"2>/dev/null || cat /sys/fs/cgroup/systemd{pids}/cgroup.procs").stdout
        plist = [p for p in procs.split() if p.isdigit()]
        self.assertGreater(len(plist), 1, f"mxd's cgroup {pids}: {procs}")
        for p in plist:
            uid = self.proc_status(p)["Uid"].split()[1]
            self.assertEqual(uid, ids["mxd"], f"mxd process {p} runs as uid {uid}")

    def test_5_reload_and_a_broken_file(self):
        for unit in ("mxd", "controld"):
            before = self.c.journal(unit).count("event=reloaded")
            pid = self.main_pid(unit)
            self.c.sh(f"systemctl reload {unit}", timeout=60)
            wait_for(lambda: self.c.journal(unit).count("event=reloaded") > before, 30,
                     interval=0.3, what=f"{unit}: event=reloaded in the journal")
            self.wait_active(unit)
            self.assertEqual(self.main_pid(unit), pid, f"{unit}: reload restarted it")
        # A broken mxd.conf: reload keeps the running mxd and its settings...
        pid = self.main_pid("mxd")
        self.install_file("/etc/mxfleet/mxd.conf", self.mxd_conf + "\nlisten = [ \n",
                          0o644)
        before = self.c.journal("mxd").count("event=reload_failed")
        self.c.sh("systemctl reload mxd", check=False, timeout=60)
        wait_for(lambda: self.c.journal("mxd").count("event=reload_failed") > before, 30,
                 interval=0.3, what="mxd: event=reload_failed in the journal")
        self.assertRegex(self.c.journal("mxd"),
                         r'event=reload_failed error="/etc/mxfleet/mxd\.conf:\d+: ')
        self.wait_active("mxd")
        self.assertEqual(self.main_pid("mxd"), pid)
        self.send("boot-broken-reload")
        # ...and a restart with it stops at ExecStartPre (mxd -n), which says why.
        r = self.c.sh("systemctl restart mxd", check=False, timeout=60)
        self.assertNotEqual(r.returncode, 0, "restart with a broken mxd.conf succeeded")
        st = self.c.show("mxd", "Result", "ActiveState", "ExecMainPID")
        self.assertNotEqual(st["ActiveState"], "active", st)
        journal = self.c.journal("mxd")
        self.assertRegex(journal, r"\nmxd: /etc/mxfleet/mxd\.conf:\d+: .*\n"
                         r"mxd\.service: Control process exited", journal[-2000:])
        self.install_file("/etc/mxfleet/mxd.conf", self.mxd_conf, 0o644)
        self.c.sh("systemctl reset-failed mxd; systemctl restart mxd", timeout=90)
        self.wait_active("mxd")
        self.send("boot-after-broken")

    def test_6_a_crashed_mxd_is_restarted(self):
        before = int(self.c.show("mxd", "NRestarts")["NRestarts"])
        pid = self.main_pid("mxd")
        self.c.sh("systemctl kill -s KILL --kill-whom=main mxd")
        # Restart=on-failure, RestartSec=5s; ready again (READY=1) afterwards.
        wait_for(lambda: (self.active("mxd") == "active" and
                          int(self.c.show("mxd", "MainPID")["MainPID"]) not in (0, pid)),
                 60, interval=0.5, what="mxd restarted by systemd")
        self.assertEqual(int(self.c.show("mxd", "NRestarts")["NRestarts"]), before + 1)
        n = self.outcomes()
        self.send("boot-after-crash")
        self.wait_outcomes(n + 1)

    def test_7_stop_ends_both_cleanly(self):
        self.c.sh("systemctl stop mxd controld", timeout=120)
        for unit in ("mxd", "controld"):
            st = self.c.show(unit, "ActiveState", "Result", "ExecMainStatus")
            self.assertEqual(st["ActiveState"], "inactive", f"{unit}: {st}")
            self.assertEqual(st["Result"], "success", f"{unit}: {st}")
            self.assertIn(st["ExecMainStatus"], ("0", "15"), f"{unit}: {st}")

    def test_8_a_second_boot_starts_both_and_mail_flows(self):
        rc = self.c.poweroff()
        self.assertEqual(rc, 0, f"systemd-nspawn after poweroff: {rc}\n"
                         + self.c.log_tail(3000))
        self.c.boot()
        for unit in ("controld", "mxd"):
            self.wait_active(unit)
        n = self.outcomes()
        self.send("boot-second-boot")
        self.wait_outcomes(n + 1)
        hosts = json.loads(self.mailctl("--json", "hosts").stdout)
        self.assertEqual([h.get("state") for h in hosts.get("hosts", [])
                          if h.get("host_id") == MX1], ["ok"], hosts)


if __name__ == "__main__":
    unittest.main(verbosity=2)
