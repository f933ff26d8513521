#!/usr/bin/python3
"""Run a test program against the live peers dns check talks to.

  dnscheck_peers.py PROGRAM [ARG...]

Makes a throwaway CA and certificates with openssl (a private temp dir,
removed afterwards), then serves on loopback, all on the same two ports:

  SMTP  127.0.0.81  220, EHLO offering STARTTLS, certificate A
                    (mx1.chk.example.test, mx1.chk.insecure.test)
        127.0.0.82  the same with certificate B (mx2.chk.example.test)
        127.0.0.83  no STARTTLS in its EHLO reply
  HTTPS 127.0.0.81  /.well-known/mta-sts.txt, certificate from the CA for
                    mta-sts.chk.example.test and mta-sts.chk.insecure.test

The HTTPS answer follows DNSCHECK_PEER_DIR/https_mode, read at each request
(and at each handshake): "ok" (200 text/plain, the body of
DNSCHECK_PEER_DIR/policy.txt), "redirect" (301), "ctype" (the body as
text/html), "wrongcert" (a certificate from the CA for another name).

PROGRAM runs with DNSCHECK_SMTP_PORT, DNSCHECK_HTTPS_PORT, DNSCHECK_CA,
DNSCHECK_CERT_A, DNSCHECK_CERT_B (PEM paths) and DNSCHECK_PEER_DIR in its
environment; the exit status is PROGRAM's."""
import http.server
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading

SMTP_ADDRS = ("127.0.0.81", "127.0.0.82", "127.0.0.83")
HTTPS_ADDR = "127.0.0.81"
IO_TIMEOUT = 10


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def issue(d, name, sans):
    with open(os.path.join(d, name + ".cnf"), "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + s for s in sans) +
                "\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=" + sans[0], "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "90", "-extfile", name + ".cnf", "-out",
            name + ".pem", cwd=d)


def make_pki(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "200", "-subj", "/CN=mxfleet dnscheck test CA",
            "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    issue(d, "a", ["mx1.chk.example.test", "mx1.chk.insecure.test"])
    issue(d, "b", ["mx2.chk.example.test"])
    issue(d, "sts", ["mta-sts.chk.example.test", "mta-sts.chk.insecure.test"])
    issue(d, "other", ["mta-sts.elsewhere.test"])


def server_ctx(d, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
    return ctx


class Smtp(socketserver.StreamRequestHandler):
    timeout = IO_TIMEOUT

    def send(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        addr = self.server.server_address[0]
        self.send("220 peer ESMTP")
        starttls = addr != "127.0.0.83"
        while True:
            line = self.rfile.readline(1000)
            if not line:
                return
            verb = line.strip().split(b" ")[0].upper()
            if verb == b"EHLO":
                self.send("250-peer" if starttls else "250-peer\r\n250 8BITMIME")
                if starttls:
                    self.send("250 STARTTLS")
            elif verb == b"STARTTLS" and starttls:
                self.send("220 go ahead")
                ctx = self.server.tls_ctx
                try:
                    tls = ctx.wrap_socket(self.connection, server_side=True)
                    tls.settimeout(IO_TIMEOUT)
                    tls.recv(100)      # the client's close_notify or EOF
                    tls.close()
                except (ssl.SSLError, OSError):
                    pass
                return
            elif verb == b"QUIT":
                self.send("221 bye")
                return
            else:
                self.send("502 no")


class ThreadedTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def mode(peer_dir):
    try:
        with open(os.path.join(peer_dir, "https_mode")) as f:
            return f.read().strip()
    except OSError:
        return "ok"


class Https(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = IO_TIMEOUT

    def log_message(self, fmt, *args):
        sys.stderr.write("dnscheck-https: " + (fmt % args) + "\n")

    def do_GET(self):
        peer_dir = self.server.peer_dir
        with open(os.path.join(peer_dir, "policy.txt"), "rb") as f:
            body = f.read()
        m = mode(peer_dir)
        if self.path != "/.well-known/mta-sts.txt":
            code, ctype, body = 404, "text/plain", b"no\n"
        elif m == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://elsewhere.test/.well-known/mta-sts.txt")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            code, ctype = 200, ("text/html" if m == "ctype" else "text/plain")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_smtp(d):
    """The three SMTP peers on one port (the check connects to the same port
    on every address)."""
    for _ in range(20):
        servers = []
        try:
            port = 0
            for addr in SMTP_ADDRS:
                s = ThreadedTCP((addr, port), Smtp)
                port = s.server_address[1]
                servers.append(s)
        except OSError:
            for s in servers:
                s.server_close()
            continue
        ctxs = {"127.0.0.81": "a", "127.0.0.82": "b", "127.0.0.83": "a"}
        for s in servers:
            s.tls_ctx = server_ctx(d, ctxs[s.server_address[0]])
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return servers, port
    sys.exit("dnscheck_peers: no common free port for the SMTP peers")


def start_https(d, peer_dir):
    ctx = server_ctx(d, "sts")
    other = server_ctx(d, "other")

    def pick(sock, name, _ctx):
        if mode(peer_dir) == "wrongcert":
            sock.context = other
    ctx.sni_callback = pick
    srv = ThreadedTCP((HTTPS_ADDR, 0), Https)
    srv.peer_dir = peer_dir
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = tempfile.mkdtemp(prefix="dnscheck-peers-")
    try:
        make_pki(d)
        peer_dir = os.path.join(d, "peer")
        os.mkdir(peer_dir)
        with open(os.path.join(peer_dir, "policy.txt"), "w") as f:
            f.write("")
        smtp, smtp_port = start_smtp(d)
        https = start_https(d, peer_dir)
        env = dict(os.environ, DNSCHECK_SMTP_PORT=str(smtp_port),
                   DNSCHECK_HTTPS_PORT=str(https.server_address[1]),
                   DNSCHECK_CA=os.path.join(d, "ca.pem"),
                   DNSCHECK_CERT_A=os.path.join(d, "a.pem"),
                   DNSCHECK_CERT_B=os.path.join(d, "b.pem"),
                   DNSCHECK_PEER_DIR=peer_dir)
        rc = subprocess.run(sys.argv[1:], env=env).returncode
        for s in smtp + [https]:
            s.shutdown()
        sys.exit(rc)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    socket.setdefaulttimeout(IO_TIMEOUT)
    main()
