/* peers.c - the layout table, the floor's context set-up and the ucontext peer. */
#define _GNU_SOURCE
#include "peers.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>

#if defined(__x86_64__)
/* drive_x86_64.S: one set of loops per layout. */
#define LAYOUT_DECL(l)                                                                    \
    void peer_drive_run_##l(fiber_context_t *, fiber_context_t *, uint64_t, peer_switch_fn); \
    void peer_drive_entry_##l(void *);                                                   \
    void peer_floor_pingpong_##l(fiber_context_t *, fiber_context_t *, uint64_t);         \
    void peer_floor_peer_loop_##l(void);                                                  \
    void *peer_boost_drive_##l(void *, uint64_t);                                         \
    void peer_boost_drive_entry_##l(void);                                                \
    void peer_yield_run_##l(void *);                                                      \
    void peer_yield_peer_##l(void *);
LAYOUT_DECL(c0)
LAYOUT_DECL(c1)
LAYOUT_DECL(c2)
LAYOUT_DECL(c3)
LAYOUT_DECL(c4)
LAYOUT_DECL(c5)
LAYOUT_DECL(c6)
#define LAYOUT(l)                                                                         \
    {#l, peer_drive_run_##l, peer_drive_entry_##l, peer_floor_pingpong_##l,               \
     peer_floor_peer_loop_##l, peer_boost_drive_##l, (void *)peer_boost_drive_entry_##l,   \
     peer_yield_run_##l, peer_yield_peer_##l}

const peer_layout_t peer_layouts[] = {LAYOUT(c0), LAYOUT(c1), LAYOUT(c2), LAYOUT(c3),
                                      LAYOUT(c4), LAYOUT(c5), LAYOUT(c6)};
const int peer_nlayouts = sizeof peer_layouts / sizeof peer_layouts[0];

void peer_floor_make(fiber_context_t *peer, void *stack_hi, const peer_layout_t *layout)
{
    uintptr_t sp = ((uintptr_t)stack_hi & ~(uintptr_t)15) - 16;
    *(void **)sp = (void *)layout->floor_loop;
    peer->sp = (void *)sp;
}
#else
static void drive_run(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
                      peer_switch_fn sw)
{
    for (uint64_t i = 0; i < rounds; i++)
        sw(self, peer);
}

static void drive_entry(void *arg)
{
    peer_drive_t *d = arg;
    for (;;)
        d->sw(d->peer, d->self);
}

const peer_layout_t peer_layouts[] = {{"c0", drive_run, drive_entry, NULL, NULL, NULL, NULL, NULL, NULL}};
const int peer_nlayouts = 1;

void peer_floor_make(fiber_context_t *peer, void *stack_hi, const peer_layout_t *layout)
{
    (void)stack_hi;
    (void)layout;
    peer->sp = 0;
}
#endif

static ucontext_t uc_main, uc_peer;
static void *uc_stack;
static size_t uc_stack_size;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&uc_peer, &uc_main);
}

int peer_uc_init(size_t stack_size)
{
    void *p = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    if (getcontext(&uc_peer) != 0) {
        int e = errno;
        munmap(p, stack_size);
        errno = e;
        return -1;
    }
    uc_stack = p;
    uc_stack_size = stack_size;
    uc_peer.uc_stack.ss_sp = p;
    uc_peer.uc_stack.ss_size = stack_size;
    uc_peer.uc_link = NULL;
    makecontext(&uc_peer, uc_entry, 0);
    return 0;
}

void peer_uc_pingpong(uint64_t rounds)
{
    for (uint64_t i = 0; i < rounds; i++)
        swapcontext(&uc_main, &uc_peer);
}

void peer_uc_fini(void)
{
    if (uc_stack)
        munmap(uc_stack, uc_stack_size);
    uc_stack = NULL;
}
