#!/usr/bin/env python3
"""Validates results CSVs against the schema in results/README.md.

    scripts/check_results.py [--strict] [--quiet] [PATH ...]

Each PATH is a results CSV or a directory whose *.csv files are checked (not
recursively). Without PATH: results/ and every published set results/published/<machine>/
of this tree. Every CSV must have its <harness>.machine.txt beside it.

A directory whose parent is named "published" is a published set, held to more: its
name is the machine name of its machine files (scripts/resultsets.py machine_name, the
CPU model, and family and model from its cpu_id line), its machine files agree on the
CPU (cpu_id, gbench_caches, gbench_mhz_per_cpu within 1%), every machine file says `noisy: no` (scripts/noise.py wrote it: a
noisy run is never published), and no CSV lies in published/ itself. A set measured
before noise was recorded says `noise: not recorded ...` instead: a warning, not an
error, until it is published again.

Exit status: 0 all valid (warnings may be printed), 1 some file invalid, 2 bad usage.
Python 3 standard library only: make test runs it on a fresh machine.
"""
import argparse
import csv
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resultsets  # noqa: E402

HEADER = ["harness", "case", "model", "impl", "param", "value", "metric", "unit",
          "median", "min", "max", "runs"]

# Keep these three tables in step with results/README.md: it is the manual, this
# is its enforcement.
HARNESSES = {"switch", "alloc", "memory", "scale", "seed", "mockllm", "throughput", "llm",
             "curl", "ruby", "peers"}

UNITS = {"ns", "us", "ms", "s", "bytes", "KiB", "MiB", "count", "streams", "ops/s",
         "req/s", "units/s", "tokens/s", "events/s", "conv/s", "MB/s", "percent", "x",
         "adds", "adds/ns", "units/Gadd"}

METRICS = {
    "ns_per_op": "ns", "us_per_op": "us", "ns_per_switch": "ns", "ns_per_create": "ns",
    "ns_per_switch_layout": "ns",
    "us_per_unit": "us", "us_per_switch": "us",
    "ops_per_s": "ops/s", "units_per_s": "units/s", "req_per_s": "req/s",
    "tokens_per_s": "tokens/s",
    "bytes_per_unit": "bytes", "user_bytes_per_unit": "bytes",
    "kernel_bytes_per_unit": "bytes", "rss_bytes": "bytes", "kernel_bytes": "bytes",
    "vm_hwm_bytes": "bytes", "seconds": "s",
    "p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms", "p999_ms": "ms", "mean_ms": "ms",
    "max_ms": "ms",
    "ttft_p50_ms": "ms", "ttft_p90_ms": "ms", "ttft_p99_ms": "ms", "ttft_mean_ms": "ms",
    "itl_p50_ms": "ms", "itl_p99_ms": "ms",
    "lateness_p50_ms": "ms", "lateness_p99_ms": "ms", "lateness_max_ms": "ms",
    "cpu_percent": "percent", "streams": "count", "live_units": "count", "active_units": "count",
    "errors": "count", "limit_units": "count", "ratio": "x",
    "cold_create_ns": "ns", "warm_create_ns": "ns",
    # a fiber-side figure in CPU time, the core's speed beside it, their product
    "core_adds_per_ns": "adds/ns", "core_adds_per_ns_at_best": "adds/ns", "cpu_ns_per_create": "ns", "cpu_ns_per_switch": "ns",
    "cpu_us_per_unit": "us", "cpu_us_per_switch": "us", "cpu_units_per_s": "units/s",
    "adds_per_create": "adds", "adds_per_switch": "adds", "adds_per_unit": "adds",
    "units_per_gadd": "units/Gadd",
    "hwm_per_unit_bytes": "bytes", "kernel_stack_per_unit_bytes": "bytes",
    "sunreclaim_per_unit_bytes": "bytes", "slab_per_unit_bytes": "bytes",
    "page_tables_per_unit_bytes": "bytes",
    "events_per_s": "events/s", "client_events_per_s": "events/s",
    "max_events_per_s": "events/s", "requests_per_s": "req/s", "conv_per_s": "conv/s",
    "lateness_p50": "us", "lateness_p99": "us", "lateness_p999": "us",
    "lateness_max": "us", "lateness_ramp_p99": "us", "lateness_full_p99": "us",
    "request_to_first_event_p50_us": "us", "request_to_first_event_p99_us": "us",
    "phase_peak_ratio": "x", "steal_percent": "percent",
    "open_streams": "streams", "failed_streams": "streams", "rss_per_stream": "bytes",
    "open_time": "s", "ttft_max_ms": "ms",
    "first_repeat_units_per_s": "units/s", "cold_unit_us": "us", "warm_unit_us": "us",
    "process_unit_us": "us",
    "cpu_s": "s", "total_p50_ms": "ms", "kernel_est_bytes": "bytes",
    "cpu_per_1k_tokens_ms": "ms",
    "ttft_user26_ms": "ms", "ttft_first25_p50_ms": "ms", "ttft_rest_p50_ms": "ms",
    "ttft_rest_p99_ms": "ms", "db_peak_held_count": "count", "db_wait_mean_ms": "ms",
    "unserved_conns_count": "count", "listen_overflows_count": "count",
    "retries_count": "count", "cpu_per_1k_tokens_marginal_ms": "ms",
    "mock_cpu_s": "s", "mock_cpu_percent": "percent",
    # workloads: HTTP server CPU, the load generator's own CPU, the open-loop run
    "cpu_per_req_us": "us", "generator_cpu_percent": "percent", "generator_cpu_s": "s",
    "generator_bound_count": "count", "generator_send_lag_p99_ms": "ms",
    "offered_req_per_s": "req/s", "service_p99_ms": "ms", "incomplete_count": "count",
    "completed_count": "count", "kernel_est_per_unit_bytes": "bytes", "loadgen_cpu_s": "s",
    "cpu_per_event_us": "us", "kernel_share_percent": "percent",
    "runq_wait_percent": "percent", "client_busy_percent": "percent",
    "client_backlog_count": "count",
    "accept_to_request_us": "us", "accept_to_request_max_us": "us", "runs_count": "count",
    "probes_count": "count",
    "open_conns_count": "count", "client_rss_per_open_conv_bytes": "bytes",
    "server_rss_per_open_stream_bytes": "bytes", "client_hwm_per_conv_bytes": "bytes",
    "client_tls_bytes_per_conv_bytes": "bytes", "server_tls_bytes_per_stream_bytes": "bytes",
    "kernel_meminfo_per_unit_bytes": "bytes",
}

# An unknown metric names its unit by its suffix; the value is the set of units
# that suffix allows.
SUFFIX_UNITS = [
    ("_per_s", {"ops/s", "req/s", "units/s", "tokens/s", "events/s", "conv/s", "MB/s"}),
    ("_bytes", {"bytes", "KiB", "MiB"}), ("_kib", {"KiB"}), ("_mib", {"MiB"}),
    ("_ns", {"ns"}), ("_us", {"us"}), ("_ms", {"ms"}), ("_s", {"s"}),
    ("_percent", {"percent"}), ("_ratio", {"x"}), ("_count", {"count"}),
]

MACHINE_KEYS = ["date", "cpu", "cores", "kernel", "compiler", "commit"]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_number(text):
    """Returns the finite float in text, or None."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class Report:
    def __init__(self, quiet):
        self.errors = 0
        self.warnings = 0
        self.quiet = quiet
        self.warned = set()

    def error(self, where, msg):
        self.errors += 1
        print(f"{where}: error: {msg}", file=sys.stderr)

    def warn(self, where, msg):
        # One warning per file and message: an unknown metric is named once, not per row.
        key = (where.split(":")[0], msg)
        if key in self.warned:
            return
        self.warned.add(key)
        self.warnings += 1
        if not self.quiet:
            print(f"{where}: warning: {msg}", file=sys.stderr)


def check_machine(csv_path, rep):
    base = os.path.basename(csv_path)[:-len(".csv")]
    mpath = os.path.join(os.path.dirname(csv_path), base + ".machine.txt")
    if not os.path.isfile(mpath):
        rep.error(csv_path, f"no machine file beside it ({mpath}); "
                            "write it with scripts/machine.sh")
        return
    keys = {}
    with open(mpath, encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" in line:
                k, v = line.split(":", 1)
                keys[k.strip()] = v.strip()
    for k in MACHINE_KEYS:
        if not keys.get(k):
            rep.error(mpath, f"missing key '{k}:'")


def is_published_set(directory):
    d = os.path.abspath(directory)
    return os.path.basename(os.path.dirname(d)) == "published"


def check_published_set(directory, rep):
    """The rules of a published set (see the top of this file). Returns nothing; errors
    go to rep."""
    name = os.path.basename(os.path.abspath(directory))
    names = resultsets.dir_machine_names(directory)
    if not names:
        rep.error(directory, "published set without machine files")
    conflicts, _ = resultsets.cpu_conflicts(resultsets.dir_machines(directory), [])
    if conflicts:
        rep.error(directory, "machine files of more than one CPU in one set: " +
                  "; ".join(conflicts) + " (a set holds one CPU's results)")
    for h, n in sorted(names.items()):
        mpath = os.path.join(directory, h + ".machine.txt")
        if n != name:
            rep.error(mpath, f"belongs to machine '{n}', not to the set '{name}' it is in "
                             "(results/published/<machine>/, named by scripts/resultsets.py)")
        keys = resultsets.read_machine(mpath)
        noisy = keys.get("noisy", "")
        if noisy.startswith("no"):
            continue
        if noisy:
            rep.error(mpath, f"noisy run in a published set (noisy: {noisy}); "
                             "publish a calm run (make publish refuses noisy ones)")
        elif keys.get("noise", "").startswith("not recorded"):
            rep.warn(mpath, "noise not recorded (a set from before scripts/noise.py): publish it again")
        else:
            rep.error(mpath, "no 'noisy:' line: a published run must carry its noise record "
                             "(make bench writes it through scripts/noise.py)")


def check_row(where, row, harness_of_file, strict, rep):
    """Checks one data row; returns its identity key, or None when it is malformed."""
    if len(row) != len(HEADER):
        rep.error(where, f"{len(row)} fields, expected {len(HEADER)}")
        return None
    r = dict(zip(HEADER, row))
    ok = True

    def bad(msg):
        nonlocal ok
        ok = False
        rep.error(where, msg)

    if r["harness"] not in HARNESSES:
        bad(f"unknown harness '{r['harness']}' (known: {', '.join(sorted(HARNESSES))})")
    elif harness_of_file is not None and r["harness"] != harness_of_file:
        bad(f"harness '{r['harness']}' in {harness_of_file}.csv")
    for col in ("case", "model", "impl"):
        if not r[col].strip():
            bad(f"empty {col}")
    if r["case"] != r["case"].strip() or any(c.isspace() for c in r["case"]):
        bad(f"case '{r['case']}' contains whitespace")
    if r["param"] == "" and r["value"] != "":
        bad(f"value '{r['value']}' without a param")
    if r["param"] != "":
        if not NAME_RE.match(r["param"]):
            bad(f"param '{r['param']}' is not snake_case")
        if parse_number(r["value"]) is None:
            bad(f"value '{r['value']}' of param '{r['param']}' is not a finite number")
    metric, unit = r["metric"], r["unit"]
    if not NAME_RE.match(metric):
        bad(f"metric '{metric}' is not snake_case")
    if unit not in UNITS:
        bad(f"unknown unit '{unit}' (known: {' '.join(sorted(UNITS))})")
    elif metric in METRICS:
        if METRICS[metric] != unit:
            bad(f"metric '{metric}' must be in '{METRICS[metric]}', not '{unit}'")
    elif NAME_RE.match(metric):
        allowed = next((u for s, u in SUFFIX_UNITS if metric.endswith(s)), None)
        if allowed is None:
            msg = (f"unknown metric '{metric}' names no unit by its suffix; "
                   "add it to results/README.md")
            (bad if strict else lambda m: rep.warn(where, m))(msg)
        elif unit not in allowed:
            bad(f"metric '{metric}' names {'/'.join(sorted(allowed))} by its suffix, "
                f"unit is '{unit}'")
        else:
            msg = f"metric '{metric}' is not in results/README.md"
            (bad if strict else lambda m: rep.warn(where, m))(msg)
    nums = {}
    for col in ("median", "min", "max"):
        nums[col] = parse_number(r[col])
        if nums[col] is None:
            bad(f"{col} '{r[col]}' is not a finite number")
    runs = None
    try:
        runs = int(r["runs"])
    except ValueError:
        bad(f"runs '{r['runs']}' is not an integer")
    if runs is not None and runs < 1:
        bad(f"runs {runs} < 1")
    if None not in nums.values():
        lo, med, hi = nums["min"], nums["median"], nums["max"]
        # Harnesses print with %g; allow its rounding, nothing more.
        eps = 1e-6 * max(abs(lo), abs(med), abs(hi), 1e-300)
        if not (lo <= med + eps and med <= hi + eps):
            bad(f"not min <= median <= max ({r['min']}, {r['median']}, {r['max']})")
        elif runs == 1 and not (abs(lo - med) <= eps and abs(hi - med) <= eps):
            bad("runs = 1 but min, median, max differ")
    if not ok:
        return None
    return (r["case"], r["metric"], r["param"], r["value"])


def check_csv(path, strict, rep):
    before = rep.errors
    stem = os.path.basename(path)[:-len(".csv")]
    harness_of_file = stem if stem in HARNESSES else None
    if harness_of_file is None:
        rep.error(path, f"file name '{stem}.csv' is not <harness>.csv "
                        f"(known: {', '.join(sorted(HARNESSES))})")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        rep.error(path, f"cannot read: {e}")
        return False
    if not rows:
        rep.error(path, "empty file")
        return False
    if rows[0] != HEADER:
        rep.error(f"{path}:1", "header is not: " + ",".join(HEADER))
        return False
    seen = {}
    data = 0
    for i, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        data += 1
        key = check_row(f"{path}:{i}", row, harness_of_file, strict, rep)
        if key is None:
            continue
        if key in seen:
            rep.error(f"{path}:{i}", f"duplicate of line {seen[key]} "
                                     f"(case {key[0]}, metric {key[1]}, {key[2]}={key[3]})")
        else:
            seen[key] = i
    if data == 0:
        rep.error(path, "no data rows")
    check_machine(path, rep)
    return rep.errors == before


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Validate fiberbench results CSVs against results/README.md.",
        epilog="Exit status: 0 valid, 1 invalid, 2 bad usage.")
    ap.add_argument("paths", nargs="*", metavar="PATH",
                    help="CSV files or directories (default: results/ and every "
                         "results/published/<machine>/ of this tree)")
    ap.add_argument("--strict", action="store_true",
                    help="treat metrics missing from results/README.md as errors")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print errors only, no warnings or summary")
    args = ap.parse_args(argv)

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    published = os.path.join(top, "results", "published")
    paths = args.paths or ([os.path.join(top, "results"), published]
                           + resultsets.list_sets(published))
    explicit = bool(args.paths)
    files = []
    rep = Report(args.quiet)
    for p in paths:
        if os.path.isdir(p):
            csvs = sorted(os.path.join(p, n) for n in os.listdir(p)
                          if n.endswith(".csv") and os.path.isfile(os.path.join(p, n)))
            if os.path.basename(os.path.abspath(p)) == "published":
                for c in csvs:
                    rep.error(c, "a CSV directly in published/: published sets live in "
                                 "published/<machine>/ (make publish)")
                continue
            if is_published_set(p):
                check_published_set(p, rep)
            files += csvs
        elif os.path.isfile(p):
            files.append(p)
        elif explicit:
            print(f"check_results: no such file or directory: {p}", file=sys.stderr)
            return 2
    good = sum(check_csv(f, args.strict, rep) for f in files)
    if not args.quiet:
        print(f"check_results: {good}/{len(files)} files valid, {rep.errors} errors, "
              f"{rep.warnings} warnings")
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
