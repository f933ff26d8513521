#!/usr/bin/python3
"""Our gRPC transport (lib/grpc.c) against a real gRPC stack, Debian's
python3-grpcio, over mutual TLS, both ways.

The C side is tests/integration/grpc/grpc_peer (GRPC_PEER). Python stubs are
generated from proto/ with protoc and grpc_python_plugin into a temp dir."""

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

SRC = os.environ.get("MXFLEET_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
PEER = os.environ.get("GRPC_PEER", os.path.join(SRC, "build/bin/grpc_peer"))
MAILCTL = os.environ.get("MAILCTL", os.path.join(SRC, "build/bin/mailctl"))
SERVER_NAME = "controld.fleet.test"


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60, **kw)


class PkiTest(unittest.TestCase):
    """mailctl pki: what an operator sees."""

    def test_issued_certificates_verify_against_the_ca(self):
        for cert in (FIX.server[0], FIX.mx1[0], FIX.admin[0]):
            run("openssl", "verify", "-CAfile", FIX.ca[0], cert)
        text = run("openssl", "x509", "-in", FIX.server[0], "-noout", "-ext",
                   "subjectAltName,extendedKeyUsage").stdout
        self.assertIn(f"DNS:{SERVER_NAME}", text)
        self.assertIn("IP Address:127.0.0.1", text)
        self.assertIn("TLS Web Server Authentication", text)

    def test_keys_are_private_and_nothing_is_overwritten(self):
        self.assertEqual(os.stat(FIX.ca[1]).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(FIX.mx1[1]).st_mode & 0o777, 0o600)
        before = FIX.read(FIX.mx1[0])
        r = subprocess.run([MAILCTL, "pki", "issue", os.path.dirname(FIX.ca[0]), "mx1.fleet.test"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("exists already", r.stderr)
        self.assertEqual(FIX.read(FIX.mx1[0]), before)

    def test_show_names_role_and_expiry(self):
        out = run(MAILCTL, "pki", "show", FIX.admin[0]).stdout
        self.assertRegex(out, r"^name=admin role=admin not_after=\d{4}-\d\d-\d\dT")


def make_ca(d, name):
    key, crt = f"{d}/{name}.key", f"{d}/{name}.pem"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def issue(d, ca, cn, san):
    cacrt, cakey = ca
    key, csr, crt, ext = (f"{d}/{cn}.key", f"{d}/{cn}.csr", f"{d}/{cn}.pem", f"{d}/{cn}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    run("openssl", "x509", "-req", "-in", csr, "-CA", cacrt, "-CAkey", cakey,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


class Fixture:
    """CAs, certificates and Python stubs, made once. The fleet CA and its
    certificates come from `mailctl pki`, as an operator would make them; the
    stranger's CA from plain openssl."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="grpc-interop-")
        pki = os.path.join(self.dir, "pki")
        run(MAILCTL, "pki", "init", pki)
        run(MAILCTL, "pki", "issue", pki, SERVER_NAME, "--ip", "127.0.0.1")
        run(MAILCTL, "pki", "issue", pki, "mx1.fleet.test")
        run(MAILCTL, "pki", "issue", pki, "admin", "--admin")
        self.ca = (f"{pki}/ca.pem", f"{pki}/ca.key")
        self.server = (f"{pki}/{SERVER_NAME}.pem", f"{pki}/{SERVER_NAME}.key")
        self.mx1 = (f"{pki}/mx1.fleet.test.pem", f"{pki}/mx1.fleet.test.key")
        self.admin = (f"{pki}/admin.pem", f"{pki}/admin.key")
        self.other_ca = make_ca(self.dir, "other-ca")
        self.stranger = issue(self.dir, self.other_ca, "mx9.fleet.test", "DNS:mx9.fleet.test")
        gen = os.path.join(self.dir, "gen")
        os.mkdir(gen)
        run("protoc", f"-I{SRC}/proto", f"--python_out={gen}", f"--grpc_python_out={gen}",
            "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
            f"{SRC}/proto/mxfleet.proto", f"{SRC}/proto/mxfleet_services.proto")
        sys.path.insert(0, gen)
        import mxfleet_pb2
        import mxfleet_services_pb2_grpc
        self.pb = mxfleet_pb2
        self.svc = mxfleet_services_pb2_grpc

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def channel(self, port, client=None, ca=None):
        cert, key = client if client else (None, None)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.read((ca or self.ca)[0]),
            private_key=self.read(key) if key else None,
            certificate_chain=self.read(cert) if cert else None)
        return grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                   options=[("grpc.ssl_target_name_override", SERVER_NAME)])


FIX = None


def setUpModule():
    global FIX
    FIX = Fixture()


def tearDownModule():
    shutil.rmtree(FIX.dir, ignore_errors=True)


class PeerServer:
    """grpc_peer in server mode, reading its stdout lines."""

    def __init__(self, max_message=None):
        args = [PEER, "server", "--listen", "127.0.0.1:0", "--cert", FIX.server[0],
                "--key", FIX.server[1], "--ca", FIX.ca[0]]
        if max_message:
            args += ["--max-message", str(max_message)]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("listening "):
            self.p.kill()
            raise RuntimeError(f"grpc_peer did not start: {line!r} {self.p.stderr.read()}")
        self.port = int(line.split()[1])

    def stop(self):
        self.p.terminate()
        try:
            out, err = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        return out, err


class PythonClientAgainstOurServer(unittest.TestCase):
    def setUp(self):
        self.srv = PeerServer(max_message=4096)

    def tearDown(self):
        out, err = self.srv.stop()
        self.assertNotIn("AddressSanitizer", err)
        self.assertNotIn("runtime error", err)

    def stub(self, client=None, ca=None):
        self.chan = FIX.channel(self.srv.port, client or FIX.mx1, ca)
        self.addCleanup(self.chan.close)
        return FIX.svc.CollectorStub(self.chan)

    def test_unary_export_is_acked_and_peer_named_by_certificate(self):
        ack = self.stub().Export(FIX.pb.OutcomeBatch(host_id="mx1", seq=42), timeout=10)
        self.assertEqual(ack.seq, 42)
        out, _ = self.srv.stop()
        self.assertIn("peer mx1.fleet.test /mxfleet.v1.Collector/Export seq=42", out)

    def test_bidirectional_stream_one_ack_per_batch_in_order(self):
        batches = [FIX.pb.OutcomeBatch(host_id="mx1", seq=s) for s in range(100, 110)]
        acks = [a.seq for a in self.stub().Stream(iter(batches), timeout=10)]
        self.assertEqual(acks, list(range(100, 110)))

    def test_status_and_message_reach_the_client(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub().Export(FIX.pb.OutcomeBatch(host_id="fail", seq=1), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(cm.exception.details(), "host asked to fail")

    def test_unknown_method_is_unimplemented(self):
        chan = FIX.channel(self.srv.port, FIX.mx1)
        self.addCleanup(chan.close)
        call = chan.unary_unary("/mxfleet.v1.Collector/NoSuchMethod")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_message_over_the_limit_is_resource_exhausted(self):
        big = FIX.pb.OutcomeBatch(host_id="mx1", seq=1,
                                  outcomes=[FIX.pb.Outcome(session_id="x" * 1000)
                                            for _ in range(10)])
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub().Export(big, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_client_without_certificate_is_refused(self):
        creds = grpc.ssl_channel_credentials(root_certificates=FIX.read(FIX.ca[0]))
        chan = grpc.secure_channel(f"127.0.0.1:{self.srv.port}", creds,
                                   options=[("grpc.ssl_target_name_override", SERVER_NAME)])
        self.addCleanup(chan.close)
        with self.assertRaises(grpc.RpcError) as cm:
            FIX.svc.CollectorStub(chan).Export(FIX.pb.OutcomeBatch(seq=1), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_admin_certificate_is_named_admin(self):
        self.stub(client=FIX.admin).Export(FIX.pb.OutcomeBatch(host_id="x", seq=5), timeout=10)
        out, _ = self.srv.stop()
        self.assertIn("peer admin /mxfleet.v1.Collector/Export seq=5", out)

    def test_certificate_from_another_ca_is_refused(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub(client=FIX.stranger).Export(FIX.pb.OutcomeBatch(seq=1), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        out, _ = self.srv.stop()
        self.assertNotIn("peer mx9", out)

    def test_wrong_content_type_gets_http_415(self):
        curl = shutil.which("curl")
        if curl is None:
            self.fail("curl is needed for the raw HTTP/2 request (scripts/deps)")
        r = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                            "--http2", "--cacert", FIX.ca[0], "--cert", FIX.mx1[0],
                            "--key", FIX.mx1[1], "--resolve", f"{SERVER_NAME}:{self.srv.port}:127.0.0.1",
                            "-H", "content-type: text/plain", "--data-binary", "hello",
                            f"https://{SERVER_NAME}:{self.srv.port}/mxfleet.v1.Collector/Export"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout, "415 2", r.stderr)


class CollectorServicer:
    """A Python gRPC server implementation our client talks to."""

    def __init__(self, pb):
        self.pb = pb
        self.peers = []

    def Export(self, request, context):
        self.peers.append(context.auth_context().get("x509_common_name", [b""])[0])
        return self.pb.Ack(seq=request.seq)

    def SubmitReport(self, request, context):
        # Registered by add_CollectorServicer_to_server with every method of
        # the service; our client never calls it here.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    def Stream(self, request_iterator, context):
        for b in request_iterator:
            yield self.pb.Ack(seq=b.seq)


class OurClientAgainstPythonServer(unittest.TestCase):
    def setUp(self):
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        self.servicer = CollectorServicer(FIX.pb)
        FIX.svc.add_CollectorServicer_to_server(self.servicer, self.server)
        creds = grpc.ssl_server_credentials(
            [(FIX.read(FIX.server[1]), FIX.read(FIX.server[0]))],
            root_certificates=FIX.read(FIX.ca[0]), require_client_auth=True)
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()

    def tearDown(self):
        self.server.stop(grace=None)

    def peer(self, mode, *extra, client=None):
        cert, key = client or FIX.mx1
        r = subprocess.run([PEER, mode, "--connect", f"127.0.0.1:{self.port}", "--cert", cert,
                            "--key", key, "--ca", FIX.ca[0], "--authority", SERVER_NAME, *extra],
                           capture_output=True, text=True, timeout=60)
        self.assertNotIn("AddressSanitizer", r.stderr)
        self.assertNotIn("runtime error", r.stderr)
        return r.stdout.splitlines()

    def test_unary_export(self):
        self.assertEqual(self.peer("export", "--seq", "7"), ["ack 7", "status 0"])
        self.assertEqual(self.servicer.peers, [b"mx1.fleet.test"])

    def test_bidirectional_stream(self):
        lines = self.peer("stream", "--seq", "20", "--count", "5")
        self.assertEqual(lines, ["ack 20", "ack 21", "ack 22", "ack 23", "ack 24", "status 0 "])

    def test_server_name_must_match_certificate(self):
        lines = self.peer("export", "--seq", "1", "--authority", "wrong.fleet.test")
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith("status 14 "), lines)

    def test_refused_when_nothing_listens(self):
        self.server.stop(grace=None)
        time.sleep(0.2)
        lines = self.peer("export", "--seq", "1")
        self.assertTrue(lines and lines[0].startswith("status 14 "), lines)


if __name__ == "__main__":
    unittest.main()
