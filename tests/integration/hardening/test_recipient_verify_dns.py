#!/usr/bin/python3
"""A recipient probe whose next hop is a name, with a DNS server that never
answers (issue 9, item 4): the probe waits for its lookup on the worker's
event loop, so the worker's other sessions are served meanwhile and the
RCPT gets 450 4.1.1 within recipient_verify.timeout. Resolved by a blocking
getaddrinfo, the lookup stopped the whole worker for the resolver's timeouts
on every RCPT of a new address.

Runs as root: the test re-executes itself under `unshare --mount` and binds
its own resolv.conf (naming a silent server on loopback) over
/etc/resolv.conf in that private namespace only. Not being root is a
failure with a message, not a skip."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN  # noqa: E402
from test_backscatter import one_transaction as transaction  # noqa: E402
from test_recipient_verify import Mailboxes, open_transaction  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402

NS_MARK = "MXTEST_VERIFY_DNS_NS"
SILENT_DNS = "127.0.9.53"
VERIFY_TIMEOUT = 6


def reexec_in_mount_namespace():
    if os.environ.get(NS_MARK) or not mxtest.IS_ROOT:
        return
    os.environ[NS_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                          sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


class VerifyDnsTest(mxtest.MxTestCase):

    def setUp(self):
        if not mxtest.IS_ROOT:
            self.fail("test_recipient_verify_dns needs root (a private mount namespace "
                      "and its own /etc/resolv.conf)")
        super().setUp()
        # A DNS server that reads every query and answers none.
        self.dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dns.bind((SILENT_DNS, 53))
        self.addCleanup(self.dns.close)
        fd, conf = tempfile.mkstemp(prefix="resolv-", dir=self.wd)
        os.write(fd, f"nameserver {SILENT_DNS}\noptions timeout:5 attempts:2\n".encode())
        os.close(fd)
        os.chmod(conf, 0o644)
        self.bind_over(conf, "/etc/resolv.conf")

    def bind_over(self, path, target):
        subprocess.run(["mount", "--bind", path, target], check=True, timeout=10)
        self.addCleanup(subprocess.run, ["umount", "-l", target], timeout=10)

    def test_next_hop_name_from_etc_hosts_is_probed(self):
        boxes = Mailboxes()
        host = mxtest.pick_host()
        # server_hostname: aiosmtpd would ask the (silent) DNS for its own name.
        ctl = Controller(boxes, hostname=host, port=mxtest.free_port(host), ready_timeout=10,
                         server_hostname="store.hosts.test")
        ctl.start()
        self.addCleanup(ctl.stop)
        hosts = os.path.join(self.wd, "hosts")
        with open(hosts, "w") as f:
            f.write(f"127.0.0.1 localhost\n{host} store.hosts.test\n")
        os.chmod(hosts, 0o644)
        self.bind_over(hosts, "/etc/hosts")
        sink = self.new_sink()
        cfg = self.mxd_config(sink.next_hop, workers=1,
                              recipient_verify={"timeout": VERIFY_TIMEOUT})
        cfg["domains"] = mxtest.LCList([
            {"name": LOCAL_DOMAIN, "next_hop": f"smtp:store.hosts.test:{ctl.port}",
             "recipient_check": "verify"}])
        m = self.mxd(cfg)
        alice, nobody = f"alice@{LOCAL_DOMAIN}", f"nobody@{LOCAL_DOMAIN}"
        replies, end = transaction(m, [alice, nobody], "by-name")
        self.assertEqual(replies[alice].code, 250, replies[alice])
        self.assertEqual(replies[nobody].code, 550, replies[nobody])
        self.assertEqual(end.code, 250, end)
        self.assertEqual(boxes.probe_count(alice), 1)
        self.assertEqual(boxes.probe_count(nobody), 1)

    def test_probe_waiting_for_dns_does_not_stop_the_worker(self):
        sink = self.new_sink()
        cfg = self.mxd_config(sink.next_hop, workers=1,
                              recipient_verify={"timeout": VERIFY_TIMEOUT})
        cfg["domains"] = mxtest.LCList([
            {"name": LOCAL_DOMAIN, "next_hop": sink.next_hop},
            {"name": "byname.test", "next_hop": "smtp:store.byname.test:25",
             "recipient_check": "verify"}])
        m = self.mxd(cfg)
        c = open_transaction(self, m)
        started = time.monotonic()
        c.send(b"RCPT TO:<dave@byname.test>\r\n")
        # The query reached the silent server: the lookup is under way.
        self.dns.settimeout(10)
        self.dns.recvfrom(512)

        # The one worker serves another session while the lookup waits.
        t0 = time.monotonic()
        rcpt = f"alice@{LOCAL_DOMAIN}"
        replies, end = transaction(m, [rcpt], "meanwhile")
        served_in = time.monotonic() - t0
        self.assertEqual(replies[rcpt].code, 250, replies[rcpt])
        self.assertEqual(end.code, 250, end)
        self.assertLess(served_in, VERIFY_TIMEOUT - 1,
                        f"the other session took {served_in:.1f}s: the worker was stopped")

        reply = c.read_reply(timeout=VERIFY_TIMEOUT + 20)
        self.assertEqual(reply.code, 450, reply)
        self.assertIn("4.1.1 <dave@byname.test>", reply.lines[-1])
        self.assertLess(time.monotonic() - started, VERIFY_TIMEOUT + 5)
        sink.wait_message(lambda x: rcpt in x.rcpts, what="the other session's message")


if __name__ == "__main__":
    reexec_in_mount_namespace()
    unittest.main(verbosity=2)
