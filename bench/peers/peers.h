/*
 * peers.h - context switchers measured beside the fiber runtime's, in the same run:
 * a bare pop+jmp assembly floor (the least a switch can do), glibc ucontext, and
 * Boost.Context's jump_fcontext; and the ping-pong loops that drive every switcher at
 * several code layouts. Each ping-pong runs `rounds` round trips between the caller
 * and one peer context; a round trip is two one-way switches.
 */
#ifndef PEERS_H
#define PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "fiber_context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*peer_switch_fn)(fiber_context_t *from, fiber_context_t *to);

/*
 * One code layout: the same ping-pong loops for every switcher, placed at fixed offsets
 * past a 4 KiB boundary (drive_x86_64.S lists them and says why). On x86-64 there are
 * several ("c0" ... "c6", c0 first: the layout of the headline rows); elsewhere one,
 * "c0", made of plain C loops, and no floor.
 */
typedef struct peer_layout {
    const char *name;
    /* Our switches: make the peer with fiber_context_make(peer, lo, hi, drive_entry, &d)
     * where d is a peer_drive_t, then drive_run(self, peer, rounds, sw). */
    void (*drive_run)(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
                      peer_switch_fn sw);
    void (*drive_entry)(void *d);
    /* The floor (NULL where there is none): peer_floor_make(), then floor_run(). */
    void (*floor_run)(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds);
    void (*floor_loop)(void);
    /* Boost.Context's loops (used by peer_boost_*; opaque here). */
    void *(*boost_run)(void *peer_fctx, uint64_t rounds);
    void *boost_entry;
    /* Two fiber entry functions looping on fiber_yield() from their own call sites,
     * arg = the number of yields (NULL where there are none). */
    void (*yield_run)(void *rounds);
    void (*yield_peer)(void *rounds);
} peer_layout_t;

typedef struct peer_drive {
    fiber_context_t *self, *peer;
    peer_switch_fn   sw;
} peer_drive_t;

extern const peer_layout_t peer_layouts[];
extern const int peer_nlayouts;

/*
 * The floor: `call`, store rsp, load rsp, pop + indirect jmp - no register is saved,
 * which is only correct because both sides are assembly loops that keep nothing live in
 * callee-saved registers across the switch. peer_floor_make prepares a peer context
 * whose stack top is stack_hi (a few hundred bytes below it suffice), resuming at the
 * layout's peer loop; the layout's floor_run then runs the rounds. The peer is left
 * suspended; its stack may simply be freed.
 */
void peer_floor_make(fiber_context_t *peer, void *stack_hi, const peer_layout_t *layout);

/* glibc swapcontext (saves the signal mask: one rt_sigprocmask system call per switch).
 * peer_uc_init returns 0 or -1 with errno; fini frees the stack. One at a time. */
int  peer_uc_init(size_t stack_size);
void peer_uc_pingpong(uint64_t rounds);
void peer_uc_fini(void);

/* Boost.Context (libboost-context-dev) make_fcontext / jump_fcontext, as Boost's
 * fiber and coroutine libraries use it, driven by the layout's loops. The peer's stack
 * top is top_off bytes (a multiple of 16) below the end of its stack_size mapping.
 * Returns 0 or -1 with errno. One at a time. */
int  peer_boost_init(size_t stack_size, size_t top_off, const peer_layout_t *layout);
void peer_boost_pingpong(uint64_t rounds);
void peer_boost_fini(void);

#ifdef __cplusplus
}
#endif

#endif
