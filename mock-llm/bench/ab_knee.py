#!/usr/bin/env python3
"""ab_knee.py - two mock-llm builds' knees beside the floor, interleaved in one run.

    ab_knee.py --a OLD/bin --b NEW/bin [--runs 3] [--streams 1000,10000] [--steps 4]
    ab_knee.py --a BIN [--floor-bin DIR] [--floor-pacing arrival,even] [--runs 3]
    ab_knee.py --a BIN --aa [--runs 5] [--rule machine|best-of-2] [--window S] [--paired 0|1]
    ab_knee.py --a OLD/bin --b NEW/bin --concurrency 19000 [--runs 3]

For development (make bench-mockllm measures one build): per run and stream count, the
knee searches of mockllm_bench.py (the highest offered rate with emission lateness p99 <=
1 ms: the same Side, ladder, bisections, pass rule, window, pairing, pinning and
--busy-poll) for mllm-floor, mock-llm A and mock-llm B (if given), in an order that
rotates run by run, so the machine's drift falls on all alike. Prints each probe as
mockllm_bench does, then per stream count the knees' medians (min-max) and the ratios of
each mock-llm to each floor, run by run, with quartiles.

The floor comes from --floor-bin (default: A's build; the load client always from A's),
so a floor changed on a branch can be measured; --floor-pacing arrival,even searches one
floor per pacing (mllm-floor --pacing: "arrival", each stream from its request's arrival
as mock-llm, the harness's; "even", one evenly spaced sequence, the floor before 3
December), each its own side.

--aa: the A/A test of the method: the floor against itself, two sides searched exactly
as the floor and mock-llm are in make bench-mockllm (the order alternating run by run);
the spread of floor/floor is what the method can resolve. --rule, --window, --warmup and
--paired try another method on every side alike (defaults: the harness's).

--concurrency N: instead, N streams at 5 tokens/s each (the concurrency case: no
--busy-poll unless --busy), A and B alternating (with --floor, mllm-floor paced to the
same N x 5 events/s as a third side, rotating); lateness p50/p99 and server CPU per run.
--cpu N:TPS,...: instead, the server's CPU time per event at those fixed rates (no
--busy-poll unless --busy: spinning would count as CPU), A and B alternating.
"""
import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mockllm_bench as mb  # noqa: E402


class Args:
    def __init__(self, bindir, floor_bin=None, floor_pacing=None):
        self.bin = bindir
        self.floor_bin = floor_bin
        self.floor_pacing = floor_pacing


def med(v):
    return f"{statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})" if v else "-"


def medf(v, f="{:.2f}"):
    return (f.format(statistics.median(v)) + " (" + f.format(min(v)) + "-" + f.format(max(v)) +
            ")") if v else "-"


def quart(v, f="{:.3f}"):
    """median [quartiles] (min-max) N: the spread a skeptic asks for"""
    if not v:
        return "-"
    v = sorted(v)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return (f"{f.format(q[1])} [{f.format(q[0])}-{f.format(q[2])}] "
            f"({f.format(v[0])}-{f.format(v[-1])}) N={len(v)}")


def capacity(a):
    """Per run and stream count, the sides' knee searches as mockllm_bench.capacity runs
    them (Side, run_searches: the same pass rule, window and pairing), in an order that
    rotates run by run. --aa: the floor against itself, two sides exactly as the floor
    and mock-llm are in make bench-mockllm (order alternating run by run): the spread of
    floor/floor is what the method can resolve."""
    fa = lambda p: Args(a.a, a.floor_bin, p)
    if a.aa:
        p = a.floor_pacing[0]
        sides = [("floor", "floor", fa(p)), ("floor2", "floor", fa(p))]
    else:
        sides = [("floor" if len(a.floor_pacing) == 1 else f"floor-{p}", "floor", fa(p))
                 for p in a.floor_pacing]
        sides += [("A", "mock-llm", Args(a.a))] + ([("B", "mock-llm", Args(a.b))] if a.b else [])
    floors = [x for x in sides if x[1] == "floor"] if not a.aa else sides[:1]
    others = [x for x in sides if x not in floors]
    knees = {(s, n): [] for s, _, _ in sides for n in a.streams}
    counts = {(s, n): [] for s, _, _ in sides for n in a.streams}
    secs = {n: [] for n in a.streams}
    for run in range(a.runs):
        k = run % len(sides)
        order = sides[k:] + sides[:k]
        for n in a.streams:
            ss, starts = [], []
            for name, impl, args in order:
                prev = knees[(name, n)]
                starts.append(prev[-1][0] if prev and prev[-1][0] > 0 else mb.CAP_START[impl])
                ss.append(mb.Side(name, impl, args, n, True, a.warmup, a.window, a.rule))
            mb.log(f"run {run + 1}/{a.runs}, {n} streams: " + ", ".join(
                f"{x.label} ({x.impl}, {x.args.bin}) from {st:,.0f}/s" for x, st in zip(ss, starts))
                + f" ({'taking turns' if a.paired else 'one after the other'}, {a.rule}, "
                f"{a.warmup:g} + {a.window:g} s)")
            t = time.time()
            for x, kn in zip(ss, mb.run_searches(ss, starts, a.steps, a.paired)):
                knees[(x.label, n)].append(kn)
                counts[(x.label, n)].append((x.probes, x.retried, x.retry_passed))
                mb.log(f"  {x.label} n={n}: p99 <= 1 ms up to {kn[0]:,.0f}/s"
                       + (f", not at {kn[2]:,.0f}/s" if kn[2] else "")
                       + f"; probes {x.probes}, repeated {x.retried}, passed {x.retry_passed}")
            secs[n].append(time.time() - t)
            mb.log(f"run {run + 1} n={n}: {secs[n][-1]:.0f} s; " + ", ".join(
                f"{x}/{f} {knees[(x, n)][-1][0] / knees[(f, n)][-1][0]:.3f}"
                if knees[(f, n)][-1][0] > 0 else f"{x}/{f} -"
                for f, _, _ in floors for x, _, _ in others))
    print(f"# loadavg at end: {os.getloadavg()}")
    print(f"# method: rule {a.rule}, warm-up {a.warmup:g} s, window {a.window:g} s, steps "
          f"{a.steps}, {'paired (turns)' if a.paired else 'sequential'}; floor from "
          f"{a.floor_bin}, pacing {','.join(a.floor_pacing)}")
    for n in a.streams:
        print(f"streams={n}  seconds per run (all sides' searches) {quart(secs[n], '{:.0f}')}")
        for name, _, _ in sides:
            ks = knees[(name, n)]
            at = [k[1] for k in ks if k[1]]
            c = counts[(name, n)]
            print(f"  {name:6s} knee {med([k[0] for k in ks])}/s  runs {[round(k[0]) for k in ks]}"
                  f"  at knee p99 us {[k[1]['late_p99_us'] for k in ks if k[1]]}"
                  f"  runq-wait % {[k[1]['server_runq_wait_pct'] for k in ks if k[1]]}"
                  f"  client saturated {sum(1 for r in at if r['client_saturated'])}"
                  f"  probes {sum(x[0] for x in c)} repeated {sum(x[1] for x in c)} "
                  f"passed on repeat {sum(x[2] for x in c)}")
        for fl, _, _ in floors:
            for name, _, _ in others:
                r = [m[0] / f[0] for m, f in zip(knees[(name, n)], knees[(fl, n)]) if f[0] > 0]
                print(f"  {name}/{fl} ratio {quart(r)}  runs {[round(x, 3) for x in r]}")


def concurrency(a):
    n, tps = a.concurrency, 5
    names = ("floor", "A", "B") if a.floor else ("A", "B")
    res = {k: [] for k in names}
    for run in range(a.runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            bindir = a.b if name == "B" else a.a
            srv = (mb.floor_server(a.floor_bin, tps, a.busy, a.floor_pacing[0]) if name == "floor"
                   else mb.stream_server(bindir, tps, a.busy))
            try:
                r = mb.run_load(bindir, srv.port, srv.p.pid, n, 1.0, 3.0, period_ms=1000.0 / tps)
            finally:
                srv.stop()
            res[name].append(r)
            mb.log(f"  {name} run {run + 1}: open {r['open']:.0f} in {r['open_s']:.1f} s, "
                   f"{r['server_events_per_s']:,.0f} ev/s, p50 {r['late_p50_us']:.0f} "
                   f"p99 {r['late_p99_us']:.0f} us, server cpu {r['server_cpu_pct']:.0f}% "
                   f"({r['server_cpu_us_per_event']:.2f} us/ev), runq-wait "
                   f"{r['server_runq_wait_pct']:.1f}%")
    print(f"# loadavg at end: {os.getloadavg()}")
    for name, rs in res.items():
        print(f"  {name} n={n} tps={tps}: p99 us {medf([r['late_p99_us'] for r in rs], '{:.0f}')}"
              f" p50 us {medf([r['late_p50_us'] for r in rs], '{:.0f}')}"
              f" cpu us/event {medf([r['server_cpu_us_per_event'] for r in rs])}"
              f" cpu % {medf([r['server_cpu_pct'] for r in rs], '{:.0f}')}"
              f" open {[r['open'] for r in rs]}")


def cpu(a):
    """Server CPU per event (schedstat run time over the events, as mllm-load reports it)
    at fixed offered rates, A and B alternating: a count of the server's own thread time,
    less at the mercy of other load than a knee is (a knee fails on any stall)."""
    res = {}
    for run in range(a.runs):
        for spec in a.cpu.split(","):
            n, tps = spec.split(":")
            n, tps = int(n), float(tps)
            for name in (("A", "B") if run % 2 == 0 else ("B", "A")):
                bindir = a.a if name == "A" else a.b
                srv = mb.stream_server(bindir, tps, a.busy)
                try:
                    r = mb.run_load(bindir, srv.port, srv.p.pid, n, 1.0, mb.whole_periods(2.0, tps),
                                    period_ms=1000.0 / tps)
                finally:
                    srv.stop()
                res.setdefault((spec, name), []).append(r)
                mb.log(f"  {name} n={n} tps={tps:g} run {run + 1}: {r['server_events_per_s']:,.0f} ev/s, "
                       f"cpu {r['server_cpu_us_per_event']:.2f} us/ev (kernel "
                       f"{100 * r['server_sys_share']:.0f}%), writes/ev {r['writes_per_event']:.3f}, "
                       f"p50 {r['late_p50_us']:.0f} p99 {r['late_p99_us']:.0f} us, runq-wait "
                       f"{r['server_runq_wait_pct']:.1f}%")
    print(f"# loadavg at end: {os.getloadavg()}")
    for (spec, name), rs in sorted(res.items()):
        print(f"  {spec} {name}: cpu us/event {medf([r['server_cpu_us_per_event'] for r in rs])}"
              f" writes/event {medf([r['writes_per_event'] for r in rs], '{:.3f}')}"
              f" p99 us {medf([r['late_p99_us'] for r in rs], '{:.0f}')}"
              f" runq-wait % {medf([r['server_runq_wait_pct'] for r in rs], '{:.1f}')}")


def check_flags(ap, a):
    """Every flag checked before a server starts (ap.error: the message, exit 2): a bad
    one found mid-run would cost a quiet window, or end in a traceback."""
    try:
        a.streams = [int(x) for x in a.streams.split(",")]
    except ValueError:
        ap.error(f"--streams {a.streams!r}: a comma-separated list of stream counts")
    if any(n < 1 for n in a.streams):
        ap.error(f"--streams {a.streams}: every count must be >= 1")
    if a.runs < 1:
        ap.error(f"--runs {a.runs}: at least 1")
    if a.steps < 0:
        ap.error(f"--steps {a.steps}: 0 or more bisections")
    # NaN compares false both ways: "not > 0" refuses it with the negatives
    if not (0 < a.window < math.inf):
        ap.error(f"--window {a.window}: a probe's window, seconds > 0")
    if not (0 <= a.warmup < math.inf):
        ap.error(f"--warmup {a.warmup}: seconds >= 0")
    if a.concurrency < 0:
        ap.error(f"--concurrency {a.concurrency}: a stream count >= 1")
    if a.cpu:
        for spec in a.cpu.split(","):
            n, _, tps = spec.partition(":")
            try:
                ok = int(n) >= 1 and 0 < float(tps) < math.inf
            except ValueError:
                ok = False
            if not ok:
                ap.error(f"--cpu {spec!r}: N:TPS (streams >= 1, tokens/s > 0), comma-separated")
    if a.aa:
        if a.b:
            ap.error("--aa measures the floor against itself: no --b")
        if a.concurrency or a.cpu:
            ap.error("--aa is a capacity test: not with --concurrency or --cpu")
    elif not a.b and (a.concurrency or a.cpu):
        ap.error("--concurrency and --cpu compare two builds: --b is required")
    a.floor_pacing = a.floor_pacing.split(",")
    if not a.floor_pacing or any(p not in ("arrival", "even") for p in a.floor_pacing) or \
            len(set(a.floor_pacing)) != len(a.floor_pacing):
        ap.error(f"--floor-pacing {','.join(a.floor_pacing)!r}: arrival and/or even, "
                 "comma-separated, each once")
    if a.aa and len(a.floor_pacing) != 1:
        ap.error("--aa measures one floor against itself: one --floor-pacing")
    if a.floor_bin is None:
        a.floor_bin = a.a
    need = {a.a: ["mllm-load", "mock-llm"]}
    need.setdefault(a.floor_bin, []).append("mllm-floor")
    if a.b:
        need.setdefault(a.b, []).extend(["mllm-load", "mock-llm"])
    for bindir, exes in need.items():
        for exe in exes:
            if not os.access(os.path.join(bindir, exe), os.X_OK):
                ap.error(f"{exe} not found in {bindir} (build first)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="bin directory of build A (and the load client)")
    ap.add_argument("--b", help="bin directory of build B (not with --aa)")
    ap.add_argument("--floor-bin", help="bin directory of the mllm-floor to run (default: --a)")
    ap.add_argument("--floor-pacing", default=mb.FLOOR_PACING,
                    help="arrival, even or arrival,even: one floor side per pacing "
                         f"(default: the harness's, {mb.FLOOR_PACING})")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--streams", default="1000,10000")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--aa", action="store_true",
                    help="capacity: the floor against itself (an A/A test of the method)")
    ap.add_argument("--rule", default=mb.CAP_RULE, choices=mb.RULES,
                    help="pass rule at a rate, both sides (default: the harness's)")
    ap.add_argument("--window", type=float, default=mb.CAP_WINDOW,
                    help="probe window, s (default: the harness's)")
    ap.add_argument("--warmup", type=float, default=mb.CAP_WARMUP,
                    help="probe warm-up, s (default: the harness's)")
    ap.add_argument("--paired", type=int, choices=(0, 1), default=int(mb.CAP_PAIRED),
                    help="1: the searches take turns probe by probe (default: the harness's)")
    ap.add_argument("--concurrency", type=int, default=0)
    ap.add_argument("--cpu", default="", help="N:TPS,... : CPU per event at these rates")
    ap.add_argument("--busy", action="store_true",
                    help="--cpu, --concurrency: servers with --busy-poll")
    ap.add_argument("--floor", action="store_true",
                    help="--concurrency: mllm-floor at the same rate as a third side")
    a = ap.parse_args()
    check_flags(ap, a)
    a.paired = bool(a.paired)
    if a.aa:
        a.b = a.a
    t0 = time.time()
    if a.cpu:
        cpu(a)
    elif a.concurrency:
        concurrency(a)
    else:
        capacity(a)
    print(f"# {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
