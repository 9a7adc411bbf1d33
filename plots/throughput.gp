# HTTP over loopback: requests per second and p99 latency against the number of
# concurrent connections, one line per concurrency model, nginx as the reference; the
# top row is a bare "hello" response, the bottom row a handler that waits on an upstream
# (the time of a vLLM-8B-like answer), where threads sit idle. Rings mark the points where
# wrk (the load generator) was the ceiling in a run; the pool's connections that were
# never served are noted beside its points (its latency counts only those it served).
# The upstream rows are at one connection count, drawn as bars: as points at one x
# three of the four, near 1,640 req/s, hid one another.
# needs: throughput.csv
load "plots/lib/common.gpi"
h = "throughput"
up = (count(h, "case~/upstream;metric=req_per_s") > 0)
call "plots/lib/term.gpi" "throughput" 1300 (up ? 1150 : 640)
allser = uniq(h, "case~/hello/|/upstream;metric=req_per_s|p99_ms", "series")
keyout = 1; keyrows = 6
set multiplot layout (up ? 2 : 1), 2 title "HTTP over loopback by concurrency model (nginx as reference), wrk" font ",14"
call "plots/lib/lines.gpi" "throughput" "case~/hello/;metric=req_per_s" "hello: requests per second" "concurrent connections" "req/s (log)" "xy" "1" "bottom left"
call "plots/lib/lines.gpi" "throughput" "case~/hello/;metric=p99_ms" "hello: latency p99" "concurrent connections" "ms (log)" "xy" "1"
if (up) {
    hylab = 4
    call "plots/lib/hbars.gpi" "throughput" "case~/upstream;metric=req_per_s" "waiting on an upstream (x0.2 vLLM-8B, 100 conns): req/s" "req/s" "lin"
    call "plots/lib/hbars.gpi" "throughput" "case~/upstream;metric=p99_ms" "waiting on an upstream (100 conns): latency p99" "ms" "lin"
}
unset multiplot
