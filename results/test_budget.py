#!/usr/bin/env python3
"""make bench's time budget (scripts/bench.sh), what its cuts keep (CTest results_budget):

- peers/bench.py: the README's 10,000-conversation table and the marginal column are 3
  interleaved rounds of every runtime, C threads and fibers a same-run anchor in the
  first; 1,000 streams (read by no README section or figure) is one round, run after the
  last headline round, so that a budget spent on a busy machine cuts it, not the
  headline; N = 100 is gone; --runs N gives every step N rounds.
- peers/ruby/bench.py: the C clients and relays (the floor beside Ruby, 3 rounds in
  peers/bench.py) are a same-run anchor in the first round only; every Ruby model keeps
  3 rounds; quick runs starvation and the relay at 100 users.
- workloads/bench/run.py: the stage order puts the headline (llm's idle streams, then
  starvation) before the one-run points (arrive, the limit probe) and TLS.
- peers/ruby/bench.py: a relay server is killed at once after its run is measured (Puma's
  graceful stop measures nothing).
- scripts/bench.sh: its budget table is README "Time budget"'s, every stage timeout is
  above its budget, it builds only the benchmarks' targets, and the stage targets it
  runs skip the dependency check and the build it has already done (BENCH_PREPARED=1)
  while every target they would build is in its list.

- this pass (README "Time budget"): quick's gpt-4o --tps 5 client runs ask mock-llm for
  no stalls (NoStalls); quick runs fewer sizes (QuickSizes); each budget row is its stage's priced time with ~15%, and
  the priced full time of ruby, peers and workloads' streams is what their plans run at
  the costed plan's per-run prices (StageRows).

Every harness runs with its processes stubbed out (a fake clock, no mock-llm, no client):
only its plan and its order are under test, in a fraction of a second.
"""
import argparse
import importlib.util
import os
import re
import sys
import types
import unittest
from unittest import mock

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOP, path))
    m = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.join(TOP, path)))
    spec.loader.exec_module(m)
    return m


def args(**kw):
    a = dict(quick=False, smoke=False, runs=0, bin="/nonexistent", out="/nonexistent")
    a.update(kw)
    return argparse.Namespace(**a)


class Clock:
    """time.monotonic for a harness: every client run advances it by `step` seconds."""

    def __init__(self, step=10.0):
        self.t, self.step = 1000.0, step

    def monotonic(self):
        return self.t

    def run(self):
        self.t += self.step


def fake_json():
    return {"failed": 0, "causes": {}, "tokens": 8, "cpu_s": 0.1, "cpu_s_per_1k_tokens": 0.01,
            "rss_peak_kib": 100, "ok": 1}


class Peers(unittest.TestCase):
    def run_plan(self, a, budget=1e9):
        pb = load("peers/bench.py", "peers_bench_under_test")
        clock = Clock()
        calls = []

        def run_client(argv, *rest, **kw):
            calls.append(kw["extra_raw"]["impl"] + " " + argv[argv.index("--n") + 1])
            clock.run()
            return fake_json()
        fake_mock = types.SimpleNamespace(port=1, stop=lambda: None,
                                          proc=types.SimpleNamespace(pid=None))
        with mock.patch.object(pb.peerlib, "mock", lambda *x: fake_mock), \
                mock.patch.object(pb.peerlib, "run_client", run_client), \
                mock.patch.object(pb.peerlib, "record_client", lambda *x: None), \
                mock.patch.object(pb, "time", types.SimpleNamespace(monotonic=clock.monotonic)), \
                mock.patch.object(pb, "log", lambda m: None):
            tab = types.SimpleNamespace(add=lambda *x: None)
            done = pb.bench_llm(a, tab, clock.t + budget, list(pb.CLIENTS))
        return pb, calls, done

    def test_headline_three_rounds_secondary_one_round_last(self):
        pb, calls, done = self.run_plan(args())
        self.assertTrue(done)
        for impl in pb.CORE:
            rounds = 1 if impl.startswith("c-") else 3  # C: a same-run anchor, round 1
            self.assertEqual(calls.count(f"{impl} 10000"), rounds, impl)
            self.assertEqual(calls.count(f"{impl} 1000"), 1, impl)  # one round: runs=1
            self.assertEqual(calls.count(f"{impl} 100"), 2 * rounds, impl)  # marginal: 2 lengths
        # the C anchor runs in the first round, beside the runtimes it anchors
        self.assertLess(calls.index("c-fiber 10000"), calls.index("py-thread 100"))
        self.assertEqual(calls.count("py-httpx 1000"), 1)
        # httpx at 10,000 (a recorded failure, finding 4): one round, in the tail
        self.assertEqual(calls.count("py-httpx 10000"), 1)
        # the one-round steps come after every headline round
        tail = [i for i, c in enumerate(calls) if c.endswith(" 1000") or c == "py-httpx 10000"]
        last_head = max(i for i in range(len(calls)) if i not in tail)
        self.assertGreater(min(tail), last_head)

    def test_marginal_only(self):
        # --only marginal: the paced marginal alone (N = 100, both lengths)
        pb, calls, _ = self.run_plan(args(marginal_only=True))
        self.assertTrue(calls)
        self.assertEqual({c.split()[1] for c in calls}, {"100"})
        self.assertEqual(pb.MARGINAL[0], "fixed-50tps")

    def test_spent_budget_cuts_the_secondary_round_first(self):
        # enough for exactly the three headline rounds: 6 + 16 runs in the first (C
        # included), 4 + 12 in each of the two others
        pb, calls, done = self.run_plan(args(), budget=(22 + 2 * 16) * 10.0 - 1)
        self.assertFalse(done)
        self.assertFalse([c for c in calls if c.endswith(" 1000")])
        for impl in pb.CORE:
            self.assertEqual(calls.count(f"{impl} 10000"), 1 if impl.startswith("c-") else 3)

    def test_runs_flag_gives_every_step_its_rounds(self):
        pb, calls, _ = self.run_plan(args(runs=2))
        for impl in pb.CORE:
            self.assertEqual(calls.count(f"{impl} 1000"), 2, impl)
            self.assertEqual(calls.count(f"{impl} 10000"), 2, impl)


class Ruby(unittest.TestCase):
    def plan(self, a):
        rb = load("peers/ruby/bench.py", "ruby_bench_under_test")
        clock = Clock()
        calls = []

        def run_client(a_, impl, port, n, tokens, timeout_s, per_conv=None, mock_pid=None):
            calls.append(f"{impl} {n}" + ("" if tokens == 8 else f" t{tokens}"))
            clock.run()
            return fake_json()
        fake_mock = types.SimpleNamespace(port=1, stop=lambda: None,
                                          proc=types.SimpleNamespace(pid=None))
        with mock.patch.object(rb, "mock", lambda *x: fake_mock), \
                mock.patch.object(rb, "run_client", run_client), \
                mock.patch.object(rb, "record_client", lambda *x: None), \
                mock.patch.object(rb, "ratios", lambda *x: None), \
                mock.patch.object(rb, "marginal", lambda *x: None), \
                mock.patch.object(rb, "time", types.SimpleNamespace(monotonic=clock.monotonic)), \
                mock.patch.object(rb, "log", lambda m: None):
            rb.bench_llm(a, types.SimpleNamespace(add=lambda *x: None), clock.t + 1e9)
        return rb, calls

    def test_c_is_a_one_round_anchor_ruby_keeps_three(self):
        rb, calls = self.plan(args())
        for n in (100, 1000, 10000):
            for impl in ("ruby-thread", "ruby-async"):
                self.assertEqual(calls.count(f"{impl} {n}"), 3, (impl, n))
        self.assertEqual(calls.count("c-fiber 10000"), 1)
        self.assertEqual(calls.count("c-thread 10000"), 1)
        # the anchor runs in the first round, beside the Ruby models it anchors
        self.assertLess(calls.index("c-fiber 10000"), calls.index("ruby-thread 1000"))
        # per-token cost, paced: every Ruby model 3 rounds at both lengths, C one round
        for t in (16, 64):
            self.assertEqual(calls.count(f"ruby-async-http 100 t{t}"), 3)
            self.assertEqual(calls.count(f"c-fiber 100 t{t}"), 1)

    def test_quick_plans(self):
        rb = load("peers/ruby/bench.py", "ruby_bench_plans")
        _, _, ns, runs, _, impls = rb.relay_plan(args(quick=True))
        self.assertEqual((ns, runs), ([100], 1))
        _, _, ns, runs, _, impls = rb.relay_plan(args())
        self.assertEqual((ns, runs), ([100, 1000], 3))
        self.assertIn("c-thread", impls)

    def test_relay_server_killed_after_its_measured_run(self):
        rb = load("peers/ruby/bench.py", "ruby_bench_relay")
        stops = []

        class FakeRuby(rb.RubyServer):
            def __init__(self, impl):
                self.impl = impl

            def stop(self, graceful=True):
                stops.append((self.impl, graceful))

        fake_c = types.SimpleNamespace(stop=lambda: stops.append(("c", None)))
        fake_mock = types.SimpleNamespace(port=1, stop=lambda: None)
        with mock.patch.object(rb, "mock", lambda *x: fake_mock), \
                mock.patch.object(rb, "start_relay",
                                  lambda a, impl, port, tmp: FakeRuby(impl)
                                  if not impl.startswith("c-") else fake_c), \
                mock.patch.object(rb, "relay_once", lambda *x: None), \
                mock.patch.object(rb, "log", lambda m: None):
            rb.bench_relay(args(quick=True), None, 1e18)
        self.assertIn(("puma-5", False), stops)
        self.assertIn(("async-http-server", False), stops)
        self.assertIn(("c", None), stops)
        self.assertFalse([s for s in stops if s[1] is True])


class RubyStarve(unittest.TestCase):
    def test_quick_has_the_pool_at_1000(self):
        """make bench-ruby QUICK=1 writes the 25-thread pool's rows at N >= 1,000 (issue 13's
        'done when'; failed before: quick stopped at 100 users)."""
        rb = load("peers/ruby/bench.py", "ruby_bench_starve")
        for quick in (True, False):
            a = types.SimpleNamespace(quick=quick, smoke=False, runs=0)
            big = [ms for n, _, ms in rb.starve_plan(a) if n >= 1000]
            self.assertTrue(any("ruby-pool25" in ms and "ruby-async" in ms for ms in big), (quick, big))


class Workloads(unittest.TestCase):
    def test_headline_stages_before_one_run_points(self):
        with open(os.path.join(TOP, "workloads", "bench", "run.py")) as f:
            src = f.read()
        m = re.search(r"for s, fn in \((.*?)\):", src, re.S)
        self.assertIsNotNone(m)
        order = re.findall(r'\("(\w+)", (\w+)\)', m.group(1))
        fns = [fn for _, fn in order]
        self.assertLess(fns.index("bench_starve"), fns.index("bench_llm_secondary"))
        self.assertLess(fns.index("bench_llm"), fns.index("bench_starve"))
        self.assertEqual(fns[-1], "bench_tls")


class QuickSizes(unittest.TestCase):
    """Quick measures the same quantities as full at fewer sizes (README "Time budget",
    lever 4): the headline sizes stay in full, with their 3 rounds."""

    def test_workloads_streams(self):
        wl = load("workloads/bench/run.py", "wl_run_sizes")
        self.assertEqual([(n, r) for n, _, _, r, _ in wl.streams_plan(args(quick=True))], [(1000, 1)])
        self.assertEqual([(n, r) for n, _, _, r, _ in wl.streams_plan(args())], [(1000, 3), (10000, 3)])

    def test_workloads_tls_and_curl(self):
        with open(os.path.join(TOP, "workloads", "bench", "run.py")) as f:
            src = f.read()
        self.assertIn("n = 100 if a.quick else 10000", src)  # TLS
        self.assertIn("steps = ([(label, 100, a.runs or 1, [])]\n                 if a.quick else", src)
        # the headline (1,000 at once) 3 rounds; 10,000 arriving one run, after it
        self.assertIn("[(label, 1000, runs, []),\n                  (label + \"-arrive10s\", 10000, a.runs or 1,", src)

    def test_workloads_http_and_mockllm_capacity(self):
        with open(os.path.join(TOP, "workloads", "bench", "run.py")) as f:
            self.assertIn("conc = [100] if a.quick else [100, 1000, 10000]", f.read())
        with open(os.path.join(TOP, "mock-llm", "bench", "mockllm_bench.py")) as f:
            src = f.read()
        self.assertIn("sizes = CAP_STREAMS[:1] if args.quick else CAP_STREAMS", src)
        self.assertIn("CAP_STREAMS = (1000, 10000)", src)


class NoStalls(unittest.TestCase):
    """make bench QUICK=1's gpt-4o --tps 5 client runs ask mock-llm for no stalls
    (--stall-rate 0: a run ends with its slowest first token, not a multi-second stall);
    full runs keep them (the quiet A/B found C threads' CPU per 1,000 tokens 20% lower
    without: README "Time budget"), unless FIBERBENCH_STALLS=0; the Ruby relays keep them
    always."""

    def modes(self):
        return {"quick": args(quick=True), "full": args()}

    def test_workloads(self):
        wl = load("workloads/bench/run.py", "wl_run_stalls")
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("FIBERBENCH_STALLS", None)
            self.assertEqual(wl.no_stalls(args(quick=True)), ["--stall-rate", "0"])
            self.assertEqual(wl.no_stalls(args()), [])
        with mock.patch.dict(os.environ, {"FIBERBENCH_STALLS": "0"}):
            self.assertEqual(wl.no_stalls(args()), ["--stall-rate", "0"])
        with mock.patch.dict(os.environ, {"FIBERBENCH_STALLS": "1"}):
            self.assertEqual(wl.no_stalls(args(quick=True)), [])
        with open(os.path.join(TOP, "workloads", "bench", "run.py")) as f:
            src = f.read()
        uses = re.findall(r'"gpt-4o", "--tps", "5"\]([^\n]*)', src)
        self.assertEqual(len(uses), 4, uses)  # STREAMS_MOCK (streams, arrive), limit, curl, TLS
        for rest in uses:
            self.assertTrue(rest == "" or rest.startswith(" + no_stalls(a)"), rest)
        self.assertEqual(src.count("STREAMS_MOCK + no_stalls(a)"), 2)
        self.assertEqual(src.count("STREAMS_MOCK"), 3)

    def test_peers_and_ruby(self):
        os.environ.pop("FIBERBENCH_STALLS", None)
        rb = load("peers/ruby/bench.py", "ruby_bench_stalls")
        pb = load("peers/bench.py", "peers_bench_stalls")
        for mode, a in self.modes().items():
            want = ["--stall-rate", "0"] if mode == "quick" else []
            gpt = [st for st in rb.client_plan(a) if st[0] == "gpt4o-5tps"][0]
            self.assertEqual(gpt[1][4:], want, mode)
            gpt = [st for st in pb.client_plan(a) if st[0] == "gpt4o-5tps"][0]
            self.assertEqual(gpt[1][4:], want, mode)
            self.assertNotIn("--stall-rate", rb.relay_plan(a)[0])


class BenchSh(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(TOP, "scripts", "bench.sh")) as f:
            self.src = f.read()

    def table(self, mode):
        m = re.search(r"declare -A budget_%s=\(([^)]*)\)" % mode, self.src)
        return {k: int(v) for k, v in re.findall(r"\[(\w+)\]=(\d+)", m.group(1))}

    def test_readme_table_is_the_scripts(self):
        """README "Time budget" shows bench.sh's table, row by row, and its total."""
        with open(os.path.join(TOP, "README.md")) as f:
            readme = f.read()
        sec = readme[readme.index("### Time budget"):]
        rows = dict((m.group(1), (int(m.group(2)), int(m.group(3))))
                    for m in re.finditer(r"^\| \**(\w+)\** \| \**(\d+)\** \| \**(\d+)\** \|",
                                         sec, re.M))
        over = {k: int(v) for k, v in re.findall(r"^overhead_(quick|full)=(\d+)", self.src, re.M)}
        self.assertEqual(rows.pop("overhead"), (over["quick"], over["full"]))
        total = rows.pop("total")
        q, f = self.table("quick"), self.table("full")
        self.assertEqual(set(q), {"micro", "mockllm", "workloads", "ruby", "peers"})
        self.assertEqual(rows, {k: (q[k], f[k]) for k in q})
        self.assertEqual(total, (sum(q.values()) + over["quick"], sum(f.values()) + over["full"]))

    def test_timeouts_above_budgets(self):
        # the net under a harness must not stop one that is within its budget
        m = re.search(r"limit=\$\(\((.*?)\)\)", self.src)
        self.assertIsNotNone(m)
        expr = m.group(1)
        for mode in ("quick", "full"):
            for s, b in self.table(mode).items():
                limit = eval(expr.replace("limit", str(b)))  # noqa: S307 (our own arithmetic)
                self.assertGreaterEqual(limit, 2 * b, (mode, s))

    def test_builds_only_the_benchmarks(self):
        m = re.search(r"bench_targets=\(([^)]*)\)", self.src)
        self.assertIsNotNone(m)
        targets = m.group(1).split()
        for t in ("bench_seed", "wl-llm", "wl-curl", "wl-relay", "mock-llm", "peer-go"):
            self.assertIn(t, targets)
        self.assertNotIn("mock-llm-asan", targets)


class StageRows(unittest.TestCase):
    """Each row of bench.sh's budget is its stage's priced time with ~15% (the table in its
    comment: quick, full, priced quick / full), and for the stages whose plans Python can
    enumerate the priced full time is what the plan runs at the per-run prices of the
    costed plan (README "Time budget": the quiet Intel run of 2026-12-02 21:24 less this
    pass's cuts): a round or a model added to ruby, peers or workloads' streams moves the
    price, and this test asks for the budget to follow."""

    # quiet seconds a client run, full runs keeping the profile's stalls (README "Time
    # budget": the publication run's client times)
    PEERS = {10000: {"py-thread": 26.0, "py-httpx": 61.0, "*": 10.0}, 1000: {"*": 30.0 / 6},
             100: {"*": 33.0 / 36}}  # C runs: taken from the ruby stage in make bench (0 s)
    RUBY = {10000: {"ruby-thread": 31.3, "ruby-async": 15.0, "c-thread": 8.5, "c-fiber": 8.5},
            1000: {"*": 4.4}, 100: {"*": 4.4}}
    RUBY_MARGINAL = {("ruby-pool25", 64): 5.1, ("ruby-pool25", 16): 1.6, "c": 1.0, "*": 0.8}
    RUBY_FIXED = 40 + 62 + 27  # starvation, relays, between runs and checks
    WL_STREAMS = {10000: 8.0, 1000: 5.3}  # a run, at either length
    # HTTP, profiles, starve, db, arrive, the 20,000 probe, TLS, curl, calm and records; curl
    # 295 -> 174 since its 10,000 arriving is one run (9 runs of ~20 s -> 3)
    WL_FIXED = 46 + 19 + 37 + 4 + 16 + 25 + 114 + 174 + 7

    def setUp(self):
        with open(os.path.join(TOP, "scripts", "bench.sh")) as f:
            self.sh = f.read()
        self.rows = {}
        for m in re.finditer(r"^#\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+) /\s+(\d+)\s", self.sh, re.M):
            self.rows[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6))

    def test_rows_are_the_priced_times_with_a_margin(self):
        q = {k: int(v) for k, v in re.findall(r"\[(\w+)\]=(\d+)", re.search(
            r"declare -A budget_quick=\(([^)]*)\)", self.sh).group(1))}
        f = {k: int(v) for k, v in re.findall(r"\[(\w+)\]=(\d+)", re.search(
            r"declare -A budget_full=\(([^)]*)\)", self.sh).group(1))}
        total = self.rows.pop("total")
        self.assertEqual(set(self.rows), {"overhead", *q})
        for st, (rq, rf, pq, pf) in self.rows.items():
            if st != "overhead":
                self.assertEqual((rq, rf), (q[st], f[st]), st)
            for row, priced in ((rq, pq), (rf, pf)):
                self.assertGreaterEqual(row, 1.1 * priced, st)
                self.assertLessEqual(row, 1.25 * priced, st)
        self.assertEqual(total, tuple(sum(r[i] for r in self.rows.values()) for i in range(4)))

    def price(self, table, impl, n):
        t = table[n]
        return t.get(impl, t.get("*"))

    def test_peers_full_is_its_plan(self):
        _, calls, _ = Peers().run_plan(args())
        secs = runs = 0
        for c in calls:
            impl, n = c.split()
            secs += self.price(self.PEERS, impl, int(n))
            runs += 1
        secs += 83 + 3 + 0.25 * runs
        self.assertAlmostEqual(secs / self.rows["peers"][3], 1.0, delta=0.03)

    def test_ruby_full_is_its_plan(self):
        _, calls = Ruby().plan(args())
        secs = 0.0
        for c in calls:
            p = c.split()
            impl, n = p[0], int(p[1])
            if len(p) == 3:  # the paced marginal: tNN
                t = int(p[2][1:])
                m = self.RUBY_MARGINAL
                secs += m.get((impl, t), m["c"] if impl.startswith("c-") else m["*"])
            else:
                secs += self.price(self.RUBY, impl, n)
        secs += self.RUBY_FIXED
        self.assertAlmostEqual(secs / self.rows["ruby"][3], 1.0, delta=0.03)

    def test_workloads_full_streams_are_its_plan(self):
        wl = load("workloads/bench/run.py", "wl_run_price")
        secs = 0.0
        for n, pair, extra, rounds, extra_rounds in wl.streams_plan(args()):
            secs += self.WL_STREAMS[n] * (rounds * 2 * len(pair) + extra_rounds * len(extra))
        secs += self.WL_FIXED
        self.assertAlmostEqual(secs / self.rows["workloads"][3], 1.0, delta=0.03)


class Prepared(unittest.TestCase):
    """make bench prepares once (deps, build); the stage targets it runs then skip both."""

    def setUp(self):
        with open(os.path.join(TOP, "scripts", "bench.sh")) as f:
            self.sh = f.read()
        with open(os.path.join(TOP, "Makefile")) as f:
            self.mk = f.read()

    def stage_recipes(self):
        out = {}
        for m in re.finditer(r"^(bench-\w+):\n((?:\t.*\n)+)", self.mk, re.M):
            out[m.group(1)] = m.group(2).splitlines()
        return out

    def test_stage_targets_skip_setup_when_prepared(self):
        rec = self.stage_recipes()
        self.assertEqual(set(rec), {"bench-micro", "bench-mockllm", "bench-workloads",
                                    "bench-ruby", "bench-peers"})
        for t, lines in rec.items():
            for l in lines:
                if "scripts/deps.sh" in l or "cmake " in l:
                    self.assertIn("$(UNPREPARED)", l, (t, l))
        self.assertRegex(self.mk, r"UNPREPARED = \$\(if \$\(filter 1,\$\(BENCH_PREPARED\)\),: ,\)")
        self.assertRegex(self.sh, r'make --no-print-directory "\$tgt" [^\n]*BENCH_PREPARED=1')

    def test_bench_sh_builds_and_installs_what_the_stages_would(self):
        built = set(re.search(r"bench_targets=\(([^)]*)\)", self.sh).group(1).split())
        groups = set(re.search(r"scripts/deps.sh ([a-z ]+) \|\|", self.sh).group(1).split())
        for t, lines in self.stage_recipes().items():
            for l in lines:
                m = re.search(r"--target (.*)$", l)
                if m:
                    self.assertLessEqual(set(m.group(1).split()), built, t)
                m = re.search(r"scripts/deps.sh (\w+)", l)
                if m:
                    self.assertIn(m.group(1), groups | {"build"}, t)


class HarnessBinaries(unittest.TestCase):
    """Every binary a harness refuses to start without (its "X not found in BIN" check)
    is built by scripts/bench.sh (it builds only the benchmarks' targets) and by the stage
    target that runs the harness: from a fresh clone, make bench and make bench-workloads
    once stopped at once with "wl-curl-plain not found in build/bin"."""

    HARNESSES = {"bench-workloads": "workloads/bench/run.py", "bench-peers": "peers/bench.py",
                 "bench-ruby": "peers/ruby/bench.py"}

    def required(self, path):
        with open(os.path.join(TOP, path)) as f:
            src = f.read()
        m = re.search(r"for b in (\(.*?\)):\n\s+if not os\.access", src, re.S)
        self.assertIsNotNone(m, path)
        stages = set(re.findall(r'"(\w+)" in stages', m.group(1)))  # a condition, not a binary
        return set(re.findall(r'"([\w-]+)"', m.group(1))) - stages

    def test_built_by_bench_sh_and_the_stage_target(self):
        with open(os.path.join(TOP, "scripts", "bench.sh")) as f:
            built = set(re.search(r"bench_targets=\(([^)]*)\)", f.read()).group(1).split())
        with open(os.path.join(TOP, "Makefile")) as f:
            mk = f.read()
        for tgt, path in self.HARNESSES.items():
            need = self.required(path)
            self.assertLessEqual(need, built, path)
            recipe = re.search(r"^%s:\n((?:\t.*\n)+)" % tgt, mk, re.M).group(1)
            targets = set(re.search(r"--target (.*)$", recipe, re.M).group(1).split())
            self.assertLessEqual(need, targets, tgt)
        self.assertIn("wl-curl-plain", self.required("workloads/bench/run.py"))


class Seed(unittest.TestCase):
    """The post's protocol in C and Ruby (bench/seed.c, bench/ruby/seed.rb): full mode runs
    alloc and switch 3 times (the rule's 3, not 5) and the cache-warming case and the
    whole-process rows (read by no README section, figure or check) only with --warming
    and --hyperfine; tiny (the smoke tests) keeps both. bench_memory runs 3 per point."""

    def test_full_runs_three_and_warming_only_when_asked(self):
        with open(os.path.join(TOP, "bench", "seed.c")) as f:
            c = f.read()
        full = re.search(r"if \(cli\.mode == BENCH_FULL\) \{(.*?)\} else if", c, re.S).group(1)
        self.assertRegex(full, r"k\.runs = 3;")
        self.assertRegex(full, r"k\.series = 3;")
        self.assertRegex(full, r"k\.warming = warming;")
        self.assertIn('"--warming"', c)  # passed on to seed.rb
        # the whole-process rows (hyperfine; read by nothing) only with --hyperfine, but in
        # tiny mode (the smoke tests)
        self.assertIn("want_hyperfine = cli.mode == BENCH_TINY ? !no_hyperfine : hyperfine && !no_hyperfine", c)
        self.assertRegex(c, r"if \(want_hyperfine && hyperfine_cases\(")
        with open(os.path.join(TOP, "bench", "ruby", "seed.rb")) as f:
            rb = f.read()
        self.assertIn('when "--warming" then warming = true', rb)
        self.assertRegex(rb, r'warm_repeats: 0, warm_series: 0\) if !warming && mode != "tiny"')

    def test_memory_three_runs_per_point(self):
        with open(os.path.join(TOP, "bench", "memory.c")) as f:
            self.assertRegex(f.read(), r"static const int mode_runs\[\] = \{3, 3, 1\};")


if __name__ == "__main__":
    unittest.main()
