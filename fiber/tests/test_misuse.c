/* Misuse and stack overflow end the process with a clear message. Each case runs in a
 * forked child; the parent checks that it died of SIGABRT and what it printed. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"
#include "fork_child.h"

static void nothing(void *arg) { (void)arg; }

static void expect_abort(void (*child)(void), const char *needle)
{
    char buf[2048];
    int status = fork_child(child, buf, sizeof buf); /* exits 0 if the misuse went unnoticed */
    if (!strstr(buf, needle))
        fail_msg("expected \"%s\" on stderr, got: %s", needle, buf);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void join_twice(void)
{
    fiber_t *f = fiber_spawn(nothing, NULL);
    fiber_join(f);
    fiber_join(f);
}

static void yield_outside(void) { fiber_yield(); }
static void sleep_outside(void) { fiber_sleep_ns(1000); }

static void self_joiner(void *arg) { (void)arg; fiber_join(fiber_self()); }
static void join_self(void) { fiber_join(fiber_spawn(self_joiner, NULL)); }

static void join_detached(void)
{
    fiber_attr_t at = { .detached = 1 };
    fiber_join(fiber_spawn_ex(nothing, NULL, &at));
}

static void run_inside(void *arg) { (void)arg; fiber_run(); }
static void run_in_fiber(void) { fiber_join(fiber_spawn(run_inside, NULL)); }

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    return recurse(depth + 1) + pad[0];
}
static void overflower(void *arg) { (void)arg; recurse(0); }
static void overflow(void)
{
    fiber_attr_t at = { .name = "deep-thinker", .stack_size = 32 * 1024 };
    fiber_join(fiber_spawn_ex(overflower, NULL, &at));
}

/* A frame larger than the stack and its guard: without stack-clash probes its lowest
 * bytes lie in the stack mapped below (stacks of a batch are contiguous, each with the
 * record of its fiber at the top), and writing them corrupts the neighbour silently: no
 * fault, since that memory is mapped. With -fstack-clash-protection (the build's flags)
 * the prologue touches every page on the way down and faults in the guard first.
 * Not sanitized: ASan would move the array to its fake stack on the heap. */
static volatile int neighbour_ran;
static void neighbour(void *arg) { (void)arg; neighbour_ran = 1; }
static __attribute__((noinline, no_sanitize("address"))) void big_frame_fn(void)
{
    volatile char big[80 * 1024];
    for (int i = 0; i < 256; i++) /* only the lowest bytes: they never reach the guard */
        big[i] = 0x5a;
    big[0] = big[255];
}
static void big_framer(void *arg) { (void)arg; big_frame_fn(); }
static void big_frame(void)
{
    /* A size no other test uses: both come from one fresh batch, the big framer's stack
     * right above its neighbour's. */
    fiber_attr_t big = { .name = "big-frame", .stack_size = 48 * 1024 };
    fiber_attr_t nb = { .name = "neighbour", .stack_size = 48 * 1024 };
    fiber_t *a = fiber_spawn_ex(big_framer, NULL, &big);
    fiber_t *b = fiber_spawn_ex(neighbour, NULL, &nb);
    fiber_join(a);
    fiber_join(b);
}

/* A handle kept after its fiber was joined, its record since reused by a new fiber. */
static void stale_handle(void)
{
    fiber_t *f = fiber_spawn(nothing, NULL);
    fiber_join(f);
    fiber_t *g = fiber_spawn(nothing, NULL); /* takes f's record from the pool */
    fiber_join(f);
    fiber_join(g);
}
static void stale_detach(void)
{
    fiber_t *f = fiber_spawn(nothing, NULL);
    fiber_join(f);
    fiber_spawn(nothing, NULL);
    fiber_detach(f);
}

/* Wait queues and semaphores touched from another thread without the _on() calls. */
static fiber_waitq_t xq = FIBER_WAITQ_INIT;
static fiber_sem_t xsem = FIBER_SEM_INIT(0);
static void q_parker(void *arg) { (void)arg; fiber_waitq_wait(&xq, FIBER_FOREVER); }
static void sem_parker(void *arg) { (void)arg; fiber_sem_acquire(&xsem, FIBER_FOREVER); }
static void *wake_q_from_thread(void *arg) { (void)arg; fiber_waitq_wake_one(&xq); return NULL; }
static void *wake_all_from_thread(void *arg) { (void)arg; fiber_waitq_wake_all(&xq); return NULL; }
static void *release_from_thread(void *arg) { (void)arg; fiber_sem_release(&xsem); return NULL; }
static void *wait_from_thread(void *arg)
{
    (void)arg;
    fiber_spawn(q_parker, NULL); /* a fiber of this thread joins the main thread's queue */
    fiber_run();
    return NULL;
}
static void cross_thread(void (*parker)(void *), void *(*other)(void *))
{
    fiber_t *f = fiber_spawn(parker, NULL);
    fiber_run(); /* parks it; EDEADLK: only another thread could wake it */
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    pthread_join(t, NULL);
    (void)f;
}
static void cross_wake_one(void) { cross_thread(q_parker, wake_q_from_thread); }
static void cross_wake_all(void) { cross_thread(q_parker, wake_all_from_thread); }
static void cross_release(void) { cross_thread(sem_parker, release_from_thread); }
static void cross_wait(void) { cross_thread(q_parker, wait_from_thread); }

/* fiber_join of a fiber of the main thread from another pthread: with no scheduler of its
 * own there, and with one (whose run path must not take another scheduler's fiber). */
static int xj_with_sched;
static void *xj_joiner(void *h)
{
    if (xj_with_sched)
        fiber_join(fiber_spawn(nothing, NULL));
    fiber_join(h);
    return NULL;
}
static void xjoin(void)
{
    alarm(10); /* a join that waits on the wrong scheduler: SIGALRM, not a hang */
    fiber_t *f = fiber_spawn(nothing, NULL);
    pthread_t t;
    pthread_create(&t, NULL, xj_joiner, f);
    pthread_join(t, NULL);
}
static void xjoin_bare(void) { xj_with_sched = 0; xjoin(); }
static void xjoin_sched(void) { xj_with_sched = 1; xjoin(); }

static void test_join_twice(void **s) { (void)s; expect_abort(join_twice, "joined twice"); }
static void test_yield_outside(void **s) { (void)s; expect_abort(yield_outside, "fiber_yield called outside a fiber"); }
static void test_sleep_outside(void **s) { (void)s; expect_abort(sleep_outside, "called outside a fiber"); }
static void test_join_self(void **s) { (void)s; expect_abort(join_self, "joins itself"); }
static void test_join_detached(void **s) { (void)s; expect_abort(join_detached, "is detached"); }
static void test_run_in_fiber(void **s) { (void)s; expect_abort(run_in_fiber, "fiber_run called from inside fiber"); }
static void test_big_frame(void **s) { (void)s; expect_abort(big_frame, "stack overflow in fiber"); expect_abort(big_frame, "'big-frame'"); }
static void test_stale_handle(void **s) { (void)s; expect_abort(stale_handle, "fiber_join: stale fiber_t"); expect_abort(stale_detach, "fiber_detach: stale fiber_t"); }
static void test_cross_thread_wake(void **s)
{
    (void)s;
    expect_abort(cross_wake_one, "fiber_waitq_wake_one from another thread");
    expect_abort(cross_wake_all, "fiber_waitq_wake_all from another thread");
    expect_abort(cross_release, "fiber_sem_release from another thread");
    expect_abort(cross_wait, "fiber_waitq_wait from another thread");
}
static void test_cross_thread_join(void **s)
{
    (void)s;
    expect_abort(xjoin_bare, "fiber_join: fiber");
    expect_abort(xjoin_bare, "belongs to another thread's scheduler");
    expect_abort(xjoin_sched, "belongs to another thread's scheduler");
}
static void test_overflow(void **s) { (void)s; expect_abort(overflow, "stack overflow in fiber"); expect_abort(overflow, "'deep-thinker'"); }

/* A function posted to the scheduler (fiber_sched_post: "fn must not park") that joins a
 * fiber it spawned, run by fiber_run()'s loop with nothing else runnable, no timer and no
 * I/O waiter: the join would run the scheduler inside its own loop, and must abort saying
 * so - not take the join's run path, which fiber_join() may only take outside the loop
 * (its attention word counts the loop). The poster posts once the other fiber runs, so
 * the message is read after that fiber has parked (the run queue is empty then). */
static fiber_waitq_t post_q = FIBER_WAITQ_INIT;
static volatile int post_go;
static void post_parked(void *arg)
{
    (void)arg;
    __atomic_store_n(&post_go, 1, __ATOMIC_RELEASE);
    fiber_waitq_wait(&post_q, FIBER_FOREVER);
}
static void post_joins(void *arg)
{
    (void)arg;
    fiber_join(fiber_spawn(nothing, NULL));
    fiber_waitq_wake_one(&post_q); /* unnoticed: let fiber_run() return, the child exit 0 */
}
static void *poster(void *h)
{
    while (!__atomic_load_n(&post_go, __ATOMIC_ACQUIRE))
        usleep(100);
    fiber_sched_post(h, post_joins, NULL);
    return NULL;
}
static void join_in_posted(void)
{
    fiber_sched_t *h = fiber_sched_self();
    pthread_t t;
    fiber_spawn(post_parked, NULL);
    pthread_create(&t, NULL, poster, h);
    fiber_run();
    pthread_join(t, NULL);
}
static void test_join_inside_the_loop(void **s)
{
    (void)s;
    expect_abort(join_in_posted, "the scheduler is already running on this thread");
}

/* The same posted join, run while fiber_sched_serve() idles in its poller with no fiber
 * (review rev5c): it must abort the same way. Before, the idle poller ran messages with
 * the loop not counted, so the join took the run path, or ran a scheduler nested inside
 * the inbox's drain that ran later messages before the rest of the batch. */
static fiber_sched_t *volatile serve_h;
static void post_joins_idle(void *arg)
{
    (void)arg;
    fiber_join(fiber_spawn(nothing, NULL));
}
static void *server(void *arg)
{
    (void)arg;
    __atomic_store_n(&serve_h, fiber_sched_self(), __ATOMIC_RELEASE);
    fiber_sched_serve();
    return NULL;
}
static void join_in_posted_while_serving(void)
{
    pthread_t t;
    pthread_create(&t, NULL, server, NULL);
    fiber_sched_t *h;
    while (!(h = __atomic_load_n(&serve_h, __ATOMIC_ACQUIRE)))
        usleep(100);
    fiber_sched_post(h, post_joins_idle, NULL);
    usleep(20000);
    fiber_sched_stop(h);
    pthread_join(t, NULL);
}
static void test_join_inside_serve(void **s)
{
    (void)s;
    expect_abort(join_in_posted_while_serving, "the scheduler is already running on this thread");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_twice),
        cmocka_unit_test(test_yield_outside),
        cmocka_unit_test(test_sleep_outside),
        cmocka_unit_test(test_join_self),
        cmocka_unit_test(test_join_detached),
        cmocka_unit_test(test_run_in_fiber),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_join_inside_the_loop),
        cmocka_unit_test(test_join_inside_serve),
        cmocka_unit_test(test_big_frame),
        cmocka_unit_test(test_stale_handle),
        cmocka_unit_test(test_cross_thread_wake),
        cmocka_unit_test(test_cross_thread_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
