#!/usr/bin/env python3
"""peers/review/run_models.py - review probe (not a harness, not in make test): the
published per-run metrics (peerlib.record_client's: memory per live conversation, CPU per
1,000 tokens, first token p50/p99, alive at once) for a list of client models at one N
and one mock-llm setting, models interleaved run by run, plus mock-llm's CPU over each
run. Models as in paced_marginal.py (ruby-*, py-*, go-goroutine, node-openai,
node-latest, c-*).

    nice -n 10 python3 peers/review/run_models.py --n 1000 --models node-openai,node-latest
        [--runs 3] [--tokens 8] [--mock "--profile gpt-4o --tps 5"]

Loopback only; N <= 1,000; every process it starts is a child it stops.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import paced_marginal as pm  # noqa: E402
from paced_marginal import peerlib, wl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--mock", default="--profile gpt-4o --tps 5")
    ap.add_argument("--models", required=True)
    ap.add_argument("--client-extra", default="", help="appended to every client's argv "
                    "(e.g. '--tls' for wl-llm against mock-llm --tls)")
    ap.add_argument("--bin", default=os.path.join(pm.TOP, "build", "bin"))
    a = ap.parse_args()
    if not 1 <= a.n <= 1000:
        ap.error("--n must be 1..1000")
    models = a.models.split(",")
    res = {}
    try:
        for r in range(a.runs):
            for k in range(len(models)):
                model = models[(k + r) % len(models)]
                m = peerlib.mock(a.bin, "probe", shlex.split(a.mock), 11)
                try:
                    env = dict(os.environ, NODE_PATH=os.path.join(
                        os.environ.get("NODE_LATEST", "/tmp/rv/npm7") if model == "node-latest"
                        else pm.NPM, "node_modules"))
                    c0 = wl.cpu_seconds([m.proc.pid])
                    t0 = time.monotonic()
                    j = peerlib.run_client(pm.argv_for(model, a.bin, m.port, a.n, a.tokens)
                                           + shlex.split(a.client_extra),
                                           "/tmp/rv/out", "review", model, 60,
                                           lambda s: print(s, file=sys.stderr), env=env)
                    wall = time.monotonic() - t0
                    mcpu = wl.cpu_seconds([m.proc.pid]) - c0
                finally:
                    m.stop()
                if not j:
                    continue
                live = max(j["peak_live"], 1)
                row = {"run": r, "model": model, "impl": f"{j.get('runtime')}/{j.get('library')}",
                       "ok": j["ok"], "live": j["peak_live"],
                       "kib_per_conv": ((j["rss_peak_kib"] - j["rss_base_kib"]) + j["kernel_est_kib"]) / live,
                       "cpu_ms_per_1k": j["cpu_s_per_1k_tokens"] * 1000,
                       "ttft_p50_ms": j["ttft_p50_ms"], "ttft_p99_ms": j["ttft_p99_ms"],
                       "mock_core_share": mcpu / wall}
                print(json.dumps(row), flush=True)
                res.setdefault(model, []).append(row)
    finally:
        wl.cleanup()
    print(f"\nN={a.n}, mock-llm {a.mock}, {a.tokens} tokens; median (min-max) of {a.runs}; "
          f"load {peerlib.loadavg()}")
    for model, rows in res.items():
        def f(k):
            v = [x[k] for x in rows]
            return f"{statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})"
        print(f"{model:13} {rows[0]['impl']:32} ok {f('ok')}; KiB/conv {f('kib_per_conv')}; "
              f"CPU ms/1k tok {f('cpu_ms_per_1k')}; ttft p50 {f('ttft_p50_ms')} p99 "
              f"{f('ttft_p99_ms')}; mock core share {f('mock_core_share')}")


if __name__ == "__main__":
    main()
