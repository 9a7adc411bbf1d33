#!/usr/bin/env bash
# Prints the machine a result was measured on, as "key: value" lines. Every
# results/<harness>.csv has this beside it as results/<harness>.machine.txt.
#   scripts/machine.sh [extra "key: value" lines ...]
set -u
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
[ -n "$cpu" ] || cpu=$(uname -m)
# The CPU's identity: under KVM the model name may be only "AMD EPYC" for a Zen 3 and a
# Zen 4 alike; scripts/resultsets.py names a set with family and model. x86: vendor,
# family, model, stepping; aarch64: implementer, architecture, variant, part, revision;
# nothing where /proc/cpuinfo has none of them.
cpuinfo_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'; }
cpu_id=""
if [ -n "$(cpuinfo_field 'cpu family')" ]; then
  cpu_id="$(cpuinfo_field vendor_id) family $(cpuinfo_field 'cpu family') model $(cpuinfo_field model) stepping $(cpuinfo_field stepping)"
elif [ -n "$(cpuinfo_field 'CPU part')" ]; then
  cpu_id="implementer $(cpuinfo_field 'CPU implementer') architecture $(cpuinfo_field 'CPU architecture') variant $(cpuinfo_field 'CPU variant') part $(cpuinfo_field 'CPU part') revision $(cpuinfo_field 'CPU revision')"
fi
cpu_id=$(echo "$cpu_id" | sed 's/  */ /g; s/^ //; s/ $//')
# A container inside a VM answers "docker" to a plain systemd-detect-virt: ask for both.
vm=$(systemd-detect-virt --vm 2>/dev/null || true)
[ -n "$vm" ] && [ "$vm" != none ] || vm=$(grep -q hypervisor /proc/cpuinfo && echo "yes (hypervisor flag)" || echo none)
ct=$(systemd-detect-virt --container 2>/dev/null || true)
[ -n "$ct" ] || ct=none
virt="vm: $vm, container: $ct"
gov=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a)
top=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null | head -1)
[ -n "$dirty" ] && commit="$commit+dirty"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "cpu: $cpu"
[ -n "$cpu_id" ] && echo "cpu_id: $cpu_id"
echo "cores: $(nproc) (online: $(cat /sys/devices/system/cpu/online 2>/dev/null))"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "virtualization: $virt"
echo "kernel: $(uname -sr) $(uname -m)"
echo "libc: $(ldd --version 2>/dev/null | head -1)"
echo "compiler: $(${CC:-cc} --version 2>/dev/null | head -1)"
echo "flags: -O2 -g -fno-omit-frame-pointer"
echo "governor: $gov"
echo "affinity: $(taskset -pc $$ 2>/dev/null | sed 's/.*: //')"
echo "pid_max: $(cat /proc/sys/kernel/pid_max) threads-max: $(cat /proc/sys/kernel/threads-max)"
echo "vm.max_map_count: $(cat /proc/sys/vm/max_map_count)"
echo "open files: soft $(ulimit -Sn) hard $(ulimit -Hn)"
# What the kernel does on every entry and return for this CPU's speculative-execution
# flaws changes every syscall-bound figure (loopback writes, hand-offs): on the AMD EPYC
# (Zen 3) of 2026-12-03, "spec_rstack_overflow: Safe RET" and retpolines, a getppid()
# cost 215-275 ns against ~80 ns on the Intel Xeon. The kernel's own words, those flaws
# it mitigates only ("name=how", " | " between them); "none" when it reports none.
mit=""
for f in /sys/devices/system/cpu/vulnerabilities/*; do
  [ -r "$f" ] || continue
  v=$(cat "$f" 2>/dev/null)
  case "$v" in Mitigation:*) mit="$mit${mit:+ | }$(basename "$f")=${v#Mitigation: }" ;; esac
done
[ -d /sys/devices/system/cpu/vulnerabilities ] && echo "kernel_mitigations: ${mit:-none}"
echo "commit: $commit"
for line in "$@"; do echo "$line"; done
