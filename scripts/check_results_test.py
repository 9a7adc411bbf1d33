#!/usr/bin/env python3
"""Self-test of scripts/check_results.py on made-up good and bad CSVs.

The samples live only in a temporary directory: they are fixtures, never results.
Run directly or through CTest (results_checker_selftest).
"""
import io
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_results  # noqa: E402

HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
MACHINE = ("date: 2026-01-01T00:00:00Z\ncpu: test cpu\ncores: 2\n"
           "kernel: Linux 6.1 x86_64\ncompiler: gcc 12\ncommit: abc1234\n")
GOOD_ROWS = [
    "switch,switch/fiber/asm,fiber,asm,,,ns_per_op,ns,5.1,4.9,6.0,5",
    "switch,switch/thread/futex,thread,futex,,,ns_per_op,ns,2100,1900,2600,5",
    "switch,switch/thread/futex/n=2,thread,futex,n,2,ns_per_op,ns,2100,2100,2100,1",
    'switch,"switch/peer/a,b",ucontext,"glibc, 2.36",,,ns_per_op,ns,90,80,100,3',
    "switch,scale/thread/limit=EAGAIN,thread,pthread,,,limit_units,count,32450,32450,32450,1",
]


class CheckerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, harness, rows, machine=MACHINE, header=HEADER):
        path = os.path.join(self.dir, harness + ".csv")
        with open(path, "w") as f:
            f.write(header + "".join(r + "\n" for r in rows))
        if machine is not None:
            with open(os.path.join(self.dir, harness + ".machine.txt"), "w") as f:
                f.write(machine)
        return path

    def run_checker(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = check_results.main(list(args))
        return code, err.getvalue()

    def assert_bad(self, rows, needle, harness="switch", **kw):
        path = self.write(harness, rows, **kw)
        code, err = self.run_checker(path)
        self.assertEqual(code, 1, err)
        self.assertIn(needle, err)

    def test_good_file_passes(self):
        path = self.write("switch", GOOD_ROWS)
        code, err = self.run_checker(path)
        self.assertEqual(code, 0, err)

    def test_directory_is_scanned(self):
        self.write("switch", GOOD_ROWS)
        self.write("alloc", ["alloc,alloc/fiber/stack=64K,fiber,pool,,,ns_per_op,ns,80,70,90,3"])
        code, err = self.run_checker(self.dir)
        self.assertEqual(code, 0, err)
        self.write("memory", ["memory,m,fiber,x,,,bytes_per_unit,ns,1,1,1,1"])
        code, err = self.run_checker(self.dir)
        self.assertEqual(code, 1)
        self.assertIn("memory.csv", err)

    def test_bad_header(self):
        self.assert_bad(GOOD_ROWS, "header", header="harness,case,median\n")

    def test_header_only(self):
        self.assert_bad([], "no data rows")

    def test_median_outside_min_max(self):
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,7,4,6,5"], "min <= median <= max")

    def test_min_above_median(self):
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,3,4,6,5"], "min <= median <= max")

    def test_non_numeric(self):
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,fast,4,6,5"], "not a finite number")
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,nan,4,6,5"], "not a finite number")

    def test_runs(self):
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,0"], "runs 0 < 1")
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,2.5"], "not an integer")
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,1"], "runs = 1")

    def test_wrong_field_count(self):
        self.assert_bad(["switch,s/a,fiber,asm,,ns_per_op,ns,5,4,6,5"], "11 fields")

    def test_unknown_harness_and_file_mismatch(self):
        self.assert_bad(["bogus,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,5"], "unknown harness")
        self.assert_bad(["alloc,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,5"], "in switch.csv")
        self.assert_bad(["bogus,s/a,fiber,asm,,,ns_per_op,ns,5,4,6,5"], "not <harness>.csv",
                        harness="bogus")

    def test_units(self):
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,parsecs,5,4,6,5"], "unknown unit")
        self.assert_bad(["switch,s/a,fiber,asm,,,ns_per_op,us,5,4,6,5"], "must be in 'ns'")
        self.assert_bad(["switch,s/a,fiber,asm,,,wobble_ms,ns,5,4,6,5"], "by its suffix")

    def test_unknown_metric_warns_or_fails_strict(self):
        path = self.write("switch", ["switch,s/a,fiber,asm,,,wobble_ms,ms,5,4,6,5"])
        code, err = self.run_checker(path)
        self.assertEqual(code, 0, err)
        self.assertIn("warning", err)
        code, err = self.run_checker("--strict", path)
        self.assertEqual(code, 1)

    def test_param_value(self):
        self.assert_bad(["switch,s/a,fiber,asm,,3,ns_per_op,ns,5,4,6,5"], "without a param")
        self.assert_bad(["switch,s/a,fiber,asm,n,,ns_per_op,ns,5,4,6,5"], "not a finite number")
        self.assert_bad(["switch,s/a,fiber,asm,n,ten,ns_per_op,ns,5,4,6,5"], "not a finite number")

    def test_empty_names_and_spaces(self):
        self.assert_bad(["switch,,fiber,asm,,,ns_per_op,ns,5,4,6,5"], "empty case")
        self.assert_bad(["switch,s/a,,asm,,,ns_per_op,ns,5,4,6,5"], "empty model")
        self.assert_bad(["switch,s a,fiber,asm,,,ns_per_op,ns,5,4,6,5"], "whitespace")

    def test_duplicate(self):
        self.assert_bad([GOOD_ROWS[0], GOOD_ROWS[0]], "duplicate of line 2")

    def test_machine_file(self):
        self.assert_bad(GOOD_ROWS, "no machine file", machine=None)
        self.assert_bad(GOOD_ROWS, "missing key 'commit:'", machine="date: x\ncpu: y\n")

    def test_cli_exit_codes(self):
        script = os.path.join(HERE, "check_results.py")
        r = subprocess.run([sys.executable, script, "--help"], capture_output=True)
        self.assertEqual(r.returncode, 0)
        r = subprocess.run([sys.executable, script, "--bogus-flag"], capture_output=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([sys.executable, script, os.path.join(self.dir, "missing.csv")],
                           capture_output=True)
        self.assertEqual(r.returncode, 2)
        path = self.write("switch", GOOD_ROWS)
        r = subprocess.run([sys.executable, script, path], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)


class PublishedSetTest(unittest.TestCase):
    """results/published/<machine>/: named after its machine, no noisy run in it."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.pub = os.path.join(self.tmp.name, "published")
        # "test cpu", 2 cores, no virtualization line: scripts/resultsets.py names it so.
        self.set = os.path.join(self.pub, "test-2cpu-metal")
        os.makedirs(self.set)

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, d, noise):
        with open(os.path.join(d, "switch.csv"), "w") as f:
            f.write(HEADER + GOOD_ROWS[0] + "\n")
        with open(os.path.join(d, "switch.machine.txt"), "w") as f:
            f.write(MACHINE + noise)

    def check(self, d):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = check_results.main([d])
        return code, err.getvalue()

    def test_calm_set_passes(self):
        self.put(self.set, "noisy: no\n")
        code, err = self.check(self.set)
        self.assertEqual(code, 0, err)

    def test_noisy_run_is_refused(self):
        self.put(self.set, "noisy: yes (busy at the start after waiting 60 s)\n")
        code, err = self.check(self.set)
        self.assertEqual(code, 1)
        self.assertIn("noisy run in a published set", err)

    def test_no_noise_record_is_refused(self):
        self.put(self.set, "")
        code, err = self.check(self.set)
        self.assertEqual(code, 1)
        self.assertIn("no 'noisy:' line", err)

    def test_legacy_set_warns(self):
        self.put(self.set, "noise: not recorded (old)\n")
        code, err = self.check(self.set)
        self.assertEqual(code, 0, err)
        self.assertIn("noise not recorded", err)

    def test_set_named_after_another_machine(self):
        wrong = os.path.join(self.pub, "amd-epyc-2vcpu-kvm")
        os.makedirs(wrong)
        self.put(wrong, "noisy: no\n")
        code, err = self.check(wrong)
        self.assertEqual(code, 1)
        self.assertIn("belongs to machine 'test-2cpu-metal'", err)

    def test_flat_csv_in_published_is_refused(self):
        self.put(self.pub, "noisy: no\n")
        code, err = self.check(self.pub)
        self.assertEqual(code, 1)
        self.assertIn("published/<machine>/", err)


if __name__ == "__main__":
    unittest.main()
