"""Shared helpers for the control-plane integration tests.

A test here runs a small real fleet on loopback:

  * a private PostgreSQL 15 cluster (initdb in a temp dir, run as the
    postgres user when we are root, fsync on), one per test file, with a
    fresh database per test;
  * the fleet PKI made by `mailctl pki` exactly as docs/control-plane.md tells
    an operator to make it (one per test file);
  * controld (`controld -c FILE migrate`, then `controld -c FILE`) with mutual
    TLS on 127.0.x.y:PORT, its admin unix socket and its HTTP port;
  * one or two mxd with a `control` section, the aiosmtpd sink
    (tests/tools/sink.py) as next hop;
  * Python gRPC stubs generated from proto/ at test time (protoc +
    /usr/bin/grpc_python_plugin), for tests that speak gRPC themselves.

It builds on ../mxtest.py (Service, Mxd, Sink, configs, logfmt) rather than
duplicating it. Every wait is bounded.

Environment (set by ctest, defaults for running a file by hand):
  MXD_BIN, CONTROLD_BIN, MAILCTL   the binaries (default build/bin/...)
  MXFLEET_SOURCE_DIR               the source tree (for proto/ and schema/)
  PG_BINDIR                        default /usr/lib/postgresql/15/bin
  MXTEST_KEEP=1                    keep the temporary directories
  MXTEST_VERBOSE=1                 print the daemons' logs after every test

Cleanup does not depend on this process exiting normally: a detached
watchdog notices when the test process is gone (a runner's SIGKILL) and
kills every process started here (they all carry a marker in their
environment), then removes the temporary directories.
"""

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import (IS_ROOT, PYTHON, Service, deep_merge, free_port,  # noqa: E402,F401
                    insecure_client_context, parse_logfmt, pick_host, wait_for)

SRC = os.environ.get("MXFLEET_SOURCE_DIR",
                     os.path.abspath(os.path.join(HERE, "..", "..", "..")))
BUILD_BIN = os.path.join(SRC, "build", "bin")
MXD_BIN = mxtest.MXD_BIN
CONTROLD_BIN = os.environ.get("CONTROLD_BIN", os.path.join(BUILD_BIN, "controld"))
MAILCTL = os.environ.get("MAILCTL", os.path.join(BUILD_BIN, "mailctl"))
SCHEMA_DIR = os.path.join(SRC, "schema")
PROTO_DIR = os.path.join(SRC, "proto")
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
PSQL = "/usr/bin/psql"

CONTROLD_NAME = "controld.fleet.test"
MX1 = "mx1.fleet.test"
MX2 = "mx2.fleet.test"
LOCAL_DOMAIN = mxtest.LOCAL_DOMAIN  # the domain in mxd's own config file

# mxfleet.v1 enums (schema/003_outcomes.sql stores their numbers)
INBOUND, OUTBOUND = 1, 2
NOT_OFFERED, OFFERED, ATTEMPTED, ESTABLISHED = 1, 2, 3, 4

# Every process a test starts carries this in its environment; the watchdog
# finds them by it.
WATCHDOG = mxtest.Watchdog("CPTEST_RUN")
watch_dir = WATCHDOG.watch_dir


def child_env(extra=None):
    env = WATCHDOG.env()
    if extra:
        env.update(extra)
    return env


def run(argv, timeout=60, check=True, env=None, **kw):
    """Run a command, bounded; returns the CompletedProcess (text)."""
    p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=env or child_env(), **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n"
                           f"{p.stdout}\n{p.stderr}")
    return p


def binaries_missing():
    missing = [b for b in (MXD_BIN, CONTROLD_BIN, MAILCTL) if not os.access(b, os.X_OK)]
    if not os.access(os.path.join(PG_BINDIR, "initdb"), os.X_OK):
        missing.append(os.path.join(PG_BINDIR, "initdb"))
    return missing


# ---------------------------------------------------------------- watchdog

# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A private PostgreSQL cluster in a temp dir, on 127.0.0.1 at a fixed
    free port (kept across restarts, so connection strings stay valid) and a
    unix socket in the dir. Run as postgres when we are root."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cptest-pg-")
        watch_dir(self.dir)
        os.chmod(self.dir, 0o755)
        self.runas = []
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgresql.log")
        self.port = None
        self.host = "127.0.0.1"

    def pg(self, prog, *args, timeout=60, check=True):
        return run(self.runas + [os.path.join(PG_BINDIR, prog), *args],
                   timeout=timeout, check=check)

    def init(self):
        self.pg("initdb", "-D", self.data, "--auth=trust", "--username=postgres",
                "--encoding=UTF8", "--locale=C", "--no-instructions", timeout=120)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "shared_buffers = 16MB\nmax_connections = 60\n"
                    "fsync = on\nlogging_collector = off\n"
                    "log_min_messages = warning\nlog_line_prefix = '%m [%p] '\n")
        return self.start_on_free_port()

    def start_on_free_port(self, auto_conf=()):
        """Start on a free port, written to postgresql.auto.conf after the
        auto_conf lines; another port if that one was taken meanwhile."""
        for _ in range(5):
            port = free_port("127.0.0.1")
            with open(os.path.join(self.data, "postgresql.auto.conf"), "w") as f:
                f.writelines(list(auto_conf) + [f"port = {port}\n"])
            self.port = port
            if self.start(check=False):
                return self
            if "already in use" not in self.log_text():
                break
        raise RuntimeError("PostgreSQL did not start:\n" + self.log_text()[-3000:])

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, check=True):
        p = self.pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start",
                    check=check, timeout=60)
        return p.returncode == 0

    def stop(self, mode="fast"):
        self.pg("pg_ctl", "-D", self.data, "-w", "-t", "30", "stop", "-m", mode,
                check=False, timeout=60)

    def restart(self):
        self.pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "restart",
                "-m", "fast", timeout=90)

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def pids(self):
        """The postmaster's pid and its children's (backends, checkpointer,
        walwriter...): every process of this cluster."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            master = int(f.readline())
        return [master] + mxtest._children(master)

    def freeze(self):
        """SIGSTOP every process of the cluster, the postmaster first (so it
        starts no new backend meanwhile): connections stay open, nothing
        answers. Returns the pids stopped, for thaw."""
        pids = []
        for _ in range(2):  # again: a backend forked just before the stop
            for pid in self.pids():
                if pid in pids:
                    continue
                try:
                    os.kill(pid, signal.SIGSTOP)
                    pids.append(pid)
                except ProcessLookupError:  # a backend that just ended
                    pass
        return pids

    def thaw(self, pids):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def uri(self, db="postgres"):
        return f"postgresql://postgres@{self.host}:{self.port}/{db}"

    def createdb(self, name):
        self.psql(f'CREATE DATABASE "{name}"', db="postgres")
        return self.uri(name)

    def psql(self, sql, db="postgres", timeout=30):
        """Rows of the query's result, each a tuple of strings."""
        p = run([PSQL, "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                 "-d", self.uri(db), "-c", sql], timeout=timeout)
        return [tuple(line.split("\x1f")) for line in p.stdout.splitlines() if line != ""]

    def scalar(self, sql, db="postgres"):
        rows = self.psql(sql, db)
        return rows[0][0] if rows else None

    def destroy(self):
        if self.running():
            self.stop("immediate")
        if os.environ.get("MXTEST_KEEP"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- PKI

class Pki:
    """The fleet CA and certificates, made with mailctl pki as an operator
    would (docs/control-plane.md, PKI), and a stranger's CA from openssl."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="cptest-pki-")
        watch_dir(self.base)
        os.chmod(self.base, 0o755)
        self.dir = os.path.join(self.base, "pki")
        run([MAILCTL, "pki", "init", self.dir])
        run([MAILCTL, "pki", "issue", self.dir, CONTROLD_NAME, "--ip", "127.0.0.1"])
        run([MAILCTL, "pki", "issue", self.dir, MX1])
        run([MAILCTL, "pki", "issue", self.dir, MX2])
        run([MAILCTL, "pki", "issue", self.dir, "admin", "--admin"])
        self.ca = self.path("ca.pem")
        self.controld = self.pair(CONTROLD_NAME)
        self.mx1 = self.pair(MX1)
        self.mx2 = self.pair(MX2)
        self.admin = self.pair("admin")
        self._stranger = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def pair(self, name):
        return self.path(name + ".pem"), self.path(name + ".key")

    def stranger(self):
        """A CA of someone else's and a client certificate for mx1 from it."""
        if self._stranger is None:
            d = os.path.join(self.base, "stranger")
            os.mkdir(d)
            cakey, cacrt = f"{d}/ca.key", f"{d}/ca.pem"
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", cakey, "-out", cacrt,
                 "-days", "2", "-subj", "/CN=stranger CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            key, csr, crt, ext = (f"{d}/mx1.key", f"{d}/mx1.csr", f"{d}/mx1.pem", f"{d}/ext")
            with open(ext, "w") as f:
                f.write(f"subjectAltName=DNS:{MX1}\nextendedKeyUsage=serverAuth,clientAuth\n"
                        "subjectKeyIdentifier=hash\n")
            run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", f"/OU=host/CN={MX1}"])
            run(["openssl", "x509", "-req", "-in", csr, "-CA", cacrt, "-CAkey", cakey,
                 "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
            self._stranger = (crt, key)
        return self._stranger

    def destroy(self):
        if not os.environ.get("MXTEST_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- gRPC stubs

_stubs = None


def grpc_stubs():
    """(grpc, mxfleet_pb2, mxfleet_services_pb2_grpc), generated from proto/
    with protoc and grpc_python_plugin into a temp dir, once per process."""
    global _stubs
    if _stubs is None:
        import grpc
        gen = tempfile.mkdtemp(prefix="cptest-stubs-")
        watch_dir(gen)
        run(["protoc", f"-I{PROTO_DIR}", f"--python_out={gen}", f"--grpc_python_out={gen}",
             "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
             os.path.join(PROTO_DIR, "mxfleet.proto"),
             os.path.join(PROTO_DIR, "mxfleet_services.proto")])
        sys.path.insert(0, gen)
        import mxfleet_pb2
        import mxfleet_services_pb2_grpc
        _stubs = (grpc, mxfleet_pb2, mxfleet_services_pb2_grpc, gen)
    return _stubs[:3]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def grpc_channel(addr, client=None, ca=None):
    """A mutual-TLS channel to controld at (host, port), checking its
    certificate for controld.fleet.test against ca."""
    grpc, _, _ = grpc_stubs()
    cert, key = client if client else (None, None)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None)
    return grpc.secure_channel(f"{addr[0]}:{addr[1]}", creds,
                               options=[("grpc.ssl_target_name_override", CONTROLD_NAME)])


# ---------------------------------------------------------------- controld

class Controld(Service):
    def __init__(self, wd, pki, database, name="controld", host=None, port=None,
                 http_port=None, log_level="info", config=None):
        self.wd = wd
        self.host = host or pick_host()
        self.port = port or free_port(self.host)
        self.http_port = http_port or free_port(self.host)
        self.socket = os.path.join(wd, name + ".sock")
        self.conf_path = os.path.join(wd, name + ".conf")
        self.config = {
            "listen": f"{self.host}:{self.port}",
            "socket": self.socket,
            "http": f"{self.host}:{self.http_port}",
            "database": database,
            "schema_dir": SCHEMA_DIR,
            "log_level": log_level,
            "tls": {"cert": pki.controld[0], "key": pki.controld[1], "ca": pki.ca},
        }
        self.config = deep_merge(self.config, config or {})
        super().__init__(name, [CONTROLD_BIN, "-c", self.conf_path],
                         os.path.join(wd, name + ".log"), env=child_env())

    @property
    def addr(self):
        return (self.host, self.port)

    def write_config(self):
        with open(self.conf_path, "w") as f:
            f.write(mxtest.libconfig_text(self.config))

    def migrate(self):
        self.write_config()
        return run([CONTROLD_BIN, "-c", self.conf_path, "migrate"], timeout=60)

    def start(self, timeout=20):
        self.write_config()
        self.spawn()

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return (mxtest._proc_net_listening(self.host, self.port)
                    and mxtest._proc_net_listening(self.host, self.http_port)
                    and os.path.exists(self.socket))
        state = wait_for(ready, timeout, what=f"controld listening on {self.host}:{self.port}")
        if state == "exited":
            raise RuntimeError(f"controld exited with {self.proc.returncode}:\n"
                               + self.log_tail())
        return self

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

    def http_get(self, path, timeout=10):
        """(status, body) of GET path on controld's HTTP port."""
        url = f"http://{self.host}:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        """Prometheus text parsed into {name: float} (no labels used)."""
        status, body = self.http_get("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}: {body}")
        out = {}
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            out[name.strip()] = float(value)
        return out


# ---------------------------------------------------------------- mailctl

def parse_table(text):
    """mailctl's tables: a header line, then whitespace-separated rows.
    Returns a list of dicts keyed by the header's column names."""
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        return []
    cols = lines[0].split()
    rows = []
    for l in lines[1:]:
        vals = l.split()
        rows.append(dict(zip(cols, vals)))
    return rows


# ---------------------------------------------------------------- SMTP

def smtp_send(host, port, msg_id, source=None, starttls=False, rcpt=None, timeout=15):
    """One SMTP session with smtplib carrying one message. Returns the
    session's duration in seconds. Raises on any SMTP error."""
    rcpt = rcpt or f"rcpt@{LOCAL_DOMAIN}"
    t0 = time.monotonic()
    s = smtplib.SMTP(host, port, timeout=timeout, local_hostname=f"client-{msg_id}.test",
                     source_address=(source, 0) if source else None)
    try:
        s.ehlo()
        if starttls:
            s.starttls(context=insecure_client_context())
            s.ehlo()
        body = mxtest.make_body(msg_id, size=200)
        s.sendmail(f"sender@{LOCAL_DOMAIN}", [rcpt], body)
        s.quit()
    finally:
        s.close()
    return time.monotonic() - t0


def quick_session(host, port, name, timeout=15):
    """The shortest whole SMTP session: greeting, EHLO name, QUIT. Each one
    is a session, so each yields one outcome record. Returns its duration."""
    t0 = time.monotonic()
    c = mxtest.SmtpRaw(host, port, timeout=timeout)
    try:
        greet = c.read_reply()
        if greet.code != 220:
            raise AssertionError(f"greeting {greet}")
        r = c.ehlo(name)
        if r.code != 250:
            raise AssertionError(f"EHLO {r}")
        r = c.cmd("QUIT")
        if r.code != 221:
            raise AssertionError(f"QUIT {r}")
    finally:
        c.close()
    return time.monotonic() - t0


def many_sessions(host, port, names, threads=4, timeout=15):
    """quick_session for each name, from a few threads at once. Returns the
    list of durations; raises the first failure."""
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda n: quick_session(host, port, n, timeout), names))


# ---------------------------------------------------------------- the journal

def journal_records(journal_dir):
    """[(segment path, offset of the record header, data length, seq)] for
    the records in the journal's segments, parsed by the on-disk format of
    mxd/uploader/journal.h (16-byte segment header "MXJSEG01" + base seq; records of
    a 24-byte header "MXJR" len u32 seq u64 crc u32 hcrc u32, then data)."""
    import struct
    import zlib
    out = []
    for name in sorted(os.listdir(journal_dir)):
        if not name.endswith(".seg"):
            continue
        path = os.path.join(journal_dir, name)
        data = read(path)
        if data[:8] != b"MXJSEG01":
            raise AssertionError(f"{path}: no segment header")
        off = 16
        while off + 24 <= len(data):
            magic, ln, seq, crc, hcrc = struct.unpack_from("<4sIQII", data, off)
            if magic != b"MXJR" or zlib.crc32(data[off:off + 20]) != hcrc:
                raise AssertionError(f"{path}: bad record header at {off}")
            if off + 24 + ln > len(data):
                break
            out.append((path, off, ln, seq))
            off += 24 + ln
    return out


def rcpt_reply(host, port, rcpt, timeout=10):
    """(code, text) of RCPT TO:<rcpt> in a fresh plaintext session."""
    s = smtplib.SMTP(host, port, timeout=timeout, local_hostname="probe.test")
    try:
        s.ehlo()
        s.mail(f"sender@{LOCAL_DOMAIN}")
        code, text = s.rcpt(rcpt)
        try:
            s.quit()
        except smtplib.SMTPException:
            pass
        return code, text.decode(errors="replace")
    finally:
        s.close()


# ---------------------------------------------------------------- the fleet

class Cluster:
    """What one test file shares: the PostgreSQL cluster, the PKI, an mxd
    TLS certificate. Made in setUpModule, destroyed in tearDownModule."""

    def __init__(self):
        missing = binaries_missing()
        if missing:
            raise RuntimeError("not built / not installed (scripts/deps, cmake --build): "
                               + ", ".join(missing))
        self.pg = Postgres().init()
        self.pki = Pki()
        self.tls_cert = mxtest.make_cert(self.pki.base, "smtp", "mx.fleet.test")
        self.ndb = 0

    def new_database(self):
        self.ndb += 1
        return self.pg.createdb(f"mxfleet_{self.ndb}")

    def destroy(self):
        self.pg.destroy()
        self.pki.destroy()
        if _stubs and not os.environ.get("MXTEST_KEEP"):
            shutil.rmtree(_stubs[3], ignore_errors=True)


CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster()


def tearDownModule():
    global CLUSTER
    if CLUSTER:
        CLUSTER.destroy()
        CLUSTER = None
    WATCHDOG.kill_marked()


class FleetTestCase(mxtest.MxTestCase):
    """One test: its own database on the file's cluster, its own controld,
    sink and mxd(s). Test files call cptest.setUpModule/tearDownModule."""

    needs_mxd = True

    def setUp(self):
        if CLUSTER is None:
            self.skipTest("no cluster (setUpModule did not run)")
        super().setUp()
        watch_dir(self.wd)
        self.pg = CLUSTER.pg
        self.pki = CLUSTER.pki
        self.dbname = None
        self.database = CLUSTER.new_database()
        self.dbname = self.database.rsplit("/", 1)[1]

    def _teardown(self):
        """controld first (its exit status and sanitizer reports count as a
        failure, like mxd's), its log on failure, then mxtest's teardown."""
        problems = []
        for svc in reversed(self.services):
            if not isinstance(svc, Controld):
                continue
            try:
                svc.stop(timeout=10)
            except Exception as e:
                problems.append(f"{svc.name}: stop: {e}")
            if svc.stop_problem:
                problems.append(f"{svc.name}: {svc.stop_problem}")
            for line in svc.log_text().splitlines():
                if mxtest.SANITIZER_REPORT.search(line):
                    problems.append(f"{svc.name}: {line.strip()}")
                    break
        if problems or self._failed() or os.environ.get("MXTEST_VERBOSE"):
            for svc in self.services:
                if isinstance(svc, Controld):
                    print(f"\n----- {svc.name} log ({svc.logpath}) -----\n"
                          f"{svc.log_tail(80)}", file=sys.stderr)
            print("\n----- postgresql log (tail) -----\n" + CLUSTER.pg.log_text()[-2000:],
                  file=sys.stderr)
        try:
            super()._teardown()
        finally:
            if problems:
                raise AssertionError("controld misbehaved: " + "; ".join(problems))

    # -- builders

    def controld(self, name="controld", migrate=True, start=True, **kw):
        c = Controld(self.wd, self.pki, self.database, name=name, **kw)
        self.services.append(c)
        if migrate:
            c.migrate()
        if start:
            c.start()
        return c

    def sink(self, name="sink"):
        s = self.new_sink(name=name, start=False)
        s.env = child_env()
        s.start()
        return s

    def mxd_with_control(self, controld, sink, cert=None, name="mxd", host=None,
                         control=None, start=True, **over):
        """mxd (as mx1 unless cert says otherwise) reporting to controld,
        with the certificate files where `mailctl pki` put them (a 0700 root
        directory, keys 0600 root), as an operator would configure it."""
        cert = cert or self.pki.mx1
        cfg = self.mxd_config(sink.next_hop, [CLUSTER.tls_cert], host=host, **over)
        cfg["spool_dir"] = os.path.join(self.wd, name + "-spool")
        cfg["control"] = deep_merge({
            "server": f"{controld.host}:{controld.port}",
            "authority": CONTROLD_NAME,
            "cert": cert[0], "key": cert[1], "ca": self.pki.ca,
            "heartbeat_interval": 1,
        }, control or {})
        m = mxtest.Mxd(self.wd, cfg, name=name)
        m.env = child_env()
        self.services.append(m)
        if start:
            m.start()
        return m

    def fleet(self, **mxd_kw):
        """controld + sink + mxd (mx1). Returns (controld, mxd, sink)."""
        c = self.controld()
        s = self.sink()
        m = self.mxd_with_control(c, s, **mxd_kw)
        return c, m, s

    def mailctl(self, controld, *args, check=True, timeout=40):
        return run([MAILCTL, "--socket", controld.socket, *args], check=check,
                   timeout=timeout)

    def mailctl_admin_tls(self, controld, *args, check=True, timeout=40):
        return run([MAILCTL, "--server", f"{controld.host}:{controld.port}",
                    "--cert", self.pki.admin[0], "--key", self.pki.admin[1],
                    "--ca", self.pki.ca, "--authority", CONTROLD_NAME, *args],
                   check=check, timeout=timeout)

    # -- the database

    def sql(self, query):
        return self.pg.psql(query, db=self.dbname)

    def scalar(self, query):
        return self.pg.scalar(query, db=self.dbname)

    def stored_total(self, host=MX1):
        """Every outcome stored for host, inbound and outbound (mxd also
        records its sessions to the next hop): what `mailctl hosts` counts."""
        return self.scalar(f"SELECT count(*) FROM outcomes WHERE host_id = '{host}'")

    def outcome_counts(self, host=MX1, direction=INBOUND):
        """(rows, distinct seqs, distinct session ids) stored for host."""
        r = self.sql(f"SELECT count(*), count(DISTINCT seq), count(DISTINCT session_id) "
                     f"FROM outcomes WHERE host_id = '{host}' AND direction = {direction}")
        return tuple(int(x) for x in r[0])

    def wait_outcomes(self, n, host=MX1, timeout=40, direction=INBOUND):
        """Wait until at least n inbound outcome rows of host are stored;
        then let a moment pass and return the final counts."""
        def have():
            try:
                c = self.outcome_counts(host, direction)
            except RuntimeError:  # PostgreSQL restarting
                return None
            return c if c[0] >= n else None
        try:
            wait_for(have, timeout, interval=0.25,
                     what=f"{n} inbound outcomes of {host} in PostgreSQL")
        except TimeoutError as e:
            raise AssertionError(f"{e}; have {self.outcome_counts(host, direction)}") from None
        time.sleep(1.0)  # anything beyond n (a duplicate) would show now
        return self.outcome_counts(host, direction)

    def wait_session_logged(self, m, n, timeout=20):
        """Wait until mxd logged n event=session lines (the worker has
        finished the sessions and emitted their outcomes)."""
        return wait_for(lambda: len(m.events("session")) >= n, timeout, interval=0.1,
                        what=f"{n} session lines in {m.logpath}")


def main():
    unittest.main(verbosity=2)
