# The mock LLM server under load: what it delivers against what is offered, how late it
# sends tokens against their schedule, and its keep-alive request rate next to nginx.
# needs: mockllm.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "mockllm" 1500 520
h = "mockllm"
# Stats first: stats honours the ranges set for a panel.
nconc = count(h, "case~^concurrency/;metric=open_streams")
if (nconc > 0) {
    stats sel(h, "case~^concurrency/;metric=open_streams") using 9 nooutput name "OS"
    stats sel(h, "case~^concurrency/;metric=rss_per_stream") using 9 nooutput name "RS"
    stats sel(h, "case~^concurrency/;metric=failed_streams") using 9 nooutput name "FS"
}
set multiplot layout 1, 3 title "mock-llm (fiber runtime, one core): capacity, token lateness, keep-alive requests" font ",14"

cap = "case~^capacity/"
if (count(h, cap . ";metric=events_per_s") > 0) {
    set xrange [*:*]; set yrange [*:*]
    stats sel(h, cap . ";metric=events_per_s") using 6 nooutput name "X"
    set title "Events delivered against events offered" font ",12"
    set logscale xy; set format x "10^{%L}"; set format y "10^{%L}"
    set xrange [dec_lo(X_min):dec_hi(X_max)]; set yrange [dec_lo(X_min):dec_hi(X_max)]
    set xlabel "offered SSE events/s (streams x tokens/s)"; set ylabel "events/s (log)"
    set key top left box opaque font ",10"
    if (nconc > 0) {
        set label 1 sprintf("%d streams held open at once,\n%d failed, %s RSS per stream", OS_max, FS_max, hum_b(RS_max)) at graph 0.97, 0.08 right font ",10"
    }
    # One line per server variant (plain epoll waits, busy-polling), sorted by the offer.
    impls = uniq(h, cap . ";metric=events_per_s", "impl")
    plot for [k = 1:words(impls)] selv(h, cap . ";metric=events_per_s;impl=" . word(impls, k)) \
             using 6:9:($10):($11) with yerrorlines lt (k == 1 ? 1 : k + 2) title word(impls, k) . " sent", \
         for [k = 1:words(impls)] selv(h, cap . ";metric=client_events_per_s;impl=" . word(impls, k)) \
             using 6:9 with linespoints lt (k == 1 ? 1 : k + 2) dt 3 pt 6 title word(impls, k) . " received", \
         x with lines dt 2 lc rgb "#888888" title "offered"
    unset label 1
} else { set title "no capacity rows"; unset key; plot 2 notitle }

unset logscale; set autoscale
if (count(h, cap . ";metric=lateness_p99") > 0) {
    set title "Token lateness against the schedule (p50 dotted, p99 solid)" font ",12"
    set logscale xy; set format x "10^{%L}"; set format y "10^{%L}"
    set xrange [dec_lo(X_min):dec_hi(X_max)]
    set yrange [*:*]
    stats sel(h, cap . ";metric=lateness_p50|lateness_p99") using ($9 / 1000) nooutput name "L"
    set yrange [dec_lo(L_min > 0 ? L_min : 0.001):dec_hi(L_max * 2)]
    set xlabel "offered SSE events/s"; set ylabel "ms (log)"
    impls = uniq(h, cap . ";metric=lateness_p99", "impl")
    plot for [k = 1:words(impls)] selv(h, cap . ";metric=lateness_p50;impl=" . word(impls, k)) \
             using 6:($9 / 1000) with linespoints lt (k == 1 ? 1 : k + 2) dt 3 pt 6 title word(impls, k) . " p50", \
         for [k = 1:words(impls)] selv(h, cap . ";metric=lateness_p99;impl=" . word(impls, k)) \
             using 6:($9 / 1000) with linespoints lt (k == 1 ? 1 : k + 2) title word(impls, k) . " p99"
} else { set title "no lateness rows"; unset key; plot 2 notitle }

unset logscale; set autoscale; unset xlabel; unset ylabel; set format x "%g"; set format y "%g"
if (count(h, "metric=requests_per_s") > 0) {
    call "plots/lib/hbars.gpi" "mockllm" "metric=requests_per_s" "Keep-alive requests/s (wrk -c32)" "req/s" "lin"
} else { set title "no keep-alive rows"; unset key; plot 2 notitle }
unset multiplot
