#!/usr/bin/env python3
"""Self-test of make reproduce's checks (scripts/reproduce.py, and scripts/reproduce.sh
--no-run) on copies of the published set in a temporary directory: a copy of it passes;
a planted 2x fiber-side regression fails (through the Python and through the shell entry
point); a machine without a set of its own is told so and checked on ratios and bytes
only, where a strict switch 14x Boost.Context still fails; bytes per fiber 20% off fail
on any machine; the claims' three states; a missing harness; bad usage. Through stand-in
harness binaries (scripts/reproduce.sh --no-build): a failure that does not repeat on the
confirming re-run passes and says so, one that repeats fails. SpreadTest: the accepted
range (the published min-max widened 1.1x, never narrower than the band) derived from the
published CSVs: a 2x regression of each judged figure fails, values inside the published
min-max pass, values just outside the widened range fail, and the last CI run's first-attempt
failures pass exactly when inside it. QuickSeed: quick runs 3 fiber throughput series."""
import csv
import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import reproduce  # noqa: E402
import resultsets  # noqa: E402

HARNESSES = ("switch", "alloc", "memory", "seed")
TIME_METRICS = {"ns_per_switch", "ns_per_create", "us_per_unit", "us_per_switch"}


def source_set():
    s = resultsets.shown_set()
    if s is None:
        raise unittest.SkipTest("no published set to copy")
    return s


def machine_commit(d, harness):
    """The commit line of <d>/<harness>.machine.txt, or None."""
    with open(os.path.join(d, harness + ".machine.txt")) as f:
        for line in f:
            if line.startswith("commit:"):
                return line.split(":", 1)[1].strip()
    return None


def edit_rows(d, harness, fn):
    """Rewrites <d>/<harness>.csv, passing each row dict through fn (in place)."""
    p = os.path.join(d, harness + ".csv")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0].keys())
    for r in rows:
        fn(r)
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def scale(r, k):
    for c in ("median", "min", "max"):
        r[c] = "%.6g" % (float(r[c]) * k)


def mark_yield_measured(d):
    """Adds switch/fiber/yield/fibers=4 to d's switch.csv: a set measured after
    fiber_yield's direct swap, whose fiber_yield figures reproduce judges."""
    p = os.path.join(d, "switch.csv")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    if any(x["case"] == "switch/fiber/yield/fibers=4" for x in rows):
        return
    r = next(x for x in rows if x["case"] == "switch/fiber/yield")
    extra = dict(r, case="switch/fiber/yield/fibers=4")
    with open(p, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(r.keys()), lineterminator="\n").writerow(extra)


def mark_yield_older(d):
    """Drops the switch/fiber/yield/fibers=4 rows from d's switch.csv: a set measured
    before fiber_yield's direct swap (reproduce judges its yield figures one-sided)."""
    edit = os.path.join(d, "switch.csv")
    with open(edit, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(edit, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(r for r in rows if not r["case"].startswith("switch/fiber/yield/fibers=4"))


def plant_fiber_regression(d, factor=2.0):
    """The fiber side factor x slower: every fiber time up, fiber throughput down."""
    def fn(r):
        if r["model"] != "fiber":
            return
        if r["metric"] in TIME_METRICS:
            scale(r, factor)
        elif r["metric"] == "units_per_s":
            scale(r, 1 / factor)
            r["min"], r["max"] = r["min"], r["max"]
    for h in HARNESSES:
        edit_rows(d, h, fn)


def set_cpu(d, cpu):
    for p in glob.glob(os.path.join(d, "*.machine.txt")):
        with open(p) as f:
            lines = f.readlines()
        with open(p, "w") as f:
            f.writelines(f"cpu: {cpu}\n" if l.startswith("cpu:") else l for l in lines)


FORM_METRICS = ("core_adds_per_ns", "core_adds_per_ns_at_best", "units_per_gadd")


def strip_forms(d):
    """Drops the CPU-time, core-speed and calibration-add rows from d's CSVs: a set
    measured before the harnesses wrote them."""
    for h in ("switch", "alloc", "seed"):
        p = os.path.join(d, h + ".csv")
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if not (r["metric"] in FORM_METRICS or r["metric"].startswith("cpu_")
                                        or r["metric"].startswith("adds_per_"))]
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(keep)


class TwoSets(unittest.TestCase):
    """setUp: a published set (self.pub) and a run (self.now), both copies of the
    source set's harnesses in a temporary directory."""

    def setUp(self):
        src = source_set()
        self.tmp = tempfile.TemporaryDirectory()
        self.pub = os.path.join(self.tmp.name, "pub")
        self.now = os.path.join(self.tmp.name, "now")
        for d in (self.pub, self.now):
            os.makedirs(d)
            for h in HARNESSES:
                for ext in (".csv", ".machine.txt"):
                    shutil.copy(os.path.join(src, h + ext), d)

    def tearDown(self):
        self.tmp.cleanup()


class BareSets(TwoSets):
    """TwoSets without the CPU-time and core-speed rows (a test adds what it needs), and
    reproduce.main run on them."""

    def setUp(self):
        super().setUp()
        strip_forms(self.pub)
        strip_forms(self.now)

    def run_it(self, *extra):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = reproduce.main(["--fresh", self.now, "--published", self.pub, *extra])
        return code, out.getvalue()


class ReproduceTest(BareSets):
    """On the wall-clock figures (CoreFormTest judges the CPU-time and core-speed rows)."""

    def test_copy_of_the_set_passes(self):
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        self.assertIn("published set of the same machine", out)
        self.assertIn("every check passed", out)
        self.assertNotIn("FAIL", out)

    def test_planted_2x_fiber_regression_fails(self):
        mark_yield_older(self.pub)
        plant_fiber_regression(self.now)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"protocol fiber create, us per unit +\| fiber +\| .*FAIL: above")
        self.assertRegex(out, r"pooled fiber create, cpu=any, ns .*FAIL: above")
        # a set measured before fiber_yield's direct swap: its yield figures are judged
        # one-sided, and a 2x slower yield still fails
        self.assertRegex(out, r"switch fiber_yield, ns .*FAIL: above [0-9.]+ \(one-sided")
        self.assertRegex(out, r"protocol fiber switch, us per switch .*\| <= [0-9.]+ +\| .*FAIL: above [0-9.]+ \(one-sided")
        mark_yield_measured(self.pub)
        mark_yield_measured(self.now)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"(?m)^switch fiber_yield, ns .*FAIL: above [0-9.]+ *$")

    def test_faster_yield_passes_one_sided_against_an_older_set(self):
        # fiber_yield's direct swap made the yield ~1.8x faster than the sets measured
        # before it: that passes against such a set, and fails against one measured after
        def fn(r):
            if r["model"] == "fiber" and r["case"].startswith("switch/fiber/yield"):
                scale(r, 0.5)
        edit_rows(self.now, "switch", fn)
        mark_yield_older(self.pub)
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"switch fiber_yield, ns .*ok \(one-sided")
        mark_yield_measured(self.pub)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"(?m)^switch fiber_yield, ns .*FAIL: below [0-9.]+ *$")

    def test_planted_regression_fails_through_make_reproduce_no_run(self):
        plant_fiber_regression(self.now)
        r = subprocess.run([os.path.join(TOP, "scripts", "reproduce.sh"), "--no-run", "--fresh",
                            self.now, "--published", self.pub], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("reproduce: FAILED", r.stdout)
        r = subprocess.run([os.path.join(TOP, "scripts", "reproduce.sh"), "--no-run", "--fresh",
                            self.pub, "--published", self.pub], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def fake_harnesses(self, bad_runs):
        """A BUILD directory whose bench_<h> copy the published set into --out; the first
        `bad_runs` runs of bench_switch copy a 2x fiber-side regression instead."""
        build = os.path.join(self.tmp.name, "build")
        os.makedirs(os.path.join(build, "bin"))
        bad = os.path.join(self.tmp.name, "bad")
        shutil.copytree(self.pub, bad)
        plant_fiber_regression(bad)
        count = os.path.join(self.tmp.name, "switch-runs")
        for h in HARNESSES:
            script = f"""#!/bin/sh
out=""
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
src={self.pub}
if [ {h} = switch ]; then
  n=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count}
  [ $n -le {bad_runs} ] && src={bad}
fi
cp "$src/{h}.csv" "$src/{h}.machine.txt" "$out/"
"""
            path = os.path.join(build, "bin", "bench_" + h)
            with open(path, "w") as f:
                f.write(script)
            os.chmod(path, 0o755)
        return build, count

    def run_sh_with_fakes(self, bad_runs):
        build, count = self.fake_harnesses(bad_runs)
        env = dict(os.environ, BUILD=build, FIBERBENCH_CALM_WAIT="0")
        r = subprocess.run([os.path.join(TOP, "scripts", "reproduce.sh"), "--no-build",
                            "--fresh", self.now, "--published", self.pub],
                           capture_output=True, text=True, timeout=120, env=env)
        with open(count) as f:
            return r, int(f.read())

    def test_failure_not_repeated_on_confirming_run_passes(self):
        r, switch_runs = self.run_sh_with_fakes(bad_runs=1)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(switch_runs, 2)  # the failing harness, and only it, ran again
        self.assertIn("checks failed in: switch", r.stderr)
        self.assertIn("did not repeat", r.stderr)
        self.assertIn("FAIL", r.stdout)  # the first attempt is printed, not hidden

    def test_failure_repeated_on_confirming_run_fails(self):
        r, switch_runs = self.run_sh_with_fakes(bad_runs=2)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(switch_runs, 2)
        self.assertIn("the failure repeated", r.stderr)

    def test_clean_run_runs_each_harness_once(self):
        r, switch_runs = self.run_sh_with_fakes(bad_runs=0)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(switch_runs, 1)

    def test_noisy_median_with_the_same_best_repetition_passes(self):
        """Host noise moves a run's median, not its best repetition: pooled create medians of
        11.6-19.4 ns in four calm full runs in a row (minima 11.3-11.8) failed make reproduce
        in CI against a published 19.4 (this test failed before absolute figures compared the
        best repetition); the fiber side's medians 1.7x off, minima unchanged, pass."""
        def noisy_median(r):
            if r["model"] == "fiber" and r["metric"] in ("ns_per_create", "ns_per_switch"):
                r["median"] = "%.6g" % (float(r["median"]) * 1.7)
                r["max"] = "%.6g" % max(float(r["max"]), float(r["median"]))
        edit_rows(self.now, "alloc", noisy_median)
        code, out = self.run_it()
        self.assertRegex(out, r"pooled fiber create, cpu=same, ns .*\| ok")
        self.assertRegex(out, r"pooled fiber create, cpu=any, ns .*\| ok")

    def test_small_drift_passes(self):
        plant_fiber_regression(self.now, 1.3)  # within 1.5x and 2x
        code, out = self.run_it()
        self.assertEqual(code, 0, out)

    def test_other_machine_checks_ratios_only(self):
        set_cpu(self.now, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")

        def slower_machine(r):  # everything 1.8x slower: absolute times shown, not judged
            if r["metric"] in TIME_METRICS:
                scale(r, 1.8)
            elif r["metric"] == "units_per_s":
                scale(r, 1 / 1.8)
        for h in HARNESSES:
            edit_rows(self.now, h, slower_machine)
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        self.assertIn("NO published set for intel-xeon-platinum-8375c-2vcpu-kvm", out)
        self.assertRegex(out, r"switch fiber_yield, ns .*shown \(other machine\)")
        # A 2x regression of the fiber side alone still moves strict/Boost: caught.
        plant_fiber_regression(self.now)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"switch strict over Boost jump_fcontext .*FAIL")

    def test_other_machine_strict_switch_14x_boost_fails(self):
        # The Intel Xeon case of issue 11: strict 14x Boost.Context passed unnoticed.
        set_cpu(self.now, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")

        def fn(r):
            if r["case"] == "switch/fiber/strict" and r["metric"] == "ns_per_switch":
                scale(r, 14 / 0.954)
        edit_rows(self.now, "switch", fn)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"switch strict over Boost jump_fcontext +\| portable .*FAIL: above")

    def test_bytes_per_fiber_on_any_machine(self):
        set_cpu(self.now, "Some Other CPU")

        def fn(r):
            if r["model"] == "fiber" and r["metric"] == "bytes_per_unit":
                scale(r, 1.2)
        edit_rows(self.now, "memory", fn)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"bytes per fiber, n=10000 +\| bytes +\| .*FAIL: above")

    def test_thread_ratio_band_same_machine(self):
        def fn(r):
            if r["case"] == "switch/thread/futex/cpu=same" and r["metric"] == "ns_per_switch":
                scale(r, 3.0)
        edit_rows(self.now, "switch", fn)
        mark_yield_measured(self.pub)
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"switch futex/cpu=same over fiber_yield .*FAIL: above")

    def test_three_state_verdicts(self):
        # The protocol's figures of the AMD EPYC set (a frozen copy: these exact bounds)
        for d in (self.pub, self.now):
            shutil.copy(os.path.join(TOP, "results", "testdata", "readme-pinned", "seed.csv"), d)
        # Published: create holds against baton by every run (bounds 23.7x-34.7x).
        code, out = self.run_it()
        # With the sides' min-max a model whose bounds straddle 20x is inconclusive, not
        # "holds" (published: baton/cpu=same 22.2x, bounds 17.4x-29.1x).
        self.assertRegex(out, r"fibers >= 20x cheaper to create .*\| holds against baton; "
                              r"inconclusive against baton/cpu=same, sched_yield/cpu=same "
                              r"\(the runs' bounds straddle 20x\) +\|")
        self.assertRegex(out, r"fibers >= 10x cheaper to switch .*\| holds against every C thread model")
        self.assertRegex(out, r"Ruby vs Ruby here .*\| (holds|inconclusive|does not hold) in Ruby here")

        def slow_fiber_create(r):
            if r["model"] == "fiber" and r["metric"] == "us_per_unit":
                scale(r, 10)
        edit_rows(self.now, "seed", slow_fiber_create)
        code, out = self.run_it("--abs-band", "20", "--ratio-band", "20")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"fibers >= 20x cheaper to create .*\| DOES NOT HOLD")

    def test_missing_harness(self):
        os.remove(os.path.join(self.now, "alloc.csv"))
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        self.assertIn("FAIL: not measured (no alloc.csv)", out)

    def test_missing_switch_rows_warn(self):
        def rename(r):
            if r["case"] == "switch/fiber/yield":
                r["case"] = "switch/fiber/yield-renamed"
        edit_rows(self.now, "switch", rename)
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"switch fiber_yield, ns .*not measured .*warning")

    def test_bad_usage(self):
        # nan would pass every check (all its comparisons are false), inf likewise
        for argv in (["--ratio-band", "0.5"], ["--bytes-band", "2"], ["--spread-margin", "0.9"],
                     ["--spread-margin", "nan"], ["--spread-margin", "inf"],
                     ["--abs-band", "nan"], ["--bytes-band", "nan"]):
            with redirect_stderr(io.StringIO()):
                with self.assertRaises(SystemExit) as e:
                    reproduce.main(argv)
            self.assertEqual(e.exception.code, 2)
        with redirect_stderr(io.StringIO()):
            self.assertEqual(reproduce.main(["--fresh", "/nonexistent/x"]), 2)
        r = subprocess.run([os.path.join(TOP, "scripts", "reproduce.sh"), "--only", "bogus"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)


# The rows the harnesses write beside each judged fiber-side figure since the core
# calibration: metric -> (CPU-time metric or None when the figure is CPU time already,
# core metric, unit of the figure in ns).
FORMS = {"ns_per_create": ("cpu_ns_per_create", "adds_per_create", 1.0),
         "us_per_unit": ("cpu_us_per_unit", "adds_per_unit", 1000.0),
         "us_per_switch": ("cpu_us_per_switch", "adds_per_switch", 1000.0),
         "ns_per_switch": (None, "adds_per_switch", 1.0)}
FORM_SWITCH_CASES = ("switch/fiber/strict", "switch/fiber/yield", "switch/fiber/yield/fibers=4")


def add_forms(d, speed=10.0, host=1.0, steal=1.0, code=1.0):
    """Gives d's judged fiber figures the CPU-time, core-speed and calibration-add rows a
    harness writes now, for a run whose code costs `code` times the set's, on a core
    `host` times slower (speed / host adds/ns: the CPU time grows by host), with the
    hypervisor taking a further `steal` of wall time (the wall figures grow by host x
    steal; the switch harness's figures are CPU time and do not). The adds stay the
    code's: cost x speed."""
    def cost_ns(v, metric):
        return 1e9 / v if metric == "units_per_s" else v * FORMS[metric][2]

    for h in ("switch", "alloc", "seed"):
        p = os.path.join(d, h + ".csv")
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        extra = []
        # everything else in the run on the same host: the switch harness's rows (CPU
        # time, pinned wall) by the core's slowdown, the others' by it and the steal
        other = host if h == "switch" else host * steal
        for r in rows:
            if r["model"] != "fiber" or (h == "switch" and r["case"] not in FORM_SWITCH_CASES):
                if r["unit"] in ("ns", "us"):
                    scale(r, other)
                elif r["unit"] == "units/s":
                    scale(r, 1 / other)
                continue
            m = r["metric"]
            if m not in FORMS and m != "units_per_s":
                continue
            base = {c: cost_ns(float(r[c]), m) * code for c in ("median", "min", "max")}
            def row(metric, unit, f):
                v = {c: f(base[c]) for c in base}
                return dict(r, metric=metric, unit=unit,
                            **{c: "%.6g" % v[c] for c in v})
            extra.append(row("core_adds_per_ns", "adds/ns", lambda x: speed / host))
            if m == "units_per_s":
                # (cost_ns turned min into the largest cost; back to a rate, it is the min)
                extra.append(row("cpu_units_per_s", "units/s", lambda x: 1e9 / (x * host)))
                extra.append(row("units_per_gadd", "units/Gadd", lambda x: 1e9 / (x * speed)))
                wall = row(m, r["unit"], lambda x: 1e9 / (x * host * steal))
            else:
                k = FORMS[m][2]
                cpu_m, core_m, _ = FORMS[m]
                if cpu_m:
                    extra.append(row(cpu_m, r["unit"], lambda x: x * host / k))
                extra.append(row(core_m, "adds", lambda x: x * speed))
                wall = row(m, r["unit"], lambda x: x * host * (steal if cpu_m else 1) / k)
            r.update(wall)
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(rows + extra)


def shift_run(d, host=1.0, steal=1.0, code=1.0, alpha=1.0):
    """A run that already has the calibration rows, moved to a core `host` times slower
    (its speed / host) that slows this code by host^alpha (alpha 0: the code does not
    follow the core, 1: fully), with `steal` more wall time taken, running code `code`
    times costlier: CPU times x host^alpha x code, wall times that and x steal (the
    switch harness's are CPU time or pinned: no steal), calibration adds x code x
    host^(alpha-1); rates the other way. Thread rows move with the host only."""
    adds = {"adds_per_create", "adds_per_switch", "adds_per_unit"}
    slow = host ** alpha
    for h in ("switch", "alloc", "seed"):
        def fn(r):
            fib = r["model"] == "fiber"
            m = r["metric"]
            c = code if fib else 1.0
            if m in ("core_adds_per_ns", "core_adds_per_ns_at_best"):
                k = 1 / host
            elif m in adds:
                k = c * slow / host
            elif m == "units_per_gadd":
                k = host / (c * slow)
            elif m.startswith("cpu_"):
                k = slow * c
                k = 1 / k if r["unit"] == "units/s" else k
            elif r["unit"] in ("ns", "us", "units/s"):
                k = slow * (1 if h == "switch" else steal) * c
                k = 1 / k if r["unit"] == "units/s" else k
            else:
                return
            scale(r, k)
        edit_rows(d, h, fn)


class CoreFormTest(BareSets):
    """The fiber-side figures judged in CPU time with the accepted range moved by the core
    speed measured beside them: a slower host passes, slower code fails, through the
    published set's own rows, a reference run's, or the CPU time alone. Each test says
    which set has the rows (the published Intel set has them for switch and alloc since
    2026-12-03); BareSets starts from sets without any."""

    def judged_fiber(self, out):
        return [l for l in out.splitlines() if "| fiber " in l]

    def test_slow_host_passes_with_the_published_sets_speed(self):
        add_forms(self.pub)
        # the core 1.5x slower and a quarter of the wall time stolen: 2x on the wall
        add_forms(self.now, host=1.5, steal=1.33)
        code, out = self.run_it("--reference", "none")
        self.assertEqual(code, 0, out)
        fib = self.judged_fiber(out)
        self.assertEqual(len(fib), 10, out)
        self.assertTrue(all("against the published set]" in l for l in fib), out)

    def test_slow_core_fails_without_a_speed_reference(self):
        # no speed in the published set and no reference run: CPU time against the
        # published figure alone, which a 1.8x slower core fails
        add_forms(self.now, host=1.8, steal=1.33)
        code, out = self.run_it("--reference", "none")
        self.assertEqual(code, 1, out)
        self.assertIn("protocol fiber create", out.split("FAILED:")[1])

    def test_planted_2x_fails_against_the_reference_run(self):
        # the machine's committed reference run as the fresh run: itself passes, on a
        # core 1.3x slower or faster too, whether the code follows the core (alpha 1),
        # half (0.5) or not at all (0); 2x slower code fails every fiber-side figure on
        # each of those cores, whatever alpha; a core 2.5x slower fails, saying it ran
        # too far from the reference's speed to tell
        ref = self.reference_as_fresh()
        cases = [(1.0, 1.0, 1.0, 1.0, 0), (1.0, 1.0, 2.0, 1.0, 1)]
        for host in (1.3, 1 / 1.3):
            cases += [(host, 1.33 if host > 1 else 1.0, 1.0, a, 0) for a in (0.0, 0.5, 1.0)]
            cases += [(host, 1.2, 2.0, a, 1) for a in (0.0, 0.5, 1.0)]
        for host, steal, code, alpha, want in cases:
            with self.subTest(host=host, steal=steal, code=code, alpha=alpha):
                self.reference_as_fresh()
                shift_run(self.now, host=host, steal=steal, code=code, alpha=alpha)
                rc, out = self.run_it("--reference", ref)
                self.assertEqual(rc, want, out)
                fib = self.judged_fiber(out)
                self.assertEqual(len(fib), 10, out)
                self.assertTrue(all("against the reference run]" in l for l in fib), out)
                if want:
                    failed = out.split("FAILED:")[1]
                    for l in fib:
                        self.assertIn(l.split("|")[0].strip(), failed, out)
        self.reference_as_fresh()
        shift_run(self.now, host=2.5, alpha=1.0)
        rc, out = self.run_it("--reference", ref)
        self.assertEqual(rc, 1, out)
        self.assertIn("too far from it to tell the code from the host", out)

    def test_planted_2x_fails_against_the_published_sets_own_forms(self):
        # the shown set as it is (the Intel set's switch and alloc carry the rows): a copy
        # of it passes; 2x slower code on its core, or on one 1.3x slower at any
        # exponent, fails every figure judged against the published set's forms
        for h in HARNESSES:
            shutil.copy(os.path.join(source_set(), h + ".csv"), self.pub)
        cases = [(1.0, 1.0, 0)] + [(1.0, 2.0, 1)] + [(1.3, 2.0, 1, a) for a in (0.0, 1.0)]
        judged = 0
        for c in cases:
            host, code, want = c[:3]
            alpha = c[3] if len(c) > 3 else 1.0
            with self.subTest(host=host, code=code, alpha=alpha):
                for h in HARNESSES:
                    shutil.copy(os.path.join(source_set(), h + ".csv"), self.now)
                shift_run(self.now, host=host, code=code, alpha=alpha)
                rc, out = self.run_it("--reference", "none")
                own = [l for l in self.judged_fiber(out) if "against the published set]" in l]
                judged = len(own)
                if want:
                    self.assertEqual(rc, 1, out)
                    failed = out.split("FAILED:")[1]
                    for l in own:
                        self.assertIn(l.split("|")[0].strip(), failed, out)
                else:
                    self.assertTrue(all(l.rstrip().endswith("| ok") for l in own), out)
        if judged == 0:
            self.skipTest("the shown set has no CPU-time and core-speed rows")

    def test_a_set_without_forms_takes_them_from_the_reference_run(self):
        ref = os.path.join(self.tmp.name, "ref")
        shutil.copytree(self.pub, ref)
        add_forms(ref)
        add_forms(self.now, host=1.8, steal=1.33)
        code, out = self.run_it("--reference", ref)
        self.assertEqual(code, 0, out)
        self.assertIn("from the reference run", out)
        fib = self.judged_fiber(out)
        self.assertTrue(all("against the reference run]" in l for l in fib), out)
        self.bare_now()
        add_forms(self.now, code=2.0)
        code, out = self.run_it("--reference", ref)
        self.assertEqual(code, 1, out)

    def test_cpu_time_against_the_published_calm_run(self):
        # no forms in the published set, no reference: the fresh CPU time is judged
        # against the published (calm) figure, so steal alone passes ...
        add_forms(self.now, steal=1.8)
        code, out = self.run_it("--reference", "none")
        self.assertEqual(code, 0, out)
        self.assertIn("[CPU time against the published calm run]", out)
        # ... and slower code fails
        self.bare_now()
        add_forms(self.now, steal=1.8, code=2.0)
        code, out = self.run_it("--reference", "none")
        self.assertEqual(code, 1, out)
        self.assertIn("protocol fiber throughput", out.split("FAILED:")[1])

    def bare_now(self):
        """self.now back to the source set's CSVs without their forms."""
        for h in HARNESSES:
            shutil.copy(os.path.join(source_set(), h + ".csv"), self.now)
        strip_forms(self.now)

    def reference_as_fresh(self):
        ref = os.path.join(reproduce.REFERENCE, resultsets.dir_machine_name(self.pub) or "-")
        if not os.path.isdir(ref):
            self.skipTest("no reference run for the shown set's machine")
        for h in ("switch", "alloc", "seed"):
            shutil.copy(os.path.join(ref, h + ".csv"), self.now)
        return ref

    def slow_one_case(self, fig, host):
        """The fresh run's core `host` times slower in fig's own case only, the code
        following it fully (alpha 1): the CPU time x host, the speed / host, the adds
        unchanged; every other case as it was."""
        row = reproduce.sel(resultsets.load_rows(self.now, fig.harness), **fig.num)

        def fn(r):
            if r["case"] != row["case"]:
                return
            m = r["metric"]
            if m == "core_adds_per_ns":
                scale(r, 1 / host)
            elif m.startswith("cpu_") or m == fig.num["metric"]:
                scale(r, 1 / host if r["unit"] == "units/s" else host)
        edit_rows(self.now, fig.harness, fn)

    def test_each_figure_takes_the_speed_of_its_own_case(self):
        # one case's core 1.69x slower, unchanged code following it fully: that figure
        # passes only when its range is moved by its own case's speed (1.69^0.5 = 1.3);
        # the speed of another case (1x) leaves it 1.69x above the reference, outside
        ref = self.reference_as_fresh()
        for fig in [f for f in reproduce.FIGURES if f.kind == "fiber"]:
            with self.subTest(fig=fig.name):
                self.reference_as_fresh()
                self.slow_one_case(fig, 1.69)
                rc, out = self.run_it("--reference", ref)
                # (the figure's own check: a slower fiber side moves the portable and
                # claim ratios built on it, which are not what this is about)
                line = next(l for l in self.judged_fiber(out) if l.startswith(fig.name + " "))
                self.assertTrue(line.rstrip().endswith("| ok"), line)

    def test_a_2x_regression_fails_on_a_core_far_slower_than_the_references(self):
        # the cap: a core 2.5x slower moves the range by 1.3x at most; 2x slower code that
        # does not follow the core (alpha 0) must still fail every fiber-side figure
        ref = self.reference_as_fresh()
        shift_run(self.now, host=2.5, alpha=0.0, code=2.0)
        rc, out = self.run_it("--reference", ref)
        self.assertEqual(rc, 1, out)
        failed = out.split("FAILED:")[1]
        for l in self.judged_fiber(out):
            self.assertIn(l.split("|")[0].strip(), failed, out)

    def test_the_published_sets_forms_come_before_the_reference_runs(self):
        ref = os.path.join(self.tmp.name, "ref")
        shutil.copytree(self.pub, ref)
        add_forms(ref, speed=5.0)
        add_forms(self.pub)
        add_forms(self.now)
        code, out = self.run_it("--reference", ref)
        self.assertEqual(code, 0, out)
        fib = self.judged_fiber(out)
        self.assertTrue(fib and all("against the published set]" in l for l in fib), out)

    def test_the_machines_reference_run_is_found_without_being_named(self):
        # make reproduce passes no --reference: results/reference/<machine>/ is the default
        self.reference_as_fresh()
        code, out = self.run_it()
        self.assertIn("from the reference run", out)
        fib = self.judged_fiber(out)
        self.assertTrue(fib and all("against the reference run]" in l for l in fib), out)

    def set_best_speed(self, d, case, speed):
        """d's case gets a core_adds_per_ns_at_best row (bench/alloc.c): a copy of its
        core_adds_per_ns row at `speed`."""
        p = os.path.join(d, "alloc.csv")
        with open(p, newline="") as f:
            rows = [r for r in csv.DictReader(f) if not (r["case"] == case and
                                                         r["metric"] == reproduce.BEST_SPEED)]
        sp = next(r for r in rows if r["case"] == case and r["metric"] == "core_adds_per_ns")
        rows.append(dict(sp, metric=reproduce.BEST_SPEED, median="%.6g" % speed,
                         min="%.6g" % speed, max="%.6g" % speed))
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)

    def test_the_pooled_create_moves_by_its_best_repetitions_speed(self):
        # review item F4: the pooled create is judged by its best repetition, so the
        # accepted range moves by the core's speed read in that repetition (both sets'
        # core_adds_per_ns_at_best rows), not by the median over the runs. The published
        # set at 10 adds/ns throughout. (a) 1.7x slower code whose best repetition ran
        # at 10 adds/ns while the run's median core was 1.69x slower: fails (moved by
        # the median, 1.3x more room, it passed); (b) unchanged code whose best
        # repetition ran on a core 1.69x slower (its CPU time 1.69x) while the median
        # core was at 10: passes (moved by the median it failed).
        fig = next(f for f in reproduce.FIGURES if f.name == "pooled fiber create, cpu=same, ns")
        case = reproduce.sel(resultsets.load_rows(self.pub, "alloc"), **fig.num)["case"]
        add_forms(self.pub)
        self.set_best_speed(self.pub, case, 10.0)
        for name, time_k, median_speed, best_speed, want in (
                ("a", 1.7, 10.0 / 1.69, 10.0, "FAIL"), ("b", 1.69, 10.0, 10.0 / 1.69, "ok")):
            with self.subTest(case=name):
                self.bare_now()
                add_forms(self.now)

                def fn(r):
                    if r["case"] != case:
                        return
                    if r["metric"] in ("cpu_ns_per_create", "ns_per_create", "adds_per_create"):
                        scale(r, time_k)
                    elif r["metric"] == "core_adds_per_ns":
                        scale(r, median_speed / 10.0)
                edit_rows(self.now, "alloc", fn)
                self.set_best_speed(self.now, case, best_speed)
                rc, out = self.run_it("--reference", "none")
                line = next(l for l in self.judged_fiber(out) if l.startswith(fig.name + " "))
                self.assertIn("against the published set]", line)
                if want == "ok":
                    self.assertTrue(line.rstrip().endswith("| ok"), out)
                else:
                    self.assertIn("| FAIL", line, out)
        # a published set without the row (the sets before it): the medians on both
        # sides. Unchanged code on a core 1.69x slower throughout passes; taking the
        # fresh run's best-repetition speed (here 10) against the published median
        # would compare two kinds of speed and fail it.
        edit_rows(self.pub, "alloc", lambda r: r.update(metric="dropped") if (
            r["metric"] == reproduce.BEST_SPEED) else None)
        self.bare_now()
        add_forms(self.now)

        def slow(r):
            if r["case"] == case and r["metric"] in ("cpu_ns_per_create", "ns_per_create"):
                scale(r, 1.69)
            elif r["case"] == case and r["metric"] == "core_adds_per_ns":
                scale(r, 1.0 / 1.69)
        edit_rows(self.now, "alloc", slow)
        self.set_best_speed(self.now, case, 10.0)
        rc, out = self.run_it("--reference", "none")
        line = next(l for l in self.judged_fiber(out) if l.startswith(fig.name + " "))
        self.assertTrue(line.rstrip().endswith("| ok"), out)

    def test_bad_reference(self):
        with redirect_stderr(io.StringIO()):
            self.assertEqual(reproduce.main(["--fresh", self.now, "--published", self.pub,
                                             "--reference", "/nonexistent/ref"]), 2)


class QuickSeed(unittest.TestCase):
    def test_quick_runs_three_fiber_throughput_series(self):
        """The protocol's fiber throughput in a quick run is the median of 3 series, as in
        the full run (one series' last repeat is one ~2 ms sample: 324k-669k units/s over
        ten quick runs of one build); the thread models keep one series."""
        with open(os.path.join(TOP, "bench", "seed.c")) as f:
            c = f.read()
        quick = re.search(r"\} else if \(cli\.mode == BENCH_QUICK\) \{(.*?)\} else \{", c, re.S).group(1)
        self.assertRegex(quick, r"k\.series = 1;")
        self.assertRegex(quick, r"k\.fiber_series = 3;")
        self.assertIn("if (s >= (mo == M_FIBER ? k->fiber_series : k->series))", c)

def set_figure(d, fig, target):
    """Moves fig's figure in d to target by scaling its numerator row (median, min and
    max alike: a best figure's best repetition moves with it)."""
    now = fig.value(d)[0]
    k = target / now
    spec = dict(fig.num)
    cases = spec.pop("case", None)
    cases = cases if isinstance(cases, list) else [cases]
    row = reproduce.sel(resultsets.load_rows(d, fig.harness), case=cases, **spec)

    def fn(r):
        if r["case"] == row["case"] and r["metric"] == row["metric"] and r["impl"] == row["impl"] \
                and r["model"] == row["model"]:
            scale(r, k)
    edit_rows(d, fig.harness, fn)
    assert abs(fig.value(d)[0] / target - 1) < 1e-4, (fig.name, fig.value(d)[0], target)


def fig_named(name):
    return next(f for f in reproduce.FIGURES if f.name == name)


def line_of(out, fig):
    return next(l for l in out.splitlines() if l.startswith(fig.name + " "))


class SpreadTest(TwoSets):
    """The accepted range: the published min-max widened 1.1x each side, never narrower
    than the published figure within the band (1.5x fiber-side and portable, 2x ratios;
    bytes: the min-max ±10%). Every number is derived here from the published CSVs, not
    from reproduce.accepted()."""

    MARGIN, ABS, RATIO, BYTES = 1.1, 1.5, 2.0, 0.10

    def setUp(self):
        super().setUp()
        strip_forms(self.pub)  # the wall-clock figures' ranges (CoreFormTest: the others)
        strip_forms(self.now)
        mark_yield_measured(self.pub)  # every figure judged two-sided
        mark_yield_measured(self.now)
        self.judged = [f for f in reproduce.FIGURES if not f.shown_only
                       and f.value(self.pub)[0] is not None]

    def run_it(self):
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            code = reproduce.main(["--fresh", self.now, "--published", self.pub])
        return code, out.getvalue()

    def published(self, fig):
        """(figure, lo, hi) straight from the published CSV rows."""
        rows = resultsets.load_rows(self.pub, fig.harness)
        a = reproduce.sel(rows, **fig.num)
        med, lo, hi = float(a["median"]), float(a["min"]), float(a["max"])
        if fig.den is None:
            if fig.best:  # the best repetition; its range: best to median
                return (hi, med, hi) if fig.higher else (lo, lo, med)
            return med, lo, hi
        b = reproduce.sel(rows, **fig.den)
        return (med / float(b["median"]), lo / float(b["max"]), hi / float(b["min"]))

    def widened(self, fig):
        v, lo, hi = self.published(fig)
        if fig.kind == "bytes":
            return lo * (1 - self.BYTES), hi * (1 + self.BYTES)
        band = self.RATIO if fig.kind == "ratio" else self.ABS
        return min(lo / self.MARGIN, v / band), max(hi * self.MARGIN, v * band)

    def verdict_at(self, fig, value):
        for h in HARNESSES:
            shutil.copy(os.path.join(self.pub, h + ".csv"), self.now)
        set_figure(self.now, fig, value)
        code, out = self.run_it()
        return line_of(out, fig).rsplit("|", 1)[1].strip()

    def test_planted_2x_regression_on_each_judged_figure_fails(self):
        """Each fiber-side, portable and bytes figure 2x worse alone fails its own check (the
        throughput halved, a time or ratio of fiber over something doubled). A ratio of
        threads over fibers is moved 2x by a fiber side 2x slower, whose own check in the
        same harness fails; the ratio's own range, wider than 2x where the thread side
        spreads (futex/yield 135-342 published), is not what catches it."""
        for fig in self.judged:
            with self.subTest(fig=fig.name):
                v, lo, hi = self.published(fig)
                if fig.kind == "ratio":
                    for h in HARNESSES:
                        shutil.copy(os.path.join(self.pub, h + ".csv"), self.now)
                    now = os.path.join(self.tmp.name, "one")
                    shutil.rmtree(now, ignore_errors=True)
                    shutil.copytree(self.now, now)
                    plant_fiber_regression(now)
                    # memory's fiber side 2x worse: twice the bytes per fiber
                    edit_rows(now, "memory", lambda r: r["model"] == "fiber" and
                              r["metric"] == "bytes_per_unit" and scale(r, 2.0))
                    for h in HARNESSES:
                        if h != fig.harness:
                            shutil.copy(os.path.join(self.pub, h + ".csv"), now)
                    out = io.StringIO()
                    with redirect_stdout(out):
                        code = reproduce.main(["--fresh", now, "--published", self.pub])
                    self.assertEqual(code, 1, out.getvalue())
                    fails = [f for f in self.judged if f.harness == fig.harness and f.kind != "ratio"
                             and "FAIL" in line_of(out.getvalue(), f)]
                    self.assertTrue(fails, out.getvalue())
                    continue
                worse = v / 2 if fig.higher else v * 2
                self.assertRegex(self.verdict_at(fig, worse), r"^FAIL: (above|below)")

    def test_values_inside_published_min_max_pass(self):
        for fig in self.judged:
            v, lo, hi = self.published(fig)
            for x in (lo, hi, (lo + hi) / 2):
                with self.subTest(fig=fig.name, value=x):
                    self.assertEqual(self.verdict_at(fig, x), "ok")

    def test_just_outside_the_widened_range_fails(self):
        for fig in self.judged:
            lo, hi = self.widened(fig)
            with self.subTest(fig=fig.name, side="hi"):
                self.assertEqual(self.verdict_at(fig, hi * 0.995), "ok")
                self.assertRegex(self.verdict_at(fig, hi * 1.005), r"^FAIL: above")
            with self.subTest(fig=fig.name, side="lo"):
                self.assertEqual(self.verdict_at(fig, lo * 1.005), "ok")
                self.assertRegex(self.verdict_at(fig, lo * 0.995), r"^FAIL: below")

    def test_one_sided_fiber_yield_against_an_older_set(self):
        """Against a set measured before fiber_yield's direct swap, a fiber_yield figure far
        below the range passes, and one just above it still fails."""
        mark_yield_older(self.pub)
        fig = fig_named("switch fiber_yield, ns")
        lo, hi = self.widened(fig)
        self.assertRegex(self.verdict_at(fig, lo / 3), r"^ok \(one-sided")
        self.assertRegex(self.verdict_at(fig, hi * 1.005), r"^FAIL: above .*\(one-sided")

    def test_the_failures_of_the_last_ci_run(self):
        """The first attempts of the last CI run, as factors of the published figure: the
        protocol fiber throughput 0.58x and 0.64x, fiber_yield/strict 0.65x, the pooled
        create 1.57x. Each passes exactly when it lies inside the published min-max widened
        1.1x (or the old band). Intel Xeon set: throughput 645k (425k-669k) accepts
        386k-967k, so 0.64x (413k) passes and 0.58x (374k) fails; fiber_yield/strict 1.52
        (0.842-1.88) accepts 0.765-2.27 and 0.65x (0.986) passes; pooled create 9.68 (best
        9.68 to median 12.5) accepts 6.45-14.5 and 1.57x (15.2) fails. Before this check,
        0.64x and 0.65x failed (outside 1.5x)."""
        cases = [("protocol fiber throughput, units/s", 0.58), ("protocol fiber throughput, units/s", 0.64),
                 ("switch fiber_yield over strict", 0.65), ("pooled fiber create, cpu=same, ns", 1.57)]
        for name, k in cases:
            fig = fig_named(name)
            v, lo, hi = self.published(fig)
            alo, ahi = self.widened(fig)
            inside = alo <= v * k <= ahi
            with self.subTest(fig=name, factor=k, value=v * k, accepted=(alo, ahi)):
                got = self.verdict_at(fig, v * k)
                self.assertEqual(got == "ok", inside, got)
                if inside:
                    self.assertEqual(got, "ok")
        # the numbers the docstring gives, for the harnesses' runs they come from (seed at
        # 309ef91, switch at 7577b0d); a republished harness has other numbers
        src = source_set()
        if os.path.basename(src) == "intel-xeon-2vcpu-kvm":
            if machine_commit(src, "seed") == "309ef91":
                tp = fig_named("protocol fiber throughput, units/s")
                alo, _ = self.widened(tp)
                v = self.published(tp)[0]
                self.assertTrue(0.58 * v < alo < 0.64 * v, (alo, v))
            if machine_commit(src, "switch") == "7577b0d":
                ys = fig_named("switch fiber_yield over strict")
                self.assertGreater(0.65 * self.published(ys)[0], self.published(ys)[1])

    def test_output_names_each_checks_figures(self):
        fig = fig_named("protocol fiber throughput, units/s")
        v, lo, hi = self.published(fig)
        alo, ahi = self.widened(fig)
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        self.assertIn("| measured now ", out)
        self.assertIn("| published median (min-max) | accepted ", out)
        line = line_of(out, fig)
        self.assertIn(f"{reproduce.fmt(v)} ({reproduce.fmt(lo)}-{reproduce.fmt(hi)})", line)
        self.assertIn(f"{reproduce.fmt(alo)}-{reproduce.fmt(ahi)}", line)
        self.assertRegex(line, r"\((median of \d+|1 run)\)")
        self.assertRegex(line_of(out, fig_named("pooled fiber create, cpu=same, ns")), r"\(best of \d+\)")

if __name__ == "__main__":
    unittest.main()
