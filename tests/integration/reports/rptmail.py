"""Report mails as real senders write them (RFC 8460 5.3), for the tests of
received TLS reports: Microsoft's layout (no mx-host, failure details
without sending-mta-ip), Google's (mx-host arrays, sending-mta-ip), mx-host
as a string, gzip and plain JSON; and hostile ones."""

import base64
import gzip
import hashlib
import json
from email.message import EmailMessage

DOMAIN = "recv.example"

# Microsoft's report of 24 October 2024 (docs: /work/shared/seeds/000_*),
# its policy domain changed to ours.
MICROSOFT = {
    "organization-name": "Microsoft Corporation",
    "date-range": {"start-datetime": "2024-10-24T00:00:00Z",
                   "end-datetime": "2024-10-24T23:59:59Z"},
    "contact-info": "tlsrpt@microsoft.example",
    "report-id": "133743605086584199+recv.example",
    "policies": [
        {"policy": {"policy-type": "tlsa",
                    "policy-string": ["[\"3 1 1 5C046FF012891B5F0D6176024C5C25FF486A7C12B8000FDF"
                                      "8B418AB3ECF6D309\"]"],
                    "policy-domain": DOMAIN},
         "summary": {"total-successful-session-count": 2,
                     "total-failure-session-count": 0}},
        {"policy": {"policy-type": "sts",
                    "policy-string": ["version: STSv1", "mode: enforce",
                                      "mx: mail.recv.example", "max_age: 604800"],
                    "policy-domain": DOMAIN},
         "summary": {"total-successful-session-count": 2,
                     "total-failure-session-count": 6},
         "failure-details": [
             {"result-type": "validation-failure",
              "receiving-mx-hostname": "mail.recv.example",
              "receiving-ip": "2001:db8::25", "failed-session-count": 3,
              "failure-reason-code": "VALIDATION_FAILURE"},
             {"result-type": "validation-failure",
              "receiving-mx-hostname": "mail.recv.example",
              "receiving-ip": "192.0.2.25", "failed-session-count": 3,
              "failure-reason-code": "VALIDATION_FAILURE"}]}],
}

# Google's layout: mx-host arrays, sending-mta-ip, the report id of day and domain.
GOOGLE = {
    "organization-name": "Google Inc.",
    "date-range": {"start-datetime": "2024-01-01T00:00:00Z",
                   "end-datetime": "2024-01-01T23:59:59Z"},
    "contact-info": "smtp-tls-reporting@google.example",
    "report-id": "2024-01-01T00:00:00Z_recv.example",
    "policies": [
        {"policy": {"policy-type": "sts",
                    "policy-string": ["version: STSv1", "mode: enforce",
                                      "mx: mx1.recv.example", "max_age: 86400"],
                    "policy-domain": DOMAIN, "mx-host": ["mx1.recv.example"]},
         "summary": {"total-successful-session-count": 1024,
                     "total-failure-session-count": 3},
         "failure-details": [
             {"result-type": "certificate-host-mismatch", "sending-mta-ip": "209.85.220.41",
              "receiving-mx-hostname": "mx1.recv.example", "receiving-ip": "192.0.2.25",
              "failed-session-count": 3}]},
        {"policy": {"policy-type": "no-policy-found", "policy-domain": "other.recv.example"},
         "summary": {"total-successful-session-count": 5,
                     "total-failure-session-count": 0}}],
}

# RFC 8460 before erratum 6241: mx-host as one string, no zone on the dates.
OLDSTYLE = {
    "organization-name": "Old Style MTA",
    "date-range": {"start-datetime": "2024-02-01T00:00:00",
                   "end-datetime": "2024-02-01T23:59:59"},
    "contact-info": "postmaster@old.example",
    "report-id": "old-1",
    "policies": [
        {"policy": {"policy-type": "sts", "policy-domain": DOMAIN,
                    "mx-host": "*.recv.example"},
         "summary": {"total-successful-session-count": "7",
                     "total-failure-session-count": 1},
         "failure-details": [{"result-type": "sts-policy-fetch-error",
                              "failed-session-count": 1}]}],
}


def report_mail(report, to, gz=True, sender="noreply-smtp-tls-reporting@google.example",
                org_domain="google.example", raw=None):
    """A multipart/report mail carrying report (a dict) gzipped or as JSON;
    raw: these bytes as the report part instead."""
    body = raw if raw is not None else json.dumps(report, indent=1).encode()
    if raw is None and gz:
        body = gzip.compress(body)
    sub = "tlsrpt+gzip" if gz else "tlsrpt+json"
    name = f"{org_domain}!{DOMAIN}!1704067200!1704153599.json" + (".gz" if gz else "")
    b64 = base64.encodebytes(body).decode().replace("\n", "\r\n")
    bnd = "=_rpt_" + hashlib.sha256(body).hexdigest()[:16]
    return (f"From: {sender}\r\nTo: {to}\r\n"
            f"Subject: Report Domain: {DOMAIN} Submitter: {org_domain} Report-ID: <x@y>\r\n"
            f"Message-ID: <{bnd[6:]}@{org_domain}>\r\n"
            f"TLS-Report-Domain: {DOMAIN}\r\nTLS-Report-Submitter: {org_domain}\r\n"
            f"MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type="tlsrpt";\r\n boundary="{bnd}"\r\n'
            f"\r\n--{bnd}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"This is an aggregate TLS report from {org_domain}.\r\n"
            f"\r\n--{bnd}\r\nContent-Type: application/{sub}\r\n"
            f"Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment;\r\n filename="{name}"\r\n\r\n'
            f"{b64}\r\n--{bnd}--\r\n").encode()


def plain_mail(to, text="Hello, this is no report.\n", sender="someone@elsewhere.example"):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = "not a report"
    m.set_content(text)
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def hostile_mails(to):
    """(name, mail bytes, words the refusal reason holds)."""
    good = gzip.compress(json.dumps(GOOGLE).encode())
    bomb = gzip.compress(b"\0" * (64 << 20), 9)       # 64 MiB of zeros, ~64 KiB gzipped
    return [
        ("truncated gzip", report_mail(None, to, raw=good[:len(good) // 2]), "gzip"),
        ("zip bomb", report_mail(None, to, raw=bomb), "limit"),
        ("invalid JSON", report_mail(None, to, gz=False, raw=b'{"organization-name": tru'),
         "not JSON"),
        ("no report part", plain_mail(to), "no report part"),
        ("wrong shapes", report_mail({"policies": "all good"}, to), "date-range"),
    ]
