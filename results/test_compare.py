#!/usr/bin/env python3
"""Self-test of scripts/compare.py (make compare A=dir B=dir) on made-up results
directories: B/A per figure, the mark where ranges do not overlap, figures in one
directory only, machines named, exit codes."""
import io
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import compare  # noqa: E402

HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"


def machine(cpu, noisy="no", extra=""):
    return (f"date: x\ncpu: {cpu}\ncores: 2 (online: 0-1)\nvirtualization: vm: kvm, container: none\n"
            f"kernel: k\ncompiler: c\ncommit: c\nnoisy: {noisy}\n{extra}")

ZEN3 = ("cpu_id: AuthenticAMD family 25 model 1 stepping 1\n"
        "gbench_caches: L1d 32K, L2 512K\ngbench_mhz_per_cpu: 2445\n")
ZEN3_LEGACY = "gbench_caches: L1d 32K, L2 512K\ngbench_mhz_per_cpu: 2445\n"
ZEN4_LEGACY = "gbench_caches: L1d 32K, L2 1024K\ngbench_mhz_per_cpu: 2596\n"


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.a = os.path.join(self.tmp.name, "a")
        self.b = os.path.join(self.tmp.name, "b")
        os.makedirs(self.a)
        os.makedirs(self.b)

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, d, rows, cpu="AMD EPYC", noisy="no", harness="switch", extra=""):
        with open(os.path.join(d, harness + ".csv"), "w") as f:
            f.write(HEADER + "".join(r + "\n" for r in rows))
        with open(os.path.join(d, harness + ".machine.txt"), "w") as f:
            f.write(machine(cpu, noisy, extra))

    def run_it(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = compare.main(list(args))
        return code, out.getvalue(), err.getvalue()

    def test_ratio_and_overlap_mark(self):
        self.put(self.a, ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,5,4.9,5.2,7",
                          "switch,switch/fiber/yield,fiber,yield,,,ns_per_switch,ns,20,19,30,7",
                          "switch,switch/fiber/old,fiber,old,,,ns_per_switch,ns,1,1,1,1"])
        self.put(self.b, ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,10,9.8,10.4,3",
                          "switch,switch/fiber/yield,fiber,yield,,,ns_per_switch,ns,25,24,26,3",
                          "switch,switch/fiber/new,fiber,new,,,ns_per_switch,ns,1,1,1,1"])
        code, out, _ = self.run_it(self.a, self.b)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"switch/fiber/strict +\| ns_per_switch +\| ns +\| 5 \(4.9-5.2\) +\| "
                              r"10 \(9.8-10.4\) +\| 2 +\| \*")
        self.assertRegex(out, r"switch/fiber/yield .*\| 1.25 \|\n")  # ranges overlap: no mark
        self.assertIn("2 figures in both, 1 with ranges that do not overlap", out)
        self.assertIn("only in A (1): switch:switch/fiber/old ns_per_switch", out)
        self.assertIn("only in B (1): switch:switch/fiber/new ns_per_switch", out)
        self.assertIn("A: " + self.a + " (amd-epyc-2vcpu-kvm)", out)
        code, out, _ = self.run_it(self.a, self.b, "--only-differing")
        self.assertNotIn("switch/fiber/yield", out)

    def test_other_machine_and_noise_are_said(self):
        row = ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,5,5,5,1"]
        self.put(self.a, row)
        self.put(self.b, row, cpu="Intel(R) Xeon(R) CPU @ 2.20GHz", noisy="yes (busy)")
        code, out, _ = self.run_it(self.a, self.b)
        self.assertEqual(code, 0)
        self.assertIn("intel-xeon-2vcpu-kvm; noisy: switch", out)
        self.assertIn("different machines", out)

    def test_new_name_and_legacy_set_of_one_cpu_are_one_machine(self):
        # a Zen 3 run (cpu_id in its files) against the legacy-named files of that Zen 3:
        # the names differ, the CPU figures agree; it said "different machines"
        row = ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,5,5,5,1"]
        self.put(self.a, row, extra=ZEN3)
        self.put(self.b, row, extra=ZEN3_LEGACY)
        code, out, _ = self.run_it(self.a, self.b)
        self.assertEqual(code, 0)
        self.assertIn("(amd-epyc-f25m1-2vcpu-kvm)", out)
        self.assertIn("(amd-epyc-2vcpu-kvm)", out)
        self.assertNotIn("different machines", out)
        self.assertIn("the same machine", out)

    def test_one_legacy_name_two_cpus_are_two_machines(self):
        # two legacy-named directories (no cpu_id): one name, a Zen 3 and a Zen 4 by their
        # caches and MHz; it said nothing (same name)
        row = ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,5,5,5,1"]
        self.put(self.a, row, extra=ZEN3_LEGACY)
        self.put(self.b, row, extra=ZEN4_LEGACY)
        code, out, _ = self.run_it(self.a, self.b)
        self.assertEqual(code, 0)
        self.assertIn("different machines (gbench_caches differs", out)

    def test_new_name_against_a_legacy_set_of_another_cpu(self):
        # the Zen 3 run against the Zen 4's legacy set: different machines, and why
        row = ["switch,switch/fiber/strict,fiber,strict,,,ns_per_switch,ns,5,5,5,1"]
        self.put(self.a, row, extra=ZEN3)
        self.put(self.b, row, extra=ZEN4_LEGACY)
        code, out, _ = self.run_it(self.a, self.b)
        self.assertIn("different machines (gbench_caches differs", out)
        self.assertIn("gbench_mhz_per_cpu differs: 2445 vs 2596", out)

    def test_output_cut_short_is_no_crash(self):
        # `scripts/compare.py A B | head -3` printed a BrokenPipeError traceback
        rows = [f"switch,switch/x{i},fiber,x,,,ns_per_switch,ns,5,5,5,1" for i in range(3000)]
        self.put(self.a, rows)
        self.put(self.b, rows)
        r = subprocess.run(f"{sys.executable} {TOP}/scripts/compare.py {self.a} {self.b} | head -3",
                           shell=True, capture_output=True, text=True)
        self.assertEqual(len(r.stdout.splitlines()), 3)
        self.assertNotIn("Traceback", r.stderr)

    def test_nothing_in_common_and_bad_usage(self):
        self.put(self.a, ["switch,s/a,fiber,x,,,ns_per_switch,ns,5,5,5,1"])
        self.put(self.b, ["alloc,a/a,fiber,x,,,ns_per_create,ns,5,5,5,1"], harness="alloc")
        code, _, err = self.run_it(self.a, self.b)
        self.assertEqual(code, 1)
        self.assertIn("no harness CSV in both", err)
        code, _, err = self.run_it(self.a, "/nonexistent")
        self.assertEqual(code, 2)
        r = subprocess.run(["make", "-s", "-C", TOP, "compare", "A=" + self.a],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: make compare A=dir B=dir", r.stderr)


if __name__ == "__main__":
    unittest.main()
