# Memory per live unit, split into user space (RSS growth: the touched stack, the
# control block) and kernel (KernelStack + SUnreclaim: what RSS does not show).
# needs: memory.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "memory" 1000 520
h = "memory"
# The largest N at which every series was measured (threads may stop before the
# largest N fibers reach): one bar per series, all at the same N.
nbest = system(sprintf("awk -f %s/select.awk -v where='metric=bytes_per_unit' %s/%s.csv | awk -F, '{s[$15]=1; c[$6]++} END {n=0; for (k in s) n++; b=\"\"; for (v in c) if (c[v]==n && (b==\"\" || v+0>b+0)) b=v; print b}'", lib, dir, h))
wn = (strlen(nbest) > 0) ? sprintf("param=n;value=%s;", nbest) : ""
piv = sprintf("< awk -f %s/select.awk -v where='%smetric=user_bytes_per_unit|kernel_bytes_per_unit' -v pivot=metric -v cols=user_bytes_per_unit,kernel_bytes_per_unit %s/%s.csv", lib, wn, dir, h)
set datafile columnheaders
# Kernel counters are machine-wide: a small negative share is noise, drawn as zero.
u(c) = (valid(c) && column(c) > 0) ? column(c) / 1024 : 0
stats piv using (u(2) + u(3)) nooutput name "T"
# Two lines: the title is centred over the plot, which the case names push right.
set title sprintf("Memory per live unit, N = %s live:\nuser space (RSS) + kernel (stack, slab)", nbest) font ",14"
set xlabel "KiB per unit (linear)"
set xrange [0:T_max * 1.3]
set yrange [T_records + 0.6:0.4]
set ytics nomirror scale 0 noenhanced
set grid noytics xtics
set key bottom right box opaque
plot piv using (0):($0+1):(0):(u(2)):($0+1-0.36):($0+1+0.36):ytic(short(strcol(1))) with boxxyerror lc rgb "#1f6fb4" title "user (RSS)", \
     '' using (0):($0+1):(u(2)):(u(2) + u(3)):($0+1-0.36):($0+1+0.36) with boxxyerror lc rgb "#e08a1a" title "kernel (KernelStack + SUnreclaim)", \
     '' using (u(2) + u(3)):($0+1):(sprintf("  %.3g KiB", u(2) + u(3))) with labels left font ",10" notitle
