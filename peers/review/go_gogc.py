#!/usr/bin/env python3
"""peers/review/go_gogc.py - review probe (not a harness, not in make test): how much of
the Go client's "memory per conversation" (peak RSS growth over its baseline, per live
conversation) is the garbage collector's headroom rather than what a conversation holds?
Runs build/bin/peer-go-llm at N conversations against a fresh mock-llm (fixed profile,
TPS tokens/s, T tokens) under GOGC values, interleaved, and prints (HWM - base) / live.

    nice -n 10 python3 peers/review/go_gogc.py [--n 1000] [--runs 3] [--gogc 100,50,25,off]

Loopback only; N <= 1,000; every process it starts is a child it stops.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.dirname(HERE)
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402
from peerlib import wl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--tps", type=float, default=10)
    ap.add_argument("--gogc", default="100,50,25,off")
    ap.add_argument("--bin", default=os.path.join(peerlib.TOP, "build", "bin"))
    a = ap.parse_args()
    if not 1 <= a.n <= 1000:
        ap.error("--n must be 1..1000")
    res = {}
    try:
        for r in range(a.runs):
            gs = a.gogc.split(",")
            for k in range(len(gs)):
                g = gs[(k + r) % len(gs)]
                m = peerlib.mock(a.bin, "gogc", ["--profile", "fixed", "--tps", str(a.tps),
                                                 "--output-tokens", str(a.tokens)], 11)
                try:
                    p = subprocess.run([os.path.join(a.bin, "peer-go-llm"), "--target",
                                        f"127.0.0.1:{m.port}", "--n", str(a.n), "--max-tokens",
                                        str(a.tokens), "--timeout", "60"],
                                       capture_output=True, text=True, timeout=120,
                                       env=dict(os.environ, GOGC=g))
                finally:
                    m.stop()
                j = next(json.loads(l) for l in p.stdout.splitlines() if l.startswith("{"))
                per = (j["rss_peak_kib"] - j["rss_base_kib"]) / max(j["peak_live"], 1)
                print(json.dumps({"run": r, "GOGC": g, "ok": j["ok"], "live": j["peak_live"],
                                  "kib_per_conv": per, "cpu_s": j["cpu_s"]}), flush=True)
                res.setdefault(g, []).append((per, j["cpu_s"]))
    finally:
        wl.cleanup()
    print(f"\nN={a.n}, {a.tokens} tokens at {a.tps} tok/s; load {peerlib.loadavg()}")
    for g, v in res.items():
        kib = [x[0] for x in v]
        cpu = [x[1] for x in v]
        print(f"GOGC={g:4}: RSS growth per live conversation {statistics.median(kib):.1f} KiB "
              f"({min(kib):.1f}-{max(kib):.1f}); client CPU {statistics.median(cpu):.2f} s")


if __name__ == "__main__":
    main()
