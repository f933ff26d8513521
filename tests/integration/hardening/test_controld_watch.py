#!/usr/bin/python3
"""A WatchConfig call stops receiving configuration pushes however it ends
(issue 9, item 1).

Before: a second WatchRequest on one stream was answered INVALID_ARGUMENT,
and a stream that ended inside a message was answered INTERNAL, but in both
cases the watcher stayed registered: the next configuration change was
pushed to the finished call (a second `config_pushed` line for it) through
memory already freed (a heap use-after-free under ASan). Every way a call
ends -- the handler finishing it, the client's RST_STREAM, a deadline, the
connection lost -- must unregister it, and controld must go on serving.
"""

import os
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, HERE)
import cptest  # noqa: E402
from cptest import CONTROLD_NAME, MX1, MX2, grpc_channel, wait_for  # noqa: E402
import h2raw  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

WATCH = "/mxfleet.v1.Fleet/WatchConfig"


class WatchConfigEndTest(cptest.FleetTestCase):
    needs_mxd = False

    def setUp(self):
        super().setUp()
        self.grpc, self.pb, self.svc = cptest.grpc_stubs()
        self.c = self.controld()
        self.ndomains = 0

    # -- what controld shows

    def pushes(self, host=MX1):
        return len(self.c.events("config_pushed", host=host))

    def watchers(self):
        return self.c.metrics()["controld_config_watchers"]

    def wait_watchers(self, n):
        wait_for(lambda: self.watchers() == n, 15, interval=0.2,
                 what=f"controld_config_watchers == {n}")

    def change_config(self):
        """A configuration change, as an operator makes it."""
        self.ndomains += 1
        self.mailctl(self.c, "domain", "add", f"d{self.ndomains}.watch.test",
                     "smtp:192.0.2.1:25")

    def other_host_watch(self):
        """Another host opens a watch: controld is alive and serving, and the
        configuration change before it has been handled (one event loop)."""
        ch = grpc_channel(self.c.addr, self.pki.mx2, self.pki.ca)
        try:
            stream = self.svc.FleetStub(ch).WatchConfig(self.pb.WatchRequest(host_id=MX2),
                                                        timeout=20)
            snap = next(stream)
            stream.cancel()
        finally:
            ch.close()
        return snap

    def raw(self):
        return h2raw.host_conn(self, self.c, CONTROLD_NAME)

    def watch_request(self, host=MX1):
        return h2raw.grpc_frame(self.pb.WatchRequest(host_id=host).SerializeToString())

    def assert_no_push_after_change(self, pushes_before):
        self.change_config()
        snap = self.other_host_watch()
        self.assertEqual(len(snap.domains), self.ndomains)
        self.assertEqual(self.pushes(), pushes_before,
                         "a configuration change was pushed to a call that had ended")
        self.wait_watchers(0)

    # -- the tests

    def test_second_watch_request_ends_the_call_and_its_pushes(self):
        ch = grpc_channel(self.c.addr, self.pki.mx1, self.pki.ca)
        self.addCleanup(ch.close)
        call = ch.stream_stream(WATCH,
                                request_serializer=self.pb.WatchRequest.SerializeToString,
                                response_deserializer=self.pb.ConfigSnapshot.FromString)
        done = threading.Event()
        self.addCleanup(done.set)

        def requests():
            yield self.pb.WatchRequest(host_id=MX1)
            yield self.pb.WatchRequest(host_id=MX1)
            done.wait(30)  # our side stays open: controld ends the call

        responses = call(requests(), timeout=30)
        first = next(responses)
        with self.assertRaises(self.grpc.RpcError) as cm:
            next(responses)
        done.set()
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT,
                         cm.exception.details())
        self.assertIn("one WatchRequest per call", cm.exception.details())
        self.assertEqual(self.pushes(), 1)
        self.assert_no_push_after_change(1)
        self.assertGreater(self.other_host_watch().version, first.version)

    def test_stream_ending_inside_a_message_ends_the_call_and_its_pushes(self):
        conn = self.raw()
        st = conn.request(WATCH)
        # A whole WatchRequest, then a message prefix announcing 40 bytes
        # followed by 3 of them, then END_STREAM.
        conn.send_data(st, self.watch_request() + h2raw.grpc_frame(b"\x0a\x01x", declared=40),
                       end_stream=True)
        conn.wait_done(st)
        self.assertEqual(conn.trailer(st, "grpc-status"), "13", st.headers)
        self.assertIn("inside a message", conn.trailer(st, "grpc-message") or "")
        self.assertEqual(len(h2raw.grpc_messages(st.data)), 1, "the first snapshot")
        self.assertEqual(self.pushes(), 1)
        self.assert_no_push_after_change(1)

    def test_reset_deadline_and_lost_connection_unregister_the_watch(self):
        # RST_STREAM CANCEL from the client after the first snapshot.
        conn = self.raw()
        st = conn.request(WATCH)
        conn.send_data(st, self.watch_request())
        conn.read_until(lambda: h2raw.grpc_messages(st.data), "the first snapshot")
        self.assertEqual(self.watchers(), 1)
        conn.send_frame(h2raw.RST_STREAM, 0, st.sid, h2raw.CANCEL.to_bytes(4, "big"))
        self.wait_watchers(0)

        # The call's own deadline (grpc-timeout) passes.
        st = conn.request(WATCH, extra=[("grpc-timeout", "1S")])
        conn.send_data(st, self.watch_request())
        conn.wait_done(st)
        self.assertEqual(conn.trailer(st, "grpc-status"), "4", st.headers)
        self.wait_watchers(0)

        # The connection goes away without a word.
        st = conn.request(WATCH)
        conn.send_data(st, self.watch_request())
        conn.read_until(lambda: h2raw.grpc_messages(st.data), "the first snapshot")
        self.assertEqual(self.watchers(), 1)
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        self.wait_watchers(0)

        # Refused before it was registered: a host speaking for another.
        conn = self.raw()
        st = conn.request(WATCH)
        conn.send_data(st, self.watch_request(MX2), end_stream=True)
        conn.wait_done(st)
        self.assertEqual(conn.trailer(st, "grpc-status"), "7", st.headers)

        self.assertEqual(self.pushes(), 3)
        self.assert_no_push_after_change(3)


class WatcherOutputCapTest(cptest.FleetTestCase):
    """A watcher that never reads is dropped once watch_max_pending bytes are
    queued for it; controld keeps serving everyone else (issue 9, item 6).
    Before: every snapshot was buffered for it, without limit."""
    needs_mxd = False

    def test_watcher_that_does_not_read_is_dropped(self):
        grpc, pb, svc = cptest.grpc_stubs()
        c = self.controld(config={"watch_max_pending": 65536})
        conn = h2raw.host_conn(self, c, CONTROLD_NAME)
        st = conn.request(WATCH)
        conn.send_data(st, h2raw.grpc_frame(pb.WatchRequest(host_id=MX1).SerializeToString()))
        conn.read_until(lambda: h2raw.grpc_messages(st.data), "the first snapshot")
        # From now on mx1 reads nothing: its flow-control window (64 KiB)
        # fills, then controld's queue for it.
        admin_ch = grpc_channel(c.addr, self.pki.admin, self.pki.ca)
        self.addCleanup(admin_ch.close)
        admin = svc.AdminStub(admin_ch)
        labels = ".".join(ch * 60 for ch in "abc")
        for k in range(400):
            admin.AddDomain(pb.DomainConfig(name=f"{labels}.d{k}.watch.test",
                                            next_hop="smtp:192.0.2.1:25"), timeout=20)
            if k % 10 == 9 and c.events("watcher_dropped"):
                break
        dropped = c.events("watcher_dropped", host=MX1)
        self.assertEqual(len(dropped), 1, f"after {k + 1} configuration changes")
        self.assertLessEqual(int(dropped[0]["pending"]), 65536)
        wait_for(lambda: c.metrics()["controld_config_watchers"] == 0, 15, interval=0.2,
                 what="no watcher left")
        self.assertEqual(c.metrics()["controld_config_watchers_dropped_total"], 1)
        # Reading again, mx1 finds its stream reset: RESOURCE_EXHAUSTED to a
        # gRPC stack, which reconnects and gets the newest snapshot.
        conn.read_until(lambda: st.reset is not None, "RST_STREAM of the dropped watch")
        self.assertEqual(st.reset, 0xb)  # ENHANCE_YOUR_CALM
        with grpc_channel(c.addr, self.pki.mx1, self.pki.ca) as ch:
            stream = svc.FleetStub(ch).WatchConfig(pb.WatchRequest(host_id=MX1), timeout=20)
            snap = next(stream)
            stream.cancel()
        self.assertEqual(len(snap.domains), k + 1)


if __name__ == "__main__":
    cptest.main()
