#!/usr/bin/env bash
# The official `openai` and `@anthropic-ai/sdk` npm packages on Node, unchanged, against mock-llm. Installs it into
# a cache folder outside the repo when npm can reach the registry; otherwise says SKIP
# and passes.
#   test_openai_npm.sh PATH/TO/mock-llm
set -euo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${FIBERBENCH_NPM_CACHE:-$HOME/.cache/fiberbench/npm}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: node/npm not installed: the openai SDK test did not run"; exit 0
fi
if [ ! -f "$CACHE/node_modules/openai/package.json" ] ||
   [ ! -f "$CACHE/node_modules/@anthropic-ai/sdk/package.json" ]; then
  mkdir -p "$CACHE"
  if ! timeout 120 npm install --silent --no-audit --no-fund --prefix "$CACHE" openai@4 \
       @anthropic-ai/sdk@0 >"$CACHE/install.log" 2>&1; then
    echo "SKIP: npm could not install openai@4 and @anthropic-ai/sdk (registry unreachable?): the SDK tests did not run"
    tail -3 "$CACHE/install.log" | sed 's/^/  npm: /'
    exit 0
  fi
fi
echo "openai SDK $(node -p "require('$CACHE/node_modules/openai/package.json').version"), anthropic SDK $(node -p "require('$CACHE/node_modules/@anthropic-ai/sdk/package.json').version"), node $(node --version)"
. "$HERE/start_server.sh"
start_server "$BIN" --profile fixed --time-scale 0.05 --retry-after-ms 10
NODE_PATH="$CACHE/node_modules" node "$HERE/test_openai.js" "$PORT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_anthropic.js" "$PORT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_sdk_traffic.js" "$PORT"
stop_server

# The same SDK tests over HTTPS: mock-llm --tls makes its certificate at start and
# writes it out; only these node processes trust it (NODE_EXTRA_CA_CERTS), and they
# verify it (no NODE_TLS_REJECT_UNAUTHORIZED=0).
CERT=$(mktemp)
start_server "$BIN" --profile fixed --time-scale 0.05 --retry-after-ms 10 --tls --tls-cert-out "$CERT"
export MLLM_SCHEME=https NODE_EXTRA_CA_CERTS="$CERT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_openai.js" "$PORT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_anthropic.js" "$PORT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_tls.js" "$PORT"
NODE_PATH="$CACHE/node_modules" node "$HERE/test_sdk_traffic.js" "$PORT"
unset MLLM_SCHEME NODE_EXTRA_CA_CERTS
stop_server
rm -f "$CERT"
