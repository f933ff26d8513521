"""A fleet of hosts on this machine, each a network namespace with its own
mount, UTS and IPC namespaces and an sshd, for tests that provision hosts
over SSH (ansible).

Layout (NAME = "mxf<pid>n<k>", unique per Fleet of a test process):

  NAMEsw      the switch: a bridge br0 in a namespace of its own, one veth
              port per host. Nothing is on the root namespace's links.
  NAMEc       the controller: eth0 198.51.100.2/24, no mount namespace of its
              own (ansible-playbook and ssh run there with files in the
              work dir).
  NAMEh<i>    host i: eth0 198.51.100.(10+i)/24, and a holder process
              (`unshare --mount --uts --ipc`, then sleep) that keeps its
              mount namespace alive: overlayfs over /etc /var /usr /srv
              /opt /root /home (upper layers in the work dir, the real
              machine's files as lower layers), fresh tmpfs on /run, /tmp
              and /dev/shm, its own host name. Its sshd (key pair and
              host keys made here) listens on its address; every ssh
              session, and everything started from it, lives in the host's
              namespaces.

So a fleet address exists only inside the namespaces, a file a role
writes under /etc on one host is seen neither by the other hosts nor by the
real machine, and a daemon started on a host binds the host's address.

The work dir (keys, upper layers, logs) is /mnt/fleetns-* (FLEETNS_BASE),
outside every overlaid directory.

Teardown (Fleet.destroy, also from atexit) kills every process in each
host's network namespace, deletes the namespaces and the work dir. A run
that was SIGKILLed leaves namespaces named after its pid: the next Fleet
removes those whose pid is gone (Fleet.reap_stale).

Needs root, ip(8), unshare/nsenter (util-linux), sshd, ssh-keygen.
"""

import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

# 198.51.100.0/24 (TEST-NET-2): this machine's own uplink may sit in
# 192.0.2.0/24, and a fleet address must never be one the root namespace has.
SUBNET = "198.51.100"
CONTROLLER_ADDR = f"{SUBNET}.2"
OVERLAY_DIRS = ["/etc", "/var", "/usr", "/srv", "/opt", "/root", "/home"]
TMPFS_DIRS = ["/run", "/tmp", "/dev/shm"]
PREFIX = "mxf"


def _run(argv, check=True, timeout=60, capture_output=True, **kw):
    p = subprocess.run(argv, capture_output=capture_output, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def missing_tools():
    """What this machine lacks for a fleet (empty when it can run one)."""
    out = []
    if os.geteuid() != 0:
        out.append("root")
    for tool in ("ip", "unshare", "nsenter", "/usr/sbin/sshd", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            out.append(tool)
    return out


def _netns_list():
    p = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_netns(ns, timeout=10):
    """SIGKILL every process in netns ns, then delete it."""
    deadline = time.monotonic() + timeout
    while True:
        p = _run(["ip", "netns", "pids", ns], check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit()]
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    _run(["ip", "netns", "del", ns], check=False)


class Host:
    def __init__(self, fleet, index, name):
        self.fleet = fleet
        self.index = index
        self.name = name
        self.addr = f"{SUBNET}.{10 + index}"
        self.netns = f"{fleet.tag}h{index}"
        self.dir = os.path.join(fleet.dir, f"h{index}")
        self.holder = None
        self.sshd = None
        self.logs = []

    # -- commands inside the host

    def nsenter(self):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-u", "-i", "-n", "--"]

    def run(self, argv, check=True, timeout=60, **kw):
        """Run argv inside the host's namespaces (as a session from its sshd
        would); returns the CompletedProcess (text)."""
        return _run(self.nsenter() + list(argv), check=check, timeout=timeout, **kw)

    def sh(self, script, check=True, timeout=60):
        return self.run(["/bin/sh", "-c", script], check=check, timeout=timeout)

    def write(self, path, text, mode=0o644):
        self.run(["/bin/sh", "-c", f'umask 022 && cat > "$1" && chmod {mode:o} "$1"', "sh", path],
                 input=text)

    def read(self, path):
        return self.run(["cat", path]).stdout

    # -- setup

    def _log(self, name):
        f = open(os.path.join(self.dir, name), "w")
        self.logs.append(f)
        return f

    def _mount_script(self):
        lines = ["set -e"]
        for d in OVERLAY_DIRS:
            up = os.path.join(self.dir, "upper" + d)
            work = os.path.join(self.dir, "work" + d)
            lines.append(f"mkdir -p {up} {work}")
            lines.append(f"mount -t overlay overlay -o lowerdir={d},upperdir={up},workdir={work} {d}")
        for d in TMPFS_DIRS:
            lines.append(f"mount -t tmpfs -o mode=1777 tmpfs {d}" if d != "/run"
                         else f"mount -t tmpfs -o mode=0755 tmpfs {d}")
        lines += ["mkdir -p /run/sshd /run/lock && chmod 1777 /run/lock",
                  "if id postgres >/dev/null 2>&1; then install -d -o postgres -g postgres -m 2775 "
                  "/run/postgresql; fi",
                  f"hostname {shlex.quote(self.name)}",
                  f"touch {self.dir}/ready",
                  "exec sleep infinity"]
        return "\n".join(lines)

    def start(self):
        os.makedirs(self.dir, mode=0o755)
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--ipc",
             "--propagation", "private", "--", "/bin/sh", "-c", self._mount_script()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log("holder.log"))
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(self.dir, "ready")):
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: mount namespace setup failed:\n"
                                   + open(os.path.join(self.dir, "holder.log")).read())
            time.sleep(0.05)
        self._start_sshd()

    def _start_sshd(self):
        key = os.path.join(self.dir, "ssh_host_ed25519_key")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", key])
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"ListenAddress {self.addr}:22\n"
                    f"HostKey {key}\n"
                    f"AuthorizedKeysFile {self.fleet.authorized_keys}\n"
                    "PermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "UsePAM no\nStrictModes no\nUseDNS no\n"
                    f"PidFile {self.dir}/sshd.pid\n"
                    "Subsystem sftp internal-sftp\n"
                    "MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n")
        self.sshd = subprocess.Popen(
            self.nsenter() + ["/usr/sbin/sshd", "-D", "-e", "-f", conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log("sshd.log"))
        with open(key + ".pub") as f:
            self.host_key = f.read().split()[:2]
        # Ready when it accepts a connection from the controller.
        deadline = time.monotonic() + 20
        while True:
            p = self.fleet.controller_run(
                ["bash", "-c", f"exec 3<>/dev/tcp/{self.addr}/22 && head -c 4 <&3"],
                check=False, timeout=5)
            if p.stdout.startswith("SSH-"):
                return
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: sshd did not start:\n"
                                   + open(os.path.join(self.dir, "sshd.log")).read())
            time.sleep(0.1)


class Fleet:
    """Hosts named in names (their inventory names), host i at
    198.51.100.(10+i), and the controller at 198.51.100.2."""

    _count = 0

    def __init__(self, names, keep=False):
        if missing_tools():
            raise RuntimeError("fleetns needs " + ", ".join(missing_tools()))
        self.reap_stale()
        Fleet._count += 1
        self.tag = f"{PREFIX}{os.getpid()}n{Fleet._count}"
        self.keep = keep or os.environ.get("MXTEST_KEEP") == "1"
        # Not under a directory the hosts overlay or mount tmpfs on: their
        # sshd reads its keys from here, and overlayfs refuses an upper dir
        # inside its lower one.
        base = os.environ.get("FLEETNS_BASE", "/mnt")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="fleetns-", dir=base)
        os.chmod(self.dir, 0o755)
        self.switch = f"{self.tag}sw"
        self.controller = f"{self.tag}c"
        self.hosts = [Host(self, i + 1, n) for i, n in enumerate(names)]
        self.by_name = {h.name: h for h in self.hosts}
        self.key = os.path.join(self.dir, "id_ed25519")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self._destroyed = False
        atexit.register(self.destroy)
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise

    @staticmethod
    def reap_stale():
        """Namespaces of an earlier run whose process is gone."""
        for ns in _netns_list():
            m = re.fullmatch(PREFIX + r"(\d+)n\d+(sw|c|h\d+)", ns)
            if m and not _pid_alive(int(m.group(1))):
                _kill_netns(ns)

    def _netns(self, ns, *argv):
        _run(["ip", "-n", ns, *argv])

    def _port(self, ns, port, addr):
        """A veth from the switch's bridge to eth0 in ns, with addr."""
        _run(["ip", "netns", "add", ns])
        self._netns(self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns)
        self._netns(self.switch, "link", "set", port, "master", "br0", "up")
        self._netns(ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        self._netns(ns, "link", "set", "eth0", "up")
        self._netns(ns, "link", "set", "lo", "up")

    def _build(self):
        _run(["ip", "netns", "add", self.switch])
        self._netns(self.switch, "link", "add", "br0", "type", "bridge")
        self._netns(self.switch, "link", "set", "br0", "up")
        self._port(self.controller, "pc", CONTROLLER_ADDR)
        for h in self.hosts:
            self._port(h.netns, f"p{h.index}", h.addr)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetns", "-f", self.key])
        shutil.copy(self.key + ".pub", self.authorized_keys)
        for h in self.hosts:
            h.start()
        with open(self.known_hosts, "w") as f:
            for h in self.hosts:
                f.write(f"{h.name},{h.addr} {h.host_key[0]} {h.host_key[1]}\n")

    # -- the controller

    def ssh_args(self):
        """ssh options that reach the hosts with the fleet's key, checking
        their host keys, with nothing read from or written to ~/.ssh."""
        return ["-F", "/dev/null", "-i", self.key, "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=10"]

    def controller_env(self):
        env = dict(os.environ)
        env.update({
            "HOME": os.path.join(self.dir, "controller-home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.dir, "ansible-local"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(self.dir, "cp"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
        })
        os.makedirs(env["HOME"], mode=0o700, exist_ok=True)
        return env

    def controller_run(self, argv, check=True, timeout=60, **kw):
        """Run argv in the controller's network namespace."""
        kw.setdefault("env", self.controller_env())
        return _run(["ip", "netns", "exec", self.controller, *argv], check=check,
                    timeout=timeout, **kw)

    def ssh(self, host, command, check=True, timeout=60):
        h = self.by_name[host] if isinstance(host, str) else host
        return self.controller_run(["ssh", *self.ssh_args(), f"root@{h.addr}", command],
                                   check=check, timeout=timeout)

    def inventory(self, groups, extra_vars=None):
        """Ansible inventory text: groups maps a group to host names; every
        host gets ansible_host and mxfleet_address, [all:vars] the ssh
        settings and extra_vars."""
        lines = []
        for g, names in groups.items():
            lines.append(f"[{g}]")
            for n in names:
                h = self.by_name[n]
                lines.append(f"{n} ansible_host={h.addr} mxfleet_address={h.addr}")
            lines.append("")
        ssh_common = " ".join(a for a in self.ssh_args() if a not in ("-i", self.key))
        lines += ["[all:vars]", "ansible_user=root",
                  "ansible_python_interpreter=/usr/bin/python3",
                  f"ansible_ssh_private_key_file={self.key}",
                  f"ansible_ssh_common_args='{ssh_common}'"]
        for k, v in (extra_vars or {}).items():
            lines.append(f"{k}={v}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def root_addresses():
        """The root namespace's addresses."""
        p = _run(["ip", "-o", "addr", "show"])
        return re.findall(r"inet6? ([0-9a-f.:]+)/", p.stdout)

    def destroy(self):
        if self._destroyed:
            return
        self._destroyed = True
        for h in self.hosts:
            for proc in (h.sshd, h.holder):
                if proc is not None and proc.poll() is None:
                    proc.kill()
        for ns in [h.netns for h in self.hosts] + [self.controller, self.switch]:
            if ns in _netns_list():
                _kill_netns(ns)
        for h in self.hosts:
            for proc in (h.sshd, h.holder):
                if proc is not None:
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
            for f in h.logs:
                f.close()
        if self.keep:
            print(f"fleetns: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
