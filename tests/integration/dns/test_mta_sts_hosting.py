"""mxd serves each hosted domain's MTA-STS policy over HTTPS (issue 11,
item 3; docs/dns.md, "MTA-STS hosting").

One mxd per test, with a control section whose controld is down (nothing
listens at control.server), so every policy comes from the snapshot cached
in spool_dir/config-snapshot.pb -- written here as the uploader writes it: a
serialized mxfleet.v1.ConfigSnapshot (protoc --encode). mxd listens for
HTTPS on a free loopback port (mta_sts_listen); the policy hosts'
certificates come from a CA made for the test: one certificate for
mta-sts.alpha.test alone and a wildcard for *.beta.test (mta_sts_certs),
besides the SMTP certificate. Clients: curl, a raw TLS socket for what curl
will not send, and the project's own fetcher (sts_fetch_tool, lib/sts_fetch.c).
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mxtest  # noqa: E402
from mxtest import LCList, free_port, wait_for  # noqa: E402

SRC = os.environ.get("MXFLEET_SOURCE_DIR",
                     os.path.abspath(os.path.join(HERE, "..", "..", "..")))
BUILD_BIN = os.path.join(SRC, "build", "bin")
MAILCTL = os.environ.get("MAILCTL", os.path.join(BUILD_BIN, "mailctl"))
STS_FETCH_TOOL = os.environ.get("STS_FETCH_TOOL", os.path.join(BUILD_BIN, "sts_fetch_tool"))
PATH = "/.well-known/mta-sts.txt"

ALPHA = (b"version: STSv1\r\nmode: enforce\r\nmx: mx1.alpha.test\r\n"
         b"mx: *.fleet.alpha.test\r\nmax_age: 86400\r\n")
BETA = (b"version: STSv1\r\nmode: testing\r\nmx: mx.beta.test\r\n"
        b"max_age: 604800\r\n")
ALPHA2 = (b"version: STSv1\r\nmode: enforce\r\nmx: mx1.alpha.test\r\n"
          b"mx: mx2.alpha.test\r\nmax_age: 1209600\r\n")


def run(argv, timeout=60, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv[0]} exited {p.returncode}: "
                             f"{p.stdout!r} {p.stderr!r}")
    return p


def text_string(b):
    """bytes as a protobuf text-format string literal."""
    out = []
    for ch in b:
        c = chr(ch)
        if c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif c in "\"\\":
            out.append("\\" + c)
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def snapshot_bytes(version, policies):
    """A ConfigSnapshot holding policies {domain: (bytes, id)}, encoded."""
    text = f"version: {version}\n"
    for domain, (body, pid) in policies.items():
        text += (f"mta_sts {{ domain: \"{domain}\" policy: {text_string(body)} "
                 f"id: \"{pid}\" }}\n")
    return run(["protoc", f"-I{os.path.join(SRC, 'proto')}",
                "--encode=mxfleet.v1.ConfigSnapshot", "mxfleet.proto"],
               input=text.encode()).stdout


def write_snapshot(spool, version, policies):
    """As mxd_snapshot_store does: a temporary file, then rename."""
    path = os.path.join(spool, "config-snapshot.pb")
    with open(path + ".tmp", "wb") as f:
        f.write(snapshot_bytes(version, policies))
    os.chmod(path + ".tmp", 0o644)
    os.rename(path + ".tmp", path)


class TestCa:
    """A CA of the test's own and leaf certificates it signs."""

    def __init__(self, d):
        self.d = d
        self.ca = os.path.join(d, "sts-ca.pem")
        self.key = os.path.join(d, "sts-ca.key")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.key,
             "-out", self.ca, "-days", "30", "-subj", "/CN=MTA-STS test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def issue(self, base, *names):
        cert = os.path.join(self.d, base + ".pem")
        key = os.path.join(self.d, base + ".key")
        csr = os.path.join(self.d, base + ".csr")
        ext = os.path.join(self.d, base + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n"
                    "extendedKeyUsage=serverAuth\n")
        run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", csr, "-subj", f"/CN={names[0]}"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.key,
             "-CAcreateserial", "-out", cert, "-days", "30", "-extfile", ext])
        for p in (cert, key):
            os.chmod(p, 0o644)
        return cert, key


class MtaStsHostingTest(mxtest.MxTestCase):

    def setUp(self):
        super().setUp()
        self.tca = TestCa(self.wd)
        self.pki = os.path.join(self.wd, "pki")
        run([MAILCTL, "pki", "init", self.pki])
        run([MAILCTL, "pki", "issue", self.pki, "mx1.fleet.test"])

    def start_mxd(self, policies, **over):
        """mxd whose cached snapshot holds policies; controld is down."""
        host = mxtest.pick_host()
        self.https_port = free_port(host)
        down = free_port(host)  # controld: nothing listens there
        alpha = self.tca.issue("alpha", "mta-sts.alpha.test")
        beta = self.tca.issue("beta", "*.beta.test")
        cfg = self.mxd_config(None, [self.cert()], host=host, **over)
        cfg["mta_sts_listen"] = [f"{host}:{self.https_port}"]
        cfg["mta_sts_certs"] = LCList({"cert": c, "key": k} for c, k in (alpha, beta))
        cfg["control"] = {
            "server": f"{host}:{down}", "authority": "controld.fleet.test",
            "cert": os.path.join(self.pki, "mx1.fleet.test.pem"),
            "key": os.path.join(self.pki, "mx1.fleet.test.key"),
            "ca": os.path.join(self.pki, "ca.pem"),
        }
        self.spool = cfg["spool_dir"]
        os.makedirs(self.spool, exist_ok=True)
        write_snapshot(self.spool, 7, policies)
        m = self.mxd(cfg)
        m.wait_event("mta_sts_started", timeout=20)
        return m

    def curl(self, domain, *args, path=PATH, sni_host=None, insecure=False):
        """(status, headers {lower name: value}, body) of one request."""
        name = f"mta-sts.{domain}"
        hdr = os.path.join(self.wd, "headers")
        body = os.path.join(self.wd, "body")
        for f in (hdr, body):
            if os.path.exists(f):
                os.unlink(f)
        p = run(["curl", "-sS", "--max-time", "20", "--resolve",
                 f"{name}:{self.https_port}:{self.mxd_host}",
                 *(["-k"] if insecure else ["--cacert", self.tca.ca]),
                 "-D", hdr, "-o", body, "-w", "%{http_code}", *args,
                 f"https://{name}:{self.https_port}{path}"], check=False)
        self.assertEqual(p.returncode, 0, f"curl failed: {p.stderr.decode()}")
        headers = {}
        with open(hdr, "rb") as f:
            for line in f.read().decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
        with open(body, "rb") as f:
            return int(p.stdout), headers, f.read()

    def tls_socket(self, server_name):
        ctx = ssl.create_default_context(cafile=self.tca.ca)
        raw = socket.create_connection((self.mxd_host, self.https_port), timeout=20)
        s = ctx.wrap_socket(raw, server_hostname=server_name)
        self.addCleanup(s.close)
        return s

    @staticmethod
    def read_all(s, limit=30):
        out = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out

    def mxd_up(self, policies, **over):
        m = self.start_mxd(policies, **over)
        self.mxd_host = m.host
        return m

    # ------------------------------------------------------------- tests

    def test_each_policy_served_exactly_as_text_plain_with_controld_down(self):
        m = self.mxd_up({"alpha.test": (ALPHA, "20261205a"), "beta.test": (BETA, "b1")})
        for domain, want in (("alpha.test", ALPHA), ("beta.test", BETA)):
            with self.subTest(domain=domain):
                status, headers, body = self.curl(domain)
                self.assertEqual(status, 200)
                self.assertEqual(body, want, "the policy's bytes, exactly")
                self.assertEqual(headers.get("content-type"), "text/plain")
                self.assertEqual(headers.get("content-length"), str(len(want)))
                self.assertNotIn("location", headers, "never a redirect")
        # HEAD: the same head, no body.
        s = self.tls_socket("mta-sts.alpha.test")
        s.sendall(f"HEAD {PATH} HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n\r\n".encode())
        answer = self.read_all(s)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertIn(f"Content-Length: {len(ALPHA)}\r\n".encode(), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\n"), "HEAD: no body")
        # As for SMTP: TLS 1.2 or later, no session ticket.
        self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
        self.assertFalse(s.session is not None and s.session.has_ticket,
                         "mxd-https sent a session ticket")
        # controld was never reachable: the policies came from the cache.
        m.wait_event("controld_unreachable")
        self.assertFalse(m.events("controld_connected"))
        rec = m.wait_event("mta_sts_request", host="mta-sts.beta.test", status="200")
        self.assertEqual(rec["path"], PATH)
        self.assertEqual(rec["method"], "GET")
        self.assertEqual(rec["remote"], "127.0.0.1")

    def test_unknown_domain_other_path_and_post_are_refused(self):
        m = self.mxd_up({"alpha.test": (ALPHA, "a1"), "beta.test": (BETA, "b1")})
        # A domain the snapshot does not hold: no certificate for it either.
        status, headers, body = self.curl("gamma.test", insecure=True)
        self.assertEqual(status, 404)
        self.assertNotIn(b"STSv1", body)
        status, _, body = self.curl("alpha.test", path="/.well-known/mta-sts.txt.bak")
        self.assertEqual(status, 404)
        status, _, _ = self.curl("alpha.test", path="/")
        self.assertEqual(status, 404)
        status, headers, body = self.curl("alpha.test", "-X", "POST", "-d", "x=1")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertNotIn(b"STSv1", body)
        # Host decides, not SNI: the alpha certificate asked for beta's policy.
        s = self.tls_socket("mta-sts.alpha.test")
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: MTA-STS.Beta.Test.:443\r\n\r\n".encode())
        self.assertTrue(self.read_all(s).endswith(BETA))
        for path, status in ((PATH + ".bak", "404"), (PATH, "405")):
            rec = m.wait_event("mta_sts_request", path=path, status=status)
            self.assertEqual(rec["host"], "mta-sts.alpha.test")
        m.wait_event("mta_sts_request", host="mta-sts.gamma.test", status="404")

    def test_head_over_8_kib_is_refused_with_431(self):
        self.mxd_up({"alpha.test": (ALPHA, "a1")})
        s = self.tls_socket("mta-sts.alpha.test")
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n"
                  f"X-Big: {'a' * 9216}\r\n\r\n".encode())
        answer = self.read_all(s)
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 "), answer[:200])
        self.assertNotIn(b"STSv1", answer)
        # curl sees the refusal too.
        status, _, body = self.curl("alpha.test", "-H", "X-Big: " + "b" * 9216)
        self.assertEqual(status, 431)

    def test_malformed_request_is_400(self):
        self.mxd_up({"alpha.test": (ALPHA, "a1")})
        for req in (f"GET {PATH} HTTP/1.1\nHost: mta-sts.alpha.test\n\n",
                    f"GET {PATH} HTTP/1.1\r\n\r\n",
                    f"GET {PATH} HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n"
                    f"Host: mta-sts.alpha.test\r\n\r\n"):
            with self.subTest(req=req):
                s = self.tls_socket("mta-sts.alpha.test")
                s.sendall(req.encode())
                self.assertTrue(self.read_all(s).startswith(b"HTTP/1.1 400 "))

    def test_slowloris_is_cut_after_the_timeout_while_others_are_served(self):
        m = self.mxd_up({"alpha.test": (ALPHA, "a1")})
        slow = self.tls_socket("mta-sts.alpha.test")
        start = time.monotonic()
        slow.sendall(f"GET {PATH} HTTP/1.1\r\nHost: mta-sts.alpha.test\r\n".encode())
        slow.settimeout(1)
        cut = None
        served = False
        while time.monotonic() - start < 30:
            try:
                slow.sendall(b"X-Slow: 1\r\n")  # never the empty line
                if slow.recv(1024) == b"":
                    cut = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            except (OSError, ssl.SSLError):
                cut = time.monotonic() - start
                break
            if not served:
                t0 = time.monotonic()
                status, _, body = self.curl("alpha.test")
                self.assertEqual((status, body), (200, ALPHA))
                self.assertLess(time.monotonic() - t0, 5,
                                "another client waited on the slow one")
                served = True
        self.assertTrue(served)
        self.assertIsNotNone(cut, "the slow client was never cut off")
        self.assertGreaterEqual(cut, 9)
        self.assertLess(cut, 20)
        m.wait_event("mta_sts_timeout", stage="request", remote="127.0.0.1")

    def test_connections_past_the_cap_wait_until_silent_ones_are_cut(self):
        # 256 connections at most (mxd/https/https.h): 300 that never say a
        # word fill them; the next client waits in the listen backlog, not
        # forever, and is served once the silent ones time out.
        m = self.mxd_up({"alpha.test": (ALPHA, "a1")})
        silent = []
        for _ in range(300):
            c = socket.create_connection((self.mxd_host, self.https_port), timeout=10)
            self.addCleanup(c.close)
            silent.append(c)
        t0 = time.monotonic()
        status, _, body = self.curl("alpha.test")
        waited = time.monotonic() - t0
        self.assertEqual((status, body), (200, ALPHA))
        self.assertGreater(waited, 5, "the cap did not hold the 301st connection back")
        self.assertLess(waited, 20)
        wait_for(lambda: len(m.events("mta_sts_timeout", stage="handshake")) >= 256, 20,
                 what="the silent connections cut, each logged")

    def test_project_fetcher_gets_the_same_policy(self):
        self.mxd_up({"alpha.test": (ALPHA, "a1"), "beta.test": (BETA, "b1")})
        for domain, want in (("alpha.test", ALPHA), ("beta.test", BETA)):
            with self.subTest(domain=domain):
                p = run([STS_FETCH_TOOL, "fetch", domain, self.mxd_host,
                         str(self.https_port), self.tca.ca], check=False)
                out = p.stdout.decode()
                self.assertEqual(p.returncode, 0, out + p.stderr.decode())
                first, _, fetched = out.partition("\n")
                self.assertIn("result=ok status=200", first)
                path = os.path.join(self.wd, domain + ".txt")
                with open(path, "wb") as f:
                    f.write(want)
                parsed = run([STS_FETCH_TOOL, "parse", path]).stdout.decode()
                self.assertEqual(fetched, parsed)
                self.assertIn("mode: ", fetched)

    def test_new_snapshot_is_served_after_reload(self):
        m = self.mxd_up({"alpha.test": (ALPHA, "a1"), "beta.test": (BETA, "b1")})
        self.assertEqual(self.curl("alpha.test")[2], ALPHA)
        # What the uploader does with a new snapshot: cache it, SIGHUP.
        write_snapshot(self.spool, 8, {"alpha.test": (ALPHA2, "a2")})
        m.send_signal(signal.SIGHUP)
        m.wait_event("reloaded", config_version="8", mta_sts_policies="1")
        status, _, body = wait_for(
            lambda: (lambda r: r if r[2] == ALPHA2 else None)(self.curl("alpha.test")),
            15, interval=0.2, what="the new policy served")
        self.assertEqual(status, 200)
        status, _, _ = self.curl("beta.test")
        self.assertEqual(status, 404, "a policy the new snapshot dropped is gone")

    def test_policy_host_that_dies_is_restarted(self):
        m = self.mxd_up({"alpha.test": (ALPHA, "a1")})

        def https_pids():
            out = []
            for pid in m.pids():
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        if f.read().strip() == "mxd-https":
                            out.append(pid)
                except OSError:
                    pass
            return out
        pids = wait_for(https_pids, 10, what="an mxd-https process")
        self.assertEqual(len(pids), 1)
        os.kill(pids[0], signal.SIGKILL)
        m.wait_event("child_died", role="https")
        wait_for(lambda: [p for p in https_pids() if p != pids[0]], 15,
                 what="a new mxd-https")
        status, _, body = self.curl("alpha.test")
        self.assertEqual((status, body), (200, ALPHA))


if __name__ == "__main__":
    mxtest.main()
