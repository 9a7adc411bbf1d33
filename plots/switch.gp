# Switch time by implementation: one context switch (one direction), log scale.
# needs: switch.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "switch" 1000 560
call "plots/lib/hbars.gpi" "switch" "metric=ns_per_op|ns_per_switch" "One context switch, by implementation" "ns"
