"""The TLS reports controld sends, checked by tools that are not ours.

tlsrpt_build_tool (TLSRPT_BUILD_TOOL) writes a few fixed reports with
controld's builder; each must validate against rfc8460.schema.json (written
from RFC 8460 section 4 and erratum 6241) with Debian's python3-jsonschema,
gunzip with Python's gzip module to the very same JSON, and come with an
RFC 8460 5.1 file name whose timestamps are the report's date-range. The
schema itself is shown to refuse the mistakes real senders make.
"""
import calendar
import copy
import gzip
import json
import os
import re
import subprocess
import tempfile
import time
import unittest

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(HERE, "rfc8460.schema.json")

# RFC 8460 5.1: sender "!" policy-domain "!" begin "!" end ["!" unique-id]
# "." ("json" / "json.gz"), unique-id = 1*(ALPHA / DIGIT).
FILENAME_RE = re.compile(
    r"^(?P<sender>[A-Za-z0-9._-]+)!(?P<domain>[A-Za-z0-9._-]+)"
    r"!(?P<begin>[0-9]+)!(?P<end>[0-9]+)(?:![A-Za-z0-9]+)?\.json\.gz$")


def load_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def utc_seconds(stamp):
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


class BuiltReports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.validator = load_schema()
        cls.tmp = tempfile.TemporaryDirectory(prefix="tlsrpt-schema-")
        tool = os.environ["TLSRPT_BUILD_TOOL"]
        out = subprocess.run([tool, cls.tmp.name], check=True, capture_output=True,
                             text=True, timeout=60).stdout
        cls.names = dict(line.split("\t") for line in out.splitlines())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name, ext):
        return os.path.join(self.tmp.name, name + ext)

    def report(self, name):
        with open(self.path(name, ".json"), "rb") as f:
            return f.read()

    def test_tool_wrote_every_report(self):
        self.assertEqual(sorted(self.names), sorted(
            ["full", "minimal", "per_host_tlsa", "every_result_type", "escaping"]))

    def test_every_built_report_validates_against_the_rfc8460_schema(self):
        for name in self.names:
            with self.subTest(report=name):
                doc = json.loads(self.report(name).decode("utf-8"))
                errors = [e.message for e in self.validator.iter_errors(doc)]
                self.assertEqual(errors, [])

    def test_every_gzip_inflates_with_python_to_the_same_json(self):
        for name in self.names:
            with self.subTest(report=name):
                with open(self.path(name, ".json.gz"), "rb") as f:
                    gz = f.read()
                self.assertEqual(gz[:2], b"\x1f\x8b")
                self.assertEqual(gzip.decompress(gz), self.report(name))

    def test_reports_cover_every_policy_and_result_type(self):
        policy_types, result_types = set(), set()
        for name in self.names:
            doc = json.loads(self.report(name))
            for p in doc["policies"]:
                policy_types.add(p["policy"]["policy-type"])
                result_types.update(d["result-type"] for d in p.get("failure-details", []))
        schema = self.validator.schema["$defs"]
        self.assertEqual(policy_types, set(
            schema["policy-entry"]["properties"]["policy"]["properties"]["policy-type"]["enum"]))
        self.assertEqual(result_types, set(schema["failure"]["properties"]["result-type"]["enum"]))

    def test_escaped_text_reads_back_as_sent(self):
        doc = json.loads(self.report("escaping"))
        self.assertEqual(doc["organization-name"], 'Exp\u00e9diteur "mx" fleet')
        detail = doc["policies"][0]["failure-details"][0]
        self.assertEqual(detail["failure-reason-code"], 'said "no" \\ then\ttab, caf\u00e9')

    def test_file_name_is_rfc8460_and_matches_the_date_range(self):
        for name, fname in self.names.items():
            with self.subTest(report=name):
                m = FILENAME_RE.match(fname)
                self.assertIsNotNone(m, fname)
                doc = json.loads(self.report(name))
                self.assertEqual(m["sender"], "mxfleet.example")
                self.assertEqual(m["domain"], doc["policies"][0]["policy"]["policy-domain"])
                self.assertEqual(int(m["begin"]), utc_seconds(doc["date-range"]["start-datetime"]))
                self.assertEqual(int(m["end"]), utc_seconds(doc["date-range"]["end-datetime"]))


GOOD = {
    "organization-name": "mxfleet.example",
    "date-range": {"start-datetime": "2024-01-01T00:00:00Z",
                   "end-datetime": "2024-01-01T23:59:59Z"},
    "contact-info": "tlsrpt@mxfleet.example",
    "report-id": "20240101@mxfleet.example",
    "policies": [{
        "policy": {"policy-type": "sts", "policy-string": ["version: STSv1"],
                   "policy-domain": "recipient.example",
                   "mx-host": ["mx1.recipient.example"]},
        "summary": {"total-successful-session-count": 1,
                    "total-failure-session-count": 1},
        "failure-details": [{"result-type": "certificate-expired",
                             "failed-session-count": 1}],
    }],
}


def mutated(change):
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


def policy(doc):
    return doc["policies"][0]["policy"]


class SchemaRefuses(unittest.TestCase):
    """Each mistake below is one the schema must catch, or it proves nothing."""

    @classmethod
    def setUpClass(cls):
        cls.validator = load_schema()

    def assertRefused(self, doc):
        self.assertFalse(self.validator.is_valid(doc), json.dumps(doc))

    def test_the_good_report_passes(self):
        self.assertEqual([e.message for e in self.validator.iter_errors(GOOD)], [])

    def test_mx_host_as_a_string(self):
        self.assertRefused(mutated(lambda d: policy(d).update({"mx-host": "mx1.recipient.example"})))

    def test_null_contact_info(self):
        self.assertRefused(mutated(lambda d: d.update({"contact-info": None})))

    def test_missing_summary(self):
        self.assertRefused(mutated(lambda d: d["policies"][0].pop("summary")))

    def test_datetime_without_z(self):
        self.assertRefused(mutated(lambda d: d["date-range"].update(
            {"start-datetime": "2024-01-01T00:00:00"})))

    def test_datetime_with_an_offset(self):
        self.assertRefused(mutated(lambda d: d["date-range"].update(
            {"end-datetime": "2024-01-01T23:59:59+01:00"})))

    def test_unknown_result_type(self):
        self.assertRefused(mutated(lambda d: d["policies"][0]["failure-details"][0].update(
            {"result-type": "tls-failed"})))

    def test_negative_or_fractional_count(self):
        self.assertRefused(mutated(lambda d: d["policies"][0]["summary"].update(
            {"total-failure-session-count": -1})))
        self.assertRefused(mutated(lambda d: d["policies"][0]["failure-details"][0].update(
            {"failed-session-count": 1.5})))

    def test_unknown_top_level_member(self):
        self.assertRefused(mutated(lambda d: d.update({"policy": {}})))

    def test_empty_failure_details_and_null_optional_member(self):
        self.assertRefused(mutated(lambda d: d["policies"][0].update({"failure-details": []})))
        self.assertRefused(mutated(lambda d: d["policies"][0]["failure-details"][0].update(
            {"receiving-ip": None})))


if __name__ == "__main__":
    unittest.main()
