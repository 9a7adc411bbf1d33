/*
 * switch_aarch64.S - the fiber context switch for aarch64, AAPCS64.
 *
 * Callee-saved state (AAPCS64 section 6.1.1 and 6.1.2): x19-x28, the frame pointer x29,
 * the link register x30 (it holds our return address), sp, and the low 64 bits of
 * v8-v15 (d8-d15). FPCR is not saved (AAPCS64 treats its rounding mode as global state).
 *
 * The context is just the saved sp. The saved frame, at that sp, lowest address first
 * (160 bytes, a multiple of 16 as sp alignment requires):
 *
 *   offset  contents
 *        0  d8   d9
 *       16  d10  d11
 *       32  d12  d13
 *       48  d14  d15
 *       64  x19  x20   (a new context: x19 = entry function, x20 = its argument)
 *       80  x21  x22
 *       96  x23  x24
 *      112  x25  x26
 *      128  x27  x28
 *      144  x29  x30   (a new context: x29 = 0, x30 = fiber_context_trampoline)
 *      160  the switching caller's frame
 *
 * fiber/src/context.c pins these offsets with _Static_assert and builds new frames.
 * Strict and lean are the same code here: there is no FP control word to carry.
 *
 * Besides the switches: the scheduler's switch, with half switches into a fresh fiber
 * and out of a finished one, and the join's run path (fiber__sched_join_*), which
 * fiber_join() ends in for a fresh fiber it joins from the main context - the same
 * paths, with the same contracts, as switch_x86_64.S's SCHED_SWITCH and SCHED_JOIN.
 *
 * Branch protection. Every switch ends with `ret`, never `br x30`: with BTI enforced
 * (a binary marked BTI maps its code as guarded pages), an indirect `br` must land on a
 * `bti j`/`bti jc` pad, and a return address in C code has none, so `br x30` faults;
 * `ret` is exempt from BTI. The price is that, in a ping-pong between two different call
 * sites, the `ret` pops the return-stack entry pushed by the other side's `bl` and
 * mispredicts; the scheduler calls its switch from one call site, where it predicts
 * exactly (as switch_x86_64.S explains). Boost.Context's jump_arm64_aapcs_elf_gas.S
 * (boostorg/context, commit d2142b6) also ends with `ret x4`. Entry points begin with
 * `bti c` (hint #34, a NOP before Armv8.5), since the switches are called through
 * pointers. Every other indirect branch lands where BTI does not look: a fiber's
 * function is called with `blr` (C functions begin with their own `bti c`), and the
 * join's continuation is reached by a switch's `ret`. PAC (pac-ret) is compatible:
 * the switch saves and restores x30 as the caller's `bl` left it (unsigned), and each
 * C frame signs and authenticates its own return address against its own stack's sp,
 * which a switch never changes for it.
 * The objects are marked BTI and PAC in .note.gnu.property.
 *
 * Unwind information (CFI), for debuggers and sampling profilers stopped anywhere in a
 * switch: SAVE notes each slot as it is stored; RESUME describes the frame it loads
 * from (its caller's frame, CFA, is x9 + 160: from there on the unwinder sees the
 * resumed context, whose callee-saved registers are all in that frame) until sp is
 * moved, after which every register holds its own value and the return address is in
 * x30, as on entry. The scheduler's switch tests a context it comes back to from a
 * finished fiber on that way back, under "return address undefined", not at the label
 * whose notes describe the frame saved on entry; the same instructions run either way.
 */
        .text

        .macro  BTI_C
        hint    #34
        .endm

/* Saves the callee-saved state into a new frame on the current stack; *x0 = its sp.
 * lr is what goes into the x30 slot, the address the frame resumes at: x30 itself, or
 * for the join's run path the joiner's continuation (x30 is then saved elsewhere). */
        .macro  SAVE lr=x30
        sub     sp, sp, #160
        .cfi_adjust_cfa_offset 160
        stp     d8,  d9,  [sp, #0]
        .cfi_rel_offset d8, 0
        .cfi_rel_offset d9, 8
        stp     d10, d11, [sp, #16]
        .cfi_rel_offset d10, 16
        .cfi_rel_offset d11, 24
        stp     d12, d13, [sp, #32]
        .cfi_rel_offset d12, 32
        .cfi_rel_offset d13, 40
        stp     d14, d15, [sp, #48]
        .cfi_rel_offset d14, 48
        .cfi_rel_offset d15, 56
        stp     x19, x20, [sp, #64]
        .cfi_rel_offset x19, 64
        .cfi_rel_offset x20, 72
        stp     x21, x22, [sp, #80]
        .cfi_rel_offset x21, 80
        .cfi_rel_offset x22, 88
        stp     x23, x24, [sp, #96]
        .cfi_rel_offset x23, 96
        .cfi_rel_offset x24, 104
        stp     x25, x26, [sp, #112]
        .cfi_rel_offset x25, 112
        .cfi_rel_offset x26, 120
        stp     x27, x28, [sp, #128]
        .cfi_rel_offset x27, 128
        .cfi_rel_offset x28, 136
        stp     x29, \lr, [sp, #144]
        .cfi_rel_offset x29, 144
        .ifc    \lr, x30
        .cfi_rel_offset x30, 152
        .endif
        mov     x9, sp
        str     x9, [x0]
        .endm

/* Every register back to "holds its own value" (the state on entry). */
        .macro  CFI_RESTORED
        .cfi_restore d8
        .cfi_restore d9
        .cfi_restore d10
        .cfi_restore d11
        .cfi_restore d12
        .cfi_restore d13
        .cfi_restore d14
        .cfi_restore d15
        .cfi_restore x19
        .cfi_restore x20
        .cfi_restore x21
        .cfi_restore x22
        .cfi_restore x23
        .cfi_restore x24
        .cfi_restore x25
        .cfi_restore x26
        .cfi_restore x27
        .cfi_restore x28
        .cfi_restore x29
        .cfi_restore x30
        .endm

/* Resumes the frame at x9: the return address first, then the rest, then `ret`. The
 * slots keep the offsets SAVE noted; only the frame's base moves to x9. */
        .macro  RESUME
        .cfi_def_cfa x9, 160
        ldp     x29, x30, [x9, #144]
        ldp     d8,  d9,  [x9, #0]
        ldp     d10, d11, [x9, #16]
        ldp     d12, d13, [x9, #32]
        ldp     d14, d15, [x9, #48]
        ldp     x19, x20, [x9, #64]
        ldp     x21, x22, [x9, #80]
        ldp     x23, x24, [x9, #96]
        ldp     x25, x26, [x9, #112]
        ldp     x27, x28, [x9, #128]
        add     sp, x9, #160
        .cfi_def_cfa sp, 0
        CFI_RESTORED
        ret
        .endm

        .globl  fiber_context_switch_strict
        .type   fiber_context_switch_strict, %function
        .globl  fiber_context_switch_lean
        .type   fiber_context_switch_lean, %function
        .globl  fiber_context_switch_strict_ret
        .type   fiber_context_switch_strict_ret, %function
        .globl  fiber_context_switch_lean_ret
        .type   fiber_context_switch_lean_ret, %function
        .p2align 4
fiber_context_switch_strict:
fiber_context_switch_lean:
fiber_context_switch_strict_ret:
fiber_context_switch_lean_ret:
        .cfi_startproc
        BTI_C
        SAVE
        ldr     x9, [x1]
        RESUME
        .cfi_endproc
        .size   fiber_context_switch_strict, .-fiber_context_switch_strict
        .size   fiber_context_switch_lean, .-fiber_context_switch_lean
        .size   fiber_context_switch_strict_ret, .-fiber_context_switch_strict_ret
        .size   fiber_context_switch_lean_ret, .-fiber_context_switch_lean_ret

/*
 * The scheduler's switch: void fiber__sched_switch_*(fiber_context_t *from,
 * fiber_context_t *to). Saves the caller into *from and resumes *to; when to->sp is
 * NULL it is a fresh fiber: its stack top is `to` itself, it is entered by calling
 * fiber__sched_entry(to) there, and the context that call returns (the fiber has then
 * finished) is resumed without saving anything. switch_x86_64.S says why.
 */
        .globl  fiber__sched_switch_strict
        .type   fiber__sched_switch_strict, %function
        .globl  fiber__sched_switch_lean
        .type   fiber__sched_switch_lean, %function
        .p2align 4
fiber__sched_switch_strict:
fiber__sched_switch_lean:
        .cfi_startproc
        BTI_C
        SAVE
        ldr     x9, [x1]
        cbz     x9, 2f
1:      RESUME
        /* From here on the code runs on a fiber's own stack, under its entry: the return
         * address is undefined, so unwinders and debuggers stop here. */
        .cfi_undefined x30
2:      mov     sp, x1
        mov     x0, x1
        mov     x29, #0               /* frame-pointer walks stop here */
        bl      fiber__sched_entry
        /* The fiber has finished; x0 is the next context: the same test as above. The
         * join's run path (below) comes here too when its fiber cannot end there. */
.Lsched_ended:
        mov     x1, x0
        ldr     x9, [x1]
        cbz     x9, 2b
        b       1b
        .cfi_endproc
        .size   fiber__sched_switch_strict, .-fiber__sched_switch_strict
        .size   fiber__sched_switch_lean, .-fiber__sched_switch_lean

#include "sched_offsets.inc" /* F_*, S_*, FIBER_DONE */

/*
 * The join's run path: int fiber__sched_join_*(fiber_context_t *from, struct fiber *f),
 * tail-called by fiber_join() - its last step, so it returns to fiber_join's caller -
 * from the main context for a fresh fiber f (never run; its stack top is f itself) that
 * fiber_join has taken off the run queue and made s->current, with from = &s->main_ctx:
 * the pooled spawn+run+join of bench/alloc.c. switch_x86_64.S (SCHED_JOIN) is the
 * model and says why; this is the same path in AAPCS64:
 *   - the joiner's frame is SAVE's, but its x30 slot holds the continuation below
 *     (fiber__sched_join_cont), and the joiner's own x30 (the return into fiber_join's
 *     caller) sits above it with f: [sp+160] f, [sp+168] x30. Any switch that resumes
 *     the frame returns into the continuation, which finishes the join in
 *     fiber__join_finish(f) and returns from there;
 *   - sp = f, x29 = 0 (frame-pointer walks stop), and the fiber's function is called
 *     from here (nothing to free on the way in: the joiner runs, so s->zombie is
 *     empty). sp is callee-saved, so f is sp again when it returns;
 *   - fast end: the fiber never switched away (stayed still 1) and left nothing
 *     runnable. Its end is written here (live count, current fiber); if the pool's
 *     first bucket holds stacks of its size and the hot slot is free, the record goes
 *     there and 0 is returned from here, else the state is set to done and
 *     fiber__join_finish() puts the record back. The joiner's x19-x28 and d8-d15 are
 *     still in place (the function preserved them, AAPCS64 6.1.1); only x29 (zeroed
 *     above), x30 and sp are taken back from the frame. FPCR is not touched, as no
 *     switch here touches it (the header);
 *   - general end (the fiber switched away, or left others runnable): through
 *     fiber__sched_exit(), as fiber__sched_entry() would, and the scheduler switch's
 *     way back, which resumes a context in full.
 * Strict and lean are one function, as for the switches. The fast end needs main to be
 * f's only joiner and f not detached: sched.c panics on a second join or a detach of a
 * joined fiber. What it saves, counted under qemu-user (scripts/aarch64_insns.sh: every
 * executed instruction of a fiber_join(fiber_spawn(empty)) loop): 180 instructions per
 * pooled spawn+join through fiber__sched_switch and fiber__sched_entry, 126 with this
 * path (here 43, fiber_join 38, fiber_spawn 37, the loop and the function 8), 117 since
 * fiber_join tests one attention word and the run queue's tail, a fresh context is a
 * NULL sp, and the handle's tag carry is a branch (here 43, fiber_join 33, fiber_spawn
 * 33); x86-64's callgrind count of the same loop went 127 -> 121. No aarch64 hardware
 * measured its time.
 */
        .globl  fiber__sched_join_strict
        .type   fiber__sched_join_strict, %function
        .globl  fiber__sched_join_lean
        .type   fiber__sched_join_lean, %function
        .p2align 4
fiber__sched_join_strict:
fiber__sched_join_lean:
        .cfi_startproc
        BTI_C
        stp     x1, x30, [sp, #-16]!  /* f and the return address, for the ends below */
        .cfi_adjust_cfa_offset 16
        .cfi_rel_offset x30, 8
        adr     x10, .Lfiber__sched_join_cont
        SAVE    x10
        ldp     x9, x0, [x1, #F_FN]   /* fn, arg */
        mov     sp, x1
        /* From here on the code runs on the fiber's own stack, under its entry: the
         * return address is undefined, so unwinders and debuggers stop here. */
        .cfi_undefined x30
        mov     x29, #0               /* frame-pointer walks stop here */
        blr     x9
        ldrb    w9, [sp, #F_STAYED]
        ldr     x10, [sp, #F_SCHED]
        cbz     w9, 1f                /* it switched away */
        ldr     x9, [x10, #S_RUNQ_HEAD]
        cbnz    x9, 1f                /* it left another fiber runnable */
        ldr     x9, [x10, #S_LIVE]
        ldp     x11, x12, [sp, #F_STACK_LO]
        sub     x9, x9, #1
        str     xzr, [x10, #S_CURRENT]
        str     x9, [x10, #S_LIVE]
        sub     x11, x12, x11         /* the stack's size */
        ldp     x12, x13, [x10, #S_POOL0_SIZE] /* the first bucket's size, its hot slot */
        cmp     x12, x11
        ccmp    x13, #0, #0, eq       /* ne: another size, or the hot slot is taken */
        b.ne    2f
        /* fiber_release(): the record back in the pool. Its state stays as spawn left it:
         * nothing reads a pooled record's state (a stale or second join stops at the
         * joined flag or the handle's tag), and the next spawn writes it. */
        mov     x9, sp
        str     x9, [x10, #S_POOL0_HOT]
        ldr     x9, [x10, #S_MAIN_CTX] /* the joiner's frame, as SAVE stored it */
        .cfi_remember_state
        .cfi_def_cfa x9, 176          /* its slots keep the offsets SAVE noted */
        .cfi_offset x30, -8
        ldr     x29, [x9, #144]
        ldr     x30, [x9, #168]
        add     sp, x9, #176
        .cfi_def_cfa sp, 0
        CFI_RESTORED
        mov     w0, #0
        ret
        .cfi_restore_state
        /* The fiber has ended here, its record not yet in the pool. */
2:      mov     w9, #FIBER_DONE
        strb    w9, [sp, #F_STATE]    /* fiber__join_finish() reads it */
        ldr     x9, [x10, #S_MAIN_CTX]
        .cfi_remember_state
        .cfi_def_cfa x9, 176
        .cfi_offset x30, -8
        ldr     x29, [x9, #144]
        ldp     x0, x30, [x9, #160]   /* f, the return address */
        add     sp, x9, #176
        .cfi_def_cfa sp, 0
        CFI_RESTORED
        b       fiber__join_finish
        .cfi_restore_state
1:      mov     x0, sp
        bl      fiber__sched_exit
        b       .Lsched_ended         /* x0: the context to resume, in full */
        .cfi_endproc
        .size   fiber__sched_join_strict, .-fiber__sched_join_strict
        .size   fiber__sched_join_lean, .-fiber__sched_join_lean

/* Where a switch resumes the joiner's frame (RESUME's `ret`, which BTI does not check,
 * so no landing pad): sp points at f, then the return address into fiber_join's caller;
 * the callee-saved registers and x29 are the joiner's. The nop keeps the address before
 * the label (what unwinders look up for a return address) in here; a local symbol of
 * its own, typed and sized, so that gdb, perf and addr2line name it. */
        .type   fiber__sched_join_cont, %function
fiber__sched_join_cont:
        .cfi_startproc
        .cfi_def_cfa sp, 16
        .cfi_offset x30, -8
        nop
.Lfiber__sched_join_cont:
        ldp     x0, x30, [sp], #16    /* f, the return address */
        .cfi_def_cfa sp, 0
        .cfi_restore x30
        b       fiber__join_finish
        .cfi_endproc
        .size   fiber__sched_join_cont, .-fiber__sched_join_cont

/*
 * First entry of a context made by fiber_context_make(): x19 = entry, x20 = arg. It is
 * reached by the switch's `ret`, which BTI does not check, so it needs no landing pad.
 * The CFI marks the return address (x30) undefined so unwinders stop here.
 */
        .globl  fiber_context_trampoline
        .type   fiber_context_trampoline, %function
        .p2align 4
fiber_context_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x20
        blr     x19
        bl      fiber__context_returned
        brk     #0
        .cfi_endproc
        .size   fiber_context_trampoline, .-fiber_context_trampoline

/* GNU property note: this code is BTI- and PAC-compatible (see the header comment). */
        .section .note.gnu.property, "a"
        .p2align 3
        .long   4                     /* name size */
        .long   16                    /* descriptor size */
        .long   5                     /* NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000000            /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
        .long   4                     /* data size */
        .long   3                     /* BTI (1) | PAC (2) */
        .long   0                     /* padding to 8 bytes */

        .section .note.GNU-stack,"",%progbits
