#!/usr/bin/python3
"""A real, unmodified Debian Postfix as the sending MTA: a private instance
(own config, queue and data directories) relays to mxd through a transport
map with smtp_tls_security_level = encrypt. The message reaches the next hop
intact and mxd logs the session as starttls=established.

Needs root (Postfix's master runs as root and drops to mail_owner)."""

import os
import pwd
import shlex
import shutil
import smtplib
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body, check_body  # noqa: E402
from postfix_conf import main_cf, master_cf  # noqa: E402

POSTFIX = "/usr/sbin/postfix"


class PostfixInstance:
    """A throwaway Postfix: everything under `root`, no chroot, logs to a
    file, an SMTP listener on its own loopback address."""

    def __init__(self, root, transport, bind_address, settings=()):
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.queue = os.path.join(root, "queue")
        self.data = os.path.join(root, "data")
        self.maillog = os.path.join(root, "maillog")
        self.host, self.port = mxtest.free_addr()
        for d in (self.etc, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        os.chmod(root, 0o755)
        pw = pwd.getpwnam("postfix")
        # master.lock and tls caches live here; Postfix wants it owned by mail_owner.
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data, 0o700)
        main = {
            # inet_interfaces must name a configured interface address; the
            # listener below binds its own 127.0.x.y explicitly.
            "inet_interfaces": "127.0.0.1",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtp_tls_security_level": "encrypt",
            "maillog_file_prefixes": root,
        }
        main.update(dict(settings))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main_cf(self.queue, self.data, self.maillog, "{" + transport + "}",
                            bind_address, **main))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master_cf(listen=f"{self.host}:{self.port}"))

    def control(self, action, timeout=30):
        # postfix(1) prints its errors only to a terminal (else to syslog,
        # which this machine may not have): give it one with script(1).
        cmd = shlex.join([POSTFIX, "-c", self.etc, action])
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           text=True, timeout=timeout, errors="replace")
        return p.returncode, (p.stdout + p.stderr).replace("\r", "")

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if mxtest.alive(pid) else None

    def kill_hard(self):
        pid = self.master_pid()
        if pid is not None:
            for p in mxtest.process_tree(pid):
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass

    def start(self):
        mxtest.register_emergency(id(self), self.kill_hard)
        rc, out = self.control("start")
        if rc != 0:
            raise RuntimeError(f"postfix start failed ({rc}): {out}\n{self.log()}")
        mxtest.wait_for(lambda: mxtest._proc_net_listening(self.host, self.port), 15,
                        what="postfix smtpd listening")

    def stop(self):
        pid = self.master_pid()
        if pid is None:
            return
        self.control("stop")
        try:
            mxtest.wait_for(lambda: not mxtest.alive(pid), 15, what="postfix master exit")
        except TimeoutError:
            self.kill_hard()  # bounded: take the master and its children down
        mxtest.unregister_emergency(id(self))

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class PostfixClientTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        if not mxtest.IS_ROOT:
            self.skipTest("a private Postfix instance needs root")
        if not os.access(POSTFIX, os.X_OK) or not shutil.which("script"):
            self.fail("postfix or script(1) missing (scripts/deps)")

    def postfix(self, m, settings=()):
        self.pf_src = mxtest.pick_host()
        pf = PostfixInstance(os.path.join(self.wd, "postfix"),
                             f"{LOCAL_DOMAIN} = smtp:[{m.host}]:{m.port}",
                             self.pf_src, settings)
        self.addCleanup(pf.stop)
        self.addCleanup(self._dump_postfix_log_on_failure, pf)
        pf.start()
        return pf

    def _dump_postfix_log_on_failure(self, pf):
        if self._failed():
            print(f"\n----- postfix maillog -----\n{pf.log()[-4000:]}", file=sys.stderr)

    def relay_one(self, pf, sink, m):
        msg_id = uuid.uuid4().hex[:12]
        body = make_body(msg_id)
        with smtplib.SMTP(pf.host, pf.port, timeout=20) as s:
            self.assertEqual(s.sendmail("someone@client.postfix.test",
                                        [f"user@{LOCAL_DOMAIN}"], body), {})
        got = sink.wait_message(lambda x: f"X-Test-Id: {msg_id}".encode() in x.data,
                                timeout=45, what="message relayed by Postfix")
        self.assertEqual(check_body(got.data), (msg_id, True))
        ours, rest = got.split_received()
        self.assertIsNotNone(ours, "no Received: from mxd")
        self.assertIn(b"postfix.client.test", ours, "mxd's Received: lacks the HELO")
        # Below mxd's header comes Postfix's own Received:, then the original.
        self.assertTrue(rest.startswith(b"Received: "), rest[:200])
        self.assertIn(b"(Postfix)", rest.split(b"\r\n\r\n")[0])
        self.assertTrue(body.rstrip(b"\r\n").split(b"\r\n\r\n", 1)[1]
                        in rest, "body changed")
        return msg_id

    def test_postfix_relays_over_mandatory_tls(self):
        m, sink = self.standard()
        pf = self.postfix(m)
        self.relay_one(pf, sink, m)
        rec = m.wait_session(self.pf_src, timeout=30)
        self.assertEqual(rec.get("starttls"), "established", rec)
        self.assertTrue(rec.get("tls_version") and rec.get("tls_cipher"), rec)
        log = pf.log()
        self.assertRegex(log, r"TLS connection established to [^\n]*" + m.host.replace(".", r"\."))
        self.assertIn("status=sent", log)

    def test_postfix_tls12_and_several_messages(self):
        m, sink = self.standard()
        pf = self.postfix(m, settings={"smtp_tls_protocols": "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3",
                                       "smtp_tls_mandatory_protocols": "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3"}.items())
        ids = []
        for _ in range(5):
            ids.append(self.relay_one(pf, sink, m))
        time.sleep(0.5)
        self.assertRegex(pf.log(), r"TLS connection established[^\n]*TLSv1\.2")
        sessions = m.sessions_from(self.pf_src)
        self.assertTrue(sessions)
        self.assertTrue(all(r.get("starttls") == "established" for r in sessions), sessions)
        self.assertTrue(all("1.2" in r.get("tls_version", "") for r in sessions), sessions)


if __name__ == "__main__":
    mxtest.main()
