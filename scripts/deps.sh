#!/usr/bin/env bash
# Checks that the Debian packages a step needs are installed; installs the missing ones
# with apt-get when running as root, otherwise prints the exact command and fails.
#   scripts/deps.sh build|test|bench|ruby ...
# Each group lists what that step needs beyond the previous ones; `test`, `bench` and
# `ruby` include `build`.
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

want=()
for group in "$@"; do
  case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    test)  want+=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    bench) want+=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
    ruby)  want+=("${build_pkgs[@]}" "${ruby_pkgs[@]}") ;;
    *) echo "deps.sh: unknown group '$group' (build, test, bench, ruby)" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -gt 0 ] || { echo "usage: scripts/deps.sh build|test|bench|ruby ..." >&2; exit 2; }

missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
