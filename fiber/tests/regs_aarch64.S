/* Test helpers for aarch64_test.c, test_run_path.c and test_sched.c: drive the switches
 * and the join's run path with known callee-saved values. */
        .text

/* The callee-saved registers x19-x30 and d8-d15 to and from [sp, #0..159], and one
 * value (in x9) into x19-x28 / d8-d15: the helpers below all start and end this way. */
        .macro  SAVE_CALLEE
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
        .endm
        .macro  RESTORE_CALLEE
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
        .endm
        .macro  FILL_X19_X28_FROM_X9
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
        .endm
        .macro  FILL_D8_D15_FROM_X9
        fmov    d8, x9
        fmov    d9, x9
        fmov    d10, x9
        fmov    d11, x9
        fmov    d12, x9
        fmov    d13, x9
        fmov    d14, x9
        fmov    d15, x9
        .endm

/* void regs_probe(fiber_context_t *from, fiber_context_t *to, uint64_t out[18])
 * Loads patterns into x19-x28 and d8-d15, switches, stores them to out[0..17]. */
        .globl  regs_probe
        .type   regs_probe, %function
regs_probe:
        sub     sp, sp, #176
        SAVE_CALLEE
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
        RESTORE_CALLEE
        add     sp, sp, #176
        ret
        .size   regs_probe, .-regs_probe

/* void regs_clobber(fiber_context_t *self, fiber_context_t *back): garbage in every
 * callee-saved register, switch back, restore. */
        .globl  regs_clobber
        .type   regs_clobber, %function
regs_clobber:
        sub     sp, sp, #160
        SAVE_CALLEE
        mov     x9, #0xdead
        FILL_X19_X28_FROM_X9
        FILL_D8_D15_FROM_X9
        bl      fiber_context_switch_strict
        RESTORE_CALLEE
        add     sp, sp, #160
        ret
        .size   regs_clobber, .-regs_clobber

/* uint64_t regs_run_probe(void *run, void *a, void *b, uint64_t out[19])
 * Loads the patterns of regs_patterns.h into x19-x29 and d8-d15, calls run(a, b) - for
 * test_run_path.c the join's run path entered directly, with no C frame in between that
 * would save and restore a register on its behalf; for test_sched.c fiber_yield or
 * fiber_join through a one-argument wrapper - and stores x19-x28, x29, d8-d15 to
 * out[0..18] when it returns; returns what run returned (x0). */
        .globl  regs_run_probe
        .type   regs_run_probe, %function
regs_run_probe:
        sub     sp, sp, #176
        SAVE_CALLEE
        str     x3,       [sp, #160]
        mov     x9, x0
        mov     x0, x1
        mov     x1, x2
        ldr     x19, =0x1919191919191919
        ldr     x20, =0x2020202020202020
        ldr     x21, =0x2121212121212121
        ldr     x22, =0x2222222222222222
        ldr     x23, =0x2323232323232323
        ldr     x24, =0x2424242424242424
        ldr     x25, =0x2525252525252525
        ldr     x26, =0x2626262626262626
        ldr     x27, =0x2727272727272727
        ldr     x28, =0x2828282828282828
        ldr     x29, =0x2929292929292929
        ldr     x10, =0x0808080808080808
        fmov    d8, x10
        ldr     x10, =0x0909090909090909
        fmov    d9, x10
        ldr     x10, =0x1010101010101010
        fmov    d10, x10
        ldr     x10, =0x1111111111111111
        fmov    d11, x10
        ldr     x10, =0x1212121212121212
        fmov    d12, x10
        ldr     x10, =0x1313131313131313
        fmov    d13, x10
        ldr     x10, =0x1414141414141414
        fmov    d14, x10
        ldr     x10, =0x1515151515151515
        fmov    d15, x10
        blr     x9
        ldr     x3, [sp, #160]
        stp     x19, x20, [x3, #0]
        stp     x21, x22, [x3, #16]
        stp     x23, x24, [x3, #32]
        stp     x25, x26, [x3, #48]
        stp     x27, x28, [x3, #64]
        str     x29,      [x3, #80]
        stp     d8,  d9,  [x3, #88]
        stp     d10, d11, [x3, #104]
        stp     d12, d13, [x3, #120]
        stp     d14, d15, [x3, #136]
        RESTORE_CALLEE
        add     sp, sp, #176
        ret
        .ltorg
        .size   regs_run_probe, .-regs_run_probe

/* void regs_clobber_fn(long *ran)
 * A fiber function as a compiler may make one: counts its run in *ran, then uses every
 * callee-saved register (restoring them, as AAPCS64 requires: d8-d15 only in their low
 * 64 bits, so the upper halves of v8-v15 stay garbage) and leaves garbage in every
 * caller-saved one, so a run path that kept anything in a caller-saved register across
 * the call, or relied on a register the function happened not to touch, shows. */
        .globl  regs_clobber_fn
        .type   regs_clobber_fn, %function
regs_clobber_fn:
        ldr     x9, [x0]
        add     x9, x9, #1
        str     x9, [x0]
        sub     sp, sp, #160
        SAVE_CALLEE
        ldr     x9, =0xdeadbeefdeadbeef
        FILL_X19_X28_FROM_X9
        mov     x29, x9
        FILL_D8_D15_FROM_X9
        RESTORE_CALLEE
        add     sp, sp, #160
        mov     v8.d[1], x9
        mov     v9.d[1], x9
        mov     v10.d[1], x9
        mov     v11.d[1], x9
        mov     v12.d[1], x9
        mov     v13.d[1], x9
        mov     v14.d[1], x9
        mov     v15.d[1], x9
        mov     x0, x9
        mov     x1, x9
        mov     x2, x9
        mov     x3, x9
        mov     x4, x9
        mov     x5, x9
        mov     x6, x9
        mov     x7, x9
        mov     x8, x9
        mov     x10, x9
        mov     x11, x9
        mov     x12, x9
        mov     x13, x9
        mov     x14, x9
        mov     x15, x9
        mov     x16, x9
        mov     x17, x9
        fmov    d0, x9
        fmov    d1, x9
        fmov    d2, x9
        fmov    d3, x9
        fmov    d4, x9
        fmov    d5, x9
        fmov    d6, x9
        fmov    d7, x9
        fmov    d16, x9
        fmov    d31, x9
        ret
        .ltorg
        .size   regs_clobber_fn, .-regs_clobber_fn

        .section .note.GNU-stack,"",%progbits
