/*
 * floor_x86_64.S - the floor under any stack-switching context switch on x86-64
 * (System V psABI, AT&T syntax): `call`, store rsp, load rsp, `pop` + indirect `jmp`.
 * It saves no register at all, so it is not a usable switch: both sides are the loops
 * below, which keep their state in rdi, rsi and r8 - registers both sides share and
 * never change - so nothing needs saving. fiber_context_switch_lean is this plus six
 * pushes, six pops and an rsp adjustment; the harness reports lean / floor.
 *
 * A peer context is a stack pointer whose top slot holds the address to resume at
 * (peer_floor_make puts peer_floor_peer_loop there).
 */
        .text

/* void peer_floor_pingpong(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds) */
        .globl  peer_floor_pingpong
        .type   peer_floor_pingpong, @function
        .p2align 4
peer_floor_pingpong:
        .cfi_startproc
        testq   %rdx, %rdx
        jz      2f
        movq    %rdx, %r8
        .p2align 4
1:      callq   peer_floor_to_peer
        decq    %r8
        jnz     1b
2:      ret
        .cfi_endproc
        .size   peer_floor_pingpong, .-peer_floor_pingpong

/* self -> peer: rdi = self, rsi = peer */
        .type   peer_floor_to_peer, @function
        .p2align 4
peer_floor_to_peer:
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        popq    %rcx
        jmpq    *%rcx
        .size   peer_floor_to_peer, .-peer_floor_to_peer

/* peer -> self: the same with the roles swapped */
        .type   peer_floor_to_self, @function
        .p2align 4
peer_floor_to_self:
        movq    %rsp, (%rsi)
        movq    (%rdi), %rsp
        popq    %rcx
        jmpq    *%rcx
        .size   peer_floor_to_self, .-peer_floor_to_self

        .globl  peer_floor_peer_loop
        .type   peer_floor_peer_loop, @function
        .p2align 4
peer_floor_peer_loop:
        .cfi_startproc
        .cfi_undefined rip
1:      callq   peer_floor_to_self
        jmp     1b
        .cfi_endproc
        .size   peer_floor_peer_loop, .-peer_floor_peer_loop

        .section .note.GNU-stack,"",@progbits
