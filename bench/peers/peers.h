/*
 * peers.h - context switchers measured beside the fiber runtime's, in the same run:
 * a bare pop+jmp assembly floor (the least a switch can do), glibc ucontext, and
 * Boost.Context's jump_fcontext. Each runs a ping-pong of `rounds` round trips between
 * the caller and one peer context; a round trip is two one-way switches.
 */
#ifndef PEERS_H
#define PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "fiber_context.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the assembly floor exists for this architecture (x86-64 only). */
int peer_floor_available(void);

/*
 * The floor: `call`, store rsp, load rsp, pop + indirect jmp - no register is saved,
 * which is only correct because both sides are assembly loops that keep nothing live in
 * callee-saved registers across the switch. peer_floor_make prepares a peer context on
 * [stack_lo, stack_hi) (a few hundred bytes suffice); peer_floor_pingpong runs the
 * rounds. The peer is left suspended; its stack may simply be freed.
 */
void peer_floor_make(fiber_context_t *peer, void *stack_hi);
void peer_floor_pingpong(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds);

/*
 * Layout-controlled ping-pong around a C-callable switch (sw = fiber_context_switch_*):
 * both loops are assembly on 4 KiB boundaries (drive_x86_64.S says why). Make the peer
 * with fiber_context_make(peer, lo, hi, peer_drive_entry_apart, &d), then
 * peer_drive_run(self, peer, rounds, sw). Elsewhere than x86-64 these are plain C loops.
 */
typedef struct peer_drive {
    fiber_context_t *self, *peer;
    void (*sw)(fiber_context_t *, fiber_context_t *);
} peer_drive_t;

void peer_drive_run(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
                    void (*sw)(fiber_context_t *, fiber_context_t *));
void peer_drive_entry_apart(void *d); /* its loop 0x540 bytes past a 4 KiB boundary */

/* glibc swapcontext (saves the signal mask: one rt_sigprocmask system call per switch).
 * peer_uc_init returns 0 or -1 with errno; fini frees the stack. One at a time. */
int  peer_uc_init(size_t stack_size);
void peer_uc_pingpong(uint64_t rounds);
void peer_uc_fini(void);

/* Boost.Context (libboost-context-dev) make_fcontext / jump_fcontext, as Boost's
 * fiber and coroutine libraries use it. Same contract as ucontext. On x86-64 the loops
 * are the same layout-controlled assembly as peer_drive ("apart"). */
int  peer_boost_init(size_t stack_size);
void peer_boost_pingpong(uint64_t rounds);
void peer_boost_fini(void);

#ifdef __cplusplus
}
#endif

#endif
