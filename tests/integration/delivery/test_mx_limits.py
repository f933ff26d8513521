#!/usr/bin/python3
"""The MX walk's caps (issue 10, item 5), as Postfix's smtp_mx_address_limit
and smtp_mx_session_limit.

A domain whose DNS answer lists many MX hosts and addresses, none of them
answering, is tried only up to delivery.mx_address_limit addresses per
attempt (default 5); then its recipients are deferred with a reply that
says so. Servers that greet and then fail count against
delivery.mx_session_limit (default 2): once that many have answered, the
walk stops too.

Real peers on loopback: the private DNSSEC test DNS of tests/tools/dnstest
(through ../outbound/outtest.py), MX addresses 127.x.y.z where nothing
listens (each refused connection is logged as event=connect_failed), and
SMTP servers in this process that greet and then never answer EHLO (they
count their connections).
"""

import os
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "outbound"))
import outtest  # noqa: E402
from outtest import message, pick_hosts, unique_domain  # noqa: E402


class MuteAfterGreeting(outtest.SmtpTestServer):
    """Greets, then never answers EHLO: a server that answered, and then
    failed the session (mxd's command deadline ends it)."""

    def __init__(self, host, port, name):
        self.name = name
        self.release = threading.Event()
        super().__init__(host, port)

    def smtp_EHLO(self, s, cmd):
        self.release.wait(60)
        return True

    def stop(self):
        self.release.set()
        super().stop()


class MxLimitsTest(outtest.OutboundTestCase):

    def limited_mxd(self, **delivery):
        d = {"retry_min": 600, "retry_max": 1200}   # one attempt during the test
        d.update(delivery)
        m, _ = self.outbound_mxd(delivery=d)
        return m

    def tried(self, m, addresses):
        """The addresses of `addresses` that mxd connected to (or tried to),
        from its event=connect_failed lines, in order."""
        out = []
        for rec in m.events("connect_failed"):
            hop = rec.get("next_hop", "")
            ip = hop[hop.find("[") + 1:hop.find("]")] if "[" in hop else ""
            if ip in addresses:
                out.append(ip)
        return out

    def many_dead_mx(self, hosts, per_host):
        """A domain with `hosts` MX hosts (preferences 10, 20, ...), each
        with `per_host` addresses where nothing listens."""
        dom = unique_domain("many")
        addrs = pick_hosts(hosts * per_host, self.port)
        records, by_host = [], []
        for h in range(hosts):
            name = f"mx{h}.{dom}"
            records.append(f"{dom}. MX {10 * (h + 1)} {name}.")
            mine = addrs[h * per_host:(h + 1) * per_host]
            records += [f"{name}. A {a}" for a in mine]
            by_host.append(mine)
        self.dns.add(records)
        return dom, by_host

    def deferred_after_walk(self, m, dom):
        rcpt = f"user@{dom}"
        self.send(m, [rcpt], message(uuid.uuid4().hex[:12]))
        return m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=60)

    def test_many_dead_addresses_are_tried_up_to_mx_address_limit(self):
        dom, by_host = self.many_dead_mx(hosts=4, per_host=8)
        m = self.limited_mxd()      # mx_address_limit 5 by default
        rec = self.deferred_after_walk(m, dom)
        every = {a for h in by_host for a in h}
        tried = self.tried(m, every)
        self.assertEqual(len(tried), 5, f"tried {tried}")
        # In preference order: the first host's 8 addresses hold all five.
        self.assertTrue(set(tried) <= set(by_host[0]), tried)
        self.assertIn(f"451 4.4.1 no MX host of {dom} answered: gave up after 5 addresses "
                      "(delivery.mx_address_limit)", rec.get("reply", ""), rec)
        self.assertIn("Connection refused", rec.get("reply", ""), rec)
        lim = m.wait_event("mx_limit", domain=dom, timeout=5)
        self.assertEqual((lim.get("limit"), lim.get("addresses")), ("mx_address_limit", "5"), lim)
        self.assertEqual(rec.get("attempts"), "1", rec)

    def test_mx_address_limit_is_configurable_across_hosts(self):
        dom, by_host = self.many_dead_mx(hosts=5, per_host=2)
        m = self.limited_mxd(mx_address_limit=3)
        rec = self.deferred_after_walk(m, dom)
        tried = self.tried(m, {a for h in by_host for a in h})
        self.assertEqual(len(tried), 3, f"tried {tried}")
        self.assertEqual(set(tried[:2]), set(by_host[0]), tried)
        self.assertIn(tried[2], by_host[1])
        self.assertIn("gave up after 3 addresses (delivery.mx_address_limit)",
                      rec.get("reply", ""), rec)

    def test_every_address_is_tried_below_the_limit(self):
        # Four addresses, limit 5: all of them, and the usual reply.
        dom, by_host = self.many_dead_mx(hosts=2, per_host=2)
        m = self.limited_mxd()
        rec = self.deferred_after_walk(m, dom)
        tried = self.tried(m, {a for h in by_host for a in h})
        self.assertEqual(sorted(tried), sorted(a for h in by_host for a in h))
        self.assertNotIn("gave up", rec.get("reply", ""), rec)
        self.assertEqual(m.events("mx_limit", domain=dom), [])

    def test_servers_that_greet_and_fail_count_against_mx_session_limit(self):
        dom = unique_domain("sessions")
        addrs = pick_hosts(4, self.port)
        servers, records = [], []
        for i, a in enumerate(addrs):
            name = f"mx{i}.{dom}"
            records += [f"{dom}. MX {10 * (i + 1)} {name}.", f"{name}. A {a}"]
            srv = MuteAfterGreeting(a, self.port, name)
            self.addCleanup(srv.stop)
            servers.append(srv)
        self.dns.add(records)
        m = self.limited_mxd(command_timeout=2)    # mx_session_limit 2 by default
        t0 = time.monotonic()
        rec = self.deferred_after_walk(m, dom)
        self.assertLess(time.monotonic() - t0, 50, "the EHLO deadline did not end the sessions")
        self.assertEqual([len(s.peers) for s in servers], [1, 1, 0, 0],
                         "connections per MX host, in preference order")
        self.assertIn(f"451 4.4.1 no MX host of {dom} answered: gave up after 2 sessions "
                      "(delivery.mx_session_limit)", rec.get("reply", ""), rec)
        self.assertIn("timeout: EHLO answer not complete after 2 s", rec.get("reply", ""), rec)


if __name__ == "__main__":
    outtest.main()
