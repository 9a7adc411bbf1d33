# Memory per live unit, split into user space (RSS growth: the touched stack, the
# control block) and kernel (KernelStack + SUnreclaim: what RSS does not show).
# needs: memory.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "memory" 1000 520
h = "memory"
piv = sprintf("< awk -f %s/select.awk -v where='metric=user_bytes_per_unit|kernel_bytes_per_unit' -v pivot=metric -v cols=user_bytes_per_unit,kernel_bytes_per_unit %s/%s.csv", lib, dir, h)
set datafile columnheaders
n = count(h, "metric=user_bytes_per_unit|kernel_bytes_per_unit") 
u(c) = valid(c) ? column(c) / 1024 : 0
stats piv using (u(2) + u(3)) nooutput name "T"
set title "Memory per live unit: user space (RSS) + kernel (kernel stack, slab)" font ",14"
set xlabel "KiB per unit (linear)"
set xrange [0:T_max * 1.3]
set yrange [T_records + 0.6:0.4]
set ytics nomirror scale 0 noenhanced
set grid noytics xtics
set key bottom right box opaque
plot piv using (0):($0+1):(0):(u(2)):($0+1-0.36):($0+1+0.36):ytic(1) with boxxyerror lc rgb "#1f6fb4" title "user (RSS)", \
     '' using (0):($0+1):(u(2)):(u(2) + u(3)):($0+1-0.36):($0+1+0.36) with boxxyerror lc rgb "#e08a1a" title "kernel (KernelStack + SUnreclaim)", \
     '' using (u(2) + u(3)):($0+1):(sprintf("  %.3g KiB", u(2) + u(3))) with labels left font ",10" notitle
