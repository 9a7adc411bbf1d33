#!/usr/bin/env bash
# Builds the Go peers (peer-go-llm, peer-go-seed) into OUTDIR with Debian's Go toolchain,
# offline: standard library only, no module downloads (GOPROXY=off, GOFLAGS empty), GOPATH
# inside the build directory (never ~/go). The build cache (GOCACHE: compiled packages,
# keyed by the toolchain, flags and sources, safe to share) is FIBERBENCH_GO_CACHE, by
# default ~/.cache/fiberbench/go-build beside the npm cache, so that net/http and the rest
# of the standard library compile once per machine, not once per clone or clean build:
# 54 s of wall (36 s of CPU) from an empty cache on the loaded 2-vCPU Xeon, 0.5 s warm.
# Where that directory cannot be made, the cache stays in the build directory.
#   peers/go/build.sh OUTDIR [CACHEDIR]
# CMake (peers/CMakeLists.txt) and peers/bench.py both build through this script.
set -euo pipefail
out=${1:?usage: peers/go/build.sh OUTDIR [CACHEDIR]}
cache=${2:-$out/../go}
gocache=${FIBERBENCH_GO_CACHE:-${HOME:-/nonexistent}/.cache/fiberbench/go-build}
mkdir -p "$gocache" 2>/dev/null && [ -w "$gocache" ] || gocache=$cache/cache
here=$(cd "$(dirname "$0")" && pwd)
go=$(command -v go || true)
[ -n "$go" ] || for g in /usr/lib/go/bin/go /usr/lib/go-1.19/bin/go; do [ -x "$g" ] && go=$g && break; done
[ -n "$go" ] || { echo "peers/go/build.sh: no go toolchain (scripts/deps.sh peers installs golang-go)" >&2; exit 1; }
mkdir -p "$out" "$gocache" "$cache/path"
out=$(cd "$out" && pwd); cache=$(cd "$cache" && pwd); gocache=$(cd "$gocache" && pwd)
cd "$here"
for cmd in llm seed; do
  env GOCACHE="$gocache" GOPATH="$cache/path" GOPROXY=off GOFLAGS= GO111MODULE=on \
      GOTOOLCHAIN=local CGO_ENABLED=0 "$go" build -trimpath -o "$out/peer-go-$cmd" "./$cmd"
done
