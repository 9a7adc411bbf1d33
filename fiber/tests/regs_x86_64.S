/* Test helpers for test_context.c, test_sched.c and test_run_path.c: drive the switches
 * with known callee-saved values. */
        .text
/* void regs_probe(fiber_context_t *from, fiber_context_t *to, uint64_t out[6])
 * Loads fixed patterns into rbx, rbp, r12-r15, switches from -> to, and once resumed
 * stores those six registers to out[0..5] (rbx, rbp, r12, r13, r14, r15). */
        .globl  regs_probe
        .type   regs_probe, @function
regs_probe:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        pushq   %rdx
        movabsq $0x1111111111111111, %rbx
        movabsq $0x2222222222222222, %rbp
        movabsq $0x3333333333333333, %r12
        movabsq $0x4444444444444444, %r13
        movabsq $0x5555555555555555, %r14
        movabsq $0x6666666666666666, %r15
        callq   fiber_context_switch_strict
        popq    %rdx
        movq    %rbx, 0(%rdx)
        movq    %rbp, 8(%rdx)
        movq    %r12, 16(%rdx)
        movq    %r13, 24(%rdx)
        movq    %r14, 32(%rdx)
        movq    %r15, 40(%rdx)
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        retq
        .cfi_endproc
        .size   regs_probe, .-regs_probe

/* void regs_clobber(fiber_context_t *self, fiber_context_t *back)
 * Fills every callee-saved and caller-saved general register with garbage, then switches
 * self -> back; restores its own caller's registers when resumed. */
        .globl  regs_clobber
        .type   regs_clobber, @function
regs_clobber:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        movabsq $0xdeadbeefdeadbeef, %rax
        movq    %rax, %rbx
        movq    %rax, %rbp
        movq    %rax, %r12
        movq    %rax, %r13
        movq    %rax, %r14
        movq    %rax, %r15
        movq    %rax, %rcx
        movq    %rax, %rdx
        movq    %rax, %r8
        movq    %rax, %r9
        movq    %rax, %r10
        movq    %rax, %r11
        callq   fiber_context_switch_strict
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        retq
        .cfi_endproc
        .size   regs_clobber, .-regs_clobber

/* uint64_t regs_run_probe(void *run, void *a, void *b, uint64_t out[6])
 * Loads the same patterns as regs_probe, calls run(a, b) - for test_run_path.c the
 * join's run path entered directly, with no C frame in between that would save and
 * restore a register on its behalf; for test_sched.c fiber_yield or fiber_join through a
 * one-argument wrapper (b unused) - and stores rbx, rbp, r12-r15 to out[0..5] when it
 * returns; returns what run returned (rax). */
        .globl  regs_run_probe
        .type   regs_run_probe, @function
regs_run_probe:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        pushq   %rcx
        movq    %rdi, %rax
        movq    %rsi, %rdi
        movq    %rdx, %rsi
        movabsq $0x1111111111111111, %rbx
        movabsq $0x2222222222222222, %rbp
        movabsq $0x3333333333333333, %r12
        movabsq $0x4444444444444444, %r13
        movabsq $0x5555555555555555, %r14
        movabsq $0x6666666666666666, %r15
        callq   *%rax
        popq    %rdx
        movq    %rbx, 0(%rdx)
        movq    %rbp, 8(%rdx)
        movq    %r12, 16(%rdx)
        movq    %r13, 24(%rdx)
        movq    %r14, 32(%rdx)
        movq    %r15, 40(%rdx)
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        retq
        .cfi_endproc
        .size   regs_run_probe, .-regs_run_probe

/* void regs_clobber_fn(long *ran)
 * A fiber function as a compiler may make one: counts its run in *ran, then uses every
 * callee-saved register (restoring them, as the psABI requires) and leaves garbage in
 * every caller-saved one, so a run path that kept anything in a caller-saved register
 * across the call, or relied on a register the function happened not to touch, shows. */
        .globl  regs_clobber_fn
        .type   regs_clobber_fn, @function
regs_clobber_fn:
        .cfi_startproc
        addq    $1, (%rdi)
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movabsq $0xdeadbeefdeadbeef, %rax
        movq    %rax, %rbx
        movq    %rax, %rbp
        movq    %rax, %r12
        movq    %rax, %r13
        movq    %rax, %r14
        movq    %rax, %r15
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        movq    %rax, %rcx
        movq    %rax, %rdx
        movq    %rax, %rsi
        movq    %rax, %rdi
        movq    %rax, %r8
        movq    %rax, %r9
        movq    %rax, %r10
        movq    %rax, %r11
        retq
        .cfi_endproc
        .size   regs_clobber_fn, .-regs_clobber_fn

        .section .note.GNU-stack,"",@progbits
