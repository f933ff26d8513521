#!/usr/bin/python3
"""Automatic DNS pushes (docs/dns.md, "Push"): with dns.auto_push_interval
set, controld pushes every domain whose settings say publish, without
`mailctl dns push`, one replica at a time. Real components: knot serving the
signed zone dyn.test. and taking TSIG-signed updates (tests/tools/dnstest),
PostgreSQL, two controld replicas sharing it, one mxd reporting its identity.

What an operator sees on the primary (knot asked directly): the records
appear once the domain is set to publish; a policy change reaches the
_mta-sts record by itself; only one replica logs the push that added the
records; a domain set back to not publish is left alone."""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "control"))
sys.path.insert(0, os.path.join(HERE, "..", "outbound"))
import cptest  # noqa: E402
import outtest  # noqa: E402
import test_dns_publish as pub  # noqa: E402  one private DNS per file, its zone entry
from cptest import wait_for  # noqa: E402

DOMAIN = pub.DOMAIN
setUpModule = pub.setUpModule
tearDownModule = pub.tearDownModule


def txt_strings(rdata):
    out, i = b"", 0
    while i < len(rdata):
        n = rdata[i]
        out += rdata[i + 1:i + 1 + n]
        i += 1 + n
    return out.decode()


class DnsAutoPushTest(cptest.FleetTestCase):

    def setUp(self):
        super().setUp()
        host, port = pub.DNS.env["DNSTEST_UPDATE_SERVER"].rsplit(":", 1)
        self.primary = (host, int(port))
        dns = {"auto_push_interval": 1, "zones": pub.zones_config(self.wd)}
        self.c1 = self.controld(name="controld1", config={"dns": dns})
        self.c2 = self.controld(name="controld2", migrate=False, config={"dns": dns})
        sink = self.sink()
        cert = cptest.mxtest.make_cert(self.wd, "smtp-mx1", f"mx1.{DOMAIN}",
                                       sans=(f"mta-sts.{DOMAIN}",))
        self.mxd_with_control(self.c1, sink, name="mx1", hostname=f"mx1.{DOMAIN}",
                              tls={"certificates": cptest.mxtest.LCList(
                                  [{"cert": cert[0], "key": cert[1]}])})
        wait_for(lambda: self.scalar("SELECT count(*) FROM host_identity WHERE next_spki <> ''")
                 == "1", 30, interval=0.25, what="mx1's identity stored")
        self.mailctl(self.c1, "domain", "add", DOMAIN, sink.next_hop)

    def on_primary(self, name, qtype):
        r = outtest.dnstest.dns_query(*self.primary, name, qtype, timeout=2, rd=False, do=False)
        if r is None:
            return None
        return [msg[off:off + ln] for typ, off, ln, msg in r[2] if typ == qtype]

    def sts_txt(self):
        txt = self.on_primary(f"_mta-sts.{DOMAIN}.", 16) or []
        return [txt_strings(t) for t in txt]

    def pushes_logged(self):
        return sum(len(c.events("dns_auto_push", domain=DOMAIN)) for c in (self.c1, self.c2))

    def test_publishing_domain_is_pushed_by_one_replica_and_follows_changes(self):
        self.assertEqual(self.on_primary(f"{DOMAIN}.", 15), [])  # no MX before
        self.mailctl(self.c1, "dns", "set", DOMAIN, "--publish", "--ttl", "300")
        mx = wait_for(lambda: self.on_primary(f"{DOMAIN}.", 15) or None, 30, interval=0.25,
                      what="the MX pushed without mailctl dns push")
        self.assertEqual(len(mx), 1)
        first_id = wait_for(lambda: self.sts_txt() or None, 10, interval=0.25,
                            what="the _mta-sts record")
        # Both replicas run rounds every second; the records were added once.
        wait_for(lambda: self.pushes_logged() >= 1, 10, interval=0.25, what="the push logged")
        self.assertEqual(self.pushes_logged(), 1)

        # A policy change: the record follows by itself.
        self.mailctl(self.c2, "dns", "set", DOMAIN, "--publish", "--ttl", "300",
                     "--max-age", "86400")
        new = wait_for(lambda: [t for t in self.sts_txt() if t not in first_id] or None, 30,
                       interval=0.25, what="the new policy id on the primary")
        self.assertEqual(len(self.sts_txt()), 1)
        self.assertTrue(re.fullmatch(r"v=STSv1; id=[0-9a-f]{32}", new[0]), new)

        # Not publishing any more: a further change stays unpushed.
        self.mailctl(self.c1, "dns", "set", DOMAIN, "--ttl", "300", "--max-age", "172800")
        held = self.sts_txt()
        n = self.pushes_logged()
        wait_for(lambda: all(len(c.events("dns_auto_push_failed")) == 0 for c in (self.c1, self.c2))
                 and self.scalar("SELECT now() > "
                                 "(SELECT updated_at FROM domain_dns) + interval '4 seconds'")
                 == "t", 20, interval=0.5, what="four seconds of rounds")
        self.assertEqual(self.sts_txt(), held)
        self.assertEqual(self.pushes_logged(), n)


if __name__ == "__main__":
    cptest.main()
