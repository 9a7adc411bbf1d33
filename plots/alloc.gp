# Creation time: creating, running to the end and joining one unit, log scale.
# needs: alloc.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "alloc" 1000 560
hkeyout = 1
call "plots/lib/hbars.gpi" "alloc" "metric=ns_per_op|ns_per_create" "Creating one unit (create + run + join)" "ns"
