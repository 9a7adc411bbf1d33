# The post's own protocol (socketry/performance fiber-vs-thread) side by side: the
# published Ruby 3.4 numbers, Ruby run here, and the same protocol in C, threads
# against fibers, for creation, switch and throughput.
# needs: seed.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "seed" 1800 560
set multiplot layout 1, 3 title "The post's protocol side by side: published Ruby | Ruby here | C vs GVL-like baton threads | C vs the cheapest C threads" font ",14"
call "plots/lib/pair.gpi" "seed" "us_per_unit" "Creation: µs per unit (N=10,000, M=2)" "µs (log)"
call "plots/lib/pair.gpi" "seed" "us_per_switch" "Switch: µs per switch (N=2, M=10,000)" "µs (log)"
call "plots/lib/pair.gpi" "seed" "units_per_s" "Throughput: units/s (N=1,000, M=100)" "units/s (log)"
unset multiplot
