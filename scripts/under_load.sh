#!/usr/bin/env bash
# Runs a command again and again beside busy-loop spinners pinned to the CPUs (each one, or
# those of -c), to show whether a test leans on timing that load breaks (CI runs `make test`
# on a shared 2-vCPU VM). The spinners and the command run at nice 19 unless told (-n), so
# they share the CPUs evenly among themselves and leave other work (nice <= 10) mostly alone.
#   scripts/under_load.sh [-s SPINNERS_PER_CPU] [-r RUNS] [-o DIR] [-e VAR=VAL]... [-c CPUS [-p]] [-n NICE] -- CMD ARGS...
# -n NICE runs the spinners at that nice level instead (0: they outweigh the command ~70:1,
# as a busy CI neighbour outweighs a nice'd test).
# -c CPUS puts the spinners on those CPUs only (taskset list, e.g. 1), leaving the others
# to the rest of the machine; -p pins the command there too, so that all of its threads
# queue behind the spinners (without -p the kernel may put some of them on a free CPU,
# which is how one of two threads gets far ahead of the other).
# Prints one line per run and a summary (passed/failed of RUNS, the load average); keeps the
# output of every failed run as DIR/fail-N.log (default DIR: a new directory under /tmp).
# Exits 0 when every run passed, 1 otherwise.
set -euo pipefail

spinners=8 runs=20 dir="" envs=() cpulist="" spin_nice=19 pin_cmd=0
while [ $# -gt 0 ]; do
  case "$1" in
    -s) spinners=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    -o) dir=$2; shift 2 ;;
    -e) envs+=("$2"); shift 2 ;;
    -c) cpulist=$2; shift 2 ;;
    -n) spin_nice=$2; shift 2 ;;
    -p) pin_cmd=1; shift ;;
    --) shift; break ;;
    *) echo "under_load.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: scripts/under_load.sh [-s N] [-r N] [-o DIR] [-e VAR=VAL] [-c CPUS [-p]] [-n NICE] -- CMD ARGS..." >&2; exit 2; }
[ -n "$dir" ] || dir=$(mktemp -d /tmp/under_load.XXXXXX)
mkdir -p "$dir"

pids=()
stop_spinners() {
  # only the spinners this script started, by their ids
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_spinners EXIT
trap 'exit 143' INT TERM # stop the runs too, not only the spinners (EXIT then kills them)

if [ -n "$cpulist" ]; then
  cpuset=$(python3 -c 'import sys
out = []
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    out += range(int(a), int(b or a) + 1)
print(" ".join(map(str, out)))' "$cpulist")
  pin=()
  [ "$pin_cmd" -eq 0 ] || pin=(taskset -c "$cpulist")
else
  cpuset=$(seq 0 $(($(nproc) - 1)))
  pin=()
fi
cpus=$(echo $cpuset | wc -w)
for c in $cpuset; do
  for ((k = 0; k < spinners; k++)); do
    taskset -c "$c" nice -n "$spin_nice" bash -c 'while :; do :; done' &
    pids+=($!)
  done
done
sleep 2 # let the load settle in

pass=0 fail=0
for ((i = 1; i <= runs; i++)); do
  log="$dir/run-$i.log"
  t0=$(date +%s.%N)
  if env "${envs[@]}" "${pin[@]}" nice -n 19 "$@" >"$log" 2>&1; then
    rc=0; pass=$((pass + 1)); rm -f "$log"
  else
    rc=$?; fail=$((fail + 1)); mv "$log" "$dir/fail-$i.log"
  fi
  t1=$(date +%s.%N)
  printf 'run %d: rc=%d %.1fs load %s\n' "$i" "$rc" "$(echo "$t1 - $t0" | bc)" \
    "$(cut -d' ' -f1 /proc/loadavg)"
done
echo "under_load: $pass passed, $fail failed of $runs; $((spinners * cpus)) spinners (nice $spin_nice) on $cpus CPUs;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg); failed runs' output in $dir"
[ "$fail" -eq 0 ]
