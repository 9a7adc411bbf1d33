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
 * Branch protection. Every switch ends with `ret`, never `br x30`: with BTI enforced
 * (a binary marked BTI maps its code as guarded pages), an indirect `br` must land on a
 * `bti j`/`bti jc` pad, and a return address in C code has none, so `br x30` faults;
 * `ret` is exempt from BTI. The price is that, in a ping-pong between two different call
 * sites, the `ret` pops the return-stack entry pushed by the other side's `bl` and
 * mispredicts; the scheduler calls its switch from one call site, where it predicts
 * exactly (as switch_x86_64.S explains). Boost.Context's jump_arm64_aapcs_elf_gas.S
 * (boostorg/context, commit d2142b6) also ends with `ret x4`. Entry points begin with
 * `bti c` (hint #34, a NOP before Armv8.5), since the switches are called through
 * pointers. PAC (pac-ret) is compatible: the switch saves and restores x30 as the
 * caller's `bl` left it (unsigned), and each C frame signs and authenticates its own
 * return address against its own stack's sp, which a switch never changes for it.
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

/* Saves the callee-saved state into a new frame on the current stack; *x0 = its sp. */
        .macro  SAVE
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
        stp     x29, x30, [sp, #144]
        .cfi_rel_offset x29, 144
        .cfi_rel_offset x30, 152
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
 * fiber_context_t *to). Saves the caller into *from and resumes *to; when to->sp has
 * bit 0 set it is a fresh fiber: its stack top is `to` itself, it is entered by calling
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
        tbnz    x9, #0, 2f
1:      RESUME
        /* From here on the code runs on a fiber's own stack, under its entry: the return
         * address is undefined, so unwinders and debuggers stop here. */
        .cfi_undefined x30
2:      mov     sp, x1
        mov     x0, x1
        mov     x29, #0               /* frame-pointer walks stop here */
        bl      fiber__sched_entry
        /* The fiber has finished; x0 is the next context: the same test as above. */
        mov     x1, x0
        ldr     x9, [x1]
        tbnz    x9, #0, 2b
        b       1b
        .cfi_endproc
        .size   fiber__sched_switch_strict, .-fiber__sched_switch_strict
        .size   fiber__sched_switch_lean, .-fiber__sched_switch_lean

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
