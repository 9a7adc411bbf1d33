#!/usr/bin/env python3
"""The A/B that decides whether make bench's full runs may drop mock-llm's stalls
(README "Time budget"): gpt-4o --tps 5 with the profile's stalls (A) against
--stall-rate 0 (B), N conversations of TOKENS tokens, each model's runs interleaved in
ORDER (default A B B A A B), a fresh mock-llm a run (seed 11, request-indexed draws), the
clients exactly as peers/bench.py runs them. Prints one JSON line a run, then per model
and side the median (min-max) of what the README's tables quote.

    python3 scripts/ab_stalls.py [--bin build/bin] [--n 10000] [--tokens 8]
                                 [--models c-thread,c-fiber,node-openai,py-asyncio]
                                 [--order ABBAAB]

Run it on a quiet machine (nothing else running): CPU per 1,000 tokens is the figure in
question, and the loaded runs of 2026-12-03 could not tell a 10% shift from the load.
"""
import argparse
import json
import os
import statistics
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "peers"))
import peerlib  # noqa: E402
import bench as pb  # noqa: E402  (peers/bench.py: CLIENTS, client_argv, node_env)

KEYS = [("peak_live", "peak live"), ("rss_peak_kib", "RSS peak KiB"),
        ("kernel_est_kib", "kernel est KiB"), ("cpu_ms_per_1k", "CPU/1k tokens ms"),
        ("ttft_p50_ms", "TTFT p50 ms"), ("ttft_p99_ms", "TTFT p99 ms"), ("wall_s", "wall s")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    ap.add_argument("--out", default=os.path.join(TOP, "results", "tmp", "ab-stalls"))
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--models", default="c-thread,c-fiber,node-openai,py-asyncio")
    ap.add_argument("--order", default="ABBAAB")
    a = ap.parse_args()
    models = a.models.split(",")
    for m in models:
        if m not in pb.CLIENTS:
            ap.error(f"unknown model {m} (one of {', '.join(pb.CLIENTS)})")
    if set(a.order) - set("AB"):
        ap.error("--order is a string of A and B")
    gpt = ["--profile", "gpt-4o", "--tps", "5"]
    side = {"A": gpt, "B": gpt + ["--stall-rate", "0"]}
    res = []
    for i, v in enumerate(a.order):
        for model in (models if i % 2 == 0 else models[::-1]):
            mk = peerlib.mock(a.bin, f"ab {v}", side[v], 11)
            try:
                argv = pb.client_argv(a, model, mk.port, a.n, a.tokens, 60)
                env = pb.node_env() if pb.CLIENTS[model][1] == "node" else None
                t0 = time.monotonic()
                j = peerlib.run_client(argv, a.out, "ab-stalls", model, 60,
                                       lambda m_: print(m_, file=sys.stderr), env=env)
                wall = time.monotonic() - t0
            finally:
                mk.stop()
            if not j:
                continue
            r = {"side": v, "model": model, "wall_s": round(wall, 2),
                 "load": open("/proc/loadavg").read().split()[0],
                 "cpu_ms_per_1k": j["cpu_s_per_1k_tokens"] * 1000,
                 **{k: j.get(k) for k, _ in KEYS if k not in ("wall_s", "cpu_ms_per_1k")}}
            print(json.dumps(r), flush=True)
            res.append(r)
    for model in models:
        for k, what in KEYS:
            cells = []
            for v in "AB":
                xs = [r[k] for r in res if r["model"] == model and r["side"] == v and r[k] is not None]
                cells.append(f"{v} {statistics.median(xs):,.4g} ({min(xs):,.4g}-{max(xs):,.4g})"
                             if xs else f"{v} -")
            print(f"{model:14s} {what:18s} " + "  ".join(cells), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
