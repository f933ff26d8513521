#!/usr/bin/python3
"""The client's reverse-DNS name on inbound sessions (docs/mxd.md, "The
client's name"; docs/reports.md, "Inbound TLS view"): what an operator sees
in the outcomes, in mxd's session log line, in the Received: header and in
`mailctl tls inbound --by sender-domain`.

A real mxd whose `resolver` is the test DNS (tests/tools/dnstest: unbound
in front of nsd, which serves 127.in-addr.arpa.) receives sessions from
chosen loopback addresses whose PTR records the test publishes: a name that
resolves back to the client (used), one that resolves elsewhere, one that
does not resolve, one that reads as an address, none at all (not used). A
resolver that is down, or one that never answers, delays no reply."""

import os
import socket
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import cptest  # noqa: E402
from cptest import INBOUND, wait_for  # noqa: E402
import mxtest  # noqa: E402
import outtest  # noqa: E402

TAG = uuid.uuid4().hex[:6]
NET = "127.88"  # the clients' addresses: 127.88.N.x, one /24 per case
DNS = None


def setUpModule():
    """The fleet's PostgreSQL, then the test DNS; cleaned up the other way
    round, even when a step fails."""
    global DNS
    cptest.setUpModule()
    unittest.addModuleCleanup(cptest.tearDownModule)
    DNS = outtest.Dns()
    unittest.addModuleCleanup(DNS.down)


def ptr(ip, name):
    return f"{reverse_name(ip)}. 300 IN PTR {name}"


def session(host, port, source, msg_id=None, pause=0.0):
    """One session from source: greeting, (pause), EHLO, a message when
    msg_id is given, QUIT. Returns (seconds to the greeting, seconds in
    all)."""
    t0 = time.monotonic()
    c = mxtest.SmtpRaw(host, port, timeout=10, source=source)
    try:
        assert c.read_reply().code == 220
        greeting = time.monotonic() - t0
        time.sleep(pause)
        assert c.ehlo(f"client-{TAG}.test").code == 250
        if msg_id:
            body = mxtest.make_body(msg_id, size=200)
            assert c.cmd("MAIL FROM:<sender@client.test>").code == 250
            assert c.cmd(f"RCPT TO:<rcpt@{mxtest.LOCAL_DOMAIN}>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(body + b"\r\n.\r\n")
            assert c.read_reply().code == 250
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()
    return greeting, time.monotonic() - t0


class MxdPtrTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        self.c = self.controld()
        self.sink_ = self.sink()
        self.m = self.mxd_with_control(self.c, self.sink_, resolver=DNS.resolver)

    def remote_ptr(self, ip):
        """remote_ptr of the inbound outcome of the session from ip, once
        controld has it."""
        q = (f"SELECT '<' || remote_ptr || '>' FROM outcomes WHERE direction = {INBOUND} "
             f"AND remote_ip = '{ip}'")
        wait_for(lambda: self.scalar(f"SELECT count(*) FROM ({q}) s") == "1", 40,
                 interval=0.25, what=f"the outcome of {ip} in PostgreSQL")
        return self.scalar(q)[1:-1]

    def by_domain(self):
        """{group: sessions} of `mailctl tls inbound --by sender-domain`."""
        out = self.mailctl(self.c, "tls", "inbound", "--by", "sender-domain").stdout
        rows = {}
        for line in out.splitlines()[1:]:
            if not line.strip():
                break
            if not line.startswith(" "):
                rows[line.split()[0]] = int(line.split()[1])
        return rows, out

    def test_confirmed_ptr_name_is_recorded_logged_and_groups_by_domain(self):
        a, b = f"{NET}.1.10", f"{NET}.1.11"
        name = f"Mail-{TAG}.Outbound.Example.TEST"
        DNS.add([ptr(a, name + "."), ptr(b, f"mx-{TAG}.insecure.test."),
                 f"{name}. 300 IN A {a}", f"mx-{TAG}.insecure.test. 300 IN A {b}",
                 f"mx-{TAG}.insecure.test. 300 IN A {NET}.1.99"])
        # the lookup runs while the client waits to send EHLO; the message
        # begins after it, so its Received: carries the name
        session(self.m.host, self.m.port, a, msg_id=f"ptr-{TAG}", pause=1.0)
        session(self.m.host, self.m.port, b, pause=1.0)
        want = f"mail-{TAG}.outbound.example.test"
        self.assertEqual(self.remote_ptr(a), want)
        self.assertEqual(self.remote_ptr(b), f"mx-{TAG}.insecure.test")
        self.assertEqual(self.m.wait_session(a)["ptr"], want)

        msg = self.sink_.wait_message(lambda m: f"ptr-{TAG}".encode() in m.data)
        received = msg.split_received()[0].decode()
        self.assertIn(f"from client-{TAG}.test ({want} [{a}])", received)

        rows, text = self.by_domain()
        self.assertEqual(rows.get("example.test"), 1, text)
        self.assertEqual(rows.get("insecure.test"), 1, text)
        self.assertNotIn(f"{NET}.1.0/24", rows, text)

    def test_ptr_names_that_do_not_confirm_the_client_are_not_used(self):
        liar, unresolved, numeric, none = (f"{NET}.2.{i}" for i in (10, 11, 12, 13))
        DNS.add([ptr(liar, f"liar-{TAG}.example.test."),
                 f"liar-{TAG}.example.test. 300 IN A {NET}.2.99",
                 ptr(unresolved, f"gone-{TAG}.example.test."),
                 ptr(numeric, f"{NET}.2.12.")])
        for ip in (liar, unresolved, numeric, none):
            session(self.m.host, self.m.port, ip, pause=0.5)
        for ip in (liar, unresolved, numeric, none):
            self.assertEqual(self.remote_ptr(ip), "", ip)
            self.assertEqual(self.m.wait_session(ip)["ptr"], "unknown", ip)
        rows, text = self.by_domain()
        self.assertEqual(rows, {f"{NET}.2.0/24": 4}, text)

    def test_resolver_down_delays_no_reply_and_records_no_name(self):
        ip = f"{NET}.3.10"
        DNS.add([ptr(ip, f"down-{TAG}.example.test."), f"down-{TAG}.example.test. 300 IN A {ip}"])
        DNS.stop_resolver()
        try:
            greeting, total = session(self.m.host, self.m.port, ip)
        finally:
            DNS.start_resolver()
        # a lookup that held a reply would take seconds (2 s per try); the
        # margins are for a loaded machine and the ASan build
        self.assertLess(greeting, 1.5)
        self.assertLess(total, 3.0)
        self.assertEqual(self.remote_ptr(ip), "")
        self.assertEqual(self.m.wait_session(ip)["ptr"], "unknown")

    def test_resolver_that_never_answers_delays_no_reply_and_is_asked_per_session(self):
        """A resolver that swallows every query: each session ends long
        before a lookup could (its queries are cancelled), served at once;
        a connection refused over limits.connections makes mxd ask nothing."""
        hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(hole.close)
        hole.bind(("127.0.0.1", 0))
        m2 = self.mxd_with_control(self.c, self.sink_, cert=self.pki.mx2, name="mxd2",
                                   resolver=f"127.0.0.1:{hole.getsockname()[1]}",
                                   limits={"connections": 2})
        ips = [f"{NET}.4.{i}" for i in range(10, 16)]
        times = [session(m2.host, m2.port, ip, msg_id=f"hole-{TAG}-{ip}" if ip == ips[0]
                         else None) for ip in ips]
        for greeting, total in times:
            # waiting for this resolver would take 4 s (2 tries of 2 s); the
            # margins are for a loaded machine and the ASan build
            self.assertLess(greeting, 1.5, times)
            self.assertLess(total, 3.0, times)
        for ip in ips:
            self.assertEqual(m2.wait_session(ip)["ptr"], "unknown", ip)
        msg = self.sink_.wait_message(lambda m: f"hole-{TAG}".encode() in m.data)
        self.assertIn(f"([{ips[0]}])", msg.split_received()[0].decode())

        held = [f"{NET}.5.{i}" for i in (10, 11)]
        refused = [f"{NET}.5.{i}" for i in (12, 13)]
        conns = [mxtest.SmtpRaw(m2.host, m2.port, timeout=10, source=ip) for ip in held]
        self.addCleanup(lambda: [c.close() for c in conns])
        for c in conns:
            self.assertEqual(c.read_reply().code, 220)
        for ip in refused:
            c = mxtest.SmtpRaw(m2.host, m2.port, timeout=10, source=ip)
            self.assertEqual(c.read_reply().code, 421)
            c.close()
        asked = set()
        hole.settimeout(1.0)
        try:
            while True:
                asked.add(question(hole.recv(512)))
        except socket.timeout:
            pass
        self.assertEqual(asked, {reverse_name(ip) for ip in ips + held})


def reverse_name(ip):
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def question(packet):
    """The name a DNS query asks for."""
    labels, i = [], 12
    while packet[i]:
        labels.append(packet[i + 1:i + 1 + packet[i]].decode())
        i += 1 + packet[i]
    return ".".join(labels)


if __name__ == "__main__":
    cptest.main()
