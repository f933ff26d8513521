"""A PostgreSQL primary and a streaming-replication standby for the fleet
tests, each a private cluster in its own 0755 temp dir on 127.0.0.1 (run as
the postgres user when we are root), built on ../control/cptest.py's
Postgres: initdb for the primary, `pg_basebackup -R -X stream` for the
standby, `pg_ctl stop -m fast` and `pg_ctl promote` for a failover, as an
operator would (docs/control-plane.md, "High availability of the
database"). Every wait is bounded; the processes carry cptest's watchdog
marker, so they are killed even when the test process dies.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import Postgres, wait_for  # noqa: E402


class Standby(Postgres):
    """A hot standby of primary, streaming from it (primary_conninfo and
    standby.signal written by pg_basebackup -R), on a port of its own."""

    def __init__(self, primary):
        super().__init__()
        self.primary = primary

    def init(self):
        self.pg("pg_basebackup", "-h", self.primary.host, "-p", str(self.primary.port),
                "-U", "postgres", "-D", self.data, "-R", "-X", "stream", "-c", "fast",
                timeout=120)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"unix_socket_directories = '{self.dir}'\nhot_standby = on\n")
        auto = os.path.join(self.data, "postgresql.auto.conf")
        with open(auto) as f:  # primary_conninfo, and the primary's port
            kept = [line for line in f if not line.startswith("port")]
        return self.start_on_free_port(kept)

    def in_recovery(self):
        return self.scalar("SELECT pg_is_in_recovery()") == "t"

    def promote(self):
        self.pg("pg_ctl", "-D", self.data, "-w", "-t", "30", "promote", timeout=60)
        wait_for(lambda: not self.in_recovery(), 30, interval=0.2,
                 what="the standby out of recovery")


class ReplicatedPostgres:
    """primary + standby; uri() names both (libpq multi-host)."""

    def __init__(self):
        self.primary = Postgres().init()
        try:
            self.standby = Standby(self.primary).init()
            self.wait_streaming()
        except Exception:
            self.primary.destroy()
            raise

    def wait_streaming(self, timeout=30):
        wait_for(lambda: self.primary.scalar(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "1",
            timeout, interval=0.2, what="the standby streaming from the primary")

    def wait_replayed(self, timeout=30):
        """The standby has replayed everything the primary has written."""
        lsn = self.primary.scalar("SELECT pg_current_wal_lsn()")
        wait_for(lambda: self.standby.scalar(
            f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
            timeout, interval=0.1, what=f"the standby replaying up to {lsn}")

    def server(self, which):
        pg = self.primary if which == "primary" else self.standby
        return f"{pg.host}:{pg.port}"

    def uri(self, db, order=("primary", "standby"), target_session_attrs=None):
        """postgresql://postgres@H1:P1,H2:P2/db, hosts in order."""
        hosts = ",".join(self.server(w) for w in order)
        q = f"?target_session_attrs={target_session_attrs}" if target_session_attrs else ""
        return f"postgresql://postgres@{hosts}/{db}{q}"

    def failover(self):
        """Stop the primary (fast: its sessions are ended) and promote the
        standby. Returns the seconds the two steps took."""
        t0 = time.monotonic()
        self.primary.stop("fast")
        if self.primary.running():
            raise RuntimeError("the primary did not stop:\n" + self.primary.log_text()[-2000:])
        self.standby.promote()
        return time.monotonic() - t0

    def log_text(self):
        return ("--- primary ---\n" + self.primary.log_text()[-1500:]
                + "\n--- standby ---\n" + self.standby.log_text()[-1500:])

    def destroy(self):
        for pg in (getattr(self, "standby", None), self.primary):
            if pg is not None:
                pg.destroy()


class Cluster:
    """What cptest.FleetTestCase expects in cptest.CLUSTER, without its
    single PostgreSQL: the PKI and mxd's TLS certificate; pg is set per test
    (for the logs printed when a test fails)."""

    def __init__(self):
        missing = cptest.binaries_missing()
        if missing:
            raise RuntimeError("not built / not installed: " + ", ".join(missing))
        self.pki = cptest.Pki()
        self.tls_cert = cptest.mxtest.make_cert(self.pki.base, "smtp", "mx.fleet.test")
        self.pg = None

    def destroy(self):
        self.pki.destroy()


def setUpModule():
    cptest.CLUSTER = Cluster()


def tearDownModule():
    if cptest.CLUSTER:
        cptest.CLUSTER.destroy()
        cptest.CLUSTER = None
    cptest.WATCHDOG.kill_marked()
