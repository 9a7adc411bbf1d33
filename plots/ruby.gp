# The post's own claims in Ruby (peers/ruby/bench.py), claim by claim, with C threads
# and C fibers beside every Ruby model as floor and ceiling: memory per conversation,
# CPU per token, slot starvation (the 25-thread pool), and the deployment advice (Puma
# against an Async::HTTP server relaying streams: completed, first token, memory).
# needs: ruby.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "ruby" 1800 1650
set multiplot layout 3, 2 title "\"Async Ruby is the future of AI apps\", claim by claim: Ruby 3.1 (green: threads, the pool, Puma; purple: Async) with C (red: threads; blue: fibers)" font ",14"
call "plots/lib/lines.gpi" "ruby" "case~^llm/[a-z0-9-]+/gpt4o-5tps/n=[0-9]+$;metric=bytes_per_unit" "Memory per open conversation (RSS + kernel)" "concurrent conversations N" "KiB (log)" "xy" "1024" "top right"
call "plots/lib/hbars.gpi" "ruby" "case~/marginal-;metric=cpu_per_1k_tokens_marginal_ms" "Client CPU per 1,000 tokens (setup excluded)" "ms"
call "plots/lib/hbars.gpi" "ruby" "case~^starve/;metric=ttft_rest_p99_ms" "Slot starvation: first token of users 26..N, p99" "ms"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=completed_count" "Relay: streams completed within the users' patience" "count" "lin"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=ttft_p50_ms" "Relay: first token as the users see it, p50" "ms"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=cpu_per_1k_tokens_ms" "Relay: server CPU per 1,000 tokens relayed" "ms"
unset multiplot
