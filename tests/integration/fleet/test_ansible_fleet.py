#!/usr/bin/env python3
"""A fleet stood up by ansible/site.yml from the packages `make deb` built,
over SSH, on five hosts that are network namespaces (fleetns.py):

  ca.fleet.test    fleet CA; also the senders (swaks, a private Postfix) and
                   the next hop (sink)
  pg1.fleet.test   PostgreSQL primary, controld
  pg2.fleet.test   PostgreSQL standby (streaming replication), controld
  mx1.fleet.test   mxd
  mx2.fleet.test   mxd

Mail sent to both MX hosts, by swaks and by a real Postfix (Debian's
package, a private instance on the CA host: sendmail(1) submits, its smtp
client sends to mx1 or mx2 by a transport map keyed on the recipient),
reaches the next hop; Postfix logs status=sent to each MX host with mxd's
queue id, and the outcome of each of Postfix's sessions (its EHLO name,
its message count) is in PostgreSQL (and on the standby). A second run of
the playbook changes nothing. Then pg1 fails in two steps, mail flowing
through both MX hosts meanwhile (swaks and Postfix from the CA host):

  6. its controld is SIGKILLed: both mxd fail over to pg2's controld
     (control.servers); with the next hop down, `mailctl queue list --host
     mx1` through pg2's controld shows the message mx1 keeps, then an empty
     queue once it is delivered;
  7. its PostgreSQL is stopped and pg2's promoted: pg2's controld follows.
     In between, with no read-write database, `mailctl --json hosts` and
     `mailctl queue list --host mx1` through pg2's controld fail with exit 3
     and "UNAVAILABLE: database: ..." on stderr, nothing on stdout (never an
     empty answer that looks like one).

After each, every session the mxd logged has its outcome in PostgreSQL
exactly once (the primary of the moment; nothing lost, nothing counted
twice), every message Postfix took was sent once to its MX host and is at
the next hop, and `mailctl --json hosts` through pg2's controld (the admin
certificate, from the CA host) shows both MX hosts ok, just seen, backlog 0.

Environment: MXFLEET_DEB_DIR holds mxfleet-{mxd,controld,mailctl}_*.deb
built from this tree; without it the test skips (`make check-fleet` builds
the packages and sets it). MXTEST_KEEP=1 keeps the work dir (/mnt/fleetns-*).
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleetns  # noqa: E402
sys.path.insert(0, os.path.join(HERE, ".."))
from postfix_conf import main_cf, master_cf  # noqa: E402

SRC = os.environ.get("MXFLEET_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..", "..")))
DEB_DIR = os.environ.get("MXFLEET_DEB_DIR")
ANSIBLE_DIR = os.path.join(SRC, "ansible")
SINK = os.path.join(SRC, "tests", "tools", "sink.py")
PACKAGES = ["mxfleet-mxd", "mxfleet-controld", "mxfleet-mailctl"]

CA, PG1, PG2, MX1, MX2 = (f"{n}.fleet.test" for n in ("ca", "pg1", "pg2", "mx1", "mx2"))
GROUPS = {
    "fleet_ca": [CA],
    "postgresql_primary": [PG1],
    "postgresql_standby": [PG2],
    "controld": [PG1, PG2],
    "mxd": [MX1, MX2],
}
DOMAIN = "fleet.example"
SINK_PORT = 2525
SINK_PID = "/run/sink.pid"
PLAYBOOK_TIMEOUT = 1500
POSTFIX_HELO = "postfix.ca.fleet.test"

# A private Postfix on the CA host: its own main.cf and master.cf under the
# host's /etc/postfix (the host's overlay, so the real machine's stays as it
# is), its own queue and data directories, no listener, a log file. The
# sendmail(1) of the package submits; the smtp client sends each recipient
# address to its MX host by the transport map (via-mx1@ to mx1, via-mx2@ to
# mx2), anything else fails at once.
POSTFIX_CONF = "/etc/postfix"
POSTFIX_LOG = "/var/log/postfix-fleet.log"


def postfix_rcpt(mx):
    """The recipient Postfix's transport map sends through mx."""
    return f"via-{mx.split('.')[0]}@{DOMAIN}"


def start_postfix(host, mx_addrs):
    """Configure and start the private Postfix on host (a fleetns.Host);
    mx_addrs maps each MX host name to its address."""
    transport = ", ".join(f"{{{postfix_rcpt(mx)} = smtp:[{a}]:25}}"
                          for mx, a in sorted(mx_addrs.items()))
    host.write(f"{POSTFIX_CONF}/main.cf", main_cf(
        "/var/spool/postfix-fleet", "/var/lib/postfix-fleet", POSTFIX_LOG, transport,
        host.addr, smtp_helo_name=POSTFIX_HELO, myhostname=POSTFIX_HELO,
        mydomain="ca.fleet.test", default_transport="error:5.1.2 not a fleet MX host"))
    host.write(f"{POSTFIX_CONF}/master.cf", master_cf())
    host.run(["install", "-d", "-m", "0755", "/var/spool/postfix-fleet"])
    host.run(["install", "-d", "-o", "postfix", "-g", "root", "-m", "0700",
              "/var/lib/postfix-fleet"])
    # postfix(1) prints its errors only to a terminal: give it one.
    p = host.run(["script", "-qec", "/usr/sbin/postfix start", "/dev/null"], check=False,
                 timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"postfix start exited {p.returncode}:\n{p.stdout}{p.stderr}\n"
                             + host.run(["cat", POSTFIX_LOG], check=False).stdout)


def postfix_submit(host, mx, tag):
    """One message to Postfix's sendmail(1) on host for mx, Subject and
    Message-ID tag; None when sendmail took it, else what it said."""
    msg = (f"From: <sender@origin.example>\nTo: <{postfix_rcpt(mx)}>\nSubject: {tag}\n"
           f"Message-ID: <{tag}@{POSTFIX_HELO}>\n\nsent by Postfix through {mx}\n")
    p = host.run(["/usr/sbin/sendmail", "-i", "-f", "sender@origin.example", "--",
                  postfix_rcpt(mx)], check=False, timeout=60, input=msg)
    return None if p.returncode == 0 else \
        f"sendmail {tag} for {mx} exited {p.returncode}: {p.stdout}{p.stderr}"


def postfix_deliveries(log):
    """{message-id: (queue id, [(relay address, status, reply)])} from
    Postfix's log."""
    qids, out = {}, {}
    for m in re.finditer(r" postfix/cleanup\[\d+\]: (\w+): message-id=<([^>]*)>", log):
        qids[m.group(1)] = m.group(2)
        out[m.group(2)] = (m.group(1), [])
    for m in re.finditer(r" postfix/smtp\[\d+\]: (\w+): to=<[^>]*>, relay=[^\[\s]*\[([\d.]+)\]"
                         r":\d+, .*? status=(\w+) \((.*)\)$", log, re.M):
        if m.group(1) in qids:
            out[qids[m.group(1)]][1].append((m.group(2), m.group(3), m.group(4)))
    return out


def skip_reason():
    if fleetns.missing_tools():
        return "fleetns needs " + ", ".join(fleetns.missing_tools())
    if "build-asan" in os.environ.get("MXD_BIN", ""):
        return ("the ASan build: the packages come from the plain build (make deb), "
                "where this test runs")
    for tool in ("ansible-playbook", "swaks", "pg_createcluster", "script", "/usr/sbin/postfix"):
        if not shutil.which(tool):
            return f"{tool} not installed (scripts/deps)"
    if not DEB_DIR:
        return ("MXFLEET_DEB_DIR is not set: the full fleet test provisions from the "
                "packages of this tree and runs under `make check-fleet`")
    missing = [p for p in PACKAGES if not glob.glob(os.path.join(DEB_DIR, p + "_*.deb"))]
    if missing:
        return (f"no {', '.join(missing)} package in {DEB_DIR}: run `make deb` first "
                "(the fleet is provisioned from the packages)")
    return None


def recap(output):
    """PLAY RECAP counters per host: {host: {"ok": n, "changed": n, ...}}."""
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


@unittest.skipIf(skip_reason(), skip_reason())
class AnsibleFleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = fleetns.Fleet([CA, PG1, PG2, MX1, MX2])
        try:
            cls._provision()
        except BaseException:
            cls._dump_logs()
            cls.fleet.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.destroy()

    @classmethod
    def _provision(cls):
        f = cls.fleet
        ca = f.by_name[CA]
        cls.inventory = os.path.join(f.dir, "inventory")
        with open(cls.inventory, "w") as fh:
            fh.write(f.inventory(GROUPS))
        cls.vars = os.path.join(f.dir, "vars.json")
        with open(cls.vars, "w") as fh:
            json.dump({
                "mxfleet_deb_dir": DEB_DIR,
                "mxfleet_manage_hosts_file": True,
                "postgresql_mxfleet_password": "fleet-test-db",
                "postgresql_replication_password": "fleet-test-repl",
                "mxd_domains": [{"name": DOMAIN, "next_hop": f"smtp:{ca.addr}:{SINK_PORT}",
                                 "recipient_check": "any"}],
                "mxd_delivery": {"retry_min": 1, "retry_max": 2},
                "mxd_mta_sts_listen": [],
                "mxd_control_heartbeat_interval": 1,
            }, fh)
        # The next hop, on the CA host.
        cls.maildir = "/srv/sink"
        ca.run(["mkdir", "-p", cls.maildir])
        cls.start_sink()
        cls.first = cls.playbook()
        start_postfix(ca, {mx: f.by_name[mx].addr for mx in (MX1, MX2)})

    @classmethod
    def start_sink(cls):
        ca = cls.fleet.by_name[CA]
        ca.sh(f"nohup /usr/bin/python3 {SINK} --maildir {cls.maildir} --pidfile {SINK_PID} "
              f"--listen {ca.addr}:{SINK_PORT} >>/var/log/sink.log 2>&1 &")
        deadline = time.monotonic() + 30
        while ca.run(["test", "-s", SINK_PID], check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError("the sink did not start:\n" + ca.read("/var/log/sink.log"))
            time.sleep(0.2)

    @classmethod
    def ensure_sink(cls):
        """Start the sink again unless it runs (a failed test stopped it)."""
        p = cls.fleet.by_name[CA].run(["cat", SINK_PID], check=False)
        if p.returncode != 0 or gone(int(p.stdout)):
            cls.start_sink()

    runs = 0
    sent = []  # (mx, tag) of every message self.send sent
    pf_sent = []  # (mx, tag) of every message self.pf_send gave Postfix

    @classmethod
    def playbook(cls):
        """Run site.yml; its output (also in the work dir's playbook-N.log)."""
        cls.runs += 1
        log = os.path.join(cls.fleet.dir, f"playbook-{cls.runs}.log")
        with open(log, "w") as out:
            try:
                rc = cls.fleet.controller_run(
                    ["ansible-playbook", "-i", cls.inventory, "-e", "@" + cls.vars, "site.yml"],
                    check=False, timeout=PLAYBOOK_TIMEOUT, cwd=ANSIBLE_DIR,
                    capture_output=False, stdout=out, stderr=subprocess.STDOUT).returncode
            except subprocess.TimeoutExpired:
                rc = "(killed after %d s)" % PLAYBOOK_TIMEOUT
        with open(log) as f:
            text = f.read()
        if rc != 0:
            raise AssertionError(f"ansible-playbook exited {rc}:\n{text[-12000:]}")
        return text

    @classmethod
    def _dump_logs(cls):
        for h in cls.fleet.hosts:
            if h.holder is None or h.holder.poll() is not None:
                continue
            p = h.sh("tail -n 30 /var/log/mxfleet/*.log /var/log/postgresql/*.log "
                     f"{POSTFIX_LOG} 2>/dev/null", check=False)
            if p.stdout.strip():
                print(f"---- {h.name}\n{p.stdout}", file=sys.stderr)

    # -- helpers

    def psql(self, host, sql):
        p = self.fleet.by_name[host].run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-tA", "-d", "mxfleet", "-c", sql])
        return [line.split("|") for line in p.stdout.splitlines() if line]

    def wait(self, what, fn, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.5)
        self.fail(f"timed out waiting for {what} (last: {last!r})")

    def sink_messages(self):
        p = self.fleet.by_name[CA].sh(f"cat {self.maildir}/new/* 2>/dev/null", check=False)
        return p.stdout

    def send(self, mx, tag):
        """One message through mx by swaks from the CA host, HELO and Subject
        tag; None when accepted, else what swaks said."""
        p = self.fleet.by_name[CA].run(
            ["swaks", "--server", f"{mx}:25", "--from", "sender@origin.example",
             "--to", f"user@{DOMAIN}", "--helo", f"{tag}.origin.example",
             "--header", f"Subject: {tag}", "--timeout", "30"], check=False, timeout=60)
        self.sent.append((mx, tag))
        return None if p.returncode == 0 else f"swaks {tag} to {mx}: {p.stdout}{p.stderr}"

    def pf_send(self, mx, tag):
        """One message through mx by the CA host's Postfix (sendmail(1)),
        Subject and Message-ID tag; None when sendmail took it."""
        self.pf_sent.append((mx, tag))
        return postfix_submit(self.fleet.by_name[CA], mx, tag)

    def send_while(self, tags, action, gap=0.3):
        """Send tags (alternately to mx1 and mx2, gap s apart) from a thread,
        by swaks and, as TAG-pf, by Postfix, running action() once the first
        two are accepted; every message must be accepted."""
        errors, sent_two = [], threading.Event()

        def sender():
            for i, tag in enumerate(tags):
                for err in (self.send((MX1, MX2)[i % 2], tag),
                            self.pf_send((MX1, MX2)[i % 2], f"{tag}-pf")):
                    if err:
                        errors.append(err)
                if i == 1:
                    sent_two.set()
                time.sleep(gap)
            sent_two.set()

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        sent_two.wait(120)
        try:
            result = action()
        finally:
            t.join(180)
        self.assertFalse(t.is_alive(), "swaks still running after 180 s")
        self.assertEqual(errors, [])
        return result

    def log(self, host, name):
        return self.fleet.by_name[host].read(f"/var/log/mxfleet/{name}.log")

    @staticmethod
    def events(text, event):
        """The key=value fields of each `event=EVENT` line of text."""
        out = []
        for line in text.splitlines():
            if f"event={event} " in line + " ":
                out.append({k: v[1:-1] if v.startswith('"') else v for k, v in re.findall(
                    r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line)})
        return out

    def wait_mail_at_sink(self):
        """Every message self.send and self.pf_send sent is at the next hop."""
        def missing():
            got = self.sink_messages().replace("\r", "")
            return [t for _, t in self.sent + self.pf_sent if f"Subject: {t}\n" not in got]
        deadline = time.monotonic() + 120
        while missing():
            if time.monotonic() > deadline:
                self.fail(f"never at the next hop after 120 s: {missing()}")
            time.sleep(0.5)

    def assert_every_session_stored_once(self, pg):
        """Every session both mxd logged (inbound `event=session`, outbound
        `event=outbound_session`) has its outcome in pg's outcomes exactly
        once, and each message sent by self.send came in through its MX in
        one session."""
        def logged():
            return {(mx, sid) for mx in (MX1, MX2) for sid in re.findall(
                r"event=(?:session|outbound_session) sid=(\S+)", self.log(mx, "mxd"))}

        def stored():
            return {(h, sid): int(n) for h, sid, n in self.psql(
                pg, "SELECT host_id, session_id, count(*) FROM outcomes GROUP BY 1, 2")}

        before = logged()
        self.wait(f"the outcome of each of the {len(before)} sessions on {pg}",
                  lambda: before <= set(stored()), timeout=120)
        rows, after = stored(), logged()
        self.assertEqual(sorted(set(rows) - after), [], "outcomes of sessions mxd never logged")
        self.assertEqual({k: n for k, n in rows.items() if n != 1}, {}, "sessions stored twice")
        total, seqs = self.psql(
            pg, "SELECT count(*), count(DISTINCT (host_id, seq)) FROM outcomes")[0]
        self.assertEqual(total, seqs, "a (host_id, seq) stored twice")
        inbound = self.psql(pg, "SELECT remote_ehlo, host_id FROM outcomes WHERE direction = 1 "
                            "AND remote_ehlo LIKE '%.origin.example'")
        self.assertEqual(sorted(inbound),
                         sorted([f"{t}.origin.example", mx] for mx, t in self.sent))
        return len(rows)

    def assert_postfix_sent_and_stored(self, pg):
        """Every message given to Postfix (self.pf_sent) went to its MX host
        in one attempt, status=sent with mxd's `queued as ID`; mxd logged
        that ID in a session with Postfix's EHLO name; each such session of
        both MX hosts has its outcome in pg, with as many messages as mxd
        logged, adding up per host to what Postfix sent there; Postfix's
        queue is empty. Returns {mx: Postfix sessions}."""
        ca = self.fleet.by_name[CA]
        addr = {mx: self.fleet.by_name[mx].addr for mx in (MX1, MX2)}

        def unsent():
            d = postfix_deliveries(ca.read(POSTFIX_LOG))
            return d, [t for _, t in self.pf_sent if not any(
                st == "sent" for _, st, _ in d.get(f"{t}@{POSTFIX_HELO}", ("", []))[1])]
        deadline = time.monotonic() + 120
        while unsent()[1]:
            if time.monotonic() > deadline:
                self.fail(f"Postfix never logged status=sent for {unsent()[1]}:\n"
                          + ca.read(POSTFIX_LOG)[-6000:])
            time.sleep(0.5)
        d = unsent()[0]
        queued = {mx: {} for mx in (MX1, MX2)}  # mx: {mxd queue id: tag}
        for mx, tag in self.pf_sent:
            qid, attempts = d[f"{tag}@{POSTFIX_HELO}"]
            self.assertEqual([(a, st) for a, st, _ in attempts], [(addr[mx], "sent")],
                             f"Postfix's deliveries of {tag} ({qid}) for {mx}")
            m = re.fullmatch(r"250 2\.0\.0 Ok: queued as (\S+)", attempts[0][2])
            self.assertIsNotNone(m, f"{tag}: mxd's reply {attempts[0][2]!r}")
            queued[mx][m.group(1)] = tag

        def sessions(mx):
            """mxd's sessions from Postfix, {sid: messages}, once every
            message queued is in one that ended."""
            log = self.log(mx, "mxd")
            ids = {e["id"]: e["sid"] for e in self.events(log, "queued")}
            pf = {e["sid"]: int(e["messages"]) for e in self.events(log, "session")
                  if e["helo"] == POSTFIX_HELO}
            return pf if all(ids.get(q) in pf for q in queued[mx]) else None
        logged = {mx: self.wait(f"{mx}'s sessions from Postfix logged", lambda mx=mx: sessions(mx))
                  for mx in (MX1, MX2)}
        for mx in (MX1, MX2):
            self.assertEqual(sum(logged[mx].values()), len(queued[mx]),
                             f"messages in {mx}'s sessions from Postfix: {logged[mx]}")

        def stored():
            return {(h, sid): (int(n), ip) for h, sid, n, ip in self.psql(
                pg, "SELECT host_id, session_id, messages, remote_ip FROM outcomes "
                f"WHERE direction = 1 AND remote_ehlo = '{POSTFIX_HELO}'")}
        want = {(mx, sid): (n, ca.addr) for mx in (MX1, MX2) for sid, n in logged[mx].items()}
        self.wait(f"the outcomes of the {len(want)} sessions from Postfix in {pg}",
                  lambda: set(want) <= set(stored()), timeout=120)
        self.assertEqual(stored(), want)
        q = ca.run(["/usr/sbin/postqueue", "-p"], check=False)
        self.assertEqual((q.returncode, q.stdout.strip()), (0, "Mail queue is empty"))
        return {mx: len(logged[mx]) for mx in (MX1, MX2)}

    def mailctl_run(self, server, *args):
        """mailctl on the CA host with the admin certificate, through the
        controld on server, --json; the CompletedProcess."""
        d = "/etc/mxfleet/ca"
        return self.fleet.by_name[CA].run(
            ["mailctl", "--server", f"{server}:7443", "--authority", server, "--cert",
             f"{d}/admin.pem", "--key", f"{d}/admin.key", "--ca", f"{d}/ca.pem", "--json", *args],
            check=False, timeout=60)

    def mailctl(self, server, *args):
        """mailctl_run; (exit code, parsed --json output)."""
        p = self.mailctl_run(server, *args)
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            self.fail(f"mailctl {' '.join(args)} exited {p.returncode}, no JSON:\n"
                      f"{p.stdout}{p.stderr}")

    def assert_hosts_healthy(self, server):
        """`mailctl --json hosts` through server: both MX hosts ok, seen in the
        last few seconds (heartbeat every second), no backlog, and exit 0."""
        def healthy():
            rc, out = self.mailctl(server, "hosts")
            hosts = {h["host_id"]: h for h in out["hosts"]}
            if sorted(hosts) != [MX1, MX2] or rc != 0 or not all(
                    h["state"] == "ok" and h["journal_backlog"] == 0
                    and h["last_seen_ago_seconds"] <= 5 for h in hosts.values()):
                self.last_hosts = (rc, out)
                return None
            return out
        self.last_hosts = None
        out = self.wait(f"both MX hosts ok, backlog 0, through {server}", healthy, timeout=90)
        self.assertTrue(out["ok"])
        return out

    def queue_list(self, server, mx):
        rc, out = self.mailctl(server, "queue", "list", "--host", mx)
        self.assertEqual(rc, 0, out)
        self.assertEqual([(h["host"], h["ok"]) for h in out["hosts"]], [(mx, True)])
        host = out["hosts"][0]
        self.assertEqual(host["total"], len(host["messages"]) + host["truncated"])
        return host["messages"]

    # -- tests

    def test_1_mail_through_both_mx_hosts_reaches_the_next_hop_and_postgresql(self):
        ca = self.fleet.by_name[CA]
        # Postfix queues these at once and sends them while swaks runs.
        for i in range(4):
            self.assertIsNone(self.pf_send((MX1, MX2)[i % 2], f"pf-flow-{i}"))
        for mx in (MX1, MX2):
            p = ca.run(["swaks", "--server", f"{mx}:25", "--from", "sender@origin.example",
                        "--to", f"user@{DOMAIN}", "--helo", "ca.fleet.test",
                        "--header", f"Subject: through {mx}", "--timeout", "30"],
                       check=False, timeout=60)
            self.assertEqual(p.returncode, 0, f"swaks to {mx}:\n{p.stdout}{p.stderr}")
        got = self.wait("both messages at the next hop",
                        lambda: all(f"Subject: through {mx}" in self.sink_messages()
                                    for mx in (MX1, MX2)))
        self.assertTrue(got)
        self.wait_mail_at_sink()
        pf_sessions = self.assert_postfix_sent_and_stored(PG1)
        self.assertTrue(all(pf_sessions.values()), pf_sessions)
        for mx in (MX1, MX2):
            rows = self.wait(f"{mx}'s inbound outcome in PostgreSQL", lambda mx=mx: self.psql(
                PG1, f"SELECT count(*) FROM outcomes WHERE host_id = '{mx}' AND direction = 1 "
                "HAVING count(*) > 0"))
            self.assertGreaterEqual(int(rows[0][0]), 1)
        # The standby replays them.
        rows = self.wait("the outcomes on the standby", lambda: self.psql(
            PG2, "SELECT count(DISTINCT host_id) FROM outcomes HAVING count(DISTINCT host_id) = 2"))
        self.assertEqual(rows[0][0], "2")

    def test_2_both_mx_hosts_registered_with_controld(self):
        rows = self.psql(PG1, "SELECT host_id FROM hosts ORDER BY host_id")
        self.assertEqual([r[0] for r in rows], [MX1, MX2])

    def test_3_the_standby_streams_from_the_primary(self):
        self.assertEqual(self.psql(PG2, "SELECT pg_is_in_recovery()"), [["t"]])
        rows = self.psql(PG1, "SELECT client_addr, state FROM pg_stat_replication")
        self.assertEqual(rows, [[self.fleet.by_name[PG2].addr, "streaming"]])

    def test_4_no_private_key_on_the_controller(self):
        # The controller's files are the work dir's controller-home and
        # ansible-local; no PEM key may be there.
        found = []
        for sub in ("controller-home", "ansible-local"):
            for root, _, files in os.walk(os.path.join(self.fleet.dir, sub)):
                for name in files:
                    with open(os.path.join(root, name), "rb") as fh:
                        if b"PRIVATE KEY-----" in fh.read():
                            found.append(os.path.join(root, name))
        self.assertEqual(found, [])

    def test_5_a_second_run_changes_nothing(self):
        counters = recap(self.playbook())
        self.assertEqual(sorted(counters), sorted([CA, PG1, PG2, MX1, MX2]))
        changed = {h: c["changed"] for h, c in counters.items() if c["changed"]}
        self.assertEqual(changed, {}, "hosts with changed tasks on the second run")
        self.assertTrue(all(c["failed"] == 0 and c["unreachable"] == 0 for c in counters.values()))

    def test_6_one_controld_killed_the_mxd_fail_over_nothing_lost_nothing_twice(self):
        t0 = time.monotonic()
        pg1 = self.fleet.by_name[PG1]
        first, second = f"{PG1}:7443", f"{PG2}:7443"
        for mx in (MX1, MX2):
            connected = self.events(self.log(mx, "mxd"), "controld_connected")
            self.assertEqual(connected[-1]["server"], first, f"{mx}: {connected}")
        marks = {mx: len(self.log(mx, "mxd")) for mx in (MX1, MX2)}
        pid = int(pg1.read("/run/mxfleet/controld.pid"))

        def kill():
            pg1.run(["kill", "-KILL", str(pid)])
            self.wait("controld on pg1 gone", lambda: gone(pid), timeout=10)
        self.send_while([f"ctl-during-{i}" for i in range(6)], kill)
        for mx in (MX1, MX2):
            def since(mx=mx):
                return self.log(mx, "mxd")[marks[mx]:]
            self.wait(f"{mx} connected to {second}", lambda: [
                e for e in self.events(since(), "controld_connected") if e["server"] == second])
            failover = self.events(since(), "control_failover")
            self.assertEqual([(e["server"], e["next"]) for e in failover[:1]], [(first, second)],
                             f"{mx}'s log: {since()[-3000:]}")
        failed_over = time.monotonic() - t0
        for i, mx in enumerate((MX1, MX2)):
            self.assertIsNone(self.send(mx, f"ctl-after-{i}"))

        self.wait_mail_at_sink()

        # The next hop down: mailctl queue list shows the message mx1 keeps.
        ca = self.fleet.by_name[CA]
        sink = int(ca.read(SINK_PID))
        ca.run(["kill", str(sink)])
        self.wait("the sink stopped", lambda: gone(sink), timeout=15)
        self.addCleanup(self.ensure_sink)
        self.assertIsNone(self.send(MX1, "ctl-queued"))
        log = self.log(MX1, "mxd")
        sid = re.search(r'event=session sid=(\S+) .*helo="?ctl-queued\.origin\.example[" ]',
                        log).group(1)
        qid = re.search(rf"event=queued sid={re.escape(sid)} id=(\S+)", log).group(1)
        msgs = self.wait("the message in mx1's queue", lambda: self.queue_list(PG2, MX1))
        self.assertEqual([(m["id"], m["recipients"]) for m in msgs], [(qid, [f"user@{DOMAIN}"])])
        self.start_sink()
        self.wait_mail_at_sink()
        self.wait("mx1's queue empty", lambda: self.queue_list(PG2, MX1) == [])

        n = self.assert_every_session_stored_once(PG1)
        pf = self.assert_postfix_sent_and_stored(PG1)
        self.assert_hosts_healthy(PG2)
        print(f"\ncontrold killed: both mxd on {second} after {failed_over:.1f}s; {n} outcomes "
              f"once each ({pf} from Postfix); step {time.monotonic() - t0:.0f}s", file=sys.stderr)

    def test_7_primary_stopped_standby_promoted_controld_follows_nothing_lost_nothing_twice(self):
        t0 = time.monotonic()
        pg1, pg2 = self.fleet.by_name[PG1], self.fleet.by_name[PG2]
        # The postgresql role's cluster (roles/postgresql/defaults/main.yml).
        cluster = ["15", "mxfleet"]
        connected = self.events(self.log(PG2, "controld"), "db_connected")
        self.assertEqual(connected[-1]["server"], f"{PG1}:5432", connected)
        mark = len(self.log(PG2, "controld"))
        outage = {}

        def failover():
            pg1.run(["pg_ctlcluster", *cluster, "stop"], timeout=120)
            # No read-write database now: what mailctl says through pg2's
            # controld (asserted below, once pg2 is promoted whatever it was).
            outage["hosts"] = self.mailctl_run(PG2, "hosts")
            outage["queue"] = self.mailctl_run(PG2, "queue", "list", "--host", MX1)
            pg2.run(["pg_ctlcluster", *cluster, "promote"], timeout=120)
        self.send_while([f"pg-during-{i}" for i in range(6)], failover)
        # A clear error, exit 3 ("try again later"): never an empty host
        # list or queue that looks like an answer.
        for what, method in (("hosts", "ListHosts"), ("queue", "QueueControl")):
            p = outage[what]
            self.assertEqual((p.returncode, p.stdout), (3, ""),
                             f"mailctl {what} without a database: {p.stdout}{p.stderr}")
            self.assertRegex(p.stderr, rf"\Amailctl: {method}: UNAVAILABLE: database: \S",
                             f"mailctl {what} without a database")
        self.assertEqual(pg1.run(["pg_ctlcluster", *cluster, "status"], check=False).returncode, 3)
        self.assertEqual(self.psql(PG2, "SELECT pg_is_in_recovery()"), [["f"]])
        followed = self.wait("controld on pg2 connected to pg2's PostgreSQL", lambda: [
            e for e in self.events(self.log(PG2, "controld")[mark:], "db_connected")
            if e["server"] == f"{PG2}:5432"], timeout=90)
        self.assertEqual(followed[0]["session"], "read-write")
        took = time.monotonic() - t0
        for i, mx in enumerate((MX1, MX2)):
            self.assertIsNone(self.send(mx, f"pg-after-{i}"))
        self.wait_mail_at_sink()

        n = self.assert_every_session_stored_once(PG2)
        pf = self.assert_postfix_sent_and_stored(PG2)
        self.assert_hosts_healthy(PG2)
        self.assertEqual(self.queue_list(PG2, MX1), [])
        print(f"\nprimary stopped, standby promoted: controld on pg2 followed after {took:.1f}s; "
              f"{n} outcomes once each on pg2 ({pf} from Postfix); mailctl without a database: "
              f"{outage['hosts'].stderr.strip()!r}; step {time.monotonic() - t0:.0f}s",
              file=sys.stderr)


def gone(pid):
    """pid has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


if __name__ == "__main__":
    unittest.main(verbosity=2, argv=sys.argv[:1] + [a for a in sys.argv[1:] if a != "-v"])
