# LLM conversations: N concurrent streaming conversations against the mock server, per
# concurrency model: the client's memory and the first-token time the user sees.
# needs: llm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "llm" 1200 520
set multiplot layout 1, 2 title "N concurrent streaming LLM conversations (client side, loopback mock server)" font ",14"
call "plots/lib/lines.gpi" "llm" "metric=rss_bytes" "Client memory (RSS)" "concurrent conversations N" "MiB (log)" "xy" "1048576"
call "plots/lib/lines.gpi" "llm" "metric=ttft_p99_ms" "First-token time seen by the user, p99" "concurrent conversations N" "ms (log)" "xy" "1"
unset multiplot
