#!/usr/bin/env bash
# make reproduce: runs the quick subset (the post's protocol, bench_seed --quick) into
# results/tmp/reproduce/, checks its CSV against results/README.md, then compares its
# thread/fiber ratios with results/published/ and with the post's claims
# (scripts/reproduce.py prints claim | post | published | now | verdict).
#   scripts/reproduce.sh [--band X] [--fail-band Y] [--no-run] [--help]
# --band X: fresh within X of published is "within" (default 2); up to --fail-band Y
#   (default 4) is a drift warning; beyond it fails on the same CPU model.
# --no-run: compare what results/tmp/reproduce/ already holds.
# Environment: BUILD (default build), JOBS. Exit 0 when every claim holds, 1 when one
# fails or cannot be measured, 2 on bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."
band=2; fail_band=4; run=1
while [ $# -gt 0 ]; do
  case "$1" in
    --band) [ $# -ge 2 ] || { echo "reproduce.sh: --band needs a factor" >&2; exit 2; }; band=$2; shift ;;
    --fail-band) [ $# -ge 2 ] || { echo "reproduce.sh: --fail-band needs a factor" >&2; exit 2; }; fail_band=$2; shift ;;
    --no-run) run="" ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
fresh=results/tmp/reproduce
# Bold and red only on a terminal: logs and CI get plain text.
if [ -t 2 ]; then b=$'\033[1m'; r=$'\033[1;31m'; z=$'\033[0m'; else b=""; r=""; z=""; fi
say() { printf '%s[reproduce]%s %s\n' "$b" "$z" "$*" >&2; }
loud() { printf '%s[reproduce] !!! %s%s\n' "$r" "$*" "$z" >&2; }

if [ -n "$run" ]; then
  scripts/deps.sh bench || exit 1
  say "building in $BUILD/"
  cmake -S . -B "$BUILD" >/dev/null || { loud "cmake configure failed"; exit 1; }
  cmake --build "$BUILD" -j "$JOBS" >"$BUILD/reproduce-build.log" 2>&1 || {
    tail -30 "$BUILD/reproduce-build.log" >&2; loud "build failed ($BUILD/reproduce-build.log)"; exit 1; }
  rm -rf "$fresh"; mkdir -p "$fresh"
  seed="$BUILD/bin/bench_seed"
  if [ ! -x "$seed" ]; then
    loud "no $seed: the post's protocol harness is not built, nothing to reproduce"; exit 1
  fi
  say "running the post's protocol, quick: $seed --quick --out $fresh"
  t0=$(date +%s)
  # The harness bounds its own time; the timeout is only the net under it.
  timeout -k 10 600 "$seed" --quick --out "$fresh" || { loud "bench_seed failed (exit $?)"; exit 1; }
  say "bench_seed took $(( $(date +%s) - t0 )) s"
fi
python3 scripts/check_results.py -q "$fresh" || { loud "the fresh CSVs break results/README.md"; exit 1; }
python3 scripts/reproduce.py --fresh "$fresh" --band "$band" --fail-band "$fail_band"
