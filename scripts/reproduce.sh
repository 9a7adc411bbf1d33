#!/usr/bin/env bash
# make reproduce: quick runs of switch, alloc, memory and the post's protocol (seed, with
# Ruby when installed) into results/tmp/reproduce/, each measuring the same quantity as
# the published full run (fewer repetitions only); checks their CSVs against
# results/README.md, then scripts/reproduce.py compares them with the published set of
# this machine and judges the post's claims (three-state verdicts). Within 4 minutes on
# 2 vCPUs.
#   scripts/reproduce.sh [--no-run] [--no-build] [--fresh DIR] [--only h1,h2]
#     [--published DIR] [--help]
#     [--ratio-band X] [--abs-band Y] [--bytes-band Z] [--spread-margin W]
#     (passed to scripts/reproduce.py: each figure within the published min-max widened
#     W each side, never narrower than the published figure within its band)
# --no-run: check what the fresh directory already holds (e.g. a doctored copy).
# --no-build: run the harnesses already in $BUILD/bin (no dependency check, no build).
# --fresh DIR: the fresh directory (default results/tmp/reproduce).
# --only: run a subset of switch,alloc,memory,seed (the others' checks then fail).
# Environment: BUILD (default build), JOBS; FIBERBENCH_CALM_WAIT (seconds each harness
# waits for a calm machine before it starts, default 10 here; 0 = no wait).
# A check that fails on a fresh run is confirmed by one more quick run of the harnesses
# it came from; only a failure that repeats fails (both attempts are printed).
# Exit 0 when every check passes, 1 when one fails, 2 on bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."
run=1; build=1; only=""; pyargs=(); fresh_opt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-run) run="" ;;
    --no-build) build="" ;;
    --fresh) [ $# -ge 2 ] || { echo "reproduce.sh: --fresh needs a directory" >&2; exit 2; }; fresh_opt=$2; shift ;;
    --only) [ $# -ge 2 ] || { echo "reproduce.sh: --only needs a list" >&2; exit 2; }; only=$2; shift ;;
    --published|--ratio-band|--abs-band|--bytes-band|--spread-margin)
      [ $# -ge 2 ] || { echo "reproduce.sh: $1 needs a value" >&2; exit 2; }
      pyargs+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
export FIBERBENCH_CALM_WAIT=${FIBERBENCH_CALM_WAIT:-10}
fresh=${fresh_opt:-results/tmp/reproduce}
harnesses=(switch alloc memory seed)
if [ -n "$only" ]; then
  IFS=, read -ra harnesses <<<"$only"
  for h in "${harnesses[@]}"; do
    case "$h" in switch|alloc|memory|seed) ;; *) echo "reproduce.sh: --only: unknown harness '$h'" >&2; exit 2 ;; esac
  done
fi
# Bold and red only on a terminal: logs and CI get plain text.
if [ -t 2 ]; then b=$'\033[1m'; r=$'\033[1;31m'; z=$'\033[0m'; else b=""; r=""; z=""; fi
say() { printf '%s[reproduce]%s %s\n' "$b" "$z" "$*" >&2; }
loud() { printf '%s[reproduce] !!! %s%s\n' "$r" "$*" "$z" >&2; }

if [ -n "$run" ] && [ -n "$build" ]; then
  scripts/deps.sh bench || exit 1
  say "building in $BUILD/"
  cmake -S . -B "$BUILD" >/dev/null || { loud "cmake configure failed"; exit 1; }
  targets=(); for h in "${harnesses[@]}"; do targets+=(--target "bench_$h"); done
  cmake --build "$BUILD" -j "$JOBS" "${targets[@]}" >"$BUILD/reproduce-build.log" 2>&1 || {
    tail -30 "$BUILD/reproduce-build.log" >&2; loud "build failed ($BUILD/reproduce-build.log)"; exit 1; }
fi
[ -n "$run" ] && { rm -rf "$fresh"; mkdir -p "$fresh"; }
# One quick run of each named harness into $fresh (its CSV and machine file replaced).
run_harnesses() {
  local h bin extra s0
  for h in "$@"; do
    bin=$BUILD/bin/bench_$h
    [ -x "$bin" ] || { loud "no $bin"; exit 1; }
    extra=(); [ "$h" = seed ] && extra=(--no-hyperfine)
    python3 scripts/noise.py begin --out "$fresh" --harness "$h"
    say "$h, quick: $bin --quick --out $fresh ${extra[*]}"
    s0=$(date +%s)
    # Each harness bounds its own time; the timeout is only the net under it.
    timeout -k 10 300 "$bin" --quick --out "$fresh" "${extra[@]}" >"$fresh/$h.log" 2>&1 || {
      tail -20 "$fresh/$h.log" >&2; loud "bench_$h failed (log: $fresh/$h.log)"; exit 1; }
    python3 scripts/noise.py end --out "$fresh" --harness "$h"
    say "$h took $(( $(date +%s) - s0 )) s"
  done
}
if [ -n "$run" ]; then
  t0=$(date +%s)
  run_harnesses "${harnesses[@]}"
  say "all quick runs took $(( $(date +%s) - t0 )) s"
fi
python3 scripts/check_results.py -q "$fresh" || { loud "the fresh CSVs break results/README.md"; exit 1; }
failed_list=$fresh/failed-harnesses.txt
python3 scripts/reproduce.py --fresh "$fresh" --failed-out "$failed_list" "${pyargs[@]}"
rc=$?
# A failed check on a fresh run is confirmed by one more quick run of just the harnesses
# whose checks failed, and only a failure that repeats fails the run: a shared or busy
# machine can spoil one quick run, while a real regression (a planted 2x one, say) fails
# both. --no-run judges what it is given, once.
if [ "$rc" -eq 1 ] && [ -n "$run" ] && [ -s "$failed_list" ]; then
  mapfile -t again <"$failed_list"
  first=$fresh.attempt1
  loud "checks failed in: ${again[*]}; running those once more to confirm (the first attempt's files: $first/)"
  rm -rf "$first"; mkdir -p "$first"
  for h in "${again[@]}"; do cp "$fresh/$h".* "$first/" 2>/dev/null || true; done
  run_harnesses "${again[@]}"
  python3 scripts/check_results.py -q "$fresh" || { loud "the fresh CSVs break results/README.md"; exit 1; }
  python3 scripts/reproduce.py --fresh "$fresh" "${pyargs[@]}"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    loud "the first attempt's failure did not repeat: passing, and saying so (its CSVs: $first/)"
  else
    loud "the failure repeated on the confirming run"
  fi
fi
exit "$rc"
