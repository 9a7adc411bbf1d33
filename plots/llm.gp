# LLM conversations: N concurrent streaming conversations against the mock server, per
# concurrency model and timing profile: the client's peak memory and the first-token
# time its users see. A dashed line marks where a limit (open files, pids) stopped one.
# needs: llm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "llm" 1200 540
set multiplot layout 1, 2 title "N concurrent streaming LLM conversations (client side; mock-llm over loopback)" font ",14"
call "plots/lib/lines.gpi" "llm" "metric=vm_hwm_bytes" "Client memory, peak RSS (model/profile)" "concurrent conversations N" "MiB (log)" "xy" "1048576"
call "plots/lib/lines.gpi" "llm" "metric=ttft_p99_ms" "First-token time seen by users, p99" "concurrent conversations N" "ms (log)" "xy" "1"
unset multiplot
