#!/usr/bin/env python3
"""Self-test of scripts/gen_readme.py: the tree's READMEs agree with the set they show
(the check make test relies on), and the check fails when a number inside a marked
section is edited by hand or when a CSV changes; bad markers are errors; a section whose
rows the set lacks says so instead of inventing them."""
import csv
import io
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import gen_readme  # noqa: E402
import resultsets  # noqa: E402


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = gen_readme.main(list(argv))
    return code, out.getvalue() + err.getvalue()


class ReadmeTest(unittest.TestCase):
    def setUp(self):
        self.set = resultsets.shown_set()
        if self.set is None:
            self.skipTest("no published set")
        self.tmp = tempfile.TemporaryDirectory()
        # the tests that pin exact figures read a frozen copy of part of the AMD set
        self.pinned = os.path.join(TOP, "results", "testdata", "readme-pinned")

    def tearDown(self):
        self.tmp.cleanup()

    def copy_readme(self):
        p = os.path.join(self.tmp.name, "README.md")
        shutil.copy(os.path.join(TOP, "README.md"), p)
        return p

    def generated(self, set_dir, name):
        """(section gen:name, path) of a copy of the README regenerated from set_dir."""
        p = self.copy_readme()
        code, out = run("--set", set_dir, p)
        self.assertEqual(code, 0, out)
        with open(p) as f:
            text = f.read()
        sec = text[text.index(f"<!-- gen:{name} -->"):]
        return sec[:sec.index("<!-- /gen -->")], p

    def test_tree_is_in_sync(self):
        code, out = run("--check")
        self.assertEqual(code, 0, out)

    def test_hand_edited_number_fails(self):
        p = self.copy_readme()
        with open(p) as f:
            text = f.read()
        a = text.index("<!-- gen:headline -->")
        b = text.index("<!-- /gen -->", a)
        block = text[a:b]
        edited = block.replace("**", "**1", 1)
        self.assertNotEqual(block, edited)
        with open(p, "w") as f:
            f.write(text[:a] + edited + text[b:])
        code, out = run("--check", p)
        self.assertEqual(code, 1, out)
        self.assertIn("disagrees with", out)
        code, out = run(p)  # make readme puts it right
        self.assertEqual(code, 0, out)
        code, out = run("--check", p)
        self.assertEqual(code, 0, out)

    def test_changed_csv_fails(self):
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        p = os.path.join(s, "memory.csv")
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if r["case"] == "memory/fiber/stack=64K/n=10000" and r["metric"] == "bytes_per_unit":
                r["median"] = r["min"] = r["max"] = "8192"
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        code, out = run("--check", "--set", s, self.copy_readme())
        self.assertEqual(code, 1, out)
        self.assertIn("+- **Memory per live unit at 10,000 live** (`memory.csv`): a parked fiber **8.0 KiB**", out)

    def test_missing_rows_are_said_not_invented(self):
        s = os.path.join(self.tmp.name, "published", "x")
        os.makedirs(s)
        for n in os.listdir(self.set):
            if not n.startswith("seed."):
                shutil.copy(os.path.join(self.set, n), s)
        p = self.copy_readme()
        code, out = run("--set", s, p)
        self.assertEqual(code, 0, out)
        with open(p) as f:
            text = f.read()
        self.assertIn("(seed.csv: not in this set)", text)

    def copy_set(self, edit=None, src=None):
        """A copy of the shown set (or of src); edit(harness, row) may change rows in place."""
        src = src or self.set
        s = os.path.join(self.tmp.name, "published", os.path.basename(src))
        shutil.copytree(src, s, ignore=shutil.ignore_patterns("README.md"))
        if edit:
            for n in os.listdir(s):
                if not n.endswith(".csv"):
                    continue
                p = os.path.join(s, n)
                with open(p, newline="") as f:
                    rows = list(csv.DictReader(f))
                for r in rows:
                    edit(n[:-4], r)
                with open(p, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
                    w.writeheader()
                    w.writerows(rows)
        return gen_readme.Ctx(s)

    def test_set_names_single_runs(self):
        """gen:set does not claim every figure is a median of runs: it lists the one-run
        cases (failed before: 'Every figure is a median over runs' with scale.csv all runs 1)."""
        def one_run_scale(h, r):
            if h == "scale":
                r["runs"] = "1"
        text = gen_readme.sec_set(self.copy_set(one_run_scale))
        self.assertNotIn("Every figure is a median", text)
        self.assertIn("`scale.csv` (every row)", text)
        self.assertIn("`llm-tls/{", text)
        # a scale.csv of merged runs (bench/run_micro.sh: 3) is not listed
        def three_run_scale(h, r):
            if h == "scale":
                r["runs"] = "3"
        shutil.rmtree(os.path.join(self.tmp.name, "published"))
        self.assertNotIn("`scale.csv`", gen_readme.sec_set(self.copy_set(three_run_scale)))

    def test_claim_straddling_threshold_is_inconclusive(self):
        """A model whose runs' bounds straddle the claim is inconclusive, not bold, not in
        'holds' (failed before: baton/cpu=same 22.2x, bounds 17.4x-29.0x, read 'holds')."""
        text = gen_readme.sec_claims(gen_readme.Ctx(self.pinned))
        line = [x for x in text.splitlines() if x.startswith("| fibers >= 20x cheaper to create")][0]
        self.assertIn("22.2x (77.9 µs vs 3.51 µs; bounds 17.4x-29.0x: inconclusive)", line)
        self.assertNotIn("**22.2x**", line)
        self.assertIn("| holds against baton; inconclusive against baton/cpu=same", line)
        self.assertIn("56.7x (bounds 10.9x-68.6x): inconclusive", line)

        def narrow(h, r):  # every run at the median: nothing straddles any more
            if h == "seed" and r["metric"] == "us_per_unit":
                r["min"] = r["max"] = r["median"]
        text = gen_readme.sec_claims(self.copy_set(narrow, self.pinned))
        line = [x for x in text.splitlines() if x.startswith("| fibers >= 20x cheaper to create")][0]
        self.assertIn("**22.2x**", line)
        self.assertIn("| holds only against baton, baton/cpu=same |", line)

    def test_http_headline_when_wrk_is_the_ceiling(self):
        """Both sides wrk-bound in every run: no bold req/s ratio, the straddling ratio
        called inconclusive, CPU per request the like-for-like figure (failed before:
        '**1.05x (0.99-1.08) nginx**')."""
        text = gen_readme.sec_headline(gen_readme.Ctx(self.pinned))
        line = [x for x in text.splitlines() if x.startswith("- **HTTP keep-alive")][0]
        self.assertIn("wrk was the ceiling in every run of both fibers and nginx", line)
        self.assertIn("1.05x (0.99x-1.08x), inconclusive", line)
        self.assertIn("**fibers 9.66 µs (9.61 µs-10.9 µs) against nginx 10.5 µs", line)
        self.assertNotIn("**1.05x", line)

        def unbound(h, r):
            if h == "throughput" and r["metric"] == "generator_bound_count":
                r["min"] = r["max"] = r["median"] = "0"
        line = [x for x in gen_readme.sec_headline(self.copy_set(unbound, self.pinned)).splitlines()
                if x.startswith("- **HTTP keep-alive")][0]
        self.assertIn("fibers **1.05x (0.99x-1.08x), inconclusive", line)
        self.assertNotIn("wrk was the ceiling", line)

    def test_mockllm_section(self):
        """The capacity table shows streams (not as 'offered events/s'), the knee's values
        from the at-knee rows, the target's verdict; the open-streams header does not say
        2 tokens/s over tps=5 rows (failed before on all four)."""
        text = gen_readme.sec_mockllm_results(gen_readme.Ctx(self.pinned))
        self.assertNotIn("offered events/s | emitted", text)
        self.assertNotIn("2 tokens/s each", text)
        self.assertRegex(text, r"\| `floor/streams=1000/p99<=1ms` \| 1,000 \| 91.7k \(0-100k\) \| "
                               r"100k \(11.4k-109k\) \| 10 \| 125 \(100-150\) \|")
        # a run on each side of 0.8x: not "not met" (before, a median below 0.8x was, though
        # the A/A test puts a median of equal servers as low as 0.77x: README "The
        # method's own noise"); "not met" only when every run is below, as "met" only when
        # every run is at or above
        self.assertIn("at 1,000 streams mock-llm reaches 0.709x the floor (0.5x-0.917x, 2 runs "
                      "with both knees): **inconclusive** (the runs fall on both sides of 0.8x)",
                      text)
        self.assertIn("at 10,000 streams mock-llm reaches 1.3x the floor (0.23x-2.83x, 3 runs "
                      "with both knees): **inconclusive**", text)
        self.assertIn("so at 10,000 streams it is not a floor", text)
        self.assertIn("`fiber/n=19000/tps=5` has lateness p99 1 s", text)

    def test_mockllm_concurrency_floor(self):
        """The floor paced to the same N x 5 events/s beside mock-llm's concurrency rows
        (concurrency/floor[-busy-poll]/n=N/tps=5, since 3 December evening): where
        mock-llm misses 1 ms the generated text says whether the floor held it (the miss
        is mock-llm's) or not (the machine's), naming the CPU with its cpu_id; the
        headline gives the floor's p99 beside mock-llm's. Before, the 19,000-stream miss
        was set against the floor's 10,000-stream knee only, and the CPU was 'AMD EPYC'."""
        s = os.path.join(self.tmp.name, "published", "floor-beside")
        shutil.copytree(self.pinned, s)
        with open(os.path.join(s, "mockllm.csv"), "a") as f:
            for mode, n, p99 in (("floor", 10000, "10000,5000,10000"),
                                 ("floor", 19000, "1e+06,1e+06,1e+07"),
                                 ("floor-busy-poll", 19000, "150,100,150")):
                name = "mllm-floor-busy-poll" if "busy" in mode else "mllm-floor"
                c = f"mockllm,concurrency/{mode}/n={n}/tps=5,floor,{name},streams,{n}"
                f.write(f"{c},open_streams,streams,{n},{n},{n},3\n"
                        f"{c},lateness_p99,us,{p99},3\n")
            f.write("mockllm,concurrency/fiber-busy-poll/n=19000/tps=5,fiber,mock-llm-busy-poll,"
                    "streams,19000,open_streams,streams,19000,19000,19000,3\n"
                    "mockllm,concurrency/fiber-busy-poll/n=19000/tps=5,fiber,mock-llm-busy-poll,"
                    "streams,19000,lateness_p99,us,5000,1500,100000,3\n")
        with open(os.path.join(s, "mockllm.machine.txt"), "a") as f:
            f.write("cpu_id: AuthenticAMD family 25 model 1 stepping 1\n")
        text = gen_readme.sec_mockllm_results(gen_readme.Ctx(s))
        self.assertIn("`fiber/n=19000/tps=5` has lateness p99 1 s", text)
        self.assertIn("mllm-floor paced to the same 95,000 events/s in the same run did not hold "
                      "it either (p99 1 s (1 s-10 s, 3 runs)): on this CPU, AMD EPYC "
                      "(AuthenticAMD family 25 model 1 stepping 1)", text)
        self.assertIn("**so the miss is the machine's**", text)
        # the floor held where mock-llm did not: mock-llm's
        self.assertIn("`fiber-busy-poll/n=19000/tps=5` has lateness p99 5 ms", text)
        self.assertIn("held p99 150 µs (100 µs-150 µs, 3 runs) on this CPU, AMD EPYC "
                      "(AuthenticAMD family 25 model 1 stepping 1): **the miss is mock-llm's**",
                      text)
        self.assertRegex(text, r"\| `floor/n=19000/tps=5` \| 19k \|")
        head = gen_readme.sec_headline(gen_readme.Ctx(s))
        self.assertIn("(mllm-floor paced to the same rate, same run: p99 1 s (1 s-10 s))", head)
        self.assertIn("On AMD EPYC (AuthenticAMD family 25 model 1 stepping 1).", head)

    def floor_beside_set(self, name, floor_rows, fiber_p99="5000,1500,100000,3"):
        """A copy of the pinned set with mock-llm's 19,000-stream --busy-poll rows missing
        1 ms and the floor's rows beside them (floor_rows: metric -> 'median,min,max,runs')."""
        s = os.path.join(self.tmp.name, "published", name)
        shutil.copytree(self.pinned, s)
        fib = ("mockllm,concurrency/fiber-busy-poll/n=19000/tps=5,fiber,mock-llm-busy-poll,"
               "streams,19000")
        flo = ("mockllm,concurrency/floor-busy-poll/n=19000/tps=5,floor,mllm-floor-busy-poll,"
               "streams,19000")
        units = {"open_streams": "streams", "lateness_p99": "us", "events_per_s": "events/s"}
        with open(os.path.join(s, "mockllm.csv"), "a") as f:
            f.write(f"{fib},open_streams,streams,19000,19000,19000,3\n"
                    f"{fib},lateness_p99,us,{fiber_p99}\n")
            for metric, v in floor_rows.items():
                f.write(f"{flo},{metric},{units[metric]},{v}\n")
        return gen_readme.sec_mockllm_results(gen_readme.Ctx(s))

    def test_mockllm_floor_verdict_needs_a_comparable_floor(self):
        """The floor's row decides whose miss it is only when it carried the same load:
        every stream open and the offered rate written. Before, a floor that opened
        12,000 of 19,000 streams (so wrote 60,000 of 95,000 events/s) and held 150 µs was
        'held ... **the miss is mock-llm's**'; a floor row without a lateness figure (nan)
        was 'did not hold it either ... **so the miss is the machine's**'; one run read
        '1 runs'."""
        text = self.floor_beside_set("floor-short", {
            "open_streams": "12000,12000,12000,3", "events_per_s": "60000,60000,60000,3",
            "lateness_p99": "150,100,150,3"})
        self.assertNotIn("the miss is mock-llm's", text)
        self.assertNotIn("the miss is the machine's", text)
        self.assertIn("the floor beside it opened 12,000 of 19,000 streams", text)
        # a floor that kept every stream but fell behind the rate did not hold it: the
        # machine's (its own lateness)
        text = self.floor_beside_set("floor-behind", {
            "open_streams": "19000,19000,19000,3", "events_per_s": "80000,70000,83000,3",
            "lateness_p99": "150,100,150,3"})
        self.assertNotIn("the miss is mock-llm's", text)
        self.assertIn("**so the miss is the machine's**", text)
        self.assertIn("it wrote 80k (70k-83k) events/s", text)
        text = self.floor_beside_set("floor-nan", {
            "open_streams": "19000,19000,19000,3", "events_per_s": "95000,95000,95000,3",
            "lateness_p99": "nan,nan,nan,3"})
        self.assertNotIn("the miss is the machine's", text)
        self.assertNotIn("the miss is mock-llm's", text)
        self.assertIn("has no lateness figure", text)
        text = self.floor_beside_set("floor-one-run", {
            "open_streams": "19000,19000,19000,1", "events_per_s": "95000,95000,95000,1",
            "lateness_p99": "150,150,150,1"}, fiber_p99="5000,5000,5000,1")
        self.assertIn("held p99 150 µs (150 µs-150 µs, 1 run)", text)

    def test_workloads_tls_section(self):
        """HTTPS against HTTP from llm.csv's llm-tls rows: one run each, said; the thread
        HTTPS run's 8,984 alive said (the hand-written section said 'Median of 3 rounds')."""
        text = gen_readme.sec_workloads_tls(gen_readme.Ctx(self.pinned))
        self.assertIn("(one run)", text)
        self.assertIn("thread, HTTPS: 8,984 conversations alive at most (8,400 connections "
                      "open), not 10,000 at once", text)
        self.assertIn("**6.83x over HTTP, 1.56x over HTTPS**", text)
        with open(os.path.join(TOP, "workloads", "README.md")) as f:
            self.assertNotIn("Median of 3 rounds", f.read())
        s = os.path.join(self.tmp.name, "published", "x")
        os.makedirs(s)
        for n in os.listdir(self.set):
            if not n.startswith("llm."):
                shutil.copy(os.path.join(self.set, n), s)
        self.assertIn("not in this set", gen_readme.sec_workloads_tls(gen_readme.Ctx(s)))

    def test_peers_section(self):
        """The peers section from a set with peers.csv: a row per model at 10,000
        conversations (where one stopped, and why, in its row), the reading against the
        C floor, the protocol's ratios per runtime; without peers.csv it says so."""
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        head = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
        rows = []
        for impl, model, i, done, mem in (("py-thread", "python-thread", "python-3.11.2/http.client", 4764, 51485),
                                          ("py-asyncio", "python-asyncio", "python-3.11.2/asyncio-streams", 10000, 10608),
                                          ("c-thread", "thread", "c/wl-llm", 10000, 51783),
                                          ("c-fiber", "fiber", "c/wl-llm", 10000, 5172)):
            c = f"llm/{impl}/gpt4o-5tps/n=10000"
            for metric, unit, v in (("completed_count", "count", done), ("live_units", "count", done),
                                    ("bytes_per_unit", "bytes", mem), ("cpu_per_1k_tokens_ms", "ms", 50),
                                    ("ttft_p50_ms", "ms", 1500), ("ttft_p99_ms", "ms", 4000)):
                rows.append(f"peers,{c},{model},{i},n,10000,{metric},{unit},{v},{v},{v},3")
        rows.append("peers,llm/py-thread/gpt4o-5tps/n=10000/fail=timeout,python-thread,"
                    "python-3.11.2/http.client,n,10000,errors,count,5236,5000,5300,3")
        rows.append("peers,llm/ratio/py-thread-over-py-asyncio/gpt4o-5tps/n=10000/cpu-per-token,"
                    "python-thread,python-3.11.2/http.client,n,10000,ratio,x,41.5,30,50,3")
        # Python's library pair at 1,000 (finding 4): threads against httpx, same-run ratios
        for impl, model, i, cpu in (("py-thread", "python-thread", "python-3.11.2/http.client", 170),
                                    ("py-httpx", "python-asyncio", "python-3.11.2/httpx-0.23.3", 600)):
            c = f"llm/{impl}/gpt4o-5tps/n=1000"
            for metric, unit, v in (("completed_count", "count", 1000), ("live_units", "count", 1000),
                                    ("cpu_per_1k_tokens_ms", "ms", cpu)):
                rows.append(f"peers,{c},{model},{i},n,1000,{metric},{unit},{v},{v},{v},3")
        rows.append("peers,llm/ratio/py-thread-over-py-httpx/gpt4o-5tps/n=1000/cpu-per-token,"
                    "python-thread,python-3.11.2/http.client,n,1000,ratio,x,0.28,0.25,0.35,3")
        for model, what, metric, unit, v in (("python-thread", "alloc/n=10000/m=2", "us_per_unit", "us", 300),
                                             ("python-asyncio", "alloc/n=10000/m=2", "us_per_unit", "us", 10),
                                             ("go-locked-thread", "switch/n=2/m=10000", "us_per_switch", "us", 12),
                                             ("go-goroutine", "switch/n=2/m=10000", "us_per_switch", "us", 0.06)):
            i = ("python-3.11.2" if model.startswith("python") else "go-1.19.8") + "/cpu=same"
            rows.append(f"peers,seed/{model}/{i}/{what},{model},{i},,,{metric},{unit},{v},{v},{v},3")
        with open(os.path.join(s, "peers.csv"), "w") as f:
            f.write(head + "\n".join(rows) + "\n")
        with open(os.path.join(s, "peers.machine.txt"), "w") as f:
            f.write("date: 2026-01-01T00:00:00Z\ncpu: AMD EPYC\ncores: 2\nkernel: Linux\n"
                    "compiler: gcc\ncommit: x\nmode: full\npython: python 3.11.2\n")
        sec, p = self.generated(s, "peers")
        self.assertIn("| Python, a thread each (http.client) | `python-3.11.2/http.client` | "
                      "4,764 (timeout: 5,236) | 4,764 | 50.3 KiB |", sec)
        self.assertIn("| C fibers (wl-llm) | `c/wl-llm` | 10,000 |", sec)
        self.assertIn("Python, asyncio tasks (stdlib streams): 2.1x the C fibers' memory", sec)
        # the headline Python pair is library against library; the flattering pair against
        # the hand-written streams client is not the reading's any more
        self.assertNotIn("Python threads spend 41.5x", sec)
        self.assertIn("**Python, library against library**", sec)
        self.assertIn("| threads, http.client (library) | 1,000 | 1,000 |", sec)
        self.assertIn("over httpx 0.28x (0.25x-0.35x) (same-run ratios)", sec)
        # httpx at 10,000: a result (the set's rows, or the bounded run kept in the tree)
        self.assertRegex(sec, r"httpx at 10,000(: \*\*[\d,]+ of 10,000 completed\*\* within 60 s"
                              r" each| is not in this set)")
        self.assertIn("plaintext HTTP on loopback", sec)
        self.assertIn("hands the GIL over ~0.59 times per call: per switch ~1.7x the figure) | "
                      "300 µs vs 10 µs: **30.0x** | - | - |", sec)
        self.assertIn("| Go (goroutines locked to threads vs goroutines) | - | 12 µs vs 60 ns: **200x** |", sec)
        # without peers.csv in the set: the bounded run kept in the tree, labelled as one
        bounded = os.path.join(self.tmp.name, "bounded")
        os.makedirs(bounded)
        for n in ("peers.csv", "peers.machine.txt"):
            shutil.move(os.path.join(s, n), os.path.join(bounded, n))
        with open(os.path.join(bounded, "peers.machine.txt"), "a") as f:
            f.write("noisy: yes (busy at the start after waiting 30 s)\n")
        saved = gen_readme.PEERS_BOUNDED
        try:
            gen_readme.PEERS_BOUNDED = bounded
            code, out = run("--set", s, p)
            self.assertEqual(code, 0, out)
            with open(p) as f:
                text = f.read()
            self.assertIn("**A bounded run, not the publication run**", text)
            self.assertIn("noisy yes (busy at the start", text)
            self.assertIn("| C fibers (wl-llm) | `c/wl-llm` | 10,000 |", text)
            # and with neither, it says so
            gen_readme.PEERS_BOUNDED = os.path.join(self.tmp.name, "none")
            code, out = run("--set", s, p)
            with open(p) as f:
                self.assertIn("(peers.csv: not in this set)", f.read())
        finally:
            gen_readme.PEERS_BOUNDED = saved

    def test_peers_reading_same_run_one_run_and_alive(self):
        """The peers section's reading against the C floor (review finding 5): Ruby's
        models against ruby.csv's own C fibers, never peers.csv's (another run); a
        one-run side says "(one run)"; a model that did not hold all N alive at once says
        how many it held; TLS is quoted from the set's llm.csv llm-tls/ rows."""
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        for h in ("ruby", "peers", "llm"):
            if not os.path.isfile(os.path.join(s, h + ".csv")):
                self.skipTest(f"the shown set has no {h}.csv")

        def plant(h, edits):
            pth = os.path.join(s, h + ".csv")
            with open(pth, newline="") as f:
                rows = list(csv.DictReader(f))
            for r in rows:
                v = edits.get((r["case"], r["metric"]))
                if v is not None:
                    r["median"], r["min"], r["max"], r["runs"] = v
            with open(pth, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
        c = "llm/{}/gpt4o-5tps/n=10000"
        # ruby.csv's C fibers 10 KiB, peers.csv's 5 KiB: Ruby Async at 40 KiB is 4.0x, not 8.0x
        plant("ruby", {(c.format("c-fiber"), "bytes_per_unit"): ("10240", "10240", "10240", "1"),
                       (c.format("ruby-async"), "bytes_per_unit"): ("40960", "40000", "41000", "3"),
                       (c.format("ruby-thread"), "live_units"): ("4321", "4000", "4500", "3")})
        plant("peers", {(c.format("c-fiber"), "bytes_per_unit"): ("5120", "5120", "5120", "1")})
        t = "llm-tls/{}/{}/gpt4o-5tps-60tok/n=10000"
        plant("llm", {(t.format("fiber", "https"), "client_rss_per_open_conv_bytes"):
                      ("65536", "65536", "65536", "1")})
        sec, p = self.generated(s, "peers")
        self.assertIn("Ruby, Async fibers (Net::HTTP): 4.0x the C fibers' memory per conversation "
                      "(against ruby.csv's own C fibers, 10.0 KiB, C fibers: one run)", sec)
        self.assertIn("at 4,321 alive at once, of 10,000", sec)
        self.assertRegex(sec, r"C fibers [\d.]+ KiB -> 64\.0 KiB")
        self.assertIn("cases `llm-tls/`", sec)
        self.assertNotIn("the review's probe, not published", sec)

    def test_ruby_section(self):
        """The Ruby claims section: peers/ruby/claims.py's table on the set's own ruby.csv
        (not the bounded run kept in the tree) with the set's figure; a changed row in the
        set's ruby.csv changes it; without ruby.csv in the set, the bounded run, labelled."""
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        if not os.path.isfile(os.path.join(s, "ruby.csv")):
            self.skipTest("the shown set has no ruby.csv")
        sec, p = self.generated(s, "ruby")
        rel = os.path.relpath(s, gen_readme.TOP)
        self.assertIn(f"From `{rel}/ruby.csv`, the published set", sec)
        self.assertNotIn("bounded run, not the publication run", sec)
        self.assertIn("| fibers make a conversation cheaper in memory |", sec)
        # the set's ruby.csv, not the tree's bounded one: a planted Ruby-threads first token
        rp = os.path.join(s, "ruby.csv")
        with open(rp, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if r["case"] == "llm/ruby-thread/gpt4o-5tps/n=10000" and r["metric"] == "ttft_p50_ms":
                r["median"], r["min"], r["max"] = "55500", "55000", "56000"
        with open(rp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        code, out = run("--set", s, p)
        with open(p) as f:
            text = f.read()
        self.assertIn("first token p50 **55.50 s**", text)
        # without ruby.csv: the bounded run kept in the tree, labelled as one
        for n in ("ruby.csv", "ruby.machine.txt"):
            os.remove(os.path.join(s, n))
        code, out = run("--set", s, p)
        self.assertEqual(code, 0, out)
        with open(p) as f:
            text = f.read()
        sec = text[text.index("<!-- gen:ruby -->"):]
        sec = sec[:sec.index("<!-- /gen -->")]
        self.assertIn("**A bounded run, not the publication run**", sec)
        self.assertIn("`peers/ruby/results/ruby.csv`", sec)
        self.assertIn("](peers/ruby/results/ruby.png)", sec)

    def test_curl_section(self):
        """The libcurl section: from the set's curl.csv when it has one (a row per metric,
        the three models, the same-round ratios), else from the bounded run kept in the tree,
        labelled as one; with neither it says so."""
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        head = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs\n"
        rows = []
        lab = "gpt4o-5tps-prompt4k"
        for impl, model, mem, cpu in (("curl-easy-thread", "thread", 97485, 53.4),
                                      ("curl-easy-fiber-hook", "fiber", 41370, 34.3),
                                      ("curl-multi-epoll", "curl-multi", 22938, 31.1)):
            c = f"curl/{impl}/{lab}/n=1000"
            for metric, unit, v in (("completed_count", "count", 1000), ("live_units", "count", 1000),
                                    ("bytes_per_unit", "bytes", mem), ("cpu_per_1k_tokens_ms", "ms", cpu),
                                    ("ttft_p50_ms", "ms", 620), ("ttft_p99_ms", "ms", 1334)):
                rows.append(f"curl,{c},{model},{impl},n,1000,{metric},{unit},{v},{v},{v},3")
        rows.append(f"curl,curl/ratio/fiber-over-thread/{lab}/n=1000/bytes-per-unit,fiber,"
                    "curl-easy-fiber-hook,n,1000,ratio,x,0.424,0.42,0.43,3")
        with open(os.path.join(s, "curl.csv"), "w") as f:
            f.write(head + "\n".join(rows) + "\n")
        with open(os.path.join(s, "curl.machine.txt"), "w") as f:
            f.write("date: 2026-01-01T00:00:00Z\ncpu: AMD EPYC\ncommit: x\nworkloads: full\n")
        sec, p = self.generated(s, "curl")
        self.assertNotIn("bounded run", sec)
        self.assertIn(f"From `{os.path.relpath(s, gen_readme.TOP)}/curl.csv` (AMD EPYC", sec)
        self.assertIn("| memory per conversation, KiB (RSS growth + kernel estimate) | 95.2 | 40.4 | 22.4 |", sec)
        self.assertIn("| CPU per 1,000 tokens, ms | 53.4 | 34.3 | 31.1 |", sec)
        self.assertIn("memory per conversation **0.42x** [0.42-0.43] (N = 1,000)", sec)
        self.assertIn("(gpt-4o first-token time, 5 tokens/s, 20 tokens,", sec)
        # a set measured without the profile's stalls (mock-llm --stall-rate 0) says so
        with open(os.path.join(s, "curl.machine.txt"), "a") as f:
            f.write("curl: libcurl; mock-llm --profile gpt-4o --tps 5 --stall-rate 0 (no stalls)\n")
        sec, p = self.generated(s, "curl")
        self.assertIn("(gpt-4o first-token time, 5 tokens/s, without its stalls, 20 tokens,", sec)
        saved = gen_readme.CURL_BOUNDED
        try:
            os.remove(os.path.join(s, "curl.csv"))
            gen_readme.CURL_BOUNDED = os.path.join(self.tmp.name, "none")
            code, out = run("--set", s, p)
            with open(p) as f:
                self.assertIn("(curl.csv: not in this set)", f.read())
        finally:
            gen_readme.CURL_BOUNDED = saved

    def test_curl_one_run_step_says_so(self):
        """make bench runs curl's 10,000 arriving once a model (README "Time budget"): that
        step and its ratios say "(one run)", the 3-round headline (1,000 at once) does not
        (before: one note for the whole table, "median [min-max] over the runs (one run)")."""
        def arrive_once(h, r):
            if h == "curl" and "arrive10s" in r["case"]:
                r["runs"], r["min"], r["max"] = "1", r["median"], r["median"]
        text = gen_readme.sec_curl(self.copy_set(arrive_once))
        self.assertIn("| **N = 10,000 arriving over 10 s** (one run): completed", text)
        self.assertIn("| **N = 1,000 at once**: completed", text)
        self.assertIn("(N = 10,000 arriving, one run)", text)
        self.assertIn("(N = 1,000)", text)
        self.assertNotIn("over the runs (one run)", text)

    def test_bad_markers(self):
        for text, needle in (("<!-- gen:nonesuch -->\n<!-- /gen -->\n", "unknown section"),
                             ("<!-- gen:claims -->\nno end\n", "has no <!-- /gen -->"),
                             ("text\n<!-- /gen -->\n", "stray marker"),
                             ("<!-- gen:claims -->\n<!-- gen:set -->\n<!-- /gen -->\n", "not closed")):
            p = os.path.join(self.tmp.name, "bad.md")
            with open(p, "w") as f:
                f.write(text)
            code, out = run("--check", p)
            self.assertEqual(code, 1, out)
            self.assertIn(needle, out)


if __name__ == "__main__":
    unittest.main()
