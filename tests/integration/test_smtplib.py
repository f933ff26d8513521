#!/usr/bin/python3
"""Python smtplib (and raw pipelined commands) against mxd: extensions,
STARTTLS state reset, relay policy, limits, and LMTP next hops."""

import os
import smtplib
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body, check_body, split_received  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"


def smtp(m, source=None, timeout=10):
    return smtplib.SMTP(m.host, m.port, local_hostname="smtplib.client.test",
                        timeout=timeout,
                        source_address=(source, 0) if source else None)


def tid():
    return uuid.uuid4().hex[:12]


class Base(mxtest.MxTestCase):
    def by_id(self, sink, msg_id, timeout=20):
        return sink.wait_message(lambda m: f"X-Test-Id: {msg_id}".encode() in m.data,
                                 timeout=timeout, what=f"message {msg_id}")

    def deliveries(self, sink, msg_id):
        return [m for m in sink.messages()
                if f"X-Test-Id: {msg_id}".encode() in m.data]


class ExtensionsTest(Base):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard(limits={"message_size": 200000})

    def test_ehlo_advertises_contract_extensions(self):
        with smtp(self.m) as s:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                        "enhancedstatuscodes", "chunking", "starttls"):
                self.assertTrue(s.has_extn(ext), f"EHLO lacks {ext.upper()}")
            self.assertEqual(s.esmtp_features["size"].strip(), "200000",
                             "SIZE must advertise limits.message_size")
            self.assertFalse(s.has_extn("requiretls"),
                             "REQUIRETLS advertised outside TLS")

    def test_starttls_then_requiretls_and_no_starttls(self):
        with smtp(self.m) as s:
            s.ehlo()
            s.starttls(context=mxtest.insecure_client_context())
            s.ehlo()
            self.assertTrue(s.has_extn("requiretls"), "REQUIRETLS missing inside TLS")
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered again inside TLS")

    def test_mail_before_ehlo_after_starttls_is_refused(self):
        with smtp(self.m) as s:
            s.ehlo()
            s.starttls(context=mxtest.insecure_client_context())
            code, msg = s.docmd(f"MAIL FROM:<{SENDER}>")
            self.assertEqual(code, 503, f"MAIL without EHLO after TLS got {code} {msg}")
            s.ehlo()
            code, _ = s.docmd(f"MAIL FROM:<{SENDER}>")
            self.assertEqual(code, 250)

    def test_starttls_send_and_several_recipients(self):
        msg_id = tid()
        rcpts = [f"u{i}@{LOCAL_DOMAIN}" for i in range(3)]
        with smtp(self.m) as s:
            s.starttls(context=mxtest.insecure_client_context())
            refused = s.sendmail(SENDER, rcpts, make_body(msg_id))
            self.assertEqual(refused, {})
        self.by_id(self.sink, msg_id)
        # Each recipient exactly once, whether mxd sent one copy or several.
        mxtest.wait_for(lambda: sorted(r for m in self.deliveries(self.sink, msg_id)
                                       for r in m.rcpts) == sorted(rcpts),
                        10, what="all recipients delivered once")
        for m in self.deliveries(self.sink, msg_id):
            self.assertEqual(check_body(m.data), (msg_id, True))
            self.assertEqual(m.mail_from, SENDER)

    def test_vrfy_help_noop_rset(self):
        with smtp(self.m) as s:
            s.ehlo()
            code, msg = s.docmd("VRFY", f"someone@{LOCAL_DOMAIN}")
            self.assertEqual(code, 252)
            self.assertTrue(msg.startswith(b"2.1.5"), msg)
            code, _ = s.docmd("HELP")
            self.assertEqual(code // 100, 2, "HELP must succeed (214)")
            self.assertEqual(s.noop()[0], 250)
            s.docmd(f"MAIL FROM:<{SENDER}>")
            self.assertEqual(s.rset()[0], 250)
            # RSET cleared the transaction: a new MAIL is not "nested".
            self.assertEqual(s.docmd(f"MAIL FROM:<{SENDER}>")[0], 250)
            self.assertEqual(s.docmd(f"RCPT TO:<x@{LOCAL_DOMAIN}>")[0], 250)

    def test_size_parameter_too_big(self):
        with smtp(self.m) as s:
            s.ehlo()
            code, msg = s.docmd(f"MAIL FROM:<{SENDER}> SIZE=200001")
            self.assertEqual(code, 552, msg)
            self.assertTrue(msg.startswith(b"5.3.4"), msg)

    def test_data_larger_than_limit_without_size(self):
        # smtplib would announce SIZE= by itself: use a raw client that
        # does not, so the limit has to be enforced on the data.
        msg_id = tid()
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<big@{LOCAL_DOMAIN}>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(mxtest.dot_stuff(make_body(msg_id, size=250000)) + b".\r\n")
        self.assertReply(c.read_reply(timeout=20), 552, "5.3.4")
        # The session survives the refusal.
        self.assertReply(c.cmd("NOOP"), 250)
        ok_id = tid()
        with smtp(self.m) as s:
            s.sendmail(SENDER, [f"ok@{LOCAL_DOMAIN}"], make_body(ok_id))
        self.by_id(self.sink, ok_id)
        self.assertEqual(self.deliveries(self.sink, msg_id), [],
                         "oversized message was delivered")

    def test_bdat_larger_than_limit(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        self.assertReply(c.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        self.assertReply(c.cmd(f"RCPT TO:<big@{LOCAL_DOMAIN}>"), 250)
        chunk = b"x" * 998 + b"\r\n"
        replies = []
        # RFC 3030 lets the server refuse the chunk that crosses the limit or
        # wait for LAST; either way the transaction must end in 552.
        for _ in range(260):
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            replies.append(c.read_reply(timeout=10))
            if replies[-1].code != 250:
                break
        if replies[-1].code == 250:
            replies.append(c.cmd("BDAT 0 LAST"))
        self.assertEqual(replies[-1].code, 552,
                         f"260 kB of BDAT over a 200000 limit: {replies[-1]}")
        self.assertTrue(replies[-1].lines[-1][4:].startswith("5.3.4"), replies[-1])


    def test_large_message_intact(self):
        m, sink = self.standard(limits={"message_size": 20 * 1024 * 1024})
        msg_id = tid()
        body = make_body(msg_id, size=8 * 1024 * 1024)
        with smtp(m, timeout=60) as s:
            s.starttls(context=mxtest.insecure_client_context())
            self.assertEqual(s.sendmail(SENDER, [f"big@{LOCAL_DOMAIN}"], body), {})
        got = self.by_id(sink, msg_id, timeout=60)
        self.assertEqual(split_received(got.data)[1], body)

    def test_pipelined_transaction(self):
        c = self.raw(self.m)
        c.read_reply()
        self.assertIn("PIPELINING", c.ehlo().text.upper())
        msg_id = tid()
        body = mxtest.dot_stuff(make_body(msg_id))
        # RFC 2920: one write, replies in order, one per command.
        c.send(f"MAIL FROM:<{SENDER}>\r\n"
               f"RCPT TO:<a@{LOCAL_DOMAIN}>\r\n"
               "RCPT TO:<x@elsewhere.test>\r\n"
               f"RCPT TO:<b@{LOCAL_DOMAIN}>\r\n"
               "DATA\r\n")
        codes = [r.code for r in c.replies(5)]
        self.assertEqual(codes, [250, 250, 554, 250, 354])
        c.send(body + b".\r\nNOOP\r\nQUIT\r\n")
        codes = [r.code for r in c.read_until_closed(timeout=15)]
        self.assertEqual(codes, [250, 250, 221])
        self.by_id(self.sink, msg_id)
        mxtest.wait_for(lambda: sorted(r for m in self.deliveries(self.sink, msg_id)
                                       for r in m.rcpts)
                        == [f"a@{LOCAL_DOMAIN}", f"b@{LOCAL_DOMAIN}"],
                        10, what="a and b delivered")


class LimitsTest(Base):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard(limits={"errors": 3, "recipients": 3})

    def test_line_length_boundary(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        # 2048 bytes including CRLF is allowed; one more is not.
        self.assertReply(c.cmd("NOOP " + "x" * (2048 - 7)), 250)
        r = c.cmd("NOOP " + "x" * (2048 - 6))
        self.assertReply(r, 500, "5.5.2")
        self.assertIn("line too long", r.text.lower())
        # The session continues after the long line.
        self.assertReply(c.cmd("NOOP"), 250)

    def test_very_long_line(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        r = c.cmd("MAIL FROM:<" + "a" * 100000 + f"@{LOCAL_DOMAIN}>")
        self.assertReply(r, 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_too_many_errors_421_and_close(self):
        c = self.raw(self.m)
        c.read_reply()
        c.ehlo()
        replies = []
        for i in range(6):
            try:
                replies.append(c.cmd(f"BOGUS{i}", timeout=5))
            except (mxtest.Closed, ConnectionResetError, BrokenPipeError):
                break
            if replies[-1].code == 421:
                break
        codes = [r.code for r in replies]
        self.assertIn(421, codes, f"no 421 after repeated errors: {replies}")
        self.assertLessEqual(codes.index(421), 3,
                             f"421 came too late for limits.errors = 3: {codes}")
        self.assertTrue(replies[-1].lines[-1][4:].startswith("4.7.0"), replies[-1])
        # After 421 the server closes the connection.
        self.assertEqual(c.read_until_closed(timeout=5), [])

    def test_recipient_limit_452(self):
        with smtp(self.m) as s:
            s.ehlo()
            s.docmd(f"MAIL FROM:<{SENDER}>")
            for i in range(3):
                self.assertEqual(s.docmd(f"RCPT TO:<r{i}@{LOCAL_DOMAIN}>")[0], 250)
            code, msg = s.docmd(f"RCPT TO:<r3@{LOCAL_DOMAIN}>")
            self.assertEqual(code, 452, msg)
            self.assertTrue(msg.startswith(b"4.5.3"), msg)


class MoreLimitsTest(Base):
    def test_connections_per_ip(self):
        m, _ = self.standard(workers=1, limits={"connections_per_ip": 2})
        src = mxtest.pick_host()
        held = [self.raw(m, source=src) for _ in range(2)]
        for c in held:
            self.assertReply(c.read_reply(), 220)
        third = self.raw(m, source=src)
        r = third.read_reply()
        self.assertReply(r, 421, "4.7.0", f"third session from one IP: {r}")
        self.assertEqual(third.read_until_closed(timeout=5), [])
        # Another address is not affected.
        other = self.raw(m, source=mxtest.pick_host())
        self.assertReply(other.read_reply(), 220)
        # A freed slot can be used again.
        held[0].cmd("QUIT")
        held[0].close()
        time.sleep(0.5)
        again = self.raw(m, source=src)
        self.assertReply(again.read_reply(), 220)

    def test_command_timeout(self):
        m, _ = self.standard(limits={"command_timeout": 2})
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        t0 = time.monotonic()
        rest = c.read_until_closed(timeout=10)
        took = time.monotonic() - t0
        self.assertTrue(1.5 <= took <= 6, f"idle session closed after {took:.1f}s")
        self.assertTrue(all(r.code == 421 for r in rest), rest)

    def test_data_timeout(self):
        m, sink = self.standard(limits={"data_timeout": 2, "command_timeout": 30})
        c = self.raw(m)
        c.read_reply()
        c.ehlo()
        c.cmd(f"MAIL FROM:<{SENDER}>")
        c.cmd(f"RCPT TO:<t@{LOCAL_DOMAIN}>")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: stalled\r\n\r\nhalf a messa")
        t0 = time.monotonic()
        c.read_until_closed(timeout=10)
        took = time.monotonic() - t0
        self.assertTrue(1.5 <= took <= 6, f"stalled DATA closed after {took:.1f}s")
        time.sleep(1)
        self.assertEqual(sink.messages(), [], "half a message was delivered")


class ProtocolFeaturesTest(Base):
    def setUp(self):
        super().setUp()
        self.m, self.sink = self.standard()

    def test_helo_works_without_extensions(self):
        with smtp(self.m) as s:
            code, msg = s.helo("old.client.test")
            self.assertEqual(code, 250)
            self.assertNotIn(b"PIPELINING", msg.upper())
            msg_id = tid()
            self.assertEqual(s.sendmail(SENDER, [f"h@{LOCAL_DOMAIN}"], make_body(msg_id)), {})
        self.by_id(self.sink, msg_id)

    def test_smtputf8_and_8bitmime(self):
        msg_id = tid()
        sender = f"s\u00e9nder@{LOCAL_DOMAIN}"
        rcpt = f"\u00fcser@{LOCAL_DOMAIN}"
        body = make_body(msg_id).replace(b"\r\n\r\n",
                                         "\r\nX-Utf8: gr\u00fc\u00dfe\r\n\r\n".encode(), 1)
        with smtp(self.m) as s:
            s.ehlo()
            self.assertEqual(s.sendmail(sender, [rcpt], body,
                                        mail_options=["SMTPUTF8", "BODY=8BITMIME"]), {})
        got = self.by_id(self.sink, msg_id)
        self.assertEqual(got.mail_from, sender)
        self.assertEqual(got.rcpts, [rcpt])
        self.assertIn("SMTPUTF8", got.env["mail_options"],
                      "SMTPUTF8 not passed on to a next hop that offers it")
        self.assertEqual(split_received(got.data)[1], body)

    def test_requiretls_only_inside_tls(self):
        with smtp(self.m) as s:
            s.ehlo()
            code, msg = s.docmd(f"MAIL FROM:<{SENDER}> REQUIRETLS")
            self.assertGreaterEqual(code, 500, f"REQUIRETLS accepted in plaintext: {code} {msg}")
        with smtp(self.m) as s:
            s.starttls(context=mxtest.insecure_client_context())
            s.ehlo()
            code, msg = s.docmd(f"MAIL FROM:<{SENDER}> REQUIRETLS")
            self.assertEqual(code, 250, msg)

    def test_requiretls_message_not_relayed_in_plaintext(self):
        """RFC 8689 4.2.1: a REQUIRETLS message goes on only over TLS to a
        hop that offers REQUIRETLS; this next hop offers neither."""
        msg_id = tid()
        with smtp(self.m) as s:
            s.starttls(context=mxtest.insecure_client_context())
            s.ehlo()
            self.assertEqual(s.sendmail(SENDER, [f"secure@{LOCAL_DOMAIN}"], make_body(msg_id),
                                        mail_options=["REQUIRETLS"]), {})
        self.m.wait_event(None, timeout=15, pred=lambda r: r.get("event") in
                          ("delivered", "bounced", "deferred") and "secure@" in r.get("rcpt", ""))
        time.sleep(0.5)
        plain = [m for m in self.deliveries(self.sink, msg_id)
                 if m.mail_from == SENDER and not m.env["tls"]]
        self.assertEqual(plain, [], "REQUIRETLS message relayed without TLS")

    def test_ipv6_listener(self):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
                port6 = probe.getsockname()[1]
        except OSError:
            self.skipTest("no IPv6 loopback")
        cfg = dict(self.m.config)
        cfg["listen"] = [f"{self.m.host}:{self.m.port}", f"[::1]:{port6}"]
        self.m.stop()
        self.m.write_config(cfg)
        self.m.start()
        msg_id = tid()
        with smtplib.SMTP("::1", port6, timeout=10, local_hostname="v6.client.test") as s:
            self.assertEqual(s.sendmail(SENDER, [f"v6@{LOCAL_DOMAIN}"], make_body(msg_id)), {})
        self.by_id(self.sink, msg_id)
        rec = self.m.wait_session("::1")
        self.assertEqual(rec.get("messages"), "1", rec)


class RelayTest(Base):
    def test_untrusted_client_cannot_relay(self):
        m, _ = self.standard()
        with smtp(m) as s:
            s.ehlo()
            s.docmd(f"MAIL FROM:<{SENDER}>")
            code, msg = s.docmd("RCPT TO:<victim@elsewhere.test>")
            self.assertEqual(code, 554, msg)
            self.assertTrue(msg.startswith(b"5.7.1"), msg)
            # Local domain still accepted, matched case-insensitively.
            self.assertEqual(s.docmd(f"RCPT TO:<u@{LOCAL_DOMAIN.upper()}>")[0], 250)
            # No subdomain match.
            self.assertEqual(s.docmd(f"RCPT TO:<u@sub.{LOCAL_DOMAIN}>")[0], 554)

    def test_trusted_network_relays_via_relay_next_hop(self):
        relay = self.new_sink(name="relay")
        trusted = mxtest.pick_host()
        untrusted = mxtest.pick_host()
        m, local = self.standard(trusted_networks=[f"{trusted}/32"],
                                 relay_next_hop=relay.next_hop)
        msg_id = tid()
        with smtp(m, source=trusted) as s:
            self.assertEqual(s.sendmail(SENDER, ["someone@elsewhere.test"],
                                        make_body(msg_id)), {})
        got = self.by_id(relay, msg_id)
        self.assertEqual(got.rcpts, ["someone@elsewhere.test"])
        self.assertEqual(self.deliveries(local, msg_id), [])
        # One address beside the trusted /32 is not trusted.
        with smtp(m, source=untrusted) as s:
            s.ehlo()
            s.docmd(f"MAIL FROM:<{SENDER}>")
            self.assertEqual(s.docmd("RCPT TO:<someone@elsewhere.test>")[0], 554)

    def test_trusted_without_relay_next_hop_451(self):
        m, _ = self.standard(trusted_networks=["127.0.0.0/8"])
        with smtp(m) as s:
            s.ehlo()
            s.docmd(f"MAIL FROM:<{SENDER}>")
            code, msg = s.docmd("RCPT TO:<someone@elsewhere.test>")
            self.assertEqual(code, 451, msg)
            self.assertTrue(msg.startswith(b"4.3.0"), msg)


class LmtpNextHopTest(Base):
    def check_lmtp(self, sink):
        m = self.mxd(self.mxd_config(sink.next_hop, [self.cert()]))
        msg_id = tid()
        rcpts = [f"a@{LOCAL_DOMAIN}", f"b@{LOCAL_DOMAIN}"]
        with smtp(m) as s:
            s.starttls(context=mxtest.insecure_client_context())
            self.assertEqual(s.sendmail(SENDER, rcpts, make_body(msg_id)), {})
        got = self.by_id(sink, msg_id)
        self.assertEqual(got.env["proto"], "lmtp")
        mxtest.wait_for(lambda: sorted(r for x in self.deliveries(sink, msg_id)
                                       for r in x.rcpts) == rcpts,
                        10, what="both recipients over LMTP")
        received, rest = split_received(got.data)
        self.assertIsNotNone(received)
        self.assertEqual(rest, make_body(msg_id))

    def test_lmtp_unix_socket(self):
        path = os.path.join(self.wd, "lmtp.sock")
        self.check_lmtp(self.new_sink(name="lmtp_unix", unix=path, tcp=False))

    def test_lmtp_tcp(self):
        self.check_lmtp(self.new_sink(name="lmtp_tcp", lmtp=True))


if __name__ == "__main__":
    mxtest.main()
