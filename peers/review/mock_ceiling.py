#!/usr/bin/env python3
"""peers/review/mock_ceiling.py - review probe (not a harness, not in make test): is the
one-core mock-llm the hidden ceiling of the peers and Ruby runs? Runs the C fiber client
(build/bin/wl-llm --model fiber, the cheapest client there is) against a fresh mock-llm
with the settings of the published stages, and reports the mock's CPU (utime+stime from
/proc, 10 ms ticks) over the client's run, its share of one core, and the first-token
times the client saw against the profile's nominal one.

    nice -n 10 python3 peers/review/mock_ceiling.py [--runs 3]

Stages probed (N <= 1,000):
  starve    mock-llm --profile fixed --time-scale 0.25 --seed 5, max_tokens 64
            (peers/ruby/bench.py bench_starve): nominal first token 50 ms
  gpt4o     mock-llm --profile gpt-4o --tps 5, 8 tokens (the 10,000-conversation
            stage, here at 1,000): nominal first token median 400 ms
Loopback only; every process it starts is a child it stops.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.dirname(HERE)
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402
from peerlib import wl  # noqa: E402

STAGES = {
    "starve": (["--profile", "fixed", "--time-scale", "0.25"], 5, 64, (100, 1000)),
    "gpt4o": (["--profile", "gpt-4o", "--tps", "5"], 11, 8, (100, 1000)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--stages", default="starve,gpt4o")
    ap.add_argument("--bin", default=os.path.join(peerlib.TOP, "build", "bin"))
    a = ap.parse_args()
    res = {}
    try:
        for r in range(a.runs):
            for st in a.stages.split(","):
                margs, seed, tokens, ns = STAGES[st]
                for n in ns:
                    m = wl.Server("mock-llm", [os.path.join(a.bin, "mock-llm"), "--listen",
                                               "127.0.0.1:0", "--seed", str(seed)] + margs)
                    try:
                        c0 = wl.cpu_seconds([m.proc.pid])
                        t0 = time.monotonic()
                        p = subprocess.run([os.path.join(a.bin, "wl-llm"), "--model", "fiber",
                                            "--target", f"127.0.0.1:{m.port}", "--n", str(n),
                                            "--max-tokens", str(tokens), "--timeout", "60"],
                                           capture_output=True, text=True, timeout=120)
                        wall = time.monotonic() - t0
                        mcpu = wl.cpu_seconds([m.proc.pid]) - c0
                    finally:
                        m.stop()
                    j = next(json.loads(l) for l in p.stdout.splitlines() if l.startswith("{"))
                    row = {"run": r, "stage": st, "n": n, "ok": j["ok"], "wall_s": wall,
                           "mock_cpu_s": mcpu, "mock_core_share": mcpu / wall,
                           "client_cpu_s": j["cpu_s"], "tokens_per_s": j["tokens_per_s"],
                           "ttft_p50_ms": j["ttft_p50_ms"], "ttft_p99_ms": j["ttft_p99_ms"],
                           "mock_us_per_token": mcpu / max(j["tokens"], 1) * 1e6}
                    print(json.dumps(row), flush=True)
                    res.setdefault((st, n), []).append(row)
    finally:
        wl.cleanup()
    print(f"\nC fiber client (wl-llm) against a fresh mock-llm; median (min-max) of {a.runs}; "
          f"load {peerlib.loadavg()}")
    for (st, n), rows in res.items():
        def f(k, fmt="{:.3g}"):
            v = [x[k] for x in rows]
            return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"
        print(f"{st:7} n={n:5}: mock CPU {f('mock_cpu_s')} s over {f('wall_s')} s wall = "
              f"{f('mock_core_share')} of a core; {f('mock_us_per_token')} us/token; "
              f"client {f('client_cpu_s')} s; tokens/s {f('tokens_per_s')}; "
              f"ttft p50 {f('ttft_p50_ms')} ms, p99 {f('ttft_p99_ms')} ms")


if __name__ == "__main__":
    main()
