# The scale curve: memory against the number of live units (idle: threads blocked,
# fibers parked), up to where the kernel stops the threads (pid_max, threads-max,
# vm.max_map_count, memory): the dashed line marks the cliff and names its cause.
# needs: scale.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "scale" 1200 540
set multiplot layout 1, 2 title "Live idle units: memory and creation time against N (dashed: where a limit stopped a series)" font ",14"
call "plots/lib/lines.gpi" "scale" "metric=bytes_per_unit" "Memory for N live units (user + kernel)" "live units N" "MiB (log)" "xy" "1048576" "bottom right" "mulx"
call "plots/lib/lines.gpi" "scale" "metric=ns_per_create" "Creating one unit while N are live" "live units N" "ns per unit (log)" "xy" "1" "bottom right"
unset multiplot
