#!/usr/bin/env python3
"""workloads/bench/run.py - the workloads harness: HTTP request throughput and streaming
LLM conversations on every concurrency model, written as tidy CSV.

    python3 workloads/bench/run.py [--quick] [--only throughput,llm,starve,db,tls,curl]
                                   [--bin DIR] [--out DIR] [--runs N] [--max-seconds S]

Writes OUT/throughput.csv and OUT/llm.csv (schema: results/README.md) with a
.machine.txt beside each, and the noise each ran in (scripts/noise.py). HTTP: wrk
(closed loop) and wl-load (open loop, constant arrival rate), every single-CPU server
and nginx pinned to one CPU, the generator to the other, the generator's own CPU and
each server's CPU per request recorded. LLM: conversation i carries request index i,
so every model faces the same draws; headline points are 3 interleaved rounds, run first;
secondary points (one round, runs=1 in their rows) come after them, so that a spent time
budget cuts those, never the headline (--runs N: N rounds of everything). Progress goes
to stderr. Every server it starts is a child
that it stops (SIGTERM, then SIGKILL) before it exits, every load is bounded in count
and time, and the whole run stops starting new steps past --max-seconds.

Loopback only. nginx runs from a generated config in a temporary directory (one worker,
pinned, access log off); the system nginx is never touched.
Python 3 standard library only.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs"
MODELS = ["thread", "pool", "fiber", "fiber-mt"]
KIND = {"thread": "thread", "pool": "thread", "fiber": "fiber", "fiber-mt": "fiber"}
T_START = time.monotonic()


def log(msg):
    el = time.monotonic() - T_START
    print(f"[workloads {int(el) // 60}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(code)


# ---- results ------------------------------------------------------------------------

class Table:
    """Collects measured values per row key; writes median/min/max over the runs."""

    def __init__(self, harness):
        self.harness = harness
        self.rows = {}
        self.order = []

    def add(self, case, model, impl, param, value, metric, unit, v):
        if v is None:
            return
        key = (case, model, impl, param, str(value), metric, unit)
        if key not in self.rows:
            self.rows[key] = []
            self.order.append(key)
        self.rows[key].append(float(v))

    def write(self, out_dir, extra_machine):
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{self.harness}.csv")
        with open(path, "w") as f:
            f.write(HEADER + "\n")
            for key in self.order:
                vals = self.rows[key]
                case, model, impl, param, value, metric, unit = key
                med = statistics.median(vals)
                f.write(",".join([self.harness, case, model, impl, param, value, metric, unit,
                                  fmt(med), fmt(min(vals)), fmt(max(vals)), str(len(vals))]) + "\n")
        mach = subprocess.run([os.path.join(TOP, "scripts", "machine.sh")] + extra_machine,
                              capture_output=True, text=True)
        with open(os.path.join(out_dir, f"{self.harness}.machine.txt"), "w") as f:
            f.write(mach.stdout)
        log(f"wrote {path} ({len(self.order)} rows)")
        return path


def fmt(x):
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def slug(s):
    return re.sub(r"[^A-Za-z0-9=.+-]+", "-", s).strip("-") or "unknown"


# ---- processes ----------------------------------------------------------------------

CHILDREN = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _die_with_parent():
    """Runs in the child before exec: SIGTERM it when this harness dies, however it dies
    (a SIGKILL from a timeout included), so no server outlives the run."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Server:
    """A child server that prints '... listening on 127.0.0.1:PORT' when ready."""

    def __init__(self, name, argv, ready_re=r"listening on 127\.0\.0\.1:(\d+)", port=None,
                 timeout=10):
        self.name = name
        # its own process group, so stop() reaches nginx's worker too
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        CHILDREN.append(self)
        self.port = port
        if ready_re:
            deadline = time.monotonic() + timeout
            line = ""
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    break
                m = re.search(ready_re, line)
                if m:
                    self.port = int(m.group(1))
                    break
            if not self.port:
                err = self.stop()
                raise RuntimeError(f"{name} did not start: {line.strip()} {err[-300:]}")
        else:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"{name} exited: {self.proc.stderr.read()[-300:]}")
                    time.sleep(0.05)
            else:
                self.stop()
                raise RuntimeError(f"{name} did not listen on {port}")

    def report(self):
        """wl-http only: SIGUSR1, then its JSON line of counters (None if none came)."""
        import select
        try:
            self.proc.send_signal(signal.SIGUSR1)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                if line.startswith('{"report"'):
                    return json.loads(line)
        return None

    def pids(self):
        """The server's process and its children (nginx's worker)."""
        out = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s. Returns the rest of stdout+stderr."""
        if self in CHILDREN:
            CHILDREN.remove(self)
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
        return (out or "") + (err or "")


def cleanup(*_):
    for c in list(CHILDREN):
        c.stop()


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---- throughput ---------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
worker_cpu_affinity {mask};
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 19500; use epoll; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "Hello, world\\n";
        }}
    }}
}}
"""


def start_nginx(tmp, cpu):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    d = os.path.join(tmp, "nginx")
    os.makedirs(d, exist_ok=True)
    mask = "1" + "0" * cpu
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port, mask=mask))
    return Server("nginx", [nginx, "-c", conf, "-p", d, "-e", os.path.join(d, "error.log")],
                  ready_re=None, port=port)


def parse_wrk(out):
    def dur_ms(s):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
        if not m:
            return None
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else \
            v * 1000 if m.group(2) == "s" else v * 60000
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        r[f"p{q}"] = dur_ms(m.group(1)) if m else None
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
        r["timeouts"] = int(m.group(4))
        r["connect_errors"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs += int(m.group(1))
    r["errors"] = errs
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    return r


# A load generator whose one thread used this share of its CPU during the run is the
# ceiling, not the server: such a run is flagged generator_bound.
GEN_BOUND_PERCENT = 90.0


def run_gen(argv, secs, server=None, report_at=None):
    """Runs a load generator (wrk or wl-load) to completion and returns (stdout, its
    user+system CPU seconds, its wall seconds, peak server RSS in KiB, the server's
    counters taken at report_at seconds or None). The generator is reaped with wait4()
    so its own CPU time is known: a generator that saturates its CPU is the ceiling."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=_die_with_parent)
    peak = 0
    t0 = time.monotonic()
    deadline = t0 + secs + 60
    rep = None
    ru = None
    while time.monotonic() < deadline:
        pid, _, r = os.wait4(p.pid, os.WNOHANG)
        if pid:
            ru = r
            break
        if server:
            peak = max(peak, rss_kib(server.pids()))
            # counters near the end, while the generator still holds its connections:
            # once it closes them, a pool would drain its queue and answer the dead ones
            if rep is None and report_at is not None and time.monotonic() - t0 >= report_at \
                    and server.name.startswith("wl-http"):
                rep = server.report() or {}
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if ru is None:
        p.kill()
        _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0  # reaped here: Popen must not wait for it again
    out = p.stdout.read()
    p.stdout.close()
    return out, ru.ru_utime + ru.ru_stime, wall, peak, rep


def run_wrk(port, conns, secs, wrk_cpu, server=None):
    """Runs wrk (closed loop: each connection sends its next request when the previous
    answer arrives); samples the server's RSS every 50 ms meanwhile (its peak is returned
    as res['rss_kib']), since the connections are gone once wrk has exited.
    wrk's timeout is half the run: a connection that is never answered (the pool's 26th
    and later) then shows as timeouts instead of silently not counting."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency",
            "--timeout", f"{max(1, secs // 2)}s", f"http://127.0.0.1:{port}/"]
    if wrk_cpu is not None:
        argv = ["taskset", "-c", str(wrk_cpu)] + argv
    out, gcpu, gwall, peak, rep = run_gen(argv, secs, server, 0.9 * secs)
    res = parse_wrk(out)
    res["rss_kib"] = peak
    res["report"] = rep
    res["gen_cpu_s"] = gcpu
    res["gen_cpu_percent"] = 100.0 * gcpu / gwall if gwall > 0 else 0.0
    return res, out


def run_open(a, port, conns, rate, secs, gen_cpu, server=None, timeout=1.0):
    """Runs wl-load (open loop: constant arrival rate, latency from each request's due
    time); returns its JSON with gen_cpu_s / gen_cpu_percent measured from outside, the
    same way as wrk's, and the server's peak RSS; None when it gave no result."""
    argv = [os.path.join(a.bin, "wl-load"), "--target", f"127.0.0.1:{port}", "--rate",
            f"{rate:.0f}", "--conns", str(conns), "--duration", str(secs), "--timeout",
            str(timeout)]
    if gen_cpu is not None:
        argv = ["taskset", "-c", str(gen_cpu)] + argv
    out, gcpu, gwall, peak, _ = run_gen(argv, secs + timeout + 15, server)
    for line in out.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            j["gen_cpu_s"] = gcpu
            j["gen_cpu_percent"] = 100.0 * gcpu / gwall if gwall > 0 else 0.0
            j["rss_kib"] = peak
            return j
    log(f"  wl-load gave no result: {out.strip()[-300:]}")
    return None


def placement(ncpu):
    """Where each HTTP server and the load generators run. Every single-CPU server model
    (thread, pool, fiber) and nginx's one worker are pinned to the same CPU, the
    generators (wrk, wl-load: one thread each) to the other. fiber-mt is one scheduler per
    core by design: it gets both CPUs, so it shares the generator's; its cases say so."""
    if ncpu < 2:
        return None, 0, {m: "0" for m in MODELS + ["nginx"]}
    pin = {m: "1" for m in MODELS + ["nginx"]}
    pin["fiber-mt"] = "0-1"
    return 0, 1, pin


def http_impl(name, pin):
    """The case component naming a server and, when it is not on the servers' CPU,
    its placement: fiber-mt runs on both CPUs, beside the load generator."""
    base = "nginx-1worker" if name == "nginx" else name
    return base + (f"/cpus={pin[name]}" if pin[name] != pin["nginx"] else "")


def add_gen(tab, case, model, impl, c, gen_cpu_percent, gen_cpu_s, log_name):
    tab.add(case, model, impl, "concurrency", c, "generator_cpu_percent", "percent",
            gen_cpu_percent)
    tab.add(case, model, impl, "concurrency", c, "generator_cpu_s", "s", gen_cpu_s)
    bound = 1 if gen_cpu_percent >= GEN_BOUND_PERCENT else 0
    tab.add(case, model, impl, "concurrency", c, "generator_bound_count", "count", bound)
    if bound:
        log(f"  {log_name}: GENERATOR-BOUND (the load generator used {gen_cpu_percent:.0f}% "
            f"of its CPU): this run measures the generator, not the server")


def bench_throughput(a, tab, budget_end):
    bin_ = a.bin
    ncpu = os.cpu_count() or 1
    wrk_cpu, srv_cpu, pin = placement(ncpu)
    # c=10 is gone, for time; c=100 is the low point and the headline (README: fibers and a
    # thread per connection against nginx), 3 interleaved rounds. c=1000 and c=10,000 are
    # secondary points (the workloads README's table, the figure's right end): one round
    # each (runs=1 in their rows), after the headline's rounds, for make bench's budget
    # (scripts/bench.sh); --runs N gives every concurrency N rounds.
    # quick: c=100 only (fewer sizes; c=1000's servers and nginx ~10 s of quick's 5 minutes)
    conc = [100] if a.quick else [100, 1000, 10000]
    # 1 s runs; 10,000 connections get 2 s, since wrk spends the first part connecting
    secs_for = lambda c: 2 if c >= 10000 else 1
    secs = 1
    # quick: one round of every point (make bench QUICK=1's rows are for a look, never
    # published: scripts/publish.py refuses quick runs); ~12 s of its 5 minutes
    runs = a.runs or (1 if a.quick else 3)
    runs_at = lambda c: runs if a.runs or c == conc[0] else 1
    tmp = tempfile.mkdtemp(prefix="fiberbench-wl-")
    servers = {}
    nginx_rps = {}  # c -> nginx's closed-loop req/s of each round, for the open-loop rates
    try:
        servers["nginx"] = start_nginx(tmp, srv_cpu)
        for m in MODELS:
            argv = ["taskset", "-c", pin[m], os.path.join(bin_, "wl-http"), "--model", m,
                    "--max-seconds", "1800"]
            servers[m] = Server(f"wl-http {m}", argv)
        names = ["nginx"] + MODELS
        steps = [(c, r, i) for c in conc for r in range(runs_at(c)) for i in range(len(names))]
        for k, (c, r, i) in enumerate(steps):
            if time.monotonic() > budget_end:
                log(f"throughput: time budget spent; skipped the last {len(steps) - k} steps")
                break
            # interleave: rotate the order every run so no server always goes first
            name = names[(i + r) % len(names)]
            s = servers[name]
            left = sum(secs_for(cc) + 0.6 for cc, _, _ in steps[k:])
            log(f"throughput {k + 1}/{len(steps)}: {name} c={c} run {r + 1}/{runs_at(c)} "
                f"(about {int(left)}s left in this stage)")
            pids = s.pids()
            rep0 = s.report() if name != "nginx" else None
            cpu0 = cpu_seconds(pids)
            res, raw = run_wrk(s.port, c, secs_for(c), wrk_cpu, s)
            cpu = cpu_seconds(s.pids()) - cpu0
            rep1 = res["report"]
            rss = res["rss_kib"]
            model = "nginx" if name == "nginx" else KIND[name]
            impl = "nginx-1worker" if name == "nginx" else name
            case = f"http/{http_impl(name, pin)}/hello/c={c}"
            if res["rps"] is None:
                log(f"  wrk gave no result: {raw.strip()[-200:]}")
                tab.add(case, model, impl, "concurrency", c, "errors", "count", c)
                continue
            tab.add(case, model, impl, "concurrency", c, "req_per_s", "req/s", res["rps"])
            if res["requests"]:
                # a run with no answer at all has no latency (wrk prints 0 ms): none
                # recorded rather than a 0 that would pull the median down
                tab.add(case, model, impl, "concurrency", c, "p50_ms", "ms", res["p50"])
                tab.add(case, model, impl, "concurrency", c, "p99_ms", "ms", res["p99"])
            else:
                log(f"  {name} c={c}: no request answered during the run")
            tab.add(case, model, impl, "concurrency", c, "errors", "count", res["errors"])
            tab.add(case, model, impl, "concurrency", c, "cpu_s", "s", cpu)
            if res["requests"]:
                # the server's user+system time over the run, per request answered
                tab.add(case, model, impl, "concurrency", c, "cpu_per_req_us", "us",
                        cpu / res["requests"] * 1e6)
            add_gen(tab, case, model, impl, c, res["gen_cpu_percent"], res["gen_cpu_s"],
                    f"{name} c={c}")
            tab.add(case, model, impl, "concurrency", c, "rss_bytes", "bytes", rss * 1024)
            if rep0 and rep1:
                # connections wrk opened that never got an answer during the run (a pool
                # serves 25 at a time; wrk does not count these as errors)
                unserved = max(0, c - (rep1["conns_served"] - rep0["conns_served"]))
                tab.add(case, model, impl, "concurrency", c, "unserved_conns_count", "count",
                        unserved)
                if unserved:
                    log(f"  {name} c={c}: {unserved} of {c} connections never answered")
            s.last = res["rps"]
            if name == "nginx":
                servers["nginx"].last_rps = res["rps"]
                nginx_rps.setdefault(c, []).append(res["rps"])
            if name != "nginx" and getattr(servers["nginx"], "last_rps", None):
                # the anchor: this server's req/s over nginx's from the same round
                ri = http_impl(name, pin).replace("/cpus=", "-cpus")
                tab.add(f"http/ratio/{ri}-over-nginx/c={c}", model, impl, "concurrency", c,
                        "ratio", "x", res["rps"] / servers["nginx"].last_rps)
            if res["errors"]:
                log(f"  {name} c={c}: {res['errors']} errors (timeouts {res.get('timeouts', 0)})")
        # the open loop at c=100: one round beside the headline's three (its rows say
        # runs=1); --runs N gives it N
        bench_open(a, tab, budget_end, servers, names, pin, wrk_cpu, nginx_rps, a.runs or 1)
        # peak RSS over the whole run, as the server saw it
        for name in MODELS:
            out = servers[name].stop()
            for line in out.splitlines():
                if line.startswith("{"):
                    st = json.loads(line)
                    impl = name
                    hi = http_impl(name, pin)
                    tab.add(f"http/{hi}/hello/peak", KIND[name], impl, "", "", "vm_hwm_bytes",
                            "bytes", st["rss_peak_kib"] * 1024)
                    tab.add(f"http/{hi}/hello/peak", KIND[name], impl, "", "", "live_units",
                            "count", st["peak_live"])
                    if st["spawn_failed"]:
                        tab.add(f"http/{hi}/hello/limit={st['spawn_errno']}", KIND[name], impl,
                                "", "", "limit_units", "count", st["peak_live"])
                    if st["accept_failed"]:
                        tab.add(f"http/{hi}/hello/accept-failed={st['accept_errno']}",
                                KIND[name], impl, "", "", "errors", "count", st["accept_failed"])
        servers["nginx"].stop()
        servers.clear()
        bench_upstream(a, tab, budget_end, wrk_cpu, pin, secs, a.runs or 1)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def open_plan(a):
    """(connections, offered rates as fractions of nginx's closed-loop req/s). 0.4x: the
    same moderate load for every server, and within what wl-load's one thread sends on
    time: it sleeps until each due time, so a request costs it more than wrk (11-15 us
    against 9 us at 60-80k req/s on the 2-vCPU EPYC, a development measurement), and at
    0.5x of nginx's ~140k it would run near its CPU's limit."""
    return [100], [0.4]


def bench_open(a, tab, budget_end, servers, names, pin, gen_cpu, nginx_rps, runs):
    """Open loop (wl-load): every server offered the same constant arrival rate, a
    fraction of nginx's closed-loop median at that concurrency from this run, and latency
    measured from each request's due time, so queueing behind a slow or stalled server
    counts (wrk's closed loop hides it). Same pinning as the closed-loop runs."""
    conc, fracs = open_plan(a)
    secs = 1
    steps = [(c, f, r, i) for c in conc if nginx_rps.get(c) for f in fracs
             for r in range(runs) for i in range(len(names))]
    for k, (c, frac, r, i) in enumerate(steps):
        if time.monotonic() > budget_end:
            log(f"throughput open loop: time budget spent; skipped the last {len(steps) - k}")
            return
        name = names[(i + r) % len(names)]
        s = servers[name]
        rate = frac * statistics.median(nginx_rps[c])
        log(f"throughput open loop {k + 1}/{len(steps)}: {name} c={c} rate {rate:.0f}/s "
            f"({frac}x nginx) run {r + 1}/{runs}")
        cpu0 = cpu_seconds(s.pids())
        j = run_open(a, s.port, c, rate, secs, gen_cpu, s)
        cpu = cpu_seconds(s.pids()) - cpu0
        model = "nginx" if name == "nginx" else KIND[name]
        impl = "nginx-1worker" if name == "nginx" else name
        case = f"http/{http_impl(name, pin)}/hello-open-{frac}x-nginx/c={c}"
        if not j:
            tab.add(case, model, impl, "concurrency", c, "errors", "count", c)
            continue
        add = lambda metric, unit, v: tab.add(case, model, impl, "concurrency", c, metric, unit, v)
        add("offered_req_per_s", "req/s", j["rate"])
        add("req_per_s", "req/s", j["achieved_rps"])
        add("p50_ms", "ms", j["p50_ms"])
        add("p99_ms", "ms", j["p99_ms"])
        add("p999_ms", "ms", j["p999_ms"])
        add("max_ms", "ms", j["max_ms"])
        # what a closed-loop tool would have reported for the same requests
        add("service_p99_ms", "ms", j["service_p99_ms"])
        add("errors", "count", j["errors"])
        add("incomplete_count", "count", j["incomplete"])
        add("cpu_s", "s", cpu)
        if j["completed"]:
            add("cpu_per_req_us", "us", cpu / j["completed"] * 1e6)
        add("generator_send_lag_p99_ms", "ms", j["send_lag_p99_ms"])
        add_gen(tab, case, model, impl, c, j["gen_cpu_percent"], j["gen_cpu_s"],
                f"open {name} c={c}")
        if j["errors"] or j["incomplete"]:
            log(f"  {name}: {j['errors']} errors, {j['incomplete']} never answered "
                f"(p99 {j['p99_ms']:.1f} ms)")


def bench_upstream(a, tab, budget_end, wrk_cpu, pin, secs, runs):
    """The second handler: a blocking-style non-streaming call to mock-llm per request."""
    c = 100
    scale = "0.2"
    mock = Server("mock-llm", [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0",
                               "--profile", "vllm-8b-h100", "--time-scale", scale, "--seed", "7",
                               "--max-conns", "19000"])
    servers = {}
    try:
        for m in MODELS:
            servers[m] = Server(f"wl-http {m} upstream",
                                ["taskset", "-c", pin[m], os.path.join(a.bin, "wl-http"),
                                 "--model", m, "--handler", "upstream", "--upstream",
                                 f"127.0.0.1:{mock.port}", "--upstream-tokens", "16",
                                 "--max-seconds", "900"])
        for r in range(runs):  # one round unless --runs: a secondary point (the figure's lower row)
            for i in range(len(MODELS)):
                if time.monotonic() > budget_end:
                    log("throughput upstream: time budget spent; skipped the rest")
                    return
                name = MODELS[(i + r) % len(MODELS)]
                log(f"throughput upstream: {name} c={c} run {r + 1} (mock-llm vllm-8b-h100 "
                    f"x{scale}, 16 tokens per call)")
                s = servers[name]
                cpu0 = cpu_seconds(s.pids())
                res, raw = run_wrk(s.port, c, secs, wrk_cpu)
                cpu = cpu_seconds(s.pids()) - cpu0
                case = f"http/{http_impl(name, pin)}/upstream-vllm8b-x{scale}/c={c}"
                if res["rps"] is None:
                    tab.add(case, KIND[name], name, "concurrency", c, "errors", "count", c)
                    continue
                tab.add(case, KIND[name], name, "concurrency", c, "req_per_s", "req/s", res["rps"])
                if res["requests"]:
                    tab.add(case, KIND[name], name, "concurrency", c, "p50_ms", "ms", res["p50"])
                    tab.add(case, KIND[name], name, "concurrency", c, "p99_ms", "ms", res["p99"])
                tab.add(case, KIND[name], name, "concurrency", c, "errors", "count", res["errors"])
                tab.add(case, KIND[name], name, "concurrency", c, "cpu_s", "s", cpu)
                if res["requests"]:
                    tab.add(case, KIND[name], name, "concurrency", c, "cpu_per_req_us", "us",
                            cpu / res["requests"] * 1e6)
                add_gen(tab, case, KIND[name], name, c, res["gen_cpu_percent"], res["gen_cpu_s"],
                        f"upstream {name}")
    finally:
        for s in servers.values():
            s.stop()
        mock.stop()


# ---- LLM conversations --------------------------------------------------------------

def listen_overflows():
    """TcpExt ListenOverflows of this network namespace: SYNs dropped because a listen
    queue was full (they are retried after 1 s, 3 s, ...). -1 when unreadable."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
        for i in range(0, len(lines) - 1, 2):
            if lines[i].startswith("TcpExt:"):
                keys, vals = lines[i].split(), lines[i + 1].split()
                return int(vals[keys.index("ListenOverflows")])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def run_llm(a, model, port, n, max_tokens, extra=(), timeout_s=180):
    argv = [os.path.join(a.bin, "wl-llm"), "--model", model, "--target", f"127.0.0.1:{port}",
            "--n", str(n), "--max-tokens", str(max_tokens), "--timeout", str(timeout_s)]
    argv += list(extra)
    lo0 = listen_overflows()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 60,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        log(f"  wl-llm {model} n={n} ran past {timeout_s + 60}s and was killed")
        return None
    lo1 = listen_overflows()
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            j["listen_overflows"] = lo1 - lo0 if lo0 >= 0 and lo1 >= 0 else None
            # every raw measurement is kept beside the CSV's aggregates
            os.makedirs(os.path.join(a.out, "tmp"), exist_ok=True)
            with open(os.path.join(a.out, "tmp", "llm-raw.jsonl"), "a") as f:
                f.write(json.dumps({"argv": argv[1:], **j}) + "\n")
            return j
    log(f"  wl-llm {model} n={n} failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
    return None


def record_llm(tab, case, impl, n, j):
    model = KIND[impl]
    add = lambda metric, unit, v: tab.add(case, model, impl, "n", n, metric, unit, v)
    add("units_per_s", "units/s", j["conv_per_s"])
    add("tokens_per_s", "tokens/s", j["tokens_per_s"])
    if j["ok"]:
        add("ttft_p50_ms", "ms", j["ttft_p50_ms"])
        add("ttft_p99_ms", "ms", j["ttft_p99_ms"])
        add("total_p50_ms", "ms", j["total_p50_ms"])
    if j.get("itl_gaps"):
        add("itl_p50_ms", "ms", j["itl_p50_ms"])
        add("itl_p99_ms", "ms", j["itl_p99_ms"])
    add("vm_hwm_bytes", "bytes", j["rss_peak_kib"] * 1024)
    add("kernel_est_bytes", "bytes", j["kernel_est_kib"] * 1024)
    add("cpu_s", "s", j["cpu_s"])
    if j["tokens"]:
        add("cpu_per_1k_tokens_ms", "ms", j["cpu_s_per_1k_tokens"] * 1000)
    add("live_units", "count", j["peak_live"])
    add("errors", "count", j["failed"])
    # requests retried like the OpenAI SDKs do (2 at most per conversation)
    add("retries_count", "count", j.get("retries"))
    # all N connect at once: past the mock's listen queue (somaxconn) SYNs are dropped and
    # retried after 1 s, which shows in first-token times; counted machine-wide
    add("listen_overflows_count", "count", j.get("listen_overflows"))
    base = case.rsplit("/", 1)[0]
    for cause, cnt in j["causes"].items():
        tab.add(f"{case}/fail={slug(cause)}", model, impl, "n", n, "errors", "count", cnt)
    if j["spawn_failed"]:
        tab.add(f"{case}/limit={j['spawn_errno']}", model, impl, "n", n, "limit_units", "count",
                j["units_started"])
    del base


def llm_profiles(a):
    """(label, mock-llm args, max_tokens, N list, runs, models[, wl-llm args])"""
    q = a.quick
    runs = a.runs or (1 if q else 3)  # quick: one round, as every quick point
    return [
        # no waits at all: what a token costs the client, CPU-bound
        ("vllm8b-nowait", ["--profile", "vllm-8b-h100", "--time-scale", "0"], 64,
         [100] if q else [100, 1000], runs, ["thread", "pool", "fiber", "fiber-mt"]),
        # the real gpt-4o timing (TTFT 0.4 s, 85 tok/s): what one user sees
        ("gpt4o", ["--profile", "gpt-4o"], 64, [100], 1 if q else runs,
         ["thread", "fiber"] if q else ["thread", "fiber", "fiber-mt"]),
    ]


def mock_llm(a, name, seed, margs):
    return Server(name, [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0", "--seed",
                         str(seed), "--max-conns", "19990"] + margs)


def bench_llm(a, tab, budget_end):
    # the README's headline first (10,000 and 1,000 idle streams, thread against fiber,
    # with the marginal CPU per token), then the tables' profiles: a spent budget cuts
    # these, not the headline
    bench_streams(a, tab, budget_end)
    for prof in llm_profiles(a):
        label, margs, max_tokens, ns, runs, models = prof[:6]
        extra = prof[6] if len(prof) > 6 else []
        mock = mock_llm(a, f"mock-llm {label}", 11, margs)
        try:
            for n in ns:
                per_run = {}
                for r in range(runs):
                    # interleaved run by run (thread, fiber, fiber-mt, thread, ...), the
                    # order rotated each round so no model always goes first
                    for i in range(len(models)):
                        if time.monotonic() > budget_end:
                            log(f"llm: time budget spent; skipped {label} n={n} run {r + 1}+")
                            break
                        impl = models[(i + r) % len(models)]
                        log(f"llm {label} n={n}: {impl} run {r + 1}/{runs}")
                        j = run_llm(a, impl, mock.port, n, max_tokens, extra)
                        if not j:
                            continue
                        if j["failed"]:
                            log(f"  {j['failed']} failed: {j['causes']}")
                        record_llm(tab, f"llm/{impl}/{label}/n={n}", impl, n, j)
                        per_run.setdefault(r, {})[impl] = j
                add_ratios(tab, label, n, per_run)
        finally:
            mock.stop()


def bench_llm_secondary(a, tab, budget_end):
    """The LLM stage's one-run points, after the headline stages (llm, starve): 10,000
    users arriving over a second, and the 20,000-conversation limit probe. A budget spent
    on a busy machine cuts these, never the headline."""
    if a.quick:
        return
    if time.monotonic() < budget_end:
        bench_arrive(a, tab, budget_end)
    if time.monotonic() < budget_end:
        bench_limit(a, tab, budget_end)


def add_ratios(tab, label, n, per_run):
    """thread-over-fiber ratios, each from one round (same mock, back to back, same
    draws), so their median and min-max are over rounds."""
    for r, js in per_run.items():
        t, f = js.get("thread"), js.get("fiber")
        if t and f and t["tokens"] and f["tokens"] and f["cpu_s_per_1k_tokens"] > 0:
            tab.add(f"llm/ratio/thread-over-fiber/{label}/n={n}/cpu-per-token",
                    "thread", "thread", "n", n, "ratio", "x",
                    t["cpu_s_per_1k_tokens"] / f["cpu_s_per_1k_tokens"])
            tab.add(f"llm/ratio/thread-over-fiber/{label}/n={n}/rss",
                    "thread", "thread", "n", n, "ratio", "x",
                    t["rss_peak_kib"] / max(f["rss_peak_kib"], 1))


STREAMS_LABEL = "gpt4o-5tps"
# gpt-4o first-token time, slowed to 5 tok/s per stream so that 10,000 streams stay
# within what mock-llm and the client sustain on 2 cores
# The profile's stalls (0.5% of gaps replaced by ~5x the gap, a second or more at 5
# tok/s) end an all-at-once run seconds after 99% of its conversations. Without them
# (mock-llm --stall-rate 0) a run ends with its slowest first token and length: ~22% of
# a run's wall at 10,000 x 20 tokens, ~45% at 8. Memory at the peak and completions did
# not move in the A/Bs (README "Time budget"), but CPU per 1,000 tokens does on threads:
# the quiet A/B (scripts/ab_stalls.py, 2026-12-03 15:14) found C threads 20% lower without
# stalls, ranges apart (C fibers, Node, Python asyncio within 1-3%). So full runs (what
# make publish takes) keep the stalls, and quick runs (never published) drop them. FIBERBENCH_STALLS=0 drops them in full runs too,
# =1 keeps them in quick ones. Every gpt-4o --tps 5 client run here, ruby's and peers'
# use it (peerlib.wl.no_stalls).
def stall_free(a):
    env = os.environ.get("FIBERBENCH_STALLS", "")
    return env == "0" or (env != "1" and bool(getattr(a, "quick", False)))


def no_stalls(a):
    """mock-llm's arguments for this mode's gpt-4o --tps 5 client runs (stall_free)."""
    return ["--stall-rate", "0"] if stall_free(a) else []


def stalls_note(a):
    """The machine-file words for it."""
    return ("without the profile's stalls (mock-llm --stall-rate 0)" if stall_free(a)
            else "with the profile's stalls")


STREAMS_MOCK = ["--profile", "gpt-4o", "--tps", "5"]
STREAMS_HI, STREAMS_LO = 20, 2


def streams_plan(a):
    """[(N, models run at both lengths, models run at the headline length only, rounds,
    rounds for the latter)]. Each round runs every model once at STREAMS_HI tokens per
    conversation (the headline figures) and the pair models once more at STREAMS_LO:
    the CPU difference over the token difference is the marginal cost of a token,
    connection setup and unit creation excluded, at both 1,000 and 10,000 streams."""
    runs = a.runs or 3
    if a.quick:
        # quick: 1,000 streams (fewer sizes, the same quantities; the 10,000-stream pair
        # took ~23 s of quick's 5 minutes, its draws' tail ~8 s a run: README "Time budget")
        return [(1000, ["thread", "fiber"], [], 1, 0)]
    return [(1000, ["thread", "fiber"], [], runs, 0),
            (10000, ["thread", "fiber"], ["fiber-mt"], runs, 1)]


def bench_streams(a, tab, budget_end):
    """Many idle streams: N conversations at 5 tok/s each, thread against fiber (and
    fiber-mt), with the marginal CPU per token. Same request indices on every run, so
    conversation i has the same first-token time, speed and length on every model."""
    label = STREAMS_LABEL
    for n, pair, extra_models, rounds, extra_rounds in streams_plan(a):
        mock = mock_llm(a, f"mock-llm {label} n={n}", 11, STREAMS_MOCK + no_stalls(a))
        try:
            per_run = {}
            for r in range(rounds):
                models = pair + (extra_models if r < extra_rounds else [])
                # thread hi, fiber hi, ..., then the low-token pair; models rotate each
                # round and the lengths swap every other round
                lens = (STREAMS_HI, STREAMS_LO) if r % 2 == 0 else (STREAMS_LO, STREAMS_HI)
                steps = [(models[(i + r) % len(models)], toks) for toks in lens
                         for i in range(len(models))]
                steps = [(m, t) for m, t in steps if t == STREAMS_HI or m in pair]
                if a.quick:
                    steps = [(m, t) for m, t in steps if t == STREAMS_HI]
                for impl, toks in steps:
                    if time.monotonic() > budget_end:
                        log(f"llm streams: time budget spent; skipped n={n} round {r + 1}+")
                        break
                    log(f"llm {label} n={n}: {impl} {toks} tokens, round {r + 1}/{rounds}")
                    j = run_llm(a, impl, mock.port, n, toks)
                    if not j:
                        continue
                    if j["failed"]:
                        log(f"  {j['failed']} failed: {j['causes']}")
                    if toks == STREAMS_HI:
                        record_llm(tab, f"llm/{impl}/{label}/n={n}", impl, n, j)
                        per_run.setdefault(r, {})[impl] = j
                    per_run.setdefault(r, {})[(impl, toks)] = j
            add_ratios(tab, label, n, per_run)
            add_marginal(tab, label, n, per_run, pair)
        finally:
            mock.stop()


def add_marginal(tab, label, n, per_run, pair):
    """Per round: (CPU at HI - CPU at LO) / (tokens at HI - tokens at LO), per model, and
    thread over fiber. With the same draws both runs of a round differ only in length."""
    for r, js in per_run.items():
        marg = {}
        for impl in pair:
            jl, jh = js.get((impl, STREAMS_LO)), js.get((impl, STREAMS_HI))
            if not (jl and jh) or jl["failed"] or jh["failed"] or jh["tokens"] <= jl["tokens"]:
                continue
            marg[impl] = (jh["cpu_s"] - jl["cpu_s"]) / ((jh["tokens"] - jl["tokens"]) / 1000)
            tab.add(f"llm/{impl}/{label}/n={n}/marginal-{STREAMS_LO}-{STREAMS_HI}-tokens",
                    KIND[impl], impl, "n", n, "cpu_per_1k_tokens_marginal_ms", "ms",
                    marg[impl] * 1000)
        if marg.get("thread") and marg.get("fiber") and marg["fiber"] > 0:
            tab.add(f"llm/ratio/thread-over-fiber/{label}/n={n}/cpu-per-token-marginal",
                    "thread", "thread", "n", n, "ratio", "x", marg["thread"] / marg["fiber"])


def bench_arrive(a, tab, budget_end):
    """The same 10,000 users arriving over one second instead of at once: first-token
    times without the connection storm. First-token time does not depend on the length,
    so conversations are short (5 tokens). One round: a secondary point, for time."""
    n, toks = 10000, 5
    label = f"{STREAMS_LABEL}-arrive1s-{toks}tokens"
    runs = 1
    models = ["thread", "fiber"]
    mock = mock_llm(a, f"mock-llm {label}", 11, STREAMS_MOCK + no_stalls(a))
    try:
        per_run = {}
        for r in range(runs):
            for i in range(len(models)):
                if time.monotonic() > budget_end:
                    log("llm arrive1s: time budget spent; skipped the rest")
                    return
                impl = models[(i + r) % len(models)]
                log(f"llm {label} n={n}: {impl} run {r + 1}/{runs}")
                j = run_llm(a, impl, mock.port, n, toks, ["--gap-us", "100"])
                if j:
                    record_llm(tab, f"llm/{impl}/{label}/n={n}", impl, n, j)
                    per_run.setdefault(r, {})[impl] = j
        add_ratios(tab, label, n, per_run)
    finally:
        mock.stop()


def bench_limit(a, tab, budget_end):
    """Past the open-files cap: 20,000 conversations need 20,000 client sockets."""
    n = 20000
    mock = Server("mock-llm limit", [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0",
                                     "--seed", "13", "--max-conns", "19990", "--profile",
                                     "gpt-4o", "--tps", "5"] + no_stalls(a))
    try:
        for impl in ["fiber", "thread"]:
            if time.monotonic() > budget_end:
                break
            log(f"llm limit probe: {impl} n={n} (open files capped at 20,000 per process)")
            j = run_llm(a, impl, mock.port, n, 5)
            if j:
                record_llm(tab, f"llm/{impl}/gpt4o-5tps/n={n}", impl, n, j)
    finally:
        mock.stop()


def bench_starve(a, tab, budget_end):
    """The 25-worker pool against fibers as N conversations arrive at once."""
    scale = "0.25"
    ns = [26, 100] if a.quick else [26, 100, 1000]
    runs = a.runs or (1 if a.quick else 3)  # quick: one round, as every quick point
    mock = Server("mock-llm fixed", [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0",
                                     "--seed", "5", "--profile", "fixed", "--time-scale", scale])
    label = f"fixed-x{scale}"
    try:
        models = ["pool", "fiber", "thread", "fiber-mt"]
        for n in ns:
            nruns = runs
            for r in range(nruns):
                for i in range(len(models)):
                    if time.monotonic() > budget_end:
                        log("starvation: time budget spent; skipped the rest")
                        return
                    impl = models[(i + r) % len(models)]
                    log(f"starvation n={n}: {impl} run {r + 1}/{nruns}")
                    # the last run's per-user times, for the staircase plot
                    pc = os.path.join(a.out, "tmp", f"starve-{impl}-n{n}.csv")
                    os.makedirs(os.path.dirname(pc), exist_ok=True)
                    j = run_llm(a, impl, mock.port, n, 64, ["--per-conv", pc])
                    if not j:
                        continue
                    case = f"starve/{impl}/{label}/n={n}"
                    add = lambda metric, unit, v: tab.add(case, KIND[impl], impl, "n", n, metric,
                                                          unit, v)
                    if j["ttft_user26_ms"] >= 0:
                        add("ttft_user26_ms", "ms", j["ttft_user26_ms"])
                    add("ttft_first25_p50_ms", "ms", j["ttft_first25_p50_ms"])
                    if n > 26:
                        add("ttft_rest_p50_ms", "ms", j["ttft_rest_p50_ms"])
                        add("ttft_rest_p99_ms", "ms", j["ttft_rest_p99_ms"])
                    add("ttft_p99_ms", "ms", j["ttft_p99_ms"])
                    add("seconds", "s", j["elapsed_s"])
                    add("errors", "count", j["failed"])
    finally:
        mock.stop()


def bench_db(a, tab, budget_end):
    """Resource multiplication: K shared "database connections" and who holds them."""
    scale = "0.25"
    n, k = 100, 10
    mock = Server("mock-llm fixed", [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0",
                                     "--seed", "5", "--profile", "fixed", "--time-scale", scale])
    try:
        combos = [("thread", "job"), ("fiber", "job"), ("fiber", "query"), ("thread", "query")]
        for r in range(1):
            for impl, hold in combos:
                if time.monotonic() > budget_end:
                    return
                log(f"db: {impl} hold={hold} k={k} n={n} run {r + 1}")
                j = run_llm(a, impl, mock.port, n, 64, ["--db", str(k), "--db-hold", hold])
                if not j:
                    continue
                case = f"llm-db/{impl}/hold={hold}/k={k}/fixed-x{scale}/n={n}"
                add = lambda metric, unit, v: tab.add(case, KIND[impl], impl, "n", n, metric,
                                                      unit, v)
                add("db_peak_held_count", "count", j["db_peak_held"])
                add("db_wait_mean_ms", "ms", j["db_wait_mean_ms"])
                add("ttft_p50_ms", "ms", j["ttft_p50_ms"])
                add("seconds", "s", j["elapsed_s"])
                add("live_units", "count", j["peak_live"])
    finally:
        mock.stop()


def noise(a, what, harness):
    """scripts/noise.py around each harness, as bench/run_micro.sh does for its own: before
    it, a bounded wait for a calm machine (FIBERBENCH_CALM_WAIT s: default 5 quick, 30
    full); after it, the noise before, during and after in <harness>.machine.txt and
    `noisy: yes|no` (make publish refuses noisy runs)."""
    env = dict(os.environ)
    env.setdefault("FIBERBENCH_CALM_WAIT", "5" if a.quick else "30")
    r = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "noise.py"), what,
                        "--out", a.out, "--harness", harness], env=env)
    if r.returncode != 0:
        log(f"noise.py {what} {harness} failed (exit {r.returncode})")


# ---- libcurl: unmodified blocking code on threads, fibers with hooks, multi ----------
# (self-contained: its own stage "curl", table curl.csv, time budget and mock-llm)

CURL_MODELS = [  # (wl-curl --model, results model, results impl)
    ("thread", "thread", "curl-easy-thread"),
    ("fiber", "fiber", "curl-easy-fiber-hook"),
    ("multi", "curl-multi", "curl-multi-epoll"),
]
# The baselines run from the binary without the hooks, so that none of the hook's cost
# (an interposed call is one more check per libc call) is charged to them; the fiber
# model from the one that links them.
CURL_BIN = {"thread": "wl-curl-plain", "fiber": "wl-curl", "multi": "wl-curl-plain"}


def run_curl(a, model, port, n, extra=(), timeout_s=120):
    argv = [os.path.join(a.bin, CURL_BIN[model]), "--model", model, "--target",
            f"127.0.0.1:{port}", "--n", str(n), "--timeout", str(timeout_s)] + list(extra)
    lo0 = listen_overflows()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 60,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        log(f"  wl-curl {model} n={n} ran past {timeout_s + 60}s and was killed")
        return None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            lo1 = listen_overflows()
            # SYNs dropped at mock-llm's full listen queue come back after 1 s, 3 s...:
            # first-token times to read beside it (machine-wide counter)
            j["listen_overflows"] = lo1 - lo0 if lo0 >= 0 and lo1 >= 0 else None
            os.makedirs(os.path.join(a.out, "tmp"), exist_ok=True)
            with open(os.path.join(a.out, "tmp", "curl-raw.jsonl"), "a") as f:
                f.write(json.dumps({"argv": argv[1:], **j}) + "\n")
            return j
    log(f"  wl-curl {model} n={n} failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
    return None


def curl_per_unit(j):
    """Client memory per conversation: peak RSS growth and the kernel estimate (page
    tables + per thread a 16 KiB kernel stack and 7 KiB of task slab), over the most
    conversations in progress at once (set up and not yet finished; wl-curl's peak_active).
    Not over the units alive at once: at the open-files cap the fiber model had all 10,000
    fibers alive but at most 6,665 conversations in progress, the rest failing in setup."""
    live = max(j.get("peak_active", j["peak_live"]), 1)
    user = max(j["rss_peak_kib"] - j["rss_base_kib"], 0) * 1024 / live
    kern = j["kernel_est_kib"] * 1024 / live
    return user, kern


def record_curl(tab, case, model, impl, n, j):
    add = lambda metric, unit, v: tab.add(case, model, impl, "n", n, metric, unit, v)
    user, kern = curl_per_unit(j)
    add("completed_count", "count", j["ok"])
    add("errors", "count", j["failed"])
    add("live_units", "count", j["peak_live"])
    if "peak_active" in j:
        add("active_units", "count", j["peak_active"])
    add("tokens_per_s", "tokens/s", j["tokens_per_s"])
    if j["ok"]:
        add("ttft_p50_ms", "ms", j["ttft_p50_ms"])
        add("ttft_p99_ms", "ms", j["ttft_p99_ms"])
    if j.get("itl_gaps"):
        add("itl_p50_ms", "ms", j["itl_p50_ms"])
        add("itl_p99_ms", "ms", j["itl_p99_ms"])
    add("vm_hwm_bytes", "bytes", j["rss_peak_kib"] * 1024)
    add("kernel_est_bytes", "bytes", j["kernel_est_kib"] * 1024)
    add("hwm_per_unit_bytes", "bytes", user)
    add("kernel_est_per_unit_bytes", "bytes", kern)
    add("bytes_per_unit", "bytes", user + kern)
    # measured the way bench/memory does: the machine-wide /proc/meminfo delta (kernel
    # stacks, unreclaimable slab, page tables), sockets included - mock-llm's side of each
    # connection too - and other processes' noise; beside the estimate, not in the sum
    if j.get("sys_kernel_delta_kib", -1) >= 0:
        add("kernel_meminfo_per_unit_bytes", "bytes",
            j["sys_kernel_delta_kib"] * 1024 / max(j.get("peak_active", j["peak_live"]), 1))
    add("cpu_s", "s", j["cpu_s"])
    if j["tokens"]:
        add("cpu_per_1k_tokens_ms", "ms", j["cpu_s_per_1k_tokens"] * 1000)
    add("seconds", "s", j["elapsed_s"])
    add("listen_overflows_count", "count", j.get("listen_overflows"))
    for cause, cnt in j["causes"].items():
        tab.add(f"{case}/fail={slug(cause)}", model, impl, "n", n, "errors", "count", cnt)
    if j["spawn_failed"]:
        tab.add(f"{case}/limit={j['spawn_errno']}", model, impl, "n", n, "limit_units",
                "count", j["units_started"])
    elif any("EMFILE" in c for c in j["causes"]):
        # 3 descriptors per easy transfer (socket + libcurl's wake-up socketpair): the
        # open-files cap, not the model, stops the rest
        tab.add(f"{case}/limit=EMFILE", model, impl, "n", n, "limit_units", "count", j["ok"])


def bench_curl(a, extra_machine):
    """The same libcurl client three ways: curl_easy_perform on a thread per
    conversation, on a fiber per conversation with fiber/hook, and libcurl's multi
    interface on one thread. Every conversation carries x-mock-request-index, so all
    models get the same draws; models interleaved run by run."""
    # about 25 s quick, ~3 min full (4.5 before 10,000 arriving went to one run) on the 2-vCPU machine at load 5-30 (scripts/bench.sh's
    # table); --max-seconds overrides
    t_end = time.monotonic() + (a.max_seconds or (60 if a.quick else 420))
    tab = Table("curl")
    mock = Server("mock-llm curl", [os.path.join(a.bin, "mock-llm"), "--listen",
                                    "127.0.0.1:0", "--seed", "11", "--max-conns", "19990",
                                    "--profile", "gpt-4o", "--tps", "5"] + no_stalls(a))
    try:
        # A real request carries kilobytes of prompt; a mock-llm without its framing fix
        # (mockllm b1d3d30) mangles bodies over ~1 KiB (404): then say so and send less.
        kib = 4
        probe = run_curl(a, "thread", mock.port, 1, ["--max-tokens", "2", "--prompt-kib", "4"])
        if not probe or probe["ok"] != 1:
            log(f"curl: a 4 KiB request failed ({probe and probe['causes']}); sending the "
                "minimal prompt instead")
            kib = 0
        label = f"gpt4o-5tps-prompt{kib}k"
        # A 4 KiB receive buffer (CURLOPT_BUFFERSIZE; libcurl's default 16 KiB) on every
        # model: a page holds a response head and many SSE events, and the 16 KiB buffers
        # freed by finished transfers dirtied the heap the live ones use (10,000 arriving:
        # 7-9 KiB less per conversation on each model, CPU per token unchanged)
        base = ["--max-tokens", "20", "--prompt-kib", str(kib), "--buffer-bytes", "4096"]
        # (label, n, runs, extra args), the headline first: 1,000 at once, 3 rounds (gen:curl's
        # table and ratios); then the one-run points gen:curl and the curl figure show as
        # such (issue 12 is closed as blocked: nothing judges them any more): 10,000
        # arriving over 10 s (about 4,500 alive at once; 3 rounds were ~120 s of make
        # bench's 20 minutes, README "Time budget") and 10,000 at once, a limit probe (past
        # the open-files cap for the easy API, 3 descriptors a transfer). N = 100 and 6,000
        # at once (what the cap holds) answer no question the README asks: only with
        # --runs, which gives every step its rounds. Quick: N = 100, one round (the 10-s
        # arrival window cannot be shortened without changing what it measures).
        runs = a.runs or 3
        # quick: N = 100 (fewer sizes: a run is its 20 tokens and the slowest first token,
        # ~6.5 s loaded against ~7.3 s at 1,000; README "Time budget")
        steps = ([(label, 100, a.runs or 1, [])]
                 if a.quick else
                 [(label, 1000, runs, []),
                  (label + "-arrive10s", 10000, a.runs or 1, ["--gap-us", "1000"]),
                  (label, 10000, 1, [])]
                 + ([(label, 100, a.runs, []), (label, 6000, min(a.runs, 2), [])] if a.runs else []))
        for lab, n, nruns, extra in steps:
            per_run = {}
            for r in range(nruns):
                for i in range(len(CURL_MODELS)):
                    if time.monotonic() > t_end:
                        log(f"curl: time budget spent; skipped {lab} n={n} run {r + 1}+")
                        break
                    m, model, impl = CURL_MODELS[(i + r) % len(CURL_MODELS)]
                    log(f"curl {lab} n={n}: {impl} run {r + 1}/{nruns}")
                    j = run_curl(a, m, mock.port, n, base + extra)
                    if not j:
                        continue
                    if j["failed"]:
                        log(f"  {j['failed']} failed: {j['causes']}")
                    record_curl(tab, f"curl/{impl}/{lab}/n={n}", model, impl, n, j)
                    per_run.setdefault(r, {})[m] = j
            # ratios from one round each (same mock, back to back)
            for r, js in per_run.items():
                t, f, mu = js.get("thread"), js.get("fiber"), js.get("multi")
                if t and f and not t["failed"] and not f["failed"]:
                    mem_f, mem_t = sum(curl_per_unit(f)), sum(curl_per_unit(t))
                    tab.add(f"curl/ratio/fiber-over-thread/{lab}/n={n}/bytes-per-unit",
                            "fiber", "curl-easy-fiber-hook", "n", n, "ratio", "x",
                            mem_f / max(mem_t, 1))
                    if t["cpu_s_per_1k_tokens"] > 0:
                        tab.add(f"curl/ratio/fiber-over-thread/{lab}/n={n}/cpu-per-token",
                                "fiber", "curl-easy-fiber-hook", "n", n, "ratio", "x",
                                f["cpu_s_per_1k_tokens"] / t["cpu_s_per_1k_tokens"])
                if f and mu and not f["failed"] and not mu["failed"] and mu["cpu_s_per_1k_tokens"] > 0:
                    tab.add(f"curl/ratio/fiber-over-multi/{lab}/n={n}/cpu-per-token",
                            "fiber", "curl-easy-fiber-hook", "n", n, "ratio", "x",
                            f["cpu_s_per_1k_tokens"] / mu["cpu_s_per_1k_tokens"])
    finally:
        mock.stop()
    if tab.order:
        tab.write(a.out, extra_machine + [
            ("curl: libcurl %s easy API (thread from wl-curl-plain, fiber from wl-curl with "
             "fiber/hook linked) and multi interface over epoll (wl-curl-plain); mock-llm "
             "--profile gpt-4o --tps 5%s, 20 tokens, one connection per conversation "
             "(CURLOPT_FORBID_REUSE and CURLOPT_FRESH_CONNECT on every model), 4 KiB "
             "receive buffer (CURLOPT_BUFFERSIZE) on every model"
             % ((probe or {}).get("curl", "?"),
                " --stall-rate 0 (no stalls)" if stall_free(a) else ""))])


# ---- TLS: streaming conversations over HTTPS and plain HTTP, thread vs fiber -----------
# Self-contained (stage "tls"): its own mock-llm per run, so each run's server memory is
# its own, and its own rows (case prefix llm-tls/).

def _tls_metric_values(port, cafile):
    """mock-llm's /metrics (over TLS when cafile) as {name: value}; {} on failure."""
    import http.client
    import ssl
    try:
        if cafile:
            ctx = ssl.create_default_context(cafile=cafile)
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            k, v = line.rsplit(" ", 1)
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def _tls_run(a, impl, tls, n, max_tokens, tmp, timeout_s=240):
    """One run: a fresh mock-llm (HTTPS with a certificate it makes, or plain), wl-llm on
    top; while it runs, the moment most streams are running is found from the server's
    /metrics, and both processes' RSS are read then, with the connections open at that
    moment (one per conversation in progress, handshaking or streaming: what the RSS is
    divided by). Not the moment most connections are open: in a storm every client
    connects at once, long before any handshake has allocated anything. Returns
    (wl-llm JSON, snapshot)."""
    cert = os.path.join(tmp, f"tls-{os.getpid()}.pem") if tls else None
    margs = [os.path.join(a.bin, "mock-llm"), "--listen", "127.0.0.1:0", "--seed", "11",
             "--max-conns", "19990", "--profile", "gpt-4o", "--tps", "5"] + no_stalls(a)
    if tls:
        margs += ["--tls", "--tls-cert-out", cert]
    mock = Server(f"mock-llm{' --tls' if tls else ''}", margs)
    snap = {"open": 0, "streams": 0, "client_kib": 0, "server_kib": 0,
            "server_base_kib": rss_kib(mock.pids())}
    try:
        argv = [os.path.join(a.bin, "wl-llm"), "--model", impl, "--target",
                f"127.0.0.1:{mock.port}", "--n", str(n), "--max-tokens", str(max_tokens),
                "--timeout", str(timeout_s)] + (["--tls-ca", cert] if tls else [])
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s + 60
        while p.poll() is None and time.monotonic() < deadline:
            m = _tls_metric_values(mock.port, cert)
            streams = m.get("mllm_streams_active", 0)
            if streams > snap["streams"]:
                snap.update(streams=streams, open=m.get("mllm_connections_active", streams),
                            client_kib=rss_kib([p.pid]), server_kib=rss_kib(mock.pids()))
            time.sleep(0.1)
        if p.poll() is None:
            p.kill()
            log(f"  wl-llm {impl} tls={tls} n={n} ran past its time and was killed")
        out, err = p.communicate()
    finally:
        mock.stop()
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line), snap
    log(f"  wl-llm {impl} tls={tls} failed (exit {p.returncode}): {err.strip()[-300:]}")
    return None, snap


def bench_tls(a, tab, budget_end):
    """N streaming conversations (gpt-4o first-token time, 5 tokens/s, all arriving at
    once), thread vs fiber, over HTTPS (mock-llm --tls; the client verifies the server's
    certificate; TLS 1.3, ECDSA P-256) and plain HTTP, interleaved in each round. Client
    RSS per open conversation and the server's RSS per open connection are read at the
    moment most connections are open; the difference HTTPS minus HTTP is what OpenSSL
    costs each side per connection. CPU per 1,000 tokens includes each conversation's
    handshake (one connection per conversation: all N are open at once)."""
    # quick: a smaller N, the same quantities (100: a run is its 15 tokens and the slowest
    # first token, ~5 s loaded against ~7 s at 1,000; README "Time budget")
    n = 100 if a.quick else 10000
    # long enough that the handshake storm is over while the first streams still run
    # (quick: 1,000 handshakes take about a second here, so 15 tokens, 3 s, suffice;
    # the label carries the length)
    max_tokens = 15 if a.quick else 60
    # one round (all four combinations interleaved) unless --runs: its rows are secondary
    # (workloads/README's TLS table is a bounded --runs 3 run of its own), and a round at
    # 10,000 takes about 1.5 minutes of make bench's 20 (scripts/bench.sh)
    runs = 1 if a.quick else (a.runs or 1)
    combos = [("fiber", 0), ("thread", 0), ("fiber", 1), ("thread", 1)]
    label = f"gpt4o-5tps-{max_tokens}tok"
    with tempfile.TemporaryDirectory(prefix="wl-tls-") as tmp:
        for r in range(runs):
            got = {}
            for i in range(len(combos)):
                if time.monotonic() > budget_end:
                    log(f"tls: time budget spent; skipped run {r + 1}+")
                    break
                impl, tls = combos[(i + r) % len(combos)]
                scheme = "https" if tls else "http"
                log(f"tls {label} n={n}: {impl} over {scheme}, run {r + 1}/{runs}")
                j, snap = _tls_run(a, impl, tls, n, max_tokens, tmp)
                if not j:
                    continue
                case = f"llm-tls/{impl}/{scheme}/{label}/n={n}"
                record_llm(tab, case, impl, n, j)
                add = lambda metric, unit, v, c=case, m=impl: tab.add(c, KIND[m], m, "n", n,
                                                                    metric, unit, v)
                if snap["open"]:
                    add("open_conns_count", "count", snap["open"])
                    add("client_rss_per_open_conv_bytes", "bytes",
                        (snap["client_kib"] - j["rss_base_kib"]) * 1024 / snap["open"])
                    add("server_rss_per_open_stream_bytes", "bytes",
                        (snap["server_kib"] - snap["server_base_kib"]) * 1024 / snap["open"])
                add("client_hwm_per_conv_bytes", "bytes",
                    (j["rss_peak_kib"] - j["rss_base_kib"]) * 1024 / n)
                log(f"  ok {j['ok']}/{n}, {snap['streams']:.0f} streams running at most "
                    f"({snap['open']:.0f} connections then); client RSS/open "
                    f"conv {(snap['client_kib'] - j['rss_base_kib']) / max(snap['open'], 1):.1f} "
                    f"KiB, server RSS/stream {(snap['server_kib'] - snap['server_base_kib']) / max(snap['open'], 1):.1f} KiB, "
                    f"CPU/1k tokens {j['cpu_s_per_1k_tokens'] * 1000:.1f} ms, "
                    f"TTFT p50 {j['ttft_p50_ms']:.0f} ms")
                if j["failed"]:
                    log(f"  {j['failed']} failed: {j['causes']}")
                got[(impl, tls)] = (j, snap)
            # ratios and differences within this round only
            for tls in (0, 1):
                t, f = got.get(("thread", tls)), got.get(("fiber", tls))
                scheme = "https" if tls else "http"
                if t and f and f[0]["cpu_s_per_1k_tokens"] > 0 and f[1]["open"] and t[1]["open"]:
                    tab.add(f"llm-tls/ratio/thread-over-fiber/{scheme}/{label}/n={n}/cpu-per-token",
                            "thread", "thread", "n", n, "ratio", "x",
                            t[0]["cpu_s_per_1k_tokens"] / f[0]["cpu_s_per_1k_tokens"])
                    per = lambda x: (x[1]["client_kib"] - x[0]["rss_base_kib"]) / x[1]["open"]
                    if per(f) > 0:
                        tab.add(f"llm-tls/ratio/thread-over-fiber/{scheme}/{label}/n={n}/rss-per-open-conv",
                                "thread", "thread", "n", n, "ratio", "x", per(t) / per(f))
            for impl in ("thread", "fiber"):
                h, p = got.get((impl, 1)), got.get((impl, 0))
                if not (h and p and h[1]["open"] and p[1]["open"]):
                    continue
                # client: the peak (VmHWM) per conversation, robust to how many overlap
                c = lambda x: (x[0]["rss_peak_kib"] - x[0]["rss_base_kib"]) * 1024 / n
                sv = lambda x: (x[1]["server_kib"] - x[1]["server_base_kib"]) * 1024 / x[1]["open"]
                tab.add(f"llm-tls/{impl}/openssl-cost/{label}/n={n}", KIND[impl], impl, "n", n,
                        "client_tls_bytes_per_conv_bytes", "bytes", c(h) - c(p))
                tab.add(f"llm-tls/{impl}/openssl-cost/{label}/n={n}", KIND[impl], impl, "n", n,
                        "server_tls_bytes_per_stream_bytes", "bytes", sv(h) - sv(p))
                if p[0]["cpu_s_per_1k_tokens"] > 0:
                    tab.add(f"llm-tls/ratio/https-over-http/{impl}/{label}/n={n}/cpu-per-token",
                            KIND[impl], impl, "n", n, "ratio", "x",
                            h[0]["cpu_s_per_1k_tokens"] / p[0]["cpu_s_per_1k_tokens"])



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick subset (about 2 minutes)")
    ap.add_argument("--only", default="throughput,llm,starve,db,tls,curl",
                    help="comma list of stages: throughput, llm, starve, db, tls, curl")
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"),
                    help="where wl-http, wl-llm and mock-llm are (default build/bin)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"), help="results directory")
    ap.add_argument("--runs", type=int, default=0, help="repetitions (default 3)")
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="start no new step after this long (default 150 quick, 540 full, "
                         "plus the tls stage's 45/170; curl has its own 60/150 per round)")
    a = ap.parse_args()
    stages = [s for s in a.only.split(",") if s]
    for s in stages:
        if s not in ("throughput", "llm", "starve", "db", "tls", "curl"):
            ap.error(f"unknown stage '{s}'")
    if a.runs < 0 or a.runs > 50:
        ap.error("--runs must be 1..50")
    for b in ("wl-http", "wl-llm", "wl-load", "mock-llm") + (("wl-curl", "wl-curl-plain") if "curl" in stages
                                                              else ()):
        if not os.access(os.path.join(a.bin, b), os.X_OK):
            die(f"{b} not found in {a.bin} (build first: make build, or pass --bin)")
    if "throughput" in stages:
        for t in ("wrk", "nginx", "taskset"):
            if not (shutil.which(t) or os.access(f"/usr/sbin/{t}", os.X_OK)):
                die(f"{t} not found (scripts/deps.sh bench installs it)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    budget = a.max_seconds or (150 if a.quick else 540)
    if "tls" in stages and not a.max_seconds:
        budget += 45 if a.quick else 170  # the TLS stage's own share (bench_tls)
    budget_end = T_START + budget
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(143)))
    mode = "quick" if a.quick else "full"
    log(f"mode {mode}; stages {','.join(stages)}; open files {hard}; budget {int(budget)}s")
    extra = [f"workloads: {mode}", f"open files per process: {hard}"]
    gen_cpu, srv_cpu, pin = placement(os.cpu_count() or 1)
    http_extra = [
        f"pinning: load generators (wrk -t1, wl-load) on cpu{gen_cpu}; servers thread, pool, "
        f"fiber and nginx's one worker on cpu{pin['fiber']} (taskset / worker_cpu_affinity); "
        f"fiber-mt on cpus {pin['fiber-mt']}, one scheduler per CPU, sharing the generator's "
        f"(its cases carry cpus={pin['fiber-mt']}); the upstream mock-llm unpinned"
        if gen_cpu is not None else "pinning: one CPU, everything on it",
        f"generator_bound: the load generator used >= {GEN_BOUND_PERCENT:.0f}% of its CPU "
        "(user+sys from wait4 over its lifetime): the generator was the ceiling",
        "wrk: -t1, --timeout half the run (at least 1 s); closed loop; one connection = one "
        "keep-alive HTTP/1.1 client",
        "wl-load: open loop, offered rate = a fraction of nginx's closed-loop median at the "
        "same concurrency in this run (case hello-open-<fraction>x-nginx); latency from each "
        "request's due time; requests never answered count with their wait (lower bound)",
    ]
    failed = False
    try:
        if "throughput" in stages:
            tab = Table("throughput")
            noise(a, "begin", "throughput")
            try:
                bench_throughput(a, tab, budget_end)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                log(f"throughput FAILED: {e}")
                failed = True
            if tab.order:
                tab.write(a.out, extra + http_extra)
                noise(a, "end", "throughput")
        if any(s in stages for s in ("llm", "starve", "db", "tls")):
            tab = Table("llm")
            noise(a, "begin", "llm")
            # headline first (llm's streams, starve), then the one-run points, so that
            # a spent budget cuts a last secondary case, never the headline
            for s, fn in (("llm", bench_llm), ("starve", bench_starve), ("db", bench_db),
                          ("llm", bench_llm_secondary), ("tls", bench_tls)):
                if s in stages:
                    try:
                        fn(a, tab, budget_end)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        log(f"{s} FAILED: {e}")
                        failed = True
            if tab.order:
                tab.write(a.out, extra + [
                    "pinning: none (wl-llm clients and mock-llm float over both CPUs)",
                    "mock-llm: a separate process on the fiber runtime; profiles as in the "
                    "case names (mock-llm --list-profiles); every gpt4o-5tps case (and "
                    "llm-tls) " + stalls_note(a),
                    "draws: conversation i sends x-mock-request-index i on every attempt, so "
                    "every model and run gets the same first-token time, speed and length "
                    "for it"])
                noise(a, "end", "llm")
        if "curl" in stages:
            noise(a, "begin", "curl")
            t_curl = time.time()
            try:
                bench_curl(a, extra)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                log(f"curl FAILED: {e}")
                failed = True
            cm = os.path.join(a.out, "curl.machine.txt")
            if os.path.isfile(cm) and os.path.getmtime(cm) >= t_curl:  # written by this run
                noise(a, "end", "curl")
    finally:
        cleanup()
    log("done" + (" (with failures, see above)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
