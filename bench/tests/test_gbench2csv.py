#!/usr/bin/env python3
"""Tests of scripts/gbench2csv.py on hand-written Google Benchmark JSON."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "gbench2csv.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import gbench2csv  # noqa: E402


def agg(name, agg_name, t, unit="ns", reps=3, **counters):
    d = {"name": name + "_" + agg_name, "run_name": name, "run_type": "aggregate",
         "repetitions": reps, "aggregate_name": agg_name, "iterations": reps,
         "real_time": t, "cpu_time": t, "time_unit": unit, "label": "metric=ns_per_switch"}
    d.update(counters)
    return d


DATA = {
    "context": {"num_cpus": 2, "library_build_type": "debug"},
    "benchmarks": [
        agg("switch/fiber/strict/manual_time", "mean", 5.0),
        agg("switch/fiber/strict/manual_time", "median", 4.0, cold_ns=9.0),
        agg("switch/fiber/strict/manual_time", "min", 3.0, cold_ns=8.0),
        agg("switch/fiber/strict/manual_time", "max", 0.007, unit="us", cold_ns=10.0),
        agg("switch/fiber/strict/manual_time", "stddev", 1.0),
        {"name": "alloc/thread/create-join/stack_kib:64/manual_time",
         "run_name": "alloc/thread/create-join/stack_kib:64/manual_time", "run_type": "iteration",
         "repetitions": 1, "iterations": 10, "real_time": 2.5, "cpu_time": 1, "time_unit": "us"},
        {"name": "scale/thread/cpu=same", "run_name": "scale/thread/cpu=same",
         "run_type": "iteration", "error_occurred": True, "error_message": "EAGAIN, pid_max",
         "iterations": 0, "real_time": 0, "time_unit": "ns"},
    ],
}


class Convert(unittest.TestCase):
    def setUp(self):
        self.lines = gbench2csv.convert(DATA, "switch")

    def test_aggregates_give_median_min_max_in_ns(self):
        row = self.lines[0].split(",")
        self.assertEqual(row[:8], ["switch", "switch/fiber/strict", "fiber", "strict", "", "",
                                   "ns_per_switch", "ns"])
        self.assertEqual([float(x) for x in row[8:11]], [4.0, 3.0, 7.0])  # 0.007 us = 7 ns
        self.assertEqual(row[11], "3")

    def test_counters_become_rows(self):
        row = self.lines[1].split(",")
        self.assertEqual(row[6:8], ["cold_ns", "ns"])
        self.assertEqual([float(x) for x in row[8:11]], [9.0, 8.0, 10.0])

    def test_argname_is_param(self):
        row = [l for l in self.lines if "create-join" in l][0].split(",")
        self.assertEqual(row[1:6], ["alloc/thread/create-join/stack_kib=64", "thread",
                                    "create-join", "stack_kib", "64"])
        self.assertEqual([float(x) for x in row[8:11]], [2500.0] * 3)
        self.assertEqual(row[6], "ns_per_op")
        self.assertEqual(row[11], "1")

    def test_word_value_stays_in_impl(self):
        self.assertEqual(gbench2csv.split_name("switch/thread/futex/cpu=same/manual_time"),
                         ("switch/thread/futex/cpu=same", "thread", "futex/cpu=same", "", ""))
        self.assertEqual(gbench2csv.split_name("switch/floor/repeats:3"),
                         ("switch/floor", "floor", "floor", "", ""))

    def test_error_row_is_quoted(self):
        row = [l for l in self.lines if l.startswith("switch,scale/thread")][0].split(",")
        self.assertEqual(row[1], "scale/thread/cpu=same/error=EAGAIN-pid_max")
        self.assertEqual(row[6:8], ["errors", "count"])

    def test_units(self):
        self.assertEqual(gbench2csv.counter_unit("cold_ns"), "ns")
        self.assertEqual(gbench2csv.counter_unit("warm_create_ns"), "ns")
        self.assertEqual(gbench2csv.counter_unit("units_per_s"), "ops/s")
        self.assertEqual(gbench2csv.counter_unit("rss_bytes"), "bytes")
        self.assertEqual(gbench2csv.counter_unit("threads"), "count")


class CommandLine(unittest.TestCase):
    def test_writes_csv_and_machine(self):
        with tempfile.TemporaryDirectory() as d:
            j = os.path.join(d, "in.json")
            with open(j, "w") as f:
                json.dump(DATA, f)
            r = subprocess.run([sys.executable, SCRIPT, "--harness", "switch", "--json", j,
                                "--out-dir", os.path.join(d, "out"), "--extra", "mode: test"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "out", "switch.csv")) as f:
                lines = f.read().splitlines()
            self.assertEqual(lines[0], gbench2csv.HEADER)
            self.assertGreater(len(lines), 3)
            with open(os.path.join(d, "out", "switch.machine.txt")) as f:
                m = f.read()
            self.assertIn("mode: test", m)
            self.assertIn("gbench_library_build_type: debug", m)
            # The fiberbench schema checker accepts what we wrote.
            checker = os.path.join(HERE, "..", "..", "scripts", "check_results.py")
            if os.path.isfile(checker):
                r = subprocess.run([sys.executable, checker, "-q", os.path.join(d, "out", "switch.csv")],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_input(self):
        with tempfile.TemporaryDirectory() as d:
            j = os.path.join(d, "bad.json")
            with open(j, "w") as f:
                f.write("{not json")
            r = subprocess.run([sys.executable, SCRIPT, "--harness", "x", "--json", j,
                                "--out-dir", d], capture_output=True)
            self.assertEqual(r.returncode, 1)
            r = subprocess.run([sys.executable, SCRIPT, "--bogus"], capture_output=True)
            self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
