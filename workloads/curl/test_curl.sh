#!/usr/bin/env bash
# test_curl.sh BIN_DIR LIBFIBER_HOOK_SO - wl-curl against the real mock-llm: each model
# completes every conversation; the fiber model runs one thread (libcurl's blocking code
# parked, not run on threads); the preloaded plain binary does the same; a "localhost"
# URL works on fibers; bad flags exit 2.
set -u
bin=$1 so=$2
tmp=$(mktemp -d)
mock_pid=
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$bin/mock-llm" ] || { echo "mock-llm not built: skipped"; exit 0; }
"$bin/mock-llm" --listen 127.0.0.1:0 --profile gpt-4o --time-scale 0.05 --seed 3 \
    >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$tmp/mock.out" 2>/dev/null && break
  sleep 0.05
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/mock.out")
[ -n "$port" ] || fail "mock-llm did not start: $(cat "$tmp/mock.err")"

# Small prompts for the model checks; the big ones are checked on their own below.
P="--prompt-kib 0"

field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }

check() { # name n json
  local name=$1 n=$2 out=$3
  [ "$(echo "$out" | field ok)" = "$n" ] || fail "$name: not all $n ok: $out"
  [ "$(echo "$out" | field tokens)" -gt 0 ] || fail "$name: no tokens: $out"
}

# the binaries the harness measures: the baselines without the hooks, fibers with them
exe() { case $1 in fiber) echo "$bin/wl-curl" ;; *) echo "$bin/wl-curl-plain" ;; esac; }
# (with the harness's 4 KiB receive buffer, CURLOPT_BUFFERSIZE, on every model)
for m in thread fiber multi; do
  out=$("$(exe $m)" --model $m --target 127.0.0.1:$port --n 40 --max-tokens 16 $P \
        --buffer-bytes 4096) ||
    fail "$(basename "$(exe $m)") --model $m exited $?"
  check "$(basename "$(exe $m)") $m" 40 "$out"
  want=none; [ $m = fiber ] && want=linked
  [ "$(echo "$out" | field hook)" = $want ] || fail "$m: hook $(echo "$out" | field hook), want $want"
  [ "$(echo "$out" | field sys_kernel_delta_kib)" -ge -1 ] || fail "$m: no kernel delta: $out"
  echo "ok: $(basename "$(exe $m)") --model $m: 40 of 40 ($(echo "$out" | field tokens) tokens)"
done
# the fiber model: 40 conversations at once and no thread but main and the sampler
out=$("$bin/wl-curl" --model fiber --target 127.0.0.1:$port --n 40 --max-tokens 16 $P)
[ "$(echo "$out" | field threads_peak)" -le 2 ] || fail "fiber model used threads: $out"
[ "$(echo "$out" | field peak_live)" -ge 20 ] || fail "fiber conversations did not overlap: $out"
[ "$(echo "$out" | field hook)" = linked ] || fail "hook mode: $out"

# LD_PRELOAD into the binary that does not link the hooks
out=$(LD_PRELOAD=$so "$bin/wl-curl-plain" --model fiber --target 127.0.0.1:$port --n 40 \
      --max-tokens 16 $P) || fail "wl-curl-plain under LD_PRELOAD exited $?"
check "wl-curl-plain fiber (preload)" 40 "$out"
[ "$(echo "$out" | field hook)" = preload ] || fail "hook mode: $out"
echo "ok: LD_PRELOAD wl-curl-plain --model fiber: 40 of 40"
# ... which refuses the fiber model without it
"$bin/wl-curl-plain" --model fiber --target 127.0.0.1:$port --n 1 2>/dev/null
[ $? -eq 2 ] || fail "wl-curl-plain ran fibers without the hooks"

# a host name on fibers: libcurl 7.88 answers "localhost" itself (other names go to its
# resolver thread, off the fibers); getaddrinfo on a fiber is fiber/hook's own test
out=$("$bin/wl-curl" --model fiber --host localhost --target 127.0.0.1:$port --n 20 \
      --max-tokens 8 $P) || fail "localhost run exited $?"
check "wl-curl fiber localhost" 20 "$out"
echo "ok: wl-curl --model fiber --host localhost: 20 of 20"

# a bigger prompt (256 KiB, a long history), through every model. mock-llm before its
# framing fix (b1d3d30 on the mockllm branch) answers a body that arrives in more than
# one read with a 404 for a mangled URL: that is mock-llm's bug, said as a skip here.
for m in fiber thread multi; do
  out=$("$(exe $m)" --model $m --target 127.0.0.1:$port --n 5 --max-tokens 8 --prompt-kib 256)
  if [ "$(echo "$out" | field ok)" != 5 ] &&
     [ "$(echo "$out" | python3 -c 'import json,sys; print(list(json.load(sys.stdin)["causes"]))')" = "['http 404']" ]; then
    echo "SKIP: wl-curl $m 256 KiB prompt: this mock-llm mangles bodies it reads in parts (404)"
    continue
  fi
  check "wl-curl $m 256 KiB prompt" 5 "$out"
  echo "ok: wl-curl --model $m: 256 KiB prompts"
done

# Every conversation thread gets a copy of the binary's static TLS, zeroed at
# pthread_create, so resident on each thread's stack: the workloads library's wl-llm read
# buffers (20 KiB) once came with it and were charged to the thread model. A few bytes
# of it are wl-curl's own.
if command -v readelf >/dev/null; then
  tls=$(readelf -lW "$bin/wl-curl-plain" | awk '$1 == "TLS" { print $6 }') # 0x... memsz
  tls=$((${tls:-0}))
  [ "$tls" -lt 1024 ] || fail "wl-curl-plain carries $tls bytes of static TLS per thread"
  echo "ok: wl-curl-plain's static TLS: $tls bytes per thread"
fi

# At the open-files cap the fiber model's memory is divided by the conversations in
# progress at once, not by the fibers alive: all N are spawned at once, and those past the
# cap fail in setup holding nothing (the 10,000-at-once probe: 10,000 alive, 6,664 with a
# connection). Under a 96-descriptor cap, 40 conversations at 3 descriptors each cannot all
# be open; every model counts what was.
for m in fiber thread multi; do
  out=$(ulimit -n 96; "$(exe $m)" --model $m --target 127.0.0.1:$port --n 40 --max-tokens 8 $P) ||
    fail "$m at a 96-descriptor cap exited $?"
  ok=$(echo "$out" | field ok) act=$(echo "$out" | field peak_active)
  if [ $m = multi ]; then
    # one descriptor a transfer: all 40 fit
    [ "$ok" = 40 ] || fail "multi at a 96-descriptor cap: $out"
    [ "$act" -le 40 ] && [ "$act" -ge 20 ] || fail "multi: peak_active $act: $out"
  else
    [ "$ok" -lt 40 ] || fail "$m: all 40 completed under a 96-descriptor cap: $out"
    [ "$(echo "$out" | field causes | grep -c EMFILE)" -ge 1 ] || fail "$m: no EMFILE cause: $out"
    # fibers: those that got their descriptors and the one failing (one runs at a time);
    # threads fail concurrently, so only: no more than were alive
    lim=$((ok + 1)); [ $m = thread ] && lim=$(echo "$out" | field peak_live)
    [ "$act" -le "$lim" ] || fail "$m: peak_active $act above $lim: $out"
    [ $m = thread ] || [ "$(echo "$out" | field peak_live)" -gt "$act" ] ||
      fail "$m: in progress ($act) not below alive: $out"
  fi
  echo "ok: $m at a 96-descriptor cap: $ok of 40 completed, at most $act in progress at once"
done

# bad input: a message and exit code 2
"$bin/wl-curl" --model fiber --target 127.0.0.1:1 --buffer-bytes 512 2>/dev/null
[ $? -eq 2 ] || fail "buffer below libcurl's 1024"
"$bin/wl-curl" --model nope --target 127.0.0.1:1 2>/dev/null; [ $? -eq 2 ] || fail "bad model"
"$bin/wl-curl" --model fiber --target 10.0.0.1:80 2>/dev/null; [ $? -eq 2 ] || fail "non-loopback"
"$bin/wl-curl" --model fiber --target 127.0.0.1:1 --n 0 2>/dev/null; [ $? -eq 2 ] || fail "n=0"
# a refused port is counted, not a crash
out=$("$bin/wl-curl" --model fiber --target 127.0.0.1:1 --n 3) || fail "refused: exit $?"
[ "$(echo "$out" | field failed)" = 3 ] || fail "refused not counted: $out"
echo "ok: bad input and refused connections"
echo "1 passed, 0 failed"
