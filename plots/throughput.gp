# HTTP over loopback: requests per second and p99 latency against the number of
# concurrent connections, one line per concurrency model, nginx as the reference; the
# top row is a bare "hello" response, the bottom row a handler that waits on an upstream
# (the time of a vLLM-8B-like answer), where threads sit idle.
# needs: throughput.csv
load "plots/lib/common.gpi"
h = "throughput"
up = (count(h, "case~/upstream;metric=req_per_s") > 0)
call "plots/lib/term.gpi" "throughput" 1200 (up ? 960 : 520)
set multiplot layout (up ? 2 : 1), 2 title "HTTP over loopback by concurrency model (nginx as reference), wrk" font ",14"
call "plots/lib/lines.gpi" "throughput" "case~/hello/;metric=req_per_s" "hello: requests per second" "concurrent connections" "req/s (log)" "xy" "1" "bottom left"
call "plots/lib/lines.gpi" "throughput" "case~/hello/;metric=p99_ms" "hello: latency p99" "concurrent connections" "ms (log)" "xy" "1"
if (up) {
    call "plots/lib/lines.gpi" "throughput" "case~/upstream;metric=req_per_s" "waiting on an upstream: requests per second" "concurrent connections" "req/s (log)" "xy" "1" "bottom left"
    call "plots/lib/lines.gpi" "throughput" "case~/upstream;metric=p99_ms" "waiting on an upstream: latency p99" "concurrent connections" "ms (log)" "xy" "1"
}
unset multiplot
