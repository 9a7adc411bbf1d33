#!/usr/bin/env python3
"""Records the noise a harness ran in, and waits (a bounded time) for a calm machine.

    scripts/noise.py begin --out DIR --harness H[,H...] [--wait S]
    scripts/noise.py end   --out DIR --harness H[,H...]
    scripts/noise.py sample [--window S]

begin: measures the machine over 1-second windows (FIBERBENCH_CALM_LOOK s: 0.1-1) (CPU busy share of all CPUs from
  /proc/stat, steal time, CPU pressure from /proc/pressure/cpu = the share of time some
  task waited for a CPU, i.e. run-queue wait; load average and procs_running) until two
  windows in a row are calm or S seconds have passed (default: FIBERBENCH_CALM_WAIT
  from the environment, else 60; 0 = one short look, no waiting). It keeps what it saw
  in DIR/.noise/H.begin.json.
end: measures again and appends to each DIR/H.machine.txt (replacing earlier noise
  lines): noise_before, noise_after, noise_during (steal and CPU pressure over the run,
  from /proc/stat and PSI deltas), noise_others (CPU that processes outside the
  harness used during the run), calm_wait_s, and `noisy: yes|no`. A run is noisy when
  the machine was not calm when it started, when steal time took more than 5% of the
  CPUs during it (another guest on the host), or when other processes took more than
  FIBERBENCH_OTHERS_NOISY percent of the machine's CPU during it (default 10: another
  benchmark started beside it). CPU pressure during the run is recorded but not judged:
  the harness's own threads queue for the CPU by design.
  Who is "the harness": begin starts a small sampler (every 0.5 s it reads /proc/*/stat)
  that counts as the harness's own every process descending from begin's parent (the
  script that runs the harness) and itself; kernel threads work for everyone and are
  not counted; every other process's CPU during the run is "others" (the three largest
  are named in the machine file, all of them in DIR/.noise/H.others.json).
sample: prints one measurement (default window 1 s) as "key: value" lines.

Calm: busy below FIBERBENCH_CALM_BUSY percent of all CPUs (default 15), steal below 2%,
CPU pressure below 10%. Published sets hold only runs with `noisy: no`
(scripts/check_results.py enforces it under results/published/; make publish refuses
the others). Exit status: 0, 1 (end without a machine file), 2 bad usage.
Python 3 standard library only.
"""
import argparse
import json
import os
import sys
import time

STEAL_NOISY = 5.0      # percent of all CPUs during a run
CALM_STEAL = 2.0       # percent, before a run
CALM_PRESSURE = 10.0   # percent of wall time some task waited for a CPU
NOISE_KEYS = ("noise_before", "noise_after", "noise_during", "noise_others", "calm_wait_s",
              "noisy")
SAMPLE_S = 0.5


def env_float(name, default):
    v = os.environ.get(name, "")
    try:
        f = float(v) if v != "" else default
    except ValueError:
        f = None
    if f is None or f != f or f in (float("inf"), float("-inf")):
        print(f"noise: {name}={v!r} is not a number; using {default}", file=sys.stderr)
        return default
    return f


def snapshot():
    """The machine's counters now: a dict of plain numbers."""
    s = {"t": time.monotonic()}
    try:
        with open("/proc/stat") as f:
            for line in f:
                p = line.split()
                if p[0] == "cpu":
                    v = [int(x) for x in p[1:]]
                    v += [0] * (8 - len(v))
                    # user nice system idle iowait irq softirq steal (guest is in user)
                    s["total"] = sum(v[:8])
                    s["idle"] = v[3] + v[4]
                    s["steal"] = v[7]
                elif p[0] == "procs_running":
                    s["procs_running"] = int(p[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/loadavg") as f:
            p = f.read().split()
        s["load"] = [float(x) for x in p[:3]]
        s["tasks"] = p[3]
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    s["psi_us"] = int(line.split("total=")[1])
    except (OSError, ValueError, IndexError):
        pass
    # Per-CPU run-queue wait (ns) where the kernel has schedstats; PSI says the same
    # thing machine-wide and is the one used when both exist.
    try:
        with open("/proc/schedstat") as f:
            s["rq_wait_ns"] = sum(int(l.split()[8]) for l in f if l.startswith("cpu"))
    except (OSError, ValueError, IndexError):
        pass
    return s


def window(a, b):
    """What happened between two snapshots: percentages and the span in seconds."""
    w = {"span_s": b["t"] - a["t"]}
    dt = b.get("total", 0) - a.get("total", 0)
    if dt > 0:
        w["busy_pct"] = 100.0 * (dt - (b["idle"] - a["idle"])) / dt
        w["steal_pct"] = 100.0 * (b["steal"] - a["steal"]) / dt
    if "psi_us" in a and "psi_us" in b and w["span_s"] > 0:
        w["pressure_pct"] = 100.0 * (b["psi_us"] - a["psi_us"]) / (w["span_s"] * 1e6)
    if "rq_wait_ns" in a and "rq_wait_ns" in b and w["span_s"] > 0:
        w["rq_wait_ms_per_s"] = (b["rq_wait_ns"] - a["rq_wait_ns"]) / 1e6 / w["span_s"]
    return w


def calm(w, busy_limit):
    return (w.get("busy_pct", 0.0) < busy_limit and w.get("steal_pct", 0.0) < CALM_STEAL
            and w.get("pressure_pct", 0.0) < CALM_PRESSURE)


def fmt_state(s):
    parts = []
    if "load" in s:
        parts.append("load " + " ".join(f"{x:.2f}" for x in s["load"]))
    if "procs_running" in s:
        parts.append(f"procs_running {s['procs_running']}")
    return ", ".join(parts) or "n/a"


def fmt_window(w):
    parts = []
    for k, label in (("busy_pct", "busy"), ("steal_pct", "steal"), ("pressure_pct", "cpu pressure")):
        if k in w:
            parts.append(f"{label} {w[k]:.1f}%")
    if "rq_wait_ms_per_s" in w:
        parts.append(f"run-queue wait {w['rq_wait_ms_per_s']:.1f} ms/s")
    parts.append(f"over {w['span_s']:.1f} s")
    return ", ".join(parts)


def calm_look():
    """The calm check's window in seconds: FIBERBENCH_CALM_LOOK, 0.1-1, default 1."""
    return min(max(env_float("FIBERBENCH_CALM_LOOK", 1.0), 0.1), 1.0)


def wait_for_calm(limit_s, busy_limit, say, look_s=1.0):
    """Looks in look_s-second windows (FIBERBENCH_CALM_LOOK, default 1; make bench QUICK=1
    looks in 0.5-s windows: quick rows are never published, and a calm quiet machine then
    costs 1 s a harness instead of 2) until two in a row are calm or limit_s has passed.
    Returns (calm?, seconds waited, the last window, the snapshot it ended with)."""
    t0 = time.monotonic()
    a = snapshot()
    look = look_s if limit_s > 0 else min(look_s, 0.5)
    streak, last, told = 0, {}, False
    while True:
        time.sleep(look)
        b = snapshot()
        last = window(a, b)
        a = b
        waited = time.monotonic() - t0
        if calm(last, busy_limit):
            streak += 1
            if streak >= 2 or limit_s <= 0:
                return True, waited, last, b
        else:
            streak = 0
            if limit_s <= 0 or waited >= limit_s:
                return False, waited, last, b
            if not told:
                say(f"machine busy ({fmt_window(last)}): waiting up to {limit_s:.0f} s for calm "
                    "(FIBERBENCH_CALM_WAIT=0 skips)")
                told = True


def proc_table():
    """{pid: (ppid, starttime, cpu_ticks, comm)} for every process now."""
    t = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields start after the last ')'
        rp = raw.rfind(")")
        if rp < 0:
            continue
        f = raw[rp + 2:].split()
        try:
            ppid, utime, stime, start = int(f[1]), int(f[11]), int(f[12]), int(f[19])
        except (IndexError, ValueError):
            continue
        t[int(name)] = (ppid, start, utime + stime, raw[raw.find("(") + 1:rp])
    return t


def is_ours(pid, table, anchor, cache):
    """True when pid descends from anchor (or is it); kernel threads (kthreadd's
    children) count as ours too: they work for whoever is running."""
    path, p = [], pid
    while True:
        if p in cache:
            v = cache[p]
            break
        if p == anchor or p == 2:
            v = True
            break
        e = table.get(p)
        if p <= 1 or e is None:
            v = False
            break
        path.append(p)
        p = e[0]
    for q in path:
        cache[q] = v
    return v


def cmd_sampler(args):
    """Runs until SIGTERM or until the anchor is gone; keeps the CPU seconds of the
    processes that are not the harness's in args.state, rewritten every sample."""
    import signal
    stop = []
    # SIGTERM (end) wakes the wait between samples at once (sigtimedwait below), so that
    # the last sample is taken when end asks, not up to SAMPLE_S later
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    hz = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    seen = {}                 # (pid, start) -> ticks at the last sample
    others, top = 0, {}       # ticks; comm -> ticks
    first = True
    while True:
        table = proc_table()
        cache = {me: True}
        for pid, (ppid, start, ticks, comm) in table.items():
            if is_ours(pid, table, args.anchor, cache):
                continue
            key = (pid, start)
            # A process seen first at the first sample has its past CPU left out; one
            # that appears later started during the run: all of it counts.
            d = ticks - seen.get(key, ticks if first else 0)
            seen[key] = ticks
            if d > 0:
                others += d
                top[comm] = top.get(comm, 0) + d
        first = False
        worst = sorted(top.items(), key=lambda kv: -kv[1])
        tmp = args.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"others_s": others / hz, "top": [[c, v / hz] for c, v in worst]}, f)
        os.replace(tmp, args.state)
        if stop or not os.path.exists(f"/proc/{args.anchor}"):
            return 0
        if signal.sigtimedwait({signal.SIGTERM}, SAMPLE_S) is not None:
            stop.append(1)


def state_path(out, h):
    return os.path.join(out, ".noise", h + ".begin.json")


def cmd_begin(args, say):
    limit = args.wait if args.wait is not None else env_float("FIBERBENCH_CALM_WAIT", 60.0)
    busy = env_float("FIBERBENCH_CALM_BUSY", 15.0)
    ok, waited, w, snap = wait_for_calm(max(limit, 0.0), busy, say, calm_look())
    rec = {"calm": ok, "waited_s": waited, "limit_s": limit, "window": w, "snap": snap,
           "wall": time.time()}
    os.makedirs(os.path.join(args.out, ".noise"), exist_ok=True)
    # The sampler of other processes' CPU, detached, until end stops it.
    others = os.path.join(os.path.abspath(args.out), ".noise",
                          args.harnesses[0] + f".others.{os.getpid()}.json")
    try:
        import subprocess
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_sampler",
                              "--anchor", str(os.getppid()), "--state", others],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        rec["sampler"] = {"pid": p.pid, "state": others}
    except OSError as e:
        say(f"cannot start the sampler of other processes ({e}): others' CPU not recorded")
    for h in args.harnesses:
        with open(state_path(args.out, h), "w") as f:
            json.dump(rec, f)
    say(("calm" if ok else "NOT calm, the run will be marked noisy") +
        f" after {waited:.0f} s: {fmt_window(w)}; {fmt_state(snap)}")
    return 0


def exited(pid):
    """Whether process pid has ended: gone, or a zombie. The sampler is begin's child and
    begin has exited, so it is reaped by whatever adopted it (PID 1 here took ~1.1 s to),
    and its last write is done once it is a zombie: waiting for /proc/<pid> to vanish cost
    make bench ~2 s at the end of every harness (11 in a full run), measuring nothing."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return True
    return raw[raw.rindex(")") + 2:].split()[0] in ("Z", "X")


def stop_sampler(smp):
    """Stops begin's sampler and returns what it counted, or None."""
    if not smp:
        return None
    import signal
    try:
        os.kill(smp["pid"], signal.SIGTERM)
    except OSError:
        pass
    for _ in range(40):  # it writes once more on its way out: up to ~2 s
        try:
            os.waitpid(smp["pid"], os.WNOHANG)
        except ChildProcessError:
            pass
        if exited(smp["pid"]):
            break
        time.sleep(0.05)
    try:
        with open(smp["state"]) as f:
            got = json.load(f)
    except (OSError, ValueError):
        return None
    return got


def cmd_end(args, say):
    now = snapshot()
    rc = 0
    for h in args.harnesses:
        mpath = os.path.join(args.out, h + ".machine.txt")
        if not os.path.isfile(mpath):
            say(f"no {mpath}: no noise record for {h}")
            rc = 1
            continue
        try:
            with open(state_path(args.out, h)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            rec = None
        lines = []
        if rec is None:
            lines += ["noise_before: not recorded (no scripts/noise.py begin before the run)",
                      f"noise_after: {fmt_state(now)}", "calm_wait_s: n/a",
                      "noisy: yes (no calm check before the run)"]
        else:
            during = window(rec["snap"], now)
            others = stop_sampler(rec.get("sampler"))
            noisy = []
            if not rec["calm"]:
                noisy.append(f"busy at the start after waiting {rec['waited_s']:.0f} s")
            if during.get("steal_pct", 0.0) > STEAL_NOISY:
                noisy.append(f"steal {during['steal_pct']:.1f}% during the run")
            others_line = "noise_others: not recorded"
            if others is not None and during["span_s"] > 0:
                share = 100.0 * others["others_s"] / (during["span_s"] * (os.cpu_count() or 1))
                top = ", ".join(f"{c} {v:.1f} s" for c, v in others["top"][:3] if v >= 0.05)
                others_line = (f"noise_others: {others['others_s']:.1f} s of CPU by other "
                               f"processes over {during['span_s']:.0f} s, {share:.1f}% of the "
                               "machine" + (f" ({top})" if top else ""))
                limit = env_float("FIBERBENCH_OTHERS_NOISY", 10.0)
                if share > limit:
                    noisy.append(f"other processes took {share:.0f}% of the CPUs during the run")
            lines += [f"noise_before: {fmt_state(rec['snap'])}; {fmt_window(rec['window'])}",
                      f"noise_after: {fmt_state(now)}",
                      f"noise_during: {fmt_window(during)} (cpu pressure includes the harness's own threads)",
                      others_line,
                      f"calm_wait_s: {rec['waited_s']:.0f} (limit {rec['limit_s']:.0f})",
                      "noisy: " + ("yes (" + "; ".join(noisy) + ")" if noisy else "no")]
        with open(mpath, encoding="utf-8", errors="replace") as f:
            kept = [l for l in f if l.split(":", 1)[0].strip() not in NOISE_KEYS]
        with open(mpath, "w", encoding="utf-8") as f:
            f.writelines(kept)
            if kept and not kept[-1].endswith("\n"):
                f.write("\n")
            f.write("\n".join(lines) + "\n")
        try:
            os.remove(state_path(args.out, h))
        except OSError:
            pass
        if rec and rec.get("sampler"):
            try:  # every process's share, for whoever wants to know who it was
                os.replace(rec["sampler"]["state"], os.path.join(args.out, ".noise", h + ".others.json"))
            except OSError:
                pass
        say(f"{h}: {lines[-1]}")
    return rc


def main(argv=None):
    ap = argparse.ArgumentParser(description="Record the noise a harness ran in.",
                                 epilog="Exit status: 0, 1 end without a machine file, 2 bad usage.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("begin", "end"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, help="the results directory")
        p.add_argument("--harness", required=True, help="harness name(s), comma-separated")
        if name == "begin":
            p.add_argument("--wait", type=float, default=None,
                           help="seconds to wait for calm at most (default FIBERBENCH_CALM_WAIT or 60)")
    p = sub.add_parser("sample")
    p.add_argument("--window", type=float, default=1.0)
    p = sub.add_parser("_sampler", help=argparse.SUPPRESS)
    p.add_argument("--anchor", type=int, required=True)
    p.add_argument("--state", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "_sampler":
        return cmd_sampler(args)

    def say(msg):
        print(f"[noise] {msg}", file=sys.stderr)

    if args.cmd == "sample":
        a = snapshot()
        time.sleep(max(args.window, 0.05))
        b = snapshot()
        print(f"state: {fmt_state(b)}")
        print(f"window: {fmt_window(window(a, b))}")
        return 0
    args.harnesses = [h for h in args.harness.split(",") if h]
    if not args.harnesses or any(not h.replace("_", "").isalnum() for h in args.harnesses):
        ap.error("--harness wants names like switch,alloc")
    return cmd_begin(args, say) if args.cmd == "begin" else cmd_end(args, say)


if __name__ == "__main__":
    sys.exit(main())
