# The post's own protocol (socketry/performance fiber-vs-thread) side by side: the
# published Ruby 3.4 numbers, Ruby run here, and the same protocol in C, fibers against
# each C thread model, for creation, switch and throughput. Each panel's title carries the
# claim's three-state verdict over the C thread models (plots/lib/verdict.py, the rule of
# scripts/reproduce.py).
# needs: seed.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "seed" 2100 620
verdict(m) = system(sprintf("python3 %s/verdict.py %s %s", lib, dir, m))
set multiplot layout 1, 3 title "The post's protocol side by side: published Ruby | Ruby here | C fibers against each C thread model (ratio = how many times cheaper fibers are)" font ",14"
ptitle = "Creation: µs per unit (N=10,000, M=2)\nclaim " . verdict("us_per_unit")
call "plots/lib/pair.gpi" "seed" "us_per_unit" "" "µs (log)"
ptitle = "Switch: µs per switch (N=2, M=10,000)\nclaim " . verdict("us_per_switch")
call "plots/lib/pair.gpi" "seed" "us_per_switch" "" "µs (log)"
ptitle = "Throughput: units/s (N=1,000, M=100, 10th repeat)\nclaim " . verdict("units_per_s")
call "plots/lib/pair.gpi" "seed" "units_per_s" "" "units/s (log)"
unset multiplot
