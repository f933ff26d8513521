#!/usr/bin/python3
"""A real gRPC stack (Debian's python3-grpcio) against controld over mutual
TLS: batches are stored once and acknowledged after commit, a host may only
speak for itself, only the fleet CA's certificates get in, Admin needs an
admin certificate (docs/control-plane.md, "Services" and "PKI")."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import INBOUND, MX1, MX2, grpc_channel  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule


class ControldGrpcTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.c = self.controld()
        # A session's start time is part of its record and a resend carries
        # it byte for byte (schema/003_outcomes.sql): fixed per seq here.
        self.t0 = int(time.time() * 1000) - 60000

    def chan(self, client=None, ca=None):
        ch = grpc_channel(self.c.addr, client, ca or self.pki.ca)
        self.addCleanup(ch.close)
        return ch

    def collector(self, client=None, ca=None):
        return self.svc.CollectorStub(self.chan(client or self.pki.mx1, ca))

    def batch(self, host, seqs, batch_seq=None, **kw):
        outs = [self.pb.Outcome(
            seq=s, session_id=f"{host}-s{s}", direction=INBOUND, start_unix_ms=self.t0 + s,
            end_unix_ms=self.t0 + s + 5, local_ip="127.0.0.11", local_port=25,
            remote_ip="192.0.2.7", remote_port=40000 + s, remote_ehlo=f"peer{s}.test",
            starttls=self.pb.STARTTLS_ESTABLISHED, tls_version="TLSv1.3",
            tls_cipher="TLS_AES_256_GCM_SHA384", messages=1, recipients=2) for s in seqs]
        return self.pb.OutcomeBatch(host_id=host, seq=batch_seq or max(seqs), outcomes=outs, **kw)

    def rows(self, host=MX1):
        return int(self.scalar(f"SELECT count(*) FROM outcomes WHERE host_id = '{host}'"))

    def assertCode(self, fn, code, *args, **kw):
        with self.assertRaises(self.grpc.RpcError) as cm:
            fn(*args, timeout=10, **kw)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception

    def test_export_acked_after_commit_and_resend_counted_once(self):
        stub = self.collector()
        b = self.batch(MX1, [1, 2, 3])
        ack = stub.Export(b, timeout=10)
        self.assertEqual((ack.seq, ack.duplicate), (3, False))
        # Acknowledged means committed: visible to another connection now.
        self.assertEqual(self.rows(), 3)
        r = self.sql(f"SELECT seq, batch_seq, session_id, starttls, tls_version, remote_port, "
                     f"recipients, start_ts IS NOT NULL FROM outcomes WHERE host_id = '{MX1}' "
                     "ORDER BY seq")
        self.assertEqual(r[0], ("1", "3", f"{MX1}-s1", "4", "TLSv1.3", "40001", "2", "t"))

        ack = stub.Export(b, timeout=10)
        self.assertEqual((ack.seq, ack.duplicate), (3, True))
        self.assertEqual(self.rows(), 3)
        # The same outcomes regrouped in another batch: still counted once,
        # the new one stored.
        ack = stub.Export(self.batch(MX1, [3, 4]), timeout=10)
        self.assertEqual((ack.seq, ack.duplicate), (4, False))
        self.assertEqual(self.rows(), 4)
        self.assertEqual(self.scalar(f"SELECT outcomes FROM hosts WHERE host_id = '{MX1}'"), "4")
        m = self.c.metrics()
        self.assertEqual(m["controld_outcomes_stored_total"], 4)
        self.assertEqual(m["controld_outcomes_duplicate_total"], 4)

    def test_stream_one_ack_per_batch_in_order(self):
        batches = [self.batch(MX1, [s * 10 + i for i in range(1, 6)]) for s in range(8)]
        batches.append(batches[2])  # a resend inside the stream
        acks = list(self.collector().Stream(iter(batches), timeout=20))
        self.assertEqual([a.seq for a in acks], [b.seq for b in batches])
        self.assertEqual([a.duplicate for a in acks], [False] * 8 + [True])
        self.assertEqual(self.rows(), 40)

    def test_dropped_and_corrupt_counts_added_once_per_batch(self):
        stub = self.collector()
        b = self.batch(MX1, [1], dropped=5, corrupt=2)
        stub.Export(b, timeout=10)
        stub.Export(b, timeout=10)  # resent whole: not counted twice
        self.assertEqual(self.sql(f"SELECT dropped, corrupt FROM hosts WHERE host_id = '{MX1}'"),
                         [("5", "2")])

    def test_host_may_not_speak_for_another(self):
        e = self.assertCode(self.collector(self.pki.mx1).Export,
                            self.grpc.StatusCode.PERMISSION_DENIED, self.batch(MX2, [1]))
        self.assertIn(MX2, e.details())
        # Not on the stream either, nor with Register / Heartbeat.
        with self.assertRaises(self.grpc.RpcError) as cm:
            list(self.collector(self.pki.mx1).Stream(iter([self.batch(MX2, [2])]), timeout=10))
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.PERMISSION_DENIED)
        fleet = self.svc.FleetStub(self.chan(self.pki.mx1))
        self.assertCode(fleet.Register, self.grpc.StatusCode.PERMISSION_DENIED,
                        self.pb.RegisterRequest(host_id=MX2, version="x"))
        self.assertCode(fleet.Heartbeat, self.grpc.StatusCode.PERMISSION_DENIED,
                        self.pb.HeartbeatRequest(host_id=MX2))
        # The admin certificate is no host either.
        self.assertCode(self.collector(self.pki.admin).Export,
                        self.grpc.StatusCode.PERMISSION_DENIED, self.batch(MX1, [1]))
        self.assertEqual(self.rows(MX2) + self.rows(MX1), 0)
        self.assertEqual(self.scalar("SELECT count(*) FROM hosts"), "0")
        self.assertGreaterEqual(self.c.metrics()["controld_identity_refused_total"], 5)
        # Without a host_id: INVALID_ARGUMENT.
        self.assertCode(self.collector().Export, self.grpc.StatusCode.INVALID_ARGUMENT,
                        self.pb.OutcomeBatch(seq=1))

    def test_no_certificate_or_another_ca_is_refused(self):
        unavailable = self.grpc.StatusCode.UNAVAILABLE
        # No client certificate at all.
        self.assertCode(self.svc.CollectorStub(self.chan(None)).Export, unavailable,
                        self.batch(MX1, [1]))
        # A certificate for mx1 from a stranger's CA.
        self.assertCode(self.collector(self.pki.stranger()).Export, unavailable,
                        self.batch(MX1, [1]))
        self.assertCode(self.svc.AdminStub(self.chan(self.pki.stranger())).ListHosts, unavailable,
                        self.pb.Empty())
        self.assertEqual(self.rows(), 0)
        # controld is still fine for the fleet.
        self.assertEqual(self.collector().Export(self.batch(MX1, [1]), timeout=10).seq, 1)

    def test_admin_needs_the_admin_certificate(self):
        self.assertCode(self.svc.AdminStub(self.chan(self.pki.mx1)).ListHosts,
                        self.grpc.StatusCode.PERMISSION_DENIED, self.pb.Empty())
        self.assertCode(self.svc.AdminStub(self.chan(self.pki.mx1)).AddDomain,
                        self.grpc.StatusCode.PERMISSION_DENIED,
                        self.pb.DomainConfig(name="evil.test", next_hop="smtp:192.0.2.1:25"))
        self.assertEqual(self.scalar("SELECT count(*) FROM domains"), "0")
        self.collector().Export(self.batch(MX1, [1]), timeout=10)
        admin = self.svc.AdminStub(self.chan(self.pki.admin))
        hosts = admin.ListHosts(self.pb.Empty(), timeout=10)
        self.assertEqual([(h.host_id, h.outcomes) for h in hosts.hosts], [(MX1, 1)])
        snap = admin.AddDomain(self.pb.DomainConfig(name="ok.test", next_hop="smtp:192.0.2.1:25"),
                               timeout=10)
        self.assertEqual([d.name for d in snap.domains], ["ok.test"])

    def s_client(self, *args):
        p = cptest.run(["openssl", "s_client", "-connect", f"{self.c.host}:{self.c.port}",
                        "-CAfile", self.pki.ca, "-cert", self.pki.admin[0],
                        "-key", self.pki.admin[1], "-servername", cptest.CONTROLD_NAME, *args],
                       check=False, timeout=20, input="")
        return p.returncode, p.stdout + p.stderr

    def test_tls_1_2_and_other_alpn_refused(self):
        rc, out = self.s_client("-tls1_2", "-alpn", "h2")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("alert protocol version", out)
        rc, out = self.s_client("-tls1_3", "-alpn", "http/1.1")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no application protocol", out)
        rc, out = self.s_client("-tls1_3", "-alpn", "h2")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: h2", out)

    def test_message_over_max_message_is_resource_exhausted(self):
        small = self.controld(name="small", config={"max_message": 2048})
        ch = grpc_channel(small.addr, self.pki.mx1, self.pki.ca)
        self.addCleanup(ch.close)
        stub = self.svc.CollectorStub(ch)
        big = self.batch(MX1, list(range(1, 40)))
        self.assertGreater(big.ByteSize(), 2048)
        self.assertCode(stub.Export, self.grpc.StatusCode.RESOURCE_EXHAUSTED, big)
        self.assertEqual(self.rows(), 0)
        self.assertEqual(stub.Export(self.batch(MX1, [1]), timeout=10).seq, 1)

    def test_mailctl_exit_status_and_local_socket_peers(self):
        def mailctl(*args, runas=()):
            return cptest.run([*runas, cptest.MAILCTL, *args], check=False)
        ok = mailctl("--socket", self.c.socket, "hosts")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # A host certificate on Admin: refused, 1.
        r = mailctl("--server", f"{self.c.host}:{self.c.port}", "--cert", self.pki.mx1[0],
                    "--key", self.pki.mx1[1], "--ca", self.pki.ca,
                    "--authority", cptest.CONTROLD_NAME, "hosts")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("PERMISSION_DENIED", r.stderr)
        # Nothing listening: 3. Usage: 2.
        self.assertEqual(mailctl("--socket", os.path.join(self.wd, "nothing.sock"),
                                 "hosts").returncode, 3)
        self.assertEqual(mailctl("--socket", self.c.socket, "nosuchcommand").returncode, 2)
        self.assertEqual(mailctl("--socket", self.c.socket, "domain", "add", "x").returncode, 2)
        # The unix socket: another local user gets nothing.
        if cptest.IS_ROOT:
            r = mailctl("--socket", self.c.socket, "hosts",
                        runas=("runuser", "-u", cptest.mxtest.RUN_USER, "--"))
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertNotIn("HOST", r.stdout)

    def test_unknown_method_is_unimplemented(self):
        call = self.chan(self.pki.mx1).unary_unary("/mxfleet.v1.Collector/NoSuchMethod")
        self.assertCode(call, self.grpc.StatusCode.UNIMPLEMENTED, b"")
        call = self.chan(self.pki.admin).unary_unary("/mxfleet.v1.Nothing/Here")
        self.assertCode(call, self.grpc.StatusCode.UNIMPLEMENTED, b"")


if __name__ == "__main__":
    cptest.main()
