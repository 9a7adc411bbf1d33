# Sourced by the shell tests: start_server BIN ARGS... sets PORT and SERVER_PID;
# stop_server sends SIGTERM and fails unless the server exits 0.
start_server() {
  local bin=$1; shift
  SERVER_OUT=$(mktemp)
  "$bin" --listen 127.0.0.1:0 "$@" >"$SERVER_OUT" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if grep -q '^mock-llm listening on 127.0.0.1:' "$SERVER_OUT"; then break; fi
    sleep 0.05
  done
  PORT=$(sed -n 's/^mock-llm listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SERVER_OUT")
  [ -n "$PORT" ] || { echo "FAIL: mock-llm did not print its listening line"; kill "$SERVER_PID"; exit 1; }
  trap 'kill $SERVER_PID 2>/dev/null; rm -f "$SERVER_OUT"' EXIT
}

stop_server() {
  kill -TERM "$SERVER_PID"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  trap - EXIT
  rm -f "$SERVER_OUT"
  [ "$rc" -eq 0 ] || { echo "FAIL: mock-llm exited $rc after SIGTERM"; exit 1; }
}
