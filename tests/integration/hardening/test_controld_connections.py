#!/usr/bin/python3
"""What one peer may hold of controld's gRPC port (issue 9, item 6):
connections that never finish the TLS handshake are closed after
`handshake_timeout`, connections are capped in all and per client address,
a connection with no call open is closed after `idle_timeout`, and one
connection may open at most `max_streams` (<= 100) calls at once.

Before: half-open handshakes held a descriptor for ever, there was no cap,
and SETTINGS_MAX_CONCURRENT_STREAMS was 1000.
"""

import os
import select
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, HERE)
import cptest  # noqa: E402
from cptest import CONTROLD_NAME, INBOUND, MX1, grpc_channel, pick_host, wait_for  # noqa: E402
import h2raw  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

# The first bytes of a TLS ClientHello, and no more.
PARTIAL_CLIENT_HELLO = bytes.fromhex("160301020001000200030399") + os.urandom(16)


class ConnectionLimitsTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.socks = []
        self.addCleanup(self.close_socks)

    def close_socks(self):
        for s in self.socks:
            s.close()

    def half_open(self, c, n, source, partial=False):
        """n TCP connections from source that never finish a handshake."""
        out = []
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.socks.append(s)
            s.bind((source, 0))
            s.settimeout(10)
            s.connect(c.addr)
            if partial and i % 2 == 0:
                s.sendall(PARTIAL_CLIENT_HELLO)
            out.append(s)
        return out

    def wait_closed(self, socks, timeout):
        """Wait until the server closed every socket (EOF or reset)."""
        pending = {s.fileno(): s for s in socks}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(pending)} of {len(socks)} connections still open "
                                     f"after {timeout}s")
            readable, _, _ = select.select(list(pending), [], [], min(left, 1.0))
            for fd in readable:
                try:
                    data = pending[fd].recv(4096)
                except (ConnectionResetError, socket.timeout):
                    data = b""
                if data == b"":
                    del pending[fd]

    def host_streams(self, c, first_seq):
        """mx1 streams 5 batches and gets 5 acks."""
        t0 = int(time.time() * 1000) - 60000
        batches = [self.pb.OutcomeBatch(host_id=MX1, seq=s, outcomes=[self.pb.Outcome(
            seq=s, session_id=f"s{s}", direction=INBOUND, start_unix_ms=t0 + s,
            end_unix_ms=t0 + s + 5)]) for s in range(first_seq, first_seq + 5)]
        with grpc_channel(c.addr, self.pki.mx1, self.pki.ca) as ch:
            acks = list(self.svc.CollectorStub(ch).Stream(iter(batches), timeout=30))
        self.assertEqual([a.seq for a in acks], [b.seq for b in batches])

    def test_half_open_handshakes_do_not_stop_a_host_and_are_closed(self):
        c = self.controld(config={"handshake_timeout": 5, "max_connections_per_ip": 40,
                                  "max_connections": 400})
        attackers = [pick_host() for _ in range(5)]
        held = []
        for a in attackers:
            held += self.half_open(c, 40, a, partial=True)
        # One address over its cap: closed at accept.
        over = self.half_open(c, 10, attackers[0])
        self.host_streams(c, 1)
        m = c.metrics()
        self.assertEqual(m["controld_grpc_connections_refused_total"], 10)
        self.wait_closed(over, 10)
        # The 200 within the caps: closed once handshake_timeout has passed.
        self.wait_closed(held, 5 + 40)
        m = c.metrics()
        self.assertEqual(m["controld_grpc_handshake_timeouts_total"], 200)
        wait_for(lambda: c.metrics()["controld_grpc_connections"] == 0, 15, interval=0.2,
                 what="no gRPC connection left")
        self.host_streams(c, 10)
        self.assertEqual(self.scalar("SELECT count(*) FROM outcomes"), "10")
        self.assertTrue(c.events("grpc_refused", reason="max_connections_per_ip"))

    def test_connections_over_max_connections_are_refused(self):
        c = self.controld(config={"max_connections": 20, "handshake_timeout": 3})
        held = self.half_open(c, 20, pick_host())
        over = self.half_open(c, 5, pick_host())
        self.wait_closed(over, 10)
        self.assertEqual(c.metrics()["controld_grpc_connections_refused_total"], 5)
        self.assertTrue(c.events("grpc_refused", reason="max_connections"))
        # Freed by the handshake timeout: a host gets in again.
        self.wait_closed(held, 3 + 40)
        self.host_streams(c, 1)

    def raw(self, c):
        return h2raw.host_conn(self, c, CONTROLD_NAME)

    def test_idle_connection_gets_goaway_and_is_closed(self):
        c = self.controld(config={"idle_timeout": 2})
        conn = self.raw(c)
        conn.read_settings()
        t0 = time.monotonic()
        with self.assertRaises(h2raw.Closed):
            conn.read_until(lambda: False, "the connection closed")
        self.assertIsNotNone(conn.goaway, "closed without GOAWAY")
        self.assertEqual(conn.goaway[1], h2raw.NO_ERROR)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5, "closed before idle_timeout")
        self.assertEqual(c.metrics()["controld_grpc_idle_closed_total"], 1)

    def test_open_call_is_kept_while_pings_are_answered(self):
        c = self.controld(config={"idle_timeout": 2})
        conn = self.raw(c)
        st = conn.request("/mxfleet.v1.Fleet/WatchConfig")
        conn.send_data(st, h2raw.grpc_frame(
            self.pb.WatchRequest(host_id=MX1).SerializeToString()))
        conn.read_until(lambda: h2raw.grpc_messages(st.data), "the first snapshot")
        pings = []
        orig = conn.read_frame

        def counting():
            f = orig()
            if f[0] == h2raw.PING and not f[1] & h2raw.ACK:
                pings.append(f)
            return f
        conn.read_frame = counting
        # Reading (so answering PINGs) for three idle periods: still open.
        conn.read_until(lambda: len(pings) >= 3, "three keepalive PINGs")
        self.assertFalse(st.ended or st.reset is not None)
        self.assertEqual(c.metrics()["controld_config_watchers"], 1)
        # Not reading any more: the PING goes unanswered and the connection
        # closes, the watch with it.
        wait_for(lambda: c.metrics()["controld_config_watchers"] == 0, 30, interval=0.5,
                 what="the silent peer's watch dropped")
        self.assertGreaterEqual(c.metrics()["controld_grpc_idle_closed_total"], 1)

    def test_streams_over_max_concurrent_streams_are_refused(self):
        c = self.controld()
        conn = self.raw(c)
        settings = conn.read_settings()
        limit = settings.get(h2raw.SETTINGS_MAX_CONCURRENT_STREAMS)
        self.assertEqual(limit, 100, settings)
        watch = h2raw.grpc_frame(self.pb.WatchRequest(host_id=MX1).SerializeToString())
        streams = [conn.request("/mxfleet.v1.Fleet/WatchConfig") for _ in range(limit)]
        # The 100 are served: the last one answers a WatchRequest.
        conn.send_data(streams[-1], watch)
        conn.read_until(lambda: h2raw.grpc_messages(streams[-1].data), "a snapshot")
        self.assertEqual([s.sid for s in streams if s.reset is not None or s.ended], [])
        # One more: refused, the stream (REFUSED_STREAM) or the connection
        # (GOAWAY PROTOCOL_ERROR: nghttp2 once our SETTINGS ACK is in).
        over = conn.request("/mxfleet.v1.Fleet/WatchConfig")
        try:
            conn.read_until(lambda: over.reset is not None or conn.goaway, "the refusal")
        except h2raw.Closed:
            pass
        if over.reset is not None:
            self.assertEqual(over.reset, h2raw.REFUSED_STREAM)
        else:
            self.assertEqual(conn.goaway[1], h2raw.PROTOCOL_ERROR, conn.goaway)
        self.assertFalse(over.data or over.headers, "the call over the cap was served")
        # Another connection: ending one call makes room for the next.
        conn = self.raw(c)
        streams = [conn.request("/mxfleet.v1.Fleet/WatchConfig") for _ in range(limit)]
        conn.send_frame(h2raw.RST_STREAM, 0, streams[0].sid, h2raw.CANCEL.to_bytes(4, "big"))
        again = conn.request("/mxfleet.v1.Fleet/WatchConfig")
        conn.send_data(again, watch)
        conn.read_until(lambda: h2raw.grpc_messages(again.data), "a snapshot on the new stream")
        self.assertIsNone(again.reset)

    def test_max_streams_is_configurable_up_to_100(self):
        c = self.controld(config={"max_streams": 8})
        self.assertEqual(self.raw(c).read_settings()[h2raw.SETTINGS_MAX_CONCURRENT_STREAMS], 8)
        bad = cptest.Controld(self.wd, self.pki, self.database, name="bad",
                              config={"max_streams": 101})
        bad.write_config()
        r = cptest.run([cptest.CONTROLD_BIN, "-n", "-c", bad.conf_path], check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("max_streams", r.stderr)


if __name__ == "__main__":
    cptest.main()
