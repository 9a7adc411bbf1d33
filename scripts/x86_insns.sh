#!/usr/bin/env bash
# Instructions executed per pooled spawn+join on x86-64, counted by callgrind: the runtime
# of a source tree is built (all its sources, -O2 with frame pointers, as the release
# build), linked with a loop of fiber_join(fiber_spawn(work)), and run under
# valgrind --tool=callgrind --toggle-collect on that loop at two loop counts; the
# difference, per iteration and per function, is what one spawn+join executes (the
# loop's own instructions and the fiber's function included; the strict switch's MXCSR
# policy is the one this CPU picks). The x86-64 twin of scripts/aarch64_insns.sh. A
# count, not a time: deterministic, for A/B of code changes (run it on both trees).
#   scripts/x86_insns.sh [source tree, default: this one]
# Needs gcc and valgrind (scripts/deps.sh test).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "x86_insns.sh: one source tree at most (try --help)" >&2; exit 2; }
src=${1:-$(dirname "$0")/..}
[ -f "$src/fiber/include/fiber.h" ] || {
  echo "x86_insns.sh: '$src' is not a fiberbench source tree (no fiber/include/fiber.h)" >&2; exit 2; }
root=$(cd "$src" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/loop.c" <<'C'
#include <stdlib.h>
#include "fiber.h"
static volatile long sink;
static void work(void *a) { (void)a; sink++; }
__attribute__((noinline)) void cg_loop(long n)
{
    for (long i = 0; i < n; i++) {
        fiber_t *f = fiber_spawn(work, NULL);
        if (!f)
            abort();
        fiber_join(f);
    }
}
int main(int argc, char **argv)
{
    cg_loop(100); /* the pool warm, the hot slot taken back */
    cg_loop(atol(argv[1]));
    return 0;
}
C
s=$root/fiber/src
gcc -O2 -g -std=gnu11 -fno-omit-frame-pointer -I"$root/fiber/include" -I"$s" \
  "$s"/context.c "$s"/sched.c "$s"/io.c "$s"/overflow.c "$s"/remote.c "$s"/offload.c \
  "$s"/offload_gai.c "$s"/switch_x86_64.S "$work/loop.c" -o "$work/loop" -lpthread
for n in 10000 30000; do
  valgrind --tool=callgrind --toggle-collect=cg_loop --callgrind-out-file="$work/cg$n" \
    "$work/loop" $n 2>/dev/null
  callgrind_annotate --threshold=100 "$work/cg$n" >"$work/an$n" 2>/dev/null
done
python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
def count(path):
    c = {}
    for line in open(path):
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?):(\S+?)(?: \[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            fn = m.group(3)
            c[fn] = c.get(fn, 0) + int(m.group(1).replace(",", ""))
    return c
a, b = count(f"{work}/an10000"), count(f"{work}/an30000")
per = {k: (b.get(k, 0) - a.get(k, 0)) / 20000 for k in set(a) | set(b)}
per = {k: v for k, v in per.items() if abs(v) >= 0.05}
print(f"instructions per pooled spawn+join (x86-64, callgrind): {sum(per.values()):.1f}")
for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
    print(f"  {v:7.2f}  {k}")
PY
