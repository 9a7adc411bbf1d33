/*
 * test_wheel.c - the schedule's timer wheel: nobody wakes before their deadline,
 * everybody wakes, in deadline order to within a slot (16 us); deadlines past the
 * horizon, a new deadline earlier than the one the ticker sleeps towards, a lagging
 * cursor, and an empty wheel that refills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mllm_wheel.h"

#include <fiber.h>

#include <stdlib.h>

#define N 3000

typedef struct sleeper {
    uint64_t deadline, woke;
    int      order;
} sleeper_t;

static int woken;

static void sleeper_main(void *arg)
{
    sleeper_t *s = arg;
    mllm_wheel_sleep_until(s->deadline);
    s->woke = fiber_now_ns();
    s->order = woken++;
}

static void t_many_sleepers(void **state)
{
    (void)state;
    static sleeper_t s[N];
    uint64_t rng = 12345, t0 = fiber_now_ns();
    fiber_attr_t a = { .stack_size = 16 * 1024, .detached = 1 };
    woken = 0;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        /* 0..800 ms: a third beyond the 537 ms horizon, some already past */
        s[i].deadline = t0 + (rng >> 33) % 800000000u - (i % 97 == 0 ? 900000000u : 0);
        s[i].woke = 0;
        assert_non_null(fiber_spawn_ex(sleeper_main, &s[i], &a));
    }
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(woken, N);
    assert_int_equal(mllm_wheel_count(), 0);
    for (int i = 0; i < N; i++) {
        assert_true(s[i].woke >= s[i].deadline); /* never early */
        for (int j = 0; j < N; j += 37) /* a later deadline never wakes first by a slot */
            if (s[j].deadline > s[i].deadline + 20000 + (s[i].woke - s[i].deadline))
                assert_true(s[j].order > s[i].order);
    }
}

/* The ticker sleeps towards a far deadline; a near one inserted later still wakes first. */
static void far_then_near(void *arg)
{
    sleeper_t *s = arg;
    fiber_attr_t a = { .stack_size = 16 * 1024, .detached = 1 };
    s[0].deadline = fiber_now_ns() + 300000000u;
    assert_non_null(fiber_spawn_ex(sleeper_main, &s[0], &a));
    fiber_sleep_ns(20000000); /* the far sleeper is on the wheel, the ticker waits */
    s[1].deadline = fiber_now_ns() + 1000000u;
    assert_non_null(fiber_spawn_ex(sleeper_main, &s[1], &a));
}

static void t_earlier_deadline_wakes_the_ticker(void **state)
{
    (void)state;
    static sleeper_t s[2];
    woken = 0;
    fiber_attr_t a = { .stack_size = 16 * 1024, .detached = 1 };
    assert_non_null(fiber_spawn_ex(far_then_near, s, &a));
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(s[1].order, 0);
    assert_int_equal(s[0].order, 1);
    assert_true(s[1].woke >= s[1].deadline && s[0].woke >= s[0].deadline);
    /* woken near its deadline, not when the far one came due */
    assert_true(s[1].woke < s[0].deadline);
}

/* The ticker sleeps towards a deadline almost a horizon away, so its cursor lags; a
 * sleeper that arrives late in that wait with a deadline just past the horizon from the
 * cursor must still wake on time: before a plain runtime sleeper due 35 ms after it
 * (failed before: the far path slept a quarter horizon, 134 ms, past its deadline). */
static void heap_sleeper_main(void *arg)
{
    sleeper_t *s = arg;
    fiber_sleep_until(s->deadline);
    s->woke = fiber_now_ns();
    s->order = woken++;
}

static void lagging_cursor(void *arg)
{
    sleeper_t *s = arg;
    fiber_attr_t a = { .stack_size = 16 * 1024, .detached = 1 };
    uint64_t t0 = fiber_now_ns();
    s[0].deadline = t0 + 530000000u;
    assert_non_null(fiber_spawn_ex(sleeper_main, &s[0], &a));
    fiber_sleep_until(t0 + 500000000u);
    s[1].deadline = t0 + 545000000u;
    assert_non_null(fiber_spawn_ex(sleeper_main, &s[1], &a));
    s[2].deadline = t0 + 580000000u;
    assert_non_null(fiber_spawn_ex(heap_sleeper_main, &s[2], &a));
}

static void t_lagging_cursor(void **state)
{
    (void)state;
    static sleeper_t s[3];
    woken = 0;
    fiber_attr_t a = { .stack_size = 16 * 1024, .detached = 1 };
    assert_non_null(fiber_spawn_ex(lagging_cursor, s, &a));
    assert_int_equal(fiber_run(), 0);
    for (int i = 0; i < 3; i++)
        assert_true(s[i].woke >= s[i].deadline);
    assert_true(s[0].order < s[1].order); /* one wheel: slot by slot */
    /* The runtime sleeper s[2] last. Unless the process itself was stalled past all
     * three deadlines (s[2] then wakes late too): the ticker and s[2] expire in the same
     * poll, and s[0] and s[1], woken by the ticker, queue behind s[2] - any order is right
     * for three sleepers all overdue (seen once at load 50+). The bug this test is for
     * leaves s[2] on time and s[1] 134 ms late, so it still fails here. */
    if (s[2].woke - s[2].deadline < 10000000u)
        assert_int_equal(s[2].order, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_many_sleepers),
        cmocka_unit_test(t_earlier_deadline_wakes_the_ticker),
        cmocka_unit_test(t_lagging_cursor),
        cmocka_unit_test(t_many_sleepers), /* again: the wheel emptied and refills */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
