#!/usr/bin/python3
"""The outbound queue's schedule, seen by the sender and the operator, for
mail delivered straight to an MX that keeps saying "try later":

  * the default schedule: first retry after 5 minutes, the interval
    doubling up to 4 hours (read from the queue-control socket, with
    "retry now" standing in for the passing hours);
  * a short schedule: the message is retried, the sender gets one delay
    notice (Action: delayed) and, when the message is too old, one failure
    notice (Action: failed) that quotes the MX's whole multi-line reply;
  * a restart keeps the schedule: the message waits for its next attempt,
    the attempt count goes on, and no second delay notice is sent.
"""

import os
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import outtest  # noqa: E402
from outtest import message, pick_hosts, unique_domain  # noqa: E402

import mxtest  # noqa: E402

TEMPFAIL = ["451-4.2.0 mailbox over quota for now,", "451 4.2.0 please try again later"]


class QueueScheduleTest(outtest.OutboundTestCase):

    def busy_mx(self, tag):
        """A domain whose only MX answers every RCPT with TEMPFAIL."""
        dom = unique_domain(tag)
        (host,) = pick_hosts(1, self.port)
        self.dns.add([f"{dom}. MX 10 mx.{dom}.", f"mx.{dom}. A {host}"])
        rcpt = f"user@{dom}"
        sink = self.mx_sink(host, name=f"mx.{dom}", rcpt_replies={rcpt: "\n".join(TEMPFAIL)})
        return dom, rcpt, sink

    def listing(self, m):
        """The queue-control LIST answer: {queue id: fields}."""
        path = os.path.join(m.config["spool_dir"], "queue.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"LIST\n")
            s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        lines = out.decode().splitlines()
        self.assertTrue(lines and lines[-1].startswith("OK "), lines)
        return {r["id"]: r for r in (mxtest.parse_logfmt(x[4:]) for x in lines
                                     if x.startswith("MSG "))}

    def test_default_schedule_five_minutes_doubling_to_four_hours(self):
        dom, rcpt, sink = self.busy_mx("defaults")
        local = self.new_sink(name="local")
        # Nothing about the schedule in the configuration: the defaults.
        cfg = self.mxd_config(local.next_hop, None, resolver=self.dns.resolver,
                              trusted_networks=["127.0.0.0/8"],
                              delivery={"remote_port": self.port})
        for key in ("retry_min", "retry_max", "max_age", "delay_dsn"):
            cfg["delivery"].pop(key, None)
        m = self.mxd(cfg)
        mxtest.wait_for(lambda: m.events("queue_control_listening"), 10, what="queue socket")
        self.send(m, [rcpt], message(uuid.uuid4().hex[:12]))

        expected = [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]
        seen = []
        for attempt, interval in enumerate(expected, start=1):
            rec = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15,
                               pred=lambda r, a=attempt: r.get("attempts") == str(a))
            self.assertIn(TEMPFAIL[-1][4:], rec.get("reply", ""), rec)
            now = time.time()
            entry = self.listing(m)[rec["id"]]
            self.assertEqual(entry["attempts"], str(attempt), entry)
            wait = int(entry["next"]) - now
            seen.append(wait)
            self.assertTrue(interval - 30 <= wait <= interval + 2,
                            f"attempt {attempt}: next try in {wait:.0f}s, expected {interval}s "
                            f"(so far {[round(x) for x in seen]})")
            # The hours pass: the operator's "retry now".
            rc, _, err = m.queue("retry", rec["id"])
            self.assertEqual(rc, 0, err)
        # Nothing was returned or announced: the message is young.
        self.assertEqual(m.events("dsn"), [])
        self.assertEqual(m.events("bounced"), [])
        self.assertEqual(local.names(), [])

    def retry_now(self, m, qid):
        rc, _, err = m.queue("retry", qid)
        self.assertEqual(rc, 0, err)

    def test_restart_keeps_schedule_and_sends_no_second_delay_notice(self):
        dom, rcpt, sink = self.busy_mx("restart")
        m, local = self.outbound_mxd(delivery={"retry_min": 120, "retry_max": 120,
                                               "delay_dsn": 1})
        mxtest.wait_for(lambda: m.events("queue_control_listening"), 10, what="queue socket")
        self.send(m, [rcpt], message(uuid.uuid4().hex[:12]))
        qid = m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15)["id"]
        # A second attempt, old enough for the delay notice.
        time.sleep(1.2)
        self.retry_now(m, qid)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15,
                     pred=lambda r: r.get("attempts") == "2")
        _, delay = self.wait_dsn(local)
        self.assertEqual([v.strip().lower() for v in delay.field("action")], ["delayed"])
        due = int(self.listing(m)[qid]["next"])
        self.assertGreater(due, time.time() + 60)

        m.stop()
        self.assertIsNone(m.stop_problem, m.stop_problem)
        mark = len(m.log_text())
        m.start()
        mxtest.wait_for(lambda: "queue_control_listening" in m.log_text()[mark:], 10,
                        what="queue socket after the restart")
        entry = self.listing(m)[qid]
        self.assertEqual(entry["attempts"], "2", f"the attempt count was lost: {entry}")
        self.assertEqual(int(entry["next"]), due, f"the next attempt moved: {entry}")
        # The restarted mxd waits for that time: no attempt now.
        time.sleep(3)
        self.assertNotIn("event=deferred", m.log_text()[mark:],
                         "retried at once after the restart")

        # The operator's retry: attempt 3, and still one delay notice.
        self.retry_now(m, qid)
        m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15,
                     pred=lambda r: r.get("attempts") == "3")
        time.sleep(1.5)
        notices = [x for x in local.messages() if x.mail_from == ""]
        self.assertEqual(len(notices), 1, "a second delay notice after the restart")
        self.assertEqual(sink.names(), [])

    def test_retries_then_one_delay_notice_then_failure_quoting_the_reply(self):
        dom, rcpt, sink = self.busy_mx("schedule")
        m, local = self.outbound_mxd(delivery={"retry_min": 1, "retry_max": 1,
                                               "delay_dsn": 3, "max_age": 9})
        msg_id = uuid.uuid4().hex[:12]
        self.send(m, [rcpt], message(msg_id))

        # Retried: several attempts, each answered by the MX.
        m.wait_event("deferred", rcpt=f"<{rcpt}>", timeout=15,
                     pred=lambda r: int(r.get("attempts", "0")) >= 3)

        # One delay notice while it is still being tried.
        _, delay = self.wait_dsn(local)
        self.assertEqual([v.strip().lower() for v in delay.field("action")], ["delayed"])
        self.assertTrue(any(rcpt in v for v in delay.field("final-recipient")),
                        delay.field("final-recipient"))
        self.assertEqual([v.strip() for v in delay.field("status")], ["4.2.0"])
        self.assertIn(f"X-Test-Id: {msg_id}".encode(), delay.raw)

        # Then the failure notice, once the message is older than max_age.
        got = local.wait_message(lambda x: x.mail_from == "" and b"Action: failed" in x.data,
                                 timeout=30, what="failure DSN")
        final = outtest.Dsn(got.data)
        self.assertEqual(final.msg.get_content_type(), "multipart/report")
        self.assertEqual([v.strip().lower() for v in final.field("action")], ["failed"])
        self.assertTrue(any(rcpt in v for v in final.field("final-recipient")),
                        final.field("final-recipient"))
        self.assertTrue(all(v.strip().startswith("4.") for v in final.field("status")),
                        f"the last reply was a 4xx; Status: {final.field('status')}")
        diag = " ".join(final.field("diagnostic-code"))
        self.assertRegex(diag, r"(?i)^smtp;", diag)
        for line in TEMPFAIL:
            self.assertIn(line[4:], diag, f"Diagnostic-Code lacks a line of the reply: {diag!r}")
        self.assertTrue(any(f"mx.{dom}" in v for v in final.field("remote-mta")),
                        f"Remote-MTA does not name the MX: {final.field('remote-mta')}")
        self.assertIn(f"Message-ID: <{msg_id}@outtest>".encode(), final.raw)

        # Exactly these two notices, and the message is gone from the queue.
        queue = os.path.join(m.config["spool_dir"], "queue")
        mxtest.wait_for(lambda: not os.listdir(queue), 10, what="spool queue empty")
        time.sleep(1.5)
        notices = [x for x in local.messages() if x.mail_from == ""]
        self.assertEqual(len(notices), 2, [x.data[:200] for x in notices])
        self.assertEqual(sink.names(), [], "the MX never accepted the message")


if __name__ == "__main__":
    outtest.main()
