#!/usr/bin/env python3
"""peers/bench.py - Python, Go and Node beside Ruby and C: the streaming-LLM client and
the post's micro protocol in the runtimes people choose, written as tidy CSV
(results/peers.csv, harness `peers`). Ruby has its own harness (peers/ruby/bench.py,
results/ruby.csv) with the same client protocol, metrics and mock-llm set-up.

    python3 peers/bench.py [--quick | --smoke] [--only llm,seed|marginal] [--runtimes python,go,node]
                           [--bin DIR] [--out DIR] [--runs N] [--max-seconds S]

Stages:
  llm   N streaming conversations from one client process against a fresh mock-llm,
        every conversation i sending 'x-mock-request-index: i' (the same draws for every
        model), models interleaved run by run (the order rotates):
          py-thread     Python: a thread per conversation, http.client
          py-asyncio    Python: an asyncio task per conversation, stdlib streams and our
                        own HTTP/1.1 and chunked parsing (what asyncio itself costs; no
                        app streams this way: beside the library pair, not the headline)
          py-httpx      Python: asyncio on httpx, set up as the openai SDK sets it up
          py-aiohttp    Python: asyncio on aiohttp
          go-goroutine  Go: a goroutine per conversation, net/http
          node-openai   Node: the official openai npm SDK on the event loop
          c-thread, c-fiber   build/bin/wl-llm: the C floor and ceiling
        gpt4o-5tps: gpt-4o first-token times, 5 tokens/s, 8 tokens (as the Ruby harness);
        fixed-50tps: tokens paced one per event at 50 tokens/s (first token after 20 ms),
        16 and 64 tokens per conversation at N = 100: the difference is the CPU of one
        more token as a real stream delivers it (a wake-up each), setup left out
  marginal  only the fixed-50tps step of llm (its own bounded run)
  seed  the post's protocol (bench/seed.c, bench/ruby/seed.rb): Python threads against
        asyncio tasks (peers/python/seed.py), Go goroutines against goroutines locked to
        OS threads (peer-go-seed), each process pinned to one CPU (cpu=same)

A model that cannot reach N here records where and why it stopped (a limit_units row,
errors by cause) and the run goes on. Every process it starts is a child it stops; every
load is bounded in count and time; past --max-seconds no new step starts. Loopback only.
Python 3 standard library only (the clients use their runtimes' own).
"""
import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peerlib  # noqa: E402
from peerlib import wl  # noqa: E402

T_START = time.monotonic()
TOP = peerlib.TOP
PY = "/usr/bin/python3"  # Debian's python3, whatever python3 is first on PATH
PY_CLIENT = os.path.join(HERE, "python", "llm_client.py")
PY_SEED = os.path.join(HERE, "python", "seed.py")
NODE_CLIENT = os.path.join(HERE, "node", "llm_client.js")
NPM_CACHE = os.environ.get("FIBERBENCH_NPM_CACHE",
                           os.path.expanduser("~/.cache/fiberbench/npm"))
SEED_CPU = 0  # the CPU the micro protocol runs on (cpu=same)

# impl key -> (model column, runtime, how it runs). The key is the case's second
# component; the impl column carries the runtime and library versions the client reports.
CLIENTS = {
    "py-thread": ("python-thread", "python", ["thread"]),
    "py-asyncio": ("python-asyncio", "python", ["asyncio"]),
    "py-httpx": ("python-asyncio", "python", ["httpx"]),
    "py-aiohttp": ("python-asyncio", "python", ["aiohttp"]),
    "go-goroutine": ("go-goroutine", "go", []),
    "node-openai": ("node-event-loop", "node", []),
    "c-thread": ("thread", "c", "thread"),
    "c-fiber": ("fiber", "c", "fiber"),
}
CORE = ["py-thread", "py-asyncio", "go-goroutine", "node-openai", "c-thread", "c-fiber"]
# same-round ratios: each runtime's thread model over its asynchronous one, and each
# asynchronous runtime over the C floor (C fibers). Python's headline pair is library
# against library: http.client threads over httpx (AsyncOpenAI's transport) and over
# aiohttp; the hand-written asyncio-streams client is beside it (finding 4 of
# peers/review/FINDINGS.md: threads against it is the flattering pair)
PAIRS = [("py-thread", "py-httpx"), ("py-thread", "py-aiohttp"),
         ("py-thread", "py-asyncio"), ("py-asyncio", "c-fiber"), ("py-httpx", "c-fiber"),
         ("go-goroutine", "c-fiber"), ("node-openai", "c-fiber"), ("c-thread", "c-fiber")]


def log(msg):
    el = time.monotonic() - T_START
    print(f"[peers {int(el) // 60}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


# ---- what is here ---------------------------------------------------------------------

def runtimes_available(a, want):
    """{runtime: None if usable, else why not}, for the runtimes asked for (C always)."""
    why = {"c": None}
    if "python" in want:
        if not os.access(PY, os.X_OK):
            why["python"] = f"no {PY} (scripts/deps.sh peers installs python3)"
        else:
            r = subprocess.run([PY, "-c", "import httpx, aiohttp"], capture_output=True,
                               text=True)
            why["python"] = None if r.returncode == 0 else (
                "python3-httpx / python3-aiohttp missing (scripts/deps.sh peers): "
                + r.stderr.strip()[-120:])
    if "go" in want:
        why["go"] = None
        need = [os.path.join(a.bin, f"peer-go-{c}") for c in ("llm", "seed")]
        if not all(os.access(p, os.X_OK) for p in need):
            log("building the Go peers (peers/go/build.sh)")
            r = subprocess.run([os.path.join(HERE, "go", "build.sh"), a.bin],
                               capture_output=True, text=True)
            if r.returncode != 0:
                why["go"] = "cannot build the Go peers: " + r.stderr.strip()[-200:]
    if "node" in want:
        if not shutil.which("node"):
            why["node"] = "no node (scripts/deps.sh peers installs nodejs)"
        elif not os.path.isfile(os.path.join(NPM_CACHE, "node_modules", "openai",
                                             "package.json")):
            why["node"] = (f"the openai npm SDK is not in {NPM_CACHE} "
                           "(scripts/deps.sh peers installs it)")
        else:
            why["node"] = None
    return why


def wl_llm_index(a):
    """Whether the C client of this build sends the request index too (a wl-llm that
    does documents it in --help); without it, it draws in arrival order from its fresh
    mock-llm, which equals index order only while the conversations connect in order."""
    try:
        h = subprocess.run([os.path.join(a.bin, "wl-llm"), "--help"], capture_output=True,
                           text=True, timeout=10)
        if "x-mock-request-index" in h.stdout + h.stderr:
            return "wl-llm (C) sends it too"
    except (OSError, subprocess.SubprocessError):
        pass
    return ("wl-llm (C) of this build does not send it: its draws follow arrival order at "
            "a fresh mock-llm")


def node_env():
    return dict(os.environ, NODE_PATH=os.path.join(NPM_CACHE, "node_modules"))


def versions(why):
    lines = []

    def out(argv, env=None):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                  env=env).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    if why.get("python") is None and "python" in why:
        lines.append("python: " + out([PY, "-c", "import sys, httpx, aiohttp, h11; "
                                       "print('python', sys.version.split()[0], '(' + sys.executable + ')', "
                                       "'httpx', httpx.__version__, 'h11', h11.__version__, "
                                       "'aiohttp', aiohttp.__version__)"]))
    if why.get("go") is None and "go" in why:
        lines.append("go: " + (out(["go", "version"]) or "built by peers/go/build.sh"))
    if why.get("node") is None and "node" in why:
        lines.append("node: " + out(["node", "-p", "'node ' + process.version + ', openai ' + "
                                     "require('openai/version').VERSION"], node_env()))
    d = out(["dpkg-query", "-W", "-f", "${Package}=${Version} ", "python3", "python3-httpx",
             "python3-aiohttp", "golang-go", "nodejs"])
    lines.append(f"debian packages: {d}")
    for rt, w in sorted(why.items()):
        if w:
            lines.append(f"skipped {rt}: {w}")
    return lines


# ---- llm --------------------------------------------------------------------------------

def client_argv(a, impl, port, n, tokens, timeout_s):
    _, rt, how = CLIENTS[impl]
    common = ["--target", f"127.0.0.1:{port}", "--n", str(n), "--max-tokens", str(tokens),
              "--timeout", str(timeout_s)]
    if rt == "c":
        return [os.path.join(a.bin, "wl-llm"), "--model", how] + common
    if rt == "python":
        return [PY, PY_CLIENT, "--model"] + how + common
    if rt == "go":
        return [os.path.join(a.bin, "peer-go-llm")] + common
    return ["node", NODE_CLIENT] + common


def impl_of(impl, j):
    """The impl column: runtime and library versions as the client reports them."""
    if CLIENTS[impl][1] == "c":
        return "c/wl-llm"
    return f"{j.get('runtime', '?')}/{j.get('library', '?')}"


# The marginal CPU of a token, paced: tokens one per event (mock-llm's fixed profile at 50
# tokens/s, first token after 20 ms), N = 100, 16 and 64 tokens. With no waits
# (--time-scale 0, what this step measured before) the events pile up in the socket, one
# read returns many tokens, and the thread models were not even all alive at once: it
# hid the per-token wake-up and put C threads level with C fibers (1.0x), while the
# paced figure is 2.1x (peers/review/FINDINGS.md, finding 1). Shared with
# peers/ruby/bench.py and read by claims.py, gen_readme.py and the plots by case name.
MARGINAL = peerlib.MARGINAL


def client_plan(a):
    """The steps of one round, in order: (label, mock-llm args, tokens, N, models,
    timeout s). tokens is a number, or a pair (lo, hi): the same conversations with lo
    and with hi tokens each (mock-llm --output-tokens); (CPU_hi - CPU_lo) / (tokens_hi -
    tokens_lo) leaves connection setup and unit creation out. What the figure and the
    README lead with comes first (10,000 conversations, then the marginal), so that a
    time budget cuts a last round of the small cases, not the headline."""
    label, margs, lengths = MARGINAL
    if a.smoke:
        return [("gpt4o-fast", ["--profile", "gpt-4o", "--tps", "50", "--ttft-ms", "20"], 4, 5,
                 list(CLIENTS), 20),
                (label, margs, (4, 16), 5, list(CLIENTS), 20)]
    # quick: without the profile's stalls (--stall-rate 0; full keeps them unless
    # FIBERBENCH_STALLS=0: workloads/bench/run.py stall_free, README "Time budget"); the
    # same for every model, C included
    gpt = ["--profile", "gpt-4o", "--tps", "5"] + wl.no_stalls(a)
    if a.quick:
        return [("gpt4o-5tps", gpt, 8, 1000, CORE, 60),
                (label, margs, lengths, 100, CORE, 60)]
    # the httpx and aiohttp clients where they answer a question (which asyncio client,
    # and what the openai SDK's transport costs): at 1,000 streams and per token. At
    # 10,000 httpx is one round (its failure is a result: a row, not a comment):
    # httpcore's pool scans its connections and its queue of waiting requests whenever
    # one ends, so its CPU grows faster than the streams (development probes on the
    # 2-vCPU EPYC: 1,000 streams 3.8 s of CPU; 3,000 with the SDK's limits 17.8 s;
    # 10,000 with no limit, none completed within 60 s).
    # 1,000 streams is a secondary point (no README table or figure reads it): one round
    # (ONE_ROUND, its rows say runs=1) after the headline's; N = 100 is gone (it answered
    # no question the README asks), for make bench's 20-minute budget (scripts/bench.sh).
    extra = ["py-httpx", "py-aiohttp"]
    return [("gpt4o-5tps", gpt, 8, 10000, CORE, 60),
            (label, margs, lengths, 100, CORE + extra, 60),
            ("gpt4o-5tps", gpt, 8, 1000, CORE + extra, 60, ONE_ROUND),
            ("gpt4o-5tps", gpt, 8, 10000, ["py-httpx"], 60, ONE_ROUND)]


ONE_ROUND = "one round"  # a step run in the first round only (unless --runs says otherwise)


def llm_rounds(a):
    """[(round index, steps)]: every headline step once per round, then the one-round
    (secondary) steps in a round of their own after the last, so that a spent budget
    cuts a secondary case, never the headline. With --runs N every step runs N rounds."""
    runs = a.runs or (1 if a.quick or a.smoke else 3)
    plan = client_plan(a)
    if getattr(a, "marginal_only", False):  # --only marginal: the paced marginal alone
        plan = [s for s in plan if isinstance(s[2], tuple)]
    if a.runs:
        return [(r, plan) for r in range(runs)]
    head = [s for s in plan if ONE_ROUND not in s[6:]]
    tail = [s for s in plan if ONE_ROUND in s[6:]]
    return [(r, head) for r in range(runs)] + ([(0, tail)] if tail else [])


def bench_llm(a, tab, budget_end, have):
    """Round by round: every step once per round, the models of a step interleaved (their
    order rotates from round to round); the one-round steps last (llm_rounds); a spent
    budget loses the rest."""
    runs = a.runs or (1 if a.quick or a.smoke else 3)
    for r, steps in llm_rounds(a):
        for label, margs, tokens, n, models, tmo, *flags in steps:
            lengths = tokens if isinstance(tokens, tuple) else (tokens,)
            ms = [m for m in models if m in have]
            if r > 0 and not a.runs:
                # C threads and C fibers are the floor and ceiling beside the runtimes: a
                # same-run anchor in the first round (runs=1 in their rows, the table's
                # runs column says so); their 3-round figures are workloads/bench/run.py's
                # (llm.csv, the README's headline), for make bench's 20-minute budget
                ms = [m for m in ms if CLIENTS[m][1] != "c"]
            js = {}
            for t in lengths:
                for i in range(len(ms)):
                    if time.monotonic() > budget_end:
                        log(f"llm: time budget spent in round {r + 1} of {runs}; the rest skipped")
                        return False
                    impl = ms[(i + r) % len(ms)]
                    lab = label if len(lengths) == 1 else f"{label}-t{t}"
                    log(f"llm {lab} n={n}: {impl} round {r + 1}/{runs}")
                    extra = ["--output-tokens", str(t)] if len(lengths) > 1 else []
                    m = peerlib.mock(a.bin, label, margs + extra, 11)
                    try:
                        argv = client_argv(a, impl, m.port, n, t, tmo)
                        env = node_env() if CLIENTS[impl][1] == "node" else None
                        j = peerlib.run_client(argv, a.out, "peers", f"{impl} n={n}", tmo,
                                               log, env=env, extra_raw={"impl": impl},
                                               mock_pid=m.proc.pid)
                    finally:
                        m.stop()
                    if not j:
                        # the client died (no report): where it stopped, and why
                        tab.add(f"llm/{impl}/{lab}/n={n}/fail=client-died", CLIENTS[impl][0],
                                impl, "n", n, "errors", "count", n)
                        continue
                    if j["failed"]:
                        log(f"  {j['failed']} failed: {j['causes']}")
                    peerlib.record_client(tab, f"llm/{impl}/{lab}/n={n}", CLIENTS[impl][0],
                                          impl_of(impl, j), n, j)
                    js[(impl, t)] = j
                ratios(tab, lab, n, {k[0]: v for k, v in js.items() if k[1] == t})
            if len(lengths) == 2:
                marginal(tab, label, n, lengths, ms, js)
    return True


def ratios(tab, label, n, js):
    peerlib.ratios(tab, label, n, js, PAIRS, lambda i: CLIENTS[i][0], impl_of)


def marginal(tab, label, n, lengths, models, js):
    """CPU per extra 1,000 tokens, from one run's two lengths of each model."""
    peerlib.marginal(tab, label, n, lengths, models, js, PAIRS, lambda i: CLIENTS[i][0],
                     impl_of)


# ---- seed -------------------------------------------------------------------------------

def pin_seed_cpu():
    os.sched_setaffinity(0, {SEED_CPU})


def bench_seed(a, tab, budget_end, have):
    """The post's protocol in Python and in Go, each a pinned process that interleaves its
    own pair run by run (as bench/ruby/seed.rb does), rows added as its samples."""
    if SEED_CPU not in os.sched_getaffinity(0):
        raise RuntimeError(f"cannot pin to CPU {SEED_CPU}: not in this process's affinity")
    mode = "tiny" if a.smoke else "quick" if a.quick else "full"
    jobs = []
    if "python" in have:
        jobs.append(("python", [PY, PY_SEED, "--mode", mode, "--no-warming"],
                     ("python-thread", "python-asyncio")))
    if "go" in have:
        jobs.append(("go", [os.path.join(a.bin, "peer-go-seed"), "--mode", mode,
                            "--no-warming"], ("go-locked-thread", "go-goroutine")))
    for rt, argv, (thr, fib) in jobs:
        if time.monotonic() > budget_end:
            log(f"seed: time budget spent; skipped {rt}")
            return False
        log(f"seed {rt}: {' '.join(os.path.basename(x) for x in argv)} (pinned to CPU {SEED_CPU})")
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                               preexec_fn=lambda: (wl._die_with_parent(), pin_seed_cpu()))
        except subprocess.TimeoutExpired:
            log(f"  seed {rt} ran past 600 s and was killed")
            continue
        rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        for rw in rows:
            for v in rw["samples"]:
                tab.add(rw["case"], rw["model"], rw["impl"], "", "", rw["metric"], rw["unit"], v)
        if p.returncode != 0:
            # the Go runtime ends the process when it cannot make a thread; its message
            # says how many it had: that is where the model stopped
            import re
            m = re.search(r"failed to create new OS thread \(have (\d+) already; errno=(\d+)\)",
                          p.stderr)
            if m:
                import errno
                tab.add(f"seed/{thr}/limit={errno.errorcode.get(int(m.group(2)), m.group(2))}",
                        thr, rows[0]["impl"] if rows else rt, "", "", "limit_units", "count",
                        int(m.group(1)))
            log(f"  seed {rt} exited {p.returncode}: {p.stderr.strip()[-300:]}")
        seed_ratios(tab, rows, thr, fib)
    return True


def seed_ratios(tab, rows, thr, fib):
    """Per run, the thread model over the asynchronous one (the samples are in run
    order, the models interleaved run by run): how many times cheaper the latter is."""
    by = {(r["model"], r["metric"], r["case"].split("/")[-3]): r for r in rows}
    for what, metric, inverse in (("alloc", "us_per_unit", False),
                                  ("switch", "us_per_switch", False),
                                  ("throughput", "units_per_s", True)):
        t, f = by.get((thr, metric, what)), by.get((fib, metric, what))
        if not (t and f):
            continue
        for x, y in zip(t["samples"], f["samples"]):
            if x > 0 and y > 0:
                tab.add(f"seed/ratio/{thr}-over-{fib}/{what}", thr, t["impl"], "", "",
                        "ratio", "x", (y / x) if inverse else (x / y))


# ---- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick subset (within 2 minutes)")
    ap.add_argument("--smoke", action="store_true",
                    help="every model at a tiny N, seconds in all (the tests)")
    ap.add_argument("--only", default="llm,seed",
                    help="comma list: llm, seed; or marginal (llm's paced marginal alone)")
    ap.add_argument("--runtimes", default="python,go,node",
                    help="comma list of runtimes beside C: python, go, node")
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"),
                    help="where wl-llm, mock-llm and the Go peers are (default build/bin)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"), help="results directory")
    ap.add_argument("--runs", type=int, default=0, help="repetitions (default 3; quick 1)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="start no new step after this long (default 110 quick, 900 full)")
    ap.add_argument("--require", action="store_true",
                    help="fail when a runtime asked for is missing (the tests)")
    a = ap.parse_args()
    stages = [s for s in a.only.split(",") if s]
    for s in stages:
        if s not in ("llm", "seed", "marginal"):
            ap.error(f"unknown stage '{s}'")
    if "marginal" in stages:
        # the paced marginal alone, as the llm stage (its own bounded run; a set whose
        # llm stage predates the paced marginal takes it from there)
        a.marginal_only = "llm" not in stages
        stages = [s for s in stages if s != "marginal"] + ([] if "llm" in stages else ["llm"])
    want = [r for r in a.runtimes.split(",") if r]
    for r in want:
        if r not in ("python", "go", "node"):
            ap.error(f"unknown runtime '{r}' (python, go, node)")
    if a.runs < 0 or a.runs > 50:
        ap.error("--runs must be 1..50")
    a.bin = os.path.abspath(a.bin)
    for b in ("wl-llm", "mock-llm"):
        if not os.access(os.path.join(a.bin, b), os.X_OK):
            wl.die(f"{b} not found in {a.bin} (build first, or pass --bin)")
    why = runtimes_available(a, want)
    for rt, w in why.items():
        if w:
            log(f"!!! {rt} SKIPPED: {w}")
    if a.require and any(why.values()):
        return 1
    have = {rt for rt, w in why.items() if w is None}
    have_impls = [k for k, (_, rt, _) in CLIENTS.items() if rt in have]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    budget = a.max_seconds or (60 if a.smoke else 110 if a.quick else 900)
    budget_end = T_START + budget
    signal.signal(signal.SIGTERM, lambda *_: (wl.cleanup(), sys.exit(143)))
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    load0 = peerlib.loadavg()
    log(f"mode {mode}; stages {','.join(stages)}; runtimes {','.join(sorted(have))}; "
        f"open files {hard}; budget {int(budget)}s; load {load0}")
    tab = wl.Table("peers")
    failed = False
    complete = True
    try:
        # the LLM rounds may take 80% of the budget (what they leave rolls on); the
        # protocol, bounded by its own repeats, gets the rest
        llm_end = T_START + (0.8 * budget if "seed" in stages else budget)
        for s, fn in (("llm", bench_llm), ("seed", bench_seed)):
            if s in stages:
                try:
                    complete &= fn(a, tab, llm_end if s == "llm" else budget_end,
                                   have_impls if s == "llm" else have)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"{s} FAILED: {e}")
                    failed = True
    finally:
        wl.cleanup()
    if tab.order:
        tab.write(a.out, [f"mode: {mode}", f"peers harness: {mode}"] + versions(why) + [
            f"open files per process: {hard}",
            f"load average at start: {load0}; at end: {peerlib.loadavg()}",
            "pinning: LLM clients and mock-llm unpinned; the micro protocol (seed/ cases) "
            f"pinned with every thread to CPU {SEED_CPU} (cpu=same in the impl)",
            "go: GOMAXPROCS default for the LLM client, 1 for the micro protocol",
            "mock-llm: a fresh process for every run, --seed 11; profiles as in the case "
            "names, gpt4o-5tps " + wl.stalls_note(a) + "; the Python, Go and Node clients send x-mock-request-index per conversation "
            "(the same draws for every one of them); " + wl_llm_index(a),
            "python httpx client: as the openai SDK sets up AsyncOpenAI's (max_connections "
            "1000, max_keepalive_connections 100, connect timeout 5 s)",
            f"complete: {'yes' if complete and not failed else 'no (see the log)'}"])
    else:
        failed = True
        log("no rows measured")
    log("done" + (" (with failures, see above)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
