#!/usr/bin/env python3
"""make publish: adds or refreshes one published set, results/published/<machine>/,
from a results directory (default results/, what a full make bench wrote).

    scripts/publish.py [--from DIR] [--only h1,h2] [--show] [--dry-run]
                       [--published-root DIR] [--plots-root DIR] [--no-plots] [--no-readme]

It refuses, naming everything that is wrong at once, when:
  - a harness of a complete set is missing (switch alloc memory scale seed mockllm
    throughput llm), or its machine file is;
  - a CSV breaks results/README.md (scripts/check_results.py);
  - a run is noisy (its machine file says `noisy: yes`, or has no noise record:
    make bench writes it through scripts/noise.py);
  - a run is not a full one (its `mode:` or `workloads:` line says quick or tiny, or it
    has none): published figures are full runs;
  - the machine files name different machines (scripts/resultsets.py machine_name) or
    different CPUs (cpu_id, gbench_caches, gbench_mhz_per_cpu).
It refuses with exit status 2 to mix CPUs in a set: --only into a set whose machine
files name another CPU (cpu_id; for legacy files without it, gbench_caches or
gbench_mhz_per_cpu more than 1% apart), or a whole set over kept files that do.
--only refreshes some harnesses of a set that already exists (same machine), e.g. after
re-running one harness on a calm machine. The set's directory is replaced file by file;
its figures are drawn into plots/published/<machine>/; the README sections between
<!-- gen:... --> markers are regenerated when the set is the one the README shows
(results/published/shown.txt; --show makes it so, and the first set is shown anyway).

Exit status: 0 published (or would be, with --dry-run), 1 refused, 2 bad usage or a
cross-CPU mix.
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_results  # noqa: E402
import io  # noqa: E402
from contextlib import redirect_stderr  # noqa: E402
import resultsets  # noqa: E402

TOP = resultsets.TOP


def problems_of(src, harnesses):
    """(machine name or None, [problems]) for the harnesses of src."""
    problems = []
    names = {}
    for h in harnesses:
        csvp = os.path.join(src, h + ".csv")
        mp = os.path.join(src, h + ".machine.txt")
        if not os.path.isfile(csvp):
            problems.append(f"{h}: no {csvp} (run it: make bench, or its make bench-* target)")
            continue
        if not os.path.isfile(mp):
            problems.append(f"{h}: no machine file {mp}")
            continue
        m = resultsets.read_machine(mp)
        names[h] = resultsets.machine_name(m)
        noisy = m.get("noisy", "")
        if not noisy:
            problems.append(f"{h}: no noise record in {mp} (run it through make bench, which "
                            "records it with scripts/noise.py)")
        elif not noisy.startswith("no"):
            problems.append(f"{h}: noisy run ({noisy}): run it again on a calm machine")
        modes = [(k, m[k].split(" ")[0]) for k in ("mode", "workloads") if m.get(k)]
        if not modes:
            problems.append(f"{h}: no 'mode:' line in {mp}: cannot tell a full run")
        for k, v in modes:
            if v != "full":
                problems.append(f"{h}: a {v} run ({k}: {m[k]}): publish full runs")
        rep = check_results.Report(quiet=True)
        err = io.StringIO()
        with redirect_stderr(err):
            check_results.check_csv(csvp, False, rep)
        if rep.errors:
            first = err.getvalue().strip().splitlines()[:3]
            problems.append(f"{h}: {rep.errors} schema errors, e.g. " + " | ".join(first))
    machines = sorted(set(names.values()))
    if len(machines) > 1:
        problems.append("the machine files name different machines: " +
                        ", ".join(f"{h} {n}" for h, n in sorted(names.items())))
    conflicts, _ = resultsets.cpu_conflicts(
        [resultsets.read_machine(os.path.join(src, h + ".machine.txt")) for h in names], [])
    if conflicts:
        problems.append("the machine files name different CPUs: " + "; ".join(conflicts))
    return (machines[0] if len(machines) == 1 else None), problems


def main(argv=None):
    ap = argparse.ArgumentParser(description="Publish a full, calm make bench run as the set "
                                             "of its machine.",
                                 epilog="Exit status: 0 published, 1 refused, 2 bad usage.")
    ap.add_argument("--from", dest="src", default=os.path.join(TOP, "results"))
    ap.add_argument("--only", default="", help="refresh only these harnesses of an existing set")
    ap.add_argument("--show", action="store_true", help="make it the set the README shows")
    ap.add_argument("--dry-run", action="store_true", help="check only")
    ap.add_argument("--published-root", default=resultsets.PUBLISHED)
    ap.add_argument("--plots-root", default=os.path.join(TOP, "plots", "published"))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.src):
        print(f"publish: no directory {args.src}", file=sys.stderr)
        return 2
    known = resultsets.ALL_HARNESSES + resultsets.OPTIONAL_HARNESSES
    harnesses = resultsets.ALL_HARNESSES + [
        h for h in resultsets.OPTIONAL_HARNESSES if os.path.isfile(os.path.join(args.src, h + ".csv"))]
    if args.only:
        harnesses = [h for h in args.only.split(",") if h]
        bad = [h for h in harnesses if h not in known]
        if bad:
            ap.error(f"--only: unknown harness {', '.join(bad)} "
                     f"(known: {', '.join(known)})")

    name, problems = problems_of(args.src, harnesses)
    dest = os.path.join(args.published_root, name) if name else None
    if args.only and name and not os.path.isdir(dest):
        why = "(publish the whole set first)"
        first = os.path.join(args.src, harnesses[0] + ".machine.txt")
        lname = resultsets.machine_name(resultsets.read_machine(first), legacy=True)
        if lname != name and os.path.isdir(os.path.join(args.published_root, lname)):
            # a run with cpu_id never goes into a legacy set, even of its own CPU
            why = (f"(the legacy set {lname}, whose machine files have no cpu_id, is not "
                   f"refreshed by a run with cpu_id: publish the whole run, which starts "
                   f"{name}; SHOW=1 to show it instead)")
        problems.append(f"--only refreshes an existing set; there is no {dest} yet {why}")
    if not problems and os.path.isdir(dest):
        # A set is one CPU's: the new files must not name another CPU than the set's.
        # --only: against every machine file of the set (the ones it replaces say which
        # CPU the set was measured on: a legacy set's caches and MHz are only in switch's
        # and alloc's); a whole set: against the files it keeps (the optional harnesses).
        kept = resultsets.dir_machines(dest, skip=() if args.only else harnesses)
        new_m = [resultsets.read_machine(os.path.join(args.src, h + ".machine.txt"))
                 for h in harnesses]
        conflicts, _ = resultsets.cpu_conflicts(new_m, kept)
        if conflicts:
            print(f"publish: REFUSED: {args.src} and the set {dest} were measured on different "
                  f"CPUs: {'; '.join(conflicts)}. A set holds one CPU's results: publish the "
                  "whole run (make publish) so it gets a set of its own (scripts/machine.sh "
                  "writes cpu_id, which names it).", file=sys.stderr)
            return 2
    if problems:
        print(f"publish: REFUSED: {args.src} is not a publishable set:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"publish: {args.src} -> {dest} ({', '.join(harnesses)})")
    if args.dry_run:
        print("publish: dry run, nothing written")
        return 0
    os.makedirs(dest, exist_ok=True)
    for h in harnesses:
        for ext in (".csv", ".machine.txt"):
            tmp = os.path.join(dest, f".{h}{ext}.new")
            shutil.copyfile(os.path.join(args.src, h + ext), tmp)
            os.replace(tmp, os.path.join(dest, h + ext))
    shown_file = os.path.join(args.published_root, resultsets.SHOWN_FILE)
    shown = resultsets.shown_set(args.published_root)
    # The first set is shown; so is one named by --show. (shown_set() also answers with
    # the only set when shown.txt is absent: write the file then too.)
    if args.show or shown is None or not os.path.isfile(shown_file):
        with open(shown_file, "w") as f:
            f.write(name + "\n")
        shown = dest
    rc = 0
    if not args.no_plots:
        out = os.path.join(args.plots_root, name)
        r = subprocess.run([os.path.join(TOP, "plots", "draw.sh"), dest, out])
        if r.returncode != 0:
            print("publish: drawing the figures failed (above)", file=sys.stderr)
            rc = 1
    is_shown = os.path.abspath(shown) == os.path.abspath(dest)
    if not args.no_readme and is_shown:
        r = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "gen_readme.py")])
        if r.returncode != 0:
            print("publish: regenerating the README failed (above)", file=sys.stderr)
            rc = 1
    print(f"publish: done: {dest}" + (" (the README's set)" if is_shown else
                                      f" (the README shows {os.path.basename(shown)}; --show to change)"))
    print("publish: commit it: git add results/published plots/published README.md "
          "mock-llm/README.md workloads/README.md && git commit")
    return rc


if __name__ == "__main__":
    sys.exit(main())
