#!/usr/bin/env python3
"""make compare A=dir B=dir: every figure present in both results directories, B/A, and
a mark where the two min-max ranges do not overlap.

    scripts/compare.py A B [--harness h1,h2] [--only-differing]

A figure is one row of a results CSV (results/README.md), identified by harness, case,
metric, param and value; its median, min and max are over the runs of that row. For
each figure in both A and B it prints A's and B's median (min-max), B/A of the medians,
and `*` when [min, max] of A and of B do not overlap: the difference is larger than the
spread either run saw (Google Benchmark's compare.py and benchstat give their users the
same reading, with a U test where we have too few runs for one). Figures present in one
directory only are counted and named at the end. Each directory's machine
(scripts/resultsets.py) and noise record are printed first: comparing two machines is
allowed, and said. Two machines are told apart as make reproduce tells a run from a
published set: by the machine files' CPU figures (cpu_id, caches, MHz), by name only
where the files have none.

Exit status: 0 compared, 1 no harness in common, 2 bad usage. Python 3 standard library.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resultsets  # noqa: E402


def harnesses_in(d):
    return sorted(n[:-4] for n in os.listdir(d) if n.endswith(".csv"))


def key(r):
    return (r["case"], r["metric"], r.get("param", ""), r.get("value", ""))


def num(x):
    x = float(x)
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e4:
        return f"{x / 1e3:.3g}k"
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def cell(r):
    if r["min"] == r["max"]:
        return num(r["median"])
    return f"{num(r['median'])} ({num(r['min'])}-{num(r['max'])})"


def overlap(a, b):
    return float(a["min"]) <= float(b["max"]) and float(b["min"]) <= float(a["max"])


def describe(d):
    names = resultsets.dir_machine_names(d)
    machines = sorted(set(names.values())) or ["unknown"]
    noisy = sorted(h for h in names
                   if resultsets.read_machine(os.path.join(d, h + ".machine.txt"))
                   .get("noisy", "").startswith("yes"))
    text = ", ".join(machines)
    if noisy:
        text += f"; noisy: {', '.join(noisy)}"
    return text, machines


def same_machine(a, b, names_a, names_b):
    """(same CPU?, why) for two results directories, from their machine files as
    make reproduce judges a run against a published set (scripts/resultsets.py): the
    CPU figures (cpu_id without stepping, gbench caches, MHz) decide where the files
    have them, and the names only where they have none. So a run named with cpu_id
    (amd-epyc-f25m1-2vcpu-kvm) and a legacy set of that CPU (amd-epyc-2vcpu-kvm, files
    without cpu_id) are one machine when their caches or MHz agree, and two directories
    of one legacy name whose files name two CPUs are not."""
    conflicts, agree = resultsets.cpu_conflicts(resultsets.dir_machines(a),
                                                resultsets.dir_machines(b), stepping=False)
    if conflicts:
        return False, "; ".join(conflicts)
    if names_a == names_b:
        return True, ""
    legacy = lambda d: sorted({resultsets.machine_name(m, legacy=True)
                               for m in resultsets.dir_machines(d)})
    if agree and legacy(a) == legacy(b):
        return True, (f"A and B are named {', '.join(names_a)} and {', '.join(names_b)} "
                      "(one of them a legacy name, without cpu_id) but their machine files "
                      f"agree on {'; '.join(agree)}: the same machine")
    return False, ""


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare two results directories figure by figure.",
                                 epilog="Exit status: 0 compared, 1 nothing in common, 2 bad usage.")
    ap.add_argument("a", metavar="A")
    ap.add_argument("b", metavar="B")
    ap.add_argument("--harness", default="", help="only these harnesses (comma-separated)")
    ap.add_argument("--only-differing", action="store_true",
                    help="print only the figures whose ranges do not overlap")
    args = ap.parse_args(argv)
    for d in (args.a, args.b):
        if not os.path.isdir(d):
            print(f"compare: no directory {d}", file=sys.stderr)
            return 2
    common = sorted(set(harnesses_in(args.a)) & set(harnesses_in(args.b)))
    if args.harness:
        want = [h for h in args.harness.split(",") if h]
        common = [h for h in common if h in want]
    if not common:
        print("compare: no harness CSV in both directories", file=sys.stderr)
        return 1
    da, ma = describe(args.a)
    db, mb = describe(args.b)
    print(f"A: {args.a} ({da})")
    print(f"B: {args.b} ({db})")
    same, why = same_machine(args.a, args.b, ma, mb)
    if not same:
        print("note: A and B come from different machines"
              + (f" ({why})" if why else "") +
              ": absolute figures differ with the machine; compare ratios")
    elif why:
        print(f"note: {why}")
    print("* = the min-max ranges of A and B do not overlap\n")
    total = differ = 0
    only_a, only_b = [], []
    for h in common:
        ra = {key(r): r for r in resultsets.load_rows(args.a, h)}
        rb = {key(r): r for r in resultsets.load_rows(args.b, h)}
        only_a += [f"{h}:{k[0]} {k[1]}" for k in ra if k not in rb]
        only_b += [f"{h}:{k[0]} {k[1]}" for k in rb if k not in ra]
        lines = []
        for k, a in ra.items():
            b = rb.get(k)
            if b is None:
                continue
            total += 1
            am, bm = float(a["median"]), float(b["median"])
            ratio = "-" if am == 0 else f"{bm / am:.3g}"
            mark = "" if overlap(a, b) else "*"
            differ += bool(mark)
            if args.only_differing and not mark:
                continue
            lines.append((k[0], k[1] + ("" if not k[2] else f" {k[2]}={k[3]}"), a["unit"],
                          cell(a), cell(b), ratio, mark))
        if not lines:
            continue
        head = ("case", "metric", "unit", "A median (min-max)", "B median (min-max)", "B/A", "")
        widths = [max(len(str(r[i])) for r in lines + [head]) for i in range(len(head))]
        print(f"## {h}")
        for r in [head, tuple("-" * w for w in widths)] + lines:
            print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        print()
    print(f"compare: {total} figures in both, {differ} with ranges that do not overlap (*)")
    if only_a:
        print(f"only in A ({len(only_a)}): " + ", ".join(only_a[:20]) + (" ..." if len(only_a) > 20 else ""))
    if only_b:
        print(f"only in B ({len(only_b)}): " + ", ".join(only_b[:20]) + (" ..." if len(only_b) > 20 else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # `make compare ... | head`: the reader had enough; no traceback (stdout is
        # pointed at devnull so the interpreter's final flush does not raise again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
