#!/usr/bin/env python3
"""mock-llm benchmark: capacity against the physical floor, concurrency, keep-alive (vs nginx).

Runs the server (build/bin/mock-llm, or the floor build/bin/mllm-floor) pinned to CPU 0
and the load (build/bin/mllm-load, or wrk) on CPU 1, and writes results/mockllm.csv (tidy
schema, one figure per row) plus results/mockllm.machine.txt.

  capacity     at 1,000 and 10,000 streams, mock-llm beside the floor in the same run:
               mllm-floor does only what the kernel must (one write() of a real
               chat.completion.chunk event per event, round-robin over the open streams,
               paced); both are read by the same mllm-load on the other CPU, both with
               --busy-poll. Per run, each one's highest offered rate whose emission
               lateness p99 (from the schedule's deadlines) is <= 1 ms, by a ladder of
               doublings and a geometric bisection, the two searches taking turns probe
               by probe, a failure shaped like a stall measured once more on both sides
               (the method an A/A test chose: ab_knee.py --aa, README "The method's own
               noise"); the floor's maximum rate and sender CPU per event; the ratio
               mock-llm / floor run by run. Medians of 3 runs.
  concurrency  10,000 and (full mode) 19,000 open streams at 5 tokens/s each, the server
               halting between deadlines and with --busy-poll: how many stay open,
               lateness p99 held (after the ramp), in the ramp and over the whole run,
               server RSS per open stream, request-to-first-event time; beside each run
               mllm-floor paced to the same rate, same mode (is a miss mock-llm's or the
               machine's?).
  keepalive    wrk, 32 keep-alive connections: mock-llm GET /health, mock-llm POST
               /v1/chat/completions (non-streaming, no delays), nginx `return 200`.

Every probe records the load generator's own state (client_busy_percent: the share of
the window its spinning reader was not idle); a knee where it saturated is flagged.
Quick mode (--quick) takes under a minute, full mode about six and a half on the Zen 3
EPYC (capacity 209 s, concurrency 165 s, keep-alive ~20 s).
"""
import argparse
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def log(msg):
    print(f"[mockllm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent():
    """In the child before exec: SIGTERM it when this harness dies, however it dies, so
    no server or load outlives an interrupted run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def pin(cpu):
    # Pin only when the CPU exists: on a one-core machine both sides share it, and
    # the machine file says so.
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []


class Server:
    """mock-llm on CPU 0; stops with SIGTERM and checks the clean exit."""

    def __init__(self, binary, args):
        self.p = subprocess.Popen(pin(0) + [binary, "--listen", "127.0.0.1:0"] + args,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=_die_with_parent)
        line = self.p.stdout.readline()
        m = re.match(r"[\w-]+ listening on 127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            self.p.kill()
            raise RuntimeError(f"{binary} did not start: {line!r} {self.p.stderr.read()}")
        self.port = int(m.group(1))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = -9
        if rc != 0:
            log(f"warning: mock-llm exited with {rc}")


def run_load(bindir, port, pid, streams, warmup, window, period_ms=None, stagger_ms=0):
    cmd = pin(1) + [os.path.join(bindir, "mllm-load"), "--target", f"127.0.0.1:{port}",
                    "--streams", str(streams), "--warmup", str(warmup), "--window",
                    f"{window:.6g}", "--rss-pid", str(pid), "--busy-poll"]
    cmd += ["--period-ms", f"{period_ms:.6g}"] if period_ms else ["--stagger-ms", str(stagger_ms)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                         preexec_fn=_die_with_parent)
    if out.returncode != 0:
        raise RuntimeError(f"mllm-load failed: {out.stderr.strip()}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\w.]+)", out.stdout)}


def stream_server(bindir, tps, busy_poll=False, extra=()):
    # Streams that never end within the run, one token per event, no time to first
    # token: the load is exactly streams x tps events per second.
    return Server(os.path.join(bindir, "mock-llm"),
                  ["--profile", "fixed", "--ttft-ms", "0", "--tps", f"{tps:.6g}",
                   "--output-tokens", "100000000", "--max-conns", "19500",
                   "--max-pending", str(1 << 20)] + (["--busy-poll"] if busy_poll else []) +
                  list(extra))


# How the floor paces its streams: "arrival", each stream from its request's arrival
# exactly as mock-llm times it, so both are offered the same load, bunched wherever the
# client's requests were (before 3 December: "even", one evenly spaced sequence over all
# streams, a smoother load than mock-llm's; mock-llm/README "The tail at 10,000 streams").
FLOOR_PACING = "arrival"


def floor_server(bindir, tps, busy_poll=False, pacing=None):
    """mllm-floor: one write() of an event-sized buffer per event, round-robin, tps per
    stream (tps 0: as fast as it can), paced as FLOOR_PACING (or `pacing`)."""
    return Server(os.path.join(bindir, "mllm-floor"),
                  ["--tps", f"{tps:.6g}", "--pacing", pacing or FLOOR_PACING] +
                  (["--busy-poll"] if busy_poll else []))


def wrk(url, seconds, conns, script=None):
    cmd = pin(1) + ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {out.stdout} {out.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return float(m.group(1)), int(errors.group(1)) if errors else 0


class Nginx:
    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        temps = "\n".join(f"  {k}_temp_path {self.dir}/{k};" for k in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
{temps}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
""")
        self.p = subprocess.Popen(pin(0) + ["nginx", "-p", self.dir, "-c", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start")

    def stop(self):
        self.p.send_signal(signal.SIGQUIT)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()


class Rows:
    def __init__(self):
        self.rows = []

    def add(self, case, model, impl, param, value, metric, unit, samples):
        samples = [s for s in samples if s == s]  # drop NaN
        if not samples:
            return
        fmt = lambda x: f"{x:.6g}"
        self.rows.append(",".join(["mockllm", case, model, impl, param, str(value), metric,
                                   unit, fmt(statistics.median(samples)), fmt(min(samples)),
                                   fmt(max(samples)), str(len(samples))]))


P99_OK_US = 1000         # the capacity criterion: emission lateness p99 <= 1 ms
CAP_STREAMS = (1000, 10000)
CAP_START = {"floor": 200000, "mock-llm": 100000}  # where run 1's ladder starts
CAP_MIN, CAP_MAX = 6250, 1600000
RUNQ_RETRY_PCT = 1.0     # a failed probe whose server waited this much for its CPU, or
                         # whose CPU the hypervisor stole a tick of (steal_cpu0_pct), is
                         # the machine's (the "machine" rule measures only those again)
RULES = ("machine", "best-of-2")
# The method (README "Against the floor", the A/A test): every failure measured once
# more, both sides alike, and the two searches taking turns probe by probe.
CAP_RULE = "best-of-2"   # the pass rule at a rate, the same for both sides (Side.measure)
CAP_WARMUP, CAP_WINDOW = 0.3, 0.5  # seconds: a probe's warm-up and measuring window
CAP_PAIRED = True        # the two sides' searches take turns probe by probe
CAP_SHARE_QUICK, CAP_SHARE_FULL = 45, 200  # seconds: no run starts past this share


def whole_periods(window, tps):
    """The measuring window rounded up to a whole number of event periods (1/tps).

    Over a whole number of periods every stream emits the same number of events,
    whatever its phase; over 1.05-1.25 periods (10,000 streams below ~40,000 events/s:
    0.4-0.5 s gaps against a 0.5 s window) the count depends on how the streams' phases
    fall, and those are bunched when opening 10,000 connections takes longer than one
    period: the emitted rate came out at 92-96% of offered with p99 <= 100 us, and the
    probe failed on the rate criterion, not on lateness."""
    if tps <= 0:
        return window
    period = 1.0 / tps
    return period * math.ceil(window / period - 1e-9)


def probe(args, impl, n, rate, busy, warmup, window, extra=(), label=None):
    """One offered rate against one fresh server: rate = n streams x rate/n tokens/s
    (rate 0: the floor as fast as it can). Returns mllm-load's figures plus ok/flags."""
    tps = rate / n
    if impl == "floor":
        srv = floor_server(getattr(args, "floor_bin", None) or args.bin, tps, busy,
                           getattr(args, "floor_pacing", None))
    else:
        srv = stream_server(args.bin, tps, busy, extra)
    try:
        r = run_load(args.bin, srv.port, srv.p.pid, n, warmup, whole_periods(window, tps),
                     period_ms=1000.0 / tps if tps > 0 else 10.0)
    finally:
        srv.stop()
    r["offered"] = rate
    # The load generator is the hidden ceiling when its core is nearly always busy
    # reading, when it trails what the server says it wrote, or when its backlog (events
    # unread in its sockets) grew over the window by more than 1% of the window's events
    # (it fell that far behind) and more than 1 ms of them: a reader that keeps up holds
    # about one round's worth at each end, which at 10,000 sockets can itself exceed 1 ms
    # of events and differs end to end by as much, so the growth is judged, not the level
    # (client_backlog_count, the level at the end, is recorded beside it). Quick run,
    # loaded Intel: 80 events grown at 50k/s with the reader 26% busy, 1,661 at 157k/s
    # flat out at 10,000 streams (2.1% of the window's events).
    win_events = r["server_events_per_s"] * whole_periods(window, tps)
    r["client_saturated"] = (r["client_busy_pct"] > 90 or
                             r["client_events_per_s"] < 0.97 * r["server_events_per_s"] or
                             r.get("client_backlog_growth_events",
                                   r.get("client_backlog_events", 0)) >
                             max(16 + 0.001 * r["server_events_per_s"], 0.01 * win_events))
    r["ok"] = (r["open"] == n and r["late_p99_us"] <= P99_OK_US and
               r["server_events_per_s"] >= 0.97 * rate)
    log(f"  {label or impl:8s} n={n:<5d} offered {rate:>9,.0f}/s -> {r['server_events_per_s']:>9,.0f}/s"
        f"  p50 {r['late_p50_us']:>6.0f} p99 {r['late_p99_us']:>6.0f} us"
        f"  server {r['server_cpu_pct']:3.0f}% cpu {r['server_cpu_us_per_event']:.2f} us/ev"
        f" (kernel {100 * r['server_sys_share']:.0f}%) runq-wait {r['server_runq_wait_pct']:.0f}%"
        f" steal {r.get('steal_cpu0_pct', 0):.0f}%"
        f"  client busy {r['client_busy_pct']:.0f}% backlog {r.get('client_backlog_events', 0):.0f}"
        f" (grew {r.get('client_backlog_growth_events', 0):.0f})"
        + ("  CLIENT SATURATED" if r["client_saturated"] else "")
        + ("  ok" if r["ok"] and rate else ""))
    return r


def knee_search(start, steps):
    """The search for the highest offered rate whose probe passes, as a generator: it
    yields each rate to measure (rounded to 100 events/s) and is sent back whether that
    rate passed; a rate already measured is not asked again. A ladder of doublings from
    start to the first failure, then `steps` geometric bisections of that bracket (3
    steps: within 9%; 4: within 4.4%). Returns (rate, bracket top): rate 0 when even
    CAP_MIN failed, top None when everything up to CAP_MAX passed (censored). Driven by
    a generator so that two searches can take turns probe by probe (run_searches)."""
    seen = {}

    def ask(rate):
        rate = round(rate, -2)
        if rate not in seen:
            seen[rate] = yield rate
        return seen[rate], rate

    good, r = yield from ask(start)
    if good:
        a = r
        while True:
            if a * 2 > CAP_MAX:
                return a, None
            good, b = yield from ask(a * 2)
            if not good:
                break
            a = b
    else:
        b = r
        while True:
            if b / 2 < CAP_MIN:
                return 0.0, b
            good, a = yield from ask(b / 2)
            if good:
                break
            b = a
    for _ in range(steps):
        good, m = yield from ask(math.sqrt(a * b))
        if m in (a, b):
            break
        if good:
            a = m
        else:
            b = m
    return a, b


class Side:
    """One side of a capacity comparison (the floor, mock-llm, or in an A/A test the
    floor again): its server, how it is probed and the pass rule, and every probe and
    repeat it made, so the CSV can count them."""

    def __init__(self, label, impl, args, n, busy=True, warmup=None, window=None, rule=None):
        self.label, self.impl, self.args, self.n, self.busy = label, impl, args, n, busy
        self.warmup = CAP_WARMUP if warmup is None else warmup
        self.window = CAP_WINDOW if window is None else window
        self.rule = CAP_RULE if rule is None else rule
        if self.rule not in RULES:
            raise ValueError(f"unknown pass rule {self.rule!r} ({', '.join(RULES)})")
        self.probes = 0        # probes measured, repeats included
        self.retried = 0       # rates measured again after a failure
        self.retry_passed = 0  # ... whose repeat passed (a failure turned into a pass)
        self.retry_machine = 0  # ... that failed with the machine's evidence (run-queue
        self.retry_steal = 0    # wait >= 1% or steal), of them for the steal alone

    def measure(self, rate):
        """Probe one offered rate by the side's pass rule; returns the deciding probe."""
        r = probe(self.args, self.impl, self.n, rate, self.busy, self.warmup, self.window,
                  label=self.label)
        self.probes += 1
        if r["ok"]:
            return r  # passes are never repeated: a stall only ever fails a probe
        machine = (r["server_runq_wait_pct"] >= RUNQ_RETRY_PCT or
                   r.get("steal_cpu0_pct", 0) > 0)
        # "machine" (the rule before 3 December evening): a failure is measured again
        # only while the server waited >= 1% of the window for its CPU (one 5 ms
        # preemption delays more than 1% of its events) or the hypervisor stole a tick
        # of its CPU (100 ms slices of 10,000 streams x 5 tokens/s held p99 <= 1 ms in 99
        # of 106 slices without steal or >= 2% run-queue wait and failed in 119 of 135
        # with them, README "Holding 19,000 streams"). "best-of-2": every failure shaped
        # like a stall is measured once more, evidence or not - the guest does not see
        # every host stall (the A/A test, README "The method's own noise"), and a stall
        # can only fail a probe, so a rate that passes once is one the server holds. A
        # stall leaves most events on time; an overload does not: a failure with
        # lateness p50 > 1 ms is not repeated (in the A/A windows and a capacity run, 1
        # of 70 such repeats passed, 19 of 72 stall-shaped ones). Both sides alike.
        if self.rule == "machine" and not machine:
            return r
        if self.rule == "best-of-2" and not r["late_p50_us"] <= P99_OK_US:
            return r
        self.retried += 1
        if machine:
            self.retry_machine += 1
            if r["server_runq_wait_pct"] < RUNQ_RETRY_PCT:
                self.retry_steal += 1
        log(f"  {self.label} n={self.n} {rate:,.0f}/s failed (server waited "
            f"{r['server_runq_wait_pct']:.1f}% of the window for its CPU, "
            f"{r.get('steal_cpu0_pct', 0):.1f}% stolen): again ({self.rule})")
        r2 = probe(self.args, self.impl, self.n, rate, self.busy, self.warmup, self.window,
                   label=self.label)
        self.probes += 1
        if r2["ok"]:
            self.retry_passed += 1
        return r2


def run_searches(sides, starts, steps, paired=None):
    """The knee search of each side. Paired (CAP_PAIRED): the searches take turns probe
    by probe, the side that goes first alternating every turn (A B B A A B ...), so both
    see the same minutes of the host's drift; otherwise one after the other in the
    order given. Returns per side (rate, the deciding probe at that rate or None,
    bracket top), as find_knee does."""
    paired = CAP_PAIRED if paired is None else paired
    out = [None] * len(sides)
    gens = [knee_search(st, steps) for st in starts]
    probes = [{} for _ in sides]
    nxt = [None] * len(sides)

    def step(i, ok=None):
        try:
            rate = gens[i].send(ok) if ok is not None else next(gens[i])
        except StopIteration as e:
            a, b = e.value
            out[i] = (a, probes[i].get(a), b)
            return None
        return rate

    def measure(i):
        r = sides[i].measure(nxt[i])
        probes[i][nxt[i]] = r
        nxt[i] = step(i, r["ok"])

    if not paired:
        for i in range(len(sides)):
            nxt[i] = step(i)
            while nxt[i] is not None:
                measure(i)
        return out
    for i in range(len(sides)):
        nxt[i] = step(i)
    turn = 0
    while any(x is not None for x in nxt):
        order = list(range(len(sides)))
        if turn % 2:
            order.reverse()
        for i in order:
            if nxt[i] is not None:
                measure(i)
        turn += 1
    return out


def find_knee(args, impl, n, busy, start, steps, warmup, window, rule=None):
    """The highest offered rate whose p99 lateness is <= 1 ms, for one server alone
    (knee_search by the pass rule). Returns (rate, the probe at that rate or None,
    bracket top)."""
    side = Side(impl, impl, args, n, busy, warmup, window, rule)
    return run_searches([side], [start], steps, paired=False)[0]


def capacity(args, rows):
    """mock-llm against the floor (mllm-floor), in the same run, same pinning, same
    reader, same mode (--busy-poll on both: neither pays for waking a halted core):
    each one's highest offered rate with p99 lateness <= 1 ms, found per run by a ladder
    and a bisection; the floor's maximum rate and sender CPU per event; the ratio."""
    runs = 1 if args.quick else 3
    # Four bisections in full mode: the last bracket is 2^(1/16) = 4.4% wide. With three
    # (9%) each knee's error alone spans the margin a ratio near the 0.8x target needs.
    steps = 2 if args.quick else 4
    busy = True
    impls = ("floor", "mock-llm")
    # quick: 1,000 streams only (fewer sizes, the same quantities; quick rows are never
    # published, and make reproduce does not read this harness): about half of quick
    # mode's capacity time, README "Time budget"
    sizes = CAP_STREAMS[:1] if args.quick else CAP_STREAMS
    knees = {(i, n): [] for i in impls for n in sizes}
    sides = {(i, n): [] for i in impls for n in sizes}  # each run's Side: its probe counts
    maxes = {n: [] for n in sizes}
    nocoal = {n: [] for n in sizes}
    # A loaded machine makes every knee search run its ladder down to the bottom: the
    # part stops starting runs past its share of the time, and says so.
    t_end = time.monotonic() + (CAP_SHARE_QUICK if args.quick else CAP_SHARE_FULL)
    for run in range(runs):
        if run and time.monotonic() > t_end:
            log(f"capacity: time share spent after {run} of {runs} runs (a loaded machine?); "
                f"the rows have {run} runs")
            break
        # Which side goes first alternates run by run (floor first in odd runs, mock-llm
        # in even ones), for the flat-out pair and for the knee searches: the host's noise
        # drifts over minutes, and a fixed order put its drift on one side of the ratio.
        order = impls if run % 2 == 0 else impls[::-1]
        for n in sizes:
            # the flat-out pair keeps the short probe: a stall costs it a few events of
            # 0.5 s, not a pass/fail verdict
            for impl in order:
                if impl == "floor":
                    log(f"capacity run {run + 1}/{runs}, {n} streams: floor at full speed")
                    maxes[n].append(probe(args, "floor", n, 0, busy, 0.3, 0.5))
                else:
                    # mock-llm flat out with every event its own write (no coalescing): the
                    # like-for-like counterpart of the floor's maximum, CPU per event beside it
                    log(f"capacity run {run + 1}/{runs}, {n} streams: mock-llm at full "
                        f"speed, one write per event")
                    nocoal[n].append(probe(args, "mock-llm", n, 2000000, busy, 0.3, 0.5,
                                           ["--max-batch-events", "1"]))
            run_sides = [Side(impl, impl, args, n, busy) for impl in order]
            starts = []
            for impl in order:
                prev = knees[(impl, n)]
                starts.append(prev[-1][0] if prev and prev[-1][0] > 0 else CAP_START[impl])
            log(f"capacity run {run + 1}/{runs}, {n} streams: knee searches "
                + ", ".join(f"{i} from {st:,.0f}/s" for i, st in zip(order, starts))
                + f" ({'taking turns' if CAP_PAIRED else 'one after the other'}, pass rule "
                f"{CAP_RULE}, {CAP_WARMUP:g} s warm-up + {CAP_WINDOW:g} s window)")
            for side, k in zip(run_sides, run_searches(run_sides, starts, steps)):
                knees[(side.impl, n)].append(k)
                sides[(side.impl, n)].append(side)
                log(f"  {side.impl} n={n}: p99 <= 1 ms up to {k[0]:,.0f}/s"
                    + (f", not at {k[2]:,.0f}/s" if k[2] else " (the highest offered)")
                    + f"; {side.probes} probes, {side.retried} repeated, "
                    f"{side.retry_passed} of them passed")
    for n in sizes:
        m = maxes[n]
        case = f"capacity/floor/streams={n}/max-rate"
        rows.add(case, "floor", "mllm-floor", "streams", n, "events_per_s", "events/s",
                 [r["server_events_per_s"] for r in m])
        rows.add(case, "floor", "mllm-floor", "streams", n, "cpu_per_event_us", "us",
                 [r["server_cpu_us_per_event"] for r in m])
        rows.add(case, "floor", "mllm-floor", "streams", n, "kernel_share_percent", "percent",
                 [100 * r["server_sys_share"] for r in m])
        rows.add(case + "/client", "floor", "mllm-load", "streams", n, "client_busy_percent",
                 "percent", [r["client_busy_pct"] for r in m])
        # events left unread in the reader's sockets at the window's end: a floor whose
        # reader has a backlog measures the reader, not the floor
        rows.add(case + "/client", "floor", "mllm-load", "streams", n, "client_backlog_count",
                 "count", [r.get("client_backlog_events", float("nan")) for r in m])
        nc = nocoal[n]
        case = f"capacity/mock-llm/streams={n}/max-rate-one-write-per-event"
        for key, metric, unit, f in (("server_events_per_s", "events_per_s", "events/s", 1),
                                     ("server_cpu_us_per_event", "cpu_per_event_us", "us", 1),
                                     ("server_sys_share", "kernel_share_percent", "percent", 100),
                                     ("client_busy_pct", "client_busy_percent", "percent", 1),
                                     ("client_backlog_events", "client_backlog_count", "count", 1)):
            rows.add(case, "fiber", "mock-llm", "streams", n, metric, unit,
                     [r.get(key, float("nan")) * f for r in nc])
        # Flat out the reader is usually the ceiling (mock-llm/README): a run's ratio is
        # kept only when neither side's reader saturated, so what is left compares servers
        pairs = [(a, b) for a, b in zip(nc, m) if b["server_events_per_s"] > 0
                 and not a["client_saturated"] and not b["client_saturated"]]
        if len(pairs) < len(list(zip(nc, m))):
            log(f"capacity n={n}: {len(list(zip(nc, m))) - len(pairs)} flat-out pair(s) left "
                "out of the mock-llm/floor ratio: a reader saturated (it measured the reader)")
        rows.add(f"capacity/ratio/mock-llm-over-floor/streams={n}/max-rate-one-write-per-event",
                 "fiber", "mock-llm", "streams", n, "ratio", "x",
                 [a["server_events_per_s"] / b["server_events_per_s"] for a, b in pairs])
        rows.add(f"capacity/ratio/floor-over-mock-llm/streams={n}/cpu-per-event",
                 "fiber", "mock-llm", "streams", n, "ratio", "x",
                 [b["server_cpu_us_per_event"] / a["server_cpu_us_per_event"]
                  for a, b in zip(nc, m) if a["server_cpu_us_per_event"] > 0])
        for impl in impls:
            model, name = ("floor", "mllm-floor") if impl == "floor" else ("fiber", "mock-llm")
            ks = knees[(impl, n)]
            case = f"capacity/{impl}/streams={n}/p99<=1ms"
            rows.add(case, model, name, "streams", n, "max_events_per_s", "events/s",
                     [k[0] for k in ks])
            rows.add(case + "/first-failing", model, name, "streams", n, "events_per_s",
                     "events/s", [k[2] for k in ks if k[2]])
            at = [k[1] for k in ks if k[1]]
            for key, metric, unit, f in (
                    ("late_p50_us", "lateness_p50", "us", 1),
                    ("late_p99_us", "lateness_p99", "us", 1),
                    ("server_cpu_us_per_event", "cpu_per_event_us", "us", 1),
                    ("server_sys_share", "kernel_share_percent", "percent", 100),
                    ("server_runq_wait_pct", "runq_wait_percent", "percent", 1),
                    ("client_busy_pct", "client_busy_percent", "percent", 1),
                    ("client_backlog_events", "client_backlog_count", "count", 1),
                    ("steal_cpu0_pct", "steal_percent", "percent", 1)):
                rows.add(case + "/at-knee", model, name, "streams", n, metric, unit,
                         [r.get(key, float("nan")) * f for r in at])
            sat = sum(1 for r in at if r["client_saturated"])
            if sat:
                log(f"warning: {impl} n={n}: the load generator saturated at the knee in "
                    f"{sat} of {len(at)} runs: that knee is the generator's ceiling")
            rows.add(case + "/client-saturated", model, name, "streams", n, "runs_count",
                     "count", [sat])
            # every probe and repeat, run by run: how much a repeat moved a knee (on
            # either side of a ratio) is on record
            ss = sides[(impl, n)]
            for suffix, attr in (("probes", "probes"), ("retries", "retried"),
                                 ("retries-passed", "retry_passed"),
                                 ("retries-machine", "retry_machine"),
                                 ("retries-steal", "retry_steal")):
                rows.add(case + "/" + suffix, model, name, "streams", n, "probes_count",
                         "count", [getattr(x, attr) for x in ss])
        # Ratios run by run (both sides from the same run), then median and range.
        ratio = [m_[0] / f_[0] for m_, f_ in zip(knees[("mock-llm", n)], knees[("floor", n)])
                 if f_[0] > 0]
        rows.add(f"capacity/ratio/mock-llm-over-floor/streams={n}/p99<=1ms", "fiber",
                 "mock-llm", "streams", n, "ratio", "x", ratio)
        ratio_max = [m_[0] / f_["server_events_per_s"]
                     for m_, f_ in zip(knees[("mock-llm", n)], maxes[n])
                     if f_["server_events_per_s"] > 0]
        rows.add(f"capacity/ratio/mock-llm-over-floor-max-rate/streams={n}/p99<=1ms",
                 "fiber", "mock-llm", "streams", n, "ratio", "x", ratio_max)
        med = lambda v: statistics.median(v) if v else float("nan")
        log(f"capacity n={n}: floor max {med([r['server_events_per_s'] for r in maxes[n]]):,.0f}/s "
            f"({med([r['server_cpu_us_per_event'] for r in maxes[n]]):.2f} us/event), mock-llm "
            f"one write per event {med([r['server_events_per_s'] for r in nocoal[n]]):,.0f}/s "
            f"({med([r['server_cpu_us_per_event'] for r in nocoal[n]]):.2f} us/event); "
            f"p99<=1ms floor {med([k[0] for k in knees[('floor', n)]]):,.0f}/s, mock-llm "
            f"{med([k[0] for k in knees[('mock-llm', n)]]):,.0f}/s, ratio {med(ratio):.2f}")


def served_rows(add, samples, ramp):
    """The rows a concurrency case has on either side (mock-llm, the floor): streams open
    and failed, events/s, and lateness over the held window (after every stream is open
    and a warm-up), the ramp's (the first connect to the window's start: opening, the
    requests' turns, the warm-up; mock-llm's side only) and the whole run's (README:
    "Open streams")."""
    nan = float("nan")
    add("open_streams", "streams", [s["open"] for s in samples])
    add("failed_streams", "streams", [s["failed"] for s in samples])
    add("events_per_s", "events/s", [s["server_events_per_s"] for s in samples])
    add("lateness_p50", "us", [s["late_p50_us"] for s in samples])
    add("lateness_p99", "us", [s["late_p99_us"] for s in samples])
    add("lateness_max", "us", [s.get("late_max_us", nan) for s in samples])
    if ramp:
        add("lateness_ramp_p99", "us", [s.get("late_ramp_p99_us", nan) for s in samples])
    add("lateness_full_p99", "us", [s.get("late_full_p99_us", nan) for s in samples])


def concurrency_floor_rows(rows, n, tps, busy, samples):
    """The floor's rows beside a mock-llm concurrency case (same N, tokens/s, mode)."""
    case = f"concurrency/floor{'-busy-poll' if busy else ''}/n={n}/tps={tps}"
    name = "mllm-floor-busy-poll" if busy else "mllm-floor"
    add = lambda metric, unit, v: rows.add(case, "floor", name, "streams", n, metric, unit, v)
    served_rows(add, samples, ramp=False)
    add("open_time", "s", [s["open_s"] for s in samples])
    add("cpu_percent", "percent", [s["server_cpu_pct"] for s in samples])
    add("cpu_per_event_us", "us", [s["server_cpu_us_per_event"] for s in samples])
    rows.add(case + "/runq_wait", "floor", name, "streams", n, "cpu_percent", "percent",
             [s["server_runq_wait_pct"] for s in samples])
    rows.add(case + "/steal", "floor", name, "streams", n, "steal_percent", "percent",
             [s.get("steal_cpu0_pct", float("nan")) for s in samples])


def concurrency(args, rows):
    """Many open streams at a modest rate each: how many stay open, lateness p99 (from
    the schedule's deadlines), RSS per stream, the time from accept to parsed request."""
    # Each size twice: the server halting between deadlines (fiber/...), and spinning
    # (--busy-poll, fiber-busy-poll/...: as the capacity probes run; a halted vCPU's
    # wake-up and the epoll sleeps were most of the 19,000-stream tail, README "Holding
    # 19,000 streams", and the 19,000-stream runs open in ~1.3 s now, not ~10 s)
    sizes = [(10000, 5)] if args.quick else [(10000, 5), (19000, 5)]
    plan = [(n, tps, busy) for n, tps in sizes for busy in (False, True)]
    runs = 1 if args.quick else 3
    # Beside each mock-llm run, mllm-floor paced to the same N x tps events/s, same
    # pinning, same mode (halting or --busy-poll), the order alternating run by run: on
    # the Zen 3 EPYC the floor costs ~10-14 us of sender CPU per event, so 19,000 x 5
    # (95,000 events/s) is about a whole CPU even for it (its lateness p99 ~1 s by hand,
    # 3 December): the floor's row says whether a miss there is mock-llm's or the machine's.
    impls = ("mock-llm", "floor")
    res = {(i, n, tps, busy): [] for i in impls for n, tps, busy in plan}
    for run in range(runs):
        order = impls if run % 2 == 0 else impls[::-1]
        for n, tps, busy in plan:
            for impl in order:
                log(f"concurrency run {run + 1}/{runs}: {impl}, {n} streams x {tps} tok/s"
                    + (", --busy-poll" if busy else ""))
                srv = (floor_server(args.bin, tps, busy) if impl == "floor"
                       else stream_server(args.bin, tps, busy))
                try:
                    s = run_load(args.bin, srv.port, srv.p.pid, n, 1.0,
                                 2.0 if args.quick else 3.0, period_ms=1000.0 / tps)
                finally:
                    srv.stop()
                res[(impl, n, tps, busy)].append(s)
                log(f"  open {s['open']:.0f} in {s['open_s']:.1f} s, "
                    f"{s['server_events_per_s']:,.0f} events/s, p50 {s['late_p50_us']:.0f} "
                    f"p99 held {s['late_p99_us']:.0f} us (ramp "
                    f"{s.get('late_ramp_p99_us', float('nan')):.0f}, whole run "
                    f"{s.get('late_full_p99_us', float('nan')):.0f}), server cpu "
                    f"{s['server_cpu_pct']:.0f}%, runq-wait {s['server_runq_wait_pct']:.0f}%, "
                    f"steal {s.get('steal_cpu0_pct', float('nan')):.1f}%"
                    + ("" if impl == "floor" else
                       f", rss/stream {(s['rss_kib'] - s['rss0_kib']) * 1024 / max(s['open'], 1):.0f}"
                       f" B, request->first event p99 "
                       f"{s.get('req_to_first_p99_us', float('nan')):.0f} us"))
    floors = {(n, tps, busy): v for (i, n, tps, busy), v in res.items() if i == "floor"}
    res = {(n, tps, busy): v for (i, n, tps, busy), v in res.items() if i == "mock-llm"}
    for (n, tps, busy), samples in res.items():
        case = f"concurrency/fiber{'-busy-poll' if busy else ''}/n={n}/tps={tps}"
        impl = "mock-llm-busy-poll" if busy else "mock-llm"
        add = lambda metric, unit, v, c=case, i=impl: rows.add(c, "fiber", i, "streams", n,
                                                                metric, unit, v)
        served_rows(add, samples, ramp=True)
        add("rss_per_stream", "bytes",
            [(s["rss_kib"] - s["rss0_kib"]) * 1024 / max(s["open"], 1) for s in samples])
        add("open_time", "s", [s["open_s"] for s in samples])
        add("cpu_percent", "percent", [s["server_cpu_pct"] for s in samples])
        # The client opens every connection first and sends the requests in their turns,
        # so accept() to request holds its wait for the turn: the server's own delay is in
        # the request's write to its first event (zero TTFT), read by the client
        add("request_to_first_event_p50_us", "us", [s.get("req_to_first_p50_us", float("nan"))
                                                    for s in samples])
        add("request_to_first_event_p99_us", "us", [s.get("req_to_first_p99_us", float("nan"))
                                                    for s in samples])
        add("phase_peak_ratio", "x", [s.get("phase_peak_ratio", float("nan")) for s in samples])
        rows.add(case + "/runq_wait", "fiber", impl, "streams", n, "cpu_percent",
                 "percent", [s["server_runq_wait_pct"] for s in samples])
        rows.add(case + "/steal", "fiber", impl, "streams", n, "steal_percent",
                 "percent", [s.get("steal_cpu0_pct", float("nan")) for s in samples])
        concurrency_floor_rows(rows, n, tps, busy, floors[(n, tps, busy)])


def keepalive(args, rows, tmp):
    runs = 1 if args.quick else 3  # quick: one run (make bench QUICK=1's 5-minute budget)
    # 2 s of wrk in both modes: 32 keep-alive connections are up within milliseconds, so
    # the third second only repeats the steady state (full had 3 s: 9 s of make bench's
    # budget over its 9 wrk runs, README "Time budget")
    secs = 2
    conns = 32
    lua = os.path.join(tmp, "chat.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = \'{"model":"mock","messages":[{"role":"user","content":"hi"}],'
                '"max_tokens":16}\'\n')
    srv = Server(os.path.join(args.bin, "mock-llm"),
                 ["--profile", "fixed", "--ttft-ms", "0", "--tps", "0", "--output-tokens", "16"])
    have_nginx = shutil.which("nginx") is not None
    ngx = Nginx(tmp) if have_nginx else None
    res = {"mock-llm/health": [], "mock-llm/chat": [], "nginx/return200": []}
    errs = 0
    try:
        for run in range(runs):
            log(f"keepalive run {run + 1}/{runs} (wrk -c{conns}, {secs} s each)")
            r, e = wrk(f"http://127.0.0.1:{srv.port}/health", secs, conns)
            res["mock-llm/health"].append(r)
            errs += e
            if ngx:
                r, e = wrk(f"http://127.0.0.1:{ngx.port}/", secs, conns)
                res["nginx/return200"].append(r)
                errs += e
            r, e = wrk(f"http://127.0.0.1:{srv.port}/v1/chat/completions", secs, conns, lua)
            res["mock-llm/chat"].append(r)
            errs += e
    finally:
        srv.stop()
        if ngx:
            ngx.stop()
    if errs:
        log(f"warning: {errs} non-2xx responses during keep-alive runs")
    rows.add(f"keepalive/fiber/health/c={conns}", "fiber", "mock-llm", "connections", conns,
             "requests_per_s", "req/s", res["mock-llm/health"])
    rows.add(f"keepalive/fiber/chat-nonstream/c={conns}", "fiber", "mock-llm", "connections",
             conns, "requests_per_s", "req/s", res["mock-llm/chat"])
    rows.add(f"keepalive/nginx/return200/c={conns}", "nginx", "nginx", "connections", conns,
             "requests_per_s", "req/s", res["nginx/return200"])
    log("keepalive req/s medians: " + ", ".join(
        f"{k} {statistics.median(v):.0f}" for k, v in res.items() if v))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="under a minute (default: full, ~6.5 min)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results"), help="output directory")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"),
                    help="directory with mock-llm and mllm-load")
    ap.add_argument("--only", choices=["capacity", "concurrency", "keepalive"], action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    for exe in ("mock-llm", "mllm-load", "mllm-floor"):
        if not os.access(os.path.join(args.bin, exe), os.X_OK):
            ap.error(f"{exe} not found in {args.bin} (build first, or pass --bin)")
    if not shutil.which("wrk"):
        ap.error("wrk not found (scripts/deps.sh bench installs it)")
    # --out is checked before the run: a directory that cannot be written would
    # otherwise be found only when the CSV is, minutes of measuring later
    try:
        os.makedirs(args.out, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as e:
        ap.error(f"--out {args.out}: cannot write there ({e.strerror})")
    parts = args.only or ["capacity", "concurrency", "keepalive"]
    rows = Rows()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="mockllm-bench-") as tmp:
        if "capacity" in parts:
            capacity(args, rows)
        if "concurrency" in parts:
            concurrency(args, rows)
        if "keepalive" in parts:
            keepalive(args, rows, tmp)
    csv = os.path.join(args.out, "mockllm.csv")
    with open(csv, "w") as f:
        f.write(HEADER + "\n" + "\n".join(rows.rows) + "\n")
    machine = subprocess.run(
        [os.path.join(ROOT, "scripts", "machine.sh"),
         f"mode: {'quick' if args.quick else 'full'}",
         "pinning: mock-llm and nginx on cpu 0, mllm-load and wrk on cpu 1",
         "load: mllm-load --busy-poll (the client core spins instead of sleeping)",
         f"floor: mllm-floor --pacing {FLOOR_PACING} (each stream from its request's "
         "arrival, as mock-llm)" if FLOOR_PACING == "arrival" else
         f"floor: mllm-floor --pacing {FLOOR_PACING}",
         f"duration_s: {time.time() - t0:.0f}"], capture_output=True, text=True)
    with open(os.path.join(args.out, "mockllm.machine.txt"), "w") as f:
        f.write(machine.stdout)
    log(f"wrote {csv} ({len(rows.rows)} rows) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
