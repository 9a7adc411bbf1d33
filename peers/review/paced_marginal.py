#!/usr/bin/env python3
"""peers/review/paced_marginal.py - review probe (not a harness, not in make test): is the
published "CPU per extra 1,000 tokens" (mock-llm --time-scale 0, 16 vs 256 tokens) the
cost a token has when tokens arrive one at a time, as they do from a real LLM?

For each client model, N conversations against a fresh mock-llm, with T_lo and T_hi
tokens, in two modes:
  nowait   --profile vllm-8b-h100 --time-scale 0 (as peers/bench.py and
           peers/ruby/bench.py)
  paced    --profile fixed --tps TPS (one token per event, TPS per stream): every token
           is its own wake-up of the client
and reports per run: client CPU, mock-llm CPU, the client's read syscalls (/proc/PID/io
syscr, last sample before exit: read(2)/readv only, so 0 for Ruby and Python, which
recv on sockets) and peak live units; then the marginal CPU per 1,000
tokens and read syscalls per token, median (min-max) over the runs, models interleaved.

    nice -n 10 python3 peers/review/paced_marginal.py [--n 100] [--runs 3]
        [--models ruby-thread,ruby-async,...] [--lo 16] [--hi 64] [--tps 50]

Loopback only; every process it starts is a child it stops; N <= 1,000.
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
TOP = os.path.dirname(PEERS)
sys.path.insert(0, PEERS)
import peerlib  # noqa: E402
from peerlib import wl  # noqa: E402

NPM = os.environ.get("FIBERBENCH_NPM_CACHE", os.path.expanduser("~/.cache/fiberbench/npm"))


def argv_for(model, bindir, port, n, tokens):
    common = ["--target", f"127.0.0.1:{port}", "--n", str(n), "--max-tokens", str(tokens),
              "--timeout", "60"]
    rt, _, how = model.partition("-")
    if rt == "c":
        return [os.path.join(bindir, "wl-llm"), "--model", how] + common
    if rt == "ruby" and how.endswith("-notimer"):
        # Net::HTTP with read_timeout nil (peers/review/no_read_timeout.rb)
        return ["ruby", "-r", os.path.join(HERE, "no_read_timeout.rb"),
                os.path.join(PEERS, "ruby", "llm_client.rb"), "--model",
                how[:-len("-notimer")]] + common
    if rt == "ruby":
        return ["ruby", os.path.join(PEERS, "ruby", "llm_client.rb"), "--model", how] + common
    if rt == "py":
        return ["/usr/bin/python3", os.path.join(PEERS, "python", "llm_client.py"),
                "--model", how] + common
    if rt == "go":
        return [os.path.join(bindir, "peer-go-llm")] + common
    if rt == "node" and how == "latest":
        # the SDK's own default transport, at the SDK version installed in NODE_LATEST
        return ["node", os.path.join(PEERS, "node", "llm_client.js"),
                "--transport", "sdk-default"] + common
    if rt == "node":
        return ["node", os.path.join(PEERS, "node", "llm_client.js")] + common
    raise SystemExit(f"unknown model {model}")


def syscr(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("syscr:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def one(model, bindir, margs, n, tokens):
    m = peerlib.mock(bindir, "probe", margs + ["--output-tokens", str(tokens)], 11)
    try:
        env = dict(os.environ, NODE_PATH=os.path.join(
            os.environ.get("NODE_LATEST", "/tmp/rv/npm7") if model == "node-latest" else NPM,
            "node_modules"))
        p = subprocess.Popen(argv_for(model, bindir, m.port, n, tokens), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env,
                             preexec_fn=wl._die_with_parent)
        mcpu0 = wl.cpu_seconds([m.proc.pid])
        reads = None
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            r = syscr(p.pid)
            reads = r if r is not None else reads
            time.sleep(0.01)
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
        mcpu = wl.cpu_seconds([m.proc.pid]) - mcpu0
    finally:
        m.stop()
    j = next((json.loads(l) for l in out.splitlines() if l.startswith("{")), None)
    if not j:
        print(f"  {model} failed: {err.strip()[-200:]}", file=sys.stderr)
        return None
    return {"cpu": j["cpu_s"], "tokens": j["tokens"], "ok": j["ok"], "live": j["peak_live"],
            "reads": reads, "mock_cpu": mcpu, "elapsed": j["elapsed_s"]}


def med(v):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return f"{statistics.median(v):.3g} ({min(v):.3g}-{max(v):.3g})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lo", type=int, default=16)
    ap.add_argument("--hi", type=int, default=64)
    ap.add_argument("--tps", type=float, default=50)
    ap.add_argument("--modes", default="nowait,paced")
    ap.add_argument("--models", default="ruby-thread,ruby-async,py-thread,py-asyncio,"
                    "go-goroutine,node-openai,c-thread,c-fiber")
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    a = ap.parse_args()
    if not 1 <= a.n <= 1000:
        ap.error("--n must be 1..1000 (a review probe on a shared machine)")
    modes = {"nowait": ["--profile", "vllm-8b-h100", "--time-scale", "0"],
             "paced": ["--profile", "fixed", "--tps", str(a.tps)]}
    models = a.models.split(",")
    res = {}
    try:
        for r in range(a.runs):
            for mode in a.modes.split(","):
                for k in range(len(models)):
                    model = models[(k + r) % len(models)]
                    pair = {}
                    for t in (a.lo, a.hi):
                        pair[t] = one(model, a.bin, modes[mode], a.n, t)
                    lo, hi = pair[a.lo], pair[a.hi]
                    if not (lo and hi) or lo["ok"] < a.n or hi["ok"] < a.n:
                        print(f"  run {r} {mode} {model}: incomplete {lo} {hi}", file=sys.stderr)
                        continue
                    dt = hi["tokens"] - lo["tokens"]
                    row = {"marg_ms": (hi["cpu"] - lo["cpu"]) / (dt / 1000) * 1000,
                           "reads_per_tok": ((hi["reads"] - lo["reads"]) / dt
                                             if hi["reads"] is not None and lo["reads"] is not None
                                             else None),
                           "mock_marg_ms": (hi["mock_cpu"] - lo["mock_cpu"]) / (dt / 1000) * 1000,
                           "live_lo": lo["live"], "live_hi": hi["live"],
                           "cpu_hi": hi["cpu"], "mock_cpu_hi": hi["mock_cpu"]}
                    print(json.dumps({"run": r, "mode": mode, "model": model, **row}), flush=True)
                    res.setdefault((mode, model), []).append(row)
    finally:
        wl.cleanup()
    print(f"\nN={a.n}, tokens {a.lo} vs {a.hi}, paced = fixed profile at {a.tps} tok/s; "
          f"median (min-max) of {a.runs} runs; load {peerlib.loadavg()}")
    print(f"{'mode':7} {'model':13} {'client ms/1k marginal':28} {'read(2)/token*':22} "
          f"{'mock ms/1k marginal':24} live(lo/hi)")
    for (mode, model), rows in sorted(res.items()):
        print(f"{mode:7} {model:13} {med([x['marg_ms'] for x in rows]):28} "
              f"{med([x['reads_per_tok'] for x in rows]):22} "
              f"{med([x['mock_marg_ms'] for x in rows]):24} "
              f"{statistics.median([x['live_lo'] for x in rows]):.0f}/"
              f"{statistics.median([x['live_hi'] for x in rows]):.0f}")


if __name__ == "__main__":
    main()
