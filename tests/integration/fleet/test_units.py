#!/usr/bin/python3
"""The systemd units of mxd and controld (issue 13, item 2) and controld's
SIGHUP reload.

  * `systemd-analyze verify` accepts both units in a root tree holding the
    packaged layout (/usr/sbin/mxd, /usr/sbin/controld: the built binaries)
    and systemd's own units; the man pages their Documentation= names are
    checked too once docs/man/ has them.
  * `systemd-analyze security --offline=true` rates each unit at most the
    exposure measured when the unit was written (docs/mxd.md,
    docs/control-plane.md: mxd 2.4, controld 1.2 on systemd 252).
  * each unit's ExecStartPre (the configuration check) passes on a real
    configuration and fails on a broken one.
  * every system call mxd and controld make (strace) while they start,
    take, deliver and upload mail, reload and stop is one their unit's
    SystemCallFilter= allows.
  * a real controld, sent SIGHUP, serves a renewed certificate to new
    connections; a broken file or broken TLS files change nothing and say
    why; a key that needs a restart is named.

systemd is not PID 1 here, so the units are not started: what they would
do at run time is what test_sdnotify.py and the control tests check of the
daemons themselves."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, HERE)
import cptest  # noqa: E402
from cptest import CONTROLD_NAME, wait_for  # noqa: E402
from test_sdnotify import NotifySocket  # noqa: E402

mxtest = cptest.mxtest
setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

SRC = cptest.SRC
UNITS = {
    "mxd": os.path.join(SRC, "mxd", "systemd", "mxd.service"),
    "controld": os.path.join(SRC, "controld", "systemd", "controld.service"),
}
BINARIES = {"mxd": cptest.MXD_BIN, "controld": cptest.CONTROLD_BIN}
# Measured with systemd 252 (Debian 12) when the units were written: mxd
# 2.4 (it starts as root to bind :25/:443 and chown its spool), controld 1.2.
EXPOSURE_MAX = {"mxd": 2.4, "controld": 1.2}
MAN_DIR = os.path.join(SRC, "docs", "man")


def unit_values(path, key):
    """Every value of key= in the unit file, in order."""
    out = []
    with open(path) as f:
        for line in f:
            m = re.match(rf"^{re.escape(key)}=(.*)$", line.strip())
            if m:
                out.append(m.group(1))
    return out


def documented_man_pages():
    """(name, section) of every man: reference in the units."""
    pages = set()
    for path in UNITS.values():
        for v in unit_values(path, "Documentation"):
            pages.update(re.findall(r"man:([\w.-]+)\((\d)\)", v))
    return sorted(pages)


class UnitFilesTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="units-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def root_tree(self):
        """A root with the packaged layout: the built binaries at /usr/sbin,
        /bin/kill (ExecReload) and systemd's units (targets the unit's
        default dependencies name), the units in /etc/systemd/system."""
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "usr", "sbin"))
        os.makedirs(os.path.join(root, "usr", "bin"))
        os.makedirs(os.path.join(root, "usr", "lib", "systemd"))
        os.makedirs(os.path.join(root, "etc", "systemd", "system"))
        os.symlink("usr/bin", os.path.join(root, "bin"))
        for name, binary in BINARIES.items():
            shutil.copy(binary, os.path.join(root, "usr", "sbin", name))
            shutil.copy(UNITS[name], os.path.join(root, "etc", "systemd", "system"))
        shutil.copy("/usr/bin/kill", os.path.join(root, "usr", "bin", "kill"))
        shutil.copytree("/usr/lib/systemd/system",
                        os.path.join(root, "usr", "lib", "systemd", "system"), symlinks=True)
        return root

    def verify(self, root, *extra, env=None):
        units = [f"/etc/systemd/system/{n}.service" for n in sorted(UNITS)]
        return subprocess.run(["systemd-analyze", "verify", f"--root={root}", *extra, *units],
                              capture_output=True, text=True, timeout=60, env=env)

    def test_verify_accepts_both_units_in_the_packaged_layout(self):
        r = self.verify(self.root_tree(), "--man=no")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")

    def test_verify_refuses_a_unit_whose_binary_is_missing(self):
        # What the previous test proves is worth something: verify does look.
        root = self.root_tree()
        os.unlink(os.path.join(root, "usr", "sbin", "controld"))
        r = self.verify(root, "--man=no")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/usr/sbin/controld is not executable", r.stderr)

    @unittest.skipUnless(shutil.which("man"), "man is not installed")
    def test_verify_finds_the_man_pages_documentation_names(self):
        pages = documented_man_pages()
        self.assertEqual(pages, [("controld", "8"), ("controld.conf", "5"),
                                 ("mxd", "8"), ("mxd.conf", "5")])
        missing = [f"{n}.{s}" for n, s in pages
                   if not os.path.exists(os.path.join(MAN_DIR, f"{n}.{s}"))]
        if missing:
            self.skipTest(f"not in docs/man/ yet: {', '.join(missing)}")
        manpath = os.path.join(self.tmp, "man")
        for n, s in pages:
            os.makedirs(os.path.join(manpath, f"man{s}"), exist_ok=True)
            os.symlink(os.path.join(MAN_DIR, f"{n}.{s}"),
                       os.path.join(manpath, f"man{s}", f"{n}.{s}"))
        # man-db's own seccomp sandbox fails in some containers.
        r = self.verify(self.root_tree(),
                        env=dict(os.environ, MANPATH=manpath, MAN_DISABLE_SECCOMP="1"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def exposure(self, name):
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                            UNITS[name]], capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        return float(m.group(1)), r.stdout

    def test_security_exposure_of_mxd_at_most_measured(self):
        score, text = self.exposure("mxd")
        self.assertLessEqual(score, EXPOSURE_MAX["mxd"], text)

    def test_security_exposure_of_controld_at_most_measured(self):
        score, text = self.exposure("controld")
        self.assertLessEqual(score, EXPOSURE_MAX["controld"], text)

    def test_units_run_the_packaged_paths_and_notify_from_the_main_pid(self):
        for name, path in UNITS.items():
            conf = f"/etc/mxfleet/{name}.conf"
            self.assertEqual(unit_values(path, "ExecStart"), [f"/usr/sbin/{name} -c {conf}"])
            self.assertEqual(unit_values(path, "ExecStartPre"),
                             [f"/usr/sbin/{name} -n -c {conf}"])
            # mxd's "+": its master runs as another user than the unit's
            # (root, without CAP_KILL), so kill runs outside the sandbox.
            plus = "+" if name == "mxd" else ""
            self.assertEqual(unit_values(path, "ExecReload"),
                             [f"{plus}/bin/kill -HUP $MAINPID"])
            self.assertEqual(unit_values(path, "Type"), ["notify"])
            self.assertEqual(unit_values(path, "NotifyAccess"), ["main"])
        self.assertIn("/var/spool/mxfleet", unit_values(UNITS["mxd"], "ReadWritePaths")[0])

    def test_default_configs_fit_the_sandbox(self):
        """When the packages' default configurations are in the tree
        (scripts/deb/), mxd's spool is one the unit may write and
        controld's admin socket is in its RuntimeDirectory."""
        mxd_conf = os.path.join(SRC, "scripts", "deb", "mxd.conf")
        controld_conf = os.path.join(SRC, "scripts", "deb", "controld.conf")
        if not (os.path.exists(mxd_conf) and os.path.exists(controld_conf)):
            self.skipTest("scripts/deb/{mxd,controld}.conf not in this tree yet")
        with open(mxd_conf) as f:
            m = re.search(r'^\s*spool_dir\s*=\s*"([^"]+)"', f.read(), re.M)
        spool = m.group(1) if m else "/var/spool/mxd"
        writable = unit_values(UNITS["mxd"], "ReadWritePaths")[0].split()
        self.assertTrue(any(spool == w.lstrip("-") or spool.startswith(w.lstrip("-") + "/")
                            for w in writable), f"spool_dir {spool} not in {writable}")
        with open(controld_conf) as f:
            m = re.search(r'^\s*socket\s*=\s*"([^"]+)"', f.read(), re.M)
        if m:
            rundir = "/run/" + unit_values(UNITS["controld"], "RuntimeDirectory")[0]
            self.assertTrue(m.group(1).startswith(rundir + "/"), m.group(1))
        # The unit's ExecStartPre accepts the file as packaged (mxd's needs
        # its `user` to exist, which only the package creates).
        r = exec_start_pre("controld", cptest.CONTROLD_BIN, controld_conf)
        self.assertEqual(r.returncode, 0, r.stderr)


def exec_start_pre(name, binary, conf):
    """The unit's ExecStartPre, run with the built binary and conf."""
    line = unit_values(UNITS[name], "ExecStartPre")[0]
    argv = [binary if a == f"/usr/sbin/{name}" else conf if a == f"/etc/mxfleet/{name}.conf"
            else a for a in line.split()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def served_certificate(c, client):
    """The DER certificate controld presents to a new TLS connection (as a
    gRPC client makes it: TLS 1.3, ALPN h2, a client certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(client["ca"])
    ctx.load_cert_chain(client["cert"], client["key"])
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(c.addr, timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=CONTROLD_NAME) as t:
            return t.getpeercert(binary_form=True)


def pem_der(path):
    with open(path) as f:
        pem = f.read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    return ssl.PEM_cert_to_DER_cert(first + "\n")


class ExecStartPreTest(cptest.FleetTestCase):

    def assertCheckPassesThenFails(self, name, binary, conf, broken_line, complaint):
        """The unit's ExecStartPre accepts conf, and refuses it once
        broken_line is appended, saying complaint."""
        r = exec_start_pre(name, binary, conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        with open(conf, "a") as f:
            f.write(broken_line)
        r = exec_start_pre(name, binary, conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn(complaint, r.stderr)

    def test_mxd_check_passes_on_a_real_config_and_fails_on_a_broken_one(self):
        sink = self.new_sink()
        m = mxtest.Mxd(self.wd, self.mxd_config(sink.next_hop, [self.cert()]), name="mxd")
        m.write_config()
        self.assertCheckPassesThenFails("mxd", cptest.MXD_BIN, m.conf_path,
                                        "no_such_key = 1;\n", "no_such_key")

    def test_controld_check_passes_on_a_real_config_and_fails_on_a_broken_one(self):
        c = self.controld(migrate=False, start=False)
        c.write_config()
        self.assertCheckPassesThenFails("controld", cptest.CONTROLD_BIN, c.conf_path,
                                        "listen = ;\n", c.conf_path)


class ControldReloadTest(cptest.FleetTestCase):
    """SIGHUP to a real controld (docs/control-plane.md, "Reload (SIGHUP)")."""

    def setUp(self):
        super().setUp()
        # controld's own TLS files, where an operator (or certbot) renews them.
        self.tls = os.path.join(self.wd, "tls")
        os.mkdir(self.tls)
        self.cert = os.path.join(self.tls, "controld.pem")
        self.key = os.path.join(self.tls, "controld.key")
        shutil.copy(self.pki.controld[0], self.cert)
        shutil.copy(self.pki.controld[1], self.key)
        self.client = {"cert": self.pki.admin[0], "key": self.pki.admin[1], "ca": self.pki.ca}

    def start(self):
        self.notify = NotifySocket(self.wd)
        self.addCleanup(self.notify.close)
        c = self.controld(start=False, config={"tls": {"cert": self.cert, "key": self.key}})
        c.env = dict(c.env or os.environ, NOTIFY_SOCKET=self.notify.path)
        c.start()
        self.notify.wait("READY=1", timeout=30)
        return c

    def renewed_certificate(self):
        """A new certificate for controld from the same fleet CA."""
        d = os.path.join(self.wd, "renew")
        os.mkdir(d)
        for f in ("ca.pem", "ca.key"):
            shutil.copy(self.pki.path(f), d)
        cptest.run([cptest.MAILCTL, "pki", "issue", d, CONTROLD_NAME, "--ip", "127.0.0.1"])
        return os.path.join(d, CONTROLD_NAME + ".pem"), os.path.join(d, CONTROLD_NAME + ".key")

    def renew_in_place(self, key=True):
        """A renewed certificate (and key) copied over controld's files; the
        new certificate's path."""
        new_cert, new_key = self.renewed_certificate()
        if key:
            shutil.copy(new_key, self.key)
        shutil.copy(new_cert, self.cert)
        return new_cert

    def hup(self, c):
        before = len(c.events("reloaded")) + len(c.events("reload_failed"))
        c.send_signal(signal.SIGHUP)
        self.notify.wait("RELOADING=1")
        self.notify.wait("READY=1")
        wait_for(lambda: len(c.events("reloaded")) + len(c.events("reload_failed")) > before,
                 10, what="controld's reload log line")

    def assertServing(self, c):
        self.assertIsNone(c.proc.poll(), "controld exited:\n" + c.log_tail())
        self.assertEqual(self.mailctl(c, "domain", "list", check=False).returncode, 0)
        r = self.mailctl_admin_tls(c, "domain", "list", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_sighup_serves_a_renewed_certificate_to_new_connections(self):
        c = self.start()
        old = pem_der(self.cert)
        self.assertEqual(served_certificate(c, self.client), old)
        new_cert = self.renew_in_place()
        self.assertEqual(served_certificate(c, self.client), old)  # not before SIGHUP
        self.hup(c)
        self.assertEqual(served_certificate(c, self.client), pem_der(new_cert))
        self.assertEqual(c.events("tls_reloaded")[-1].get("certificate_changed"), "yes")
        self.assertEqual(c.events("reloaded")[-1].get("needs_restart"), "-")
        # A gRPC client (mailctl over mutual TLS) is served with it.
        self.assertServing(c)

    def test_sighup_with_a_broken_file_keeps_the_old_settings(self):
        c = self.start()
        old = served_certificate(c, self.client)
        self.renew_in_place()
        with open(c.conf_path, "a") as f:
            f.write("max_streams = \"many\";\n")
        self.hup(c)
        failed = c.events("reload_failed")
        self.assertEqual(len(failed), 1, c.log_tail())
        self.assertEqual(failed[0].get("stage"), "config")
        self.assertIn("max_streams", failed[0].get("error", ""))
        self.assertEqual(failed[0].get("effect"), "old_settings_kept")
        self.assertEqual(served_certificate(c, self.client), old)
        self.assertServing(c)

    def test_sighup_with_a_key_that_does_not_match_keeps_the_old_certificate(self):
        c = self.start()
        old = served_certificate(c, self.client)
        self.renew_in_place(key=False)  # the key was not renewed with it
        self.hup(c)
        failed = c.events("reload_failed")
        self.assertEqual([f.get("stage") for f in failed], ["tls"], c.log_tail())
        self.assertIn(self.key, failed[0].get("error", ""))
        self.assertEqual(served_certificate(c, self.client), old)
        self.assertServing(c)

    def test_sighup_names_a_change_that_needs_a_restart_and_applies_the_rest(self):
        c = self.start()
        self.assertEqual(c.events("reloaded"), [])
        c.config["max_streams"] = 50
        c.config["log_level"] = "debug"
        c.write_config()
        self.hup(c)
        self.assertEqual([r.get("key") for r in c.events("reload_needs_restart")],
                         ["max_streams"], c.log_tail())
        self.assertEqual(c.events("reloaded")[-1].get("needs_restart"), "max_streams")
        self.assertServing(c)
        # log_level = debug applies at once: the next call logs at debug.
        self.assertTrue(any("level=debug" in l for l in
                            c.log_text().split("event=reloaded", 1)[1].splitlines()),
                        c.log_tail())


def syscall_group(group, seen=None):
    """The system calls of a SystemCallFilter group, nested groups expanded."""
    seen = set() if seen is None else seen
    out = set()
    text = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    for word in (l.strip() for l in text.splitlines()[1:]):
        if word.startswith("@") and word not in seen:
            seen.add(word)
            out |= syscall_group(word, seen)
        elif word and not word.startswith(("#", "@")):
            out.add(word)
    return out


def unit_syscall_filter(name):
    """(allowed, denied) by the unit's SystemCallFilter= lines."""
    allowed, denied = set(), set()
    for v in unit_values(UNITS[name], "SystemCallFilter"):
        deny = v.startswith("~")
        for word in v.lstrip("~").split():
            calls = syscall_group(word) if word.startswith("@") else {word}
            (denied if deny else allowed).update(calls)
    return allowed, denied


def traced_syscalls(path):
    """The system calls strace -f saw, by name."""
    seen = set()
    with open(path) as f:
        for line in f:
            m = re.match(r"^\d+\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>)", line)
            if m:
                seen.add(m.group(1))
    return seen - {"exit", "killed", "restart_syscall"}


@unittest.skipUnless(shutil.which("strace"), "strace is not installed")
class SyscallFilterTest(cptest.FleetTestCase):
    """Every system call mxd and controld make while they start as root,
    drop privileges, take mail, deliver it, upload its outcome, answer
    mailctl, reload and stop (traced with strace) is one their unit's
    SystemCallFilter allows: a call outside it would fail with EPERM under
    systemd, which no test here could show otherwise."""

    def traced(self, svc, name, binary):
        trace = os.path.join(self.wd, name + ".trace")
        wrapper = os.path.join(self.wd, name + "-traced")
        with open(wrapper, "w") as f:
            # -D: the tracer is a grandchild; the daemon keeps the pid signals go to.
            # LeakSanitizer cannot run under ptrace (ASan builds): off for this run.
            f.write("#!/bin/sh\n"
                    'ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"; '
                    "export ASAN_OPTIONS\n"
                    f"exec strace -D -f -qq -o {trace} -- {binary} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        svc.argv[0] = wrapper
        return trace

    def test_daemons_make_only_system_calls_their_unit_allows(self):
        c = self.controld(start=False)
        ctrace = self.traced(c, "controld", cptest.CONTROLD_BIN)
        c.start()
        sink = self.sink()
        m = self.mxd_with_control(c, sink, start=False)
        mtrace = self.traced(m, "mxd", cptest.MXD_BIN)
        m.start()
        cptest.smtp_send(m.host, m.port, "units-1")
        self.wait_outcomes(1)
        self.assertEqual(self.mailctl(c, "domain", "list", check=False).returncode, 0)
        for svc, event in ((m, "reloaded"), (c, "reloaded")):
            svc.send_signal(signal.SIGHUP)
            wait_for(lambda: svc.events(event), 15, what=f"{svc.name} {event}")
        for svc in (m, c):
            svc.stop(timeout=15)
            self.assertIsNone(svc.stop_problem, svc.log_text()[-3000:])
        for name, trace in (("mxd", mtrace), ("controld", ctrace)):
            used = traced_syscalls(trace)
            self.assertIn("epoll_wait", used, f"{name}: nothing traced in {trace}")
            allowed, denied = unit_syscall_filter(name)
            self.assertEqual(sorted(used - allowed), [], f"{name}: not in its allow list")
            self.assertEqual(sorted(used & denied), [], f"{name}: denied by its unit")


if __name__ == "__main__":
    cptest.main()
