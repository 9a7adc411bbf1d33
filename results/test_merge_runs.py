#!/usr/bin/env python3
"""scripts/merge_runs.py (CTest results_merge_runs): three one-run CSVs become one of
median, min, max and runs per row; a row one run lacks keeps the runs that have it; the
merged file passes the results checker; a malformed run is refused with exit 1."""
import os
import subprocess
import sys
import tempfile
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import merge_runs  # noqa: E402

HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"


def row(case, metric, unit, v, param="", value=""):
    return f"scale,{case},fiber,parked,{param},{value},{metric},{unit},{v},{v},{v},1\n"


class MergeRunsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.runs = []
        for i, (ns, limit) in enumerate(((3500, True), (3100, True), (4200, False))):
            d = os.path.join(self.tmp.name, f"run{i}")
            os.makedirs(d)
            with open(os.path.join(d, "scale.csv"), "w") as f:
                f.write(HEADER + row("scale/fiber/parked/n=1000", "ns_per_create", "ns", ns, "n", "1000"))
                if limit:
                    f.write(row("scale/fiber/parked/limit", "limit_units", "count", 1000000))
            with open(os.path.join(d, "scale.machine.txt"), "w") as f:
                f.write(f"date: 2026-12-02T09:00:00Z\ncpu: AMD EPYC\ncores: 2\nkernel: Linux 6.18\n"
                        f"compiler: cc 12.2\ncommit: abc1234\nrun: {i}\n")
            self.runs.append(d)
        self.out = os.path.join(self.tmp.name, "out")

    def tearDown(self):
        self.tmp.cleanup()

    def test_median_min_max_runs(self):
        self.assertEqual(merge_runs.main(["--harness", "scale", "--out", self.out] + self.runs), 0)
        with open(os.path.join(self.out, "scale.csv")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0] + "\n", HEADER)
        self.assertTrue(lines[1].endswith(",ns_per_create,ns,3500,3100,4200,3"), lines[1])
        self.assertTrue(lines[2].endswith(",limit_units,count,1e+06,1e+06,1e+06,2"), lines[2])
        with open(os.path.join(self.out, "scale.machine.txt")) as f:
            m = f.read()
        self.assertIn("run: 0", m)
        self.assertIn("merged runs: 3", m)
        r = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "check_results.py"),
                            os.path.join(self.out, "scale.csv")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_malformed_run_refused(self):
        with open(os.path.join(self.runs[1], "scale.csv"), "a") as f:
            f.write("scale,short,row\n")
        self.assertEqual(merge_runs.main(["--harness", "scale", "--out", self.out] + self.runs), 1)
        self.assertFalse(os.path.exists(os.path.join(self.out, "scale.csv")))


if __name__ == "__main__":
    unittest.main()
