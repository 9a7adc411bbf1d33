#!/usr/bin/env bash
# curl as a real client: streaming with -N, non-streaming, errors, HTTPS (-k and verified),
# and flag handling.
#   test_curl.sh PATH/TO/mock-llm
set -euo pipefail
BIN=$1
. "$(dirname "$0")/start_server.sh"
fail() { echo "FAIL: $*"; exit 1; }

# bad flags: a message and exit code 2
set +e
"$BIN" --no-such-flag 2>/tmp/mllm_curl_err.$$; rc=$?
set -e
[ $rc -eq 2 ] || fail "unknown flag exited $rc, want 2"
grep -q "unknown option" /tmp/mllm_curl_err.$$ || fail "no message for an unknown flag"
set +e; "$BIN" --profile nope 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "unknown profile exited $rc, want 2"
set +e; "$BIN" --listen 10.0.0.1 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "--listen without a port exited $rc, want 2"
rm -f /tmp/mllm_curl_err.$$
for bad in "--tool-call-rate 1.5" "--prefill-us-per-token x" "--sndbuf -1" "--tool-call-rate" \
           "--stall-rate 1.5" "--stall-rate -0.1" "--stall-rate x" "--stall-rate"; do
  set +e; "$BIN" $bad 2>/tmp/mllm_curl_err.$$; rc=$?; set -e
  [ $rc -eq 2 ] || fail "'$bad' exited $rc, want 2"
  grep -q "mock-llm: " /tmp/mllm_curl_err.$$ || fail "'$bad' gave no message"
done
rm -f /tmp/mllm_curl_err.$$
# (read whole first: grep -q would stop reading early and, with pipefail, a --help longer
# than stdio's buffer would fail on SIGPIPE)
help=$("$BIN" --help)
grep -q -- "--time-scale" <<<"$help" || fail "--help does not list --time-scale"

start_server "$BIN" --profile fixed --time-scale 0.05
body='{"model":"mock","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}'
out=$(curl -sS -N --max-time 10 -H 'Content-Type: application/json' -d "$body" \
      "http://127.0.0.1:$PORT/v1/chat/completions")
[ "$(printf '%s\n' "$out" | grep -c '^data: ')" -eq 36 ] || fail "expected 36 data frames (role, 32 tokens, finish, usage, DONE)"
printf '%s\n' "$out" | head -1 | grep -q '"delta":{"role":"assistant"' || fail "first frame is not the role chunk"
printf '%s\n' "$out" | tail -1 | grep -qx 'data: \[DONE\]' || fail "last frame is not [DONE]"
printf '%s\n' "$out" | grep -q '"usage":{"prompt_tokens":' || fail "no usage chunk"

# the whole stream arrives as it is produced: curl's time to first byte is well under
# the stream's duration (TTFT 10 ms, 32 tokens x 1 ms at this time scale)
t=$(curl -sS -N -o /dev/null -w '%{time_starttransfer} %{time_total}' -d "$body" \
    "http://127.0.0.1:$PORT/v1/chat/completions")
echo "curl: time to first byte / total: $t"

code=$(curl -sS -o /dev/null -w '%{http_code}' -d '{"model":"nope","messages":[{"role":"user","content":"x"}]}' \
       "http://127.0.0.1:$PORT/v1/chat/completions")
[ "$code" = 404 ] || fail "unknown model gave $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$PORT/v1/models")
[ "$code" = 405 ] || fail "DELETE /v1/models gave $code"
curl -sS "http://127.0.0.1:$PORT/metrics" | grep -q '^mllm_emit_lateness_seconds_bucket{le="+Inf"} ' \
  || fail "/metrics has no lateness histogram"
curl -sS -d '{"model":"mock","messages":[{"role":"user","content":"x"}]}' \
  "http://127.0.0.1:$PORT/v1/chat/completions" | grep -q '"object":"chat.completion"' \
  || fail "non-streaming answer"
# an injected disconnect cuts the stream mid-answer: curl reports a partial transfer (18)
set +e
curl -sS -N -o /dev/null -H 'x-mock-inject: disconnect' -d "$body" \
  "http://127.0.0.1:$PORT/v1/chat/completions" 2>/dev/null; rc=$?
set -e
[ $rc -eq 18 ] || fail "an injected disconnect gave curl exit $rc, want 18 (partial transfer)"
stop_server

# --max-batch-events: events due at once share one write (one HTTP chunk) by default;
# with 1 each event is its own chunk. --time-scale 0: all 32 tokens are due at once.
for flag in "" "--max-batch-events 1"; do
  start_server "$BIN" --profile fixed --time-scale 0 $flag
  raw=$(curl -sS --raw --max-time 10 -d "$body" "http://127.0.0.1:$PORT/v1/chat/completions")
  chunks=$(printf '%s' "$raw" | tr -d '\r' | grep -cE '^[0-9a-f]+$')
  stop_server
  if [ -z "$flag" ]; then [ "$chunks" -le 5 ] || fail "coalescing: $chunks chunks for 32 due tokens"
  else [ "$chunks" -ge 33 ] || fail "--max-batch-events 1: $chunks chunks, want one per event"; fi
done
# HTTPS: curl -k (no verification), then curl verifying the certificate the server wrote
CERT=$(mktemp)
start_server "$BIN" --profile fixed --time-scale 0.05 --tls --tls-cert-out "$CERT"
out=$(curl -sS -k -N --max-time 10 -d "$body" "https://127.0.0.1:$PORT/v1/chat/completions")
[ "$(printf '%s\n' "$out" | grep -c '^data: ')" -eq 36 ] || fail "curl -k: expected 36 data frames"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CERT" "https://localhost:$PORT/health")
[ "$code" = 200 ] || fail "curl --cacert (verified, localhost) gave $code"
set +e; curl -sS -o /dev/null "https://127.0.0.1:$PORT/health" 2>/dev/null; rc=$?; set -e
[ $rc -eq 60 ] || fail "curl without the certificate gave exit $rc, want 60 (not trusted)"
stop_server
rm -f "$CERT"
for bad in "--tls-cert /nonexistent.pem --tls-key /nonexistent.key" "--tls-key x.pem" "--tls-cert-out /tmp/x.pem"; do
  set +e; "$BIN" --listen 127.0.0.1:0 $bad >/dev/null 2>&1; rc=$?; set -e
  [ $rc -eq 2 ] || fail "'$bad' exited $rc, want 2"
done
for bad in "--max-batch-events 0" "--max-batch-events 257" "--max-batch-events 1.5"; do
  set +e; "$BIN" $bad 2>/dev/null; rc=$?; set -e
  [ $rc -eq 2 ] || fail "'$bad' exited $rc, want 2"
done
echo "PASS: curl"
