#!/usr/bin/python3
"""Inbound STARTTLS as clients see it: session tickets (none by default; when
on, never before the client's Finished), protocol floor, SNI and RSA/ECDSA
certificate choice, and the per-session TLS log line."""

import os
import re
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, MX_NAME  # noqa: E402

OTHER_NAME = "mx2.other.test"


def s_client(m, *args, bind=None, send="EHLO sclient.test\nQUIT\n", timeout=30):
    """openssl s_client with STARTTLS; returns (returncode, output). -ign_eof
    keeps it reading until the server closes after QUIT, so anything the
    server sends after the handshake (tickets) is seen."""
    argv = ["openssl", "s_client", "-connect", f"{m.host}:{m.port}",
            "-starttls", "smtp", "-name", "sclient.test", "-crlf", "-ign_eof",
            *args]
    if bind:
        argv += ["-bind", f"{bind}:0"]
    p = subprocess.run(argv, input=send, capture_output=True, text=True,
                       timeout=timeout, errors="replace")
    return p.returncode, p.stdout + p.stderr


def handshake_messages(output):
    """[(direction, name)] for handshake messages in s_client -msg output;
    direction is '>>>' (client sent) or '<<<' (client received)."""
    out = []
    for line in output.splitlines():
        m = re.match(r"(<<<|>>>) TLS [\d.]+, Handshake \[length [0-9a-f]+\], (\w+)", line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def negotiated(output):
    """(protocol, cipher) of a completed handshake, else (None, None). The
    "New, X, Cipher is Y" line names the cipher's own version (TLSv1.0 for
    a TLS 1.1 session), so the SSL-Session block is preferred."""
    m = re.search(r"New, (\S+), Cipher is (\S+)", output)
    if not m or m.group(2) == "(NONE)":
        return None, None
    # TLS 1.3 prints no SSL-Session block here, but its ciphers are 1.3-only.
    proto = re.search(r"^\s*Protocol\s*: (\S+)", output, re.M)
    return (proto.group(1) if proto else m.group(1)), m.group(2)


def peer_cert_pem(output):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  output, re.S)
    return m.group(0) if m else None


def pem_of(path):
    with open(path) as f:
        return re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                         f.read(), re.S).group(0)


def der_of(path):
    return ssl.PEM_cert_to_DER_cert(pem_of(path))


def norm_version(v):
    return re.sub(r"[^a-z0-9]", "", (v or "").lower()).replace("tlsv", "tls")


class HeldFinishedClient:
    """A TLS client on memory BIOs that completes the handshake but holds
    back its Finished message, so we can see whether the server sends
    anything (a NewSessionTicket) before it has received the client's
    Finished."""

    def __init__(self, sock, server_hostname=None):
        self.sock = sock
        ctx = mxtest.insecure_client_context(minimum=ssl.TLSVersion.TLSv1_3)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)

    def handshake(self, hold=1.0):
        deadline = time.monotonic() + 15
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.sock.sendall(data)
                if time.monotonic() > deadline:
                    raise TimeoutError("TLS handshake")
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed during handshake")
                self.inc.write(chunk)
        held = self.out.read()  # the client's Finished (and ChangeCipherSpec)
        early = self.inc.pending
        self.sock.settimeout(hold)
        try:
            chunk = self.sock.recv(65536)
            self.inc.write(chunk)
            early += len(chunk)
        except socket.timeout:
            pass
        self.sock.settimeout(10)
        self.sock.sendall(held)
        return early

    def command(self, line):
        self.obj.write(line.encode() + b"\r\n")
        self.sock.sendall(self.out.read())
        buf = b""
        deadline = time.monotonic() + 10
        while True:
            try:
                buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                if time.monotonic() > deadline:
                    raise TimeoutError(line)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.inc.write(chunk)
                continue
            lines = buf.split(b"\r\n")
            if len(lines) > 1 and all(len(l) >= 4 for l in lines[:-1]) \
                    and lines[-2][3:4] == b" ":
                return buf.decode()


class TicketTest(mxtest.MxTestCase):
    def start(self, tickets):
        over = {"tls": {"session_tickets": True}} if tickets else {}
        self.m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", [self.cert()], **over))

    def held_finished(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        client = HeldFinishedClient(c.sock, server_hostname=MX_NAME)
        early = client.handshake(hold=1.0)
        reply = client.command("EHLO held.client.test")
        self.assertTrue(reply.startswith("250"), reply)
        client.command("NOOP")
        return early, client.obj.session

    def test_default_sends_no_ticket_tls13(self):
        self.start(tickets=False)
        rc, out = s_client(self.m, "-msg", "-tls1_3")
        self.assertEqual(negotiated(out)[0], "TLSv1.3", out[-3000:])
        self.assertIn("221", out, "session did not run to QUIT")
        names = [n for _, n in handshake_messages(out)]
        self.assertNotIn("NewSessionTicket", names,
                         "NewSessionTicket sent although session_tickets is off")

    def test_default_sends_no_ticket_tls12(self):
        self.start(tickets=False)
        rc, out = s_client(self.m, "-msg", "-tls1_2")
        self.assertEqual(negotiated(out)[0], "TLSv1.2", out[-3000:])
        self.assertNotIn("NewSessionTicket", [n for _, n in handshake_messages(out)])
        self.assertNotIn("TLS session ticket:", out)

    def test_default_no_ticket_even_after_client_finished(self):
        self.start(tickets=False)
        early, session = self.held_finished()
        self.assertEqual(early, 0, "server sent data before the client's Finished")
        self.assertFalse(session.has_ticket, "client holds a ticket from mxd")

    def test_tickets_on_come_after_client_finished(self):
        self.start(tickets=True)
        rc, out = s_client(self.m, "-msg", "-tls1_3")
        msgs = handshake_messages(out)
        self.assertIn(("<<<", "NewSessionTicket"), msgs,
                      "session_tickets = true but no ticket arrived")
        client_finished = msgs.index((">>>", "Finished"))
        first_ticket = msgs.index(("<<<", "NewSessionTicket"))
        self.assertLess(client_finished, first_ticket)

    def test_tickets_on_not_sent_while_client_finished_is_held(self):
        self.start(tickets=True)
        early, session = self.held_finished()
        self.assertEqual(early, 0,
                         f"{early} bytes from the server before it had the client's Finished")
        self.assertTrue(session.has_ticket, "no ticket after the client's Finished")


class VersionTest(mxtest.MxTestCase):
    def start(self, **over):
        over.setdefault("limits", {"tls_handshake_timeout": 3})
        self.m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", [self.cert()], **over))

    def test_tls11_refused_by_default(self):
        self.start()
        src = mxtest.pick_host()
        # SECLEVEL=0 lets this OpenSSL client offer TLS 1.1 at all.
        rc, out = s_client(self.m, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", bind=src)
        self.assertNotEqual(negotiated(out)[0], "TLSv1.1", "TLS 1.1 handshake succeeded")
        self.assertNotEqual(rc, 0)
        self.assertRegex(out.lower(), r"protocol version|unsupported protocol|wrong version",
                         f"no protocol-version refusal seen:\n{out[-2000:]}")
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "attempted", rec)
        self.assertTrue(rec.get("tls_fail_stage") and rec.get("tls_fail_reason"), rec)

    def test_tls12_accepted_by_default(self):
        self.start()
        rc, out = s_client(self.m, "-tls1_2")
        self.assertEqual(negotiated(out)[0], "TLSv1.2", out[-2000:])

    def test_min_version_tls13_refuses_tls12(self):
        self.start(tls={"min_version": "TLSv1.3"})
        rc, out = s_client(self.m, "-tls1_2")
        self.assertNotEqual(negotiated(out)[0], "TLSv1.2")
        rc, out = s_client(self.m, "-tls1_3")
        self.assertEqual(negotiated(out)[0], "TLSv1.3", out[-2000:])

    def test_min_version_tls11_lets_tls11_in(self):
        # The knob exists for old peers that would otherwise stay plaintext.
        self.start(tls={"min_version": "TLSv1.1"})
        rc, out = s_client(self.m, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertEqual(negotiated(out)[0], "TLSv1.1",
                         f"min_version TLSv1.1 but a TLS 1.1 client fails:\n{out[-1500:]}")


class CertificateChoiceTest(mxtest.MxTestCase):
    def peer_der(self, m, server_hostname):
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        c.starttls(server_hostname=server_hostname)
        return c.sock.getpeercert(binary_form=True)

    def test_sni_selects_second_certificate(self):
        first = self.cert("first", MX_NAME)
        second = self.cert("second", OTHER_NAME)
        m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", [first, second]))
        self.assertEqual(self.peer_der(m, OTHER_NAME), der_of(second[0]),
                         "SNI mx2.other.test did not select the second certificate")
        self.assertEqual(self.peer_der(m, MX_NAME), der_of(first[0]))
        self.assertEqual(self.peer_der(m, None), der_of(first[0]),
                         "no SNI must give the first (default) certificate")
        self.assertEqual(self.peer_der(m, "unknown.example.test"), der_of(first[0]),
                         "an unknown SNI name must give the default certificate")

    def test_reload_with_a_broken_certificate_keeps_serving_the_old_one(self):
        good = self.cert("good", MX_NAME)
        m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", [good]))
        served = der_of(good[0])
        with open(good[0], "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        m.reload()
        m.wait_event("reload_failed", timeout=15)
        m.wait_event("tls_config_error", timeout=5)
        self.assertIsNone(m.proc.poll(), "the master died at the reload:\n" + m.log_tail())
        self.assertEqual(self.peer_der(m, MX_NAME), served, "the old certificate, from memory")

    def test_rsa_and_ecdsa_side_by_side(self):
        rsa = self.cert("rsa", MX_NAME, kind="rsa")
        ecdsa = self.cert("ecdsa", MX_NAME, kind="ecdsa")
        m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", [rsa, ecdsa]))
        cases = [
            (["-tls1_3", "-sigalgs", "ECDSA+SHA256"], ecdsa, "ECDSA"),
            (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], rsa, "RSA-PSS"),
            (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], ecdsa, "ECDSA"),
            (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], rsa, "RSA"),
        ]
        for args, want, sigtype in cases:
            with self.subTest(args=args):
                rc, out = s_client(m, "-servername", MX_NAME, *args)
                self.assertIsNotNone(negotiated(out)[0], out[-2000:])
                self.assertEqual(peer_cert_pem(out), pem_of(want[0]),
                                 f"{args} got the wrong certificate")
                self.assertRegex(out, rf"Peer signature type: {sigtype}\b")


class SessionLogTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        self.sinkd = self.new_sink()
        self.m = self.mxd(self.mxd_config(self.sinkd.next_hop, [self.cert()],
                                          limits={"tls_handshake_timeout": 2}))

    def test_established_line(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        c.ehlo()
        c.starttls(server_hostname=MX_NAME)
        version, cipher = c.sock.version(), c.sock.cipher()[0]
        c.ehlo()
        self.assertEqual(c.cmd(f"MAIL FROM:<s@{LOCAL_DOMAIN}>").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<a@{LOCAL_DOMAIN}>").code, 250)
        self.assertEqual(c.cmd(f"RCPT TO:<b@{LOCAL_DOMAIN}>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: log\r\n\r\nhello\r\n.\r\n")
        self.assertEqual(c.read_reply().code, 250)
        c.cmd("QUIT")
        c.close()
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "established", rec)
        self.assertEqual(norm_version(rec.get("tls_version")), norm_version(version), rec)
        self.assertEqual(rec.get("tls_cipher"), cipher, rec)
        self.assertEqual(rec.get("sni"), MX_NAME, rec)
        self.assertEqual(rec.get("messages"), "1", rec)
        self.assertEqual(rec.get("rcpts"), "2", rec)

    def test_s_client_line_matches_what_client_saw(self):
        src = mxtest.pick_host()
        rc, out = s_client(self.m, "-servername", MX_NAME, bind=src)
        version, cipher = negotiated(out)
        self.assertIsNotNone(version, out[-2000:])
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "established", rec)
        self.assertEqual(norm_version(rec.get("tls_version")), norm_version(version), rec)
        self.assertEqual(rec.get("tls_cipher"), cipher, rec)
        self.assertEqual(rec.get("sni"), MX_NAME, rec)

    def test_plaintext_session_says_offered(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        self.assertIn("STARTTLS", c.ehlo().text.upper())
        c.cmd("QUIT")
        c.close()
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "offered", rec)

    def test_garbage_after_starttls(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        c.send(b"this is not a TLS ClientHello\r\nQUIT\r\n")
        # The server must give up on this connection (close it), not execute
        # the plaintext.
        data = c.pending(wait=5)
        self.assertNotIn(b"221", data, "plaintext QUIT executed after STARTTLS")
        c.close()
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "attempted", rec)
        self.assertTrue(rec.get("tls_fail_stage"), f"no tls_fail_stage: {rec}")
        self.assertTrue(rec.get("tls_fail_reason"), f"no tls_fail_reason: {rec}")

    def test_handshake_timeout_logged(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        # Say nothing: tls_handshake_timeout is 2 s.
        t0 = time.monotonic()
        rec = self.m.wait_session(src, timeout=10)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(rec.get("starttls"), "attempted", rec)
        self.assertRegex(rec.get("tls_fail_reason", ""), r"(?i)time",
                         f"reason does not say timeout: {rec}")

    def test_client_alert_logged(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        c.ehlo()
        # A verifying client rejects the self-signed certificate with an alert.
        ctx = ssl.create_default_context()
        with self.assertRaises(ssl.SSLError):
            c.starttls(server_hostname=MX_NAME, context=ctx)
        c.close()
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "attempted", rec)
        self.assertRegex(rec.get("tls_fail_reason", ""), r"(?i)alert|unknown.?ca|bad.?cert",
                         f"reason does not name the client's alert: {rec}")

    def test_eof_after_server_finished_logged(self):
        src = mxtest.pick_host()
        c = self.raw(self.m, source=src)
        c.read_reply()
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        client = HeldFinishedClient(c.sock, server_hostname=MX_NAME)
        # Take the whole server flight, then vanish without our Finished:
        # what strict clients do when they dislike the server's flight.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = client.out.read()
                if data:
                    c.sock.sendall(data)
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                client.inc.write(chunk)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        rec = self.m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "attempted", rec)
        self.assertTrue(rec.get("tls_fail_stage"), rec)
        self.assertRegex(rec.get("tls_fail_reason", ""), r"(?i)eof|closed|reset",
                         f"reason does not say the client went away: {rec}")


class NoCertificateTest(mxtest.MxTestCase):
    def test_no_certificates_no_starttls(self):
        m = self.mxd(self.mxd_config("smtp:127.0.0.1:9", None))
        src = mxtest.pick_host()
        c = self.raw(m, source=src)
        c.read_reply()
        self.assertNotIn("STARTTLS", c.ehlo().text.upper())
        r = c.cmd("STARTTLS")
        self.assertGreaterEqual(r.code, 400, r)
        c.cmd("QUIT")
        c.close()
        rec = m.wait_session(src)
        self.assertEqual(rec.get("starttls"), "no", rec)


if __name__ == "__main__":
    mxtest.main()
