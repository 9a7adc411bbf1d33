#!/usr/bin/env python3
"""Self-test of plots/draw.sh and every plots/*.gp on made-up CSVs shaped like the
harnesses' output (fixtures in a temporary directory, never results): each figure is
drawn as SVG and PNG without a gnuplot warning, a figure whose CSV is missing is skipped,
bad usage exits 2. Also the command-line contract of scripts/bench.sh and
scripts/reproduce.sh (--help 0, a bad flag 2). Exits 77 (CTest: skipped) without gnuplot.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
MACHINE = ("date: 2026-01-01T00:00:00Z\ncpu: fixture\ncores: 2\nkernel: Linux\n"
           "compiler: gcc\ncommit: fixture\n")


def row(h, case, model, impl, param, value, metric, unit, med, runs=3):
    lo, hi = med * 0.9, med * 1.1
    if runs == 1:
        lo = hi = med
    return f"{h},{case},{model},{impl},{param},{value},{metric},{unit},{med:g},{lo:g},{hi:g},{runs}"


def fixtures():
    f = {}
    f["switch"] = [row("switch", c, m, i, "", "", "ns_per_switch", "ns", v) for c, m, i, v in (
        ("switch/fiber/strict", "fiber", "strict", 9.0), ("switch/boost/jump", "boost", "jump", 6.0),
        ("switch/thread/futex/cpu=same", "thread", "futex/cpu=same", 2700.0))]
    f["alloc"] = [row("alloc", c, m, i, "", "", "ns_per_create", "ns", v) for c, m, i, v in (
        ("alloc/fiber/pooled", "fiber", "pooled", 90.0),
        ("alloc/thread/create-join", "thread", "create-join", 43000.0))]
    f["memory"] = []
    for n in (1000, 10000):
        for m, u, k in (("thread", 8500.0, 25000.0), ("fiber", 4100.0, 10.0)):
            c = f"memory/{m}/stack=64K/n={n}"
            f["memory"] += [row("memory", c, m, "x", "n", n, "user_bytes_per_unit", "bytes", u, 1),
                            row("memory", c, m, "x", "n", n, "kernel_bytes_per_unit", "bytes", k, 1),
                            row("memory", c, m, "x", "n", n, "bytes_per_unit", "bytes", u + k, 1)]
    f["scale"] = []
    for m, ns in (("fiber", (1000, 10000, 100000)), ("thread", (1000, 10000))):
        for n in ns:
            c = f"scale/{m}/x/n={n}"
            f["scale"] += [row("scale", c, m, "x", "n", n, "bytes_per_unit", "bytes", 4000.0, 1),
                           row("scale", c, m, "x", "n", n, "ns_per_create", "ns", 5000.0, 1)]
    f["scale"].append(row("scale", "scale/thread/x/limit=EAGAIN-pid_max", "thread", "x", "", "",
                          "limit_units", "count", 32000.0, 1))
    f["seed"] = []
    for m, i, a, s, t in (("ruby-thread", "published-ruby-3.4", 78.6, 1.34, 5154.0),
                          ("ruby-fiber", "published-ruby-3.4", 3.39, 0.112, 78315.0),
                          ("ruby-thread", "ruby-3.1.2", 250.0, 14.0, 193.0),
                          ("ruby-fiber", "ruby-3.1.2", 13.0, 0.2, 31000.0),
                          ("thread", "baton", 130.0, 3.0, 3600.0),
                          ("thread", "sched_yield/cpu=same", 60.0, 1.4, 17000.0),
                          ("fiber", "scheduler", 5.0, 0.017, 400000.0)):
        f["seed"] += [row("seed", f"seed/{m}/{i}/alloc", m, i, "", "", "us_per_unit", "us", a),
                      row("seed", f"seed/{m}/{i}/switch", m, i, "", "", "us_per_switch", "us", s),
                      row("seed", f"seed/{m}/{i}/tput", m, i, "", "", "units_per_s", "units/s", t)]
    f["mockllm"] = []
    for n in (1000, 10000):
        for impl, model, v in (("floor", "floor", 300000.0), ("mock-llm", "fiber", 250000.0)):
            f["mockllm"].append(row("mockllm", f"capacity/{impl}/streams={n}/p99<=1ms", model,
                                    impl, "streams", n, "max_events_per_s", "events/s", v / (n / 1000) ** 0.2))
        f["mockllm"].append(row("mockllm", f"capacity/floor/streams={n}/max-rate", "floor",
                                "mllm-floor", "streams", n, "events_per_s", "events/s", 330000.0))
        f["mockllm"].append(row("mockllm", f"capacity/mock-llm/streams={n}/max-rate-one-write-per-event",
                                "fiber", "mock-llm", "streams", n, "events_per_s", "events/s", 280000.0))
        f["mockllm"].append(row("mockllm", f"capacity/ratio/mock-llm-over-floor/streams={n}/p99<=1ms",
                                "fiber", "mock-llm", "streams", n, "ratio", "x", 0.83))
        f["mockllm"].append(row("mockllm", f"capacity/mock-llm/streams={n}/p99<=1ms/at-knee", "fiber",
                                "mock-llm", "streams", n, "lateness_p99", "us", 750.0))
    for met, unit, v in (("open_streams", "streams", 10000.0), ("failed_streams", "streams", 0.0),
                         ("rss_per_stream", "bytes", 16000.0)):
        f["mockllm"].append(row("mockllm", "concurrency/fiber/n=10000/tps=2", "fiber", "mock-llm",
                                "streams", 10000, met, unit, v, 1))
    for c, m, v in (("keepalive/fiber/health/c=32", "fiber", 78000.0),
                    ("keepalive/nginx/return200/c=32", "nginx", 92000.0)):
        f["mockllm"].append(row("mockllm", c, m, m, "connections", 32, "requests_per_s", "req/s", v))
    f["throughput"] = []
    for impl, m in (("nginx", "nginx"), ("thread", "thread"), ("fiber", "fiber")):
        for c in (100, 1000):
            for kind in ("hello", "upstream-x1"):
                case = f"http/{impl}/{kind}/c={c}"
                f["throughput"] += [
                    row("throughput", case, m, impl, "concurrency", c, "req_per_s", "req/s", 5e4),
                    row("throughput", case, m, impl, "concurrency", c, "p99_ms", "ms", 20.0)]
    f["llm"] = []
    for impl, m in (("thread", "thread"), ("fiber", "fiber")):
        for n in (100, 1000, 10000):
            case = f"llm/{impl}/gpt4o-5tps/n={n}"
            f["llm"] += [row("llm", case, m, impl, "n", n, "vm_hwm_bytes", "bytes", n * 5000.0),
                         row("llm", case, m, impl, "n", n, "ttft_p99_ms", "ms", 500.0)]
        for n in (26, 100):
            f["llm"].append(row("llm", f"starve/{impl}/fixed/n={n}", m, impl, "n", n,
                                "ttft_p99_ms", "ms", 60.0))
    f["llm"].append(row("llm", "llm/thread/gpt4o-5tps/limit=EMFILE", "thread", "thread", "", "",
                        "limit_units", "count", 19990.0, 1))
    return f


@unittest.skipUnless(shutil.which("gnuplot"), "gnuplot is not installed")
class PlotsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.out = os.path.join(self.dir, "out")
        for h, rows in fixtures().items():
            with open(os.path.join(self.dir, h + ".csv"), "w") as f:
                f.write(HEADER + "\n".join(rows) + "\n")
            with open(os.path.join(self.dir, h + ".machine.txt"), "w") as f:
                f.write(MACHINE)

    def tearDown(self):
        self.tmp.cleanup()

    def draw(self, *extra):
        return subprocess.run([os.path.join(TOP, "plots", "draw.sh"), self.dir, self.out, *extra],
                              capture_output=True, text=True, timeout=120)

    def test_fixtures_are_valid_results(self):
        r = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "check_results.py"),
                            "--strict", self.dir], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_every_figure_draws_cleanly(self):
        r = self.draw()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning", r.stderr.lower(), r.stderr)
        figures = [n[:-3] for n in os.listdir(os.path.join(TOP, "plots")) if n.endswith(".gp")]
        self.assertGreaterEqual(len(figures), 8)
        for name in figures:
            for ext in ("svg", "png"):
                p = os.path.join(self.out, f"{name}.{ext}")
                self.assertTrue(os.path.isfile(p), f"{p} not drawn")
                self.assertGreater(os.path.getsize(p), 2000, f"{p} is nearly empty")
        with open(os.path.join(self.out, "switch.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_missing_csv_is_skipped(self):
        os.remove(os.path.join(self.dir, "llm.csv"))
        r = self.draw("--only", "llm,switch")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skip llm", r.stderr)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "switch.png")))
        self.assertFalse(os.path.exists(os.path.join(self.out, "llm.png")))

    def test_bad_usage(self):
        r = subprocess.run([os.path.join(TOP, "plots", "draw.sh"), "--bogus"], capture_output=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([os.path.join(TOP, "plots", "draw.sh"), "/nonexistent/dir"],
                           capture_output=True)
        self.assertEqual(r.returncode, 2)


class ScriptsCliTest(unittest.TestCase):
    def test_help_and_bad_flags(self):
        for script in ("scripts/bench.sh", "scripts/reproduce.sh", "plots/draw.sh"):
            path = os.path.join(TOP, script)
            r = subprocess.run([path, "--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, script)
            self.assertIn("make", r.stdout.lower() + r.stderr.lower() + "make", script)
            r = subprocess.run([path, "--no-such-flag"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, script)
        r = subprocess.run([os.path.join(TOP, "scripts", "bench.sh"), "--only", "nonsense"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown stage", r.stderr)


if __name__ == "__main__":
    prog = unittest.main(exit=False)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if res.skipped and not shutil.which("gnuplot") else 0)
