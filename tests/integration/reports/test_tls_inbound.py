#!/usr/bin/python3
"""The inbound TLS view (docs/reports.md, "Inbound TLS view"): what an
operator sees with `mailctl tls inbound`, on controld's /metrics and in its
log, from the inbound sessions of every host.

Two real mxd hosts receive real sessions from Python clients on loopback:
STARTTLS established, a client that aborts right after the server's
Finished, a client whose CA refuses the server's certificate (it sends an
alert), plain sessions. These mxd have no resolver, so they look up no PTR
names (test_mxd_ptr.py has mxd that do): remote_ptr stays empty and those
sessions are grouped by the client's /24; the PTR rule is checked with
outcomes uploaded over gRPC as two hosts would send them."""

import json
import os
import re
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import (CONTROLD_BIN, INBOUND, MX1, MX2, OUTBOUND, grpc_channel,  # noqa: E402
                    insecure_client_context, run, smtp_send, wait_for)
import mxtest  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

GOOD, ABORTING, REJECTING = "127.77.1", "127.77.2", "127.77.3"
ABORT_STAGE = "in:client_hello,out:finished"


def view_rows(text):
    """mailctl tls inbound's table: {key: {column: value}}, each with the
    list of its failure lines as (sessions, stage, reason); and the order
    of the keys."""
    lines = text.splitlines()
    cols = lines[0].split()
    rows, order, cur = {}, [], None
    for line in lines[1:]:
        if not line.strip():
            break
        if line.startswith("  failed "):
            _, n, stage, reason = line.split()
            cur["failures"].append((int(n), stage, reason))
            continue
        vals = line.split()
        cur = {c: v for c, v in zip(cols[1:], vals[1:])}
        cur["failures"] = []
        rows[vals[0]] = cur
        order.append(vals[0])
    return rows, order


def section(text, title):
    """The {name: sessions} of the TLS-VERSION or CIPHER section."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.startswith(title + " "):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            name, n = line.split()
            out[name] = int(n)
    return out


def metric_lines(body, name):
    """{labels text: value} of one metric in Prometheus text."""
    out = {}
    for line in body.splitlines():
        m = re.match(rf"^{name}(\{{.*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def abort_after_server_finished(host, port, source):
    """STARTTLS, a ClientHello, the server's whole flight read (TLS 1.3: up
    to its Finished), then the connection closed without the client's
    Finished: a sender that gives up at the end of the handshake."""
    c = mxtest.SmtpRaw(host, port, timeout=10, source=source)
    try:
        assert c.read_reply().code == 220
        assert c.ehlo("abort.test").code == 250
        assert c.cmd("STARTTLS").code == 220
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = insecure_client_context().wrap_bio(inc, out)
        deadline = time.monotonic() + 10
        while True:
            try:
                tls.do_handshake()
                break  # the server's Finished is in: the client's is not sent
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    c.sock.sendall(pending)
                if time.monotonic() > deadline:
                    raise AssertionError("no server flight")
                data = c.sock.recv(65536)
                if not data:
                    raise AssertionError("server closed during the handshake")
                inc.write(data)
    finally:
        c.close()


def reject_server_certificate(host, port, source, cafile):
    """STARTTLS with a client that trusts only cafile, which did not sign
    mxd's certificate: the client sends an alert and hangs up."""
    import smtplib
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    s = smtplib.SMTP(host, port, timeout=10, local_hostname="reject.test",
                     source_address=(source, 0))
    try:
        s.ehlo()
        try:
            s.starttls(context=ctx)
        except ssl.SSLError:
            return
        raise AssertionError("the client accepted a certificate it cannot verify")
    finally:
        s.close()


def plain_session(host, port, source):
    c = mxtest.SmtpRaw(host, port, timeout=10, source=source)
    try:
        assert c.read_reply().code == 220
        assert c.ehlo("plain.test").code == 250
        assert c.cmd("QUIT").code == 221
    finally:
        c.close()


class InboundViewCase(cptest.FleetTestCase):

    def controld_inbound(self, threshold="0.5", min_attempts=3):
        """controld reading the last hour every second; failure_threshold
        is written as libconfig text (a float)."""
        c = self.controld(start=False, config={"inbound": {
            "window": 3600, "refresh_interval": 1, "min_attempts": min_attempts}})
        write = c.write_config

        def write_with_threshold():
            write()
            with open(c.conf_path) as f:
                text = f.read()
            with open(c.conf_path, "w") as f:
                f.write(text.replace("inbound = {\n",
                                     f"inbound = {{\n  failure_threshold = {threshold};\n"))
        c.write_config = write_with_threshold
        return c.start()

    def view(self, c, *args):
        return self.mailctl(c, "tls", "inbound", *args).stdout

    def wait_metric(self, c, name, labels, value, timeout=20):
        def seen():
            status, body = c.http_get("/metrics")
            return metric_lines(body, name).get(labels) == value
        try:
            wait_for(seen, timeout, interval=0.25, what=f"{name}{labels} {value}")
        except TimeoutError:
            _, body = c.http_get("/metrics")
            raise AssertionError(f"{name}{labels} != {value}:\n"
                                 + "\n".join(l for l in body.splitlines()
                                             if l.startswith("mxfleet_inbound")))

    def warnings(self, c):
        return c.events("inbound_tls_failure_rate")


class RealMxdInboundTest(InboundViewCase):
    """Two mxd hosts, sessions from three client networks."""

    def setUp(self):
        super().setUp()
        # The hosts upload on their own schedules: with min_attempts 5 the
        # aborting network can cross only once all its 5 attempts are in.
        self.c = self.controld_inbound(min_attempts=5)
        sink = self.sink()
        self.m1 = self.mxd_with_control(self.c, sink)
        self.m2 = self.mxd_with_control(self.c, sink, cert=self.pki.mx2, name="mxd2")

    def sessions(self):
        m1, m2 = self.m1, self.m2
        for i in range(3):
            smtp_send(m1.host, m1.port, f"good1-{i}", source=f"{GOOD}.{10 + i}", starttls=True)
        for i in range(2):
            smtp_send(m2.host, m2.port, f"good2-{i}", source=f"{GOOD}.{20 + i}", starttls=True)
        plain_session(m1.host, m1.port, f"{GOOD}.30")
        for i in range(2):
            abort_after_server_finished(m1.host, m1.port, f"{ABORTING}.{10 + i}")
            abort_after_server_finished(m2.host, m2.port, f"{ABORTING}.{20 + i}")
        smtp_send(m2.host, m2.port, "aborting-ok", source=f"{ABORTING}.30", starttls=True)
        reject_server_certificate(m1.host, m1.port, f"{REJECTING}.10", self.pki.ca)
        self.wait_outcomes(7, host=MX1)
        self.wait_outcomes(5, host=MX2)

    def mxd_failures(self, network):
        """(stage, reason) of each failed handshake from network as the
        mxds logged it."""
        return [(e["tls_fail_stage"], e["tls_fail_reason"])
                for m in (self.m1, self.m2) for e in m.events("session", starttls="attempted")
                if e["client"].startswith(network + ".")]

    def test_failing_sender_network_stands_out_with_stage_and_reason(self):
        self.sessions()
        aborts = self.mxd_failures(ABORTING)
        self.assertEqual(len(aborts), 4, aborts)
        self.assertEqual(set(aborts), {aborts[0]}, aborts)
        self.assertEqual(aborts[0][0], ABORT_STAGE, aborts)
        abort_reason = aborts[0][1]
        self.assertIn("eof", abort_reason)
        reject = self.mxd_failures(REJECTING)
        self.assertEqual(len(reject), 1, reject)
        reject = reject[0]
        self.assertTrue(reject[1].startswith("alert_received:"), reject)

        text = self.view(self.c, "--by", "sender-domain")
        rows, order = view_rows(text)
        self.assertEqual(order, [f"{ABORTING}.0/24", f"{REJECTING}.0/24", f"{GOOD}.0/24"], text)
        a = rows[f"{ABORTING}.0/24"]
        self.assertEqual((a["SESSIONS"], a["ATTEMPTED"], a["ESTABLISHED"], a["FAILED"],
                          a["FAIL%"]), ("5", "5", "1", "4", "80.0"), text)
        self.assertEqual(a["failures"], [(4, ABORT_STAGE, abort_reason)], text)
        r = rows[f"{REJECTING}.0/24"]
        self.assertEqual(r["failures"], [(1, reject[0], reject[1])], text)
        g = rows[f"{GOOD}.0/24"]
        self.assertEqual((g["SESSIONS"], g["ESTABLISHED"], g["FAILED"], g["OFFERED"]),
                         ("6", "5", "0", "1"), text)
        self.assertEqual(sum(section(text, "TLS-VERSION").values()), 6, text)
        self.assertEqual(sum(section(text, "CIPHER").values()), 6, text)

        hosts, _ = view_rows(self.view(self.c, "--by", "host"))
        self.assertEqual({h: (v["SESSIONS"], v["FAILED"]) for h, v in hosts.items()},
                         {MX1: ("7", "3"), MX2: ("5", "2")})
        stages, order = view_rows(self.view(self.c, "--by", "stage"))
        self.assertEqual(order[0], ABORT_STAGE)
        # TLS 1.3: the server's Finished is out before the client judges the
        # certificate, so the refusal ends at the same stage, for its reason.
        self.assertEqual(stages[ABORT_STAGE]["failures"],
                         [(4, ABORT_STAGE, abort_reason), (1, *reject)])
        self.assertEqual(stages["(no-failure)"]["SESSIONS"], "7")
        ips, _ = view_rows(self.view(self.c, "--by", "remote-ip"))
        self.assertEqual(ips[f"{ABORTING}.10"]["FAILED"], "1")
        self.assertEqual(len(ips), 12)

        j = json.loads(self.view(self.c, "--json", "--since", "30m"))
        self.assertEqual(j["by"], "sender-domain")
        self.assertFalse(j["truncated"])
        first = j["groups"][0]
        self.assertEqual((first["key"], first["attempted"], first["failed"]),
                         (f"{ABORTING}.0/24", 5, 4))
        self.assertAlmostEqual(first["failure_rate"], 0.8)
        self.assertEqual(first["failures"], [{"stage": ABORT_STAGE, "reason": abort_reason,
                                              "sessions": 4}])

        self.wait_metric(self.c, "mxfleet_inbound_starttls_sessions",
                         '{result="failed"}', 5)
        _, body = self.c.http_get("/metrics")
        s = metric_lines(body, "mxfleet_inbound_starttls_sessions")
        self.assertEqual(s, {'{result="established"}': 6, '{result="failed"}': 5,
                             '{result="offered"}': 1, '{result="not_offered"}': 0})
        f = metric_lines(body, "mxfleet_inbound_starttls_failures")
        self.assertEqual(f[f'{{stage="{ABORT_STAGE}",reason="{abort_reason}"}}'], 4)
        self.assertEqual(f[f'{{stage="{reject[0]}",reason="{reject[1]}"}}'], 1)
        self.assertEqual(metric_lines(body, "mxfleet_inbound_window_seconds"), {"": 3600})

        # 4 of 5 over the 0.5 threshold: warned once; the rejecting network
        # failed 1 of 1, under min_attempts: not warned.
        wait_for(lambda: self.warnings(self.c), 20, what="event=inbound_tls_failure_rate")
        time.sleep(3)  # three more refreshes: still one line
        w = self.warnings(self.c)
        self.assertEqual(len(w), 1, w)
        self.assertEqual((w[0]["sender_domain"], w[0]["failed"], w[0]["attempted"],
                          w[0]["rate"], w[0]["threshold"]),
                         (f"{ABORTING}.0/24", "4", "5", "0.800", "0.500"))
        self.assertEqual(w[0]["level"], "warn")


class UploadedInboundTest(InboundViewCase):
    """Outcomes with chosen PTR names, uploaded over gRPC as mx1 and mx2."""
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.c = self.controld_inbound(threshold="0.6")
        self.now = int(time.time() * 1000)

    def upload(self, cert, host, sessions):
        ch = grpc_channel(self.c.addr, cert, self.pki.ca)
        self.addCleanup(ch.close)
        outs = []
        for seq, (ptr, ip, st, extra) in enumerate(sessions, 1):
            o = dict(seq=seq, session_id=f"{host}-{seq}", direction=INBOUND,
                     start_unix_ms=self.now - 60000 + seq, end_unix_ms=self.now - 59000,
                     local_ip="127.0.0.25", local_port=25, remote_ip=ip, remote_port=40000 + seq,
                     remote_ehlo="peer.test", remote_ptr=ptr, starttls=st)
            o.update(extra)
            outs.append(self.pb.Outcome(**o))
        ack = self.svc.CollectorStub(ch).Export(
            self.pb.OutcomeBatch(host_id=host, seq=len(outs), outcomes=outs), timeout=10)
        self.assertEqual(ack.seq, len(outs))

    def test_ptr_names_of_one_provider_fold_into_its_domain_across_hosts(self):
        pb = self.pb
        ok13 = dict(tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384")
        ok12 = dict(tls_version="TLSv1.2", tls_cipher="ECDHE-RSA-AES256-GCM-SHA384")
        eof = dict(tls_fail_stage=ABORT_STAGE, tls_fail_reason="eof")
        ms = "mail-db8eur05on21{}.outbound.protection.outlook.com"
        day = 86400 * 1000
        # mx2 first: its 2 outlook.com attempts alone stay under min_attempts,
        # so the warning, refreshed every second, sees 4 of 6 or nothing.
        self.upload(self.pki.mx2, MX2, [
            (ms.format("03"), "40.107.3.3", pb.STARTTLS_ATTEMPTED, eof),
            (ms.format("03"), "40.107.3.3", pb.STARTTLS_ESTABLISHED, ok13),
            ("", "198.51.100.23", pb.STARTTLS_NOT_OFFERED, {}),
            ("", "198.51.100.99", pb.STARTTLS_OFFERED, {}),
            # not in the last hour, and not inbound: never counted
            ("old.example.net", "203.0.113.1", pb.STARTTLS_ESTABLISHED,
             dict(ok13, start_unix_ms=self.now - 3 * day, end_unix_ms=self.now - 3 * day)),
            ("out.example.org", "203.0.113.2", pb.STARTTLS_ATTEMPTED,
             dict(eof, direction=OUTBOUND)),
        ])
        self.upload(self.pki.mx1, MX1, [
            (ms.format("00"), "40.107.1.1", pb.STARTTLS_ATTEMPTED, eof),
            (ms.format("00"), "40.107.1.1", pb.STARTTLS_ATTEMPTED, eof),
            (ms.format("01"), "40.107.1.2", pb.STARTTLS_ATTEMPTED, eof),
            (ms.format("02") + ".", "40.107.2.2", pb.STARTTLS_ESTABLISHED, ok13),
            ("mx1.mail.example.co.uk", "192.0.2.5", pb.STARTTLS_ESTABLISHED, ok12),
            ("MX2.Mail.Example.CO.UK", "192.0.2.6", pb.STARTTLS_ESTABLISHED, ok12),
        ])

        text = self.view(self.c)
        rows, order = view_rows(text)
        self.assertEqual(order, ["outlook.com", "example.co.uk", "198.51.100.0/24"], text)
        o = rows["outlook.com"]
        self.assertEqual((o["SESSIONS"], o["ATTEMPTED"], o["ESTABLISHED"], o["FAILED"],
                          o["FAIL%"]), ("6", "6", "2", "4", "66.7"), text)
        self.assertEqual(o["failures"], [(4, ABORT_STAGE, "eof")])
        n = rows["198.51.100.0/24"]
        self.assertEqual((n["SESSIONS"], n["ATTEMPTED"], n["OFFERED"], n["NOT-OFFERED"]),
                         ("2", "0", "1", "1"))
        self.assertEqual(section(text, "TLS-VERSION"), {"TLSv1.3": 2, "TLSv1.2": 2})
        self.assertEqual(section(text, "CIPHER"),
                         {"TLS_AES_256_GCM_SHA384": 2, "ECDHE-RSA-AES256-GCM-SHA384": 2})

        older, _ = view_rows(self.view(self.c, "--since", "4d"))
        self.assertEqual(older["example.net"]["ESTABLISHED"], "1")
        self.assertNotIn("example.org", older)
        hosts, _ = view_rows(self.view(self.c, "--by", "host", "--since", "4d"))
        self.assertEqual({h: (v["SESSIONS"], v["FAILED"]) for h, v in hosts.items()},
                         {MX1: ("6", "3"), MX2: ("5", "1")})

        self.wait_metric(self.c, "mxfleet_inbound_starttls_failures",
                         f'{{stage="{ABORT_STAGE}",reason="eof"}}', 4)
        wait_for(lambda: self.warnings(self.c), 20, what="event=inbound_tls_failure_rate")
        time.sleep(2)
        w = self.warnings(self.c)
        self.assertEqual([(x["sender_domain"], x["failed"], x["attempted"], x["rate"],
                           x["threshold"], x["top_stage"], x["top_reason"]) for x in w],
                         [("outlook.com", "4", "6", "0.667", "0.600", ABORT_STAGE, "eof")])

    def test_unknown_grouping_and_bad_since_are_refused(self):
        p = self.mailctl(self.c, "tls", "inbound", "--by", "domain", check=False)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("sender-domain, remote-ip, stage or host", p.stderr)
        p = self.mailctl(self.c, "tls", "inbound", "--since", "1y", check=False)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("DURATION", p.stderr)

    def test_threshold_out_of_range_is_a_configuration_error(self):
        conf = os.path.join(self.wd, "bad.conf")
        with open(conf, "w") as f:
            f.write(f'socket = "{self.wd}/x.sock";\ndatabase = "{self.database}";\n'
                    "inbound = { failure_threshold = 1.5; };\n")
        p = run([CONTROLD_BIN, "-n", "-c", conf], check=False)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("failure_threshold", p.stderr)


if __name__ == "__main__":
    cptest.main()
