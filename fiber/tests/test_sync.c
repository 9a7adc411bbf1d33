/* Wait queues, semaphores, and deadlock detection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fiber.h"

static fiber_waitq_t q = FIBER_WAITQ_INIT;
static int woken_order[8], nwoken;

static void waiter(void *arg)
{
    assert_int_equal(fiber_waitq_wait(&q, FIBER_FOREVER), 0);
    woken_order[nwoken++] = (int)(intptr_t)arg;
}

static void waker(void *arg)
{
    (void)arg;
    fiber_yield();
    assert_int_equal(fiber_waitq_wake_one(&q), 1);
    fiber_yield();
    assert_int_equal(fiber_waitq_wake_all(&q), 3);
    assert_int_equal(fiber_waitq_wake_one(&q), 0);
}

static void test_waitq_fifo(void **state)
{
    (void)state;
    nwoken = 0;
    fiber_t *w[4];
    for (int i = 0; i < 4; i++)
        w[i] = fiber_spawn(waiter, (void *)(intptr_t)i);
    fiber_t *k = fiber_spawn(waker, NULL);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(nwoken, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(woken_order[i], i);
        fiber_join(w[i]);
    }
    fiber_join(k);
}

static void timeout_waiter(void *arg)
{
    (void)arg;
    uint64_t t0 = fiber_now_ns();
    errno = 0;
    assert_int_equal(fiber_waitq_wait(&q, t0 + 2000000), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(fiber_now_ns() >= t0 + 2000000);
    assert_null(q.head); /* it took itself off the queue */
}

static void test_waitq_timeout(void **state)
{
    (void)state;
    fiber_join(fiber_spawn(timeout_waiter, NULL));
    assert_int_equal(fiber_waitq_wake_all(&q), 0);
}

static fiber_sem_t sem = FIBER_SEM_INIT(2);
static int holders, max_holders, served_order[16], nserved;

static void user(void *arg)
{
    assert_int_equal(fiber_sem_acquire(&sem, FIBER_FOREVER), 0);
    served_order[nserved++] = (int)(intptr_t)arg;
    holders++;
    if (holders > max_holders)
        max_holders = holders;
    fiber_sleep_ns(200000);
    holders--;
    fiber_sem_release(&sem);
}

static void test_semaphore_bounds_and_fifo(void **state)
{
    (void)state;
    fiber_t *u[10];
    for (int i = 0; i < 10; i++)
        u[i] = fiber_spawn(user, (void *)(intptr_t)i);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(max_holders, 2);
    assert_int_equal(nserved, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(served_order[i], i);
        fiber_join(u[i]);
    }
    assert_int_equal(sem.count, 2);
}

static void sem_timeout(void *arg)
{
    fiber_sem_t *s = arg;
    errno = 0;
    assert_int_equal(fiber_sem_acquire(s, fiber_now_ns() + 1000000), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void test_semaphore_timeout(void **state)
{
    (void)state;
    fiber_sem_t s = FIBER_SEM_INIT(0);
    fiber_join(fiber_spawn(sem_timeout, &s));
    fiber_sem_release(&s);
    assert_int_equal(s.count, 1);
}

static fiber_waitq_t never = FIBER_WAITQ_INIT;
static void stuck(void *arg)
{
    (void)arg;
    fiber_waitq_wait(&never, FIBER_FOREVER);
}

static void test_deadlock_detected(void **state)
{
    (void)state;
    fiber_t *f = fiber_spawn(stuck, NULL);
    errno = 0;
    assert_int_equal(fiber_run(), -1);
    assert_int_equal(errno, EDEADLK);
    errno = 0;
    assert_int_equal(fiber_join(f), -1);
    assert_int_equal(errno, EDEADLK);
    /* Wake it: now it can finish and be joined. */
    assert_int_equal(fiber_waitq_wake_all(&never), 1);
    assert_int_equal(fiber_join(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waitq_fifo),
        cmocka_unit_test(test_waitq_timeout),
        cmocka_unit_test(test_semaphore_bounds_and_fifo),
        cmocka_unit_test(test_semaphore_timeout),
        cmocka_unit_test(test_deadlock_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
