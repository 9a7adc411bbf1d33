"""peers/peerlib.py - what every peer harness (peers/bench.py for Python, Go and Node;
peers/ruby/bench.py for Ruby) does the same way, so that their rows compare row for
row: start a fresh mock-llm, run one client process against it while sampling its peak
threads, page tables and RSS from outside, read its one JSON line (the wl-llm shape),
and turn it into results rows with the same metric names.

Python 3 standard library only; the process helpers (Server, Table, cleanup) are
workloads/bench/run.py's, imported once here.
"""
import json
import os
import re
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "workloads", "bench"))
import run as wl  # noqa: E402  (Table, Server, process helpers: one copy of each)

# the C client's estimate of a thread's kernel stack (workloads/include/wl_report.h)
KERNEL_STACK_KIB = 16

# The marginal CPU of a token, as both harnesses measure it: (label, mock-llm args,
# (lo, hi) tokens per conversation), N = 100. Tokens are paced one per event (mock-llm's
# fixed profile, 50 tokens/s, first token after 20 ms), as a real stream delivers them:
# every token is a wake-up of the client. With no waits (--time-scale 0, the step's
# earlier form) the events piled up in the socket and one read returned many tokens,
# hiding the wake-up (peers/review/FINDINGS.md, finding 1: C threads/fibers 1.0x with
# no waits, 2.1x paced). 16 and 64 tokens: 1.3 s for the longer run, within the time
# the no-wait step took with its process start-ups; the case names read
# llm/<impl>/fixed-50tps/n=100/marginal-16-64-tokens.
MARGINAL = ("fixed-50tps", ["--profile", "fixed", "--tps", "50", "--ttft-ms", "20"], (16, 64))
MARGINAL_CASE = "llm/{impl}/fixed-50tps/n=100/marginal-16-64-tokens"


def status(pid):
    """VmRSS, VmHWM, VmPTE (KiB) and Threads of a live process, or None."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "VmPTE", "Threads"):
                    out[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return out


class Peaks:
    """The peaks of a process's page tables, threads and RSS, sampled every 50 ms from
    outside (the measured process spends nothing on it)."""

    def __init__(self):
        self.pte = self.threads = self.rss = self.hwm = 0

    def sample(self, pid):
        s = status(pid)
        if s:
            self.pte = max(self.pte, s.get("VmPTE", 0))
            self.threads = max(self.threads, s.get("Threads", 0))
            self.rss = max(self.rss, s.get("VmRSS", 0))
            self.hwm = max(self.hwm, s.get("VmHWM", 0))
        return s

    def kernel_est_kib(self):
        # the C client's estimate: page tables + a 16 KiB kernel stack per thread
        return self.pte + self.threads * KERNEL_STACK_KIB


def wait_exit(p, period):
    """Up to `period` seconds for process p to end: the sampling loops' pause, which returns
    as soon as the process exits instead of sleeping out the period (a plain sleep lost
    25 ms a run on average, 2-3 s of a full ruby or peers harness, measuring nothing)."""
    try:
        p.wait(timeout=period)
    except subprocess.TimeoutExpired:
        pass


def mock(bin_dir, label, margs, seed):
    """A fresh mock-llm on an ephemeral loopback port (a fresh one per run: every model
    meets the same request-indexed draws and none inherits another's connections)."""
    return wl.Server(f"mock-llm {label}", [os.path.join(bin_dir, "mock-llm"), "--listen",
                                           "127.0.0.1:0", "--seed", str(seed),
                                           "--max-conns", "19990"] + margs)


def run_client(argv, out_dir, raw_name, what, timeout_s, log, env=None, extra_raw=None,
               preexec=None, mock_pid=None):
    """Runs one client process (argv) to its end, sampling its peaks; returns its JSON
    object (the wl-llm shape) with listen_overflows and, when the client does not
    measure them itself, kernel_est_kib and threads_peak from the samples. With
    mock_pid, also mock_cpu_s: the CPU the mock-llm process spent while the client ran
    (/proc/<pid>/stat, before and after; 10 ms ticks). None when it failed (logged) or
    ran past timeout_s + 90 s (killed). Every raw object is appended to
    OUT/tmp/<raw_name>-raw.jsonl beside the CSV's aggregates."""
    lo0 = wl.listen_overflows()
    mcpu0 = wl.cpu_seconds([mock_pid]) if mock_pid else None

    def pre():
        wl._die_with_parent()
        if preexec:
            preexec()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=pre, env=env)
    pk = Peaks()
    deadline = time.monotonic() + timeout_s + 90
    # a pipe left undrained would stall a chatty client: read both at the end, they are
    # one JSON line and a few lines of errors
    while p.poll() is None and time.monotonic() < deadline:
        pk.sample(p.pid)
        wait_exit(p, 0.05)
    if p.poll() is None:
        p.kill()
        p.communicate()
        log(f"  {what} ran past {timeout_s + 90}s and was killed")
        return None
    out, err = p.communicate()
    lo1 = wl.listen_overflows()
    mcpu = wl.cpu_seconds([mock_pid]) - mcpu0 if mock_pid else None
    for line in out.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            j["listen_overflows"] = lo1 - lo0 if lo0 >= 0 and lo1 >= 0 else None
            if mcpu is not None:
                j["mock_cpu_s"] = mcpu
            if "kernel_est_kib" not in j:  # a peer: sampled from outside
                j["kernel_est_kib"] = pk.kernel_est_kib()
                j["threads_peak"] = pk.threads
            os.makedirs(os.path.join(out_dir, "tmp"), exist_ok=True)
            with open(os.path.join(out_dir, "tmp", f"{raw_name}-raw.jsonl"), "a") as f:
                f.write(json.dumps({**(extra_raw or {}), "argv": argv[1:], **j}) + "\n")
            return j
    log(f"  {what} failed (exit {p.returncode}): {err.strip()[-300:]}")
    return None


def record_client(tab, case, model, impl, n, j):
    """One client run as rows: the metrics every LLM client harness reports."""
    add = lambda metric, unit, v: tab.add(case, model, impl, "n", n, metric, unit, v)
    add("completed_count", "count", j["ok"])
    add("errors", "count", j["failed"])
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
    live = max(j["peak_live"], 1)
    # what one more open conversation costs: the peak over the baseline (interpreter and
    # libraries loaded), per conversation alive at the peak
    if j.get("rss_base_kib", -1) >= 0:
        user = (j["rss_peak_kib"] - j["rss_base_kib"]) * 1024
        add("user_bytes_per_unit", "bytes", user / live)
        # with the kernel's share: thread stacks and page tables (the estimate above)
        add("bytes_per_unit", "bytes", (user + j["kernel_est_kib"] * 1024) / live)
    add("cpu_s", "s", j["cpu_s"])
    if j["tokens"]:
        add("cpu_per_1k_tokens_ms", "ms", j["cpu_s_per_1k_tokens"] * 1000)
    if j.get("mock_cpu_s") is not None:
        # mock-llm's own CPU over the run, and its share of one core over the client's
        # wall time: near 1 the mock, not the client, sets the first-token floor
        add("mock_cpu_s", "s", j["mock_cpu_s"])
        if j.get("elapsed_s"):
            add("mock_cpu_percent", "percent", 100 * j["mock_cpu_s"] / j["elapsed_s"])
    add("live_units", "count", j["peak_live"])
    add("retries_count", "count", j.get("retries"))
    add("listen_overflows_count", "count", j.get("listen_overflows"))
    for cause, cnt in j["causes"].items():
        tab.add(f"{case}/fail={wl.slug(cause)}", model, impl, "n", n, "errors", "count", cnt)
    if j["spawn_failed"]:
        tab.add(f"{case}/limit={j['spawn_errno']}", model, impl, "n", n, "limit_units", "count",
                j["units_started"])
    # a resource limit met by conversations (open files: 20,000 per process here) is a
    # result too: where it hit, as the units alive at the peak
    hit = sorted({m.group(1) for c in j["causes"]
                  for m in [re.search(r"\b(EMFILE|ENFILE|EAGAIN|ENOMEM|EADDRNOTAVAIL)\b", c)] if m})
    for e in hit:
        if not (j["spawn_failed"] and e == j["spawn_errno"]):
            tab.add(f"{case}/limit={e}", model, impl, "n", n, "limit_units", "count",
                    j["peak_live"])


def ratios(tab, label, n, js, pairs, model_of, impl_of):
    """Same-round ratios of CPU per token and peak RSS for each (num, den) pair of the
    impls in js ({impl: client JSON} of one round): rows
    llm/ratio/<num>-over-<den>/<label>/n=<n>/<what>, in the numerator's model and impl
    columns (model_of(impl), impl_of(impl, json))."""
    for num, den in pairs:
        a, b = js.get(num), js.get(den)
        if not (a and b):
            continue
        for what, key in (("cpu-per-token", "cpu_s_per_1k_tokens"), ("rss", "rss_peak_kib")):
            if a.get(key) and b.get(key):
                tab.add(f"llm/ratio/{num}-over-{den}/{label}/n={n}/{what}", model_of(num),
                        impl_of(num, a), "n", n, "ratio", "x", a[key] / b[key])


def marginal(tab, label, n, lengths, models, js, pairs, model_of, impl_of):
    """CPU per extra 1,000 tokens from one round's two lengths of each model ({(impl,
    tokens): client JSON}), setup left out: (CPU_hi - CPU_lo) / (tokens_hi - tokens_lo),
    for the runs where no conversation failed; then the same-round ratios of the pairs."""
    lo, hi = lengths
    marg = {}
    for impl in models:
        a, b = js.get((impl, lo)), js.get((impl, hi))
        if a and b and not a["failed"] and not b["failed"] and b["tokens"] > a["tokens"]:
            marg[impl] = (b["cpu_s"] - a["cpu_s"]) / ((b["tokens"] - a["tokens"]) / 1000)
            tab.add(f"llm/{impl}/{label}/n={n}/marginal-{lo}-{hi}-tokens", model_of(impl),
                    impl_of(impl, b), "n", n, "cpu_per_1k_tokens_marginal_ms", "ms",
                    marg[impl] * 1000)
    for num, den in pairs:
        if marg.get(num) and marg.get(den) and marg[den] > 0:
            tab.add(f"llm/ratio/{num}-over-{den}/{label}/n={n}/cpu-per-token-marginal",
                    model_of(num), impl_of(num, js[(num, hi)]), "n", n, "ratio", "x",
                    marg[num] / marg[den])


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
