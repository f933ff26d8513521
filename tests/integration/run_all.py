#!/usr/bin/python3
"""Run the integration test files, two at a time, each under a time limit,
and finish with one 'N passed, N failed' line (exit status 1 on any failure).

  /usr/bin/python3 tests/integration/run_all.py [-j N] [test_X.py ...]

Each file is also runnable alone: /usr/bin/python3 tests/integration/test_X.py
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
PER_FILE_TIMEOUT = 240


def run(path):
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/python3", path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    try:
        out, _ = p.communicate(timeout=PER_FILE_TIMEOUT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        # SIGTERM first: the test process then kills the daemons it started.
        p.terminate()
        try:
            out, _ = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        out = (out or "") + f"\nTIMEOUT after {PER_FILE_TIMEOUT}s\n"
        rc = -1
    return path, rc, out, time.monotonic() - t0


def counts(out):
    """(ran, failed, skipped) from unittest's summary."""
    ran = re.search(r"^Ran (\d+) tests?", out, re.M)
    ran = int(ran.group(1)) if ran else 0
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors|unexpected successes)=(\d+)", out))
    skipped = re.search(r"skipped=(\d+)", out)
    return ran, failed, int(skipped.group(1)) if skipped else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = [os.path.abspath(f) for f in args.files] or \
        sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    passed = failed = skipped = 0
    bad_files = []
    with ThreadPoolExecutor(max_workers=args.j) as pool:
        for path, rc, out, took in pool.map(run, files):
            ran, nfail, nskip = counts(out)
            if rc != 0 and nfail == 0:
                nfail = 1  # crashed or timed out outside unittest's bookkeeping
            passed += ran - nfail - nskip
            failed += nfail
            skipped += nskip
            name = os.path.basename(path)
            print(f"{'ok  ' if rc == 0 else 'FAIL'} {name}: {ran} run, {nfail} failed, "
                  f"{nskip} skipped, {took:.0f}s", flush=True)
            if rc != 0:
                bad_files.append(name)
                sys.stdout.write(out[-20000:] + "\n")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or bad_files else 0


if __name__ == "__main__":
    sys.exit(main())
