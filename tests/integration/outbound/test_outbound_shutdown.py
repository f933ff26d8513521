#!/usr/bin/python3
"""Stopping mxd while its delivery process talks to an MX: SIGTERM is
honoured promptly (the delivery process finishes the exchange in hand,
logs delivery_stopped and exits) instead of being noticed only when the
delivery loop next wakes up."""

import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402

QUIT_DELAY = 2


class OutboundShutdownTest(outtest.OutboundTestCase):

    def test_sigterm_while_closing_an_mx_connection_stops_promptly(self):
        dom = unique_domain("stop")
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        # A slow MX: it takes QUIT_DELAY seconds to answer QUIT.
        fake = self.fake_mx(host, name=f"mx.{dom}", tls=None, quit_delay=QUIT_DELAY)
        m, _ = self.outbound_mxd()
        self.send(m, [f"user@{dom}"], message(uuid.uuid4().hex[:12]))
        mxtest.wait_for(lambda: fake.messages, 15, what="the message at the MX")
        # The idle connection is closed after ~2 s: mxd sends QUIT and waits.
        mxtest.wait_for(lambda: any("quit" in s for s in fake.sessions), 15,
                        what="mxd's QUIT at the MX")
        t0 = time.monotonic()
        m.send_signal(signal.SIGTERM)
        rc = m.wait(QUIT_DELAY + 4)
        took = time.monotonic() - t0
        self.assertIsNotNone(rc, f"mxd still running {took:.1f}s after SIGTERM (the MX "
                                 f"answered QUIT after {QUIT_DELAY}s)")
        self.assertEqual(rc, 0)
        self.assertTrue(m.events("delivery_stopped"),
                        "the delivery process did not stop by itself")


if __name__ == "__main__":
    outtest.main()
