#!/usr/bin/env bash
# make bench: installs what is missing, builds, runs every harness (micro, mock-llm's
# benchmark, workloads, ruby, peers) with one overall progress line and an estimate of
# the time left, checks the CSVs they wrote against results/README.md, draws the plots.
#   scripts/bench.sh [--quick] [--only STAGE[,STAGE]] [--no-plots] [--no-deps] [--help]
# Environment: QUICK=1 (same as --quick), BUILD (build directory, default build),
# JOBS (parallel compile jobs). A harness target the Makefile does not have yet is
# reported and skipped, loudly, without failing the run; a harness that fails or runs
# past twice its time budget plus a minute (the timeout) fails the run (exit 1) after
# the others have run. The time budget: the table below, and README "Time budget".
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo "Stages: micro (make bench-micro), mockllm (make bench-mockllm), workloads (make bench-workloads), ruby (make bench-ruby), peers (make bench-peers)"
}

quick=${QUICK:-0}
[ "$quick" = "0" ] && quick=""
only=""
plots=1
deps=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) [ $# -ge 2 ] || { echo "bench.sh: --only needs a stage list" >&2; exit 2; }
            only=$2; shift ;;
    --only=*) only=${1#--only=} ;;
    --no-plots) plots="" ;;
    --no-deps) deps="" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
# The calm check before each harness (scripts/noise.py): two calm windows of 1 s in full
# runs, of 0.5 s in quick ones (never published): ~1 s less per harness, 11 of them
export FIBERBENCH_CALM_LOOK=${FIBERBENCH_CALM_LOOK:-$([ -n "$quick" ] && echo 0.5 || echo 1)}
mode=${quick:+quick}; mode=${mode:-full}

# The time budget (README "Time budget": the same table, the costed plan it comes from and
# what stands between it and the promise). Seconds per stage, quick and full: each stage's
# priced time with ~15%, so that the progress line's estimate is honest; later runs
# estimate from the times the last run took (results/tmp/bench-times-*.txt). A stage's
# time includes its calm checks (each harness waits up to FIBERBENCH_CALM_WAIT s for a
# calm machine: 5 quick, 30 full; two calm windows of FIBERBENCH_CALM_LOOK s, 0.5 quick
# and 1 full, when calm). overhead_*: the dependency check, the build (the benchmarks'
# targets only, in parallel, from an empty build directory, a warm Go cache
# ~/.cache/fiberbench/go-build: ~40 s more without), the plots and the claims check.
#   stage      quick  full   priced (quiet s, quick / full)  what it covers
#   overhead      65    65     56 /   56   deps, configure, build, plots (2 at a time), claims
#   micro        130   450    112 /  391   switch, alloc, memory (3 runs a point), scale (full
#                                          3 runs); the post's protocol in C and Ruby (10
#                                          repeats; quick 1 series, full 3); quick = make
#                                          reproduce's runs
#   mockllm       63   355     55 /  310   capacity (quick: 1,000 streams; best of two at a
#                                          rate, the searches taking turns), 10,000/19,000
#                                          streams (quick 10,000) beside the floor at the same
#                                          rate, keep-alive (2 s a run)
#   workloads     88   700     76 /  608   HTTP (c=100 3 rounds; quick c=100 only, 1 round;
#                                          1,000, 10,000, open loop, upstream 1), LLM streams
#                                          at 1,000 and 10,000 with the marginal (3 rounds;
#                                          quick 1,000, 1 round), the tables' profiles,
#                                          starvation, db; then the one-run points (arrive, the
#                                          20,000 limit probe), TLS, curl (1,000 at once 3
#                                          rounds; 10,000 arriving and the 10,000 probe one
#                                          run each; quick: TLS and curl at 100)
#   ruby          60   445     52 /  388   Ruby threads, pool, Async at 100/1,000/10,000 (3
#                                          rounds; C a one-round anchor), the paced marginal,
#                                          starvation, relays (C relays one round)
#   peers        110   490     94 /  423   Python, Go, Node at 10,000 and the paced marginal (3
#                                          rounds; C a one-round anchor), 1,000 and
#                                          httpx at 10,000 (one round each, last); the protocol
#                                          in Python and Go (3 series; quick 1)
#   total        516  2505    445 / 2176   (the promise: 300 quick, 1200 full: NOT kept, and
#                                          not within the rules: README "Time budget")
# Priced (2026-12-03): full, the quiet Intel publication run of 2026-12-02 21:24 (36:42)
# step by step less the cuts since (full runs keep the profile's stalls: the quiet A/B of
# 2026-12-03 15:14 found C threads' CPU per 1,000 tokens 20% lower without them, README
# "Time budget"); quick, the loaded make bench QUICK=1 of 2026-12-03 06:35 (9:26 at
# load 45-80, its gpt-4o --tps 5 runs without stalls) less its calm waits' excess, x0.85.
stages=(micro mockllm workloads ruby peers)
declare -A target=([micro]=bench-micro [mockllm]=bench-mockllm [workloads]=bench-workloads [ruby]=bench-ruby [peers]=bench-peers)
overhead_quick=65
overhead_full=65
declare -A budget_quick=([micro]=130 [mockllm]=63 [workloads]=88 [ruby]=60 [peers]=110)
declare -A budget_full=([micro]=450 [mockllm]=355 [workloads]=700 [ruby]=445 [peers]=490)

if [ -n "$only" ]; then
  sel=()
  IFS=, read -ra want <<<"$only"
  for s in "${want[@]}"; do
    [ -n "${target[$s]:-}" ] || { echo "bench.sh: unknown stage '$s' (micro, mockllm, workloads, ruby, peers)" >&2; exit 2; }
    sel+=("$s")
  done
  stages=("${sel[@]}")
fi

times_file=results/tmp/bench-times-$mode.txt
declare -A est
for s in "${stages[@]}"; do
  if [ -n "$quick" ]; then est[$s]=${budget_quick[$s]}; else est[$s]=${budget_full[$s]}; fi
done
if [ -f "$times_file" ]; then
  while read -r s t; do
    [ -n "${est[$s]:-}" ] && [[ "$t" =~ ^[0-9]+$ ]] && est[$s]=$t
  done <"$times_file"
fi
plot_est=15  # of the overhead: the plots and the claims check, after the stages

fmt() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
# Bold and red only on a terminal: logs and CI get plain text.
if [ -t 2 ]; then b=$'\033[1m'; r=$'\033[1;31m'; z=$'\033[0m'; else b=""; r=""; z=""; fi
say() { printf '%s[bench]%s %s\n' "$b" "$z" "$*" >&2; }
loud() { printf '%s[bench] !!! %s%s\n' "$r" "$*" "$z" >&2; }

t0=$(date +%s)
ticker=""
runner=""
stop_ticker() { [ -n "$ticker" ] && kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null; ticker=""; }
# timeout runs a harness in a process group of its own (so that it can kill the whole
# harness, children included); a Ctrl-C on the terminal therefore does not reach it, and
# is passed on here: TERM to timeout, which relays it to its group.
stop_runner() { [ -n "$runner" ] && kill -TERM "$runner" 2>/dev/null; wait "$runner" 2>/dev/null; runner=""; }
trap 'stop_ticker' EXIT
trap 'stop_ticker; stop_runner; loud "interrupted"; exit 130' INT TERM

# One progress line: where the run is, how long it has taken, how long it has left
# (the current stage's estimate minus its elapsed time, plus every later stage).
progress() { # idx stage_start
  local i=$1 ss=$2 now left k
  now=$(date +%s)
  left=$(( est[${stages[$i]}] - (now - ss) ))
  [ $left -lt 5 ] && left=5
  for ((k = i + 1; k < ${#stages[@]}; k++)); do left=$((left + est[${stages[$k]}])); done
  [ -n "$plots" ] && left=$((left + plot_est))
  say "$((i + 1))/${#stages[@]} ${target[${stages[$i]}]}${quick:+ QUICK=1}: stage $(fmt $((now - ss))), total $(fmt $((now - t0))), about $(fmt $left) left"
}

if [ -n "$quick" ]; then total_est=$overhead_quick; else total_est=$overhead_full; fi
for s in "${stages[@]}"; do total_est=$((total_est + est[$s])); done
say "mode: $mode; stages: ${stages[*]}; estimated $(fmt $total_est) in all"

if [ -n "$deps" ]; then
  scripts/deps.sh bench ruby peers || { loud "missing packages (see above)"; exit 1; }
fi
say "building in $BUILD/"
cmake -S . -B "$BUILD" >/dev/null || { loud "cmake configure failed"; exit 1; }
# Only what the stages run (not the tests, their ASan builds and fuzzers: make test builds
# those), in parallel: 51 s of CPU from scratch on the 2-vCPU EPYC against ~85 s for all.
bench_targets=(bench_switch bench_alloc bench_memory bench_scale bench_seed mock-llm mllm-load
               mllm-floor wl-http wl-llm wl-load wl-curl wl-curl-plain wl-relay peer-go)
cmake --build "$BUILD" -j "$JOBS" --target "${bench_targets[@]}" >"$BUILD/bench-build.log" 2>&1 || {
  tail -30 "$BUILD/bench-build.log" >&2; loud "build failed (log: $BUILD/bench-build.log)"; exit 1; }

# Which targets the Makefile has, read from make's database without running anything
# (make -n would still run recursive $(MAKE) lines).
have_targets=$(make -pRrq -f Makefile : 2>/dev/null | sed -n 's/^\([a-zA-Z0-9_-]*\):.*/\1/p' | sort -u)

mkdir -p results/tmp
declare -A status took
failed=0; skipped=()
for i in "${!stages[@]}"; do
  s=${stages[$i]}; tgt=${target[$s]}
  if ! grep -qx "$tgt" <<<"$have_targets"; then
    loud "SKIPPED $tgt: the Makefile has no such target yet; its results are NOT refreshed"
    status[$s]=skipped; took[$s]=0; skipped+=("$tgt"); continue
  fi
  ss=$(date +%s)
  progress "$i" "$ss"
  ( while sleep 20; do progress "$i" "$ss"; done ) &
  ticker=$!
  # A harness bounds its own time; the timeout is the net under it: twice the budget.
  if [ -n "$quick" ]; then limit=${budget_quick[$s]}; else limit=${budget_full[$s]}; fi
  limit=$((2 * limit + 60))
  marker=results/tmp/.bench-start-$s
  touch "$marker"
  # The micro and workloads harnesses record their noise one by one (bench/run_micro.sh,
  # workloads/bench/run.py); the other stages are wrapped here: a calm check before the
  # stage, the record after it.
  noise_h=""
  case $s in mockllm) noise_h=mockllm ;; ruby) noise_h=ruby ;; peers) noise_h=peers ;; esac
  if [ -n "$noise_h" ]; then
    FIBERBENCH_CALM_WAIT=${FIBERBENCH_CALM_WAIT:-$([ -n "$quick" ] && echo 5 || echo 30)} \
      python3 scripts/noise.py begin --out results --harness "$noise_h"
  fi
  # BENCH_PREPARED=1: the dependency check and the build above were done once for every
  # stage; the stage target does not repeat them (4-8 s a stage, measuring nothing)
  timeout -k 10 "$limit" make --no-print-directory "$tgt" BUILD="$BUILD" BENCH_PREPARED=1 \
    ${quick:+QUICK=1} </dev/null &
  runner=$!
  wait "$runner"
  rc=$?
  runner=""
  stop_ticker
  took[$s]=$(( $(date +%s) - ss ))
  written=$(find results -maxdepth 1 -name '*.csv' -newer "$marker" | sort | tr '\n' ' ')
  rm -f "$marker"
  if [ -n "$noise_h" ] && [ -n "$written" ]; then
    wrote_h=$(for f in $written; do basename "$f" .csv; done | tr '\n' ',' | sed 's/,$//')
    python3 scripts/noise.py end --out results --harness "$wrote_h"
  fi
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    loud "$tgt ran past its ${limit}s limit and was stopped"; status[$s]="TIMEOUT"; failed=1
  elif [ $rc -ne 0 ]; then
    loud "$tgt failed (exit $rc)"; status[$s]="FAILED($rc)"; failed=1
  elif [ -z "$written" ]; then
    loud "$tgt wrote no results/*.csv"; status[$s]="NO-CSV"; failed=1
  elif ! python3 scripts/check_results.py -q $written; then
    loud "$tgt wrote CSVs that break results/README.md (above)"; status[$s]="BAD-CSV"; failed=1
  else
    status[$s]=ok
    sed -i "/^$s /d" "$times_file" 2>/dev/null
    echo "$s ${took[$s]}" >>"$times_file"
  fi
  say "$tgt: ${status[$s]} in $(fmt "${took[$s]}"); wrote: ${written:-nothing}"
done

if [ -n "$plots" ]; then
  say "drawing plots (make plots)"
  make --no-print-directory plots || { loud "make plots failed"; failed=1; }
fi

if [ -s results/seed.csv ]; then
  # This run against the published set of this machine and the post's claims
  # (informative here: make reproduce is the check, make publish the way in).
  say "this run against the published set of this machine, and the post's claims:"
  python3 scripts/reproduce.py --fresh results |
    sed 's/^reproduce: FAILED/checks: some differ from the published set (see above)/; s/^reproduce: /checks: /' >&2
fi

say "summary ($mode, $(fmt $(( $(date +%s) - t0 ))) in all):"
for s in "${stages[@]}"; do
  printf '  %-16s %-10s %s\n' "${target[$s]}" "${status[$s]}" "$(fmt "${took[$s]}")" >&2
done
if [ ${#skipped[@]} -gt 0 ]; then
  loud "NOT RUN (no Makefile target yet): ${skipped[*]}"
fi
[ $failed -eq 0 ] || { loud "some harness failed: see above"; exit 1; }
say "results in results/*.csv (+ .machine.txt), plots in plots/; make publish adds them to results/published/"
