#!/usr/bin/env python3
"""peers/ruby/bench.py - the post's own claims in Ruby: a Ruby AI app on threads, on a
25-thread pool and on Async, against mock-llm, with the C client and C servers beside it
as floor and ceiling, written as tidy CSV (results/ruby.csv, harness `ruby`).

    python3 peers/ruby/bench.py [--quick] [--only llm,starve,relay|marginal] [--bin DIR]
                                [--out DIR] [--runs N] [--max-seconds S] [--smoke]

Stages (each model interleaved with the others run by run; a fresh mock-llm for every
run, so that every model meets the same set of request-indexed draws):
  llm     N streaming conversations from one client process: Ruby threads, Ruby on
          Async (plain Net::HTTP under Async's Fiber scheduler; and Async::HTTP), the
          25-thread pool where it fits, C threads and C fibers (build/bin/wl-llm)
  starve  slot starvation: the 25-thread pool against Async and threads as N users
          arrive at once (the 26th user's first token, the rest's p50/p99)
  relay   the deployment advice: an app server relaying each user's stream from
          mock-llm (user -> app -> LLM) on Puma (5 and 25 threads), on an Async::HTTP
          server (Falcon's engine), and on the C relay (build/bin/wl-relay) on threads
          and on fibers; build/bin/wl-llm is the users

Writes OUT/ruby.csv (schema: results/README.md) and OUT/ruby.machine.txt with the Ruby
and gem versions. Progress on stderr. Every process it starts is a child that it stops;
every load is bounded in count and time; past --max-seconds no new step starts.
Loopback only. Python 3 standard library only; the helpers of workloads/bench/run.py.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
# what every peer harness does the same way (peers/peerlib.py, shared with peers/bench.py
# for Python, Go and Node): mock-llm per run, a client process sampled from outside, its
# JSON as rows
import peerlib  # noqa: E402
from peerlib import Peaks, status, wl  # noqa: E402,F401

T_START = time.monotonic()
CLIENT = os.path.join(HERE, "llm_client.rb")
RELAY_RU = os.path.join(HERE, "relay.ru")
RELAY_ASYNC = os.path.join(HERE, "relay_async.rb")
GEMS = ["ruby3.1", "ruby-async", "ruby-async-http", "ruby-async-io", "ruby-async-pool",
        "ruby-nio4r", "ruby-timers", "ruby-protocol-http", "ruby-protocol-http1", "puma"]

# Client models: impl -> (model column, how it runs). Ruby models are llm_client.rb's.
CLIENTS = {
    "ruby-thread": ("ruby-thread", ["thread"]),
    "ruby-pool25": ("ruby-thread", ["pool", "--workers", "25"]),
    "ruby-async": ("ruby-fiber", ["async"]),
    "ruby-async-http": ("ruby-fiber", ["async-http"]),
    "c-thread": ("thread", "thread"),
    "c-pool25": ("thread", "pool"),
    "c-fiber": ("fiber", "fiber"),
}
RELAYS = {
    "puma-5": "ruby-thread", "puma-25": "ruby-thread", "async-http-server": "ruby-fiber",
    "c-thread": "thread", "c-fiber": "fiber",
}


def log(msg):
    el = time.monotonic() - T_START
    print(f"[ruby {int(el) // 60}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


def mock(a, label, margs, seed):
    return peerlib.mock(a.bin, label, margs, seed)


def run_client(a, impl, port, n, tokens, timeout_s, per_conv=None, mock_pid=None):
    """One client run; returns its JSON (the wl-llm shape) with kernel_est_kib, or None."""
    model, how = CLIENTS[impl]
    if isinstance(how, str):
        argv = [os.path.join(a.bin, "wl-llm"), "--model", how, "--target",
                f"127.0.0.1:{port}", "--n", str(n), "--max-tokens", str(tokens),
                "--timeout", str(timeout_s)]
    else:
        argv = ["ruby", CLIENT, "--model"] + how + ["--target", f"127.0.0.1:{port}",
                                                    "--n", str(n), "--max-tokens",
                                                    str(tokens), "--timeout", str(timeout_s)]
    if per_conv:
        argv += ["--per-conv", per_conv]
    return peerlib.run_client(argv, a.out, "ruby", f"{impl} n={n}", timeout_s, log,
                              extra_raw={"impl": impl}, mock_pid=mock_pid)


def record_client(tab, case, impl, n, j):
    peerlib.record_client(tab, case, CLIENTS[impl][0], impl, n, j)


# the post's pairs (Ruby threads over Ruby Async) and each Ruby model over the C floor
PAIRS = [("ruby-thread", "ruby-async"), ("ruby-pool25", "ruby-async"),
         ("ruby-async", "c-fiber"), ("ruby-thread", "c-thread")]


def ratios(tab, label, n, js):
    """Same-round ratios of PAIRS (peerlib.ratios); impl is the client key here."""
    peerlib.ratios(tab, label, n, js, PAIRS, lambda i: CLIENTS[i][0], lambda i, j: i)


def client_plan(a):
    """(label, mock-llm args, tokens per conversation, N list, models, timeout s).
    tokens is a number, or a pair (lo, hi) for the marginal cost of a token: the same N
    conversations run with lo and with hi tokens each (mock-llm --output-tokens), and
    (CPU_hi - CPU_lo) / (tokens_hi - tokens_lo) leaves connection setup and unit creation
    out."""
    q = a.quick
    # the marginal, paced: tokens one per event (peerlib.MARGINAL, as peers/bench.py)
    mlabel, margs_m, mlen = peerlib.MARGINAL
    if a.smoke:
        return [("gpt4o-5tps", ["--profile", "gpt-4o", "--tps", "50", "--ttft-ms", "20"], 4,
                 [5], ["ruby-thread", "ruby-pool25", "ruby-async", "ruby-async-http", "c-fiber"],
                 20),
                (mlabel, margs_m, (4, 16), [5], ["ruby-async", "c-fiber"], 20)]
    # The order is the order of importance: a stage that runs out of its time share (on
    # a busy machine) loses its last steps, never the headline ones.
    return [
        # what a token costs the client as a stream delivers it (a wake-up each), every
        # model (the pool too)
        (mlabel, margs_m, mlen, [100],
         ["ruby-thread", "ruby-pool25", "ruby-async", "c-fiber"] if q else
         ["ruby-thread", "ruby-pool25", "ruby-async", "ruby-async-http", "c-thread", "c-fiber"],
         60),
        # many idle streams, the post's case: gpt-4o first-token time, 5 tokens/s per
        # stream, so that 10,000 streams stay within what mock-llm serves on one core
        # (Async::HTTP, the second Async client, is measured where it answers a question
        # of its own, the CPU per token above; here it would repeat Async's answer at the
        # cost of a minute.)
        # (quick: without the profile's stalls, as peers/bench.py: workloads/bench/run.py
        # stall_free, README "Time budget")
        ("gpt4o-5tps", ["--profile", "gpt-4o", "--tps", "5"] + wl.no_stalls(a), 8,
         [1000] if q else [10000, 1000, 100],
         ["ruby-thread", "ruby-async", "c-fiber"] if q else
         ["ruby-thread", "ruby-async", "c-thread", "c-fiber"], 60),
    ]


def client_models_at(label, n, models, r=0, a=None):
    if label == "gpt4o-5tps" and n == 100:  # C threads at 100 streams ask nothing new
        models = [m for m in models if m != "c-thread"]
    # The C clients are the floor and ceiling beside Ruby, measured the same way (same
    # client, mock-llm, draws and N) in peers/bench.py, 3 rounds, for the README's peers
    # table and figure: here they are a same-run anchor, one round (runs=1 in their rows,
    # and claims.py says "one run") unless --runs, for make bench's 20-minute budget
    # (scripts/bench.sh).
    if r > 0 and not (a and a.runs):
        models = [m for m in models if not m.startswith("c-")]
    return models


def bench_llm(a, tab, budget_end):
    """Round by round: every profile, N and model once per round, models rotated, so
    that a run cut short by its time budget loses a round (the runs column says how
    many were made), never a whole N."""
    runs = a.runs or (1 if a.quick or a.smoke else 3)
    plan = client_plan(a)
    if getattr(a, "marginal_only", False):  # --only marginal: the paced marginal alone
        plan = [p for p in plan if isinstance(p[2], tuple)]
    for r in range(runs):
        for label, margs, tokens, ns, models, tmo in plan:
            lengths = tokens if isinstance(tokens, tuple) else (tokens,)
            for n in ns:
                ms = client_models_at(label, n, models, r, a)
                js = {}
                for t in lengths:
                    for i in range(len(ms)):
                        impl = ms[(i + r) % len(ms)]
                        lab = label if len(lengths) == 1 else f"{label}-t{t}"
                        if time.monotonic() > budget_end:
                            log(f"llm: time budget spent at {lab} n={n} {impl} run {r + 1}; "
                                f"skipped the rest")
                            return
                        log(f"llm {lab} n={n}: {impl} run {r + 1}/{runs}")
                        extra = ["--output-tokens", str(t)] if len(lengths) > 1 else []
                        m = mock(a, label, margs + extra, 11)
                        try:
                            j = run_client(a, impl, m.port, n, t, tmo,
                                           mock_pid=m.proc.pid)
                        finally:
                            m.stop()
                        if not j:
                            continue
                        if j["failed"]:
                            log(f"  {j['failed']} failed: {j['causes']}")
                        record_client(tab, f"llm/{impl}/{lab}/n={n}", impl, n, j)
                        js[(impl, t)] = j
                    ratios(tab, lab, n, {k[0]: v for k, v in js.items() if k[1] == t})
                if len(lengths) == 2:
                    marginal(tab, label, n, lengths, ms, js)


def marginal(tab, label, n, lengths, models, js):
    """CPU per extra 1,000 tokens, from one run's two lengths of each model."""
    peerlib.marginal(tab, label, n, lengths, models, js, PAIRS, lambda i: CLIENTS[i][0],
                     lambda i, j: i)


def starve_plan(a):
    """[(N users, runs, models)] of the starvation step, by mode."""
    if a.smoke:
        return [(30, 1, ["ruby-pool25", "ruby-async"])]
    elif a.quick:
        # 100 users: the pool's 26th..100th wait 3 waves of a conversation; and 1,000 on the
        # pool and Async as the full run has them (40 waves, ~9 s): issue 13 asks quick for
        # the pool's rows at N >= 1,000
        return [(1, a.runs or 1, ["ruby-async"]),
                (100, a.runs or 1, ["ruby-pool25", "ruby-async", "c-fiber"]),
                (1000, a.runs or 1, ["ruby-pool25", "ruby-async"])]
    else:
        runs = a.runs or 3
        # One user alone: what a conversation takes with nobody queued, the yardstick of
        # "does Net::HTTP yield under Async?" (if it did not, 100 users would take 100x).
        return [(1, runs, ["ruby-async", "ruby-thread"]),
                (100, runs, ["ruby-pool25", "ruby-async", "ruby-thread", "c-pool25", "c-fiber"]),
                # the pool takes 40 waves of a conversation here (~8 s): the C pool's
                # staircase is the same arithmetic and is left to the workloads harness
                (1000, runs, ["ruby-pool25", "ruby-async", "c-fiber"])]


def bench_starve(a, tab, budget_end):
    """The 25-thread pool (Sidekiq's default) as N users arrive at once, beside Async and
    a thread each; the C pool and C fibers as the floor."""
    scale = "0.25"
    label = f"fixed-x{scale}"
    plan = starve_plan(a)
    for r in range(max(p[1] for p in plan)):  # round by round, like bench_llm
        for n, runs, ms in plan:
            if r >= runs:
                continue
            for i in range(len(ms)):
                if time.monotonic() > budget_end:
                    log("starve: time budget spent; skipped the rest")
                    return
                impl = ms[(i + r) % len(ms)]
                log(f"starve {label} n={n}: {impl} run {r + 1}/{runs}")
                m = wl.Server("mock-llm fixed", [os.path.join(a.bin, "mock-llm"), "--listen",
                                                 "127.0.0.1:0", "--seed", "5", "--profile",
                                                 "fixed", "--time-scale", scale])
                pc = os.path.join(a.out, "tmp", f"ruby-starve-{impl}-n{n}.csv")
                os.makedirs(os.path.dirname(pc), exist_ok=True)
                try:
                    j = run_client(a, impl, m.port, n, 64, 60, per_conv=pc)
                finally:
                    m.stop()
                if not j:
                    continue
                case = f"starve/{impl}/{label}/n={n}"
                model = CLIENTS[impl][0]
                add = lambda metric, unit, v: tab.add(case, model, impl, "n", n, metric, unit, v)
                if j["ttft_user26_ms"] >= 0:
                    add("ttft_user26_ms", "ms", j["ttft_user26_ms"])
                add("ttft_first25_p50_ms", "ms", j["ttft_first25_p50_ms"])
                if n > 26:
                    add("ttft_rest_p50_ms", "ms", j["ttft_rest_p50_ms"])
                    add("ttft_rest_p99_ms", "ms", j["ttft_rest_p99_ms"])
                add("ttft_p99_ms", "ms", j["ttft_p99_ms"])
                add("seconds", "s", j["elapsed_s"])
                add("completed_count", "count", j["ok"])
                add("errors", "count", j["failed"])
                add("cpu_s", "s", j["cpu_s"])


# ---- relay -------------------------------------------------------------------------

def start_relay(a, impl, up_port, tmp):
    up = f"127.0.0.1:{up_port}"
    if impl.startswith("puma"):
        argv = ["puma", "--no-config", "-b", "tcp://127.0.0.1:0", "-e", "production"]
        if impl != "puma-5":  # puma-5 is Puma's own default (5 threads on MRI)
            argv += ["-t", "0:" + impl.split("-")[1]]
        argv.append(RELAY_RU)
        env = dict(os.environ, RELAY_UPSTREAM=up)
        return RubyServer(impl, argv, env, tmp)
    if impl == "async-http-server":
        return RubyServer(impl, ["ruby", RELAY_ASYNC, "--upstream", up], None, tmp)
    return wl.Server(impl, [os.path.join(a.bin, "wl-relay"), "--model", impl[2:],
                            "--upstream", up, "--max-seconds", "300"])


class RubyServer(wl.Server):
    """A Ruby app server whose output goes to a log file in tmp (no pipe to drain while
    it serves); ready when it says "[Ll]istening on [http://]127.0.0.1:PORT" (Puma's
    banner, or relay_async.rb's)."""

    def __init__(self, name, argv, env, tmp):
        self.name = name
        self.log_path = os.path.join(tmp, f"{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True, env=env, cwd=tmp,
                                         preexec_fn=wl._die_with_parent)
        wl.CHILDREN.append(self)
        self.port = None
        self.banner = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.port is None:
            with open(self.log_path, errors="replace") as f:
                self.banner = [l.strip() for l in f]
            for line in self.banner:
                m = re.search(r"[Ll]istening on (?:http://)?127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
            if self.port is None:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        if not self.port:
            self.stop()
            raise RuntimeError(f"{name} did not start: {' | '.join(self.banner)[-400:]}")

    def stop(self, graceful=True):
        """SIGTERM to its process group, then SIGKILL after 10 s; graceful=False: SIGKILL at
        once (after its run has been measured: Puma's graceful stop finishes the streams its
        users gave up on, 0.5-1.2 s at 1,000 users, and measures nothing). Returns its
        output."""
        if self in wl.CHILDREN:
            wl.CHILDREN.remove(self)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:
            with open(self.log_path, errors="replace") as f:
                out = f.read()
            os.remove(self.log_path)
        except OSError:
            out = ""
        return out


def relay_plan(a):
    if a.smoke:
        return (["--profile", "gpt-4o", "--tps", "50", "--ttft-ms", "20"], 4, [5], 1, 10,
                list(RELAYS))
    # gpt-4o first-token time, 5 tokens/s, 3 tokens: a stream holds its connection (and a
    # Puma thread) ~1 s; users give up after 3 s, so a server that queues them shows as
    # streams never completed instead of as a long run
    # quick: 100 users only (every relay, one round): what Puma's threads cannot serve
    # within the patience shows at 100 already
    return (["--profile", "gpt-4o", "--tps", "5"], 3, [100] if a.quick else [100, 1000],
            a.runs or (1 if a.quick else 3), 3,
            [r for r in RELAYS if r != "c-thread"] if a.quick else list(RELAYS))


def bench_relay(a, tab, budget_end):
    margs, tokens, ns, runs, patience, impls = relay_plan(a)
    label = "gpt4o-5tps" if not a.smoke else "smoke"
    tmp = tempfile.mkdtemp(prefix="fiberbench-ruby-")
    try:
        for r in range(runs):  # round by round, like bench_llm
            # the C relays are the floor and ceiling beside Puma and Async: a same-run
            # anchor, one round (runs=1 in their rows; claims.py says so) unless --runs
            rimpls = impls if r == 0 or a.runs else [x for x in impls if not x.startswith("c-")]
            for n in ns:
                for i in range(len(rimpls)):
                    if time.monotonic() > budget_end:
                        log("relay: time budget spent; skipped the rest")
                        return
                    impl = rimpls[(i + r) % len(rimpls)]
                    log(f"relay {label} n={n}: {impl} run {r + 1}/{runs}")
                    m = mock(a, "relay", margs, 23)
                    srv = None
                    try:
                        srv = start_relay(a, impl, m.port, tmp)
                        th = [b for b in getattr(srv, "banner", []) if "threads" in b]
                        if th and r == 0 and n == ns[0]:
                            log(f"  {impl}: {th[0].lstrip('* ')}")
                        relay_once(a, tab, impl, srv, n, tokens, patience, label)
                    except RuntimeError as e:
                        log(f"  {impl}: {e}")
                    finally:
                        if srv:
                            # measured (relay_once read its CPU and peaks): nothing to wait for
                            srv.stop(**({"graceful": False} if isinstance(srv, RubyServer)
                                        else {}))
                        m.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def relay_once(a, tab, impl, srv, n, tokens, patience, label):
    pid = srv.proc.pid
    base = status(pid) or {}
    cpu0 = wl.cpu_seconds([pid])
    argv = [os.path.join(a.bin, "wl-llm"), "--model", "fiber", "--target",
            f"127.0.0.1:{srv.port}", "--n", str(n), "--max-tokens", str(tokens),
            "--timeout", str(patience), "--retries", "0"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=wl._die_with_parent)
    pk = Peaks()
    deadline = time.monotonic() + patience + 60
    while p.poll() is None and time.monotonic() < deadline:
        pk.sample(pid)
        peerlib.wait_exit(p, 0.05)
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    pk.sample(pid)
    cpu = wl.cpu_seconds([pid]) - cpu0
    j = next((json.loads(l) for l in out.splitlines() if l.startswith("{")), None)
    if not j:
        log(f"  wl-llm against {impl} failed (exit {p.returncode}): {err.strip()[-300:]}")
        return
    with open(os.path.join(a.out, "tmp", "ruby-raw.jsonl"), "a") as f:
        f.write(json.dumps({"relay": impl, "server_cpu_s": cpu, "server_hwm_kib": pk.hwm,
                            "server_base_kib": base.get("VmRSS"), **j}) + "\n")
    case = f"relay/{impl}/{label}/n={n}"
    model = RELAYS[impl]
    add = lambda metric, unit, v: tab.add(case, model, impl, "n", n, metric, unit, v)
    add("completed_count", "count", j["ok"])
    add("errors", "count", j["failed"])
    if j["ok"]:
        add("ttft_p50_ms", "ms", j["ttft_p50_ms"])
        add("ttft_p99_ms", "ms", j["ttft_p99_ms"])
        add("total_p50_ms", "ms", j["total_p50_ms"])
    add("tokens_per_s", "tokens/s", j["tokens_per_s"])
    add("rss_bytes", "bytes", base.get("VmRSS", 0) * 1024)  # the server before the load
    add("vm_hwm_bytes", "bytes", pk.hwm * 1024)
    add("kernel_est_bytes", "bytes", pk.kernel_est_kib() * 1024)
    add("live_units", "count", pk.threads)  # the server's threads at the peak
    add("cpu_s", "s", cpu)
    if j["tokens"]:
        add("cpu_per_1k_tokens_ms", "ms", cpu * 1000 / (j["tokens"] / 1000))
    add("loadgen_cpu_s", "s", j["cpu_s"])
    for cause, cnt in j["causes"].items():
        tab.add(f"{case}/fail={wl.slug(cause)}", model, impl, "n", n, "errors", "count", cnt)
    if j["failed"]:
        log(f"  {impl} n={n}: {j['ok']} completed, {j['failed']} not: {j['causes']}")


# ---- main --------------------------------------------------------------------------

def versions():
    lines = []
    try:
        v = subprocess.run(["ruby", "-e", "print RUBY_DESCRIPTION"], capture_output=True,
                           text=True, timeout=20).stdout
        lines.append(f"ruby: {v}")
        g = subprocess.run(
            ["ruby", "-e", "require 'async'; require 'async/http/version'; require 'puma/const'; "
             "require 'json'; print [\"async #{Async::VERSION}\", "
             "\"async-http #{Async::HTTP::VERSION}\", \"puma #{Puma::Const::PUMA_VERSION}\", "
             "\"json #{JSON::VERSION}\"].join(', ')"],
            capture_output=True, text=True, timeout=20).stdout
        lines.append(f"ruby gems: {g}")
    except (OSError, subprocess.SubprocessError):
        lines.append("ruby: not found")
    d = subprocess.run(["dpkg-query", "-W", "-f", "${Package}=${Version} "] + GEMS,
                       capture_output=True, text=True).stdout
    lines.append(f"debian packages: {d.strip()}")
    return lines


def loadavg():
    return peerlib.loadavg()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick subset (within 2 minutes)")
    ap.add_argument("--smoke", action="store_true",
                    help="every model at a tiny N, seconds in all (the test)")
    ap.add_argument("--only", default="llm,starve,relay",
                    help="comma list: llm, starve, relay; or marginal (llm's paced marginal "
                         "alone)")
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"),
                    help="where wl-llm, wl-relay and mock-llm are (default build/bin)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"), help="results directory")
    ap.add_argument("--runs", type=int, default=0, help="repetitions (default 3; quick 1)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="start no new step after this long (default 100 quick, 540 full); "
                         "llm gets 68%%, starve 11%%, relay 21%% of it")
    a = ap.parse_args()
    stages = [s for s in a.only.split(",") if s]
    for s in stages:
        if s not in ("llm", "starve", "relay", "marginal"):
            ap.error(f"unknown stage '{s}'")
    if "marginal" in stages:
        # the paced marginal alone, as the llm stage (its own bounded run)
        a.marginal_only = "llm" not in stages
        stages = [s for s in stages if s != "marginal"] + ([] if "llm" in stages else ["llm"])
    if a.runs < 0 or a.runs > 50:
        ap.error("--runs must be 1..50")
    for b in ("wl-llm", "wl-relay", "mock-llm"):
        if not os.access(os.path.join(a.bin, b), os.X_OK):
            wl.die(f"{b} not found in {a.bin} (build first, or pass --bin)")
    if not shutil.which("ruby"):
        wl.die("ruby not found (scripts/deps.sh ruby installs it)")
    if "relay" in stages and not shutil.which("puma"):
        wl.die("puma not found (scripts/deps.sh ruby installs it)")
    chk = subprocess.run(["ruby", "-e", "require 'async'; require 'async/http/internet'"],
                         capture_output=True, text=True)
    if chk.returncode != 0:
        wl.die("ruby-async / ruby-async-http missing (scripts/deps.sh ruby installs them): "
               + chk.stderr.strip()[-200:])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    budget = a.max_seconds or (60 if a.smoke else 100 if a.quick else 540)
    budget_end = T_START + budget
    signal.signal(signal.SIGTERM, lambda *_: (wl.cleanup(), sys.exit(143)))
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    load0 = loadavg()
    log(f"mode {mode}; stages {','.join(stages)}; open files {hard}; budget {int(budget)}s; "
        f"load {load0}")
    tab = wl.Table("ruby")
    failed = False
    # Each stage gets its share of the time left, so that on a busy machine every stage
    # still writes rows (with fewer runs: the runs column says how many) instead of the
    # last one being skipped.
    share = {"llm": 0.68, "starve": 0.11, "relay": 0.21}
    try:
        for s, fn in (("llm", bench_llm), ("starve", bench_starve), ("relay", bench_relay)):
            if s in stages:
                order = [x for x in ("llm", "starve", "relay") if x in stages]
                left = sum(share[x] for x in order[order.index(s):])
                now = time.monotonic()
                stage_end = now + (budget_end - now) * share[s] / left
                try:
                    fn(a, tab, stage_end)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    log(f"{s} FAILED: {e}")
                    failed = True
    finally:
        wl.cleanup()
    if tab.order:
        tab.write(a.out, [f"mode: {mode}"] + versions() + [
            f"open files per process: {hard}",
            f"load average at start: {load0}; at end: {loadavg()}",
            "pinning: none (every client, server and mock-llm unpinned)",
            "mock-llm: a fresh process for every run (the same draws for every model); "
            "profiles as in the case names (mock-llm --list-profiles); the gpt4o-5tps "
            "clients " + wl.stalls_note(a) + " (the relays keep them)",
            "relay users: build/bin/wl-llm --model fiber --retries 0, patience in --timeout"])
    else:
        failed = True
        log("no rows measured")
    log("done" + (" (with failures, see above)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
