/* Review finding: every fiber_spawn_on() leaves one more stack in the target thread's
 * pool, for ever. The caller maps a new stack for each request (remote.c), the target
 * gives it to its pool and at once takes it back for the new fiber (run_spawn), and when
 * that fiber returns its stack joins the pool as well: the pool grows by one stack per
 * request even when only one remote fiber is ever alive. The dispatcher pattern - one
 * thread accepts and fiber_spawn_on()s each connection onto worker threads - therefore
 * grows each worker's resident memory (at least the record's page per stack) and its
 * mappings without bound: with mprotect guards (kernels before 6.13) each stack is two
 * of the 65,530 vm.max_map_count entries, so after ~32,000 requests every mmap fails.
 * Expected: a steady state - the pool holds about as many stacks as were alive at once
 * (e.g. run_spawn uses a pooled stack when it has one and unmaps, or returns to the
 * caller's side, the one it was sent; or the caller takes stacks from its own pool). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull
#define REQUESTS 2000

static fiber_sched_t *worker_sched;
static pthread_barrier_t ready;
static atomic_int done_count;
static atomic_int stop;
static size_t pool_after;

static void request(void *arg)
{
    (void)arg;
    atomic_fetch_add(&done_count, 1);
}

static void keeper(void *arg)
{
    (void)arg;
    /* Keeps the worker's fiber_run() going while requests come in. */
    while (!atomic_load(&stop))
        fiber_sleep_ns(1 * MS);
}

static void *worker(void *arg)
{
    (void)arg;
    worker_sched = fiber_sched_self();
    fiber_spawn_ex(keeper, NULL, &(fiber_attr_t){ .detached = 1 });
    pthread_barrier_wait(&ready);
    fiber_run();
    pool_after = fiber_pool_count();
    return NULL;
}

static void test_spawn_on_keeps_a_steady_pool(void **state)
{
    (void)state;
    pthread_barrier_init(&ready, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, NULL), 0);
    pthread_barrier_wait(&ready);
    /* One request at a time: at most one remote fiber alive at any moment. */
    for (int i = 0; i < REQUESTS; i++) {
        assert_int_equal(fiber_spawn_on(worker_sched, request, NULL), 0);
        while (atomic_load(&done_count) <= i)
            usleep(10);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&ready);
    if (pool_after > 64)
        fail_msg("after %d fiber_spawn_on() requests, one alive at a time, the worker's pool "
                 "holds %zu stacks (each with its touched pages resident)", REQUESTS, pool_after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_on_keeps_a_steady_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
