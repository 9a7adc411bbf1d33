#!/usr/bin/env python3
"""The mock-llm benchmark's own logic (mock-llm/bench/mockllm_bench.py), with its servers
and load client stubbed out (CTest mockllm_bench_harness): a fake machine answers each
probe from a capacity per side and a list of stalls, so only the harness's method is under
test - the knee search, the pass rule at a rate, how the two sides' searches are ordered,
what the CSV records, and the floor beside the concurrency case. No process is started;
it takes a fraction of a second.

    python3 mock-llm/tests/test_bench.py [-v] [TestClass[.test_name]]
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import types
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
import mockllm_bench as mb  # noqa: E402

mb.log = lambda msg: None  # the harness's progress lines: not under test


class FakeMachine:
    """probe() of a machine on which `impl` holds p99 <= 1 ms up to caps[impl] events/s.
    stalls: (impl, rate) pairs whose next probe fails (a host stall the guest does not see:
    no run-queue wait, no steal), each once."""

    def __init__(self, caps, stalls=()):
        self.caps = caps
        self.stalls = list(stalls)
        self.calls = []  # (impl, n, rate, warmup, window), in time order

    def probe(self, args, impl, n, rate, busy, warmup, window, extra=(), label=None):
        self.calls.append((impl, n, rate, warmup, window))
        cap = self.caps[impl]
        flat = rate == 0 or rate >= 2000000
        ok = not flat and rate <= cap
        if (impl, rate) in self.stalls:
            self.stalls.remove((impl, rate))
            ok = False
        emitted = cap * 1.2 if flat else rate
        # above its capacity a server falls behind (most events late: an overload); a
        # stall leaves most on time and fails the tail
        p50 = 100000.0 if not flat and rate > cap else 10.0
        return {"open": n, "late_p50_us": p50, "late_p99_us": 100.0 if ok else 10000.0,
                "server_events_per_s": emitted, "client_events_per_s": emitted,
                "server_cpu_pct": 100.0, "server_cpu_us_per_event": 10.0,
                "server_sys_share": 0.8, "server_runq_wait_pct": 0.0, "steal_cpu0_pct": 0.0,
                "client_busy_pct": 40.0, "client_backlog_events": 10.0,
                "client_saturated": False, "ok": ok, "offered": rate}

    def knee_calls(self, impl=None):
        return [c for c in self.calls if c[2] not in (0, 2000000)
                and (impl is None or c[0] == impl)]


def args(quick=False):
    return types.SimpleNamespace(bin="/nonexistent", quick=quick)


def rows_of(rows):
    out = {}
    for line in rows.rows:
        f = line.split(",")
        out[(f[1], f[6])] = {"median": float(f[8]), "min": float(f[9]), "max": float(f[10]),
                             "runs": int(f[11])}
    return out


class KneeSearch(unittest.TestCase):
    def test_ladder_and_bisections(self):
        """The search itself is unchanged: doublings down from the start to a pass, then
        four geometric bisections; the knee is the highest rate that passed."""
        m = FakeMachine({"floor": 73000})
        with mock.patch.object(mb, "probe", m.probe):
            k = mb.find_knee(args(), "floor", 1000, True, 200000, 4, 0.3, 0.5)
        self.assertEqual([c[2] for c in m.calls],
                         [200000, 100000, 50000, 70700, 84100, 77100, 73800])
        self.assertEqual((k[0], k[2]), (70700, 73800))


class PassRule(unittest.TestCase):
    """A stall the guest does not see (no run-queue wait, no steal) fails a probe; the
    harness's rule measures every failure once more, on both sides alike, and counts it.
    Before (the "machine" rule) only failures with run-queue wait or steal were repeated:
    one unseen stall on the ladder halved the floor's knee (the A/A test's 4x spread)."""

    def test_unseen_stall_does_not_halve_the_knee(self):
        m = FakeMachine({"floor": 100000, "mock-llm": 80000}, stalls=[("floor", 100000)])
        rows = mb.Rows()
        with mock.patch.object(mb, "probe", m.probe), \
                mock.patch.object(mb, "CAP_STREAMS", (1000,)):
            mb.capacity(args(), rows)
        r = rows_of(rows)
        knee = r[("capacity/floor/streams=1000/p99<=1ms", "max_events_per_s")]
        # the machine rule: 100k failed for good, the knee came from the bisection below
        # it (95.8k); with the repeat every run finds 100k
        self.assertEqual(knee["min"], 100000, knee)
        self.assertEqual(r[("capacity/floor/streams=1000/p99<=1ms/retries-passed",
                            "probes_count")]["max"], 1)

    def test_overload_not_repeated(self):
        """A failure with most events late (lateness p50 > 1 ms) is an overload, not a
        stall: not measured again (1 of 70 such repeats passed in the A/A windows)."""
        m = FakeMachine({"floor": 100000, "mock-llm": 80000})
        with mock.patch.object(mb, "probe", m.probe), \
                mock.patch.object(mb, "CAP_STREAMS", (1000,)):
            rows = mb.Rows()
            mb.capacity(args(), rows)
        r = rows_of(rows)
        for impl in ("floor", "mock-llm"):
            self.assertEqual(r[(f"capacity/{impl}/streams=1000/p99<=1ms/retries",
                                "probes_count")]["max"], 0)

    def test_every_repeat_recorded_run_by_run(self):
        """probes, repeats and repeats that passed, one figure per run, both sides"""
        m = FakeMachine({"floor": 100000, "mock-llm": 80000})
        rows = mb.Rows()
        with mock.patch.object(mb, "probe", m.probe), \
                mock.patch.object(mb, "CAP_STREAMS", (1000,)):
            mb.capacity(args(), rows)
        r = rows_of(rows)
        total = 0
        for impl in ("floor", "mock-llm"):
            c = f"capacity/{impl}/streams=1000/p99<=1ms"
            for suffix in ("probes", "retries", "retries-passed", "retries-machine"):
                self.assertEqual(r[(c + "/" + suffix, "probes_count")]["runs"], 3, suffix)
            p = r[(c + "/probes", "probes_count")]
            total += p["min"] + p["median"] + p["max"]  # 3 runs: the three values
        self.assertEqual(total, len(m.knee_calls()))


class Pairing(unittest.TestCase):
    """The floor's and mock-llm's searches take turns probe by probe (the side going
    first alternating), so both see the same minutes of the host's drift; before, one
    whole search ran after the other."""

    def test_searches_take_turns(self):
        m = FakeMachine({"floor": 100000, "mock-llm": 80000})
        with mock.patch.object(mb, "probe", m.probe), \
                mock.patch.object(mb, "CAP_STREAMS", (1000,)):
            mb.capacity(args(quick=True), mb.Rows())
        impls = [c[0] for c in m.knee_calls()]
        # A B B A A B ...: no side probes three times in a row while the other still
        # searches
        for i in range(len(impls) - 2):
            if impls[i] == impls[i + 1] == impls[i + 2]:
                rest = impls[i:]
                self.assertTrue(all(x == impls[i] for x in rest),
                                f"a side probed 3 times in a row with the other still "
                                f"searching: {impls}")
        self.assertNotEqual(impls[0], impls[1], impls)

    def test_probe_window(self):
        """Knee probes measure CAP_WINDOW seconds after CAP_WARMUP, both sides alike (the
        A/A test chose best of two at 0.5 s over a 1 s window: as tight, 30% cheaper)."""
        m = FakeMachine({"floor": 100000, "mock-llm": 80000})
        with mock.patch.object(mb, "probe", m.probe), \
                mock.patch.object(mb, "CAP_STREAMS", (1000,)):
            mb.capacity(args(quick=True), mb.Rows())
        self.assertEqual({(c[3], c[4]) for c in m.knee_calls()},
                         {(mb.CAP_WARMUP, mb.CAP_WINDOW)})


class FakeServer:
    started = []

    def __init__(self, kind, tps, busy):
        self.kind, self.busy = kind, busy
        self.port = 1
        self.p = types.SimpleNamespace(pid=1)
        FakeServer.started.append((kind, busy))

    def stop(self):
        pass


def fake_load(bindir, port, pid, n, warmup, window, period_ms=None, stagger_ms=0):
    kind, busy = FakeServer.started[-1]
    return {"open": n, "failed": 0, "open_s": 1.0, "server_events_per_s": n * 5.0,
            "late_p50_us": 10.0, "late_p99_us": 1e6 if n > 10000 else 1000.0,
            "late_max_us": 1e6, "late_ramp_p99_us": 1e6, "late_full_p99_us": 1e6,
            "rss_kib": 100000.0, "rss0_kib": 1000.0, "server_cpu_pct": 95.0,
            "server_cpu_us_per_event": 10.0, "server_runq_wait_pct": 0.5,
            "steal_cpu0_pct": 0.1, "req_to_first_p50_us": 100.0, "req_to_first_p99_us": 900.0,
            "phase_peak_ratio": 1.1}


class ConcurrencyFloor(unittest.TestCase):
    """Beside each mock-llm concurrency run, mllm-floor paced to the same N x 5 events/s,
    same mode, the order alternating run by run; its rows concurrency/floor[-busy-poll]/
    n=N/tps=5 (before: no floor in the concurrency case)."""

    def run_case(self, quick):
        FakeServer.started = []
        rows = mb.Rows()
        with mock.patch.object(mb, "stream_server",
                               lambda b, tps, busy=False, extra=(): FakeServer("mock-llm", tps, busy)), \
                mock.patch.object(mb, "floor_server",
                                  lambda b, tps, busy=False: FakeServer("floor", tps, busy)), \
                mock.patch.object(mb, "run_load", fake_load):
            mb.concurrency(args(quick), rows)
        return rows_of(rows), list(FakeServer.started)

    def test_floor_rows_full(self):
        r, started = self.run_case(False)
        for n in (10000, 19000):
            for mode in ("floor", "floor-busy-poll"):
                c = f"concurrency/{mode}/n={n}/tps=5"
                for metric in ("lateness_p50", "lateness_p99", "events_per_s", "cpu_percent"):
                    self.assertEqual(r[(c, metric)]["runs"], 3, (c, metric))
        self.assertEqual(r[("concurrency/floor/n=19000/tps=5", "lateness_p99")]["median"], 1e6)
        # the same mode as the mock-llm run beside it, the order alternating
        pairs = [started[i:i + 2] for i in range(0, len(started), 2)]
        for p in pairs:
            self.assertEqual(p[0][1], p[1][1], pairs)
            self.assertEqual({p[0][0], p[1][0]}, {"floor", "mock-llm"}, pairs)
        firsts = [p[0][0] for p in pairs]
        self.assertIn("floor", firsts)
        self.assertIn("mock-llm", firsts)

    def test_floor_rows_quick(self):
        r, _ = self.run_case(True)
        self.assertIn(("concurrency/floor/n=10000/tps=5", "lateness_p99"), r)
        self.assertNotIn(("concurrency/floor/n=19000/tps=5", "lateness_p99"), r)


class AbKneeFlags(unittest.TestCase):
    """ab_knee.py checks its flags before it starts a server: a bad one is a clear error
    and exit 2 (before: --streams abc and a --a without the binaries ended in a Python
    traceback, exit 1; --window 0 hung; --runs 0, --steps -1, --window nan and --aa with
    --b were taken)."""

    AB = os.path.join(HERE, "..", "bench", "ab_knee.py")

    def setUp(self):
        # a bin directory that has the three executables (never run: every case here is
        # refused before a server starts)
        self.tmp = tempfile.TemporaryDirectory(prefix="ab-knee-flags-")
        for exe in ("mock-llm", "mllm-load", "mllm-floor"):
            path = os.path.join(self.tmp.name, exe)
            with open(path, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(path, 0o755)

    def tearDown(self):
        self.tmp.cleanup()

    def run_ab(self, *flags):
        return subprocess.run([sys.executable, self.AB, *flags], capture_output=True,
                              text=True, timeout=20)

    def test_bad_flags_exit_2(self):
        b = self.tmp.name
        for flags in (["--a", b, "--aa", "--streams", "abc"],
                      ["--a", b, "--aa", "--streams", "1000,-5"],
                      ["--a", b, "--aa", "--streams", ""],
                      ["--a", b, "--aa", "--window", "0"],
                      ["--a", b, "--aa", "--window", "-1"],
                      ["--a", b, "--aa", "--window", "nan"],
                      ["--a", b, "--aa", "--warmup", "-0.1"],
                      ["--a", b, "--aa", "--runs", "0"],
                      ["--a", b, "--aa", "--steps", "-1"],
                      ["--a", b, "--b", b, "--aa"],
                      ["--a", b, "--aa", "--concurrency", "1000"],
                      ["--a", b, "--b", b, "--concurrency", "-5"],
                      ["--a", b, "--b", b, "--cpu", "1000"],
                      ["--a", b, "--b", b, "--cpu", "1000:x"],
                      ["--a", "/nonexistent", "--aa"],
                      ["--a", b, "--b", "/nonexistent"]):
            with self.subTest(flags=flags):
                r = self.run_ab(*flags)
                self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
                self.assertIn("ab_knee.py: error:", r.stderr)
                self.assertNotIn("Traceback", r.stderr)


class AbKneeFloor(unittest.TestCase):
    """ab_knee.py takes the floor from --floor-bin (default: --a), so a floor changed on a
    branch can be measured, and one floor side per --floor-pacing; a directory without
    mllm-floor, or a pacing the floor does not have, is a clear error, exit 2 (before:
    the floor always came from --a, and both flags were unknown)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ab-knee-floor-")
        self.a = os.path.join(self.tmp.name, "a")
        self.fl = os.path.join(self.tmp.name, "floor")
        for d, exes in ((self.a, ("mock-llm", "mllm-load", "mllm-floor")),
                        (self.fl, ("mllm-floor",))):
            os.makedirs(d)
            for exe in exes:
                path = os.path.join(d, exe)
                with open(path, "w") as f:
                    f.write("#!/bin/sh\nexit 1\n")
                os.chmod(path, 0o755)

    def tearDown(self):
        self.tmp.cleanup()

    def main(self, *flags):
        """ab_knee.main() with capacity() stubbed: returns (exit code, stderr, the sides
        capacity() was given or None)."""
        import ab_knee
        got, err = [], io.StringIO()
        with mock.patch.object(sys, "argv", ["ab_knee.py", *flags]), \
                mock.patch.object(ab_knee, "capacity", got.append), \
                contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                ab_knee.main()
                code = 0
            except SystemExit as e:
                code = e.code
        return code, err.getvalue(), got[0] if got else None

    def test_bad_floor_flags_exit_2(self):
        for flags, msg in ((["--floor-bin", self.tmp.name], "mllm-floor not found in"),
                           (["--floor-bin", "/nonexistent"], "mllm-floor not found in"),
                           (["--floor-pacing", "heap"], "--floor-pacing"),
                           (["--floor-pacing", "even,even"], "--floor-pacing"),
                           (["--aa", "--floor-pacing", "arrival,even"], "one --floor-pacing")):
            with self.subTest(flags=flags):
                code, err, a = self.main("--a", self.a, *flags)
                self.assertEqual(code, 2, err)
                self.assertIn(msg, err)
                self.assertIsNone(a)

    def test_floor_from_floor_bin(self):
        code, err, a = self.main("--a", self.a, "--floor-bin", self.fl,
                                 "--floor-pacing", "arrival,even")
        self.assertEqual(code, 0, err)
        self.assertEqual(a.floor_bin, self.fl)
        self.assertEqual(a.floor_pacing, ["arrival", "even"])
        code, err, a = self.main("--a", self.a)
        self.assertEqual(code, 0, err)
        self.assertEqual((a.floor_bin, a.floor_pacing), (self.a, [mb.FLOOR_PACING]))

    def test_probe_runs_that_floor(self):
        """A floor side's probe starts mllm-floor from floor_bin with its pacing, and the
        load client from --a."""
        import ab_knee
        started = []

        class Srv:
            port, p = 1, types.SimpleNamespace(pid=1)

            def stop(self):
                pass

        def server(path, argv):
            started.append((path, argv))
            return Srv()

        load = {}
        fake = {"open": 1000, "late_p99_us": 10, "late_p50_us": 5, "server_events_per_s": 1e5,
                "client_events_per_s": 1e5, "client_busy_pct": 10, "server_cpu_pct": 50,
                "server_cpu_us_per_event": 5, "server_sys_share": 0.5,
                "server_runq_wait_pct": 0}
        with mock.patch.object(mb, "Server", server), \
                mock.patch.object(mb, "run_load",
                                  lambda b, *x, **k: load.setdefault("bin", b) and dict(fake)):
            mb.probe(ab_knee.Args(self.a, self.fl, "even"), "floor", 1000, 100000, True, 0.3, 0.5)
        self.assertEqual(started[0][0], os.path.join(self.fl, "mllm-floor"))
        self.assertIn("--pacing", started[0][1])
        self.assertEqual(started[0][1][started[0][1].index("--pacing") + 1], "even")
        self.assertEqual(load["bin"], self.a)


class BenchFlags(unittest.TestCase):
    """mockllm_bench.py checks that it can write --out before it measures: a bad one is a
    clear error and exit 2 (before: a traceback from os.makedirs, exit 1; a directory it
    could not write into would have been found only after the whole run)."""

    def test_out_not_a_directory(self):
        with tempfile.TemporaryDirectory(prefix="mockllm-bench-flags-") as tmp:
            for exe in ("mock-llm", "mllm-load", "mllm-floor"):
                path = os.path.join(tmp, exe)
                with open(path, "w") as f:
                    f.write("#!/bin/sh\nexit 1\n")
                os.chmod(path, 0o755)
            afile = os.path.join(tmp, "afile")
            open(afile, "w").close()
            err = io.StringIO()
            argv = ["mockllm_bench.py", "--bin", tmp, "--out", os.path.join(afile, "out")]
            with mock.patch.object(sys, "argv", argv), \
                    mock.patch.object(mb.shutil, "which", lambda x: "/usr/bin/" + x), \
                    mock.patch.object(mb, "capacity", self.fail), \
                    mock.patch.object(mb, "concurrency", self.fail), \
                    mock.patch.object(mb, "keepalive", self.fail), \
                    contextlib.redirect_stderr(err):
                with self.assertRaises(SystemExit) as cm:
                    mb.main()
            self.assertEqual(cm.exception.code, 2, err.getvalue())
            self.assertIn("mockllm_bench.py: error: --out", err.getvalue())

if __name__ == "__main__":
    unittest.main()
