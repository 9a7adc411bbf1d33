#!/usr/bin/env python3
"""Merges N runs of one harness, each a results-schema CSV of one run, into one CSV whose
rows are the median, min and max over the runs (results/README.md: median,min,max,runs).

    scripts/merge_runs.py --harness H --out DIR RUNDIR [RUNDIR ...]

Each RUNDIR holds H.csv and H.machine.txt from one run. A row is keyed by every column
but the figures (case, model, impl, param, value, metric, unit); its value in a run is
that run's median; `runs` says in how many runs the row appeared (a row one run lacks,
e.g. a limit hit for another cause, keeps the runs that have it). The machine file is the
first run's, with a line saying what was merged. Rows keep the first run's order.
Used by bench/run_micro.sh for bench_scale, whose one run measures each point once.
Exit status: 0 written, 1 a run's CSV is missing or malformed, 2 bad usage.
"""
import argparse
import csv
import os
import statistics
import sys

FIGURES = ("median", "min", "max", "runs")


def fmt(v):
    return "%.6g" % v


def merge(harness, run_dirs):
    """(header, rows): the merged rows of the runs' CSVs, raises ValueError when one is bad."""
    header, order, values = None, [], {}
    for d in run_dirs:
        path = os.path.join(d, harness + ".csv")
        with open(path, newline="") as f:
            r = csv.reader(f)
            h = next(r, None)
            if h is None or tuple(h[-4:]) != FIGURES:
                raise ValueError(f"{path}: not a results CSV (header {h})")
            if header is None:
                header = h
            elif h != header:
                raise ValueError(f"{path}: header differs from the first run's")
            for row in r:
                if len(row) != len(header):
                    raise ValueError(f"{path}: a row of {len(row)} fields, not {len(header)}")
                key = tuple(row[:-4])
                if key not in values:
                    order.append(key)
                    values[key] = []
                values[key].append(float(row[-4]))
    rows = []
    for key in order:
        v = values[key]
        rows.append(list(key) + [fmt(statistics.median(v)), fmt(min(v)), fmt(max(v)), str(len(v))])
    return header, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--harness", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("runs", nargs="+", help="one directory per run")
    a = ap.parse_args(argv)
    try:
        header, rows = merge(a.harness, a.runs)
        with open(os.path.join(a.runs[0], a.harness + ".machine.txt")) as f:
            machine = f.read()
    except (OSError, ValueError) as e:
        print(f"merge_runs: {e}", file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, a.harness + ".csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    with open(os.path.join(a.out, a.harness + ".machine.txt"), "w") as f:
        f.write(machine.rstrip("\n") + "\n" +
                f"merged runs: {len(a.runs)} (scripts/merge_runs.py: median, min and max over the runs' "
                "values; this file's other lines are the first run's)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
