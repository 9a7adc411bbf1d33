#!/usr/bin/env python3
"""test_load.py - the benchmark's load client (bench/mllm_load.c) against mock-llm. One case
per ctest entry (mockllm_load_<case>):

    test_load.py PATH/TO/mock-llm PATH/TO/mllm-load CASE

What a case asserts is a behaviour, never a speed.
"""
import os
import re
import resource
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_review as R  # noqa: E402  (Server, fail)

LOAD = None


def client_sources(port):
    """{local IPv4 address: count} of the established connections to 127.0.0.1:port
    (the client's ends), from /proc/net/tcp. Each connection is counted once by its local
    address and port: /proc/net/tcp read while thousands of connections are being made
    can list a socket twice (the table moves under the reader), which counted up to 9,678
    connections from 127.0.0.1 for 9,000 streams and failed 2 of 4 runs."""
    want = f"0100007F:{port:04X}"
    ends = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[2] == want and p[3] == "01":
                ends.add(p[1])
    got = {}
    for end in ends:
        a = int(end.split(":")[0], 16)  # little-endian on x86 and arm64
        ip = ".".join(str((a >> s) & 255) for s in (0, 8, 16, 24))
        got[ip] = got.get(ip, 0) + 1
    return got


def case_sources():
    """9,000 streams: past 8,192 connections to one address the client takes another
    loopback source (127.0.0.2). Linux gives connect() the even ports of the local range
    first, and once ~14,100 are taken by connections to one address every further
    connect() scans them all (~1.5 ms each here: 19,000 streams opened in 10.9 s); the
    port need only be unique per source. Before, every stream came from 127.0.0.1."""
    n = 9000
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < n + 1000:
        print(f"SKIP: the open-file limit is below {n + 1000}")
        sys.exit(77)
    srv = R.Server("--profile", "fixed", "--ttft-ms", "0", "--tps", "0.5",
                   "--output-tokens", "100000000", "--max-conns", "19500")
    load = None
    try:
        load = subprocess.Popen([LOAD, "--target", f"127.0.0.1:{srv.port}", "--streams", str(n),
                                 "--warmup", "2", "--window", "0.5", "--period-ms", "2000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen, t0 = {}, time.monotonic()
        while sum(seen.values()) < n and load.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.2)
            seen = client_sources(srv.port)
        out, err = load.communicate(timeout=60)
        if load.returncode != 0:
            R.fail(f"mllm-load exited {load.returncode}: {err[-500:]}")
        opened = re.search(r"\bopen=(\d+)", out)
        if not opened or int(opened.group(1)) != n:
            R.fail(f"mllm-load opened {opened.group(1) if opened else '?'} of {n} streams")
        if sum(seen.values()) < n:
            R.fail(f"saw {sum(seen.values())} of {n} connections established: {seen}")
        if len(seen) < 2 or seen.get("127.0.0.1", 0) > 8192:
            R.fail(f"the {n} connections came from {seen}: want 8,192 at most per source "
                   "address")
        print(f"ok: {n} streams from {dict(sorted(seen.items()))}")
    finally:
        if load and load.poll() is None:
            load.kill()
            load.wait()
        srv.stop()


def case_series_unwritable():
    """--series naming a file that cannot be created fails the run before it measures
    (exit 2, the path and the reason on stderr). Before, the client said so and went on
    measuring without the series, exiting 0: a bench run lost its series silently."""
    srv = R.Server("--profile", "fixed", "--ttft-ms", "0", "--tps", "5")
    try:
        r = subprocess.run([LOAD, "--target", f"127.0.0.1:{srv.port}", "--streams", "2",
                            "--warmup", "0.1", "--window", "0.1",
                            "--series", "/nonexistent-dir/series.csv"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 2 or "/nonexistent-dir/series.csv" not in r.stderr:
            R.fail(f"mllm-load exited {r.returncode} (want 2), stderr {r.stderr[-300:]!r}")
        if "streams=" in r.stdout:
            R.fail(f"mllm-load measured anyway: {r.stdout[:200]!r}")
        print("ok: " + r.stderr.strip())
    finally:
        srv.stop()


def case_defer_missed_turns():
    """--period-ms: turns the client misses by more than 100 us while its thread has no
    CPU (here: SIGSTOP for 0.3 s during the requests' turns, 20 ms apart) go one period
    on (send_deferred), every stream still opens, and each request is sent at a turn
    whose phase is its own (turn - first turn a whole number of slots, the deferred ones
    one period later). Before, the missed requests went out in one burst when the thread
    ran again, and their schedules stayed together for the whole run."""
    n, period_ms = 100, 2000.0
    srv = R.Server("--profile", "fixed", "--ttft-ms", "0", "--tps", "0.5",
                   "--output-tokens", "100000000")
    phases = f"/tmp/mllm-load-defer-{os.getpid()}.csv"
    load = None
    try:
        load = subprocess.Popen([LOAD, "--target", f"127.0.0.1:{srv.port}", "--streams", str(n),
                                 "--warmup", "0.5", "--window", "0.5", "--period-ms",
                                 f"{period_ms:g}", "--phases", phases],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.6)  # the turns run from ~0.01 s to ~2 s after the start
        os.kill(load.pid, 19)  # SIGSTOP
        time.sleep(0.3)
        os.kill(load.pid, 18)  # SIGCONT
        out, err = load.communicate(timeout=60)
        if load.returncode != 0:
            R.fail(f"mllm-load exited {load.returncode}: {err[-500:]}")
        d = dict(re.findall(r"(\w+)=([-\w.]+)", out))
        if d.get("open") != str(n):
            R.fail(f"mllm-load opened {d.get('open')} of {n} streams")
        if "send_deferred" not in d or int(d["send_deferred"]) < 1:
            R.fail(f"no turn deferred after a 0.3 s stop: send_deferred={d.get('send_deferred')}")
        with open(phases) as f:
            rows = [line.split(",") for line in f.read().split()[1:]]
        turns = sorted(int(r[1]) for r in rows)
        slot = period_ms * 1e6 / n  # k = 1 here: spacing 20 ms >= 25 us
        per = period_ms * 1e6
        for t in turns:
            off = (t - turns[0]) % per / slot
            if abs(off - round(off)) > 1e-3 and abs(off - round(off)) < 1 - 1e-3:
                R.fail(f"a turn {(t - turns[0]) / 1e6:.3f} ms after the first is off the "
                       f"slots of {slot / 1e6:g} ms")
        late = [int(r[2]) - int(r[1]) for r in rows]
        if min(late) < 0:
            R.fail("a request sent before its turn")
        print(f"ok: send_deferred={d['send_deferred']}, {n} streams open, every turn on a slot")
    finally:
        if load and load.poll() is None:
            load.kill()
            load.wait()
        srv.stop()
        if os.path.exists(phases):
            os.unlink(phases)


CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        sys.exit(f"usage: test_load.py PATH/TO/mock-llm PATH/TO/mllm-load CASE "
                 f"({', '.join(CASES)})")
    R.BIN, LOAD = sys.argv[1], sys.argv[2]
    CASES[sys.argv[3]]()
