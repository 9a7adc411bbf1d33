/* Test helpers for aarch64_test.c: drive the switch with known callee-saved values. */
        .text
/* void regs_probe(fiber_context_t *from, fiber_context_t *to, uint64_t out[18])
 * Loads patterns into x19-x28 and d8-d15, switches, stores them to out[0..17]. */
        .globl  regs_probe
        .type   regs_probe, %function
regs_probe:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        str     x2,       [sp, #160]
        mov     x19, #0x19
        mov     x20, #0x20
        mov     x21, #0x21
        mov     x22, #0x22
        mov     x23, #0x23
        mov     x24, #0x24
        mov     x25, #0x25
        mov     x26, #0x26
        mov     x27, #0x27
        mov     x28, #0x28
        mov     x9, #0x108
        fmov    d8, x9
        mov     x9, #0x109
        fmov    d9, x9
        mov     x9, #0x110
        fmov    d10, x9
        mov     x9, #0x111
        fmov    d11, x9
        mov     x9, #0x112
        fmov    d12, x9
        mov     x9, #0x113
        fmov    d13, x9
        mov     x9, #0x114
        fmov    d14, x9
        mov     x9, #0x115
        fmov    d15, x9
        bl      fiber_context_switch_strict
        ldr     x2, [sp, #160]
        stp     x19, x20, [x2, #0]
        stp     x21, x22, [x2, #16]
        stp     x23, x24, [x2, #32]
        stp     x25, x26, [x2, #48]
        stp     x27, x28, [x2, #64]
        stp     d8,  d9,  [x2, #80]
        stp     d10, d11, [x2, #96]
        stp     d12, d13, [x2, #112]
        stp     d14, d15, [x2, #128]
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        ret
        .size   regs_probe, .-regs_probe

/* void regs_clobber(fiber_context_t *self, fiber_context_t *back): garbage in every
 * callee-saved register, switch back, restore. */
        .globl  regs_clobber
        .type   regs_clobber, %function
regs_clobber:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, #0xdead
        mov     x19, x9
        mov     x20, x9
        mov     x21, x9
        mov     x22, x9
        mov     x23, x9
        mov     x24, x9
        mov     x25, x9
        mov     x26, x9
        mov     x27, x9
        mov     x28, x9
        fmov    d8, x9
        fmov    d9, x9
        fmov    d10, x9
        fmov    d11, x9
        fmov    d12, x9
        fmov    d13, x9
        fmov    d14, x9
        fmov    d15, x9
        bl      fiber_context_switch_strict
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   regs_clobber, .-regs_clobber

        .section .note.GNU-stack,"",%progbits
