#!/usr/bin/env bash
# Checks that the Debian packages a step needs are installed; installs the missing ones
# with apt-get when running as root, otherwise prints the exact command and fails.
#   scripts/deps.sh build|test|bench|ruby|peers ...
# Each group lists what that step needs beyond the previous ones; `test`, `bench`,
# `ruby` and `peers` include `build`. `peers` also installs the official openai npm SDK
# into the npm cache the tests use (~/.cache/fiberbench/npm, or FIBERBENCH_NPM_CACHE).
set -euo pipefail

build_pkgs=(cmake make gcc g++ pkg-config libcmocka-dev libbenchmark-dev
            libboost-context-dev valgrind clang libclang-rt-14-dev libcjson-dev
            libcurl4-openssl-dev libssl-dev)
test_pkgs=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross curl python3 gdb
           gnuplot-nox)
bench_pkgs=(wrk nginx-light hyperfine gnuplot-nox ruby python3)
# the Ruby AI-app workloads (peers/ruby, make bench-ruby): Async 1.x and its HTTP client
# and server, and Puma
ruby_pkgs=(ruby ruby-async ruby-async-http puma python3)
# Python, Go and Node beside them (peers/, make bench-peers): Debian's python3 with the
# asyncio HTTP clients, Debian's Go toolchain (standard library only, built offline);
# Node and npm only when missing (a NodeSource node brings its own npm, which Debian's
# npm package would conflict with)
peers_pkgs=(python3 python3-httpx python3-aiohttp golang-go)

want=()
for group in "$@"; do
  case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    test)  want+=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    bench) want+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
    ruby)  want+=("${build_pkgs[@]}" "${ruby_pkgs[@]}") ;;
    peers) want+=("${build_pkgs[@]}" "${peers_pkgs[@]}"); want_npm=1
           command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm) ;;
    *) echo "deps.sh: unknown group '$group' (build, test, bench, ruby, peers)" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -gt 0 ] || { echo "usage: scripts/deps.sh build|test|bench|ruby|peers ..." >&2; exit 2; }

# The openai npm SDK for the Node peer, into the cache mock-llm's SDK test uses (the same
# packages, so either installs it for the other). An unreachable registry is not fatal:
# the Node rows are then skipped, saying why.
peers_npm() {
  [ -n "${want_npm:-}" ] || return 0
  local cache=${FIBERBENCH_NPM_CACHE:-$HOME/.cache/fiberbench/npm}
  [ -f "$cache/node_modules/openai/package.json" ] && return 0
  command -v npm >/dev/null || { echo "deps: no npm: the Node peer will be skipped" >&2; return 0; }
  echo "deps: npm install openai@4 @anthropic-ai/sdk@0 into $cache" >&2
  mkdir -p "$cache"
  timeout 180 npm install --silent --no-audit --no-fund --prefix "$cache" openai@4 \
    @anthropic-ai/sdk@0 >"$cache/install.log" 2>&1 ||
    echo "deps: npm could not install openai@4 (see $cache/install.log): the Node peer will be skipped" >&2
  return 0
}

missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { peers_npm; exit 0; }

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "fiberbench needs these Debian packages: ${missing[*]}" >&2
  echo "Run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; an old list may name versions that are gone.
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends ${missing[*]} >&2
peers_npm
