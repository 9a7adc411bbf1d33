#!/usr/bin/env python3
"""Compares fresh thread/fiber ratios with results/published/ and with the post's claims.

    scripts/reproduce.py [--fresh DIR] [--published DIR] [--band X]

Each ratio is computed inside one results directory (both sides from the same run), as
"how many times cheaper fibers are": thread time / fiber time, or fiber throughput /
thread throughput. A claim passes when the fresh ratio is at least the post's figure.
The fresh ratio is also compared with the published one: within a factor of --band
(default 2) passes; outside it fails on the same kind of machine (same CPU model in the
machine files) and only warns on another machine, where ratios may honestly differ.

Exit status: 0 every claim and band holds, 1 a claim failed, a ratio could not be
computed from the fresh run, or a band failed on the same kind of machine; 2 bad usage.
Python 3 standard library only.
"""
import argparse
import csv
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One entry per compared ratio. claim: the post's minimum ratio (None: informative, no
# claim); post: what the post's benchmark published for Ruby 3.4 (socketry/performance
# fiber-vs-thread readme, see ../shared/reference or results/README.md), for context.
# The rows are picked from <harness>.csv by metric and model; impl_re picks the C
# implementation out of the others (Ruby rows share the file).
RATIOS = [
    {"name": "create", "claim_text": "fibers >= 20x cheaper to create", "claim": 20.0,
     "post": 78.586 / 3.394, "harness": "seed", "metric": "us_per_unit",
     "impl_re": r"^(?!ruby)", "higher_is_better": False},
    {"name": "switch", "claim_text": "fibers >= 10x cheaper to switch", "claim": 10.0,
     "post": 1.338 / 0.112, "harness": "seed", "metric": "us_per_switch",
     "impl_re": r"^(?!ruby)", "higher_is_better": False},
    {"name": "throughput", "claim_text": "fibers >= 15x more throughput", "claim": 15.0,
     "post": 78315 / 5154, "harness": "seed", "metric": "units_per_s",
     "impl_re": r"^(?!ruby)", "higher_is_better": True},
]


def load_rows(directory, harness):
    path = os.path.join(directory, harness + ".csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def pick(rows, metric, model, impl_re):
    """The median of the one row of metric/model whose impl matches; None if none."""
    hits = [r for r in rows
            if r.get("metric") == metric and r.get("model") == model
            and re.search(impl_re, r.get("impl", "")) and r.get("param", "") == ""]
    if not hits:
        return None, f"no {model} row with metric {metric}"
    if len(hits) > 1:
        # Several variants of one model (say, two thread switch kinds): the ratio uses
        # the cheapest thread side and the dearest fiber side, so it never flatters fibers.
        vals = [float(r["median"]) for r in hits]
        return vals, None
    return [float(hits[0]["median"])], None


def ratio(directory, spec):
    """Returns (ratio, None) or (None, why) for one spec over one results directory."""
    rows = load_rows(directory, spec["harness"])
    if rows is None:
        return None, f"no {spec['harness']}.csv in {directory}"
    t, why = pick(rows, spec["metric"], "thread", spec["impl_re"])
    if t is None:
        return None, why
    f, why = pick(rows, spec["metric"], "fiber", spec["impl_re"])
    if f is None:
        return None, why
    if spec["higher_is_better"]:
        t_v, f_v = max(t), min(f)
        if t_v <= 0:
            return None, "thread throughput is zero"
        return f_v / t_v, None
    t_v, f_v = min(t), max(f)
    if f_v <= 0:
        return None, "fiber time is zero"
    return t_v / f_v, None


def machine_cpu(directory, harness):
    try:
        with open(os.path.join(directory, harness + ".machine.txt"), encoding="utf-8") as f:
            for line in f:
                if line.startswith("cpu:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def fmt(x):
    return "-" if x is None else (f"{x:.0f}x" if x >= 100 else f"{x:.1f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Compare fresh thread/fiber ratios with results/published/ and "
                    "with the claims of the original post.",
        epilog="Exit status: 0 all hold, 1 a claim or band failed, 2 bad usage.")
    ap.add_argument("--fresh", default=os.path.join(TOP, "results", "tmp", "reproduce"),
                    help="directory of the fresh quick run (default results/tmp/reproduce)")
    ap.add_argument("--published", default=os.path.join(TOP, "results", "published"),
                    help="directory of the published results (default results/published)")
    ap.add_argument("--band", type=float, default=2.0,
                    help="allowed factor between fresh and published ratios (default 2)")
    args = ap.parse_args(argv)
    if args.band < 1.0:
        ap.error("--band must be >= 1")
    if not os.path.isdir(args.fresh):
        print(f"reproduce: no fresh results in {args.fresh}", file=sys.stderr)
        return 2

    failed = False
    lines = []
    notes = []
    for spec in RATIOS:
        now, why_now = ratio(args.fresh, spec)
        pub, why_pub = ratio(args.published, spec)
        verdict = []
        if now is None:
            verdict.append("FAIL (not measured)")
            notes.append(f"{spec['name']}: fresh run: {why_now}")
            failed = True
        else:
            if spec["claim"] is not None:
                if now >= spec["claim"]:
                    verdict.append("claim holds")
                else:
                    verdict.append("CLAIM FAILS")
                    failed = True
            if pub is None:
                verdict.append("nothing published")
                notes.append(f"{spec['name']}: published: {why_pub}")
            else:
                factor = now / pub
                if 1 / args.band <= factor <= args.band:
                    verdict.append(f"within {args.band:g}x of published")
                else:
                    same = (machine_cpu(args.fresh, spec["harness"]) ==
                            machine_cpu(args.published, spec["harness"]))
                    if same:
                        verdict.append(f"OUTSIDE {args.band:g}x of published")
                        failed = True
                    else:
                        verdict.append(f"outside {args.band:g}x of published "
                                       "(other CPU: warning only)")
        lines.append((spec["claim_text"], fmt(spec["post"]), fmt(pub), fmt(now),
                      "; ".join(verdict)))

    head = ("claim", "post (Ruby 3.4)", "published", "now", "verdict")
    widths = [max(len(str(r[i])) for r in lines + [head]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths)] + lines:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    for n in notes:
        print("note: " + n)
    print("reproduce: " + ("FAILED" if failed else "all claims hold"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
