#!/usr/bin/python3
"""The man pages the packages install (issue 13, item 5): docs/man/mailctl.8,
mxd.8, controld.8, mxd.conf.5 and controld.conf.5.

What an operator would notice is checked: each page renders with no groff
warning (groff -ww, and man --warnings as lintian runs it) and has the
sections a man page is read for; `lexgrog` (mandb, apropos) finds its NAME
line; every command word and option `mailctl --help` shows is a tagged
entry of mailctl.8, and every word of `mxd`'s and `controld`'s usage one of
theirs; every configuration key mxd and controld accept is a tagged entry of
their .conf page. The keys are those of the arrays their parsers give to
conf_check_keys() (lib/conf.h: a key not in such an array is refused), and
each is confirmed by asking the binary with `-n`, which answers "unknown
key" for any other; the configuration examples of the .conf pages are
given to the binaries too and must parse."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("MXFLEET_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
MAN = os.path.join(SRC, "docs", "man")
MXD = os.environ.get("MXD_BIN", os.path.join(SRC, "build", "bin", "mxd"))
CONTROLD = os.environ.get("CONTROLD_BIN", os.path.join(SRC, "build", "bin", "controld"))
MAILCTL = os.environ.get("MAILCTL", os.path.join(SRC, "build", "bin", "mailctl"))

PAGES = ["mailctl.8", "mxd.8", "controld.8", "mxd.conf.5", "controld.conf.5"]
SECTIONS = {
    "8": ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES",
          "EXIT STATUS", "EXAMPLES", "SEE ALSO"],
    "5": ["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "EXAMPLES", "SEE ALSO"],
}
# The daemons' pages also say what their signals do, and where the packages
# put things (scripts/deb, the systemd units).
EXTRA_SECTIONS = {"mxd.8": ["SIGNALS"], "controld.8": ["SIGNALS"]}
PACKAGED_PATHS = {
    "mxd.8": ["/usr/sbin/mxd", "/etc/mxfleet/mxd.conf", "/var/spool/mxfleet", "/var/lib/mxfleet"],
    "controld.8": ["/usr/sbin/controld", "/etc/mxfleet/controld.conf",
                   "/usr/share/mxfleet/schema", "/var/lib/mxfleet"],
    "mailctl.8": ["/usr/bin/mailctl"],
    "mxd.conf.5": ["/etc/mxfleet/mxd.conf", "/var/spool/mxfleet"],
    "controld.conf.5": ["/etc/mxfleet/controld.conf", "/usr/share/mxfleet/schema"],
}
# MAN_DISABLE_SECCOMP: man-db's sandbox is refused by some container runtimes.
ENV = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_DISABLE_SECCOMP="1")


def page(name):
    with open(os.path.join(MAN, name), encoding="utf-8") as f:
        return f.read()


# ---- reading roff without caring how it is written ----

def roff_plain(line):
    """A roff source line as the words a reader sees: no macro name, no font
    changes, escapes resolved (\\- is -, \\(dq is ", \\e is \\)."""
    line = re.sub(r"^[.'][ \t]*[A-Za-z]{1,3}\b", "", line)
    line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)
    line = re.sub(r"\\\*(\[[^\]]*\]|\(..|.)", "", line)
    for esc, text in (("\\-", "-"), ("\\(hy", "-"), ("\\(dq", '"'), ("\\(em", " "), ("\\(en", "-"),
                      ("\\(aq", "'"), ("\\(ba", "|"), ("\\&", ""), ("\\%", ""), ("\\c", ""),
                      ("\\|", ""), ("\\^", ""), ("\\ ", " "), ("\\e", "\\")):
        line = line.replace(esc, text)
    return line.replace('"', " ")


def source_lines(text):
    return [ln for ln in text.splitlines() if not ln.startswith(('.\\"', "'\\\"", '.\\#'))]


def sections(text):
    """{SECTION NAME: [its source lines]} from the .SH headings."""
    out, cur = {}, None
    for ln in source_lines(text):
        m = re.match(r'^\.SH\s+"?([^"]*?)"?\s*$', ln)
        if m:
            cur = m.group(1).strip().upper()
            out[cur] = []
        elif cur is not None:
            out[cur].append(ln)
    return out


def tags(lines):
    """The plain text of every tag: the line after .TP, the argument of .IP,
    .It (mdoc), .SS (a heading is a tag of its group)."""
    out, after_tp = [], False
    for ln in lines:
        if after_tp:
            if ln.startswith(".") and re.match(r"^\.(PD|ns)\b", ln):
                continue
            out.append(roff_plain(ln))
            after_tp = False
        elif re.match(r"^\.(TP|TQ)\b", ln):
            after_tp = True
        elif re.match(r"^\.(IP|It|SS)\b", ln):
            out.append(roff_plain(ln))
    return out


def tag_words(lines):
    words = set()
    for t in tags(lines):
        words.update(re.findall(r"--?[A-Za-z][A-Za-z0-9_-]*|[A-Za-z_][A-Za-z0-9_-]*", t))
    return words


def key_words(lines):
    """Identifiers of tags, split at dots too (tls.cert is tls and cert)."""
    words = set()
    for t in tags(lines):
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", t))
    return words


# ---- what the programs accept ----

def checked_key_arrays(subdir):
    """{(file, array): keys} of every array a file of subdir/ hands to
    conf_check_keys()."""
    arrays = {}
    for root, _, files in os.walk(os.path.join(SRC, subdir)):
        for fn in files:
            if not fn.endswith(".c"):
                continue
            with open(os.path.join(root, fn), encoding="utf-8") as f:
                text = f.read()
            used = set(re.findall(r"conf_check_keys\s*\([^,;]+,\s*(\w+)\s*,", text))
            for m in re.finditer(r"static\s+const\s+char\s*\*\s*const\s+(\w+)\s*\[\s*\]\s*=\s*"
                                 r"\{(.*?)\}\s*;", text, re.S):
                if m.group(1) in used:
                    arrays[(fn, m.group(1))] = re.findall(r'"([^"]*)"', m.group(2))
    return arrays


# Where a group of keys may sit in each program's file ({body}: "k1 = 0; k2 = 0;").
MXD_PLACES = [
    "{body}",
    "tls = {{ {body} }};",
    "tls = {{ certificates = ( {{ {body} }} ); }};",
    "limits = {{ {body} }};",
    "recipient_verify = {{ {body} }};",
    "delivery = {{ {body} }};",
    "delivery = {{ destinations = ( {{ {body} }} ); }};",
    "control = {{ {body} }};",
    "domains = ( {{ {body} }} );",
    "routes = ( {{ {body} }} );",
    "tls_policies = ( {{ {body} }} );",
    "submission_auth = ( {{ {body} }} );",
    "mta_sts_certs = ( {{ {body} }} );",
]
CONTROLD_PLACES = [
    "{body}",
    "tls = {{ {body} }};",
    "dns = {{ {body} }};",
    "dns = {{ zones = ( {{ {body} }} ); }};",
    "inbound = {{ {body} }};",
    "reports = {{ {body} }};",
    "reports = {{ send = {{ {body} }}; }};",
]


def check_config(binary, text, wd):
    """The binary's -n on text: (exit status, stderr + stdout)."""
    path = os.path.join(wd, "probe.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    r = subprocess.run([binary, "-n", "-c", path], capture_output=True, text=True, timeout=30,
                       env=ENV)
    return r.returncode, r.stderr + r.stdout


def accepted_somewhere(binary, places, keys, wd):
    """The first of places where the binary refuses none of keys as unknown
    (a group's keys are all checked before any value is read)."""
    for p in places:
        _, out = check_config(binary, p.format(body=" ".join(f"{k} = 0;" for k in keys)), wd)
        if "unknown key" not in out:
            return p
    return None


def usage(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=ENV)
    return r.returncode, r.stdout + r.stderr


def mailctl_help_words():
    """(top-level commands, every command word, every option) of mailctl --help."""
    r = subprocess.run([MAILCTL, "--help"], capture_output=True, text=True, timeout=30, env=ENV)
    assert r.returncode == 0, r
    commands, words, options = set(), set(), set()
    for ln in r.stdout.splitlines():
        if re.match(r"^  [a-z-]", ln):
            segment = re.split(r"\s{2,}", ln.strip())[0]
            first = True
        elif re.match(r"^\s+\[--", ln):
            segment, first = ln.strip(), False
        else:
            continue
        for tok in re.split(r"[\s|]+", segment):
            tok = tok.strip("[](),.")
            if re.fullmatch(r"--[a-z][a-z0-9-]*", tok):
                options.add(tok)
            elif re.fullmatch(r"[a-z][a-z0-9-]*", tok):
                words.add(tok)
                if first:
                    commands.add(tok)
            first = False
    return commands, words, options


def program_usage_words(text, prog):
    """Options (-c) and command words (queue, migrate) of a usage text."""
    found = set()
    for ln in text.splitlines():
        s = ln.strip()
        if s.startswith("usage:"):
            s = s[len("usage:"):].strip()
        if s.startswith(prog + " "):
            for tok in re.split(r"[\s|]+", s[len(prog):]):
                tok = tok.strip("[]")
                if re.fullmatch(r"-[A-Za-z]|[a-z][a-z0-9-]*", tok):
                    found.add(tok)
        m = re.match(r"^(-[A-Za-z])\b", s)
        if m:
            found.add(m.group(1))
    return found


def example_config(text):
    """The first .nf block of the page's EXAMPLES, as a file's text."""
    ex = sections(text)["EXAMPLES"]
    start = ex.index(".nf")
    body = ex[start + 1:ex.index(".fi", start)]
    return "\n".join(ln.replace("\\-", "-").replace("\\e", "\\") for ln in body)


# ---- the tests ----

class ManPagesRender(unittest.TestCase):

    def assert_quiet(self, argv):
        """Each page through argv + [page]: exit 0, nothing on stderr; the
        text it printed (overstrikes removed)."""
        for name in PAGES:
            with self.subTest(argv=argv[0], page=name):
                r = subprocess.run(argv + [os.path.join(MAN, name)], capture_output=True,
                                   text=True, timeout=60, env=ENV)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                yield re.sub(r".\x08", "", r.stdout)

    def test_every_page_renders_without_groff_warnings(self):
        for _ in self.assert_quiet(["groff", "-man", "-ww", "-z", "-Tutf8"]):
            pass

    def test_every_page_reads_without_man_warnings(self):
        # As lintian reads them (man --warnings), and as an operator does.
        for out in self.assert_quiet(["man", "--warnings", "-E", "UTF-8", "-l"]):
            self.assertIn("NAME", out)

    def test_lexgrog_finds_each_pages_name(self):
        for name in PAGES:
            prog, sect = name.rsplit(".", 1)
            with self.subTest(page=name):
                r = subprocess.run(["lexgrog", os.path.join(MAN, name)], capture_output=True,
                                   text=True, timeout=60, env=ENV)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn(f'"{prog} - ', r.stdout)
                th = re.search(r"^\.TH\s+(\S+)\s+(\S+)", page(name), re.M)
                self.assertEqual((th.group(1), th.group(2)), (prog.upper(), sect))

    def test_every_page_has_the_sections_an_operator_looks_for(self):
        for name in PAGES:
            sect = name.rsplit(".", 1)[1]
            have = sections(page(name))
            for want in SECTIONS[sect] + EXTRA_SECTIONS.get(name, []):
                with self.subTest(page=name, section=want):
                    self.assertIn(want, have)
                    self.assertTrue(any(ln.strip() for ln in have[want]))

    def test_files_name_the_packaged_paths(self):
        for name, paths in PACKAGED_PATHS.items():
            files = " ".join(roff_plain(ln) for ln in sections(page(name))["FILES"])
            for p in paths:
                with self.subTest(page=name, path=p):
                    self.assertIn(p, files)


class MailctlPage(unittest.TestCase):

    def test_every_help_command_word_and_option_is_a_tag_of_mailctl_8(self):
        commands, words, options = mailctl_help_words()
        # The parse of --help itself: it must see what is surely there.
        self.assertTrue({"pki", "hosts", "domain", "dns", "reports"} <= commands, commands)
        self.assertTrue({"recipients", "rollover", "send-now"} <= words, words)
        self.assertTrue({"--socket", "--server", "--json", "--since"} <= options, options)
        text = page("mailctl.8")
        secs = sections(text)
        have = tag_words(secs["COMMANDS"] + secs["OPTIONS"])
        self.assertEqual(sorted((words | options) - have), [],
                         "in mailctl --help, not a tag of mailctl.8")
        firsts = {re.findall(r"[a-z][a-z0-9-]*", t)[0] for t in tags(secs["COMMANDS"])
                  if re.findall(r"[a-z][a-z0-9-]*", t)}
        self.assertEqual(sorted(commands - firsts), [],
                         "a command of mailctl --help that starts no entry of COMMANDS")

    def test_every_environment_variable_of_help_is_in_environment(self):
        r = subprocess.run([MAILCTL, "--help"], capture_output=True, text=True, timeout=30, env=ENV)
        wanted = set(re.findall(r"MAILCTL_[A-Z]+", r.stdout))
        self.assertTrue({"MAILCTL_SOCKET", "MAILCTL_SERVER"} <= wanted, wanted)
        env = tag_words(sections(page("mailctl.8"))["ENVIRONMENT"])
        self.assertEqual(sorted(wanted - env), [])


class DaemonPages(unittest.TestCase):

    def check_usage(self, binary, prog, name):
        rc, text = usage([binary, "-h"])
        self.assertEqual(rc, 2, text)
        words = program_usage_words(text, prog)
        self.assertIn("-c", words)
        secs = sections(page(name))
        have = tag_words(secs["OPTIONS"] + secs["COMMANDS"])
        self.assertEqual(sorted(words - have), [], f"in {prog}'s usage, not a tag of {name}")
        return words

    def test_mxd_8_has_every_option_and_command_of_the_usage(self):
        words = self.check_usage(MXD, "mxd", "mxd.8")
        self.assertTrue({"-n", "-V", "queue", "drop", "csr"} <= words, words)

    def test_controld_8_has_every_option_and_command_of_the_usage(self):
        words = self.check_usage(CONTROLD, "controld", "controld.8")
        self.assertTrue({"-n", "migrate"} <= words, words)
        # -V is not in controld's usage text but getopt takes it.
        self.assertIn("-V", tag_words(sections(page("controld.8"))["OPTIONS"]))


class ConfigPages(unittest.TestCase):

    def setUp(self):
        self.wd = tempfile.mkdtemp(prefix="mxfleet-manpages-")
        os.chmod(self.wd, 0o755)
        self.addCleanup(shutil.rmtree, self.wd, True)

    def check_keys(self, binary, subdir, places, name, anchors):
        arrays = checked_key_arrays(subdir)
        keys = {k for ks in arrays.values() for k in ks}
        # The source parse must find what is surely there.
        self.assertTrue(anchors <= keys, sorted(anchors - keys))
        for k in keys:
            self.assertRegex(k, r"^[a-z_][a-z0-9_]*$")
        # Asking the binary: a made-up key is refused everywhere (so the
        # probe can fail), and each array's keys are taken, all together,
        # in one place of the file.
        self.assertIsNone(accepted_somewhere(binary, places, ["no_such_key_zz"], self.wd))
        refused = sorted(a for a, ks in arrays.items()
                         if accepted_somewhere(binary, places, ks, self.wd) is None)
        self.assertEqual(refused, [], f"{binary} refuses keys of these arrays of its own")
        have = key_words(source_lines(page(name)))
        self.assertEqual(sorted(keys - have), [], f"keys {binary} accepts, not a tag of {name}")

    def test_mxd_conf_5_has_every_key_mxd_accepts(self):
        self.check_keys(MXD, "mxd", MXD_PLACES, "mxd.conf.5",
                        {"spool_dir", "heartbeat_interval", "mx_session_limit", "cert",
                         "mta_sts_listen", "positive_ttl", "password_file"})

    def test_controld_conf_5_has_every_key_controld_accepts(self):
        self.check_keys(CONTROLD, "controld", CONTROLD_PLACES, "controld.conf.5",
                        {"database", "revocation_interval", "tsig_secret_file",
                         "failure_threshold", "report_without_failures", "mail_from"})

    def test_mxd_conf_5_example_parses(self):
        text = example_config(page("mxd.conf.5"))
        self.assertIn("control", text)
        path = os.path.join(self.wd, "probe.conf")
        _, out = check_config(MXD, text, self.wd)
        # A parse error names the file and a line; later checks (the
        # example's certificates do not exist here) do not.
        self.assertNotRegex(out, re.escape(path) + r":\d+:")
        self.assertNotIn("unknown key", out)

    def test_controld_conf_5_example_parses(self):
        text = example_config(page("controld.conf.5"))
        # The TSIG secret is read while parsing: give it one.
        secret = os.path.join(self.wd, "tsig.key")
        with open(secret, "w") as f:
            f.write("c2VjcmV0IGZvciB0aGUgdGVzdA==\n")
        os.chmod(secret, 0o600)
        text = re.sub(r'(tsig_secret_file\s*=\s*)"[^"]*"', lambda m: f'{m.group(1)}"{secret}"',
                      text)
        self.assertIn("reports", text)
        path = os.path.join(self.wd, "probe.conf")
        _, out = check_config(CONTROLD, text, self.wd)
        self.assertNotRegex(out, re.escape(path) + r":\d+:")
        self.assertNotIn("unknown key", out)


if __name__ == "__main__":
    unittest.main()
