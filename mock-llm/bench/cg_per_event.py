#!/usr/bin/env python3
"""cg_per_event.py - mock-llm's user-space cost per stream event under callgrind.

    cg_per_event.py --bin BUILD/bin --streams N --tps T [--seconds S] [--out FILE]

Starts BUILD/bin/mock-llm under callgrind with its cache simulation (the `fixed` profile,
no TTFT, streams that never end: N x T events per second), opens N streams with
BUILD/bin/mllm-load, zeroes the counters once every stream is open and has run a while,
dumps them S seconds later, and divides by the events the server counted in between
(/metrics, mllm_events_sent_total). Prints one key=value line: instructions, L1 and
last-level misses per event, and the writes per event (1.0: every event its own write,
as in the capacity runs; fewer: the server fell behind under callgrind and coalesced,
which changes what is measured).

The caches simulated are set explicitly, not taken from the host: the L1s and the
per-core 2 MiB L2 of the Intel Xeon VM this was written on (its 260 MiB L3 is shared
with the whole host). Counts, not times: robust on a loaded machine, as long as the
server keeps up (the writes per event say).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def metrics(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    out = {}
    for m in re.finditer(rb"^(mllm_[a-z_]+) ([0-9.e+]+)$", data, re.M):
        out[m.group(1).decode()] = float(m.group(2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--tps", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--settle", type=float, default=4.0,
                    help="seconds after the streams are open before counting")
    ap.add_argument("--out", default=None)
    ap.add_argument("--extra", default="", help="more mock-llm flags, space-separated")
    a = ap.parse_args()
    port = free_port()
    out = a.out or f"/tmp/cg.mllm.{os.getpid()}"
    srv = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--I1=32768,8,64",
         "--D1=49152,12,64", "--LL=2097152,16,64", f"--callgrind-out-file={out}",
         os.path.join(a.bin, "mock-llm"), "--listen", f"127.0.0.1:{port}", "--profile",
         "fixed", "--ttft-ms", "0", "--tps", f"{a.tps:g}", "--output-tokens", "100000000",
         "--max-conns", "19500", "--max-pending", str(1 << 20)] + a.extra.split(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = srv.stdout.readline()
    if "listening" not in line:
        srv.kill()
        sys.exit(f"mock-llm did not start: {line!r} {srv.stderr.read()[-2000:]}")
    period_ms = 1000.0 / a.tps
    load = subprocess.Popen(
        [os.path.join(a.bin, "mllm-load"), "--target", f"127.0.0.1:{port}", "--streams",
         str(a.streams), "--warmup", str(a.settle + a.seconds + 30), "--window", "1",
         "--period-ms", f"{period_ms:g}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.monotonic() + 300
        while time.monotonic() < t_end:
            m = metrics(port)
            if m.get("mllm_streams_active", 0) >= a.streams:
                break
            time.sleep(0.5)
        else:
            sys.exit("the streams did not all open within 300 s")
        time.sleep(a.settle)
        subprocess.run(["callgrind_control", "-z", str(srv.pid)], check=True,
                       capture_output=True)
        m0 = metrics(port)
        time.sleep(a.seconds)
        m1 = metrics(port)
        subprocess.run(["callgrind_control", "-d", str(srv.pid)], check=True,
                       capture_output=True)
        m2 = metrics(port)
    finally:
        load.kill()
        load.wait()
        srv.terminate()
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
    # The dump covers zero .. dump; the events between the two /metrics reads around it.
    ev = (m1["mllm_events_sent_total"] + m2["mllm_events_sent_total"]) / 2 - \
        m0["mllm_events_sent_total"]
    writes = m2["mllm_writes_total"] - m0["mllm_writes_total"]
    evw = m2["mllm_events_sent_total"] - m0["mllm_events_sent_total"]
    # the events the ticker wrote itself (the rest through the streams' fibers: a
    # different path, with more instructions and misses per event)
    tw = m2.get("mllm_ticker_writes_total", 0) - m0.get("mllm_ticker_writes_total", 0)
    # of those, the ones more than 1 ms late (MLLM_TICKER_LATE_NS): the late path, which
    # a build with -DMLLM_TICKER_LATE_NS=0u takes for every event
    tl = m2.get("mllm_ticker_late_writes_total", 0) - \
        m0.get("mllm_ticker_late_writes_total", 0)
    dumps = sorted(f for f in os.listdir(os.path.dirname(out) or ".")
                   if f.startswith(os.path.basename(out)) and f != os.path.basename(out))
    path = os.path.join(os.path.dirname(out) or ".", dumps[-1]) if dumps else out
    with open(path) as f:
        txt = f.read()
    ev_names = re.search(r"^events: (.*)$", txt, re.M).group(1).split()
    tot = re.search(r"^(?:summary|totals): (.*)$", txt, re.M).group(1).split()
    c = dict(zip(ev_names, map(float, tot)))
    ll = c.get("ILmr", 0) + c.get("DLmr", 0) + c.get("DLmw", 0)
    l1 = c.get("I1mr", 0) + c.get("D1mr", 0) + c.get("D1mw", 0)
    print(f"streams={a.streams} tps={a.tps:g} events={ev:.0f} "
          f"ir_per_event={c['Ir'] / ev:.0f} l1_miss_per_event={l1 / ev:.2f} "
          f"ll_miss_per_event={ll / ev:.3f} dlmr_per_event={c.get('DLmr', 0) / ev:.3f} "
          f"writes_per_event={writes / evw:.3f} ticker_share={tw / evw:.3f} "
          f"ticker_late_share={tl / evw:.3f} dump={path}")


if __name__ == "__main__":
    main()
