#!/usr/bin/env bash
# run_micro.sh - what `make bench-micro` runs: every micro harness (switch, alloc,
# memory, scale, seed) in turn, progress on stderr, results in OUT (default results/):
# <harness>.csv + <harness>.machine.txt each, the Google Benchmark JSON of switch and
# alloc (and hyperfine's export in OUT/hyperfine/seed.csv when bench_seed runs it:
# --hyperfine).
#   bench/run_micro.sh [--quick] [--out DIR] [--only h1,h2] [--help]
# Environment: QUICK=1 (same as --quick), BUILD (build directory, default build),
# FIBERBENCH_CALM_WAIT (seconds each harness waits for a calm machine before it starts:
# default 30 full, 5 quick; 0 = no wait). scripts/noise.py records the load, steal and
# CPU pressure before and after each harness in its machine file, and `noisy: yes` when
# the machine was busy at the start (make publish refuses such runs).
# A harness that fails is reported and the others still run; the exit status is then 1.
# Budget on 2 vCPUs: full <= 9 min, quick <= 2.5 min (plus the calm waits).
set -uo pipefail
cd "$(dirname "$0")/.."

quick=${QUICK:-}
[ "$quick" = "0" ] && quick=""
out=results
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) [ $# -ge 2 ] || { echo "run_micro.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --only) [ $# -ge 2 ] || { echo "run_micro.sh: --only needs a list" >&2; exit 2; }; only=$2; shift ;;
    --only=*) only=${1#--only=} ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_micro.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${BUILD:-build}
harnesses=(switch alloc memory scale seed)
if [ -n "$only" ]; then
  IFS=, read -ra harnesses <<<"$only"
fi
mode=--full; [ -n "$quick" ] && mode=--quick
if [ -n "$quick" ]; then export FIBERBENCH_CALM_WAIT=${FIBERBENCH_CALM_WAIT:-5}
else export FIBERBENCH_CALM_WAIT=${FIBERBENCH_CALM_WAIT:-30}; fi

say() { printf '[bench-micro] %s\n' "$*" >&2; }
t0=$(date +%s)
failed=()
i=0
for h in "${harnesses[@]}"; do
  i=$((i + 1))
  bin=$BUILD/bin/bench_$h
  if [ ! -x "$bin" ]; then
    say "!!! $bin is not built (make build)"; failed+=("$h"); continue
  fi
  say "$i/${#harnesses[@]} $h ${mode#--} -> $out/$h.csv (total so far $(( $(date +%s) - t0 )) s)"
  python3 scripts/noise.py begin --out "$out" --harness "$h"
  s0=$(date +%s)
  if [ "$h" = scale ] && [ -z "$quick" ]; then
    # bench_scale measures each point once per run: full mode runs it 3 times (fibers then
    # threads each time, so the two interleave) and publishes the median, min and max
    # over the runs (scripts/merge_runs.py); about 20 s a run here.
    rc=0; rundirs=()
    for r in 1 2 3; do
      rd="$out/tmp/scale-run$r"; mkdir -p "$rd"; rundirs+=("$rd")
      say "scale run $r/3"
      "$bin" "$mode" --out "$rd" || { rc=$?; break; }
    done
    [ $rc -eq 0 ] && { python3 scripts/merge_runs.py --harness scale --out "$out" "${rundirs[@]}" || rc=$?; }
  else
    "$bin" "$mode" --out "$out"
    rc=$?
  fi
  [ $rc -eq 0 ] && python3 scripts/noise.py end --out "$out" --harness "$h"
  if [ $rc -ne 0 ]; then
    say "!!! $h failed (exit $rc)"; failed+=("$h")
  else
    say "$h done in $(( $(date +%s) - s0 )) s"
  fi
done
say "all done in $(( $(date +%s) - t0 )) s (${mode#--})"
if [ ${#failed[@]} -gt 0 ]; then
  say "!!! failed: ${failed[*]}"
  exit 1
fi
