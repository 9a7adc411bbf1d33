/*
 * bench_units.h - many live, idle units of concurrency: threads blocked on a futex, or
 * fibers parked on a wait queue. The memory and scale harnesses grow a set of them,
 * measure, and release everything.
 *
 * A thread unit is created, runs until it is blocked (its stack, TLS and kernel objects
 * are real), and stays blocked until bench_units_release(). A fiber unit is spawned
 * detached with the default stack and has run until it parked, so its stack top and
 * record are touched. Fiber units live on the calling thread's scheduler.
 */
#ifndef BENCH_UNITS_H
#define BENCH_UNITS_H

#include <stddef.h>

#include "fiber.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bench_unit_kind { BENCH_UNIT_THREAD, BENCH_UNIT_FIBER } bench_unit_kind_t;

typedef struct bench_units {
    bench_unit_kind_t kind;
    size_t            stack_size; /* threads: 0 = glibc's default; fibers: 0 = the runtime's */
    long              count;      /* live units */
    /* private */
    void             *tids;
    long              tids_cap;
    int               release;
    int               ready;
    fiber_waitq_t     q;
} bench_units_t;

/* Prepares an empty set. */
void bench_units_init(bench_units_t *u, bench_unit_kind_t kind, size_t stack_size);

/* Adds units until u->count == target, each one blocked or parked before this returns.
 * Returns 0, or the errno of the creation that failed (pthread_create's EAGAIN,
 * fiber_spawn's ENOMEM, ...), with u->count the units that do exist. */
int bench_units_grow(bench_units_t *u, long target);

/* Wakes every unit, lets it finish, and reclaims it: threads are joined, fiber stacks
 * are unmapped (the pool is trimmed). Afterwards u->count == 0. */
void bench_units_release(bench_units_t *u);

#ifdef __cplusplus
}
#endif

#endif
