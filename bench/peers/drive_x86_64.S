/*
 * drive_x86_64.S - ping-pong loops in assembly around the C-callable switches, so that
 * the code layout is the same for every switcher measured and chosen on purpose.
 *
 * Why: fiber_context_switch ends with pop + indirect jmp, and a ping-pong makes that one
 * jmp alternate between two targets, the two return addresses. With the ping-pong
 * loops written in C, one build of bench_switch measured the lean switch at ~10 ns and
 * another, after an unrelated edit that moved code by a few bytes, at ~5 ns (return
 * addresses 0x52e3 and 0x53e3 were slow; 0x52ea and 0x53e3 fast), on the AMD EPYC
 * (KVM) this suite was written on; the exact rule was not found (equal addresses modulo
 * 4 KiB, or 0x100 apart in one page, from assembly, are not slow). So every switcher
 * gets the same layout here: the loops start on 4 KiB boundaries, the peer's 0x540
 * bytes further, and none of it moves when C code changes. Boost.Context gets it too.
 *
 * Both sides keep their loop state in callee-saved registers (r12, r13, r15), which
 * every switch measured here saves and restores per context.
 */
        .text

/* Fills up to a 4 KiB boundary, then skips `off` bytes, with nops. */
        .macro  LOOP_AT off
        .p2align 12, 0x90
        .if     \off
        .skip   \off, 0x90
        .endif
        .endm

/*
 * void peer_drive_run(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
 *                     void (*sw)(fiber_context_t *, fiber_context_t *))
 * rounds > 0 round trips: sw(self, peer), which comes back when the peer switches back.
 */
        .globl  peer_drive_run
        .type   peer_drive_run, @function
peer_drive_run:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rdi, %r12
        movq    %rsi, %r13
        movq    %rdx, %r14
        movq    %rcx, %r15
        jmp     1f
        LOOP_AT 0
1:      movq    %r12, %rdi
        movq    %r13, %rsi
        callq   *%r15
        decq    %r14
        jnz     1b
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbp
        .cfi_def_cfa %rsp, 8
        ret
        .cfi_endproc
        .size   peer_drive_run, .-peer_drive_run


/*
 * The peer side, as the entry of a context made with fiber_context_make:
 * void peer_drive_entry_apart(struct peer_drive *d)
 * where struct peer_drive { fiber_context_t *self, *peer; void (*sw)(...); }.
 * Loops forever on sw(peer, self).
 */
        .macro  PEER_ENTRY name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        .cfi_undefined rip
        movq    8(%rdi), %r12
        movq    0(%rdi), %r13
        movq    16(%rdi), %r15
        jmp     2f
        LOOP_AT \off
2:      movq    %r12, %rdi
        movq    %r13, %rsi
        callq   *%r15
        jmp     2b
        .cfi_endproc
        .size   \name, .-\name
        .endm

        PEER_ENTRY peer_drive_entry_apart, 0x540

/*
 * Boost.Context, same layout as "apart".
 * void *peer_boost_drive(void *peer_fctx, uint64_t rounds): returns the peer's fctx
 * after the rounds. jump_fcontext(to, data) returns transfer_t {fctx, data} in rax:rdx.
 */
        .globl  peer_boost_drive
        .type   peer_boost_drive, @function
peer_boost_drive:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        pushq   %r12
        pushq   %r14
        movq    %rdi, %r12
        movq    %rsi, %r14
        jmp     3f
        LOOP_AT 0
3:      movq    %r12, %rdi
        xorl    %esi, %esi
        callq   jump_fcontext@PLT
        movq    %rax, %r12
        decq    %r14
        jnz     3b
        movq    %r12, %rax
        popq    %r14
        popq    %r12
        popq    %rbp
        .cfi_def_cfa %rsp, 8
        ret
        .cfi_endproc
        .size   peer_boost_drive, .-peer_boost_drive

/* The Boost peer's entry: void peer_boost_drive_entry(transfer_t t), t.fctx in rdi. */
        .globl  peer_boost_drive_entry
        .type   peer_boost_drive_entry, @function
peer_boost_drive_entry:
        .cfi_startproc
        .cfi_undefined rip
        jmp     4f
        LOOP_AT 0x540
4:      movq    %rdi, %r12
        movq    %r12, %rdi
        xorl    %esi, %esi
        callq   jump_fcontext@PLT
        movq    %rax, %rdi
        jmp     4b
        .cfi_endproc
        .size   peer_boost_drive_entry, .-peer_boost_drive_entry

        .section .note.GNU-stack,"",@progbits
