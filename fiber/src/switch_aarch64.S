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
 * We end with `br x30` rather than `ret`: `ret` would consume the return-stack entry
 * pushed by the old context's `bl` and mispredict on every switch.
 * Strict and lean are the same code here: there is no FP control word to carry.
 */
        .text

        .globl  fiber_context_switch_strict
        .type   fiber_context_switch_strict, %function
        .globl  fiber_context_switch_lean
        .type   fiber_context_switch_lean, %function
        .p2align 4
fiber_context_switch_strict:
fiber_context_switch_lean:
        .cfi_startproc
        sub     sp, sp, #160
        stp     d8,  d9,  [sp, #0]
        stp     d10, d11, [sp, #16]
        stp     d12, d13, [sp, #32]
        stp     d14, d15, [sp, #48]
        stp     x19, x20, [sp, #64]
        stp     x21, x22, [sp, #80]
        stp     x23, x24, [sp, #96]
        stp     x25, x26, [sp, #112]
        stp     x27, x28, [sp, #128]
        stp     x29, x30, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     d8,  d9,  [sp, #0]
        ldp     d10, d11, [sp, #16]
        ldp     d12, d13, [sp, #32]
        ldp     d14, d15, [sp, #48]
        ldp     x19, x20, [sp, #64]
        ldp     x21, x22, [sp, #80]
        ldp     x23, x24, [sp, #96]
        ldp     x25, x26, [sp, #112]
        ldp     x27, x28, [sp, #128]
        ldp     x29, x30, [sp, #144]
        add     sp, sp, #160
        br      x30
        .cfi_endproc
        .size   fiber_context_switch_strict, .-fiber_context_switch_strict
        .size   fiber_context_switch_lean, .-fiber_context_switch_lean

/*
 * First entry of a new context: x19 = entry, x20 = arg. The CFI marks the return address
 * (x30) undefined so unwinders stop here.
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

        .section .note.GNU-stack,"",%progbits
