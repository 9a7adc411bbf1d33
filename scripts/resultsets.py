#!/usr/bin/env python3
"""Results directories and published sets: the one place that names a machine.

A published set is results/published/<machine>/ (a CSV and a machine file per
harness); <machine> is derived from a machine file (scripts/machine.sh) by
machine_name() below, and every script that needs it (reproduce, publish, compare, the
README generator, the checker, plots/draw.sh) calls this function, so two scripts
never disagree on which set a run belongs to. results/published/shown.txt names the set
the top-level README shows.

The name carries the CPU's family and model when the machine file has a `cpu_id:` line
(scripts/machine.sh writes it from /proc/cpuinfo): under KVM the model name is only
"AMD EPYC", and a Zen 3 and a Zen 4 behind it switch ~30% apart. A machine file from
before that line (a legacy set) keeps the name without them. A run with cpu_id whose
exact set does not exist may use the legacy set of its name without family/model, but
only when that set's machine files agree with the run's on the CPU figures both have
(gbench_caches exactly, gbench_mhz_per_cpu within 1%) and contradict it on none; with
no figure to compare there is no fallback (find_set()). The lookup, like the name, leaves
the stepping out of cpu_id; a set itself holds one cpu_id (publish, check_results).

    scripts/resultsets.py machine-name [FILE|DIR]   the name of a machine file, of a
                                                    results directory, or (no argument)
                                                    of this machine
    scripts/resultsets.py sets                      every published set, one a line
    scripts/resultsets.py shown                     the directory of the README's set
    scripts/resultsets.py set-for [FILE|DIR]        the published set of the same machine
                                                    (the legacy fallback above, said on
                                                    stderr; exit 1 when there is none)

Exit status: 0, 1 (nothing found), 2 bad usage. Python 3 standard library only.
"""
import csv
import os
import re
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = os.path.join(TOP, "results", "published")
SHOWN_FILE = "shown.txt"

# The harnesses a complete published set holds (make bench writes all of them).
ALL_HARNESSES = ["switch", "alloc", "memory", "scale", "seed", "mockllm", "throughput", "llm"]
# Published with the rest when the run has them, not required (a set without them is whole).
OPTIONAL_HARNESSES = ["curl", "ruby", "peers"]
# The machine file a directory's name is derived from: the first that exists.
NAME_SOURCES = ["seed", "switch", "alloc", "memory", "scale", "mockllm", "throughput", "llm"]


def read_machine(path):
    """The "key: value" lines of a machine file as a dict (first occurrence wins);
    {} when it cannot be read."""
    keys = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    keys.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return keys


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_id_token(m):
    """The name part of a machine file's cpu_id line: "f25m1" for "AuthenticAMD family
    25 model 1 stepping 1", "i41pd0c" for an aarch64 "implementer 0x41 part 0xd0c ...";
    "" without a cpu_id line (or one naming neither). Stepping is not part of it."""
    cid = m.get("cpu_id", "")
    fam = re.search(r"\bfamily\s+(\w+)", cid)
    mod = re.search(r"\bmodel\s+(\w+)", cid)
    if fam and mod:
        return _slug(f"f{fam.group(1)}m{mod.group(1)}")
    imp = re.search(r"\bimplementer\s+(?:0x)?(\w+)", cid)
    part = re.search(r"\bpart\s+(?:0x)?(\w+)", cid)
    if imp and part:
        return _slug(f"i{imp.group(1)}p{part.group(1)}")
    return ""


def machine_name(m, legacy=False):
    """The set name of a machine file's dict: CPU model, family and model (cpu_id), CPU
    count, hypervisor.

    "AMD EPYC", "cpu_id: AuthenticAMD family 25 model 1 stepping 1", "cores: 2 (online:
    0-1)", "vm: kvm, ..." -> amd-epyc-f25m1-2vcpu-kvm; without the cpu_id line (a legacy
    machine file), or with legacy=True: amd-epyc-2vcpu-kvm.
    "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" on bare metal with 8 CPUs ->
    intel-xeon-platinum-8375c-8cpu-metal. Trademarks, "CPU"/"Processor" and the
    clock are dropped: the model is what a result belongs to."""
    cpu = m.get("cpu", "") or "unknown-cpu"
    cpu = re.sub(r"\((r|tm|c)\)", " ", cpu, flags=re.I)
    cpu = re.sub(r"@.*$", " ", cpu)
    cpu = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", cpu, flags=re.I)
    model = _slug(cpu) or "unknown-cpu"
    tok = "" if legacy else cpu_id_token(m)
    if tok:
        model = f"{model}-{tok}"
    cores = re.match(r"\s*(\d+)", m.get("cores", ""))
    n = cores.group(1) if cores else "x"
    virt = m.get("virtualization", "")
    vm = re.search(r"vm:\s*([^,]+)", virt)
    vm = vm.group(1).strip() if vm else ("" if not virt else virt)
    if not vm or vm == "none":
        return f"{model}-{n}cpu-metal"
    vm = "vm" if vm.startswith("yes") else _slug(vm)
    return f"{model}-{n}vcpu-{vm}"


def machine_file_of(directory):
    """The machine file a results directory is named after, or None."""
    for h in NAME_SOURCES:
        p = os.path.join(directory, h + ".machine.txt")
        if os.path.isfile(p):
            return p
    others = sorted(n for n in os.listdir(directory) if n.endswith(".machine.txt")) \
        if os.path.isdir(directory) else []
    return os.path.join(directory, others[0]) if others else None


def dir_machine_name(directory):
    """The machine name of a results directory (from its machine files), or None."""
    p = machine_file_of(directory)
    return machine_name(read_machine(p)) if p else None


def dir_machine_names(directory):
    """{harness: machine name} for every machine file in a directory."""
    out = {}
    if not os.path.isdir(directory):
        return out
    for n in sorted(os.listdir(directory)):
        if n.endswith(".machine.txt"):
            out[n[:-len(".machine.txt")]] = machine_name(read_machine(os.path.join(directory, n)))
    return out


def _mhz(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if 0 < x < float("inf") else None  # nan, inf, 0 and less: no figure


def cpu_evidence(machines):
    """What a list of machine-file dicts say about their CPU: {"cpu_id": {...},
    "gbench_caches": {...}, "gbench_mhz_per_cpu": {...}}, each the set of values seen."""
    ev = {"cpu_id": set(), "gbench_caches": set(), "gbench_mhz_per_cpu": set()}
    for m in machines:
        for k in ev:
            if m.get(k):
                ev[k].add(m[k])
    return ev


def _no_stepping(cid):
    """A cpu_id without what the set's name leaves out: stepping (x86), variant and
    revision (aarch64)."""
    return re.sub(r"\s*\b(stepping|variant|revision)\s+\S+", "", cid).strip()


def cpu_conflicts(a, b, stepping=True):
    """(conflicts, agreements): lists of sentences on where two lists of machine-file
    dicts name different CPUs (cpu_id, gbench_caches, gbench_mhz_per_cpu more than 1%
    apart) and where they agree. A list that disagrees with itself conflicts too.
    stepping=False: cpu_ids that differ only in stepping (variant, revision) agree, as the
    set's name does (a run's lookup); a set itself holds one cpu_id."""
    ea, eb = cpu_evidence(a), cpu_evidence(b)
    if not stepping:
        for e in (ea, eb):
            e["cpu_id"] = {_no_stepping(v) for v in e["cpu_id"]}
    conflicts, agree = [], []
    for k in ("cpu_id", "gbench_caches"):
        vals = ea[k] | eb[k]
        if len(vals) > 1:
            conflicts.append(f"{k} differs: " + " vs ".join(sorted(vals)))
        elif ea[k] and eb[k]:
            agree.append(f"{k} {next(iter(vals))}")
    # (a value that is not a number is no evidence either way)
    ma, mb = ([x for x in map(_mhz, e["gbench_mhz_per_cpu"]) if x is not None] for e in (ea, eb))
    mhz = sorted(ma + mb)
    if mhz and mhz[-1] > mhz[0] * 1.01:
        conflicts.append("gbench_mhz_per_cpu differs: " + " vs ".join(f"{x:g}" for x in mhz))
    elif ma and mb:
        agree.append(f"gbench_mhz_per_cpu {mhz[0]:g}")
    return conflicts, agree


def dir_machines(directory, skip=()):
    """The machine-file dicts of a directory (but the harnesses in skip)."""
    if not directory or not os.path.isdir(directory):
        return []
    return [read_machine(os.path.join(directory, n)) for n in sorted(os.listdir(directory))
            if n.endswith(".machine.txt") and n[:-len(".machine.txt")] not in skip]


def judge_set(set_dir, machines):
    """(same CPU?, why) for a published set and a run's machine-file dicts (the first
    names the run): the same when the set is named as the run and no machine file
    contradicts it (cpu_id, gbench_caches, gbench_mhz_per_cpu), or when the set is the
    legacy name of the run (no family/model) and its machine files agree with the run on
    at least one CPU figure and contradict it on none."""
    name = machine_name(machines[0]) if machines else "unknown"
    legacy = machine_name(machines[0], legacy=True) if machines else "unknown"
    sname = dir_machine_name(set_dir) or os.path.basename(os.path.abspath(set_dir))
    if sname not in (name, legacy):
        return False, f"{sname} is another machine than this run's {name}"
    conflicts, agree = cpu_conflicts(machines, dir_machines(set_dir), stepping=False)
    if conflicts:
        return False, (f"{sname} is named like this run ({name}) but its machine files name "
                       f"another CPU: {'; '.join(conflicts)}")
    if sname == name:
        return True, f"the set of this machine, {name}"
    if not agree:
        return False, (f"no published set for {name}; the legacy set {sname} (no cpu_id) has "
                       "no CPU figure (gbench_caches, gbench_mhz_per_cpu) to compare with this "
                       "run: not used")
    return True, (f"no published set for {name}: using the legacy set {sname} (machine files "
                  f"without cpu_id), which agrees with this run on {'; '.join(agree)}")


def find_set(machines, root=PUBLISHED):
    """(set directory or None, why) for a run's machine-file dicts (the first names it):
    its exact set, else the legacy set of its name without family/model (judge_set())."""
    if not machines:
        return None, "no machine file"
    name = machine_name(machines[0])
    legacy = machine_name(machines[0], legacy=True)
    why = f"no published set for {name}" + ("" if legacy == name else f" (nor a legacy {legacy})")
    for n in dict.fromkeys((name, legacy)):
        d = set_for(n, root)
        if d:
            same, why = judge_set(d, machines)
            if same:
                return d, why
            if n == name:
                return None, why
    return None, why


def this_machine():
    """This machine's machine-file dict (scripts/machine.sh)."""
    try:
        out = subprocess.run([os.path.join(TOP, "scripts", "machine.sh")], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    keys = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            keys.setdefault(k.strip(), v.strip())
    return keys


def list_sets(root=PUBLISHED):
    """The published set directories under root, sorted."""
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, n) for n in os.listdir(root)
                  if os.path.isdir(os.path.join(root, n)) and not n.startswith("."))


def set_for(name, root=PUBLISHED):
    """The published set of machine name, or None."""
    p = os.path.join(root, name)
    return p if os.path.isdir(p) else None


def shown_set(root=PUBLISHED):
    """The set the README shows: the one named in <root>/shown.txt, else the only set,
    else None."""
    try:
        with open(os.path.join(root, SHOWN_FILE), encoding="utf-8") as f:
            name = f.read().strip()
        if name and os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    except OSError:
        pass
    sets = list_sets(root)
    return sets[0] if len(sets) == 1 else None


def load_rows(directory, harness):
    """The rows of <directory>/<harness>.csv as dicts, or None when it is absent."""
    path = os.path.join(directory, harness + ".csv")
    if not os.path.isfile(path):
        return None
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[2] if len(argv) else __doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd in ("machine-name", "set-for"):
        if len(rest) > 1:
            print(f"resultsets: {cmd} takes at most one FILE or DIR", file=sys.stderr)
            return 2
        if not rest:
            name = machine_name(this_machine())
        elif os.path.isdir(rest[0]):
            name = dir_machine_name(rest[0])
            if name is None:
                print(f"resultsets: no machine file in {rest[0]}", file=sys.stderr)
                return 1
        elif os.path.isfile(rest[0]):
            name = machine_name(read_machine(rest[0]))
        else:
            print(f"resultsets: no such file or directory: {rest[0]}", file=sys.stderr)
            return 2
        if cmd == "machine-name":
            print(name)
            return 0
        if not rest:
            machines = [this_machine()]
        elif os.path.isdir(rest[0]):
            machines = [read_machine(machine_file_of(rest[0]))] + dir_machines(rest[0])
        else:
            machines = [read_machine(rest[0])]
        s, why = find_set(machines)
        print(f"resultsets: {why}", file=sys.stderr)
        if s is None:
            return 1
        print(s)
        return 0
    if cmd == "sets" and not rest:
        for s in list_sets():
            print(s)
        return 0
    if cmd == "shown" and not rest:
        s = shown_set()
        if s is None:
            print("resultsets: no shown set (results/published/shown.txt)", file=sys.stderr)
            return 1
        print(s)
        return 0
    print(f"resultsets: unknown command '{' '.join(argv)}' (try --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
