#!/usr/bin/python3
"""A message a crashed SMTP worker left half-committed is delivered without a
restart.

A commit renames the message file to queue/.ID, fsyncs the directory, then
renames it to queue/ID where the delivery process finds it. A worker that
dies between the two renames leaves queue/.ID: durable, complete, invisible
to the delivery process. mxd used to reveal such files only when it started
again; now the master does it when it reaps the dead worker (the same
decision: deliver it; its client got no 250 and may send it again - a
duplicate, never a loss). A hidden file of a process that is still alive is
left alone: it is that process's commit in flight.

The crash itself can not be timed between two renames from outside, so the
test leaves queue/.ID exactly as such a crash does (a valid spool file whose
id carries the worker's pid field), then SIGKILLs the worker for real."""

import os
import pwd
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mxtest  # noqa: E402
from mxtest import LOCAL_DOMAIN, make_body, check_body  # noqa: E402

SENDER = f"sender@{LOCAL_DOMAIN}"
RCPT = f"rcpt@{LOCAL_DOMAIN}"


class WorkerCrashSpoolTest(mxtest.MxTestCase):
    def worker_and_delivery(self, m):
        """The pids of mxd's SMTP worker and delivery process (by the names
        they give themselves), or None while one is missing."""
        names = {}
        for pid in m.pids():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    names.setdefault(f.read().strip(), pid)
            except OSError:
                pass
        if "mxd-smtpd" in names and "mxd-qmgr" in names:
            return names["mxd-smtpd"], names["mxd-qmgr"]
        return None

    def plant_hidden(self, m, pid, counter, msg_id):
        """queue/.ID as process pid leaves it when it dies after the
        commit's directory fsync: its id is spool_new_id's (milliseconds,
        pid field, counter), its content complete."""
        qid = f"{int(time.time() * 1000):011x}{pid & 0xfffff:05x}{counter:05x}"
        content = make_body(msg_id)
        header = (f"MXSPOOL1\nid {qid}\ncreated {int(time.time())}\nfrom <{SENDER}>\n"
                  f"rcpt <{RCPT}>\nflags requiretls=0 smtputf8=0 body8bit=0\n"
                  f"size {len(content):020d}\n\n").encode()
        path = os.path.join(m.config["spool_dir"], "queue", "." + qid)
        with open(path, "wb") as f:
            f.write(header + content)
        os.chmod(path, 0o600)
        if mxtest.IS_ROOT:
            pw = pwd.getpwnam(mxtest.RUN_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        return qid

    def test_hidden_message_of_a_killed_worker_is_delivered_without_restart(self):
        m, sink = self.standard(tls=False)
        m.wait_event("delivery_started", timeout=30)
        worker, delivery = mxtest.wait_for(lambda: self.worker_and_delivery(m), 20,
                                           what="mxd's worker and delivery processes")
        self.assertNotEqual(worker & 0xfffff, delivery & 0xfffff)
        dead = self.plant_hidden(m, worker, 7, "crashed-worker")
        alive = self.plant_hidden(m, delivery, 8, "live-process")
        queue = os.path.join(m.config["spool_dir"], "queue")

        os.kill(worker, signal.SIGKILL)
        m.wait_event("child_died", timeout=30, role="worker")
        got = sink.wait_message(lambda g: check_body(g.data)[0] == "crashed-worker", timeout=60,
                                what="the killed worker's durable message")
        self.assertEqual(check_body(got.data), ("crashed-worker", True))
        self.assertTrue(m.events("spool_recover", action="reveal", file=f"queue/{dead}"),
                        "no event=spool_recover action=reveal for it")
        # The delivery process is alive: its hidden file is its own commit
        # in flight, not the dead worker's.
        self.assertIn("." + alive, os.listdir(queue))
        self.assertNotIn(alive, os.listdir(queue))
        self.assertEqual([check_body(g.data)[0] for g in sink.messages()], ["crashed-worker"])
        # A new worker serves.
        replies = mxtest.send_message(m.host, m.port, SENDER, [RCPT], make_body("after-crash"),
                                      timeout=30)
        self.assertEqual(replies[-2].code, 250, replies)


if __name__ == "__main__":
    mxtest.main()
