#!/usr/bin/env python3
"""cfi_sp_check.py OBJECT OBJDUMP [READELF]

Checks the unwind notes (CFI) of an assembly object's functions against what their
instructions do to the stack pointer: from each function's entry, along its straight-line
prologue (up to the first branch, call, return, write of sp that is not a constant
adjustment, or note that takes the CFA from another register), the CFA must be sp plus the bytes the prologue has pushed so far, counted
from the rule at the function's first instruction (x86-64: sp+8 at a call's entry, the
return address; aarch64: sp+0). A wrong .cfi_adjust_cfa_offset there is
invisible to a test that unwinds from inside the fiber (the run path's later notes
redefine the CFA or end the walk), yet a debugger or a sampling profiler stopped on
one of those instructions would walk garbage. Static: needs the object's architecture's
objdump and a readelf, no execution (so it covers aarch64 without qemu or gdb).
Exit 0 when every checked instruction matches, 1 on a mismatch, 2 on bad usage.
"""
import re
import subprocess
import sys


def usage(msg):
    print("cfi_sp_check.py: " + msg + " (usage: cfi_sp_check.py OBJECT OBJDUMP [READELF])",
          file=sys.stderr)
    sys.exit(2)


def run(cmd):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        usage("cannot run %s: %s" % (cmd[0], e))


def fdes(readelf, obj):
    """[(lo, hi, [(loc, cfa_text)])] from readelf's interpreted .eh_frame/.debug_frame."""
    out, cur = [], None
    for line in run([readelf, "--debug-dump=frames-interp", obj]).splitlines():
        m = re.search(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", line)
        if m:
            cur = (int(m.group(1), 16), int(m.group(2), 16), [])
            out.append(cur)
            continue
        m = re.match(r"([0-9a-f]{8,16}) (\S+)", line)
        if m and cur is not None:
            cur[2].append((int(m.group(1), 16), m.group(2)))
        elif not line.strip():
            cur = None
    return out


def insns(objdump, obj):
    """{address: instruction text} for every instruction of .text."""
    out = {}
    for line in run([objdump, "-d", "--no-show-raw-insn", obj]).splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)$", line)
        if m:
            # comments: "// ..." in aarch64's syntax, "# ..." in x86-64's AT&T
            text = m.group(2).split("//")[0] if "aarch64" in objdump else m.group(2).split("#")[0]
            out[int(m.group(1), 16)] = " ".join(text.split())
    return out


def called(objdump, obj):
    """Addresses of the global (and weak) function symbols: entered by a call, so their
    CFA at the first instruction must be the entry rule, whatever the notes say."""
    out = set()
    for line in run([objdump, "-t", obj]).splitlines():
        m = re.match(r"([0-9a-f]+) (.{7}) \S+\s+[0-9a-f]+\s+\S+$", line)
        if m and m.group(2)[0] in "gwu" and m.group(2)[6] == "F":
            out.add(int(m.group(1), 16))
    return out


def imm(s):
    return int(s, 0)


def effect_x86(ins):
    """Bytes pushed by the instruction (negative: popped), or None: the walk ends."""
    op = ins.split()[0] if ins else ""
    if op.startswith(("j", "call", "ret", "ud2", "notrack")):
        return None
    if op.startswith("push"):
        return 8
    if op.startswith("pop"):
        return -8
    if not re.search(r",\s*%rsp$", ins):
        return 0
    m = re.match(r"lea\w*\s+(-?0x[0-9a-f]+|-?\d+)?\(%rsp\),\s*%rsp$", ins)
    if m:
        return -imm(m.group(1) or "0")
    m = re.match(r"(sub|add)\w*\s+\$(0x[0-9a-f]+|\d+),\s*%rsp$", ins)
    if m:
        return imm(m.group(2)) * (1 if m.group(1) == "sub" else -1)
    return None  # sp from elsewhere


def effect_a64(ins):
    parts = ins.split(None, 1)
    op, args = (parts + [""])[:2]
    if op in ("b", "bl", "blr", "br", "ret", "cbz", "cbnz", "tbz", "tbnz") or op.startswith("b."):
        return None
    m = re.match(r"st[rp]\b.*\[sp, #(-?\d+)\]!$", ins)
    if m:
        return -imm(m.group(1))
    m = re.match(r"ld[rp]\b.*\[sp\], #(-?\d+)$", ins)
    if m:
        return -imm(m.group(1))
    if not re.match(r"sp\b", args):
        return 0
    m = re.match(r"(sub|add)\s+sp, sp, #(0x[0-9a-f]+|\d+)$", ins)
    if m:
        return imm(m.group(2)) * (1 if m.group(1) == "sub" else -1)
    return None


def main():
    if not 2 <= len(sys.argv) - 1 <= 3:
        usage("wrong number of arguments")
    obj, objdump = sys.argv[1], sys.argv[2]
    readelf = sys.argv[3] if len(sys.argv) > 3 else "readelf"
    a64 = "aarch64" in run([objdump, "-f", obj])
    effect, sp, entry = (effect_a64, "sp", 0) if a64 else (effect_x86, "rsp", 8)
    code = insns(objdump, obj)
    if not code:
        usage("no instructions in " + obj)
    entries = called(objdump, obj)
    if not entries:
        usage("no global function symbols in " + obj)
    checked, bad = 0, 0
    for lo, hi, rows in fdes(readelf, obj):
        rows = [(loc, c.replace("r31+", "sp+")) for loc, c in rows]  # aarch64: sp is r31
        if not rows:  # no notes of its own: the CIE's rule, the entry's
            rows = [(lo, "%s+%d" % (sp, entry))]
        # A function entered by a call: its first note must say so, or every later note
        # would be checked against a wrong start (an extra adjust before the first
        # instruction shifts them all alike).
        want = "%s+%d" % (sp, entry)
        if lo in entries and (rows[0][0] != lo or rows[0][1] != want):
            print("FAIL %#x %-40s CFA %s at a called function's entry, want %s" %
                  (lo, code.get(lo, "?"), rows[0][1], want))
            bad += 1
            continue
        # A resume point (the join's continuation, a local symbol) starts at what its
        # first note says: walked from there.
        m = re.match(re.escape(sp) + r"\+(\d+)$", rows[0][1])
        if not m or rows[0][0] != lo:
            continue
        d = int(m.group(1))
        for addr in sorted(a for a in code if lo <= a < hi):
            cfa = [c for loc, c in rows if loc <= addr]
            want = "%s+%d" % (sp, d)
            got = cfa[-1]
            if not got.startswith(sp + "+"):
                break  # the notes describe another frame now (aarch64's RESUME: x9+160)
            if got != want:
                print("FAIL %#x %-40s CFA %s, want %s (sp moved by the instructions before)" %
                      (addr, code[addr], got, want))
                bad += 1
                break
            checked += 1
            e = effect(code[addr])
            if e is None:
                break
            d += e
    if checked == 0:
        usage("no function with unwind notes in " + obj)
    print("%s: %d prologue instructions checked, %d mismatches" % (obj, checked, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
