#!/usr/bin/python3
"""The TLS reports controld would send (RFC 8460), aggregated per UTC day
from the outbound outcomes two hosts upload (docs/reports.md,
"Aggregation"), read with `mailctl reports preview` and validated against
tests/reports/rfc8460.schema.json with Debian's python3-jsonschema.

Outcomes go in as mx1 and mx2 send them: gRPC OutcomeBatch uploads, each
with its own client certificate, one batch resent whole and one regrouped
(stored once). The day reported is yesterday (UTC); sessions just before
and just after it, on the two neighbouring days, must not count."""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
import cptest  # noqa: E402
from cptest import MX1, MX2, OUTBOUND, grpc_channel  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

SCHEMA_PATH = os.path.join(cptest.SRC, "tests", "reports", "rfc8460.schema.json")
LIST_TOOL = os.environ.get("TLSRPT_LIST_TOOL",
                           os.path.join(cptest.BUILD_BIN, "tlsrpt_list_tool"))

REPORTS = {"organization_name": "Fleet Test Org", "contact_info": "mailto:tlsrpt@fleet.test",
           "submitter": "Reports.Fleet.Test"}
SUBMITTER = "reports.fleet.test"

STS = ["version: STSv1", "mode: enforce", "mx: mx.sts.example", "max_age: 604800"]
STS_MX = ["mx.sts.example"]
TLSA = ["3 1 1 " + "ab" * 32]
DAY = 86400


def load_schema():
    import jsonschema
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def ymd(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class ReportPreviewTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        today = int(time.time()) // DAY * DAY
        self.d1 = today - DAY          # the day reported
        self.d0 = today - 2 * DAY      # the day before
        self.today = today
        self.seq = {MX1: 0, MX2: 0}

    # -- outcomes as a host uploads them

    def outcome(self, host, t, ptype, domain, result, strings=(), mx_host=(),
                rmx="", rip="198.51.100.5", helo="", smta=None, frc="", ai=""):
        self.seq[host] += 1
        s = self.seq[host]
        pr = self.pb.PolicyResult(
            policy_type=ptype, policy_domain=domain, policy_strings=list(strings),
            mx_host=list(mx_host), result_type=result,
            sending_mta_ip=smta or ("192.0.2.1" if host == MX1 else "192.0.2.2"),
            receiving_mx_hostname=rmx, receiving_mx_helo=helo, receiving_ip=rip,
            failure_reason_code=frc, additional_information=ai)
        ok = result == "success"
        return self.pb.Outcome(
            seq=s, session_id=f"{host}-o{s}", direction=OUTBOUND,
            start_unix_ms=int(t * 1000), end_unix_ms=int(t * 1000) + 40,
            local_ip=pr.sending_mta_ip, local_port=40000 + s, remote_ip=rip, remote_port=25,
            remote_ehlo=helo, starttls=self.pb.STARTTLS_ESTABLISHED if ok else
            self.pb.STARTTLS_ATTEMPTED, tls_version="TLSv1.3" if ok else "",
            messages=1, recipients=1, policy_results=[pr])

    def upload(self, host, outcomes, batch_seq=None):
        cert = self.pki.mx1 if host == MX1 else self.pki.mx2
        ch = grpc_channel(self.c.addr, cert, self.pki.ca)
        self.addCleanup(ch.close)
        b = self.pb.OutcomeBatch(host_id=host, seq=batch_seq or max(o.seq for o in outcomes),
                                 outcomes=outcomes)
        return self.svc.CollectorStub(ch).Export(b, timeout=20)

    def mx1_sessions(self):
        d1, d0 = self.d1, self.d0
        sts = dict(strings=STS, mx_host=STS_MX, rmx="mx.sts.example", helo="mx.sts.example")
        o = [
            # sts.example: the first and the last millisecond of the day count
            self.outcome(MX1, d1, "sts", "sts.example", "success", **sts),
            self.outcome(MX1, d1 + 43200, "sts", "sts.example", "success", **sts),
            self.outcome(MX1, d1 + DAY - 0.001, "sts", "sts.example", "success", **sts),
            self.outcome(MX1, d1 + 3600, "sts", "sts.example", "certificate-expired", **sts),
            self.outcome(MX1, d1 + 7200, "sts", "sts.example", "certificate-expired", **sts),
            # no TCP session: neither a success nor a TLS failure
            self.outcome(MX1, d1 + 100, "sts", "sts.example", "connection-failure", **sts),
            # the neighbouring days
            self.outcome(MX1, d1 - 0.001, "sts", "sts.example", "success", **sts),
            self.outcome(MX1, d0 + 5, "sts", "sts.example", "certificate-expired", **sts),
            self.outcome(MX1, self.today, "sts", "sts.example", "certificate-expired", **sts),
            # plain.example: no policy
            self.outcome(MX1, d1 + 10, "no-policy-found", "plain.example", "success",
                         rmx="mx.plain.example"),
            self.outcome(MX1, d1 + 11, "no-policy-found", "plain.example", "success",
                         rmx="mx.plain.example"),
            self.outcome(MX1, d1 + 12, "no-policy-found", "plain.example", "success",
                         rmx="mx.plain.example"),
            # dane.example and other.example share the MX host mx.dane.example
            self.outcome(MX1, d1 + 20, "tlsa", "dane.example", "success", strings=TLSA,
                         rmx="mx.dane.example", rip="203.0.113.9"),
            self.outcome(MX1, d1 + 21, "tlsa", "dane.example", "success", strings=TLSA,
                         rmx="mx.dane.example", rip="203.0.113.9"),
            self.outcome(MX1, d1 + 22, "tlsa", "other.example", "success", strings=TLSA,
                         rmx="MX.Dane.Example.", rip="203.0.113.9"),
        ]
        return o

    def mx2_sessions(self):
        d1 = self.d1
        sts = dict(strings=STS, mx_host=STS_MX, rmx="mx.sts.example", helo="mx.sts.example")
        return [
            self.outcome(MX2, d1 + 50, "sts", "sts.example", "success", **sts),
            self.outcome(MX2, d1 + 51, "sts", "sts.example", "success", **sts),
            # same failure as mx1's but another sending-mta-ip: its own group
            self.outcome(MX2, d1 + 52, "sts", "sts.example", "certificate-expired", **sts),
            self.outcome(MX2, d1 + 53, "sts", "sts.example", "starttls-not-supported",
                         strings=STS, mx_host=STS_MX, rmx="mx.sts.example",
                         helo="mx2.sts.example", rip="198.51.100.6"),
            # the policy could not be fetched: a policy of its own, no strings
            self.outcome(MX2, d1 + 54, "sts", "sts.example", "sts-policy-fetch-error",
                         rmx="mx.sts.example", frc="https: connection refused"),
            self.outcome(MX2, d1 + 60, "no-policy-found", "plain.example", "success",
                         rmx="mx.plain.example"),
            self.outcome(MX2, d1 + 61, "no-policy-found", "plain.example",
                         "starttls-not-supported", rmx="mx.plain.example",
                         helo="mx.plain.example", rip="198.51.100.20"),
            self.outcome(MX2, d1 + 70, "tlsa", "dane.example", "success", strings=TLSA,
                         rmx="mx.dane.example", rip="203.0.113.9"),
            self.outcome(MX2, d1 + 71, "tlsa", "dane.example", "tlsa-invalid", strings=TLSA,
                         rmx="mx.dane.example", helo="mx.dane.example", rip="203.0.113.9"),
        ]

    def load_fleet(self):
        self.c = self.controld(config={"reports": REPORTS})
        one, two = self.mx1_sessions(), self.mx2_sessions()
        self.assertFalse(self.upload(MX1, one[:8]).duplicate)
        self.assertFalse(self.upload(MX2, two).duplicate)
        self.assertFalse(self.upload(MX1, one[8:]).duplicate)
        # At-least-once: a batch resent whole, and outcomes regrouped.
        self.assertTrue(self.upload(MX2, two).duplicate)
        self.upload(MX1, one[5:12])
        stored = int(self.scalar(f"SELECT count(*) FROM outcomes WHERE direction = {OUTBOUND}"))
        self.assertEqual(stored, len(one) + len(two))

    # -- mailctl

    def preview(self, domain, day, *flags, check=True):
        r = self.mailctl(self.c, "reports", "preview", "--domain", domain, "--day", day,
                         *flags, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"mailctl exited {r.returncode}: {r.stderr}")
        return r

    def report(self, domain, day, *flags):
        """The report's exact JSON, after checking it against the schema."""
        text = self.preview(domain, day, "--json", *flags).stdout
        rep = json.loads(text)
        self.schema.validate(rep)
        return text, rep

    def policy(self, rep, strings):
        found = [p for p in rep["policies"] if p["policy"].get("policy-string", []) == strings]
        self.assertEqual(len(found), 1, rep)
        return found[0]

    # -- the tests

    def test_domain_reports_count_one_day_from_both_hosts_once(self):
        self.schema = load_schema()
        self.load_fleet()
        day = ymd(self.d1)
        text, rep = self.report("sts.example", day)
        self.assertEqual(rep["organization-name"], "Fleet Test Org")
        self.assertEqual(rep["contact-info"], "mailto:tlsrpt@fleet.test")
        self.assertEqual(rep["report-id"], f"{day}_sts.example_domain@{SUBMITTER}")
        self.assertEqual(rep["date-range"], {"start-datetime": f"{day}T00:00:00Z",
                                             "end-datetime": f"{day}T23:59:59Z"})
        self.assertEqual(len(rep["policies"]), 2, rep)
        p = self.policy(rep, STS)
        self.assertEqual(p["policy"], {"policy-type": "sts", "policy-string": STS,
                                       "policy-domain": "sts.example", "mx-host": STS_MX})
        # mx1 3 + mx2 2 successes; 2 + 1 + 1 failures; not the connection
        # failure, not the neighbouring days, not the resent batches.
        self.assertEqual(p["summary"], {"total-successful-session-count": 5,
                                        "total-failure-session-count": 4})
        details = sorted(p["failure-details"], key=lambda d: (d["result-type"],
                                                              d["sending-mta-ip"]))
        self.assertEqual(details, [
            {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
             "receiving-mx-hostname": "mx.sts.example", "receiving-mx-helo": "mx.sts.example",
             "receiving-ip": "198.51.100.5", "failed-session-count": 2},
            {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.2",
             "receiving-mx-hostname": "mx.sts.example", "receiving-mx-helo": "mx.sts.example",
             "receiving-ip": "198.51.100.5", "failed-session-count": 1},
            {"result-type": "starttls-not-supported", "sending-mta-ip": "192.0.2.2",
             "receiving-mx-hostname": "mx.sts.example", "receiving-mx-helo": "mx2.sts.example",
             "receiving-ip": "198.51.100.6", "failed-session-count": 1},
        ])
        fetch = self.policy(rep, [])
        self.assertEqual(fetch["policy"], {"policy-type": "sts", "policy-domain": "sts.example"})
        self.assertEqual(fetch["summary"], {"total-successful-session-count": 0,
                                            "total-failure-session-count": 1})
        self.assertEqual(fetch["failure-details"], [
            {"result-type": "sts-policy-fetch-error", "sending-mta-ip": "192.0.2.2",
             "receiving-mx-hostname": "mx.sts.example", "receiving-ip": "198.51.100.5",
             "failed-session-count": 1, "failure-reason-code": "https: connection refused"}])

        # The day before holds only its own sessions.
        _, before = self.report("sts.example", ymd(self.d0))
        self.assertEqual([(q["summary"]["total-successful-session-count"],
                           q["summary"]["total-failure-session-count"])
                          for q in before["policies"]], [(1, 1)])

        _, plain = self.report("plain.example", day)
        self.assertEqual(plain["policies"], [{
            "policy": {"policy-type": "no-policy-found", "policy-domain": "plain.example"},
            "summary": {"total-successful-session-count": 4, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "starttls-not-supported",
                                 "sending-mta-ip": "192.0.2.2",
                                 "receiving-mx-hostname": "mx.plain.example",
                                 "receiving-mx-helo": "mx.plain.example",
                                 "receiving-ip": "198.51.100.20", "failed-session-count": 1}]}])

        _, dane = self.report("dane.example", day)
        self.assertEqual([(q["policy"], q["summary"]) for q in dane["policies"]], [
            ({"policy-type": "tlsa", "policy-string": TLSA, "policy-domain": "dane.example"},
             {"total-successful-session-count": 3, "total-failure-session-count": 1})])

        # What a terminal shows is the same report, indented, under its
        # RFC 8460 5.1 file name; --json printed the bytes the RPC answers.
        shown = self.preview("sts.example", day).stdout
        first, _, rest = shown.partition("\n")
        self.assertEqual(first, f"file {SUBMITTER}!sts.example!{self.d1}!{self.d1 + DAY - 1}"
                                ".json.gz")
        self.assertEqual(json.loads(rest), rep)
        self.assertEqual(text, self.rpc_preview("sts.example", day).json)

    def rpc_preview(self, domain, day, kind=""):
        ch = grpc_channel(self.c.addr, self.pki.admin, self.pki.ca)
        self.addCleanup(ch.close)
        return self.svc.AdminStub(ch).ReportPreview(
            self.pb.ReportPreviewRequest(domain=domain, day=day, kind=kind), timeout=20)

    def test_host_report_holds_the_dane_results_of_its_mx_from_every_domain(self):
        self.schema = load_schema()
        self.load_fleet()
        day = ymd(self.d1)
        _, rep = self.report("MX.dane.example.", day, "--host")
        self.assertEqual(rep["report-id"], f"{day}_mx.dane.example_host@{SUBMITTER}")
        # dane.example's 3 + other.example's 1 (named MX.Dane.Example. by the
        # host that reported it) successes, and the one tlsa-invalid.
        self.assertEqual(rep["policies"], [{
            "policy": {"policy-type": "tlsa", "policy-string": TLSA,
                       "policy-domain": "mx.dane.example"},
            "summary": {"total-successful-session-count": 4, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "tlsa-invalid", "sending-mta-ip": "192.0.2.2",
                                 "receiving-mx-hostname": "mx.dane.example",
                                 "receiving-mx-helo": "mx.dane.example",
                                 "receiving-ip": "203.0.113.9", "failed-session-count": 1}]}])
        self.assertEqual(self.rpc_preview("mx.dane.example", day, "host").filename,
                         f"{SUBMITTER}!mx.dane.example!{self.d1}!{self.d1 + DAY - 1}.json.gz")
        # A domain is not an MX host with DANE results, nor the reverse.
        r = self.preview("sts.example", day, "--host", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no TLS results for sts.example", r.stderr)
        r = self.preview("mx.dane.example", day, check=False)
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_sender_reads_every_report_of_a_day_at_once_as_previewed(self):
        self.load_fleet()
        day = ymd(self.d1)
        # Every (policy domain, kind) with results that day, and no other.
        lst = cptest.run([LIST_TOOL, "list", self.database, day]).stdout
        self.assertEqual(lst.splitlines(), [
            "dane.example domain", "mx.dane.example host", "other.example domain",
            "plain.example domain", "sts.example domain"])
        lst = cptest.run([LIST_TOOL, "list", self.database, ymd(self.d0)]).stdout
        self.assertEqual(lst, "sts.example domain\n")
        # All the day's reports from one read are the reports preview shows,
        # byte for byte.
        out = cptest.run([LIST_TOOL, "reports", self.database, day, REPORTS["organization_name"],
                          REPORTS["contact_info"], SUBMITTER]).stdout
        got = [line.split(" ", 2) for line in out.splitlines()]
        self.assertEqual([(d, k) for d, k, _ in got], [tuple(l.split()) for l in
                                                       cptest.run([LIST_TOOL, "list",
                                                                   self.database, day]
                                                                  ).stdout.splitlines()])
        for domain, kind, text in got:
            flags = ("--host",) if kind == "host" else ()
            self.assertEqual(text, self.preview(domain, day, "--json", *flags).stdout, domain)

    def test_preview_refuses_days_without_data_bad_days_and_bad_domains(self):
        self.load_fleet()
        r = self.preview("plain.example", ymd(self.d0), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no TLS results for plain.example on {ymd(self.d0)}", r.stderr)
        self.assertEqual(r.stdout, "")
        for bad in ("2025-02-30", "yesterday", "2025-1-01", "1969-12-31"):
            r = self.preview("sts.example", bad, check=False)
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn("expected a UTC day as YYYY-MM-DD", r.stderr)
        r = self.preview("bad..example", ymd(self.d1), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('domain "bad..example"', r.stderr)
        r = self.mailctl(self.c, "reports", "preview", "--domain", "sts.example", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: mailctl reports preview", r.stderr)

    def test_without_a_reports_group_preview_says_what_to_set(self):
        self.c = self.controld()
        r = self.preview("sts.example", ymd(self.d1), check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("the reports group needs organization_name, contact_info and submitter",
                      r.stderr)
        # A submitter that is not a domain, a contact that is not an
        # address or URI: controld refuses its configuration.
        for key, val, why in (("submitter", "not a domain!", "submitter"),
                              ("contact_info", "call us", "expected mailto:"),
                              ("mail_from", "Reports <r@x.example>", "expected a plain address"),
                              ("mail_from", "r@elsewhere.example",
                               "must be the submitter")):
            self.c.config["reports"] = dict(REPORTS, **{key: val})
            self.c.write_config()
            p = subprocess.run([cptest.CONTROLD_BIN, "-n", "-c", self.c.conf_path],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn(why, p.stderr)
        # In the submitter's domain or below it: accepted.
        for val in (f"tlsrpt-noreply@{REPORTS['submitter']}",
                    f"Reports@Mail.{REPORTS['submitter']}"):
            self.c.config["reports"] = dict(REPORTS, mail_from=val)
            self.c.write_config()
            p = subprocess.run([cptest.CONTROLD_BIN, "-n", "-c", self.c.conf_path],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    cptest.main()
