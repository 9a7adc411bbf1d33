# The mock LLM server under load: its capacity beside the floor (what the kernel must do
# per event), their ratio mock-llm / floor run by run, how late tokens go out with
# N streams open at 5 tokens/s each (10,000, 19,000) beside the floor paced to the same
# rate in the same run (concurrency/floor...: whether a miss is mock-llm's or the
# machine's), and its keep-alive request rate next to nginx.
# needs: mockllm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "mockllm" 1200 1500
h = "mockllm"
# Stats first: stats honours the ranges set for a panel.
# mock-llm's own rows (concurrency/fiber...): the floor's beside them hold no RSS
nconc = count(h, "case~^concurrency/fiber;metric=open_streams")
if (nconc > 0) {
    stats sel(h, "case~^concurrency/fiber;metric=open_streams") using 9 nooutput name "OS"
    stats sel(h, "case~^concurrency/fiber;metric=rss_per_stream") using 9 nooutput name "RS"
    stats sel(h, "case~^concurrency/fiber;metric=failed_streams") using 9 nooutput name "FS"
}
set multiplot layout 4, 1 title "mock-llm (fiber runtime, one core): capacity against the floor, token lateness with N streams, keep-alive requests" font ",14"

# Capacity against the floor (mllm-floor: one write() per event and nothing else), both
# measured in the same run: each one's highest offered rate with lateness p99 <= 1 ms,
# and each one's maximum rate with every event its own write.
capw = "case~^capacity/(floor|mock-llm)/streams=[0-9]+/(p99<=1ms|max-rate[a-z-]*)$;metric=max_events_per_s|events_per_s"
if (count(h, capw) > 0) {
    call "plots/lib/hbars.gpi" "mockllm" capw "Capacity: p99 <= 1 ms, and flat out (beside the floor)" "events/s" "lin"
} else { set title "no capacity rows"; unset key; plot 2 notitle }

unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
# mock-llm over the floor only: the CSV's floor-over-mock-llm CPU-per-event ratio is the
# inverse reading (above 1 there means mock-llm is the cheaper) and would mislead here.
ratw = "case~^capacity/ratio/mock-llm-over-floor;metric=ratio"
if (count(h, ratw) > 0) {
    call "plots/lib/hbars.gpi" "mockllm" ratw "mock-llm / floor, run by run\n(1 = the floor; below 1: mock-llm slower)" "x" "lin"
} else { set title "no ratio rows"; unset key; plot 2 notitle }

# How late token events go out with N streams open (the 19,000-stream target: p99 <= 1 ms),
# mock-llm's rows and the floor's at the same rate (concurrency/floor...) side by side.
unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
latw = "case~^concurrency/;metric=lateness_p99"
if (count(h, latw) > 0) {
    hscale = 0.001
    call "plots/lib/hbars.gpi" "mockllm" latw \
        (nconc > 0 ? sprintf("Token lateness p99, N streams open at 5 tokens/s each (mock-llm: up to %d held, %d failed, %s RSS per stream)\nbeside the floor paced to the same rate, same run and mode (green)", OS_max, FS_max, hum_b(RS_max)) \
                   : "Token lateness p99, N streams open at 5 tokens/s each") "ms" "log" "nokey"
    hscale = 1
} else { set title "no concurrency rows"; unset key; set yrange [0:1]; plot 2 notitle }

unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
if (count(h, "metric=requests_per_s") > 0) {
    call "plots/lib/hbars.gpi" "mockllm" "metric=requests_per_s" "Keep-alive requests/s (wrk -c32)" "req/s" "lin"
} else { set title "no keep-alive rows"; unset key; plot 2 notitle }
unset multiplot
