/*
 * switch_x86_64.S - the fiber context switch for x86-64, System V psABI, AT&T syntax.
 *
 * Callee-saved state (psABI 1.0, section 3.2.1 and figure 3.4): rbx, rbp, r12-r15, rsp,
 * the control bits of MXCSR and the x87 control word. Everything else is caller-saved
 * (the MXCSR status flags included), so a call to the switch may clobber it.
 *
 * The context is just the saved rsp. The saved frame, at that rsp, lowest address first:
 *
 *   offset  size  contents
 *        0     4  MXCSR                       (strict only; lean leaves the slot alone)
 *        4     2  x87 control word            (strict only)
 *        6     2  padding
 *        8     8  r15
 *       16     8  r14
 *       24     8  r13   (a new context: the entry's argument)
 *       32     8  r12   (a new context: the entry function)
 *       40     8  rbx
 *       48     8  rbp   (a new context: 0, so frame-pointer walks stop)
 *       56     8  return address (a new context: fiber_context_trampoline)
 *       64        the switching caller's frame
 *
 * fiber/src/context.c pins these offsets with _Static_assert and builds new frames.
 * Every switch below saves and resumes this same frame, so a context saved by one of
 * them may be resumed by any other of the same FP variant (strict or lean).
 *
 * How the switch is made fast on every CPU, by construction rather than by one measured
 * layout. On an Intel Xeon (KVM) the old strict switch - pops, then ldmxcsr/fldcw, then
 * `pop rcx; jmp *rcx` - measured 35-63 ns depending only on where the two return
 * addresses of a ping-pong landed, while Boost.Context's jump_fcontext measured 4.3 ns
 * and the same switch without ldmxcsr 3.1 ns (fiberbench issue 10). Boost's
 * jump_x86_64_sysv_elf_gas.S (boostorg/context, src/asm, commit d2142b6) differs in
 * order: it loads the resume address into r8 right after taking the new stack, *before*
 * ldmxcsr/fldcw and the register loads, and ends with `jmp *%r8`. We take from that and
 * go further:
 *   1. The resume address is the first thing loaded from the new frame, and ldmxcsr and
 *      fldcw come last, after every other load: they are serializing or slow to rename
 *      on some cores, and the final indirect jump can then be checked (and a
 *      misprediction repaired) without waiting behind them.
 *   2. The FP control words. x87's has no status bits: the raw switches and FP_ALWAYS
 *      restore it unconditionally (fldcw); FP_CMP's scheduler switch only when it
 *      differs from the current word (a fldcw measured ~1 ns per switch on the Intel
 *      Xeon, see LOAD_FP_CMP). MXCSR has two policies, chosen per CPU
 *      at start (src/context.c: a pointer; both always built and tested):
 *      - FP_CMP: SAVE reads back the MXCSR stmxcsr stored; the resume writes MXCSR
 *        only when the control bits (6-15) differ from the current ones, and then
 *        keeps the current status flags (0-5, caller-saved in the psABI): a switch
 *        never changes them, so they belong to the thread, not to the fiber. The cause,
 *        measured on the Intel Xeon (KVM) here on 2026-12-02: a stmxcsr that follows a
 *        ldmxcsr which changed the status flags costs 75-90 ns; a ldmxcsr changing only
 *        the control bits, or changing the flags with no stmxcsr after it, costs ~3 ns
 *        (tight loops; a fresh-eyes review narrowed it down). Two contexts whose words
 *        differ only in a sticky flag - one has done an inexact division, the other is
 *        fresh - paid it on every switch under FP_ALWAYS. That was the "strict switch
 *        35-93 ns at some or all layouts" of issue 10: the benchmark's main thread had
 *        PE (precision) set, a fresh context 0x1F80. A ping-pong of otherwise identical
 *        switches, thread CPU time: FP_ALWAYS 77-87 ns with the flags differing and
 *        5-8 ns with them equal; FP_CMP 5.3-6.8 ns either way; fldcw alone 4-4.7 ns;
 *        no FP words 3.9-4.4. Boost.Context's jump_fcontext pays the same 80 ns when
 *        the flags differ; it avoids it in its own ping-pong because make_fcontext
 *        copies the creator's MXCSR, flags included, so both sides match until one of
 *        them computes.
 *      - FP_ALWAYS: ldmxcsr/fldcw of the saved words on every resume (flags travel
 *        with the context, as in Boost). On the AMD EPYC (Zen 4) here, reading back
 *        what stmxcsr stored alone cost ~3.5 ns per switch (5.4 -> 9 ns in a
 *        ping-pong), while ldmxcsr+fldcw themselves cost nothing measurable, changed
 *        value or not; so AMD CPUs get this one (measured on Zen 4 only, applied to
 *        every AMD family), every other CPU FP_CMP. On Zen 3 (2026-12-03) loading the
 *        x87 word only when it differs, read back through the red zone, made a pooled
 *        spawn+join 2% faster at the core's fast level (12.05 -> 11.80 ns) and no faster
 *        at its slow one: not kept, as Zen 4 measured such read-backs slower.
 *      What the words cost on the AMD EPYC (Zen 4) here, thread CPU time. In tight
 *      loops: stmxcsr issues once per ~16 cycles (4.3 ns), stmxcsr then ldmxcsr of the
 *      word it stored is a ~27-cycle round trip (7.2 ns); ldmxcsr of a constant,
 *      fnstcw and fldcw ~2 cycles each. In a pooled spawn+join (fresh fiber entered and
 *      left by the scheduler's switch below): 11.1 ns strict against 10.0 lean; taking
 *      out one instruction at a time, stmxcsr 0.4 ns, the ldmxcsr on the way back
 *      0.6 ns, the x87 pair 0.45 ns, the default loads on the way in ~0. Every variant
 *      that reads back what stmxcsr or fnstcw stored measured slower there
 *      (11.7-12.2 ns).
 *   3. Two endings, chosen by the caller's situation, both measured by bench/switch.c:
 *      - fiber_context_switch_{strict,lean} end with an indirect jmp (as Boost does): in
 *        a ping-pong between two different call sites a `ret` would pop the return
 *        stack buffer (RSB) entry pushed by the *other* side's call and mispredict on
 *        every switch. The cost: the RSB keeps one entry per switch that no `ret` pops,
 *        so returns made after the switch in deeper code mispredict until it wraps.
 *        And one jmp shared by both directions of a ping-pong alternates between two
 *        targets, which the indirect predictor can only tell apart by a hash of the
 *        branch history - and that hash aliases at some code layouts. Measured on the
 *        AMD EPYC (Zen 4) here, 78 layouts of the two loops (/tmp experiment, one switch
 *        per call site, thread CPU time): a single jmp cost 5.4 -> 11-12 ns whenever
 *        the two return addresses were congruent modulo 64 and sat at 3 modulo 4 (for
 *        our loops; the phase is set by the code between the return address and the
 *        loop's next taken branch), wherever the switch itself was placed; Boost's
 *        jump_fcontext hit the same +5-6 ns at the layouts where its loops' return
 *        addresses sat at 0 modulo 4 (16 of the 78) - no jmp-ended switch is immune.
 *        So the switch has two exits, one per direction (`from` below or above `to`):
 *        between two contexts each exit always jumps to the same place, which the
 *        target buffer predicts with no history at all; the only alternating branch
 *        left is a conditional one on two registers known at entry. 0 of the 78
 *        layouts slow, same speed elsewhere. Among more than two contexts an exit can
 *        still see several targets; it is never worse than the single jmp.
 *      - the *_ret variants and the scheduler's fiber__sched_switch_* end with `ret`.
 *        When every switch of a set of contexts is made from one call site (the
 *        scheduler's sched_switch()), the RSB entry pushed by the caller is exactly the
 *        resume address: predicted without any history, no layout can alias it, and the
 *        RSB stays balanced for the returns that follow.
 *   The scheduler also uses half switches: a fresh fiber is entered with a plain `call`
 *   on its new stack (nothing to restore), and a finished fiber leaves by returning
 *   from that call into code that resumes the next context without saving anything.
 *   The Intel figures that (1)-(3) were first designed from (35-63 ns at some layouts)
 *   turned out, once measured on that Xeon, to be the MXCSR write of (2), not a layout
 *   effect: with FP_CMP every layout of bench/switch.c measures 5.3-6.0 ns there.
 *   bench/switch.c runs every raw switch at several code and stack layouts so a layout
 *   artefact shows as spread.
 *
 * Unwind information (CFI). Debuggers and sampling profilers (gdb, perf --call-graph=dwarf)
 * may stop anywhere in a switch, so the CFI follows every instruction that moves rsp or
 * the return address: each push of SAVE, the frame's last 8 bytes, and the exits. The
 * stack swap (rsp taken from *to) needs no note: the resumed frame has the layout just
 * pushed (CFI_FRAME below), so from there on the unwinder sees the resumed context and
 * its callers - consistently, since every callee-saved register is then found in that
 * frame. Where a fiber's first call runs on its own stack, and on the way back from a
 * finished fiber before the next context's frame is taken, the return address is
 * undefined and unwinders stop. The scheduler's switch therefore tests a context it
 * comes back to (from a finished fiber) on that way back, not at the shared label 3
 * whose notes describe a frame saved on entry; the same instructions run either way.
 *
 * Control-flow enforcement (CET). Every entry point begins with endbr64 (a NOP without
 * CET). The indirect jumps that land on return addresses carry the NOTRACK prefix, as
 * GCC's own jump tables do under -fcf-protection. The objects are marked IBT in their
 * .note.gnu.property, not SHSTK: a shadow stack would need one shadow stack per fiber
 * (map_shadow_stack, rstorssp/saveprevssp on every switch), which this runtime does not
 * have, so a program linking it runs with shadow stacks off. Linux enables user shadow
 * stacks only for binaries whose every object is marked SHSTK, so that is the safe
 * outcome rather than a crash.
 */
        .text

/* IBT landing pad, spelled as bytes so old assemblers accept it (F3 0F 1E FA). */
        .macro  ENDBR
        .byte   0xf3, 0x0f, 0x1e, 0xfa
        .endm

/* The unwind notes for a saved frame at rsp (the table at the top): the caller's frame
 * (CFA) 64 bytes up, the return address and the callee-saved registers in their slots. */
        .macro  CFI_FRAME
        .cfi_def_cfa rsp, 64
        .cfi_offset rip, -8
        .cfi_offset rbp, -16
        .cfi_offset rbx, -24
        .cfi_offset r12, -32
        .cfi_offset r13, -40
        .cfi_offset r14, -48
        .cfi_offset r15, -56
        .endm

/* The notes once the registers are loaded and rsp points at the return address. */
        .macro  CFI_AT_RET
        .cfi_def_cfa rsp, 8
        .cfi_offset rip, -8
        .cfi_restore rbp
        .cfi_restore rbx
        .cfi_restore r12
        .cfi_restore r13
        .cfi_restore r14
        .cfi_restore r15
        .endm

/* The FP policies (see (2) above): lean leaves the FP control words alone; the strict
 * switch exists twice, ALWAYS (ldmxcsr/fldcw of the saved words on every resume) and
 * CMP (fldcw always; ldmxcsr only when the resumed context's MXCSR control bits differ
 * from the current ones, so the status flags stay as they are). */
        .set    FP_LEAN, 0
        .set    FP_ALWAYS, 1
        .set    FP_CMP, 2
/* The psABI's default x87 control word (fiber__fp_defaults+4 holds it too). */
        .set    FP_DEFAULT_CW, 0x037f

/* Saves the callee-saved registers (and, strict, the FP control words) into a new
 * 64-byte frame on the current stack and stores its address into *rdi. FP_CMP: edx is
 * the current MXCSR on the way out. */
        .macro  SAVE fp
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbp, 0
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset rbx, 0
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r12, 0
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r13, 0
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r14, 0
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        .cfi_rel_offset r15, 0
        leaq    -8(%rsp), %rsp
        .cfi_adjust_cfa_offset 8
        .if     \fp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        .endif
        .if     \fp == FP_CMP
        movl    (%rsp), %edx          /* the current MXCSR, for LOAD_REGS: see (2) */
        .endif
        movq    %rsp, (%rdi)
        .endm

/* Loads the callee-saved registers from the frame at rsp, the FP control words last
 * (FP_CMP: edx is the current MXCSR, as SAVE left it).
 * rsp-relative like Boost's restore: Zen-class cores rename rsp-relative loads against
 * the stores that wrote them (the frame was pushed rsp-relative), and a load through
 * another register measured 1.3-3 ns slower per switch at the worst layouts. */
        .macro  LOAD_REGS fp, curcw
        movq    8(%rsp), %r15
        movq    16(%rsp), %r14
        movq    24(%rsp), %r13
        movq    32(%rsp), %r12
        movq    40(%rsp), %rbx
        movq    48(%rsp), %rbp
        .if     \fp == FP_ALWAYS
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        .elseif \fp == FP_CMP
        LOAD_FP_CMP (%rsp), 4(%rsp), %edx, \curcw
        .endif
        .endm

/* FP_CMP, where SAVE's read-backs are not at hand: both current control words, MXCSR
 * into mx and the x87 word into cw (32-bit registers), through the dead slot under rsp. */
        .macro  READ_FP mx, cw
        stmxcsr -8(%rsp)
        fnstcw  -4(%rsp)
        movl    -8(%rsp), \mx
        movzwl  -4(%rsp), \cw
        .endm

/* FP_CMP's restore: mx/cw are the resumed context's saved words, cur holds the current
 * MXCSR (clobbered). The x87 control word has no status bits: loaded as it is, or, when
 * curcw (a 16-bit register) holds the current one, only when it differs - the
 * scheduler's switch: a fldcw measured ~1 ns per switch on the Intel Xeon (KVM) here
 * (fiber_yield ping-pong, thread CPU time, 6.05 -> 5.0 ns with the compare). MXCSR is
 * written only when its control bits differ, and then with the current status flags
 * kept (saved ^ ((cur ^ saved) & 0x3f)), through the dead slot under rsp: a switch
 * never changes the flags, so the slow case of (2) cannot arise. */
        .macro  LOAD_FP_CMP mx, cw, cur, curcw
        .ifb    \curcw
        fldcw   \cw
        .else
        cmpw    \cw, \curcw
        je      .Lcw_same\@
        fldcw   \cw
.Lcw_same\@:
        .endif
        LOAD_MX_CMP \mx, \cur
        .endm

/* LOAD_FP_CMP's MXCSR half. */
        .macro  LOAD_MX_CMP mx, cur
        xorl    \mx, \cur
        testl   $0xffc0, \cur       /* MXCSR bits 6-15: DAZ, masks, rounding, FZ */
        jz      .Lfp_same\@
        andl    $0x3f, \cur         /* bits 0-5: the status flags */
        xorl    \mx, \cur
        movl    \cur, -8(%rsp)
        ldmxcsr -8(%rsp)
.Lfp_same\@:
        .endm

/* A general switch: void name(fiber_context_t *from, fiber_context_t *to). */
        .macro  SWITCH name, fp, ret
        .globl  \name
        .type   \name, @function
        .p2align 5
\name:
        .cfi_startproc
        ENDBR
        SAVE    \fp
        movq    (%rsi), %rsp
        .if     !\ret
        movq    56(%rsp), %rcx        /* the jump target first: see (1) above */
        .endif
        LOAD_REGS \fp
        .if     \ret
        leaq    56(%rsp), %rsp
        CFI_AT_RET
        ret
        .else
        leaq    64(%rsp), %rsp
        /* The caller's frame is at rsp, the return address in rcx. */
        .cfi_def_cfa rsp, 0
        .cfi_register rip, rcx
        .cfi_restore rbp
        .cfi_restore rbx
        .cfi_restore r12
        .cfi_restore r13
        .cfi_restore r14
        .cfi_restore r15
        /* Two exits, one per direction (see (3) above): between two contexts each one
         * always jumps to the same place. */
        cmpq    %rsi, %rdi
        jb      1f
        notrack jmpq *%rcx
1:      notrack jmpq *%rcx
        .endif
        .cfi_endproc
        .size   \name, .-\name
        .endm

        SWITCH  fiber_context_switch_strict_always, FP_ALWAYS, 0
        SWITCH  fiber_context_switch_strict_cmp, FP_CMP, 0
        SWITCH  fiber_context_switch_lean, FP_LEAN, 0
        SWITCH  fiber_context_switch_strict_always_ret, FP_ALWAYS, 1
        SWITCH  fiber_context_switch_strict_cmp_ret, FP_CMP, 1
        SWITCH  fiber_context_switch_lean_ret, FP_LEAN, 1

/* fiber_context_switch_strict(_ret): the policy this CPU got (src/context.c), through a
 * pointer set once at start. Nothing here touches the stack: the unwinder sees the
 * caller's frame, and the switch it jumps to sees the caller's call. */
        .macro  STRICT_ENTRY name, ptr
        .globl  \name
        .type   \name, @function
        .p2align 4
\name:
        .cfi_startproc
        ENDBR
        jmpq    *\ptr(%rip)
        .cfi_endproc
        .size   \name, .-\name
        .endm

        STRICT_ENTRY fiber_context_switch_strict, fiber__strict_switch
        STRICT_ENTRY fiber_context_switch_strict_ret, fiber__strict_switch_ret

/*
 * The scheduler's switch: void name(fiber_context_t *from, fiber_context_t *to).
 * Saves the caller into *from, then resumes *to, where to->sp is either a saved frame
 * or NULL, which marks a fresh fiber whose stack top is `to` itself (the record
 * holding the context sits at the top of the fiber's stack, 16-byte aligned; taking the
 * stack pointer from rsi rather than from memory keeps a load off the critical path:
 * 7 -> 5 ns for a lean start+exit pair here). A fresh fiber is entered by calling
 * fiber__sched_entry(to) on that stack; when it returns,
 * the fiber has finished, and the context it returned is resumed without saving
 * anything (the finished fiber's stack is left to the one resumed to reclaim). The
 * call and its return pair up in the return-stack buffer, and the resume ends with
 * `ret`. sched.c calls it from three sites on x86-64 (sched_switch, join_from_main and
 * fiber_yield's direct swap; fiber_join's own use is SCHED_JOIN below): a ret lands where the return-stack buffer predicts when the
 * fiber resumed was suspended from the same site as the one switching now (every switch
 * of a ping-pong); a fiber parked through sched_switch and resumed by the direct swap
 * mispredicts its ret, a cost switch/fiber/yield/sites=2 shows the like of.
 */
        .macro  SCHED_SWITCH name, fp
        .globl  \name
        .type   \name, @function
        .p2align 5
\name:
        .cfi_startproc
        ENDBR
        SAVE    \fp
        .if     \fp == FP_CMP
        movzwl  4(%rsp), %r8d         /* FP_CMP: r8w is the current x87 word at 4 and 5 */
        .endif
3:      cmpq    $0, (%rsi)
        je      5f
        movq    (%rsi), %rsp
4:      LOAD_REGS \fp, %r8w
        leaq    56(%rsp), %rsp
        CFI_AT_RET
        ret
        /* From here on the code runs on a fiber's own stack, under its entry: the return
         * address is undefined, so unwinders and debuggers stop here. */
        .cfi_undefined rip
5:      movq    %rsp, -16(%rsi)       /* the frame just saved into *from, kept for */
        leaq    -16(%rsi), %rsp       /* the way back (16 below: the call stays aligned) */
        /* A fresh fiber starts with the psABI's default control words, as
         * fiber_context_make gives (FP_CMP: with the current status flags). */
        .if     \fp == FP_ALWAYS
        ldmxcsr fiber__fp_defaults(%rip)
        fldcw   fiber__fp_defaults+4(%rip)
        .elseif \fp == FP_CMP
        LOAD_FP_CMP fiber__fp_defaults(%rip), fiber__fp_defaults+4(%rip), %edx, %r8w
        .endif
        movq    %rsi, %rdi
        xorl    %ebp, %ebp            /* frame-pointer walks stop here */
        callq   fiber__sched_entry
        /* SCHED_JOIN's general end jumps here too, with rsp = f - 16, the context to
         * resume in rax and bit 0 clear (it keeps no frame address at (%rsp)); FP_CMP
         * reads the FP words again rather than trusting r8. */
.L\name\()_ended:
        /* The fiber has finished; rax is the context to resume, without saving this one,
         * with bit 0 set if the fiber never switched away. Then the context that entered
         * it cannot have run since, and if rax is that context (its saved frame is the
         * one kept above: no two suspended contexts share a frame), its callee-saved
         * registers are still in place (fiber__sched_entry preserved them) except rbp:
         * only rsp, rbp and the FP control words are taken back, and rsp comes from this
         * stack instead of a load of to->sp (that load only feeds the predicted branch). */
        testb   $1, %al
        jz      7f
        movq    (%rsp), %rdx
        cmpq    %rdx, -1(%rax)        /* rax - 1: the context */
        jne     6f
        movq    %rdx, %rsp
        CFI_FRAME                     /* the entering context's frame, as saved above */
        movq    48(%rsp), %rbp
        .if     \fp == FP_ALWAYS
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        .elseif \fp == FP_CMP
        /* The finished fiber's words, read through the dead space under the frame. */
        READ_FP %ecx, %r8d
        LOAD_FP_CMP (%rsp), 4(%rsp), %ecx, %r8w
        .endif
        leaq    56(%rsp), %rsp
        CFI_AT_RET
        ret
        .cfi_undefined rip            /* on the finished fiber's stack again */
6:      andq    $-2, %rax
        /* The next context: the same test as at 3, made here so that the notes at 3
         * (a frame saved on entry) never describe the finished fiber's stack. FP_CMP:
         * 4 and 5 want the current MXCSR in edx and x87 word in r8w, as on entry. */
7:
        .if     \fp == FP_CMP
        READ_FP %edx, %r8d
        .endif
        movq    %rax, %rsi
        cmpq    $0, (%rsi)
        je      5b
        movq    (%rsi), %rsp
        CFI_FRAME                     /* its saved frame */
        jmp     4b
        .cfi_endproc
        .size   \name, .-\name
        .endm

        SCHED_SWITCH fiber__sched_switch_strict_always, FP_ALWAYS
        SCHED_SWITCH fiber__sched_switch_strict_cmp, FP_CMP
        SCHED_SWITCH fiber__sched_switch_lean, FP_LEAN

#include "sched_offsets.inc" /* F_*, S_*, FIBER_DONE */

/* The joiner's frame as the run path leaves it on its own stack: the saved frame of the
 * table at the top (64 bytes, its return address .L*_cont), then f, then the return
 * address into fiber_join's caller. The caller's frame (CFA) is 80 bytes up. */
        .macro  CFI_JOIN_FRAME
        .cfi_def_cfa rsp, 80
        .cfi_offset rip, -8
        .cfi_offset rbp, -32
        .cfi_offset rbx, -40
        .cfi_offset r12, -48
        .cfi_offset r13, -56
        .cfi_offset r14, -64
        .cfi_offset r15, -72
        .endm

/* The run path's fast end, back on the joiner's frame, whose address SAVE left in
 * s->main_ctx (rcx = s; the run path's `from` is always &s->main_ctx): its
 * callee-saved registers are still in place (the fiber's function preserved them)
 * except rbp, which the run path zeroed; rbp and the FP control words are taken back.
 *
 * Why the FP words are read back here (FP_CMP: stmxcsr and fnstcw, then compared with
 * the joiner's saved ones) although the fiber never switched away. The psABI makes the
 * MXCSR control bits and the x87 control word callee-saved, and the fiber's function is
 * called from here: entered with the defaults loaded above, a function that keeps to
 * the psABI returns with the defaults still in force, so the fast end could compare the
 * joiner's saved words with fiber__fp_defaults in memory and skip both reads. That was
 * built and measured (issue 10, 2026-12-03, Intel Xeon under KVM, load 110-180):
 * callgrind 130 -> 128 instructions per pooled spawn+join, thread CPU time of the
 * spawn+join loop 15.3 -> 14.7 ns (medians of 14 runs each, A B B A, ranges 14.5-15.9
 * and 13.3-16.1; the lean build without any FP words 15.0 -> 12.9 in the same hour).
 * It was not taken, because it changes what a correct program gets: fiber.h gives
 * each fiber its own rounding mode and masks, so a fiber may set FE_UPWARD and return
 * without restoring it (its words die with it, as a thread's do; the psABI's
 * callee-saved rule is asked of functions that return to a caller whose words they
 * share, which a fiber's function does not); with the elision its joiner would go on
 * computing rounded up - silently, and only when the joiner had the defaults and the
 * run path's fast end served the join (nothing else runnable, no switch away): a leak
 * that depends on timing is worse than the half nanosecond. test_sched's
 * test_fp_words_every_way_back and test_fresh_fiber_fp_state fail on it. A program
 * whose fibers never touch the FP words can link the lean variant (FIBER_LEAN_FP),
 * which reads and writes none of them. */
        .macro  JOIN_RESUME fp
        movq    S_MAIN_CTX(%rcx), %rsp
        CFI_JOIN_FRAME
        movq    48(%rsp), %rbp
        .cfi_restore rbp
        .if     \fp == FP_ALWAYS
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        .elseif \fp == FP_CMP
        /* The finished fiber's words, read through the dead space under the frame. */
        READ_FP %ecx, %r8d
        LOAD_FP_CMP (%rsp), 4(%rsp), %ecx, %r8w
        .endif
        .endm

/*
 * The join's run path: int name(fiber_context_t *from, struct fiber *f), tail-called by
 * fiber_join() - its last step, so it returns to fiber_join's caller - from the main
 * context for a fresh fiber f (never run; its stack top is f itself) that fiber_join has
 * taken off the run queue and made s->current: the pooled spawn+run+join of
 * bench/alloc.c. The same half switch as SCHED_SWITCH's fresh entry, but the fiber's
 * function is called from here, not through fiber__sched_entry(): nothing needs freeing
 * on the way in (the joiner runs, so s->zombie is empty). When the function returns
 * without having switched away (stayed still 1) and left nothing runnable, the fiber's
 * end is written here (live count, current fiber) and the joiner resumed straight
 * away; if the pool's first bucket holds the record's size and its hot slot is free, the
 * record goes there and fiber_join returns 0 from here - nothing else is left of the
 * join - otherwise fiber__join_finish() puts it back. The fast end needs main to be its
 * only joiner and the fiber not detached: a second join and a detach of a joined fiber
 * panic in sched.c. Any other end goes through fiber__sched_exit(), as
 * fiber__sched_entry() would, and SCHED_SWITCH's way back; the joiner's saved frame
 * returns into .L*_cont, so that a joiner resumed by any switch finishes the join in
 * fiber__join_finish(f) (which runs the scheduler until f has ended) and returns its
 * result to fiber_join's caller. The fiber's fn is called with rsp = f - 16: f is
 * rsp + 16 after.
 */
        .macro  SCHED_JOIN name, fp, sw
        .globl  \name
        .type   \name, @function
        .p2align 5
\name:
        .cfi_startproc
        ENDBR
        pushq   %rsi                  /* f, for .L*_cont */
        .cfi_adjust_cfa_offset 8
        leaq    .L\name\()_cont(%rip), %rax
        pushq   %rax                  /* the saved frame's return address */
        .cfi_adjust_cfa_offset 8
        SAVE    \fp
        .if     \fp == FP_CMP
        /* The x87 word: the default loaded only when the one just saved differs (compared
         * in memory, against the constant: no register to load it into first). */
        cmpw    $FP_DEFAULT_CW, 4(%rsp)
        je      .Lcw_default\@
        fldcw   fiber__fp_defaults+4(%rip)
.Lcw_default\@:
        .endif
        /* No copy of the frame's address on this stack (SCHED_SWITCH keeps one at
         * -16(%rsi)): the ends below take it from s->main_ctx, where SAVE put it. */
        leaq    -16(%rsi), %rsp
        .cfi_undefined rip            /* on the fiber's own stack: unwinders stop */
        .if     \fp == FP_ALWAYS
        ldmxcsr fiber__fp_defaults(%rip)
        fldcw   fiber__fp_defaults+4(%rip)
        .elseif \fp == FP_CMP
        LOAD_MX_CMP fiber__fp_defaults(%rip), %edx
        .endif
        movq    F_ARG(%rsi), %rdi
        xorl    %ebp, %ebp            /* frame-pointer walks stop here */
        callq   *F_FN(%rsi)
        cmpb    $0, F_STAYED+16(%rsp)
        je      1f
        movq    F_SCHED+16(%rsp), %rcx
        cmpq    $0, S_RUNQ_HEAD(%rcx)
        jne     1f
        subq    $1, S_LIVE(%rcx)
        movq    $0, S_CURRENT(%rcx)
        movq    F_STACK_HI+16(%rsp), %rax
        subq    F_STACK_LO+16(%rsp), %rax
        cmpq    %rax, S_POOL0_SIZE(%rcx)
        jne     2f
        cmpq    $0, S_POOL0_HOT(%rcx)
        jne     2f
        /* fiber_release(): the record back in the pool. Its state stays as spawn left it:
         * nothing reads a pooled record's state (a stale or second join stops at the
         * joined flag or the handle's tag), and the next spawn writes it. */
        leaq    16(%rsp), %rax
        movq    %rax, S_POOL0_HOT(%rcx)
        JOIN_RESUME \fp
        xorl    %eax, %eax
        leaq    72(%rsp), %rsp
        CFI_AT_RET
        ret
        /* The fiber has ended here, its record not yet in the pool. */
        .cfi_undefined rip            /* on the fiber's stack again */
2:      movb    $FIBER_DONE, F_STATE+16(%rsp) /* fiber__join_finish() reads it */
        JOIN_RESUME \fp
        leaq    64(%rsp), %rsp
        .cfi_def_cfa rsp, 16
        .cfi_restore rbx
        .cfi_restore r12
        .cfi_restore r13
        .cfi_restore r14
        .cfi_restore r15
        popq    %rdi                  /* f */
        .cfi_def_cfa rsp, 8
        jmp     fiber__join_finish
        .cfi_undefined rip            /* on the fiber's stack again */
1:      leaq    16(%rsp), %rdi
        callq   fiber__sched_exit
        /* SCHED_SWITCH's way back, but never its shortcut for a fiber that stayed: that
         * compares the context with the frame address kept at (%rsp), which this path
         * does not keep. Resuming the joiner's saved frame in full is correct always. */
        andq    $-2, %rax
        jmp     .L\sw\()_ended
        .cfi_endproc
        .size   \name, .-\name

/* Where a switch resumes the joiner's frame: rsp points at f, then the return address
 * into fiber_join's caller; the callee-saved registers are the joiner's. The nop keeps
 * the address before the label (what unwinders look up for a return address) in here.
 * A local symbol of its own (name_cont, not exported), typed and sized, so that gdb,
 * perf and addr2line name it instead of attributing it to the function before. */
        .type   \name\()_cont, @function
\name\()_cont:
        .cfi_startproc
        .cfi_def_cfa rsp, 16
        .cfi_offset rip, -8
        nop
.L\name\()_cont:
        popq    %rdi                  /* f */
        .cfi_def_cfa rsp, 8
        jmp     fiber__join_finish
        .cfi_endproc
        .size   \name\()_cont, .-\name\()_cont
        .endm

        SCHED_JOIN fiber__sched_join_strict_always, FP_ALWAYS, fiber__sched_switch_strict_always
        SCHED_JOIN fiber__sched_join_strict_cmp, FP_CMP, fiber__sched_switch_strict_cmp
        SCHED_JOIN fiber__sched_join_lean, FP_LEAN, fiber__sched_switch_lean

        .section .rodata
        .p2align 3
        .type   fiber__fp_defaults, @object
fiber__fp_defaults:
        .long   0x1f80                /* MXCSR: all exceptions masked, round to nearest */
        .short  FP_DEFAULT_CW         /* x87: extended precision, round to nearest */
        .short  0
        .size   fiber__fp_defaults, 8
        .text

/*
 * First entry of a context made by fiber_context_make(): a switch "returned" (or
 * jumped) here with rsp 16-byte aligned, r12 = entry, r13 = arg. The CFI marks the
 * return address as undefined, so debuggers and unwinders stop here instead of walking
 * into whatever lies above the stack.
 */
        .globl  fiber_context_trampoline
        .type   fiber_context_trampoline, @function
        .p2align 4
fiber_context_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        ENDBR
        movq    %r13, %rdi
        callq   *%r12
        /* entry returned: a contract violation (fiber_context.h). */
        callq   fiber__context_returned
        ud2
        .cfi_endproc
        .size   fiber_context_trampoline, .-fiber_context_trampoline

/* GNU property note: x86 feature IBT (see the header comment for why not SHSTK). */
        .section .note.gnu.property, "a"
        .p2align 3
        .long   4                     /* name size */
        .long   16                    /* descriptor size */
        .long   5                     /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000002            /* GNU_PROPERTY_X86_FEATURE_1_AND */
        .long   4                     /* data size */
        .long   1                     /* GNU_PROPERTY_X86_FEATURE_1_IBT */
        .long   0                     /* padding to 8 bytes */

        .section .note.GNU-stack,"",@progbits
