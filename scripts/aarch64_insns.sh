#!/usr/bin/env bash
# Instructions executed per pooled spawn+join on aarch64, counted under qemu-user (no
# hardware, no Valgrind needed): the runtime is cross-built with a loop of
# fiber_join(fiber_spawn(empty)), run with -singlestep -d nochain,exec (one trace line per
# executed instruction), at two loop counts; the difference, per iteration and per
# function, is what one spawn+join executes. A count, not a time: qemu says nothing
# about cycles.
#   scripts/aarch64_insns.sh [source tree, default: this one]
# Needs gcc-aarch64-linux-gnu and qemu-user (scripts/deps.sh test).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "aarch64_insns.sh: one source tree at most (try --help)" >&2; exit 2; }
src=${1:-$(dirname "$0")/..}
[ -f "$src/fiber/include/fiber.h" ] || {
  echo "aarch64_insns.sh: '$src' is not a fiberbench source tree (no fiber/include/fiber.h)" >&2; exit 2; }
root=$(cd "$src" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/loop.c" <<'C'
#include <stdlib.h>
#include "fiber.h"
static void empty(void *a) { (void)a; }
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    for (int i = 0; i < 100; i++) /* the pool warm, the hot slot taken back */
        fiber_join(fiber_spawn(empty, NULL));
    for (long i = 0; i < n; i++)
        fiber_join(fiber_spawn(empty, NULL));
    return 0;
}
C
s=$root/fiber/src
aarch64-linux-gnu-gcc -O2 -std=gnu11 -static -fstack-clash-protection -I"$root/fiber/include" \
  -I"$s" "$s"/context.c "$s"/sched.c "$s"/io.c "$s"/overflow.c "$s"/remote.c "$s"/offload.c \
  "$s"/switch_aarch64.S "$work/loop.c" -o "$work/loop" -lpthread
aarch64-linux-gnu-nm -n "$work/loop" | awk '$2 ~ /^[tT]$/ {print $1, $3}' >"$work/syms"
for n in 1000 3000; do
  qemu-aarch64 -singlestep -d nochain,exec -D "$work/trace$n" "$work/loop" $n
done
python3 - "$work" <<'PY'
import bisect, collections, re, sys
work = sys.argv[1]
syms = sorted((int(a, 16), n) for a, n in (l.split() for l in open(f"{work}/syms")))
addrs = [a for a, _ in syms]
def count(path):
    c = collections.Counter()
    for line in open(path):
        m = re.search(r"\[[0-9a-f]+/([0-9a-f]+)/", line)
        if m:
            i = bisect.bisect_right(addrs, int(m.group(1), 16)) - 1
            c[syms[i][1] if i >= 0 else "?"] += 1
    return c
a, b = count(f"{work}/trace1000"), count(f"{work}/trace3000")
per = {k: (b[k] - a[k]) / 2000 for k in b if b[k] != a[k]}
print(f"instructions per pooled spawn+join (aarch64, qemu count): {sum(per.values()):.1f}")
for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
    print(f"  {v:7.2f}  {k}")
PY
