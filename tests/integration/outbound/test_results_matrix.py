#!/usr/bin/python3
"""Every RFC 8460 result type, in one matrix, read from the outcome record.

Issue 4: "A matrix that produces every result type above at least once and
checks the recorded result." One mxd, one test DNS (tests/tools/dnstest:
nsd + validating unbound), one set of HTTPS policy servers and one set of
MX hosts (outtest.FakeMx) serve all the rows; each row is one recipient
domain, set up so that one MX host of it yields that row's result, and one
message to it. For every row the test checks the record mxd made of that
session: policy type, policy domain, result type, receiving MX hostname and
address, STARTTLS state, policy strings, and the failure reason and
additional information where the session failed. At the end the result
types seen must cover the whole list (RESULT_TYPES): a row that is dropped
or produces something else fails the test.

What is read: the structured record itself. mxd journals each outcome (the
message controld receives, mxfleet.v1.Outcome) in spool_dir/journal when it
has a `control` section; this mxd gets one pointing nowhere
(outtest.journal_control), and the test decodes the journal with code that
protoc generates from proto/ (outtest.journal_outcomes). That is what an
RFC 8460 report is built from, and it has fields the log line does not
(policy strings, mx patterns, failure_reason_code, sending and receiving
IP). The `event=outbound_session` log line of the same session (same sid)
is checked to say the same.

Rows whose MX fails a policy have a second, good MX: the failure is
recorded for the first, the mail goes to the second, so nothing is left
deferred and retried while the test looks.
"""

import os
import shutil
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import message, pick_hosts, remote_port, unique_domain  # noqa: E402
from test_mta_sts import Pki, StsServer, policy_text  # noqa: E402  (helpers, not the tests)
from test_dane import random_hash, spki_sha256, tlsa  # noqa: E402

import mxtest  # noqa: E402

STS_ID = "20240601T000000"

RESULT_TYPES = {
    "success",
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}
# success is wanted under each policy type.
SUCCESS_UNDER = {"sts", "tlsa", "no-policy-found"}

ESTABLISHED, NOT_OFFERED, ATTEMPTED, UNSPECIFIED = "ESTABLISHED", "NOT_OFFERED", "ATTEMPTED", "UNSPECIFIED"


class Row:
    """One line of the matrix: what mxd must record for the session with
    mx (of domain dom) at ip.

    info: a substring the failure_reason_code must hold (mxd's error text;
    additional_information, a URI in RFC 8460 4.4, is always empty);
    reason: failure_reason_code must hold the TLS error (True); with
    neither it must be empty;
    strings: the policy strings exactly (None = not checked); starttls: the
    Outcome's StartTls name without its prefix."""

    def __init__(self, name, policy, result, dom, mx, ip, starttls, info="", reason=False,
                 strings=None, mx_patterns=(), delivered_by=None):
        self.name, self.policy, self.result = name, policy, result
        self.dom, self.mx, self.ip, self.starttls = dom, mx, ip, starttls
        self.info, self.reason, self.strings = info, reason, strings
        self.mx_patterns = list(mx_patterns)
        self.delivered_by = delivered_by     # where the mail must go: an entry of self.fakes
        self.rcpt = f"user@{dom}"


class ResultsMatrixTest(outtest.OutboundTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = tempfile.mkdtemp(prefix="matrix-pki-")
        os.chmod(d, 0o755)   # mxd's unprivileged user reads the CA file
        outtest.watch_dir(d)
        cls.addClassCleanup(shutil.rmtree, d, True)
        cls.pki = Pki(d)
        cls.sts_port = remote_port()
        outtest.outcome_pb2()   # protoc once, before any clock runs

    # -- building the rows

    def setUp(self):
        super().setUp()
        self.records = []          # DNS records, added in one change
        self.fakes = []            # (host, name, tls, kw): FakeMx to start
        self.sts_good = {}         # domain -> (status, ctype, body) on the trusted server
        self.sts_untrusted = {}    # domain -> ... on the server with an untrusted certificate
        self.rows = []
        (self.sts_good_host, self.sts_bad_host,
         self.sts_down_host) = pick_hosts(3, self.sts_port)

    def mx(self, dom, label, pref, tls, **kw):
        """An MX host label.dom at preference pref with a FakeMx (tls as
        FakeMx takes it; "good" = from the trusted CA for its name)."""
        name = f"{label}.{dom}"
        (host,) = pick_hosts(1, self.port)
        while any(h == host for h, *_ in self.fakes):
            (host,) = pick_hosts(1, self.port)
        if tls == "good":
            tls = self.pki.leaf([name])
        elif tls == "self-signed":
            tls = self.cert(f"ss-{uuid.uuid4().hex[:8]}", cn=name, kind="ecdsa")
        self.records += [f"{dom}. MX {pref} {name}.", f"{name}. A {host}"]
        self.fakes.append([host, name, tls, kw, None])
        return name, host, self.fakes[-1]

    def sts(self, dom, server="good", mode="enforce", body=None, status=200):
        """Publish _mta-sts.dom and mta-sts.dom; the policy is served by the
        trusted server, the untrusted one, or nobody ("down")."""
        host = {"good": self.sts_good_host, "untrusted": self.sts_bad_host,
                "down": self.sts_down_host}[server]
        self.records += [f'_mta-sts.{dom}. TXT "v=STSv1; id={STS_ID};"',
                         f"mta-sts.{dom}. A {host}"]
        if body is None:
            body = policy_text(mode, [f"*.{dom}"])
        if server == "good":
            self.sts_good[dom] = (status, "text/plain", body)
        elif server == "untrusted":
            self.sts_untrusted[dom] = (status, "text/plain", body)
        return body

    @staticmethod
    def sts_strings(body):
        return [ln for ln in body.decode().split("\r\n") if ln]

    def sts_failure_row(self, result, bad_tls, starttls, reason=False, info=None, **kw):
        """Enforced MTA-STS; mx1 fails it with `result`, mx2 qualifies."""
        dom = unique_domain(f"m-{result[:12]}")
        body = self.sts(dom)
        mx1, h1, _ = self.mx(dom, "mx1", 10, bad_tls, **kw)
        _, _, good = self.mx(dom, "mx2", 20, "good")
        self.rows.append(Row(f"sts {result}", "sts", result, dom, mx1, h1, starttls,
                             info=info or f"451 4.7.5 MTA-STS policy of {dom}: {mx1}: {result}",
                             reason=reason, strings=self.sts_strings(body),
                             mx_patterns=[f"*.{dom}"], delivered_by=good))

    def dane_row(self, result, first, info):
        """DANE; mx1 is set up by first(dom, mx1_name) -> (tls, TLSA
        records), mx2 has a matching DANE-EE record."""
        dom = unique_domain(f"m-{result[:12]}")
        name1 = f"mx1.{dom}"
        tls1, recs1, strings = first(dom, name1)
        mx1, h1, _ = self.mx(dom, "mx1", 10, tls1)
        c2 = self.cert(f"ss-{uuid.uuid4().hex[:8]}", cn=f"mx2.{dom}", kind="ecdsa")
        _, _, good = self.mx(dom, "mx2", 20, c2)
        self.records += recs1 + [tlsa(f"mx2.{dom}", 3, 1, 1, spki_sha256(c2[0]))]
        return dom, mx1, h1, strings, good

    def build_rows(self):
        # -- success under each policy type
        dom = unique_domain("m-sts-ok")
        body = self.sts(dom)
        mxn, h, fx = self.mx(dom, "mx", 10, "good")
        self.rows.append(Row("sts success", "sts", "success", dom, mxn, h, ESTABLISHED,
                             strings=self.sts_strings(body), mx_patterns=[f"*.{dom}"],
                             delivered_by=fx))

        dom = unique_domain("m-tlsa-ok")
        name = f"mx.{dom}"
        cert = self.cert(f"ss-{uuid.uuid4().hex[:8]}", cn=name, kind="ecdsa")
        digest = spki_sha256(cert[0])
        mxn, h, fx = self.mx(dom, "mx", 10, cert)
        self.records.append(tlsa(name, 3, 1, 1, digest))
        self.rows.append(Row("tlsa success", "tlsa", "success", dom, mxn, h, ESTABLISHED,
                             strings=[f"3 1 1 {digest}"], delivered_by=fx))

        dom = unique_domain("m-none-ok")
        mxn, h, fx = self.mx(dom, "mx", 10, "self-signed")
        self.rows.append(Row("no-policy-found success", "no-policy-found", "success", dom,
                             mxn, h, ESTABLISHED, strings=[], delivered_by=fx))

        # -- MTA-STS (enforce): the MX that does not qualify
        self.sts_failure_row("starttls-not-supported", None, NOT_OFFERED)
        self.sts_failure_row("certificate-host-mismatch",
                             self.pki.leaf([f"other-{uuid.uuid4().hex[:6]}.example.test"]),
                             ESTABLISHED)
        self.sts_failure_row("certificate-expired", "expired", ESTABLISHED)
        self.sts_failure_row("certificate-not-trusted", "otherca", ESTABLISHED)
        # The TLS handshake itself fails (the MX answers the ClientHello
        # with garbage): the record carries the handshake's error, and its
        # reason (tls_fail_reason) as the failure reason code.
        self.sts_failure_row("validation-failure", "garbage", ATTEMPTED, reason=True,
                             info="TLS handshake with ")

        # -- no policy: a plaintext-only MX
        dom = unique_domain("m-none-plain")
        mxn, h, fx = self.mx(dom, "mx", 10, None)
        self.rows.append(Row("no-policy-found starttls-not-supported", "no-policy-found",
                             "starttls-not-supported", dom, mxn, h, NOT_OFFERED, strings=[],
                             delivered_by=fx))

        # -- DANE
        def mismatching(dom, name):
            wrong = random_hash()
            return "self-signed", [tlsa(name, 3, 1, 1, wrong)], [f"3 1 1 {wrong}"]
        dom, mx1, h1, strings, good = self.dane_row("tlsa-invalid", mismatching, None)
        self.rows.append(Row("tlsa tlsa-invalid", "tlsa", "tlsa-invalid", dom, mx1, h1,
                             ESTABLISHED, info=f"451 4.7.5 DANE of {dom}: {mx1}: tlsa-invalid",
                             strings=strings, delivered_by=good))

        def no_starttls(dom, name):
            h = random_hash()
            return None, [tlsa(name, 3, 1, 1, h)], [f"3 1 1 {h}"]
        dom, mx1, h1, strings, good = self.dane_row("dane-required", no_starttls, None)
        self.rows.append(Row("tlsa dane-required", "tlsa", "dane-required", dom, mx1, h1,
                             NOT_OFFERED, info=f"451 4.7.5 DANE of {dom}: {mx1}: dane-required",
                             strings=strings, delivered_by=good))

        def bogus(dom, name):
            # The TLSA answer leads into bogus.test. (expired signatures):
            # the MX's name and address stay secure, its TLSA answer fails.
            target = f"_25._tcp.{uuid.uuid4().hex[:8]}.bogus.test."
            return "self-signed", [f"_25._tcp.{name}. CNAME {target}",
                                   f"{target} TLSA 3 1 1 {random_hash()}"], []
        dom, mx1, _, _, good = self.dane_row("dnssec-invalid", bogus, None)
        # mxd does not connect to that MX: no address, no STARTTLS state.
        self.rows.append(Row("tlsa dnssec-invalid", "tlsa", "dnssec-invalid", dom, mx1, "",
                             UNSPECIFIED, info="TLSA lookup failed DNSSEC validation",
                             strings=[], delivered_by=good))

        # -- MTA-STS policy that cannot be had: the sessions carry the
        # fetch's result, the mail goes as without a policy.
        for result, kw in (("sts-policy-fetch-error", {"server": "down"}),
                           ("sts-policy-invalid",
                            {"body": b"version: STSv1\r\nmode: enforce\r\n"}),
                           ("sts-webpki-invalid", {"server": "untrusted"})):
            dom = unique_domain(f"m-{result[4:16]}")
            self.sts(dom, **kw)
            mxn, h, fx = self.mx(dom, "mx", 10, "self-signed")
            self.rows.append(Row(f"sts {result}", "sts", result, dom, mxn, h, ESTABLISHED,
                                 strings=[], delivered_by=fx))

    def start_servers(self):
        for f in self.fakes:
            host, name, tls, kw, _ = f
            if tls == "expired":
                tls = self.pki.leaf([name], days=-1)
            elif tls == "otherca":
                tls = self.pki.leaf([name], ca="otherca")
            f[4] = self.fake_mx(host, name, tls=tls, **kw)
        # One HTTPS server for every policy that is served right (its
        # certificate names each mta-sts.<domain>), one whose certificate no
        # trusted CA signed; "down" is an address where nothing listens.
        for host, policies, ca in ((self.sts_good_host, self.sts_good, "ca"),
                                   (self.sts_bad_host, self.sts_untrusted, "otherca")):
            if policies:
                cert = self.pki.leaf([f"mta-sts.{d}" for d in policies], ca=ca)
                srv = StsServer(host, self.sts_port, *cert, policies)
                self.addCleanup(srv.stop)
        self.dns.add(self.records)

    # -- finding what mxd recorded

    def record_for(self, m, row):
        for o in outtest.journal_outcomes(m.config["spool_dir"]):
            if o.direction != self.pb2.DIRECTION_OUTBOUND or not o.policy_results:
                continue
            pr = o.policy_results[0]
            if (pr.policy_domain, pr.receiving_mx_hostname) == (row.dom, row.mx):
                return o
        return None

    def check_row(self, m, row):
        o = mxtest.wait_for(lambda: self.record_for(m, row), 30, interval=0.2,
                            what=f"the outcome record of row '{row.name}' ({row.mx})")
        pr = o.policy_results[0]
        got = {
            "policy_type": pr.policy_type,
            "policy_domain": pr.policy_domain,
            "result_type": pr.result_type,
            "receiving_mx_hostname": pr.receiving_mx_hostname,
            "receiving_ip": pr.receiving_ip,
            "starttls": self.pb2.StartTls.Name(o.starttls).replace("STARTTLS_", ""),
        }
        want = {
            "policy_type": row.policy,
            "policy_domain": row.dom,
            "result_type": row.result,
            "receiving_mx_hostname": row.mx,
            "receiving_ip": row.ip,
            "starttls": row.starttls,
        }
        self.assertEqual(got, want, f"row '{row.name}': the record says {o}")
        self.assertEqual(o.direction, self.pb2.DIRECTION_OUTBOUND)
        self.assertTrue(o.session_id, o)
        # SNI names the MX host whenever a handshake was tried.
        self.assertEqual(o.sni, row.mx if got["starttls"] in ("ESTABLISHED", "ATTEMPTED") else "",
                         f"row '{row.name}': {o}")
        if row.ip:
            self.assertEqual((o.remote_ip, o.remote_port), (row.ip, self.port), o)
            self.assertTrue(pr.sending_mta_ip and pr.sending_mta_ip == o.local_ip, o)
            self.assertEqual(pr.receiving_mx_helo, row.mx, o)   # FakeMx greets with its name
        self.assertEqual(pr.additional_information, "", f"row '{row.name}': {o}")
        if row.info:
            self.assertIn(row.info, pr.failure_reason_code, f"row '{row.name}': {o}")
        if row.reason:
            self.assertTrue(o.tls_fail_reason, o)
            self.assertIn(o.tls_fail_reason, pr.failure_reason_code, f"row '{row.name}': {o}")
        if not row.info and not row.reason:
            self.assertEqual(pr.failure_reason_code, "", f"row '{row.name}': {o}")
        if row.strings is not None:
            self.assertEqual(list(pr.policy_strings), row.strings, f"row '{row.name}': {o}")
        self.assertEqual(list(pr.mx_host), row.mx_patterns, f"row '{row.name}': {o}")
        if row.starttls == ESTABLISHED:
            self.assertIn(o.tls_version, ("TLSv1.2", "TLSv1.3"), o)
        if row.starttls == ATTEMPTED:
            self.assertTrue(o.tls_fail_reason, o)

        # The log line of the same session says the same.
        (line,) = m.events("outbound_session", sid=o.session_id)
        self.assertEqual(
            (line.get("policy"), line.get("domain"), line.get("mx"), line.get("result"),
             line.get("ip")),
            (row.policy, row.dom, row.mx, row.result, row.ip or "-"), line)
        if row.info:
            self.assertIn(row.info, line.get("error", ""), line)

        # And the mail went where the row says, once.
        fx = row.delivered_by[4]
        mxtest.wait_for(lambda: fx.messages, 20, what=f"the message of row '{row.name}' at {fx.name}")
        self.assertEqual([x[1] for x in fx.messages], [[row.rcpt]], f"row '{row.name}'")
        if row.result != "success" and fx.host != row.ip:
            failed = next(f[4] for f in self.fakes if f[0] == row.ip) if row.ip else None
            if failed is not None:
                self.assertEqual(failed.messages, [], f"row '{row.name}': mail at the failed MX")
        return pr

    # -- the matrix

    def matrix_mxd(self):
        return self.outbound_mxd(delivery={"sts_port": self.sts_port, "ca_file": self.pki.ca},
                                 control=outtest.journal_control(self))

    def test_every_result_type_recorded_with_its_policy_and_mx(self):
        self.pb2 = outtest.outcome_pb2()
        self.build_rows()
        self.start_servers()
        m, local = self.matrix_mxd()
        # One message per row, the next one once the row's record is in:
        # a session to an MX without a policy stays open after its message
        # (it is recorded when it closes), and closing it while the next
        # domain's policy is in force gets its record wrong -- a bug that
        # test_session_kept_open_is_recorded_under_its_own_policy shows on
        # its own; the matrix is about each result type.
        seen, problems = set(), []
        for row in self.rows:
            with self.subTest(row=row.name):
                try:
                    self.send(m, [row.rcpt], message(uuid.uuid4().hex[:12], subject=row.name))
                    pr = self.check_row(m, row)
                except Exception:
                    problems.append(row.name)
                    raise
                seen.add((pr.policy_type, pr.result_type))
        types = {r for _, r in seen}
        print(f"\n{len(self.rows)} rows, result types recorded: {sorted(types)}", file=sys.stderr)
        self.assertEqual(problems, [], "rows that failed")
        self.assertEqual(RESULT_TYPES - types, set(), "result types the matrix never produced")
        self.assertEqual({p for p, r in seen if r == "success"}, SUCCESS_UNDER,
                         "policy types without a success row")
        self.assertEqual(m.events("bounced"), [])
        self.assertNoMail(local)
        mxtest.wait_for(lambda: not os.listdir(os.path.join(m.config["spool_dir"], "queue")),
                        20, what="spool queue/ empty")
        # Sessions are recorded just before their QUIT: keep the teardown's
        # SIGTERM out of that exchange (see outtest.wait_session).
        time.sleep(0.5)

    def test_session_kept_open_is_recorded_under_its_own_policy(self):
        # A session to an MX without any policy stays open after its message
        # and is recorded when it closes. When the next message goes to a
        # domain with an MTA-STS policy, that record must still be the old
        # session's own: no-policy-found, not the next domain's policy
        # (RFC 8460 reports would count a failure against the wrong policy).
        self.pb2 = outtest.outcome_pb2()
        plain = unique_domain("m-open-plain")
        pmx, ph, pfx = self.mx(plain, "mx", 10, None)
        self.rows.append(Row("kept open, no policy", "no-policy-found", "starttls-not-supported",
                             plain, pmx, ph, NOT_OFFERED, strings=[], delivered_by=pfx))
        sts = unique_domain("m-open-sts")
        body = self.sts(sts)
        smx, sh, sfx = self.mx(sts, "mx", 10, "good")
        self.rows.append(Row("next, under MTA-STS", "sts", "success", sts, smx, sh, ESTABLISHED,
                             strings=self.sts_strings(body), mx_patterns=[f"*.{sts}"],
                             delivered_by=sfx))
        self.start_servers()
        m, _ = self.matrix_mxd()
        first, second = self.rows
        self.send(m, [first.rcpt], message(uuid.uuid4().hex[:12]))
        m.wait_event("delivered", rcpt=f"<{first.rcpt}>", timeout=20)
        # Within the 2 s the idle session is kept.
        self.send(m, [second.rcpt], message(uuid.uuid4().hex[:12]))
        self.check_row(m, second)
        self.check_row(m, first)
        time.sleep(0.5)


if __name__ == "__main__":
    outtest.main()
