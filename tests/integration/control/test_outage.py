#!/usr/bin/python3
"""At least once, counted once: while controld is stopped, killed with
SIGKILL in the middle of a stream, or PostgreSQL restarts, mxd keeps
accepting mail as fast as before, and afterwards every session's outcome is
in PostgreSQL exactly once (docs/control-plane.md, "The delivery
guarantee")."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cptest  # noqa: E402
from cptest import MX1, many_sessions, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

# A session on loopback takes a few ms (tens on a loaded machine); one that
# waited for controld would take seconds or hang.
SLOW_SESSION = 3.0


class OutageTest(cptest.FleetTestCase):

    def assertExactlyOnce(self, names, host=MX1, timeout=60):
        """Every session named (by its EHLO name) is stored once, and
        nothing else is."""
        rows, seqs, _ = self.wait_outcomes(len(names), host=host, timeout=timeout)
        stored = [r[0] for r in self.sql(
            f"SELECT remote_ehlo FROM outcomes WHERE host_id = '{host}' AND direction = 1")]
        missing = set(names) - set(stored)
        dups = sorted({n for n in stored if stored.count(n) > 1})
        extra = set(stored) - set(names)
        self.assertFalse(missing, f"{len(missing)} outcomes never stored: {sorted(missing)[:10]}")
        self.assertFalse(dups, f"outcomes stored twice: {dups[:10]}")
        self.assertFalse(extra, f"unexpected outcomes: {sorted(extra)[:10]}")
        self.assertEqual((rows, seqs), (len(names), len(names)))

    def test_controld_stopped_smtp_unaffected_then_every_outcome_once(self):
        c, m, sink = self.fleet()
        before = [f"before-{i}.test" for i in range(10)]
        many_sessions(m.host, m.port, before, threads=2)
        self.assertExactlyOnce(before)

        c.stop()
        self.assertIsNone(c.stop_problem)
        t0 = time.monotonic()
        during = [f"during-{i}.test" for i in range(40)]
        times = many_sessions(m.host, m.port, during, threads=2)
        # Whole messages too, with and without STARTTLS.
        times += [smtp_send(m.host, m.port, f"down{i}", starttls=i % 2 == 0) for i in range(6)]
        during += [f"client-down{i}.test" for i in range(6)]
        self.assertLess(max(times), SLOW_SESSION,
                        f"SMTP sessions slowed down while controld was stopped: max {max(times):.2f}s")
        sink.wait_messages(6)
        self.wait_session_logged(m, len(before) + len(during))
        # Down for a while (several reconnect attempts), with nothing stored.
        time.sleep(max(0.0, 4 - (time.monotonic() - t0)))
        self.assertEqual(self.outcome_counts()[0], len(before))
        self.assertTrue(m.events("controld_unreachable") or m.events("stream_closed"),
                        "mxd did not notice controld going away")

        c.start()
        self.assertExactlyOnce(before + during)
        # mailctl hosts: the backlog drains (heartbeats every second).
        wait_for(lambda: [h for h in cptest.parse_table(self.mailctl(c, "hosts").stdout)
                          if h["HOST"] == MX1 and h["BACKLOG"] == "0"
                          and h["OUTCOMES"] == self.stored_total()],
                 20, interval=0.5, what="mailctl hosts: backlog 0 and every outcome counted")

    def test_controld_frozen_smtp_unaffected_then_every_outcome_once(self):
        """controld stopped with SIGSTOP: connections to it open but nothing
        answers (the slow case). SMTP does not wait for it; after SIGCONT
        every outcome is stored once."""
        c, m, sink = self.fleet()
        before = [f"pre-{i}.test" for i in range(5)]
        many_sessions(m.host, m.port, before, threads=1)
        self.assertExactlyOnce(before)
        c.send_signal(signal.SIGSTOP)
        try:
            frozen = [f"frozen-{i}.test" for i in range(30)]
            times = many_sessions(m.host, m.port, frozen, threads=2)
            times += [smtp_send(m.host, m.port, f"fz{i}", starttls=i % 2 == 0) for i in range(4)]
            frozen += [f"client-fz{i}.test" for i in range(4)]
            self.assertLess(max(times), SLOW_SESSION,
                            f"SMTP sessions slowed down while controld was frozen: "
                            f"max {max(times):.2f}s")
            sink.wait_messages(4)
            self.wait_session_logged(m, len(before) + len(frozen))
            time.sleep(2)
            self.assertEqual(self.outcome_counts()[0], len(before))
        finally:
            c.send_signal(signal.SIGCONT)
        self.assertExactlyOnce(before + frozen, timeout=60)

    def test_postgresql_restarted_while_mail_flows_every_outcome_once(self):
        c, m, sink = self.fleet()
        names, times, errors = [], [], []
        stop = threading.Event()

        def stream():
            i = 0
            while not stop.is_set():
                n = f"flow-{i}.test"
                try:
                    times.append(cptest.quick_session(m.host, m.port, n))
                    names.append(n)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{n}: {e!r}")
                i += 1
                time.sleep(0.01)
        t = threading.Thread(target=stream, daemon=True)
        t.start()
        try:
            wait_for(lambda: self.outcome_counts()[0] >= 20, 30, interval=0.2,
                     what="outcomes flowing before the restart")
            self.pg.restart()
            time.sleep(1.0)
            self.pg.restart()   # twice: a reconnect that meets another restart
            time.sleep(2.0)
        finally:
            stop.set()
            t.join(20)
        self.assertFalse(errors, f"SMTP sessions failed while PostgreSQL restarted: {errors[:5]}")
        self.assertLess(max(times), SLOW_SESSION, f"slowest session {max(times):.2f}s")
        self.wait_session_logged(m, len(names))
        self.assertExactlyOnce(names)
        # controld noticed, and is healthy again.
        self.assertEqual(c.http_get("/healthz")[0], 200)

    def test_batch_refused_unavailable_is_resent_when_postgresql_is_back(self):
        """PostgreSQL stopped: controld answers the batch on
        Collector.Stream with UNAVAILABLE ("the caller retries; nothing was
        stored"). Once PostgreSQL is back, mxd resends and every outcome is
        stored once, without controld or mxd being restarted."""
        c, m, sink = self.fleet()
        first = [f"one-{i}.test" for i in range(3)]
        many_sessions(m.host, m.port, first, threads=1)
        self.assertExactlyOnce(first)
        self.pg.stop()
        try:
            down = [f"down-{i}.test" for i in range(5)]
            times = many_sessions(m.host, m.port, down, threads=1)
            self.assertLess(max(times), SLOW_SESSION)
            wait_for(lambda: c.events("db_error", path="/mxfleet.v1.Collector/Stream"), 15,
                     interval=0.2, what="controld refusing a batch on the stream")
        finally:
            self.pg.start()
        try:
            self.assertExactlyOnce(first + down, timeout=30)
        except AssertionError as e:
            closed = [x for x in m.events("stream_closed") if x.get("status") != "UNAVAILABLE"
                      or x.get("message") != "connection lost"]
            raise AssertionError(
                f"{e}\nmxd's stream_closed lines other than 'connection lost': {closed}; "
                f"controld refused {len(c.events('db_error'))} call(s)") from None

    def test_controld_sigkilled_mid_stream_no_duplicates_none_missing(self):
        """A backlog of small batches (control.batch_size = 10) drains into
        a controld that is killed with SIGKILL while it stores them, twice;
        after restarts every outcome is stored once."""
        c = self.controld()
        sink = self.sink()
        m = self.mxd_with_control(c, sink, control={"batch_size": 10})
        c.stop()
        total = 1500
        names = [f"k-{i}.test" for i in range(total)]
        times = many_sessions(m.host, m.port, names, threads=4)
        self.assertLess(max(times), SLOW_SESSION)
        self.wait_session_logged(m, total, timeout=30)

        kills = []
        for round_ in range(2):
            c.start()
            stored_then = self.outcome_counts()[0]
            # Kill as soon as this controld has stored something: more is
            # on the wire then (8 batches in flight).
            got = wait_for(lambda: (lambda n: n if n > stored_then else None)(
                self.outcome_counts()[0]), 30, interval=0.02,
                what="controld storing the backlog")
            c.killpg(signal.SIGKILL)
            c.wait(10)
            kills.append((stored_then, got))
            time.sleep(0.5)
        self.assertTrue(all(after < total for _, after in kills),
                        f"the kills came after the backlog had drained: {kills}; "
                        "the test did not test anything")
        c.start()
        self.assertExactlyOnce(names, timeout=90)
        if os.environ.get("MXTEST_VERBOSE"):
            print(f"\nSIGKILL at (stored before start, stored at kill): {kills}; after the last "
                  f"start: {c.metrics()['controld_outcomes_duplicate_total']:.0f} resent outcomes "
                  "acknowledged as duplicates", file=sys.stderr)
        # The resent batches were acknowledged as duplicates and not counted.
        h = [r for r in cptest.parse_table(self.mailctl(c, "hosts").stdout) if r["HOST"] == MX1]
        self.assertEqual(h[0]["OUTCOMES"], self.stored_total(), h)


if __name__ == "__main__":
    cptest.main()
