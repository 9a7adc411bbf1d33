#!/bin/sh
# cet_notes.sh CC SRCDIR - the x86-64 runtime, compiled with -fcf-protection=full and
# linked as a shared object, keeps the IBT property: every object of it is marked,
# switch_x86_64.S included (without its note the linker drops IBT for the whole
# output). SHSTK is expected to be absent: the switch does not switch shadow stacks
# (switch_x86_64.S says why), so it must not claim to. A shared object without the
# start files, because Debian 12's crti.o/crtn.o carry no CET notes and would turn the
# property off for any executable linked here.
set -u
cc=$1 src=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
"$cc" -shared -fPIC -fcf-protection=full -nostdlib -O2 -I"$src/fiber/include" -I"$src/fiber/src" \
    "$src"/fiber/src/*.c "$src/fiber/src/switch_x86_64.S" -o "$tmp/libfiber_cet.so" || exit 1
props=$(readelf -n "$tmp/libfiber_cet.so" | grep 'x86 feature')
echo "libfiber (shared, -fcf-protection=full): ${props:-no x86 feature property}"
echo "$props" | grep -q 'IBT' || { echo "FAIL: IBT property lost"; exit 1; }
echo "$props" | grep -q 'SHSTK' && { echo "FAIL: SHSTK claimed but shadow stacks are not switched"; exit 1; }
echo "ok: IBT kept, SHSTK not claimed"
