#!/usr/bin/python3
"""A full spool disk is a temporary failure, never a bounce.

mxd's spool lives on a small tmpfs the test mounts and fills (its pages, or
its inodes). A message sent then, with DATA or BDAT, large or small, gets
452 4.3.1 (the sender keeps it and retries) rather than 552 5.3.4 (the sender
bounces it), and no partial file stays behind. A BDAT transaction whose
first chunk was refused is refused to its end: its later chunks are never
queued as a message of their own. Once space returns, the next transaction succeeds - on the
same connection, without restarting mxd - and the mail reaches the next hop.
A bounce that falls due while the spool is full is not lost: the message is
kept and its DSN reaches the sender once space returns. Attempts made on a
full spool record their outcome in place: a recipient the next hop took is
never sent the message again, a refused one's RCPT is not repeated, and a
refused one that asked for no DSN needs none.

Runs as root (it mounts a filesystem); CI runs as root. Not being root is a
failure with a message that says so, not a skip: a skipped test would hide
that the full-disk path went untested. The test re-executes itself under
`unshare --mount` when it can, so the tmpfs lives in a private mount
namespace and disappears with the last process in it even if the test is
killed; it is also unmounted (lazily) in cleanup."""

import errno
import os
import smtplib
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body, check_body  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
RCPT = f"rcpt@{LOCAL_DOMAIN}"
NS_MARK = "MXTEST_FULL_DISK_MOUNT_NS"
# Bigger than mxd's 64 KiB write buffer: the spool write fails while the
# content is still arriving, not only at the end.
BIG = 200 * 1024
# Enough for the spool's directories and a few messages; fill_inodes takes
# the rest, so creating a message file fails with ENOSPC.
INODES = 400


def reexec_in_mount_namespace():
    """Run the rest of this test in a private mount namespace: a mount made
    there cannot outlive the processes that see it."""
    if os.environ.get(NS_MARK) or not mxtest.IS_ROOT:
        return
    try:
        ok = subprocess.run(["unshare", "--mount", "true"], capture_output=True,
                            timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    os.environ[NS_MARK] = "1" if ok else "unavailable"
    if ok:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]])


def fill(path):
    """Write path until the filesystem has no page left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (b"x" * 65536, b"x" * 4096, b"x"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def fill_inodes(directory):
    """Create empty files in directory until the filesystem has no inode
    left; returns their paths (unlinking one frees one inode)."""
    made = []
    while True:
        path = os.path.join(directory, f"inode-{len(made)}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            return made
        made.append(path)


class CountingHop:
    """A next hop in this process (aiosmtpd) that remembers every RCPT TO
    it was sent, refused or not, and every message it took."""

    def __init__(self, refuse):
        self.refuse = refuse		# address -> reply
        self.rcpts = []			# every RCPT TO, in order
        self.stored = []		# (rcpt_tos, content)
        self.host = mxtest.pick_host()
        self.port = mxtest.free_port(self.host)
        self.controller = None

    @property
    def next_hop(self):
        return f"smtp:{self.host}:{self.port}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpts.append(address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.stored.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK: stored"

    def start(self):
        from aiosmtpd.controller import Controller
        self.controller = Controller(self, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def copies(self, rcpt):
        return [data for rcpts, data in self.stored if rcpt in rcpts]


def tid():
    return "fd-" + uuid.uuid4().hex[:12]


class FullDiskTest(mxtest.MxTestCase):
    def setUp(self):
        super().setUp()
        if not mxtest.IS_ROOT:
            self.fail("test_full_disk needs root: it mounts a 2 MiB tmpfs as mxd's "
                      "spool and fills it (CI runs as root; run it with sudo)")
        self.mnt = os.path.join(self.wd, "spoolfs")
        os.mkdir(self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size=2m,nr_inodes={INODES},mode=0755",
                            "tmpfs", self.mnt], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            self.fail(f"mount tmpfs on {self.mnt} failed: {p.stderr.strip()}")
        # Lazy: mxd may still hold files open; the mount goes once they close.
        # Runs before MxTestCase's teardown removes the work directory, and
        # on a SIGTERM of the test too (the Watchdog removes directories but
        # can not unmount; outside a namespace a SIGKILL still leaks it).
        mxtest.register_emergency(("umount", self.mnt), lambda: self.umount())
        self.addCleanup(self.umount)
        self.spool = os.path.join(self.mnt, "spool")
        self.filler = os.path.join(self.mnt, "filler")

    def umount(self):
        subprocess.run(["umount", "-l", self.mnt], capture_output=True, timeout=30)
        mxtest.unregister_emergency(("umount", self.mnt))

    def start(self):
        return self.start_with(limits={"message_size": 10 * 1024 * 1024})

    def start_with(self, **over):
        return self.standard(tls=False, spool_dir=self.spool, **over)

    def leftovers(self):
        out = []
        for sub in ("tmp", "queue"):
            d = os.path.join(self.spool, sub)
            out += [f"{sub}/{n}" for n in os.listdir(d)]
        return out

    def assert_full_disk_reply(self, code, text, what):
        self.assertEqual(code, 452, f"{what} on a full spool: {code} {text!r} "
                         "(a 5xx makes the sender bounce the mail)")
        self.assertTrue(text.startswith(b"4.3.1"), f"{what}: {code} {text!r}")
        self.assertEqual(self.leftovers(), [], f"{what}: files left in the spool")

    def send_data(self, m, body):
        with smtplib.SMTP(m.host, m.port, timeout=60, local_hostname="client.test") as s:
            return s.sendmail(SENDER, [RCPT], body)

    def test_data_on_full_spool_is_452_and_recovers(self):
        m, sink = self.start()
        fill(self.filler)
        for size, what in ((BIG, "DATA of 200 kB"), (300, "DATA of 300 bytes")):
            with self.assertRaises(smtplib.SMTPDataError, msg=what) as cm:
                self.send_data(m, make_body(tid(), size=size))
            self.assert_full_disk_reply(cm.exception.smtp_code, cm.exception.smtp_error, what)
        self.assertTrue(m.running(), "mxd died on a full spool")

        os.unlink(self.filler)
        ids = [tid(), tid()]
        for msg_id, size in zip(ids, (BIG, 300)):
            self.assertEqual(self.send_data(m, make_body(msg_id, size=size)), {},
                             "refused after space returned")
        got = sink.wait_messages(2, timeout=60)
        found = sorted(check_body(g.data) for g in got)
        self.assertEqual(found, sorted((i, True) for i in ids))

    def test_bdat_on_full_spool_is_452_and_same_session_recovers(self):
        m, sink = self.start()
        fill(self.filler)
        c = self.raw(m, timeout=60)
        self.assertEqual(c.read_reply().code, 220)
        self.assertEqual(c.ehlo().code, 250)

        def transaction(msg_id):
            body = make_body(msg_id, size=BIG)
            half = len(body) // 2
            self.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}>").code, 250)
            self.assertEqual(c.cmd(f"RCPT TO:<{RCPT}>").code, 250)
            c.send(b"BDAT %d\r\n" % half + body[:half])
            first = c.read_reply()
            c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
            return first, c.read_reply()

        first, last = transaction(tid())
        # RFC 3030 lets the server refuse the failing chunk itself or wait
        # for LAST; either way the transaction ends in a 4xx.
        final = last if first.code == 250 else first
        self.assert_full_disk_reply(final.code, final.lines[-1][4:].encode(), "BDAT")
        self.assertTrue(m.running(), "mxd died on a full spool")

        os.unlink(self.filler)
        msg_id = tid()
        first, last = transaction(msg_id)
        self.assertEqual((first.code, last.code), (250, 250),
                         f"same session after space returned: {first} {last}")
        got = sink.wait_messages(1, timeout=60)
        self.assertEqual(check_body(got[0].data), (msg_id, True))
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_bdat_after_a_refused_first_chunk_queues_nothing(self):
        # The first chunk's file can not be created (no inode left). Every
        # later chunk of that transaction is refused too, even when an inode
        # is free again by then: queuing the later chunks alone would deliver
        # a message without its beginning. A full disk is not the client's
        # fault: with limits.errors 2, the refused chunks do not end the
        # session with 421.
        m, sink = self.start_with(limits={"message_size": 10 * 1024 * 1024, "errors": 2})
        c = self.raw(m, timeout=60)
        self.assertEqual(c.read_reply().code, 220)
        self.assertEqual(c.ehlo().code, 250)
        m.wait_event("delivery_started", timeout=30)
        fillers = fill_inodes(self.mnt)

        def bdat(data, last=False):
            c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)

        def envelope():
            self.assertEqual(c.cmd(f"MAIL FROM:<{SENDER}>").code, 250)
            self.assertEqual(c.cmd(f"RCPT TO:<{RCPT}>").code, 250)

        # Pipelined, the disk still full.
        envelope()
        bdat(b"Subject: pipelined\r\n")
        bdat(b"\r\nbody\r\n", last=True)
        replies = c.replies(2)
        for r in replies:
            self.assertEqual((r.code, r.lines[-1][4:9]), (452, "4.3.1"),
                             f"BDAT on a spool without inodes: {replies}")
        self.assertEqual(c.cmd("RSET").code, 250, "session ended after a full disk")

        # An inode comes back between the first chunk and the next ones.
        envelope()
        bdat(b"Subject: first half\r\n")
        first = c.read_reply()
        self.assertEqual((first.code, first.lines[-1][4:9]), (452, "4.3.1"),
                         f"first chunk on a spool without inodes: {first}")
        os.unlink(fillers.pop())
        bdat(b"\r\nsecond half, no 1\r\n")
        bdat(b"second half, no 2\r\n", last=True)
        later = c.replies(2)
        for r in later:
            self.assertEqual(r.code // 100, 4, f"a chunk after the refused first one: {later}")
        self.assertEqual(self.leftovers(), [], "files left in the spool")

        # The same session goes on once space is back, and only this
        # message reaches the next hop.
        for f in fillers:
            os.unlink(f)
        msg_id = tid()
        envelope()
        bdat(make_body(msg_id), last=True)
        self.assertEqual(c.read_reply().code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        got = sink.wait_messages(1, timeout=60)
        self.assertEqual([check_body(g.data) for g in got], [(msg_id, True)])
        self.assertEqual(len(m.events("queued")), 1, m.events("queued"))

    def test_bounce_while_full_is_sent_once_space_returns(self):
        # The next hop refuses the recipient only once the disk is full, so
        # the DSN must be written to a full spool.
        bad = f"bad@{LOCAL_DOMAIN}"
        sink = self.new_sink(start=False, rcpt_replies={bad: "550 5.1.1 no such user"})
        m = self.mxd(self.mxd_config(sink.next_hop, spool_dir=self.spool))
        msg_id = tid()
        with smtplib.SMTP(m.host, m.port, timeout=60, local_hostname="client.test") as s:
            self.assertEqual(s.sendmail(SENDER, [bad], make_body(msg_id)), {})
        # Deferred, and its schedule written (that rewrite frees a copy's
        # space when done, which must not happen after the fill).
        queue = os.path.join(self.spool, "queue")

        def scheduled():
            for n in os.listdir(queue):
                try:
                    with open(os.path.join(queue, n), "rb") as f:
                        if b"\nsched " in f.read():
                            return True
                except FileNotFoundError:
                    pass
            return False
        mxtest.wait_for(scheduled, 30, what="the deferred message's schedule line")
        fill(self.filler)
        sink.start()
        m.wait_event("dsn_failed", timeout=60)
        self.assertEqual(sink.names(), [])
        self.assertTrue(m.running(), "mxd died on a full spool")

        os.unlink(self.filler)
        dsn = sink.wait_message(lambda g: g.rcpts == [SENDER], timeout=60,
                                what=f"the DSN to {SENDER}")
        self.assertIn(bad.encode(), dsn.data)
        self.assertIn(f"Message-ID: <{msg_id}@mxtest>".encode(), dsn.data)
        self.assertEqual(len(m.events("dsn")), 1, "one DSN, not one per attempt")

    def tried_on_full_spool(self, hop, rcpts):
        """mxd with hop as next hop, and one message to rcpts ((address,
        RCPT options) each) that it first tries while hop is down (so its
        file is queued before the disk fills), then on a full spool with
        hop up. Returns (mxd, the message's test id)."""
        self.addCleanup(hop.stop)
        m = self.mxd(self.mxd_config(hop.next_hop, spool_dir=self.spool))
        msg_id = tid()
        with smtplib.SMTP(m.host, m.port, timeout=60, local_hostname="client.test") as s:
            s.ehlo()
            self.assertEqual(s.mail(SENDER)[0], 250)
            for rcpt, options in rcpts:
                self.assertEqual(s.rcpt(rcpt, options)[0], 250)
            self.assertEqual(s.data(make_body(msg_id))[0], 250)
        m.wait_event("deferred", timeout=30, rcpt=f"<{rcpts[-1][0]}>")
        fill(self.filler)
        hop.start()
        return m, msg_id

    def test_delivered_and_deferred_on_full_spool_deliver_once(self):
        # One recipient taken, one deferred (450) by the next hop, tried
        # again and again on a full spool: the taken one gets one copy.
        later = f"later@{LOCAL_DOMAIN}"
        hop = CountingHop({later: "450 4.2.1 <later@example.test>: try again later"})
        m, _ = self.tried_on_full_spool(hop, [(RCPT, []), (later, [])])
        mxtest.wait_for(lambda: hop.rcpts.count(later) >= 3, 60,
                        what="three attempts on the full spool")
        self.assertEqual(len(hop.copies(RCPT)), 1,
                         f"{RCPT} got the message again on a full spool")
        self.assertTrue(m.running(), "mxd died on a full spool")

    def test_mixed_results_on_full_spool_deliver_once_and_return_once(self):
        # One message to a recipient the next hop takes and two it refuses
        # (550), tried while the spool is full: the DSN for the refused one
        # can not be queued. The accepted one must not be sent again, nor
        # the refused ones' RCPT; the DSN goes out once space returns. The
        # other refused one asked for no DSN (NOTIFY=NEVER): it is done.
        bad, never = f"bad@{LOCAL_DOMAIN}", f"never@{LOCAL_DOMAIN}"
        hop = CountingHop({bad: "550 5.1.1 <bad@example.test>: no such user here",
                           never: "550 5.1.1 <never@example.test>: no such user either"})
        m, msg_id = self.tried_on_full_spool(hop, [(RCPT, []), (bad, []),
                                                   (never, ["NOTIFY=NEVER"])])
        m.wait_event("bounced", timeout=60, rcpt=f"<{bad}>")
        mxtest.wait_for(lambda: len(m.events("dsn_failed")) >= 3, 60,
                        what="three attempts on the full spool")
        self.assertEqual(len(hop.copies(RCPT)), 1,
                         f"{RCPT} got the message again on a full spool")
        for r in (bad, never):
            self.assertEqual(hop.rcpts.count(r), 1, f"RCPT TO:<{r}> sent again: {hop.rcpts}")
        self.assertTrue(m.running(), "mxd died on a full spool")

        os.unlink(self.filler)
        queue = os.path.join(self.spool, "queue")
        mxtest.wait_for(lambda: hop.copies(SENDER) and not os.listdir(queue), 60,
                        what=f"the DSN to {SENDER} and an empty queue")
        self.assertEqual(len(hop.copies(RCPT)), 1, f"copies to {RCPT}")
        for r in (bad, never):
            self.assertEqual(hop.rcpts.count(r), 1, f"RCPT TO:<{r}> sent again: {hop.rcpts}")
        dsns = hop.copies(SENDER)
        self.assertEqual(len(dsns), 1, "one DSN")
        dsn = dsns[0]
        self.assertIn(f"Message-ID: <{msg_id}@mxtest>".encode(), dsn)
        self.assertRegex(dsn, rb"(?i)final-recipient: rfc822; ?bad@example\.test")
        self.assertRegex(dsn, rb"(?i)action: failed")
        self.assertNotRegex(dsn, rb"(?i)action: delayed")
        self.assertRegex(dsn, rb"(?i)status: 5\.1\.1")
        self.assertIn(b"no such user here", dsn)
        self.assertNotIn(never.encode(), dsn)
        self.assertEqual(len(m.events("dsn")), 1)
        self.assertEqual(len(m.events("delivered", rcpt=f"<{RCPT}>")), 1)


if __name__ == "__main__":
    reexec_in_mount_namespace()
    mxtest.main()
