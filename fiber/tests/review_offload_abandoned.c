/* Review finding: a job whose fiber gave up (fiber_offload_until's deadline) while the
 * job was still QUEUED - no pool thread had started it - is run anyway when a thread
 * frees up: its fn is called for nobody, and it holds a pool thread meanwhile. Only a
 * call already in progress "cannot be stopped" (fiber.h); one not yet started can.
 * Why it matters: fiber_getaddrinfo() with a deadline during a DNS outage. Lookups block
 * for the resolver's timeout (5 s x attempts); fibers give up after their deadline, but
 * every abandoned lookup still runs, 8 at a time, so new lookups (with fresh deadlines)
 * queue behind dead ones and time out too. While requests arrive faster than 8 per
 * resolver timeout, the queue never drains: the outage outlives the DNS outage.
 * Expected: a job abandoned before it started is not run (its cleanup still runs, so
 * arg is freed) - e.g. the pool thread claims the job with PENDING -> RUNNING at dequeue
 * and the fiber's timeout CAS turns PENDING into CANCELLED. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull
#define QUEUED 50

static atomic_int ran_for_nobody, cleaned;

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, (long)ms * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void blocker(void *arg) { (void)arg; sleep_ms(50); } /* holds the only pool thread */
static void lookup(void *arg) { (void)arg; atomic_fetch_add(&ran_for_nobody, 1); sleep_ms(1); }
static void lookup_cleanup(void *arg) { free(arg); atomic_fetch_add(&cleaned, 1); }

static void first(void *arg)
{
    (void)arg;
    assert_int_equal(fiber_offload(blocker, NULL), 0);
}

static void impatient(void *arg)
{
    (void)arg;
    fiber_sleep_ns(1 * MS); /* the blocker holds the thread by now */
    void *job_arg = malloc(16);
    /* Queued behind the blocker: gives up long before any thread is free. */
    assert_int_equal(fiber_offload_until(lookup, lookup_cleanup, job_arg, fiber_now_ns() + 5 * MS),
                     ETIMEDOUT);
}

static void test_abandoned_queued_jobs_are_not_run(void **state)
{
    (void)state;
    fiber_offload_set_threads(1); /* a fresh process: no pool thread yet */
    fiber_t *b = fiber_spawn(first, NULL);
    fiber_t *f[QUEUED];
    for (int i = 0; i < QUEUED; i++)
        f[i] = fiber_spawn(impatient, NULL);
    assert_int_equal(fiber_run(), 0);
    fiber_join(b);
    for (int i = 0; i < QUEUED; i++)
        fiber_join(f[i]);
    /* Every job's cleanup runs (the args are freed either way). */
    for (int i = 0; i < 5000 && atomic_load(&cleaned) < QUEUED; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&cleaned), QUEUED);
    if (atomic_load(&ran_for_nobody) != 0)
        fail_msg("%d of %d jobs abandoned while still queued were run anyway, one after "
                 "another on the pool's thread", atomic_load(&ran_for_nobody), QUEUED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abandoned_queued_jobs_are_not_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
