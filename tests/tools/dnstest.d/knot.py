"""Knot DNS for dnstest's "dynamic" zones (loaded by tests/tools/dnstest).

A dynamic zone is served by its own knotd on loopback: it accepts RFC 2136
updates signed with the setup's TSIG key and signs the zone itself
(dnssec-signing: on, a manual policy over keys made here with keymgr before
knotd starts, so the DS is known when the parent zone is signed). Knot keeps
the zone in its journal: the zone file is only the starting point.
"""

import base64
import os
import pwd
import grp

KNOTD = "/usr/sbin/knotd"
KNOTC = "/usr/sbin/knotc"
KEYMGR = "/usr/sbin/keymgr"
TSIG_NAME = "dnstest-update."
TSIG_ALG = "hmac-sha256"


def new_tsig():
    return {"name": TSIG_NAME, "alg": TSIG_ALG,
            "secret": base64.b64encode(os.urandom(32)).decode()}


def keygen(run, kasp, zone):
    """A KSK and a ZSK (ECDSAP256SHA256) for zone in the KASP database kasp."""
    for role in ("ksk=yes", "zsk=yes"):
        run([KEYMGR, "-D", kasp, zone, "generate", "algorithm=ecdsap256sha256", role])


def ds(run, kasp, zone):
    """The SHA-256 DS of zone's KSK, a zone file line."""
    for line in run([KEYMGR, "-D", kasp, zone, "ds"]).splitlines():
        f = line.split()
        if len(f) == 6 and f[1] == "DS" and f[4] == "2":
            return line.strip()
    raise RuntimeError(f"keymgr printed no SHA-256 DS for {zone}")


def user_spec():
    """Knot changes to this user after binding: the one running the tests."""
    return f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"


def conf(kdir, addr, port, tsig, zones):
    """knot.conf text: zones maps a zone name to its zone file."""
    c = [
        "server:",
        f"  listen: {addr}@{port}",
        f"  rundir: \"{kdir}\"",
        f"  pidfile: \"{kdir}/knot.pid\"",
        f"  user: {user_spec()}",
        "  udp-workers: 1",
        "  tcp-workers: 1",
        "  background-workers: 1",
        "  identity: dnstest",
        "log:",
        f"  - target: \"{kdir}/knot.log\"",
        "    any: info",
        "database:",
        f"  storage: \"{kdir}/db\"",
        f"  kasp-db: \"{kdir}/kasp\"",
        "key:",
        f"  - id: {tsig['name']}",
        f"    algorithm: {tsig['alg']}",
        f"    secret: {tsig['secret']}",
        "acl:",
        "  - id: tsig-update",
        f"    key: {tsig['name']}",
        "    action: [update, transfer]",
        "policy:",
        "  - id: dnstest",
        "    algorithm: ecdsap256sha256",
        "    manual: on",
        "template:",
        "  - id: default",
        f"    storage: \"{kdir}/zones\"",
        "    zonefile-sync: -1",
        "    zonefile-load: whole",
        "    journal-content: changes",
        "    semantic-checks: on",
        "zone:",
    ]
    for zone, path in sorted(zones.items()):
        c += [f"  - domain: \"{zone}\"", f"    file: \"{path}\"", "    acl: tsig-update",
              "    dnssec-signing: on", "    dnssec-policy: dnstest"]
    return "\n".join(c) + "\n"


def argv(conf_path):
    return [KNOTD, "-c", conf_path]


def control(run, conf_path, *args):
    return run([KNOTC, "-c", conf_path, "-t", "20"] + list(args))


def rr_fields(rr, default_ttl):
    """'owner [ttl] [IN] type rdata' -> [owner, ttl, type, rdata...] for knotc."""
    f = rr.split()
    if len(f) < 3:
        raise ValueError(f"not a record: {rr}")
    owner, rest = f[0], f[1:]
    ttl = str(default_ttl)
    if rest[0].isdigit():
        ttl, rest = rest[0], rest[1:]
    if rest and rest[0].upper() == "IN":
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError(f"not a record: {rr}")
    return [owner, ttl] + rest


def change(run, conf_path, zone, add=(), remove=(), default_ttl=300):
    """One knotc transaction: remove, then add records (zone file lines).
    Knot signs the change and bumps the serial when it commits."""
    control(run, conf_path, "zone-begin", zone)
    try:
        for rr in remove:
            f = rr_fields(rr, default_ttl)
            control(run, conf_path, "zone-unset", zone, f[0], *f[2:])
        for rr in add:
            control(run, conf_path, "zone-set", zone, *rr_fields(rr, default_ttl))
        control(run, conf_path, "zone-commit", zone)
    except BaseException:
        try:
            control(run, conf_path, "zone-abort", zone)
        except Exception:
            pass
        raise
