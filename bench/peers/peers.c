/* peers.c - the ucontext peer, and the floor's context set-up. */
#define _GNU_SOURCE
#include "peers.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>

#if defined(__x86_64__)
void peer_floor_peer_loop(void);

int peer_floor_available(void) { return 1; }

void peer_floor_make(fiber_context_t *peer, void *stack_hi)
{
    uintptr_t sp = ((uintptr_t)stack_hi & ~(uintptr_t)15) - 16;
    *(void **)sp = (void *)peer_floor_peer_loop;
    peer->sp = (void *)sp;
}
#else
void peer_drive_run(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds,
                    void (*sw)(fiber_context_t *, fiber_context_t *))
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
void peer_drive_entry_apart(void *d) { drive_entry(d); }

int peer_floor_available(void) { return 0; }
void peer_floor_make(fiber_context_t *peer, void *stack_hi) { (void)stack_hi; peer->sp = 0; }
void peer_floor_pingpong(fiber_context_t *self, fiber_context_t *peer, uint64_t rounds)
{
    (void)self; (void)peer; (void)rounds;
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
