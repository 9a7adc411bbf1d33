# The post's own claims in Ruby (peers/ruby/bench.py), claim by claim, with C threads
# and C fibers beside every Ruby model as floor and ceiling: memory per conversation,
# CPU per token, slot starvation (the 25-thread pool), and the deployment advice (Puma
# against an Async::HTTP server relaying streams: completed, first token, CPU).
# needs: ruby.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "ruby" 1800 1650
set multiplot layout 3, 2 title "\"Async Ruby is the future of AI apps\", claim by claim: Ruby 3.1 (green: threads, the pool, Puma; purple: Async) beside C (red: threads; orange: the pool; blue: fibers)" font ",14"
# The suptitle names the colours; the bar panels carry no key (it would cover bar labels).
rubycols = 1

# Memory per conversation against N, one line per client, coloured by what it is (the
# lines library colours by model, which would give every Ruby line the same colour).
w_mem = "case~^llm/[a-z0-9-]+/gpt4o-5tps/n=[0-9]+$;metric=bytes_per_unit"
impls = uniq("ruby", w_mem, "impl")
colour(i) = i eq "c-fiber" ? 1 : i eq "c-thread" ? 2 : i eq "ruby-thread" ? 3 : i eq "ruby-async" ? 4 : 5
if (strlen(impls) == 0) {
    set title "Memory per open conversation\n(no data)" font ",13"
    unset key; set format x ""; set format y ""; set xrange [0:1]; set yrange [0:1]
    plot 2 notitle
    set format x; set format y
} else {
    set title "Memory per open conversation (RSS growth + kernel estimate, per live conversation)" font ",13"
    set logscale xy
    set format x "10^{%L}"; set format y "%g"
    set xrange [30:30000]; set yrange [1:1000]
    set xlabel "concurrent conversations N (gpt-4o first-token time, 5 tokens/s)"
    set ylabel "KiB per conversation (log)"
    set key top right box opaque font ",10" samplen 2
    plot for [i in impls] selv("ruby", w_mem . ";impl=" . i) \
         using 6:($9/1024):($10/1024):($11/1024) with yerrorlines lt colour(i) title i
}
unset ylabel; unset xlabel
# paced (tokens one per event): the set's own rows, or the bounded marginal-only run
# named by client (impl): the cases share the rest, which the title says
hylab = 4
call "plots/lib/hbars.gpi" "ruby+marginal/ruby" "case~/fixed-50tps/n=100/marginal-;metric=cpu_per_1k_tokens_marginal_ms" "Client CPU per 1,000 more tokens\n(paced, 50/s, N = 100, tokens 16-64)" "ms" "log" "nokey"
hylab = 0
call "plots/lib/hbars.gpi" "ruby" "case~^starve/;metric=ttft_rest_p99_ms" "Slot starvation: first token of users 26..N, p99 (210 ms conversations)" "ms" "log" "nokey"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=completed_count" "Relay: streams completed within the users' 3 s patience" "count" "lin" "nokey"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=ttft_p50_ms" "Relay: first token, p50 of the users who got one" "ms" "log" "nokey"
call "plots/lib/hbars.gpi" "ruby" "case~^relay/;metric=cpu_per_1k_tokens_ms" "Relay: server CPU per 1,000 tokens (3 per stream)" "ms" "log" "nokey"
unset multiplot
