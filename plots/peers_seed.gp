# The post's protocol (N units each switching M times) across runtimes: C fibers and the
# C thread models and Ruby here and as published (seed.csv, when present), Python threads
# against asyncio tasks and Go goroutines against goroutines locked to OS threads
# (peers.csv; each process pinned to one CPU, cpu=same in the name).
# needs: peers.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "peers_seed" 1500 1700
set multiplot layout 3, 1 title "The post's protocol across runtimes (C, Ruby: seed.csv; Python, Go: peers.csv, pinned)" font ",14"
call "plots/lib/hbars.gpi" "peers+seed" "case~^seed/;metric=us_per_unit" "Creation: µs per unit (N=10,000, M=2)" "us"
call "plots/lib/hbars.gpi" "peers+seed" "case~^seed/;metric=us_per_switch" "Switch: µs per switch (N=2, M=10,000)" "us"
call "plots/lib/hbars.gpi" "peers+seed" "case~^seed/;metric=units_per_s" "Throughput: units/s (N=1,000, M=100, 10th repeat)" "units/s"
unset multiplot
