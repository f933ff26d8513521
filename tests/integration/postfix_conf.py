"""The configuration of a private Debian Postfix used as a test peer: its
own main.cf and master.cf, queue and data directories, no chroot, a log
file, no DNS (a transport map names every next hop). Shared by
test_postfix_client.PostfixInstance (and the tests built on it) and the
fleet test's sender (fleet/test_ansible_fleet.py). Imports nothing of the
test harness, so any test may use it."""

# master.cf without an SMTP listener: a sender only (sendmail(1) submits).
SERVICES_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def master_cf(listen=None):
    """master.cf: the services, and an smtpd on listen ("addr:port") if given."""
    return (f"{listen} inet n - n - - smtpd\n" if listen else "") + SERVICES_CF


def main_cf(queue, data, maillog, transport, bind_address, **over):
    """main.cf's text: a Postfix that sends each recipient by the inline
    transport map `transport` (entries "{addr = smtp:[ip]:port}, ..."),
    from bind_address, with TLS ("may" unless smtp_tls_security_level is
    given), retrying every second. over: further or other settings, by
    their Postfix names (myhostname, smtp_helo_name...)."""
    main = {
        "compatibility_level": "3.6",
        "queue_directory": queue,
        "data_directory": data,
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "client.postfix.test",
        "mydomain": "postfix.test",
        "myorigin": "$myhostname",
        "mydestination": "",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "relayhost": "",
        "transport_maps": "inline:{ " + transport + " }",
        "smtp_tls_security_level": "may",
        "smtp_tls_loglevel": "1",
        "smtp_bind_address": bind_address,
        "smtp_helo_name": "postfix.client.test",
        "smtp_dns_support_level": "disabled",
        "maillog_file": maillog,
        "biff": "no",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
    }
    main.update(over)
    return "".join(f"{k} = {v}\n" for k, v in main.items())
