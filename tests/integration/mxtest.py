"""Shared helpers for the mxd integration tests.

Everything here talks to real processes on loopback: mxd (from MXD_BIN,
default build/bin/mxd), the aiosmtpd sink in tests/tools/sink.py, openssl,
swaks and Postfix. Each test gets its own temporary directory, its own
127.0.0.x addresses and random ports so that several test files can run at
once. Every wait is bounded.

Environment:
  MXD_BIN        mxd binary (default: <repo>/build/bin/mxd)
  MXTEST_KEEP=1  keep the temporary directories (their paths are printed)
  MXTEST_VERBOSE=1  print mxd's log after every test, not only failed ones
"""

import atexit
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import uuid
import threading
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MXD_BIN = os.environ.get("MXD_BIN", os.path.join(REPO, "build", "bin", "mxd"))
PYTHON = "/usr/bin/python3"  # Debian's: it sees python3-aiosmtpd
SINK = os.path.join(REPO, "tests", "tools", "sink.py")
IS_ROOT = os.geteuid() == 0
RUN_USER = "nobody"
LOCAL_DOMAIN = "example.test"
MX_NAME = "mx1.example.test"


# ---------------------------------------------------------------- waiting

class Watchdog:
    """Cleanup that survives a SIGKILL of the test process (a runner's
    timeout). Every process started with env() carries the mark in its
    environment; a detached watchdog waits for this process to go, then
    kills whatever carries the mark and removes the directories watched."""

    _SCRIPT = r'''
import os, shutil, signal, sys, time
parent, needle, dirs_file = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
while alive(parent):
    time.sleep(1)
me = os.getpid()
for _ in range(3):
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        try:
            with open(f"/proc/{e}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(e), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
try:
    with open(dirs_file) as f:
        dirs = [l.strip() for l in f if l.strip()]
except OSError:
    dirs = []
for d in dirs + [dirs_file]:
    if os.path.isdir(d):
        shutil.rmtree(d, ignore_errors=True)
    elif os.path.exists(d):
        os.unlink(d)
'''

    def __init__(self, mark, keep_env=("MXTEST_KEEP",)):
        self.mark, self.token, self.keep_env = mark, uuid.uuid4().hex, keep_env
        self.needle = f"{mark}={self.token}"
        self.dirs_file = None
        self.proc = None  # kept: it outlives us on purpose

    def env(self, base=None):
        """An environment carrying the mark."""
        env = dict(os.environ if base is None else base)
        env[self.mark] = self.token
        return env

    def mark_self(self):
        """Let every child of this process inherit the mark."""
        os.environ[self.mark] = self.token

    def watch_dir(self, path):
        """Remove path should this process die without cleaning up (a no-op
        once the directory is gone)."""
        if self.dirs_file is None:
            fd, self.dirs_file = tempfile.mkstemp(prefix=f"{self.mark.lower()}-watchdog-")
            os.close(fd)
            self.proc = subprocess.Popen(
                [PYTHON, "-c", self._SCRIPT, str(os.getpid()), self.needle, self.dirs_file],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if k != self.mark})
        if any(os.environ.get(k) for k in self.keep_env):
            return
        with open(self.dirs_file, "a") as f:
            f.write(path + "\n")

    def kill_marked(self):
        """Kill whatever still carries the mark (the end of a normal run)."""
        needle = self.needle.encode()
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == os.getpid():
                continue
            try:
                with open(f"/proc/{e}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        os.kill(int(e), signal.SIGKILL)
            except OSError:
                pass


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns something truthy; raise after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_file(path, timeout=10):
    return wait_for(lambda: os.path.exists(path), timeout, what=f"file {path}")


# ---------------------------------------------------------------- addresses

_used_hosts = set()


def pick_host():
    """A loopback address of our own; .1 (default source) and .11 (the dev
    fleet) stay out so tests never collide with them."""
    while True:
        host = f"127.0.{random.randint(0, 3)}.{random.randint(20, 250)}"
        if host not in _used_hosts:
            _used_hosts.add(host)
            return host


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host, port):
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def common_free_port(hosts):
    """A TCP port free on every one of hosts (a DNS check uses one port for all)."""
    for _ in range(50):
        port = free_port(hosts[0])
        if all(port_free(h, port) for h in hosts[1:]):
            return port
    raise AssertionError("no common free port")


def free_addr():
    host = pick_host()
    return host, free_port(host)


def _proc_net_listening(host, port):
    """True when some socket listens on host:port (IPv4), read from
    /proc/net/tcp so that checking does not open an SMTP session."""
    want = "%08X:%04X" % (
        int.from_bytes(socket.inet_aton(host), "little"), port)
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want and fields[3] == "0A":
                    return True
    except OSError:
        pass
    return False


# ---------------------------------------------------------------- certificates

def _is_ip_literal(name):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name)
            return True
        except OSError:
            pass
    return False


def make_cert(directory, basename, cn, sans=(), kind="rsa"):
    """Self-signed certificate and key; returns (cert_path, key_path). cn
    and sans become DNS names, or IP addresses when they are literals."""
    cert = os.path.join(directory, basename + ".pem")
    key = os.path.join(directory, basename + ".key")
    names = [cn, *sans]
    if kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    elif kind == "ecdsa":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    else:
        raise ValueError(kind)
    subprocess.run(
        ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key,
         "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
         "-addext", "subjectAltName=" + ",".join(
             f"{'IP' if _is_ip_literal(n) else 'DNS'}:{n}" for n in names)],
        check=True, capture_output=True, timeout=60)
    # mxd may re-read certificates on SIGHUP after dropping root.
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


# ---------------------------------------------------------------- config

class LCList(tuple):
    """Marks a libconfig list `( ... )`; a Python list becomes an array."""


def _lc_value(value, indent):
    pad = "  " * indent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = "".join(f"{pad}  {k} = {_lc_value(v, indent + 1)};\n"
                        for k, v in value.items())
        return "{\n" + inner + pad + "}"
    if isinstance(value, (LCList, tuple)) or (
            isinstance(value, list) and value and isinstance(value[0], dict)):
        if not value:
            return "( )"
        items = (",\n").join(f"{pad}  {_lc_value(v, indent + 1)}" for v in value)
        return "(\n" + items + "\n" + pad + ")"
    if isinstance(value, list):
        return "[ " + ", ".join(_lc_value(v, indent) for v in value) + " ]"
    raise TypeError(f"no libconfig form for {value!r}")


def libconfig_text(cfg):
    return "".join(f"{k} = {_lc_value(v, 0)};\n" for k, v in cfg.items())


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- logfmt

_LOGFMT = re.compile(r'([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?')


def parse_logfmt(line):
    out = {}
    for key, val in _LOGFMT.findall(line.strip()):
        if val.startswith('"') and val.endswith('"') and len(val) >= 2:
            val = re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t", "r": "\r"}
                         .get(m.group(1), m.group(1)), val[1:-1])
        out[key] = val
    return out


# ---------------------------------------------------------------- processes

def _children(pid):
    """Direct children of pid, from /proc (no psutil on the machine)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after ')'.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        if p in seen or not os.path.exists(f"/proc/{p}"):
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _killpg(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# Emergency teardown: services run in their own sessions, so they would
# outlive a test process that is killed (runner timeout, ^C). A SIGTERM to
# the test process, or its normal exit, takes them down.
_emergency = {}


def register_emergency(key, kill):
    _emergency[key] = kill


def unregister_emergency(key):
    _emergency.pop(key, None)


def _kill_everything(signum=None, frame=None):
    for kill in list(_emergency.values()):
        try:
            kill()
        except Exception:
            pass
    _emergency.clear()
    if signum is not None:
        os._exit(128 + signum)


atexit.register(_kill_everything)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _kill_everything)


class Service:
    """A child process in its own session (so the whole group can be
    signalled) with its output in a file."""

    def __init__(self, name, argv, logpath, env=None):
        self.name, self.argv, self.logpath = name, argv, logpath
        self.env = env
        self.proc = None
        self.killed = False
        self.stop_problem = None

    def spawn(self):
        self.killed = False
        logf = open(self.logpath, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, start_new_session=True, env=self.env)
        finally:
            logf.close()
        proc = self.proc
        register_emergency(id(self), lambda: _killpg(proc.pid))
        return self.proc

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def send_signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def killpg(self, sig=signal.SIGKILL):
        if self.proc is not None:
            self.killed = True
            _killpg(self.proc.pid, sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10):
        """SIGTERM, bounded wait, then SIGKILL for the whole group. Sets
        stop_problem when the process misbehaved: it would not exit, exited
        non-zero on SIGTERM, or had died on its own before."""
        self.stop_problem = None
        if self.proc is None:
            return None
        rc = None
        if self.proc.poll() is None:
            self.send_signal(signal.SIGTERM)
            rc = self.wait(timeout)
            if rc is None:
                self.stop_problem = f"still running {timeout}s after SIGTERM"
            elif rc != 0:
                self.stop_problem = f"exit status {rc} after SIGTERM"
        else:
            rc = self.proc.returncode
            if rc != 0 and not self.killed:
                self.stop_problem = f"had died on its own with status {rc}"
        # Leftover members of the group (workers) must not outlive a test.
        self.killpg(signal.SIGKILL)
        if rc is None:
            rc = self.wait(5)
        unregister_emergency(id(self))
        return rc


# ---------------------------------------------------------------- sink

class Message:
    def __init__(self, maildir, name):
        self.name = name
        with open(os.path.join(maildir, "new", name), "rb") as f:
            self.data = f.read()
        with open(os.path.join(maildir, "env", name + ".json")) as f:
            self.env = json.load(f)

    @property
    def rcpts(self):
        return self.env["rcpt_tos"]

    @property
    def mail_from(self):
        return self.env["mail_from"]

    def split_received(self):
        return split_received(self.data)

    def __repr__(self):
        return f"<Message {self.name} from={self.mail_from} to={self.rcpts} {len(self.data)}B>"


def split_received(data):
    """Split off the first header field, which must be Received:.
    Returns (received_field_bytes, rest); received is None when absent."""
    if not data[:9].lower() == b"received:":
        return None, data
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return data, b""
        pos = nl + 1
        if data[pos:pos + 1] not in (b" ", b"\t"):
            return data[:pos], data[pos:]


def unfold(header_bytes):
    return re.sub(rb"\r?\n[ \t]+", b" ", header_bytes).decode("utf-8", "replace")


class Sink(Service):
    def __init__(self, wd, name="sink", host=None, port=None, lmtp=False,
                 unix=None, tls=None, rcpt_replies=None, data_replies=None,
                 tcp=True, size_limit=None):
        self.wd = wd
        self.maildir = os.path.join(wd, name)
        self.pidfile = os.path.join(wd, name + ".pid")
        self.lmtp = lmtp
        self.unix = unix
        self.host = self.port = None
        argv = [PYTHON, SINK, "--maildir", self.maildir, "--pidfile", self.pidfile]
        if tcp:
            if host is None:
                host = pick_host()
            if port is None:
                port = free_port(host)
            self.host, self.port = host, port
            argv += ["--listen", f"{host}:{port}"]
        if lmtp:
            argv.append("--lmtp")
        if unix:
            argv += ["--unix", unix]
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        for addr, reply in (rcpt_replies or {}).items():
            argv += ["--rcpt-reply", f"{addr}={reply}"]
        for addr, reply in (data_replies or {}).items():
            argv += ["--data-reply", f"{addr}={reply}"]
        if size_limit:
            argv += ["--size-limit", str(size_limit)]
        super().__init__(name, argv, os.path.join(wd, name + ".log"))

    @property
    def next_hop(self):
        if self.unix:
            return f"lmtp:unix:{self.unix}"
        return f"{'lmtp' if self.lmtp else 'smtp'}:{self.host}:{self.port}"

    def start(self, timeout=15):
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        self.spawn()
        wait_for(lambda: os.path.exists(self.pidfile) or self.proc.poll() is not None,
                 timeout, what=f"{self.name} ready")
        if not self.running():
            raise RuntimeError(f"{self.name} exited: {self.log_text()[-2000:]}")
        return self

    def names(self):
        try:
            return sorted(os.listdir(os.path.join(self.maildir, "new")))
        except FileNotFoundError:
            return []

    def messages(self):
        return [Message(self.maildir, n) for n in self.names()]

    def wait_messages(self, count, timeout=20):
        """Wait until at least count messages arrived; return them all."""
        wait_for(lambda: len(self.names()) >= count, timeout,
                 what=f"{count} message(s) at {self.name} (have {len(self.names())})")
        return self.messages()

    def wait_message(self, pred, timeout=20, what="matching message"):
        def find():
            for m in self.messages():
                if pred(m):
                    return m
            return None
        return wait_for(find, timeout, interval=0.1, what=f"{what} at {self.name}")


# ---------------------------------------------------------------- mxd

def mxd_available():
    return os.access(MXD_BIN, os.X_OK)


def base_config(wd, host, port, next_hop=None, certs=None):
    cfg = {
        "hostname": MX_NAME,
        "listen": [f"{host}:{port}"],
        "spool_dir": os.path.join(wd, "spool"),
        "log_level": "info",
        "domains": LCList(
            [{"name": LOCAL_DOMAIN, "next_hop": next_hop}] if next_hop else []),
        "limits": {"command_timeout": 30, "data_timeout": 30,
                   "tls_handshake_timeout": 10, "shutdown_timeout": 5},
        "delivery": {"retry_min": 1, "retry_max": 2},
    }
    if IS_ROOT:
        cfg["user"] = RUN_USER
    if certs:
        cfg["tls"] = {"certificates": LCList(
            {"cert": c, "key": k} for c, k in certs)}
    return cfg


class Mxd(Service):
    def __init__(self, wd, config, name="mxd"):
        self.wd = wd
        self.config = config
        self.conf_path = os.path.join(wd, name + ".conf")
        host, _, port = config["listen"][0].rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        super().__init__(name, [MXD_BIN, "-c", self.conf_path],
                         os.path.join(wd, name + ".log"))

    def write_config(self, config=None, text=None):
        if config is not None:
            self.config = config
        body = text if text is not None else libconfig_text(self.config)
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(body)
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.conf_path)

    def start(self, timeout=15):
        if not mxd_available():
            # A missing binary is a broken build, not a reason to pass.
            raise RuntimeError(f"mxd not built: {MXD_BIN}")
        self.write_config()
        self.spawn()

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return _proc_net_listening(self.host, self.port)
        state = wait_for(ready, timeout, what=f"mxd listening on {self.host}:{self.port}")
        if state == "exited":
            raise RuntimeError(
                f"mxd exited with {self.proc.returncode} before listening:\n"
                + self.log_tail())
        return self

    def reload(self, config=None, text=None):
        self.write_config(config, text)
        self.send_signal(signal.SIGHUP)

    def queue(self, *args):
        """mxd -c FILE queue ARGS, as an operator runs it: (exit status,
        stdout, stderr)."""
        p = subprocess.run([MXD_BIN, "-c", self.conf_path, "queue", *args],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def pids(self):
        return process_tree(self.proc.pid) if self.proc else []

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def events(self, event=None, **match):
        out = []
        for line in self.log_text().splitlines():
            rec = parse_logfmt(line)
            if event is not None and rec.get("event") != event:
                continue
            if all(rec.get(k) == v for k, v in match.items()):
                out.append(rec)
        return out

    def wait_event(self, event=None, timeout=10, pred=None, **match):
        def find():
            for rec in self.events(event, **match):
                if pred is None or pred(rec):
                    return rec
            return None
        return wait_for(find, timeout, interval=0.1,
                        what=f"log event={event} {match} in {self.logpath}")

    def sessions_from(self, client_ip):
        """event=session lines that mention the client's address (tests bind
        each client to its own 127.0.x.y so the line can be found)."""
        def mentions(rec):
            return any(v == client_ip or v.startswith(client_ip + ":")
                       or v.startswith(f"[{client_ip}]") for v in rec.values())
        return [r for r in self.events("session") if mentions(r)]

    def wait_session(self, client_ip, timeout=10):
        return wait_for(lambda: (self.sessions_from(client_ip) or [None])[-1],
                        timeout, interval=0.1,
                        what=f"event=session line for client {client_ip}")


# ---------------------------------------------------------------- raw SMTP

class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])
        self.text = "\n".join(l[4:] for l in lines)

    def __repr__(self):
        return "Reply(" + " | ".join(self.lines) + ")"


class Closed(Exception):
    pass


class SmtpRaw:
    """A byte-exact SMTP client: what it sends is exactly what the server
    sees, and replies are read without interpretation."""

    def __init__(self, host, port, timeout=10, source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        if not chunk:
            raise Closed("connection closed by server")
        self.buf += chunk

    def read_reply(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no complete reply within {timeout}s "
                                       f"(have {lines} {self.buf!r})")
                self._fill(left)
                continue
            line = self.buf[:nl + 1]
            self.buf = self.buf[nl + 1:]
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def pending(self, wait=0.5):
        """Bytes the server sends within `wait` seconds without being asked."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._fill(left)
            except (socket.timeout, TimeoutError, ssl.SSLWantReadError,
                    Closed, ConnectionError):
                break
        data, self.buf = self.buf, b""
        return data

    def read_until_closed(self, timeout=None):
        """All replies until the server closes the connection."""
        out = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                out.append(self.read_reply(max(0.01, deadline - time.monotonic())))
            except (Closed, ConnectionResetError):
                return out

    def ehlo(self, name="client.test"):
        return self.cmd(f"EHLO {name}")

    def starttls(self, server_hostname=None, context=None):
        """STARTTLS and handshake. Raises if the server sent anything beyond
        the 220 line in plaintext."""
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError(f"STARTTLS refused: {r}")
        if self.buf:
            raise AssertionError(f"plaintext after 220 to STARTTLS: {self.buf!r}")
        ctx = context or insecure_client_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def insecure_client_context(minimum=None, maximum=None):
    """Test client TLS: self-signed server certificates, no verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def send_message(host, port, mail_from, rcpts, data, source=None, tls=False,
                 timeout=10):
    """One transaction over a raw socket with DATA; data is the unstuffed
    message (CRLF line ends). Returns the list of replies."""
    c = SmtpRaw(host, port, timeout=timeout, source=source)
    try:
        out = [c.read_reply()]
        out.append(c.ehlo())
        if tls:
            c.starttls()
            out.append(c.ehlo())
        out.append(c.cmd(f"MAIL FROM:<{mail_from}>"))
        for r in rcpts:
            out.append(c.cmd(f"RCPT TO:<{r}>"))
        out.append(c.cmd("DATA"))
        if out[-1].code == 354:
            c.send(dot_stuff(data) + b".\r\n")
            out.append(c.read_reply())
        out.append(c.cmd("QUIT"))
        return out
    finally:
        c.close()


def dot_stuff(data):
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    return stuffed


# ---------------------------------------------------------------- messages

def make_body(msg_id, size=300, seed=None):
    """A message whose body carries its id and a checksum of itself, so a
    copy found anywhere can be checked for corruption."""
    rnd = random.Random(seed if seed is not None else msg_id)
    lines = []
    total = 0
    while total < size:
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ")
                       for _ in range(rnd.randint(1, 76)))
        lines.append(line)
        total += len(line) + 2
    body = "\r\n".join(lines) + "\r\n"
    digest = hashlib.sha256(body.encode()).hexdigest()
    headers = (f"From: <sender@{LOCAL_DOMAIN}>\r\n"
               f"To: <rcpt@{LOCAL_DOMAIN}>\r\n"
               f"Subject: test {msg_id}\r\n"
               f"Message-ID: <{msg_id}@mxtest>\r\n"
               f"X-Test-Id: {msg_id}\r\n"
               f"X-Test-Sha256: {digest}\r\n\r\n")
    return (headers + body).encode()


def check_body(data):
    """(msg_id, ok) for a message made by make_body (Received lines may
    precede it)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None, False
    mid = re.search(rb"(?mi)^X-Test-Id: (\S+?)\r?$", head)
    dig = re.search(rb"(?mi)^X-Test-Sha256: ([0-9a-f]+)\r?$", head)
    if not (mid and dig):
        return (mid.group(1).decode() if mid else None), False
    ok = hashlib.sha256(body).hexdigest() == dig.group(1).decode()
    return mid.group(1).decode(), ok


# ---------------------------------------------------------------- test case

SANITIZER_REPORT = re.compile(
    r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer")


class MxTestCase(unittest.TestCase):
    """Gives each test a work directory and tears down whatever it started."""

    needs_mxd = True

    def setUp(self):
        if self.needs_mxd and not mxd_available():
            self.fail(f"mxd not built ({MXD_BIN}); run cmake --build build")
        self.wd = tempfile.mkdtemp(prefix="mxtest-")
        # mxd drops to an unprivileged user that must reach its spool here.
        os.chmod(self.wd, 0o755)
        self.services = []
        self.addCleanup(self._teardown)

    def _failed(self):
        # Cleanups run before unittest settles the outcome, and Python 3.11
        # may still say success then: look at the result's lists as well.
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if not outcome.success:
            return True
        res = outcome.result
        return any(t is self for t, _ in list(res.failures) + list(res.errors))

    def _teardown(self):
        problems = []
        for svc in reversed(self.services):
            try:
                svc.stop(timeout=10)
            except Exception as e:  # teardown must go on
                print(f"teardown {svc.name}: {e}", file=sys.stderr)
            if isinstance(svc, Mxd):
                if svc.stop_problem:
                    problems.append(f"{svc.name}: {svc.stop_problem}")
                # An ASan/UBSan build reports into the log; a worker that
                # tripped one may not have failed any assertion.
                for line in svc.log_text().splitlines():
                    if SANITIZER_REPORT.search(line):
                        problems.append(f"{svc.name}: {line.strip()}")
                        break
        if problems or self._failed() or os.environ.get("MXTEST_VERBOSE"):
            for svc in self.services:
                if isinstance(svc, Mxd):
                    print(f"\n----- {svc.name} log ({svc.logpath}) -----\n"
                          f"{svc.log_tail(80)}", file=sys.stderr)
        if os.environ.get("MXTEST_KEEP"):
            print(f"kept {self.wd}", file=sys.stderr)
        else:
            shutil.rmtree(self.wd, ignore_errors=True)
        if problems:
            raise AssertionError("mxd misbehaved: " + "; ".join(problems))

    # -- builders

    def cert(self, basename="rsa", cn=MX_NAME, sans=(), kind="rsa"):
        return make_cert(self.wd, basename, cn, sans, kind)

    def new_sink(self, name="sink", start=True, **kw):
        s = Sink(self.wd, name=name, **kw)
        self.services.append(s)
        if start:
            s.start()
        return s

    def mxd_config(self, next_hop=None, certs=None, host=None, port=None, **over):
        if host is None:
            host = pick_host()
        if port is None:
            port = free_port(host)
        cfg = base_config(self.wd, host, port, next_hop, certs)
        return deep_merge(cfg, over)

    def mxd(self, config, name="mxd", start=True):
        m = Mxd(self.wd, config, name=name)
        self.services.append(m)
        if start:
            m.start()
        return m

    def standard(self, tls=True, sink_kw=None, **over):
        """The usual setup: a sink as next hop of example.test, mxd with an
        RSA certificate. Returns (mxd, sink)."""
        sink = self.new_sink(**(sink_kw or {}))
        certs = [self.cert()] if tls else None
        m = self.mxd(self.mxd_config(sink.next_hop, certs, **over))
        return m, sink

    def raw(self, m, source=None, timeout=10):
        c = SmtpRaw(m.host, m.port, timeout=timeout, source=source)
        self.addCleanup(c.close)
        return c

    def assertReply(self, reply, code, enhanced=None, msg=None):
        self.assertEqual(reply.code, code, msg or f"unexpected reply {reply}")
        if enhanced:
            self.assertTrue(reply.lines[-1][4:].startswith(enhanced),
                            msg or f"reply {reply} lacks enhanced code {enhanced}")


def main():
    unittest.main(verbosity=2)
