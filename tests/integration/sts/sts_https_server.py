#!/usr/bin/python3
"""Run a test program against a real HTTPS server serving MTA-STS policies.

  sts_https_server.py PROGRAM [ARG...]

Makes a throwaway CA and a server certificate with openssl (in a private temp
dir, removed afterwards), serves https on 127.0.0.1 with Python's http.server
and ssl, and runs PROGRAM with STS_TEST_PORT, STS_TEST_CA (the CA that signed
the server certificate) and STS_TEST_OTHER_CA (a CA that did not) in its
environment. Exits with PROGRAM's status.

The server answers by Host header (mta-sts.<case>.test), one case each:
good, charset, ctype, redirect, notfound, big, bigstream, invalid, slow, and
wrongname (the certificate does not name it)."""
import http.server
import os
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

GOOD = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.good.test\r\nmx: *.good.test\r\nmax_age: 86400\r\n"
NAMED = ["good", "charset", "ctype", "redirect", "notfound", "big", "bigstream",
         "invalid", "slow"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=mxfleet sts test {ca}", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    sans = ",".join(f"DNS:mta-sts.{n}.test" for n in NAMED)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mta-sts.good.test",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
            cwd=d)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("sts-https: " + (fmt % args) + "\n")

    def reply(self, code, ctype, body, length=True):
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        case = host[len("mta-sts."):-len(".test")] if host.startswith("mta-sts.") else ""
        if self.path != "/.well-known/mta-sts.txt":
            return self.reply(404, "text/plain", b"wrong path\n")
        if case in ("good", "wrongname"):
            return self.reply(200, "text/plain", GOOD)
        if case == "charset":
            return self.reply(200, "Text/Plain; charset=utf-8", GOOD)
        if case == "ctype":
            return self.reply(200, "text/html", GOOD)
        if case == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://mta-sts.good.test/.well-known/mta-sts.txt")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if case == "notfound":
            return self.reply(404, "text/plain", b"no\n")
        if case == "big":
            return self.reply(200, "text/plain", GOOD + b"#" * 70000)
        if case == "bigstream":
            return self.reply(200, "text/plain", GOOD + b"x" * 70000, length=False)
        if case == "invalid":
            return self.reply(200, "text/plain", b"version: STSv1\r\nmode: enforce\r\n")
        if case == "slow":
            time.sleep(5)
            return self.reply(200, "text/plain", GOOD)
        return self.reply(404, "text/plain", b"unknown host\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = tempfile.mkdtemp(prefix="sts-https-")
    try:
        make_pki(d)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "server.pem"), os.path.join(d, "server.key"))
        srv = Server(("127.0.0.1", 0), Handler)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        env = dict(os.environ, STS_TEST_PORT=str(srv.server_address[1]),
                   STS_TEST_CA=os.path.join(d, "ca.pem"),
                   STS_TEST_OTHER_CA=os.path.join(d, "otherca.pem"))
        rc = subprocess.run(sys.argv[1:], env=env).returncode
        srv.shutdown()
        sys.exit(rc)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
