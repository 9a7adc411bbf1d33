#!/usr/bin/env bash
# Review finding: the switches' CFI describes only their first instruction. SAVE pushes
# 56 bytes (x86-64; aarch64 subtracts 160 from sp) with no .cfi_adjust_cfa_offset, so an
# unwinder stopped anywhere after the first push - gdb, perf --call-graph=dwarf, any
# sampling profiler using DWARF - takes the saved MXCSR/x87 word as the return address
# and prints garbage frames. The switch is the hottest code of every benchmark here, so
# profiles of it are where this shows. Expected: the frames above the switch are the
# real callers (sched_switch, fiber_yield, the fiber). Fix: .cfi_adjust_cfa_offset after
# each push (and the lea), and after the stack is taken from *to, .cfi_def_cfa_offset 64
# (the resumed context's frame has the same layout: return address at 56).
set -u
bin=$1
# Stop right after SAVE in the scheduler's switch, on the third pass (fibers running):
# the strict switch exists with two MXCSR policies (the CPU picks one at start), so both
# get a breakpoint at the instruction after their SAVE (cmp's reads MXCSR back: 3 bytes).
out=$(gdb -nx -batch -ex 'break *(fiber__sched_switch_strict_always+0x1e)' \
          -ex 'break *(fiber__sched_switch_strict_cmp+0x21)' -ex run -ex continue \
          -ex continue -ex 'x/i $pc' -ex bt "$bin" 2>&1)
echo "$out" | grep -E '^#|=>'
frames=$(echo "$out" | grep -E '^#')
second=$(echo "$frames" | sed -n 2p)
case "$second" in
  *sched_switch*|*fiber_yield*) echo "ok: the caller of the switch is found" ;;
  *) echo "FAIL: inside the switch, the unwinder's second frame is not its caller: $second"; exit 1 ;;
esac
