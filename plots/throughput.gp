# HTTP over loopback: requests per second and p99 latency against the number of
# concurrent connections, one line per concurrency model, nginx as the reference.
# needs: throughput.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "throughput" 1200 520
set multiplot layout 1, 2 title "HTTP request throughput over loopback, by concurrency model (nginx as reference)" font ",14"
call "plots/lib/lines.gpi" "throughput" "metric=req_per_s" "Requests per second" "concurrent connections" "req/s (log)" "xy" "1" "bottom left"
call "plots/lib/lines.gpi" "throughput" "metric=p99_ms" "Request latency, p99" "concurrent connections" "ms (log)" "xy" "1"
unset multiplot
