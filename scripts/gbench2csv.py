#!/usr/bin/env python3
"""gbench2csv.py - converts Google Benchmark JSON into the fiberbench results CSV.

    scripts/gbench2csv.py --harness switch --json results/switch.json --out-dir results
                          [--extra "key: value" ...] [--no-machine]

Writes <out-dir>/<harness>.csv (schema of results/README.md, one figure per row) and
<out-dir>/<harness>.machine.txt (scripts/machine.sh, the extra lines, and Google
Benchmark's own context: CPU count, MHz, caches, library build type).

Benchmark names carry their parameters, "<harness>/<model>/<impl>[/<impl2>][/<p>=<v>]":
the first part after the harness is the model, the rest the impl, and a part with '='
(or Google Benchmark's 'name:value' from ArgName) and a numeric value is the param and
its value (a word value stays in the impl). Google Benchmark's suffixes (manual_time,
repeats:N, ...) are dropped.

Rows per benchmark: its time per iteration (metric from a 'metric=<name>' label,
default ns_per_op, unit ns), then one per user counter (unit from the name's suffix as
results/README.md reads it: _ns, _us, _ms, _s, _per_s, _bytes, _percent, _ratio, else
count). median/min/max come from the 'median', 'min' and 'max' aggregates (the gb shim
adds min and max), runs from 'repetitions'; a single run gives median = min = max,
runs = 1. A benchmark that failed (SkipWithError) gives one row with metric 'errors'
and the message as the case's last part, '/error=<message>'.
Exit codes: 0 done, 1 unreadable or malformed JSON, 2 bad command line.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

HEADER = "harness,case,model,impl,param,value,metric,unit,median,min,max,runs"
NS_PER = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
STANDARD_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
    "time_unit", "aggregate_name", "aggregate_unit", "label", "error_occurred",
    "error_message", "items_per_second", "bytes_per_second", "big_o", "rms",
}
DROP = re.compile(r"^(manual_time|real_time|process_time|repeats:\d+|iterations:\d+|"
                  r"min_time:[0-9.e+-]+s?|threads:\d+|min_warmup_time:.*)$")


def is_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def split_name(run_name):
    """run name -> (case, model, impl, param, value).

    results/README.md wants a numeric value for a param: a 'k=v' part with a number
    (n=10000, batch=100) becomes param/value; one with a word (cpu=same, stack=64K)
    stays part of the impl, where it still tells the variants apart."""
    parts = [p for p in run_name.split("/") if p and not DROP.match(p)]
    parts = [p.replace(":", "=", 1) if ":" in p and "=" not in p else p for p in parts]
    case = "/".join(parts)
    rest = parts[1:] if len(parts) > 1 else parts
    model = rest[0] if rest else ""
    impl_parts, param, value = [], "", ""
    for p in rest[1:]:
        k, _, v = p.partition("=")
        if v and is_number(v) and re.match(r"^[a-z][a-z0-9_]*$", k):
            param, value = k, v
        else:
            impl_parts.append(p)
    return case, model, "/".join(impl_parts) or model, param, value


# Counters whose unit their suffix does not say (core_adds_per_ns ends in _ns but is a
# speed): the core calibration beside a fiber-side figure (bench_core_adds_per_ns).
COUNTER_UNITS = {"core_adds_per_ns": "adds/ns", "adds_per_create": "adds",
                 "adds_per_switch": "adds", "cpu_ns_per_create": "ns",
                 "cpu_ns_per_switch": "ns"}


def counter_unit(key):
    """The results/README.md unit a counter's name implies by its suffix."""
    if key in COUNTER_UNITS:
        return COUNTER_UNITS[key]
    for suffix, unit in (("_per_s", "ops/s"), ("_bytes", "bytes"), ("_ns", "ns"),
                         ("_us", "us"), ("_ms", "ms"), ("_s", "s"), ("_percent", "percent"),
                         ("_ratio", "x")):
        if key.endswith(suffix):
            return unit
    if key == "items_per_second":
        return "ops/s"
    return "count"


def counter_metric(key):
    return "items_per_s" if key == "items_per_second" else key


def field(s):
    s = "" if s is None else str(s)
    if any(ch in s for ch in ',"\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def num(v):
    return "%.6g" % v


def convert(data, harness):
    """JSON dict -> list of CSV lines (without header)."""
    groups = {}   # run_name -> {"stat": {agg: entry}, "plain": [entries], "order": i}
    order = []
    for b in data.get("benchmarks", []):
        name = b.get("run_name") or b.get("name", "")
        if name not in groups:
            groups[name] = {"stat": {}, "plain": [], "error": None}
            order.append(name)
        g = groups[name]
        if b.get("error_occurred"):
            g["error"] = b.get("error_message") or "error"
            continue
        if b.get("run_type") == "aggregate":
            g["stat"][b.get("aggregate_name", "")] = b
        else:
            g["plain"].append(b)

    lines = []
    for name in order:
        g = groups[name]
        case, model, impl, param, value = split_name(name)
        prefix = [harness, case, model, impl]
        if g["error"] is not None and not g["stat"] and not g["plain"]:
            # The message goes into the case (no whitespace allowed there): the limit a
            # benchmark hit is a result, with metric 'errors'.
            msg = re.sub(r"[^A-Za-z0-9_.=:+-]+", "-", g["error"]).strip("-") or "error"
            row = [harness, case + "/error=" + msg, model, impl, param, value, "errors", "count"]
            lines.append(",".join(field(x) for x in row) + ",1,1,1,1")
            continue
        if all(k in g["stat"] for k in ("median", "min", "max")):
            med, lo, hi = g["stat"]["median"], g["stat"]["min"], g["stat"]["max"]
            runs = int(med.get("repetitions", 1))
            entries = (med, lo, hi)
        elif g["plain"]:
            # One repetition, or repetitions without our min/max statistics: take the
            # plain runs themselves.
            entries = None
            runs = len(g["plain"])
        else:
            continue

        def stat_of(getter):
            if entries is not None:
                return [getter(e) for e in entries]
            vals = sorted(getter(e) for e in g["plain"])
            n = len(vals)
            medv = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
            return [medv, vals[0], vals[-1]]

        ref = entries[0] if entries else g["plain"][0]
        label = ref.get("label", "") or ""
        m = re.search(r"metric=([A-Za-z0-9_]+)", label)
        metric = m.group(1) if m else "ns_per_op"
        t = stat_of(lambda e: float(e["real_time"]) * NS_PER.get(e.get("time_unit", "ns"), 1.0))
        lines.append(",".join(field(x) for x in prefix + [param, value, metric, "ns"])
                     + "," + ",".join(num(x) for x in t) + ",%d" % runs)
        for key in sorted(k for k in ref if k not in STANDARD_KEYS):
            if not isinstance(ref[key], (int, float)):
                continue
            try:
                c = stat_of(lambda e: float(e[key]))
            except (KeyError, TypeError, ValueError):
                continue
            lines.append(",".join(field(x) for x in prefix + [param, value, counter_metric(key),
                                                             counter_unit(key)])
                         + "," + ",".join(num(x) for x in c) + ",%d" % runs)
    return lines


def context_lines(data):
    ctx = data.get("context", {})
    out = []
    for k in ("num_cpus", "mhz_per_cpu", "cpu_scaling_enabled", "library_build_type"):
        if k in ctx:
            out.append("gbench_%s: %s" % (k, ctx[k]))
    caches = ctx.get("caches", [])
    if caches:
        out.append("gbench_caches: " + "; ".join(
            "L%s %s %d KiB x%s" % (c.get("level"), c.get("type"), int(c.get("size", 0)) // 1024,
                                   c.get("num_sharing")) for c in caches))
    if "load_avg" in ctx:
        out.append("load_avg: " + " ".join("%.2f" % x for x in ctx["load_avg"]))
    out.append("benchmark_library: Google Benchmark (libbenchmark-dev), JSON converted by scripts/gbench2csv.py")
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--harness", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--extra", action="append", default=[], help='"key: value" for machine.txt')
    ap.add_argument("--no-machine", action="store_true", help="do not write machine.txt")
    args = ap.parse_args(argv)
    if not re.match(r"^[a-z0-9_-]+$", args.harness):
        ap.error("--harness must be a plain name like switch")
    try:
        with open(args.json) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("gbench2csv: %s: %s" % (args.json, e), file=sys.stderr)
        return 1
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        print("gbench2csv: %s: not Google Benchmark JSON (no 'benchmarks' list)" % args.json,
              file=sys.stderr)
        return 1
    lines = convert(data, args.harness)
    os.makedirs(args.out_dir, exist_ok=True)
    csv_path = os.path.join(args.out_dir, args.harness + ".csv")
    with open(csv_path, "w") as f:
        f.write(HEADER + "\n")
        for line in lines:
            f.write(line + "\n")
    if not args.no_machine:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        extra = args.extra + context_lines(data)
        with open(os.path.join(args.out_dir, args.harness + ".machine.txt"), "w") as f:
            subprocess.run([os.path.join(root, "scripts", "machine.sh")] + extra, stdout=f, check=False)
    print("gbench2csv: %d rows -> %s" % (len(lines), csv_path), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
