# LLM conversations against the mock server, per concurrency model and timing profile:
# the client's peak memory and the first-token time its users see against N, and slot
# starvation (a pool of 25 workers: from the 26th user on, first tokens wait for a free
# worker). A dashed line marks where a limit (open files, pids) stopped a series.
# Single-run probes (n=20000, the spread arrivals, fiber-mt) are open points apart from
# the 3-run lines, labelled with the conversations alive when fewer than N.
# needs: llm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "llm" 1600 820
probes = 1; keyrows = 13
allser = uniq("llm", "case~^llm/|^starve/;metric=vm_hwm_bytes|ttft_p99_ms", "series")
set multiplot layout 1, 3 title "Streaming LLM conversations, client side (mock-llm over loopback); lines: model/profile" font ",14"
call "plots/lib/lines.gpi" "llm" "case~^llm/;metric=vm_hwm_bytes" "Client memory (peak RSS)" "concurrent conversations N" "MiB (log)" "xy" "1048576"
call "plots/lib/lines.gpi" "llm" "case~^llm/;metric=ttft_p99_ms" "First-token time seen by users, p99" "concurrent conversations N" "ms (log)" "xy" "1"
keyout = 1
call "plots/lib/lines.gpi" "llm" "case~^starve/;metric=ttft_p99_ms" "Slot starvation: first-token p99, pool of 25" "users at once N" "ms (log)" "xy" "1"
unset multiplot
