# The mock LLM server under load: how late it sends tokens against their schedule, and
# the CPU it burns, against the number of streams it holds open.
# needs: mockllm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "mockllm" 1200 520
set multiplot layout 1, 2 title "mock-llm server: concurrent streams against timer lateness and CPU" font ",14"
call "plots/lib/lines.gpi" "mockllm" "metric=lateness_p99_ms" "Token lateness against schedule, p99" "concurrent streams" "ms (log)" "xy" "1"
call "plots/lib/lines.gpi" "mockllm" "metric=cpu_percent" "Server CPU" "concurrent streams" "% of one core" "x" "1"
unset multiplot
