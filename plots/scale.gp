# The scale curve: memory against the number of live units, up to where the kernel
# stops the threads (pid_max, vm.max_map_count, EAGAIN): the cliff is the dashed line.
# needs: scale.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "scale" 1200 520
set multiplot layout 1, 2 title "Memory against live units (idle units parked on a wait)" font ",14"
call "plots/lib/lines.gpi" "scale" "metric=rss_bytes" "User memory (RSS)" "live units" "MiB (log)" "xy" "1048576"
call "plots/lib/lines.gpi" "scale" "metric=kernel_bytes" "Kernel memory (KernelStack + SUnreclaim)" "live units" "MiB (log)" "xy" "1048576"
unset multiplot
