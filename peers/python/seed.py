#!/usr/bin/python3
"""peers/python/seed.py - the post's protocol (socketry/performance fiber-vs-thread) in
Python, as bench/ruby/seed.rb runs it in Ruby and bench/seed.c in C: N units, each
switching M times, timed from the first creation to the end of the last unit.

    /usr/bin/python3 peers/python/seed.py [--mode full|quick|tiny]

Models (the Python pair the post's question asks about):
  python-thread    threading.Thread per unit; a switch is time.sleep(0), which releases
                   the GIL and takes it again (Python's Thread.pass: another thread
                   that waits for the GIL may take it, none is forced to)
  python-asyncio   an asyncio task per unit on one event loop; a switch is
                   `await asyncio.sleep(0)`, one trip through the loop's ready queue

Cases (case names and metrics as seed.csv's, the model and the impl in the case):
  alloc      N = 10,000, M = 2: us per unit, VmHWM growth per unit (first run)
  switch     N = 2, M = 10,000: us per switch (time / (N * M))
  throughput N = 1,000, M = 100, 10 repeats: units per second, first and last repeat
  warming    N = 10,000, M = 2, 10 repeats: us per unit, first and last repeat (full)

Models interleaved run by run. Prints one JSON object per row on stdout: case, model,
impl, metric, unit and the samples (peers/bench.py aggregates them into results/peers.csv).
Standard library only. Exit status: 0 done, 2 bad arguments.
"""
import argparse
import asyncio
import gc
import json
import sys
import threading
import time

# the same modes as bench/ruby/seed.rb: runs of alloc/switch; repeats of throughput and
# warming (the post: 10 each); series of those
MODES = {
    "full": dict(runs=3, repeats=10, warm_repeats=10, series=3, alloc_n=10_000,
                 switch_m=10_000, tp_n=1000, tp_m=100),
    "quick": dict(runs=1, repeats=10, warm_repeats=0, series=1, alloc_n=10_000,
                  switch_m=10_000, tp_n=1000, tp_m=100),
    "tiny": dict(runs=1, repeats=2, warm_repeats=2, series=1, alloc_n=500, switch_m=500,
                 tp_n=50, tp_m=10),
}
def pinned_suffix():
    """'/cpu=same' when this process may run on one CPU only (its threads with it), as
    C's cpu=same cases; the driver pins it so (a GIL hand-off then never crosses cores)."""
    import os
    return "/cpu=same" if len(os.sched_getaffinity(0)) == 1 else ""


IMPL = f"python-{sys.version.split()[0]}" + pinned_suffix()
MODELS = ("python-thread", "python-asyncio")
now = time.monotonic


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def hwm_reset():
    """VmHWM back to VmRSS (Linux >= 4.0); without it the growth is against the old peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class LimitHit(Exception):
    """A thread could not be started: (units started, errno name)."""


def run_threads(n, m):
    def unit():
        for _ in range(m):
            time.sleep(0)
    threads = [threading.Thread(target=unit) for _ in range(n)]
    for k, t in enumerate(threads):
        try:
            t.start()
        except RuntimeError as e:  # "can't start new thread": EAGAIN (pids, memory)
            for u in threads[:k]:
                u.join()
            raise LimitHit(k, "EAGAIN") from e
    for t in threads:
        t.join()


LOOP = asyncio.new_event_loop()


async def run_tasks(n, m):
    async def unit():
        for _ in range(m):
            await asyncio.sleep(0)
    tasks = [asyncio.create_task(unit()) for _ in range(n)]
    await asyncio.gather(*tasks)


def run_once(model, n, m):
    """One run: (seconds, VmHWM growth in bytes)."""
    gc.collect()
    hwm_reset()
    rss0 = status_kb("VmRSS")
    if model == "python-thread":
        t0 = now()
        run_threads(n, m)
        t = now() - t0
    else:
        # the loop is running before the clock starts, as Ruby's fibers need no start-up
        async def timed():
            t0 = now()
            await run_tasks(n, m)
            return now() - t0
        t = LOOP.run_until_complete(timed())
    return t, (status_kb("VmHWM") - rss0) * 1024


def row(case, model, metric, unit, samples):
    print(json.dumps({"case": case, "model": model, "impl": IMPL, "metric": metric,
                      "unit": unit, "samples": samples}), flush=True)


def case_name(model, what, n, m):
    return f"seed/{model}/{IMPL}/{what}/n={n}/m={m}"


def progress(msg):
    print(f"[seed.py] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", default="full", choices=sorted(MODES))
    ap.add_argument("--no-warming", action="store_true", help="leave the warming case out")
    a = ap.parse_args()
    cfg = dict(MODES[a.mode])
    if a.no_warming:
        cfg["warm_repeats"] = 0
    try:
        return protocol(cfg)
    except LimitHit as e:
        # a limit is a result: the row says where, the driver keeps the rows before it
        row(f"seed/python-thread/{IMPL}/limit={e.args[1]}", "python-thread", "limit_units",
            "count", [e.args[0]])
        return 0


def protocol(cfg):
    alloc, mem, sw = ({mo: [] for mo in MODELS} for _ in range(3))
    for r in range(cfg["runs"]):
        for mo in MODELS if r % 2 == 0 else MODELS[::-1]:
            t, h = run_once(mo, cfg["alloc_n"], 2)
            alloc[mo].append(t * 1e6 / cfg["alloc_n"])
            if r == 0:  # later runs reuse the heap the first one left behind
                mem[mo].append(h / cfg["alloc_n"])
            t, _ = run_once(mo, 2, cfg["switch_m"])
            sw[mo].append(t * 1e6 / (2 * cfg["switch_m"]))
        progress(f"alloc and switch: run {r + 1}/{cfg['runs']}")
    for mo in MODELS:
        c = case_name(mo, "alloc", cfg["alloc_n"], 2)
        row(c, mo, "us_per_unit", "us", alloc[mo])
        row(c, mo, "user_bytes_per_unit", "bytes", mem[mo])
        row(case_name(mo, "switch", 2, cfg["switch_m"]), mo, "us_per_switch", "us", sw[mo])

    tp_first, tp_last, w_first, w_last = ({mo: [] for mo in MODELS} for _ in range(4))
    for s in range(cfg["series"]):
        for mo in MODELS if s % 2 == 0 else MODELS[::-1]:
            ups = [cfg["tp_n"] / run_once(mo, cfg["tp_n"], cfg["tp_m"])[0]
                   for _ in range(cfg["repeats"])]
            tp_first[mo].append(ups[0])
            tp_last[mo].append(ups[-1])
            if cfg["warm_repeats"]:
                us = [run_once(mo, cfg["alloc_n"], 2)[0] * 1e6 / cfg["alloc_n"]
                      for _ in range(cfg["warm_repeats"])]
                w_first[mo].append(us[0])
                w_last[mo].append(us[-1])
            progress(f"throughput x{cfg['repeats']} and warming x{cfg['warm_repeats']}: "
                     f"{mo}, series {s + 1}/{cfg['series']}")
    for mo in MODELS:
        c = case_name(mo, "throughput", cfg["tp_n"], cfg["tp_m"])
        row(c, mo, "units_per_s", "units/s", tp_last[mo])
        row(c, mo, "first_repeat_units_per_s", "units/s", tp_first[mo])
        if w_first[mo]:
            c = case_name(mo, "warming", cfg["alloc_n"], 2)
            row(c, mo, "cold_unit_us", "us", w_first[mo])
            row(c, mo, "warm_unit_us", "us", w_last[mo])
    return 0


if __name__ == "__main__":
    sys.exit(main())
