#!/usr/bin/python3
"""mxd with several controld replicas (control.servers, docs/mxd.md): two
controld on one PostgreSQL, mail flowing through mxd, controld A killed
with SIGKILL. mxd moves to B (one log line), resends what A had not
acknowledged, and every session's outcome is in PostgreSQL exactly once;
the configuration snapshot now comes from B. Then A comes back and B dies:
mxd goes back to A. Each server's certificate is checked against its own
address when control.authority is not set: a replica whose certificate does
not name it is refused and mxd uses the next one. A replica that stops
answering (SIGSTOP) is left after control.ack_timeout."""

import os
import signal
import smtplib
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "control"))
import cptest  # noqa: E402
from cptest import MX1, smtp_send, wait_for  # noqa: E402

setUpModule = cptest.setUpModule
tearDownModule = cptest.tearDownModule

NEW = "failover.test"


class MailFlow:
    """Whole SMTP messages (smtplib) sent one after another from a thread
    until stopped. names: the EHLO name of every session that got its 250."""

    def __init__(self, m, prefix):
        self.m, self.prefix = m, prefix
        self.names, self.errors = [], []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            mid = f"{self.prefix}{i}"
            try:
                smtp_send(self.m.host, self.m.port, mid)
                self.names.append(f"client-{mid}.test")
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"{mid}: {e!r}")
            i += 1
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(30)


class ControlFailoverTest(cptest.FleetTestCase):

    def rcpt(self, m, rcpt, probes):
        """RCPT's reply code in a session of its own, named in probes (each
        session yields an outcome too)."""
        name = f"probe-{len(probes)}.test"
        s = smtplib.SMTP(m.host, m.port, timeout=10, local_hostname=name)
        try:
            s.ehlo()
            s.mail(f"sender@{cptest.LOCAL_DOMAIN}")
            code = s.rcpt(rcpt)[0]
            s.quit()
        finally:
            s.close()
        probes.append(name)
        return code

    def replica(self, name, migrate=False, host="127.0.0.1"):
        # 127.0.0.1: the address controld's certificate names (cptest.Pki).
        return self.controld(name=name, migrate=migrate, host=host)

    def mxd_servers(self, servers, sink, ack_timeout=5):
        addrs = [f"{c.host}:{c.port}" for c in servers]
        # No authority: each server's certificate is checked against the
        # host part of its own address.
        return self.mxd_with_control(servers[0], sink, control={
            "server": None, "authority": None, "servers": addrs,
            "ack_timeout": ack_timeout}), addrs

    def assert_every_session_once(self, names, timeout=60):
        rows, seqs, sids = self.wait_outcomes(len(names), timeout=timeout)
        stored = [r[0] for r in self.sql(
            f"SELECT remote_ehlo FROM outcomes WHERE host_id = '{MX1}' AND direction = 1")]
        missing = set(names) - set(stored)
        dups = sorted({n for n in stored if stored.count(n) > 1})
        self.assertFalse(missing, f"{len(missing)} outcomes never stored: {sorted(missing)[:10]}")
        self.assertFalse(dups, f"outcomes stored twice: {dups[:10]}")
        self.assertEqual((rows, seqs, sids), (len(names),) * 3,
                         "rows, distinct seqs, distinct session ids vs sessions")

    def wait_drained(self, c):
        """mxd's journal backlog 0 (its heartbeat, through c) and the host's
        outcome counter equal to the rows stored: each counted once."""
        def drained():
            hosts = cptest.parse_table(self.mailctl(c, "hosts").stdout)
            return [h for h in hosts if h["HOST"] == MX1 and h["BACKLOG"] == "0"
                    and h["OUTCOMES"] == self.stored_total()] or None
        try:
            wait_for(drained, 30, interval=0.5,
                     what="mailctl hosts: backlog 0 and every outcome counted once")
        except TimeoutError as e:
            raise AssertionError(f"{e}; hosts: {self.mailctl(c, 'hosts').stdout}; "
                                 f"stored {self.stored_total()}") from None

    def flow_and_kill(self, m, prefix, victim):
        """Mail flowing; victim SIGKILLed once some outcomes are stored; a
        few more seconds of mail. Returns the sessions' names."""
        with MailFlow(m, prefix) as flow:
            n0 = self.outcome_counts()[0]
            wait_for(lambda: self.outcome_counts()[0] >= n0 + 5, 30, interval=0.2,
                     what="outcomes flowing before the kill")
            victim.killpg(signal.SIGKILL)
            victim.wait(10)
            time.sleep(4)
        self.assertFalse(flow.errors, f"SMTP failed while controld died: {flow.errors[:5]}")
        self.assertGreater(len(flow.names), 10)
        return flow.names

    def test_controld_killed_mxd_moves_on_and_back_every_outcome_once(self):
        a = self.replica("controldA", migrate=True)
        b = self.replica("controldB")
        sink = self.sink()
        m, (addr_a, addr_b) = self.mxd_servers([a, b], sink)
        m.wait_event("controld_connected", timeout=20, server=addr_a)

        # A dies while mail flows: mxd moves to B, once.
        names = self.flow_and_kill(m, "fa", a)
        m.wait_event("controld_connected", timeout=20, server=addr_b)
        moves = m.events("control_failover")
        self.assertEqual([(e.get("server"), e.get("next")) for e in moves], [(addr_a, addr_b)],
                         f"one line for the move A -> B: {moves}")
        self.assert_every_session_once(names)
        sink.wait_messages(len(names), timeout=30)
        self.wait_drained(b)

        # The snapshot watch follows: a domain added through B reaches mxd.
        self.assertEqual(self.rcpt(m, f"x@{NEW}", names), 554)
        self.mailctl(b, "domain", "add", NEW, sink.next_hop)
        wait_for(lambda: self.rcpt(m, f"x@{NEW}", names) == 250, 15, interval=0.25,
                 what=f"RCPT @{NEW} accepted after domain add through B")
        smtp_send(m.host, m.port, "fornew", rcpt=f"user@{NEW}")
        names.append("client-fornew.test")
        sink.wait_message(lambda x: x.rcpts == [f"user@{NEW}"], what=f"mail for {NEW}")

        # A comes back, B dies: mxd goes back to A.
        a.start()
        names += self.flow_and_kill(m, "fb", b)
        wait_for(lambda: m.events("controld_connected", server=addr_a)[1:] or None, 30,
                 interval=0.2, what="mxd connected to A again")
        moves = m.events("control_failover")
        self.assertEqual([(e.get("server"), e.get("next")) for e in moves],
                         [(addr_a, addr_b), (addr_b, addr_a)], f"moves: {moves}")
        self.assert_every_session_once(names)
        self.wait_drained(a)
        self.assertTrue(m.running())
        self.assertFalse(m.events("child_died"), "an mxd process died")

    def test_controld_frozen_no_ack_in_time_mxd_moves_on(self):
        """A stopped with SIGSTOP: its connection stays open, nothing is
        acknowledged (the keepalive would notice after a minute). After
        control.ack_timeout mxd moves to B and resends;
        A's late work, once it runs again, stores nothing twice."""
        a = self.replica("controldA", migrate=True)
        b = self.replica("controldB")
        sink = self.sink()
        m, (addr_a, addr_b) = self.mxd_servers([a, b], sink, ack_timeout=2)
        m.wait_event("controld_connected", timeout=20, server=addr_a)
        with MailFlow(m, "fz") as flow:
            wait_for(lambda: self.outcome_counts()[0] >= 5, 30, interval=0.2,
                     what="outcomes flowing before the freeze")
            a.send_signal(signal.SIGSTOP)
            try:
                m.wait_event("controld_connected", timeout=20, server=addr_b)
            finally:
                time.sleep(1)
                flow.stop_ev.set()
                flow.t.join(30)
                a.send_signal(signal.SIGCONT)
        names = flow.names
        self.assertFalse(flow.errors, f"SMTP failed while controld was frozen: {flow.errors[:5]}")
        move = m.events("control_failover", server=addr_a, next=addr_b)
        self.assertTrue(move, m.log_tail())
        self.assertIn("no acknowledgement", move[0].get("error", ""))
        self.assert_every_session_once(names)
        self.wait_drained(b)

    def test_server_whose_certificate_does_not_name_it_is_skipped(self):
        # controld's certificate names 127.0.0.1, not this address.
        wrong = self.replica("controldX", migrate=True, host=cptest.pick_host())
        good = self.replica("controldG")
        sink = self.sink()
        m, (addr_x, addr_g) = self.mxd_servers([wrong, good], sink)
        m.wait_event("controld_connected", timeout=20, server=addr_g)
        moves = m.events("control_failover", server=addr_x, next=addr_g)
        self.assertTrue(moves, m.log_tail())
        self.assertIn("certificate verify failed", moves[0].get("error", ""))
        self.assertFalse(m.events("controld_connected", server=addr_x))
        smtp_send(m.host, m.port, "named")
        self.assert_every_session_once(["client-named.test"])


if __name__ == "__main__":
    cptest.main()
