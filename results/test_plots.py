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
    for n, v in ((10000, 50000.0), (19000, 1e6)):
        f["mockllm"].append(row("mockllm", f"concurrency/fiber/n={n}/tps=5", "fiber", "mock-llm",
                                "streams", n, "lateness_p99", "us", v))
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
    f["curl"] = []
    for m, impl in (("thread", "curl-easy-thread"), ("fiber", "curl-easy-fiber-hook"),
                    ("curl-multi", "curl-multi-epoll")):
        for n in (100, 1000, 6000):
            case = f"curl/{impl}/gpt4o-5tps-prompt4k/n={n}"
            f["curl"] += [row("curl", case, m, impl, "n", n, "bytes_per_unit", "bytes", 40000.0),
                          row("curl", case, m, impl, "n", n, "cpu_per_1k_tokens_ms", "ms", 30.0),
                          row("curl", case, m, impl, "n", n, "ttft_p99_ms", "ms", 900.0)]
    f["curl"].append(row("curl", "curl/curl-easy-fiber-hook/gpt4o-5tps-prompt4k/n=10000/limit=EMFILE",
                         "fiber", "curl-easy-fiber-hook", "n", 10000, "limit_units", "count",
                         6664.0, 1))
    f["ruby"] = []
    for impl, m, b in (("ruby-thread", "ruby-thread", 80000.0), ("ruby-async", "ruby-fiber", 55000.0),
                       ("c-thread", "thread", 50000.0), ("c-fiber", "fiber", 6000.0)):
        for n in (100, 1000, 10000):
            f["ruby"].append(row("ruby", f"llm/{impl}/gpt4o-5tps/n={n}", m, impl, "n", n,
                                 "bytes_per_unit", "bytes", b))
        f["ruby"].append(row("ruby", f"llm/{impl}/fixed-50tps/n=100/marginal-16-64-tokens", m,
                             impl, "n", 100, "cpu_per_1k_tokens_marginal_ms", "ms", b / 1000))
        f["ruby"].append(row("ruby", f"starve/{impl}/fixed-x0.25/n=1000", m, impl, "n", 1000,
                             "ttft_rest_p99_ms", "ms", b / 10))
    for impl, m, done in (("puma-5", "ruby-thread", 15.0), ("async-http-server", "ruby-fiber", 1000.0),
                          ("c-fiber", "fiber", 1000.0)):
        for n in (100, 1000):
            c = f"relay/{impl}/gpt4o-5tps/n={n}"
            f["ruby"] += [row("ruby", c, m, impl, "n", n, "completed_count", "count", min(done, n)),
                          row("ruby", c, m, impl, "n", n, "ttft_p50_ms", "ms", 500.0),
                          row("ruby", c, m, impl, "n", n, "cpu_per_1k_tokens_ms", "ms", 1.5)]
    f["peers"] = []
    for impl, m, i, b, c in (("py-thread", "python-thread", "python-3.11.2/http.client", 50000.0, 300.0),
                             ("py-asyncio", "python-asyncio", "python-3.11.2/asyncio-streams", 10000.0, 60.0),
                             ("go-goroutine", "go-goroutine", "go-1.19.8/net-http", 40000.0, 50.0),
                             ("node-openai", "node-event-loop", "node-20.20.2/openai-4.104.0", 45000.0, 150.0),
                             ("c-thread", "thread", "c/wl-llm", 50000.0, 35.0),
                             ("c-fiber", "fiber", "c/wl-llm", 5000.0, 13.0)):
        case = f"llm/{impl}/gpt4o-5tps/n=10000"
        f["peers"] += [row("peers", case, m, i, "n", 10000, "bytes_per_unit", "bytes", b),
                       row("peers", case, m, i, "n", 10000, "cpu_per_1k_tokens_ms", "ms", c),
                       row("peers", case, m, i, "n", 10000, "ttft_p50_ms", "ms", c * 20),
                       row("peers", case, m, i, "n", 10000, "ttft_p99_ms", "ms", c * 40),
                       row("peers", case, m, i, "n", 10000, "completed_count", "count",
                           4800.0 if impl == "py-thread" else 10000.0),
                       row("peers", f"llm/{impl}/fixed-50tps/n=100/marginal-16-64-tokens", m, i,
                           "n", 100, "cpu_per_1k_tokens_marginal_ms", "ms", c / 10)]
    for m, i, a, s, t in (("python-thread", "python-3.11.2/cpu=same", 300.0, 43.0, 550.0),
                          ("python-asyncio", "python-3.11.2/cpu=same", 8.6, 2.1, 3300.0),
                          ("go-locked-thread", "go-1.19.8/cpu=same", 330.0, 12.7, 840.0),
                          ("go-goroutine", "go-1.19.8/cpu=same", 4.0, 0.067, 78000.0)):
        f["peers"] += [row("peers", f"seed/{m}/{i}/alloc/n=10000/m=2", m, i, "", "", "us_per_unit", "us", a),
                       row("peers", f"seed/{m}/{i}/switch/n=2/m=10000", m, i, "", "", "us_per_switch", "us", s),
                       row("peers", f"seed/{m}/{i}/throughput/n=1000/m=100", m, i, "", "", "units_per_s",
                           "units/s", t)]
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

    def test_seed_verdicts_three_states(self):
        # Fixture: fibers 5 us per unit; baton threads 130 (26x), sched_yield 60 (12x).
        def verdict(metric):
            r = subprocess.run([sys.executable, os.path.join(TOP, "plots", "lib", "verdict.py"),
                                self.dir, metric], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.strip()
        self.assertEqual(verdict("us_per_unit"),
                         ">= 20x: in C holds only against baton; Ruby here: does not hold")
        self.assertEqual(verdict("us_per_switch"),
                         ">= 10x: in C holds against every C thread model; Ruby here: holds")
        # pairs.awk: one C group per thread model, none picked for the others.
        r = subprocess.run("awk -f plots/lib/select.awk -v where='metric=us_per_unit' "
                           f"{self.dir}/seed.csv | awk -F, -v hib=0 -f plots/lib/pairs.awk",
                           shell=True, cwd=TOP, capture_output=True, text=True)
        self.assertEqual(r.stdout.splitlines()[-2:], ["C: baton,130,5", "C: sched_yield@1cpu,60,5"])

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


class NotesTest(unittest.TestCase):
    """plots/lib/notes.awk: the labels the figures print beside points and bars."""

    def notes(self, rows, where, *flags):
        with tempfile.TemporaryDirectory() as d:
            csv = os.path.join(d, "h.csv")
            with open(csv, "w") as f:
                f.write(HEADER + "\n".join(rows) + "\n")
            lib = os.path.join(TOP, "plots", "lib")
            sel = subprocess.run(["awk", "-f", os.path.join(lib, "select.awk"), "-v", "where=" + where, csv],
                                 capture_output=True, text=True, check=True).stdout
            args = ["awk", "-F,", "-v", "OFS=,"]
            for fl in flags:
                args += ["-v", fl]
            r = subprocess.run(args + ["-f", os.path.join(lib, "notes.awk"), csv, "-"], input=sel,
                               capture_output=True, text=True, check=True)
            return {ln.split(",")[1]: ln.split(",")[16] if ln.count(",") >= 16 else ""
                    for ln in r.stdout.splitlines()}

    def test_probe_and_partial_counts(self):
        rows = [row("llm", "llm/thread/p/n=20000", "thread", "thread", "n", 20000, "ttft_p99_ms", "ms", 4800, 1),
                row("llm", "llm/thread/p/n=20000", "thread", "thread", "n", 20000, "live_units", "count", 10899, 1),
                row("llm", "llm/fiber/p/n=20000", "fiber", "fiber", "n", 20000, "ttft_p99_ms", "ms", 9000, 1),
                row("llm", "llm/fiber/p/n=20000", "fiber", "fiber", "n", 20000, "live_units", "count", 20000, 1),
                # a 3-run row with few alive (short conversations): noted only with all=1
                row("llm", "llm/thread/q/n=1000", "thread", "thread", "n", 1000, "ttft_p99_ms", "ms", 160),
                row("llm", "llm/thread/q/n=1000", "thread", "thread", "n", 1000, "live_units", "count", 91),
                row("llm", "llm/c/p/n=10000", "thread", "c", "n", 10000, "ttft_p99_ms", "ms", 3500, 1),
                row("llm", "llm/c/p/n=10000", "thread", "c", "n", 10000, "completed_count", "count", 6750, 1)]
        n = self.notes(rows, "metric=ttft_p99_ms")
        self.assertEqual(n, {"llm/thread/p/n=20000": "10899/20000 alive", "llm/c/p/n=10000": "6750/10000 done"})
        n = self.notes(rows, "metric=ttft_p99_ms", "all=1")
        self.assertEqual(n["llm/fiber/p/n=20000"], "-")
        self.assertEqual(n["llm/thread/q/n=1000"], "91/1000 alive at peak")

    def test_generator_bound_in_any_run_and_unserved(self):
        rows = [row("t", "http/a/c=100", "thread", "thread", "c", 100, "p99_ms", "ms", 10),
                "t,http/a/c=100,thread,thread,c,100,generator_bound_count,count,0,0,1,3",
                row("t", "http/b/c=100", "fiber", "fiber", "c", 100, "p99_ms", "ms", 4),
                "t,http/b/c=100,fiber,fiber,c,100,generator_bound_count,count,0,0,0,3",
                row("t", "http/pool/c=100", "thread", "pool", "c", 100, "p99_ms", "ms", 1.8),
                row("t", "http/pool/c=100", "thread", "pool", "c", 100, "unserved_conns_count", "count", 75)]
        self.assertEqual(set(self.notes(rows, "metric=p99_ms", "gen=1")), {"http/a/c=100"})
        self.assertEqual(self.notes(rows, "metric=p99_ms"), {"http/pool/c=100": "75 unserved"})


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
