/*
 * drive_x86_64.S - ping-pong loops in assembly around the switches measured by
 * bench/switch.c, at code layouts chosen on purpose, so that a layout artefact shows up
 * as spread between layouts instead of hiding in one build.
 *
 * Why: a switch that ends with an indirect jump makes that one jump alternate between
 * two targets, the two return addresses of a ping-pong, and how well that predicts can
 * depend on where they land. With the loops written in C, one build of bench_switch
 * measured the lean switch at ~10 ns and another, after an unrelated edit that moved
 * code by a few bytes, at ~5 ns (return addresses 0x52e3 and 0x53e3 were slow; 0x52ea
 * and 0x53e3 fast) on the AMD EPYC (KVM) this suite was written on. On an Intel Xeon
 * the old strict switch went from 3.9 to 35-63 ns with nothing but the return
 * addresses moved (fiberbench issue 10). So every switcher runs at every layout below,
 * each loop placed at a fixed offset past a 4 KiB boundary (the return address of a
 * loop's call is its start + 9):
 *   c0  run +0x000, peer +0x540   the layout used since the start (the headline rows)
 *   c1  run +0x000, peer +0x000   both return addresses equal modulo 4 KiB
 *   c2  run +0x1e7, peer +0x1f7   return addresses 16 bytes apart modulo 4 KiB, each
 *                                 right at a 16-byte boundary (0x1f0, 0x200)
 *   c3  run +0x2da, peer +0x3da   return addresses ...2e3 and ...3e3, the slow pair
 *                                 recorded on the AMD EPYC with C loops
 *   c4  run +0x7f8, peer +0xbf8   each call straddles a 64-byte boundary (and a 32-byte
 *                                 one: the Intel JCC-erratum case for the call)
 *   c5  run +0x2db, peer +0x3db   return addresses ...2e4 and ...3e4: where a single
 *                                 alternating jmp aliases for Boost's loops (below)
 *   c6  run +0x4c6, peer +0x506   return addresses ...4cf and ...50f, 0x40 apart: the
 *                                 c3 aliasing at another distance
 * On the AMD EPYC (Zen 4) here a switch ending in one indirect jmp shared by both
 * directions mispredicted on every switch (+5-6 ns) whenever the two return addresses
 * were congruent modulo 64 at one phase modulo 4, which depends on the code after the
 * return address: 3 for the fiber loops (c3, c6), 0 for Boost's, whose loop has one
 * more instruction there (c5; c2 too in some builds). fiber/src/switch_x86_64.S says
 * how the runtime's switch avoids it.
 * Every switcher - our switches through a function pointer, Boost.Context's
 * jump_fcontext, the pop+jmp floor - gets the same loops.
 *
 * Both sides keep their loop state in callee-saved registers (r12, r13, r15), which
 * every switch measured here saves and restores per context. Control-flow enforcement:
 * entry points begin with endbr64, the floor's jumps to return addresses carry NOTRACK,
 * and the object is marked IBT like fiber/src/switch_x86_64.S.
 */
        .text

        .macro  ENDBR
        .byte   0xf3, 0x0f, 0x1e, 0xfa
        .endm

/* Fills up to a 4 KiB boundary, then skips `off` bytes, with nops. */
        .macro  LOOP_AT off
        .p2align 12, 0x90
        .if     \off
        .skip   \off, 0x90
        .endif
        .endm

/*
 * void peer_drive_run_<L>(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
 *                         void (*sw)(fiber_context_t *, fiber_context_t *))
 * rounds > 0 round trips: sw(self, peer), which comes back when the peer switches back.
 */
        .macro  DRIVE_RUN name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        ENDBR
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
        LOOP_AT \off
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
        .size   \name, .-\name
        .endm

/*
 * The peer side, as the entry of a context made with fiber_context_make:
 * void peer_drive_entry_<L>(struct peer_drive *d)
 * where struct peer_drive { fiber_context_t *self, *peer; void (*sw)(...); }.
 * Loops forever on sw(peer, self).
 */
        .macro  DRIVE_ENTRY name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        .cfi_undefined rip
        ENDBR
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

/*
 * Boost.Context, the same loops around jump_fcontext (called through the PLT: the way a
 * program linking libboost_context.so calls it).
 * void *peer_boost_drive_<L>(void *peer_fctx, uint64_t rounds): returns the peer's fctx
 * after the rounds. jump_fcontext(to, data) returns transfer_t {fctx, data} in rax:rdx.
 * The call sequence is padded to end at +9 like the fiber loops', so the return
 * addresses land at the same offsets; the data argument is left as it is (unused).
 */
        .macro  BOOST_RUN name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        ENDBR
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
        LOOP_AT \off
3:      movq    %r12, %rdi            /* 3 bytes; rsi (data) is not used by the peer */
        nop                           /* 1 byte: the call (5 bytes) ends at +9 */
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
        .size   \name, .-\name
        .endm

/* The Boost peer's entry: void peer_boost_drive_entry_<L>(transfer_t t), t.fctx in rdi. */
        .macro  BOOST_ENTRY name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        .cfi_undefined rip
        ENDBR
        jmp     4f
        LOOP_AT \off
4:      nop                           /* rdi = the fctx to jump back to */
        nop
        nop
        nop                           /* 4 bytes: the call (5 bytes) ends at +9 */
        callq   jump_fcontext@PLT
        movq    %rax, %rdi
        jmp     4b
        .cfi_endproc
        .size   \name, .-\name
        .endm

/*
 * The floor: `call`, store rsp, load rsp, `pop` + indirect `jmp`, and no register saved
 * at all - not a usable switch, only the least any stack-switching switch must do. Both
 * sides are the loops below, which keep their state in rdi, rsi and r8 (registers both
 * sides share and never change), so nothing needs saving. A peer context is a stack
 * pointer whose top slot holds the address to resume at (peer_floor_make puts the
 * layout's peer loop there).
 * void peer_floor_pingpong_<L>(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds)
 */
        .macro  FLOOR_RUN name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        ENDBR
        testq   %rdx, %rdx
        jz      6f
        movq    %rdx, %r8
        jmp     5f
        LOOP_AT \off
5:      nop
        nop
        nop
        nop                           /* 4 bytes of nops: the call (5 bytes) ends at +9 */
        callq   peer_floor_to_peer
        decq    %r8
        jnz     5b
6:      ret
        .cfi_endproc
        .size   \name, .-\name
        .endm

        .macro  FLOOR_LOOP name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        .cfi_undefined rip
        ENDBR
        jmp     7f
        LOOP_AT \off
7:      nop
        nop
        nop
        nop
        callq   peer_floor_to_self
        jmp     7b
        .cfi_endproc
        .size   \name, .-\name
        .endm

/* self -> peer: rdi = self, rsi = peer */
        .type   peer_floor_to_peer, @function
        .p2align 4
peer_floor_to_peer:
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        popq    %rcx
        notrack jmpq *%rcx
        .size   peer_floor_to_peer, .-peer_floor_to_peer

/* peer -> self: the same with the roles swapped */
        .type   peer_floor_to_self, @function
        .p2align 4
peer_floor_to_self:
        movq    %rsp, (%rsi)
        movq    (%rdi), %rsp
        popq    %rcx
        notrack jmpq *%rcx
        .size   peer_floor_to_self, .-peer_floor_to_self

/*
 * The scheduler's side of the sweep: two fibers, each looping on fiber_yield from its
 * own call site, at the layout's offsets (the return address of the call at +9):
 * void peer_yield_run_<L>(void *rounds), peer_yield_peer_<L>(void *rounds), as fiber
 * entry functions. Two call sites is what fibers running different code do; the
 * scheduler's switch returns through fiber_yield into the other fiber's call site.
 */
        .macro  YIELD_LOOP name, off
        .globl  \name
        .type   \name, @function
\name:
        .cfi_startproc
        ENDBR
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        pushq   %rbx
        pushq   %r12
        movq    %rdi, %rbx
        testq   %rbx, %rbx
        jz      9f
        jmp     8f
        LOOP_AT \off
8:      nop
        nop
        nop
        nop                           /* 4 bytes of nops: the call (5 bytes) ends at +9 */
        callq   fiber_yield@PLT
        decq    %rbx
        jnz     8b
9:      popq    %r12
        popq    %rbx
        popq    %rbp
        .cfi_def_cfa %rsp, 8
        ret
        .cfi_endproc
        .size   \name, .-\name
        .endm

/* One code layout: every loop pair at (run, peer) offsets. */
        .macro  LAYOUT l, run, peer
        DRIVE_RUN   peer_drive_run_\l, \run
        DRIVE_ENTRY peer_drive_entry_\l, \peer
        BOOST_RUN   peer_boost_drive_\l, \run
        BOOST_ENTRY peer_boost_drive_entry_\l, \peer
        FLOOR_RUN   peer_floor_pingpong_\l, \run
        FLOOR_LOOP  peer_floor_peer_loop_\l, \peer
        YIELD_LOOP  peer_yield_run_\l, \run
        YIELD_LOOP  peer_yield_peer_\l, \peer
        .endm

        LAYOUT  c0, 0x000, 0x540
        LAYOUT  c1, 0x000, 0x000
        LAYOUT  c2, 0x1e7, 0x1f7
        LAYOUT  c3, 0x2da, 0x3da
        LAYOUT  c4, 0x7f8, 0xbf8
        LAYOUT  c5, 0x2db, 0x3db
        LAYOUT  c6, 0x4c6, 0x506

        .section .note.gnu.property, "a"
        .p2align 3
        .long   4, 16, 5              /* name size, descriptor size, NT_GNU_PROPERTY_TYPE_0 */
        .asciz  "GNU"
        .long   0xc0000002, 4, 1, 0   /* GNU_PROPERTY_X86_FEATURE_1_AND: IBT; padding */

        .section .note.GNU-stack,"",@progbits
