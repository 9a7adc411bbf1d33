#!/usr/bin/env python3
"""Validates results CSVs against the schema in results/README.md.

    scripts/check_results.py [--strict] [--quiet] [PATH ...]

Each PATH is a results CSV or a directory whose *.csv files are checked (not
recursively). Without PATH: results/ and results/published/ of this tree. Every CSV
must have its <harness>.machine.txt beside it.

Exit status: 0 all valid (warnings may be printed), 1 some file invalid, 2 bad usage.
Python 3 standard library only: make test runs it on a fresh machine.
"""
import argparse
import csv
import math
import os
import re
import sys

HEADER = ["harness", "case", "model", "impl", "param", "value", "metric", "unit",
          "median", "min", "max", "runs"]

# Keep these three tables in step with results/README.md: it is the manual, this
# is its enforcement.
HARNESSES = {"switch", "alloc", "memory", "scale", "seed", "mockllm", "throughput", "llm"}

UNITS = {"ns", "us", "ms", "s", "bytes", "KiB", "MiB", "count", "streams", "ops/s",
         "req/s", "units/s", "tokens/s", "events/s", "conv/s", "MB/s", "percent", "x"}

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
    "cpu_percent": "percent", "streams": "count", "live_units": "count",
    "errors": "count", "limit_units": "count", "ratio": "x",
    "cold_create_ns": "ns", "warm_create_ns": "ns",
    "hwm_per_unit_bytes": "bytes", "kernel_stack_per_unit_bytes": "bytes",
    "sunreclaim_per_unit_bytes": "bytes", "slab_per_unit_bytes": "bytes",
    "page_tables_per_unit_bytes": "bytes",
    "events_per_s": "events/s", "client_events_per_s": "events/s",
    "max_events_per_s": "events/s", "requests_per_s": "req/s", "conv_per_s": "conv/s",
    "lateness_p50": "us", "lateness_p99": "us", "lateness_p999": "us",
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
    "cpu_per_event_us": "us", "kernel_share_percent": "percent",
    "runq_wait_percent": "percent", "client_busy_percent": "percent",
    "accept_to_request_us": "us", "accept_to_request_max_us": "us", "runs_count": "count",
    "open_conns_count": "count", "client_rss_per_open_conv_bytes": "bytes",
    "server_rss_per_open_stream_bytes": "bytes", "client_hwm_per_conv_bytes": "bytes",
    "client_tls_bytes_per_conv_bytes": "bytes", "server_tls_bytes_per_stream_bytes": "bytes",
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
                    help="CSV files or directories (default: results/ and "
                         "results/published/ of this tree)")
    ap.add_argument("--strict", action="store_true",
                    help="treat metrics missing from results/README.md as errors")
    ap.add_argument("--quiet", "-q", action="store_true",
                    help="print errors only, no warnings or summary")
    args = ap.parse_args(argv)

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = args.paths or [os.path.join(top, "results"),
                           os.path.join(top, "results", "published")]
    explicit = bool(args.paths)
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, n) for n in os.listdir(p)
                            if n.endswith(".csv") and os.path.isfile(os.path.join(p, n)))
        elif os.path.isfile(p):
            files.append(p)
        elif explicit:
            print(f"check_results: no such file or directory: {p}", file=sys.stderr)
            return 2
    rep = Report(args.quiet)
    good = sum(check_csv(f, args.strict, rep) for f in files)
    if not args.quiet:
        print(f"check_results: {good}/{len(files)} files valid, {rep.errors} errors, "
              f"{rep.warnings} warnings")
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
