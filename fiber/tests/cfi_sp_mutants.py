#!/usr/bin/env python3
"""cfi_sp_mutants.py CC OBJDUMP READELF SWITCH_S OUT_DIR

cfi_sp_check.py against known-wrong unwind notes: switch_x86_64.S is assembled as it
is (the checker must pass it) and with each mutation below (it must fail it, exit 1,
naming the instruction). A checker that stops parsing something, or accepts what a
function's notes say at its entry, passes every mutant silently; this test does not.
Exit 0 when every verdict is right, 1 otherwise, 2 on bad usage.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (what it shows, the macro to find, the text in it, its replacement)
MUTANTS = [
    ("the CFA 8 bytes off from a called function's entry on (consistent thereafter)",
     ".macro  SWITCH name, fp, ret",
     "        .cfi_startproc\n        ENDBR\n",
     "        .cfi_startproc\n        .cfi_adjust_cfa_offset 8\n        ENDBR\n"),
    ("the run path's first push noted as 16 bytes",
     ".macro  SCHED_JOIN name, fp, sw",
     "        pushq   %rsi                  /* f, for .L*_cont */\n"
     "        .cfi_adjust_cfa_offset 8\n",
     "        pushq   %rsi                  /* f, for .L*_cont */\n"
     "        .cfi_adjust_cfa_offset 16\n"),
]


def check(cc, objdump, readelf, inc, src, obj):
    subprocess.run([cc, "-c", "-I" + inc, src, "-o", obj], check=True)
    r = subprocess.run([sys.executable, os.path.join(HERE, "cfi_sp_check.py"), obj, objdump,
                        readelf], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def main():
    if len(sys.argv) != 6:
        print("usage: cfi_sp_mutants.py CC OBJDUMP READELF SWITCH_S OUT_DIR", file=sys.stderr)
        return 2
    cc, objdump, readelf, src, out = sys.argv[1:]
    inc = os.path.dirname(os.path.abspath(src))  # sched_offsets.inc
    text = open(src).read()
    ok = True
    rc, log = check(cc, objdump, readelf, inc, src, os.path.join(out, "cfi_mutant_none.o"))
    print("unmodified: exit %d\n%s" % (rc, log))
    ok &= rc == 0
    for i, (what, macro, old, new) in enumerate(MUTANTS):
        at = text.find(macro)
        j = text.find(old, at) if at >= 0 else -1
        if j < 0:
            print("mutant %d (%s): its text is no longer in %s: update this test" % (i, what, src))
            ok = False
            continue
        ms = os.path.join(out, "cfi_mutant_%d.S" % i)
        with open(ms, "w") as f:
            f.write(text[:j] + new + text[j + len(old):])
        rc, log = check(cc, objdump, readelf, inc, ms, os.path.join(out, "cfi_mutant_%d.o" % i))
        good = rc == 1 and "FAIL" in log
        print("mutant %d (%s): exit %d, %s\n%s" % (i, what, rc, "caught" if good else "MISSED", log))
        ok &= good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
