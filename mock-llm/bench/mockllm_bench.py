#!/usr/bin/env python3
"""mock-llm benchmark: capacity, concurrency and keep-alive request rate (vs nginx).

Runs build/bin/mock-llm pinned to CPU 0 and the load (build/bin/mllm-load, or wrk) on
CPU 1, and writes results/mockllm.csv (tidy schema, one figure per row) plus
results/mockllm.machine.txt.

  capacity     1000 streams at a swept per-stream token rate: token events per second
               the server emits and its self-reported emission lateness (p50, p99);
               the headline is the highest rate whose p99 lateness is <= 1 ms.
  concurrency  10,000 (full mode: also 19,000) open streams at a low per-stream rate:
               how many stay open, lateness p99, server RSS per open stream.
  keepalive    wrk, 32 keep-alive connections: mock-llm GET /health, mock-llm POST
               /v1/chat/completions (non-streaming, no delays), nginx `return 200`.

Quick mode (--quick) takes under a minute, full mode under three. Sides are interleaved
run by run (numbers drift between batches more than within them).
"""
import argparse
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


def pin(cpu):
    # Pin only when the CPU exists: on a one-core machine both sides share it, and
    # the machine file says so.
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []


class Server:
    """mock-llm on CPU 0; stops with SIGTERM and checks the clean exit."""

    def __init__(self, binary, args):
        self.p = subprocess.Popen(pin(0) + [binary, "--listen", "127.0.0.1:0"] + args,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.match(r"mock-llm listening on 127\.0\.0\.1:(\d+)$", line.strip())
        if not m:
            self.p.kill()
            raise RuntimeError(f"mock-llm did not start: {line!r} {self.p.stderr.read()}")
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


def run_load(bindir, port, pid, streams, warmup, window, stagger_ms):
    cmd = pin(1) + [os.path.join(bindir, "mllm-load"), "--target", f"127.0.0.1:{port}",
                    "--streams", str(streams), "--warmup", str(warmup), "--window",
                    str(window), "--stagger-ms", str(stagger_ms), "--rss-pid", str(pid),
                    "--busy-poll"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"mllm-load failed: {out.stderr.strip()}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\w.]+)", out.stdout)}


def stream_server(bindir, tps, busy_poll=False):
    # Streams that never end within the run, one token per event, no time to first
    # token: the load is exactly streams x tps events per second.
    return Server(os.path.join(bindir, "mock-llm"),
                  ["--profile", "fixed", "--ttft-ms", "0", "--tps", str(tps),
                   "--output-tokens", "100000000", "--max-conns", "19500",
                   "--max-pending", str(1 << 20)] + (["--busy-poll"] if busy_poll else []))


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


def capacity(args, rows):
    """Two server modes, interleaved: sleeping in epoll between deadlines (the default)
    and --busy-poll (the core never sleeps: no wake-up cost, no power saving)."""
    streams = 1000
    rates = [50, 100, 150, 300] if args.quick else [25, 50, 100, 150, 200, 300]
    modes = [("mock-llm", False), ("mock-llm-busy-poll", True)]
    runs = 1 if args.quick else 2
    warmup, window = (0.5, 1.5) if args.quick else (0.5, 2.0)
    res = {(m, r): [] for m, _ in modes for r in rates}
    for run in range(runs):
        for tps in rates:
            for impl, busy in modes:
                log(f"capacity run {run + 1}/{runs}: {impl}, {streams} streams x {tps} tok/s "
                    f"= {streams * tps} events/s offered")
                srv = stream_server(args.bin, tps, busy)
                r = None
                try:
                    r = run_load(args.bin, srv.port, srv.p.pid, streams, warmup, window,
                                 1000.0 / tps * 2)
                    res[(impl, tps)].append(r)
                finally:
                    srv.stop()
                log(f"  -> {r['server_events_per_s']:.0f} events/s, lateness p50 "
                    f"{r['late_p50_us']:.0f} us p99 {r['late_p99_us']:.0f} us, server cpu "
                    f"{r['server_cpu_pct']:.0f}% runq-wait {r['server_runq_wait_pct']:.0f}%")
    for impl, _ in modes:
        best = []
        for run in range(runs):
            ok = [res[(impl, r)][run]["server_events_per_s"] for r in rates
                  if res[(impl, r)][run]["late_p99_us"] <= 1000]
            best.append(max(ok) if ok else 0.0)
        for tps in rates:
            case = f"capacity/fiber/{impl}/streams={streams}/offered={streams * tps}"
            got = res[(impl, tps)]
            for key, metric, unit in (("server_events_per_s", "events_per_s", "events/s"),
                                      ("client_events_per_s", "client_events_per_s", "events/s"),
                                      ("late_p50_us", "lateness_p50", "us"),
                                      ("late_p99_us", "lateness_p99", "us"),
                                      ("late_p999_us", "lateness_p999", "us"),
                                      ("server_cpu_pct", "cpu_percent", "percent")):
                rows.add(case, "fiber", impl, "offered_events_per_s", streams * tps, metric,
                         unit, [r[key] for r in got])
            # The share of the window the server spent waiting for its CPU (other load
            # on the machine): when it is large, the lateness is the machine's, not ours.
            rows.add(case + "/runq_wait", "fiber", impl, "offered_events_per_s",
                     streams * tps, "cpu_percent", "percent",
                     [r["server_runq_wait_pct"] for r in got])
        rows.add(f"capacity/fiber/{impl}/streams={streams}/p99<=1ms", "fiber", impl, "streams",
                 streams, "max_events_per_s", "events/s", best)
        # On a shared machine other tenants' bursts land in some runs and not others: the
        # same figure over the least disturbed run of each rate (lowest p99) says what
        # the server does when it has its core. Both rows are kept; neither is hidden.
        calm = [statistics.median(x["server_events_per_s"] for x in res[(impl, r)])
                for r in rates if min(x["late_p99_us"] for x in res[(impl, r)]) <= 1000]
        rows.add(f"capacity/fiber/{impl}/streams={streams}/p99<=1ms/least-disturbed-run",
                 "fiber", impl, "streams", streams, "max_events_per_s", "events/s",
                 [max(calm) if calm else 0.0])
        log(f"capacity {impl}: best events/s with p99 <= 1 ms per run: {best}; "
            f"over the least disturbed run of each rate: {max(calm) if calm else 0:.0f}")


def concurrency(args, rows):
    sizes = [10000] if args.quick else [10000, 19000]
    runs = 1
    tps = 2
    for n in sizes:
        samples = []
        for run in range(runs):
            log(f"concurrency run {run + 1}/{runs}: {n} streams x {tps} tok/s")
            srv = stream_server(args.bin, tps)
            try:
                samples.append(run_load(args.bin, srv.port, srv.p.pid, n, 1.0,
                                        2.0 if args.quick else 3.0, 1000.0 / tps))
            finally:
                srv.stop()
        case = f"concurrency/fiber/n={n}/tps={tps}"
        rows.add(case, "fiber", "mock-llm", "streams", n, "open_streams", "streams",
                 [s["open"] for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "failed_streams", "streams",
                 [s["failed"] for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "events_per_s", "events/s",
                 [s["server_events_per_s"] for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "lateness_p99", "us",
                 [s["late_p99_us"] for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "rss_per_stream", "bytes",
                 [(s["rss_kib"] - s["rss0_kib"]) * 1024 / max(s["open"], 1) for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "open_time", "s",
                 [s["open_s"] for s in samples])
        rows.add(case, "fiber", "mock-llm", "streams", n, "cpu_percent", "percent",
                 [s["server_cpu_pct"] for s in samples])
        rows.add(case + "/runq_wait", "fiber", "mock-llm", "streams", n, "cpu_percent",
                 "percent", [s["server_runq_wait_pct"] for s in samples])
        log(f"concurrency {n}: " + "; ".join(
            f"open {s['open']:.0f} p99 {s['late_p99_us']:.0f} us "
            f"runq-wait {s['server_runq_wait_pct']:.0f}% rss/stream "
            f"{(s['rss_kib'] - s['rss0_kib']) * 1024 / max(s['open'], 1):.0f} B" for s in samples))


def keepalive(args, rows, tmp):
    runs = 3 if args.quick else 4
    secs = 2 if args.quick else 3
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
    ap.add_argument("--quick", action="store_true", help="under a minute (default: full, < 3 min)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results"), help="output directory")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"),
                    help="directory with mock-llm and mllm-load")
    ap.add_argument("--only", choices=["capacity", "concurrency", "keepalive"], action="append",
                    help="run only these parts (repeatable)")
    args = ap.parse_args()
    for exe in ("mock-llm", "mllm-load"):
        if not os.access(os.path.join(args.bin, exe), os.X_OK):
            ap.error(f"{exe} not found in {args.bin} (build first, or pass --bin)")
    if not shutil.which("wrk"):
        ap.error("wrk not found (scripts/deps.sh bench installs it)")
    os.makedirs(args.out, exist_ok=True)
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
         f"duration_s: {time.time() - t0:.0f}"], capture_output=True, text=True)
    with open(os.path.join(args.out, "mockllm.machine.txt"), "w") as f:
        f.write(machine.stdout)
    log(f"wrote {csv} ({len(rows.rows)} rows) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
