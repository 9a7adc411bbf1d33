#!/bin/sh
# run.sh - the 4K-aliasing probe of issue 10 in many fresh processes (see probe.c).
#   bench/alias/run.sh [PROCS [BATCHES]]      needs build/fiber/libfiber.a (make build)
# Each process is either ASLR'd as usual ("aslr") or run under setarch -R with main's
# stack lowered by a random multiple of 16 bytes ("fixed+OFF"), in random order; one
# line per process on stdout.
set -eu
cd "$(dirname "$0")/../.."
procs=${1:-40}
batches=${2:-9}
out=build/alias_probe
gcc -O2 -g -fno-omit-frame-pointer -Wall -Wextra -Ifiber/include -Ifiber/src \
    bench/alias/probe.c build/fiber/libfiber.a -lpthread -o "$out"
i=0
while [ "$i" -lt "$procs" ]; do
    off=$(( $(od -An -N2 -tu2 /dev/urandom) % 256 * 16 ))
    if [ $((i % 2)) -eq 0 ]; then
        printf 'aslr        %s\n' "$(nice -n 10 "$out" -1 "$batches")"
    else
        printf 'fixed+%-5s %s\n' "$off" "$(nice -n 10 setarch -R "$out" "$off" "$batches")"
    fi
    i=$((i + 1))
done
