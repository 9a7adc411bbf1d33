# The mock LLM server under load: its capacity beside the floor (what the kernel must do
# per event), their ratio run by run, and its keep-alive request rate next to nginx.
# needs: mockllm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "mockllm" 1200 1150
h = "mockllm"
# Stats first: stats honours the ranges set for a panel.
nconc = count(h, "case~^concurrency/;metric=open_streams")
if (nconc > 0) {
    stats sel(h, "case~^concurrency/;metric=open_streams") using 9 nooutput name "OS"
    stats sel(h, "case~^concurrency/;metric=rss_per_stream") using 9 nooutput name "RS"
    stats sel(h, "case~^concurrency/;metric=failed_streams") using 9 nooutput name "FS"
}
set multiplot layout 3, 1 title "mock-llm (fiber runtime, one core): capacity against the floor, keep-alive requests" font ",14"

# Capacity against the floor (mllm-floor: one write() per event and nothing else), both
# measured in the same run: each one's highest offered rate with lateness p99 <= 1 ms,
# and each one's maximum rate with every event its own write.
capw = "case~^capacity/(floor|mock-llm)/streams=[0-9]+/(p99<=1ms|max-rate[a-z-]*)$;metric=max_events_per_s|events_per_s"
if (count(h, capw) > 0) {
    call "plots/lib/hbars.gpi" "mockllm" capw "Capacity: p99 <= 1 ms, and flat out (beside the floor)" "events/s" "lin"
} else { set title "no capacity rows"; unset key; plot 2 notitle }

unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
ratw = "case~^capacity/ratio/;metric=ratio"
if (nconc > 0) {
    set label 1 sprintf("%d streams held open at once, %d failed, %s RSS per stream", OS_max, FS_max, hum_b(RS_max)) at screen 0.98, 0.318 right font ",10"
}
if (count(h, ratw) > 0) {
    call "plots/lib/hbars.gpi" "mockllm" ratw "mock-llm / floor, run by run (1 = the floor)" "x" "lin"
} else { set title "no ratio rows"; unset key; plot 2 notitle }
unset label 1

unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
if (count(h, "metric=requests_per_s") > 0) {
    call "plots/lib/hbars.gpi" "mockllm" "metric=requests_per_s" "Keep-alive requests/s (wrk -c32)" "req/s" "lin"
} else { set title "no keep-alive rows"; unset key; plot 2 notitle }
unset multiplot
