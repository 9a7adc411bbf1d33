/*
 * switch_x86_64.S - the fiber context switch for x86-64, System V psABI, AT&T syntax.
 *
 * Callee-saved state (psABI 1.0, section 3.2.1 and figure 3.4): rbx, rbp, r12-r15, rsp,
 * the MXCSR control bits and the x87 control word. Everything else is caller-saved, so
 * a call to the switch may clobber it.
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
 * Both variants use the same 64-byte layout, so the cost difference between them is the
 * FP control save/restore alone.
 *
 * Return-address prediction: a `ret` after the stack swap would pop the return stack
 * buffer entry pushed by the *old* context's call and mispredict on every switch. We end
 * with pop + indirect jmp instead, which the indirect predictor learns from history.
 */
        .text

        .globl  fiber_context_switch_strict
        .type   fiber_context_switch_strict, @function
        .p2align 4
fiber_context_switch_strict:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        popq    %rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   fiber_context_switch_strict, .-fiber_context_switch_strict

        .globl  fiber_context_switch_lean
        .type   fiber_context_switch_lean, @function
        .p2align 4
fiber_context_switch_lean:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        popq    %rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   fiber_context_switch_lean, .-fiber_context_switch_lean

/*
 * First entry of a new context. The switch "returned" here with rsp 16-byte aligned,
 * r12 = entry, r13 = arg. The CFI marks the return address as undefined, so debuggers
 * and unwinders stop here instead of walking into whatever lies above the stack.
 */
        .globl  fiber_context_trampoline
        .type   fiber_context_trampoline, @function
        .p2align 4
fiber_context_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        /* entry returned: a contract violation (fiber_context.h). */
        callq   fiber__context_returned
        ud2
        .cfi_endproc
        .size   fiber_context_trampoline, .-fiber_context_trampoline

        .section .note.GNU-stack,"",@progbits
