#!/usr/bin/env bash
# Builds the Go peers (peer-go-llm, peer-go-seed) into OUTDIR with Debian's Go toolchain,
# offline: standard library only, no module downloads (GOPROXY=off, GOFLAGS empty), the
# build cache and GOPATH inside the build directory (never ~/go or ~/.cache).
#   peers/go/build.sh OUTDIR [CACHEDIR]
# CMake (peers/CMakeLists.txt) and peers/bench.py both build through this script.
set -euo pipefail
out=${1:?usage: peers/go/build.sh OUTDIR [CACHEDIR]}
cache=${2:-$out/../go}
here=$(cd "$(dirname "$0")" && pwd)
go=$(command -v go || true)
[ -n "$go" ] || for g in /usr/lib/go/bin/go /usr/lib/go-1.19/bin/go; do [ -x "$g" ] && go=$g && break; done
[ -n "$go" ] || { echo "peers/go/build.sh: no go toolchain (scripts/deps.sh peers installs golang-go)" >&2; exit 1; }
mkdir -p "$out" "$cache/cache" "$cache/path"
out=$(cd "$out" && pwd); cache=$(cd "$cache" && pwd)
cd "$here"
for cmd in llm seed; do
  env GOCACHE="$cache/cache" GOPATH="$cache/path" GOPROXY=off GOFLAGS= GO111MODULE=on \
      GOTOOLCHAIN=local CGO_ENABLED=0 "$go" build -trimpath -o "$out/peer-go-$cmd" "./$cmd"
done
