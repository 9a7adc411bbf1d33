/* bench_units.c - live idle threads and fibers for the memory and scale harnesses. */
#define _GNU_SOURCE
#include "bench_units.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void bench_units_init(bench_units_t *u, bench_unit_kind_t kind, size_t stack_size)
{
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->stack_size = stack_size;
}

static void *blocked_thread(void *arg)
{
    bench_units_t *u = arg;
    __atomic_add_fetch(&u->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&u->release, __ATOMIC_ACQUIRE))
        syscall(SYS_futex, &u->release, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

static void parked_fiber(void *arg)
{
    bench_units_t *u = arg;
    fiber_waitq_wait(&u->q, FIBER_FOREVER);
}

static int grow_threads(bench_units_t *u, long target)
{
    if (target > u->tids_cap) {
        long cap = u->tids_cap ? u->tids_cap : 1024;
        while (cap < target)
            cap *= 2;
        void *p = realloc(u->tids, (size_t)cap * sizeof(pthread_t));
        if (!p)
            return ENOMEM;
        u->tids = p;
        u->tids_cap = cap;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (u->stack_size)
        pthread_attr_setstacksize(&attr, u->stack_size);
    pthread_t *tids = u->tids;
    int e = 0;
    while (u->count < target) {
        e = pthread_create(&tids[u->count], &attr, blocked_thread, u);
        if (e)
            break;
        u->count++;
    }
    pthread_attr_destroy(&attr);
    /* Every thread has run up to its futex wait (or is about to): its memory is real. */
    while (__atomic_load_n(&u->ready, __ATOMIC_ACQUIRE) < u->count)
        usleep(100);
    return e;
}

/* Spawns in chunks and runs them until all are parked: fiber_run() then reports
 * EDEADLK, which here is the expected "everyone is waiting". */
static int grow_fibers(bench_units_t *u, long target)
{
    fiber_attr_t attr = {.stack_size = u->stack_size, .detached = 1};
    int e = 0;
    while (u->count < target && !e) {
        long chunk = target - u->count < 4096 ? target - u->count : 4096;
        long made = 0;
        for (; made < chunk; made++)
            if (!fiber_spawn_ex(parked_fiber, u, &attr)) {
                e = errno ? errno : ENOMEM;
                break;
            }
        fiber_run();
        u->count += made;
    }
    return e;
}

int bench_units_grow(bench_units_t *u, long target)
{
    if (target <= u->count)
        return 0;
    return u->kind == BENCH_UNIT_THREAD ? grow_threads(u, target) : grow_fibers(u, target);
}

void bench_units_release(bench_units_t *u)
{
    if (u->kind == BENCH_UNIT_THREAD) {
        __atomic_store_n(&u->release, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &u->release, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        pthread_t *tids = u->tids;
        for (long i = 0; i < u->count; i++)
            pthread_join(tids[i], NULL);
        free(u->tids);
        u->tids = NULL;
        u->tids_cap = 0;
        u->release = 0;
        u->ready = 0;
    } else {
        fiber_waitq_wake_all(&u->q);
        fiber_run();
        fiber_pool_trim();
    }
    u->count = 0;
}
