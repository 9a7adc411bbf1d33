#!/usr/bin/env bash
# gdb's backtrace inside a fiber must end at its entry in the assembly: the scheduler's
# switch (fiber__sched_switch_*, which enters fresh fibers; gdb may print it as
# fiber.sched_switch_*), the join's run path (fiber__sched_join_*, which enters a fiber
# that the main context joins right after spawning it) or fiber_context_trampoline
# (the CFI marks the return address undefined there), with no "corrupt stack" complaint.
set -u
bin=$1
out=$(gdb -nx -batch -ex run -ex bt "$bin" 2>&1)
echo "$out" | grep -E '^#'
last=$(echo "$out" | grep -E '^#' | tail -1)
case "$last" in *sched_switch_strict*|*sched_switch_lean*|*sched_join_strict*|*sched_join_lean*|*fiber_context_trampoline*) ;; *) echo "FAIL: backtrace does not end at the fiber's entry"; exit 1 ;; esac
echo "$out" | grep -q fiber_bt_entry || { echo "FAIL: fiber entry missing from backtrace"; exit 1; }
if echo "$out" | grep -qiE 'corrupt stack|previous frame inner'; then echo "FAIL: gdb reports a corrupt stack"; exit 1; fi
echo "backtrace ends cleanly at the fiber's entry"
