#!/usr/bin/python3
"""Process model seen from outside: started as root mxd runs as the
configured user; SIGHUP reloads (and keeps the old configuration when the
file is broken); SIGTERM lets a transaction in flight finish and exits."""

import os
import pwd
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body  # noqa: E402

ADDED = "added.test"
SENDER = f"sender@{LOCAL_DOMAIN}"


def rcpt_code(m, rcpt, source=None):
    """The reply code to RCPT; 421 when the server closed the session
    first (workers being replaced by a reload may do that)."""
    try:
        with smtplib.SMTP(m.host, m.port, timeout=10, local_hostname="privs.test",
                          source_address=(source, 0) if source else None) as s:
            s.ehlo()
            s.docmd(f"MAIL FROM:<{SENDER}>")
            return s.docmd(f"RCPT TO:<{rcpt}>")[0]
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        return 421


def uids(pid):
    st = mxtest.proc_status(pid)
    return ([int(x) for x in st["Uid"].split()], [int(x) for x in st["Gid"].split()],
            st.get("Groups", "").split())


class PrivilegeTest(mxtest.MxTestCase):
    def start_as_root(self):
        if not mxtest.IS_ROOT:
            self.skipTest("needs root")
        m, _ = self.standard(workers=2)
        # Serve one session so lazily started workers exist.
        self.assertEqual(rcpt_code(m, f"a@{LOCAL_DOMAIN}"), 250)
        pids = m.pids()
        self.assertGreaterEqual(len(pids), 2,
                                f"workers = 2 but the process tree is {pids}")
        return m, pids

    def assert_runs_as_user(self, pid):
        pw = pwd.getpwnam(mxtest.RUN_USER)
        uid, gid, groups = uids(pid)
        name = mxtest.proc_status(pid)["Name"]
        self.assertEqual(uid, [pw.pw_uid] * 4,
                         f"{name}[{pid}] real/effective/saved/fs uid {uid}")
        self.assertEqual(gid, [pw.pw_gid] * 4,
                         f"{name}[{pid}] real/effective/saved/fs gid {gid}")
        self.assertTrue(set(groups) <= {str(pw.pw_gid)},
                        f"{name}[{pid}] kept supplementary groups {groups}")

    def test_session_workers_run_as_configured_user(self):
        m, pids = self.start_as_root()
        # The main process's children: session workers and delivery, the
        # processes that parse what clients and next hops send.
        children = [p for p in pids if p != m.proc.pid]
        self.assertTrue(children, "no worker processes")
        for pid in children:
            with self.subTest(pid=pid):
                self.assert_runs_as_user(pid)
        st = os.stat(m.config["spool_dir"])
        self.assertEqual(st.st_uid, pwd.getpwnam(mxtest.RUN_USER).pw_uid,
                         "spool_dir not owned by the run user")

    def test_no_process_keeps_root(self):
        # docs/mxd.md: "Started as root, mxd binds its listeners, loads its
        # keys, creates the spool and then runs as user."
        m, pids = self.start_as_root()
        for pid in pids:
            with self.subTest(pid=pid, main=(pid == m.proc.pid)):
                self.assert_runs_as_user(pid)

    def test_workers_share_listener(self):
        m, sink = self.standard(workers=3)
        codes = [rcpt_code(m, f"w{i}@{LOCAL_DOMAIN}") for i in range(12)]
        self.assertEqual(codes, [250] * 12)
        self.assertGreaterEqual(len(m.pids()), 3)


class ReloadTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard(workers=2)

    def add_domain_config(self):
        cfg = dict(self.m.config)
        cfg["domains"] = mxtest.LCList(list(cfg["domains"])
                                       + [{"name": ADDED, "next_hop": self.sink.next_hop}])
        return cfg

    def test_sighup_adds_domain(self):
        self.assertEqual(rcpt_code(self.m, f"u@{ADDED}"), 554)
        self.m.reload(self.add_domain_config())
        # Several connections, so every worker is asked.
        mxtest.wait_for(lambda: all(rcpt_code(self.m, f"u{i}@{ADDED}") == 250
                                    for i in range(8)),
                        10, interval=0.2, what="new domain accepted after SIGHUP")
        self.assertEqual(rcpt_code(self.m, f"u@{LOCAL_DOMAIN}"), 250)
        self.assertTrue(self.m.running(), "mxd died on SIGHUP")
        self.assertTrue(_listening(self.m), "listener lost on SIGHUP")
        # Mail to the new domain is delivered to its next hop.
        msg_id = uuid.uuid4().hex[:10]
        with smtplib.SMTP(self.m.host, self.m.port, timeout=10) as s:
            s.sendmail(SENDER, [f"new@{ADDED}"], make_body(msg_id))
        self.sink.wait_message(lambda x: f"X-Test-Id: {msg_id}".encode() in x.data)

    def test_session_in_flight_survives_sighup(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.m.reload(self.add_domain_config())
        time.sleep(1)
        self.assertReply(c.cmd(f"RCPT TO:<r@{LOCAL_DOMAIN}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_body("hup-inflight") + b".\r\n")
        self.assertReply(c.read_reply(), 250)

    def test_idle_session_survives_sighup(self):
        """A client between EHLO and MAIL when a reload happens. The contract
        says only that listeners and user are kept; cutting such sessions
        with 421 makes every reload (config snapshots will come from controld)
        defer mail at every sender connected at that moment."""
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.m.reload(self.add_domain_config())
        time.sleep(1)
        try:
            r = c.cmd(f"MAIL FROM:<{SENDER}>")
        except (mxtest.Closed, ConnectionError) as e:
            self.fail(f"idle session dropped by SIGHUP ({e}); got {c.buf!r}")
        self.assertReply(r, 250, msg=f"idle session cut by SIGHUP: {r}")

    def test_broken_file_keeps_old_config(self):
        self.m.reload(self.add_domain_config())
        mxtest.wait_for(lambda: rcpt_code(self.m, f"u@{ADDED}") == 250, 10,
                        interval=0.2, what="reload")
        log_len = len(self.m.log_text())
        self.m.reload(text='hostname = "broken";\ndomains = ( { name = ;\n')
        mxtest.wait_for(lambda: len(self.m.log_text()) > log_len, 10,
                        what="a log line about the failed reload")
        time.sleep(1)
        self.assertTrue(self.m.running(), "mxd died on a broken config")
        for i in range(6):
            self.assertEqual(rcpt_code(self.m, f"u{i}@{ADDED}"), 250,
                             "old configuration lost after a failed reload")
        new_log = self.m.log_text()[log_len:]
        self.assertRegex(new_log, r"(?i)(error|warn)", new_log)
        self.assertRegex(new_log, r"(?i)(line\W*\d+|\.conf:\d+)", "error does not name the line")

    def test_unknown_key_on_reload_keeps_old_config(self):
        cfg = dict(self.m.config, no_such_key=1)
        self.m.reload(cfg)
        time.sleep(1.5)
        self.assertTrue(self.m.running())
        self.assertEqual(rcpt_code(self.m, f"u@{LOCAL_DOMAIN}"), 250)
        self.assertIn("no_such_key", self.m.log_text())


class RootOnlyKeyReloadTest(mxtest.MxTestCase):
    def test_sighup_with_root_only_key(self):
        """Keys are normally root:root 0600. mxd reads them as root at start;
        a later SIGHUP (which the contract says reloads domains and TLS
        certificates) must not fail just because the process no longer
        runs as root."""
        if not mxtest.IS_ROOT:
            self.skipTest("needs root")
        sink = self.new_sink()
        cert, key = self.cert()
        os.chmod(key, 0o600)
        m = self.mxd(self.mxd_config(sink.next_hop, [(cert, key)]))
        cfg = dict(m.config)
        cfg["domains"] = mxtest.LCList(list(cfg["domains"])
                                       + [{"name": ADDED, "next_hop": sink.next_hop}])
        m.reload(cfg)
        try:
            mxtest.wait_for(lambda: rcpt_code(m, f"u@{ADDED}") == 250, 8, interval=0.3,
                            what="domain added by SIGHUP")
        except TimeoutError:
            failed = [r for r in m.events() if "fail" in r.get("event", "")
                      or r.get("level") == "error"]
            self.fail(f"SIGHUP reload failed with a root-only key: {failed}")
        # And TLS still works after the reload.
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        c.starttls()
        self.assertReply(c.ehlo(), 250)


def _listening(m):
    return mxtest._proc_net_listening(m.host, m.port)


def probe(m, wait=2.0):
    """What a new client sees: refused, reset, closed, its greeting code, or
    hang (connected but nothing within `wait` seconds)."""
    try:
        s = socket.create_connection((m.host, m.port), timeout=wait)
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error {e}"
    try:
        data = s.recv(100)
        return data[:3].decode() if data else "closed"
    except socket.timeout:
        return "hang"
    except ConnectionResetError:
        return "reset"
    finally:
        s.close()


class ShutdownTest(mxtest.MxTestCase):
    def start(self, shutdown_timeout=4):
        self.m, self.sink = self.standard(workers=2,
                                          limits={"shutdown_timeout": shutdown_timeout})

    def test_sigterm_idle_exits_fast_and_cleanly(self):
        self.start()
        pids = self.m.pids()
        t0 = time.monotonic()
        self.m.send_signal(signal.SIGTERM)
        rc = self.m.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, f"exit status {rc}")
        self.assertLess(took, 4, "idle mxd took the whole shutdown timeout")
        mxtest.wait_for(lambda: not any(mxtest.alive(p) for p in pids), 5,
                        what="all mxd processes gone")

    def open_transaction(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<r@{LOCAL_DOMAIN}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msg_id = uuid.uuid4().hex[:10]
        body = mxtest.dot_stuff(make_body(msg_id))
        c.send(body[:100])
        return c, msg_id, body

    def test_sigterm_lets_transaction_finish(self):
        self.start(shutdown_timeout=6)
        c, msg_id, body = self.open_transaction()
        self.m.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        c.send(body[100:] + b".\r\n")
        r = c.read_reply(timeout=10)
        self.assertReply(r, 250, msg="transaction in flight cut by SIGTERM")
        try:
            c.cmd("QUIT", timeout=5)
        except (mxtest.Closed, OSError):
            pass
        rc = self.m.wait(10)
        self.assertEqual(rc, 0)
        # Restarted, it delivers what it accepted.
        self.m.start()
        self.sink.wait_message(lambda x: f"X-Test-Id: {msg_id}".encode() in x.data,
                               timeout=20)

    def test_sigterm_stops_accepting_new_sessions(self):
        self.start(shutdown_timeout=8)
        c, _, _ = self.open_transaction()
        self.m.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # A new client must learn at once that this server is going away
        # (refused, or 421), not sit in a listen queue nobody serves.
        outcomes = [probe(self.m) for _ in range(6)]
        self.assertTrue(all(o in ("refused", "reset", "closed", "421") for o in outcomes),
                        f"new connections during shutdown: {outcomes}")

    def test_sigterm_stuck_transaction_bounded_by_timeout(self):
        self.start(shutdown_timeout=3)
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        c.cmd(f"MAIL FROM:<{SENDER}>")
        c.cmd(f"RCPT TO:<r@{LOCAL_DOMAIN}>")
        c.cmd("DATA")
        c.send(b"Subject: never finished\r\n")
        t0 = time.monotonic()
        self.m.send_signal(signal.SIGTERM)
        rc = self.m.wait(15)
        took = time.monotonic() - t0
        self.assertIsNotNone(rc, "mxd still running 15 s after SIGTERM")
        self.assertLess(took, 3 + 3, f"exit took {took:.1f}s with shutdown_timeout 3")
        self.assertGreaterEqual(took, 2.5, "transaction in flight not given its time")
        self.assertFalse(_listening(self.m))


class CliTest(mxtest.MxTestCase):
    """mxd -V and -n as documented."""

    def run_mxd(self, *args):
        return subprocess.run([mxtest.MXD_BIN, *args], capture_output=True,
                              text=True, timeout=20)

    def check(self, text):
        path = os.path.join(self.wd, "check.conf")
        with open(path, "w") as f:
            f.write(text)
        return self.run_mxd("-n", "-c", path)

    def test_version(self):
        p = self.run_mxd("-V")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout + p.stderr, r"\d+\.\d+")

    def test_check_valid(self):
        cfg = mxtest.base_config(self.wd, "127.0.0.1", 2525, "smtp:127.0.0.1:26",
                                 [self.cert()])
        p = self.check(mxtest.libconfig_text(cfg))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_errors_name_key_and_line(self):
        base = mxtest.libconfig_text(
            mxtest.base_config(self.wd, "127.0.0.1", 2525, "smtp:127.0.0.1:26"))
        nlines = base.count("\n")
        cases = {
            "unknown key": ("bogus_key = 1;\n", "bogus_key"),
            "wrong type": ('workers = "two";\n', "workers"),
            "out of range": ("workers = 65;\n", "workers"),
            "bad min_version": ('tls = { min_version = "SSLv3"; };\n', "min_version"),
        }
        for what, (extra, key) in cases.items():
            with self.subTest(what):
                p = self.check(base + extra)
                self.assertEqual(p.returncode, 1, f"{what}: accepted")
                self.assertIn(key, p.stderr)
                self.assertRegex(p.stderr, rf"(?i)(line\W*{nlines + 1}\b|:{nlines + 1}\b)",
                                 f"{what}: line {nlines + 1} not named")


if __name__ == "__main__":
    mxtest.main()
