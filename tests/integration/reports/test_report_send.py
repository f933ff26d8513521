#!/usr/bin/python3
"""Sending the TLS reports controld aggregates (RFC 8460; docs/reports.md,
"Sending"), on real components: PostgreSQL, controld (one or two
replicas), a real mxd that relays the mailed reports to a sink, the test
DNS (tests/tools/dnstest via outtest.Dns) publishing `_smtp._tls` TXT
records with mailto: and https: rua, and a local HTTPS endpoint (Python
http.server + ssl, its certificate given to controld as the CA file).

Outcomes go in as mx1 and mx2 upload them (gRPC OutcomeBatch, each with
its own client certificate), on yesterday (UTC)."""

import email
import gzip
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import cptest  # noqa: E402
import outtest  # noqa: E402
from cptest import MX1, MX2, OUTBOUND, grpc_channel, wait_for  # noqa: E402

SCHEMA_PATH = os.path.join(cptest.SRC, "tests", "reports", "rfc8460.schema.json")
SUBMITTER = "reports.fleet.test"
MAIL_FROM = "tlsrpt-noreply@reports.fleet.test"
REPORTS = {"organization_name": "Fleet Test Org", "contact_info": "mailto:tlsrpt@fleet.test",
           "submitter": SUBMITTER, "mail_from": MAIL_FROM}
STS = ["version: STSv1", "mode: enforce", "mx: mx.sts.example", "max_age: 604800"]
DAY = 86400
DNS = None


def setUpModule():
    global DNS
    cptest.setUpModule()
    DNS = outtest.Dns()


def tearDownModule():
    if DNS:
        DNS.down()
    cptest.tearDownModule()


def load_schema():
    import jsonschema
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def ymd(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class Endpoint:
    """An HTTPS rua endpoint. Each path answers from a script of statuses
    (the last one repeats); `hold` seconds: the first connection is
    accepted and left without a TLS handshake that long (a slow receiver)."""

    def __init__(self, wd, hold=0):
        self.host = cptest.mxtest.pick_host()
        self.cert, self.key = cptest.mxtest.make_cert(wd, f"rua-{self.host}", self.host)
        self.received = []          # (path, content-type, body)
        self.statuses = {}
        self.accepted = 0
        self.hold = hold
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with ep.lock:
                    script = ep.statuses.get(self.path, [200])
                    status = script.pop(0) if len(script) > 1 else script[0]
                    if status == 200:
                        ep.received.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", f"https://{ep.host}:{ep.port}/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def finish_request(self, request, addr):
                with ep.lock:
                    ep.accepted += 1
                    first = ep.accepted == 1
                if first and ep.hold:
                    time.sleep(ep.hold)
                try:
                    conn = ctx.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    request.close()
                    return
                try:
                    Handler(conn, addr, self)
                finally:
                    conn.close()

        self.srv = Server((self.host, 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return f"https://{self.host}:{self.port}{path}"

    def bodies(self, path):
        with self.lock:
            return [b for p, _, b in self.received if p == path]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class ReportSendTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.today = int(time.time()) // DAY * DAY
        self.d1 = self.today - DAY
        self.seq = {MX1: 0, MX2: 0}
        self.tag = f"t{os.getpid()}{int(time.monotonic() * 1000) % 100000}"

    # -- the fleet

    def endpoint(self, hold=0):
        ep = Endpoint(self.wd, hold)
        self.addCleanup(ep.close)
        return ep

    def start_controld(self, ep, send=None, name="controld", env=None, start=True):
        send_cfg = {"enabled": False, "window": 0, "jitter": 0, "retry": 1, "retry_max": 1,
                    "interval": 1, "timeout": 10, "https_ca_file": ep.cert}
        send_cfg.update(send or {})
        c = self.controld(name=name, start=False, migrate=(name == "controld"), config={
            "reports": dict(REPORTS, send=send_cfg),
            "dns": {"resolver": DNS.env["RESOLVER"], "timeout": 5}})
        if env:
            c.env = dict(c.env or cptest.child_env(), **env)
        if start:
            c.start()
        return c

    def relay_fleet(self, ep):
        """controld and a real mxd that relays what controld submits to it
        (trusted_networks) to the sink, as an operator configures them:
        reports.send.submit names the mxd."""
        c = self.start_controld(ep, start=False)
        sink = self.sink()
        m = self.mxd_with_control(c, sink, start=False, trusted_networks=["127.0.0.0/8"],
                                  relay_next_hop=sink.next_hop)
        c.config["reports"]["send"]["submit"] = [f"{m.host}:{m.port}"]
        c.start()
        m.start()
        return c, m, sink

    def dkim_key(self, c):
        """The submitter's DKIM key made by controld; the TXT record as
        `mailctl dns records` publishes it."""
        self.mailctl(c, "domain", "add", SUBMITTER, "smtp:127.0.0.1:25")
        self.mailctl(c, "dns", "set", SUBMITTER)
        sel = self.scalar(f"SELECT selector FROM dkim_keys WHERE domain = '{SUBMITTER}' "
                          "AND state = 'active'")
        # exit 1: the test hosts' certificates do not cover the names (reported
        # under the records); the records are printed all the same.
        zone = self.mailctl(c, "dns", "records", SUBMITTER, check=False).stdout
        line = [x for x in zone.splitlines() if x.startswith(f"{sel}._domainkey.{SUBMITTER}.")]
        self.assertEqual(len(line), 1, zone)
        return sel, "".join(re.findall(r'"([^"]*)"', line[0])).encode()

    def publish(self, domain, *rua):
        DNS.add([f'_smtp._tls.{domain}. 300 IN TXT "v=TLSRPTv1; rua={",".join(rua)}"'])

    # -- outcomes as a host uploads them

    def outcome(self, host, t, domain, result):
        self.seq[host] += 1
        s = self.seq[host]
        pr = self.pb.PolicyResult(
            policy_type="sts", policy_domain=domain, policy_strings=STS,
            mx_host=["mx.sts.example"], result_type=result,
            sending_mta_ip="192.0.2.1" if host == MX1 else "192.0.2.2",
            receiving_mx_hostname="mx.sts.example", receiving_ip="198.51.100.5")
        return self.pb.Outcome(
            seq=s, session_id=f"{host}-{self.tag}-{s}", direction=OUTBOUND,
            start_unix_ms=int(t * 1000), end_unix_ms=int(t * 1000) + 40,
            local_ip=pr.sending_mta_ip, local_port=40000 + s, remote_ip="198.51.100.5",
            remote_port=25, starttls=self.pb.STARTTLS_ESTABLISHED,
            tls_version="TLSv1.3", messages=1, recipients=1, policy_results=[pr])

    def upload(self, c, domains, day=None):
        day = self.d1 if day is None else day
        for host, cert in ((MX1, self.pki.mx1), (MX2, self.pki.mx2)):
            out = []
            for i, d in enumerate(domains):
                out.append(self.outcome(host, day + 3600 + i, d, "success"))
                out.append(self.outcome(host, day + 7200 + i, d, "certificate-expired"))
            ch = grpc_channel(c.addr, cert, self.pki.ca)
            self.addCleanup(ch.close)
            b = self.pb.OutcomeBatch(host_id=host, seq=self.seq[host], outcomes=out)
            self.svc.CollectorStub(ch).Export(b, timeout=20)

    # -- mailctl

    def send_now(self, c, *args):
        r = self.mailctl(c, "reports", "send-now", "--json", *args, timeout=120)
        return json.loads(r.stdout)

    def deliveries(self, c, which="pending"):
        return json.loads(self.mailctl(c, "reports", which, "--json").stdout)["deliveries"]

    def all_deliveries(self):
        return self.sql("SELECT policy_domain, rua, state, attempts FROM report_deliveries "
                        "ORDER BY policy_domain, rua")

    # -- the tests

    def test_mailto_report_arrives_through_mxd_dkim_signed_and_https_gets_valid_gzip_once(self):
        import dkim
        schema = load_schema()
        ep = self.endpoint()
        c, m, sink = self.relay_fleet(ep)
        sel, dkim_txt = self.dkim_key(c)
        dom = f"sts-{self.tag}.example.test"
        self.publish(dom, f"mailto:tlsrpt@rua-{self.tag}.test", ep.url("/tlsrpt"))
        self.upload(c, [dom])

        r = self.send_now(c, "--day", ymd(self.d1))
        self.assertEqual((r["planned"], r["sent"], r["retrying"], r["failed"]), (2, 2, 0, 0), r)

        # https: one POST of application/tlsrpt+gzip that gunzips to a valid report
        bodies = ep.bodies("/tlsrpt")
        self.assertEqual(len(bodies), 1)
        self.assertEqual(ep.received[0][1], "application/tlsrpt+gzip")
        rep = json.loads(gzip.decompress(bodies[0]))
        schema.validate(rep)
        self.assertEqual(rep["report-id"], f"{ymd(self.d1)}_{dom}_domain@{SUBMITTER}")
        self.assertEqual(rep["policies"][0]["summary"], {
            "total-successful-session-count": 2, "total-failure-session-count": 2})

        # mailto: through mxd to the sink, DKIM-verified with the published key
        msg = sink.wait_message(lambda x: x.rcpts == [f"tlsrpt@rua-{self.tag}.test"],
                                timeout=30, what="the mailed report")
        self.assertEqual(msg.mail_from, MAIL_FROM)

        def dnsfunc(name, timeout=5):
            return dkim_txt if name == f"{sel}._domainkey.{SUBMITTER}.".encode() else None
        self.assertTrue(dkim.verify(msg.data, dnsfunc=dnsfunc), msg.data[:2000])
        parsed = email.message_from_bytes(msg.data)
        self.assertEqual(parsed["TLS-Report-Domain"], dom)
        self.assertEqual(parsed["TLS-Report-Submitter"], SUBMITTER)
        self.assertEqual(parsed["TLS-Required"], "No")
        self.assertEqual(" ".join(parsed["Subject"].split()),
                         f"Report Domain: {dom} Submitter: {SUBMITTER} "
                         f"Report-ID: <{rep['report-id']}>")
        self.assertEqual(parsed.get_content_type(), "multipart/report")
        self.assertEqual(parsed.get_param("report-type"), "tlsrpt")
        part = [p for p in parsed.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
        self.assertEqual(len(part), 1)
        self.assertEqual(gzip.decompress(part[0].get_payload(decode=True)),
                         gzip.decompress(bodies[0]), "the same report by mail and https")

        # Again: nothing planned, nothing sent twice.
        r = self.send_now(c, "--day", ymd(self.d1))
        self.assertEqual((r["planned"], r["sent"]), (0, 0), r)
        time.sleep(2)
        self.assertEqual(len(ep.bodies("/tlsrpt")), 1)
        self.assertEqual(len([x for x in sink.messages()
                              if x.rcpts == [f"tlsrpt@rua-{self.tag}.test"]]), 1)
        sent = self.deliveries(c, "sent")
        self.assertEqual(sorted(d["rua"] for d in sent),
                         sorted([ep.url("/tlsrpt"), f"mailto:tlsrpt@rua-{self.tag}.test"]))
        self.assertTrue(all(d["attempts"] == 1 and d["sent_unix"] > 0 for d in sent), sent)
        one = json.loads(self.mailctl(c, "reports", "show", str(sent[0]["id"]),
                                      "--json").stdout)
        self.assertEqual(one["report"], rep)

    def tlsa_outcomes(self, c, results):
        """Upload DANE results as mx1 does: (recipient domain, MX host,
        result type) per session."""
        out = []
        for i, (dom, mx, result) in enumerate(results):
            self.seq[MX1] += 1
            s = self.seq[MX1]
            pr = self.pb.PolicyResult(
                policy_type="tlsa", policy_domain=dom,
                policy_strings=["3 1 1 " + "ab" * 32], result_type=result,
                sending_mta_ip="192.0.2.1", receiving_mx_hostname=mx,
                receiving_ip="198.51.100.7")
            t = self.d1 + 3600 + i
            out.append(self.pb.Outcome(
                seq=s, session_id=f"{MX1}-{self.tag}-{s}", direction=OUTBOUND,
                start_unix_ms=int(t * 1000), end_unix_ms=int(t * 1000) + 40,
                local_ip="192.0.2.1", local_port=41000 + s, remote_ip="198.51.100.7",
                remote_port=25, starttls=self.pb.STARTTLS_ESTABLISHED,
                tls_version="TLSv1.3", messages=1, recipients=1, policy_results=[pr]))
        ch = grpc_channel(c.addr, self.pki.mx1, self.pki.ca)
        self.addCleanup(ch.close)
        b = self.pb.OutcomeBatch(host_id=MX1, seq=self.seq[MX1], outcomes=out)
        self.svc.CollectorStub(ch).Export(b, timeout=20)

    def test_an_address_named_by_a_domain_and_its_mx_host_gets_each_dane_result_once(self):
        ep = self.endpoint()
        c = self.start_controld(ep)
        dom = f"dane-{self.tag}.example.test"        # rua /shared
        other = f"other-{self.tag}.example.test"     # rua /other, same MX host
        mx = f"mx-{self.tag}.example.test"           # rua /shared and /hostonly
        solo = f"solo-{self.tag}.example.test"       # rua /solo, its MX host's too
        solo_mx = f"mx-solo-{self.tag}.example.test"
        self.publish(dom, ep.url("/shared"))
        self.publish(other, ep.url("/other"))
        self.publish(mx, ep.url("/shared"), ep.url("/hostonly"))
        self.publish(solo, ep.url("/solo"))
        self.publish(solo_mx, ep.url("/solo"))
        self.tlsa_outcomes(c, [(dom, mx, "success"), (dom, mx, "tlsa-invalid"),
                               (dom, mx, "success"), (other, mx, "success"),
                               (other, mx, "dane-required"),
                               (solo, solo_mx, "validation-failure")])
        r = self.send_now(c, "--day", ymd(self.d1))
        self.assertEqual(r["failed"], 0, r)

        def reports(path):
            return [json.loads(gzip.decompress(b)) for b in ep.bodies(path)]

        def counts(rep):
            s = rep["policies"][0]["summary"]
            return (s["total-successful-session-count"], s["total-failure-session-count"])

        def by_domain(reps):
            return {x["policies"][0]["policy"]["policy-domain"]: x for x in reps}

        # The address both records name: the domain report with its 3 DANE
        # results, and the host report with only the other domain's 2.
        shared = by_domain(reports("/shared"))
        self.assertEqual(sorted(shared), sorted([dom, mx]), shared)
        self.assertEqual(counts(shared[dom]), (2, 1))
        self.assertEqual(counts(shared[mx]), (1, 1))
        self.assertEqual([f["result-type"] for f in shared[mx]["policies"][0]
                          ["failure-details"]], ["dane-required"])
        # The host's other address gets the whole host report; the other
        # domain its own.
        hostonly = reports("/hostonly")
        self.assertEqual(len(hostonly), 1)
        self.assertEqual(counts(hostonly[0]), (3, 2))
        self.assertEqual(counts(reports("/other")[0]), (1, 1))
        # A host report left empty by that rule is not sent at all.
        solo_reps = reports("/solo")
        self.assertEqual([x["policies"][0]["policy"]["policy-domain"] for x in solo_reps],
                         [solo])
        self.assertTrue(any(f"domain={solo_mx} " in line for line in
                            c.log_tail().splitlines() if "event=tlsrpt_covered" in line),
                        c.log_tail())
        self.assertEqual(r["planned"], 5, r)

    def test_mailto_without_dkim_key_waits_with_the_reason(self):
        ep = self.endpoint()
        c = self.start_controld(ep, send={"submit": ["127.0.0.1:9"]})
        dom = f"nokey-{self.tag}.example.test"
        self.publish(dom, f"mailto:tlsrpt@rua-{self.tag}.test")
        self.upload(c, [dom])
        r = self.send_now(c, "--day", ymd(self.d1))
        self.assertEqual((r["planned"], r["sent"], r["retrying"]), (1, 0, 1), r)
        p = self.deliveries(c, "pending")
        self.assertEqual(len(p), 1)
        self.assertEqual(p[0]["attempts"], 0)
        self.assertIn(f"no active DKIM key for {SUBMITTER}", p[0]["last_error"])
        self.assertTrue(c.events("tlsrpt_send_waiting"), c.log_tail())
        # What an operator reads: the delivery, and the reason under it.
        out = self.mailctl(c, "reports", "pending").stdout.splitlines()
        self.assertRegex(out[1], rf"^{p[0]['id']}\s+{ymd(self.d1)}\s+{dom}\s+domain\s+pending\s+0 ")
        self.assertTrue(out[1].endswith(f"mailto:tlsrpt@rua-{self.tag}.test"), out)
        self.assertEqual(out[2].strip(), "last error: " + p[0]["last_error"])
        time.sleep(1.2)     # reports.send.retry: due again
        out = self.mailctl(c, "reports", "send-now", "--day", ymd(self.d1)).stdout
        self.assertTrue(out.startswith(f"day {ymd(self.d1)}: planned 0, sent 0, retrying 1,"),
                        out)

    def test_https_500_is_retried_until_accepted_and_a_redirect_is_not_followed(self):
        ep = self.endpoint()
        ep.statuses = {"/flaky": [500, 500, 200], "/moved": [302]}
        c = self.start_controld(ep, send={"enabled": True, "give_up": 6})
        dom = f"retry-{self.tag}.example.test"
        self.publish(dom, ep.url("/flaky"), ep.url("/moved"))
        self.upload(c, [dom])
        r = self.send_now(c, "--day", ymd(self.d1))
        self.assertEqual((r["planned"], r["sent"], r["retrying"]), (2, 0, 2), r)
        self.assertTrue(any("HTTP 500" in e for e in r["errors"]), r)
        self.assertTrue(any("redirect, not followed" in e for e in r["errors"]), r)

        # The timer retries: /flaky answers 200 at the third try.
        wait_for(lambda: len(ep.bodies("/flaky")) == 1, 30, interval=0.2,
                 what="the report accepted by /flaky")
        # /moved keeps redirecting; nothing went to the redirect target; after
        # give_up seconds since the first try it is failed.
        wait_for(lambda: any(d[1].endswith("/moved") and d[2] == "failed"
                             for d in self.all_deliveries()), 30, interval=0.5,
                 what="the redirected delivery failed")
        self.assertEqual(ep.bodies("/ok"), [])
        rows = {d[1]: d for d in self.all_deliveries()}
        self.assertEqual(rows[ep.url("/flaky")][2:], ("sent", "3"))
        self.assertGreaterEqual(int(rows[ep.url("/moved")][3]), 2)
        time.sleep(2)
        self.assertEqual(len(ep.bodies("/flaky")), 1, "sent once")

    def test_one_replica_sends_and_a_replica_killed_mid_send_sends_nothing_twice(self):
        ep = self.endpoint(hold=6)
        send = {"enabled": True}
        doms = [f"a-{self.tag}.example.test", f"b-{self.tag}.example.test"]
        for d in doms:
            self.publish(d, ep.url(f"/{d}"))
        c1 = self.start_controld(ep, send=send)
        self.upload(c1, doms)
        # c1 plans yesterday and holds the lock while the receiver stalls.
        wait_for(lambda: ep.accepted >= 1, 30, interval=0.1, what="c1 connecting")
        c2 = self.start_controld(ep, send=send, name="controld-b")
        time.sleep(3)
        self.assertEqual(ep.accepted, 1, "c2 sent while c1 held the lock")
        self.assertEqual(self.scalar("SELECT count(*) FROM report_deliveries "
                                     "WHERE state = 'sending'"), "1")
        c1.killpg()
        c1.proc.wait(10)
        # c2 takes the lock, puts the interrupted delivery back and sends both.
        wait_for(lambda: all(len(ep.bodies(f"/{d}")) == 1 for d in doms), 30, interval=0.2,
                 what="both reports received")
        self.assertTrue(c2.events("tlsrpt_recovered"), c2.log_tail())
        c1.start()
        time.sleep(4)
        for d in doms:
            self.assertEqual(len(ep.bodies(f"/{d}")), 1, f"{d} received once")
        self.assertEqual([r[2] for r in self.all_deliveries()], ["sent", "sent"])
        self.assertEqual(c1.events("tlsrpt_sent"), [])

    def test_day_is_planned_after_the_boundary_and_a_suppressed_address_is_skipped(self):
        ep = self.endpoint()
        dom = f"day-{self.tag}.example.test"
        rua_mail = f"tlsrpt@rua-{self.tag}.test"
        self.publish(dom, f"mailto:{rua_mail}", ep.url("/day"))
        # The reports clock starts 10 s before the end of the day reported.
        t0 = time.time()
        offset = self.today - 10 - int(t0)
        c = self.start_controld(ep, send={"enabled": True, "submit": ["127.0.0.1:9"]},
                                env={"MXFLEET_REPORTS_CLOCK_OFFSET": str(offset)})
        self.mailctl(c, "reports", "suppress", rua_mail.upper(), "--until", "2d")
        self.upload(c, [dom])
        time.sleep(1.5)
        self.assertLess(time.time() - t0, 9, "too slow to see the day before its end")
        self.assertEqual(self.scalar(f"SELECT count(*) FROM report_deliveries "
                                     f"WHERE policy_domain = '{dom}'"), "0",
                         "planned before the day ended")
        wait_for(lambda: len(ep.bodies("/day")) == 1, 30, interval=0.2,
                 what="the report sent after the boundary")
        rows = {d[1]: d[2] for d in self.all_deliveries()}
        self.assertEqual(rows, {f"mailto:{rua_mail}": "suppressed", ep.url("/day"): "sent"})
        self.assertTrue(c.events("tlsrpt_clock_offset"))
        self.mailctl(c, "reports", "unsuppress", rua_mail)
        self.assertEqual(self.scalar("SELECT count(*) FROM report_suppressions"), "0")


if __name__ == "__main__":
    cptest.main()
