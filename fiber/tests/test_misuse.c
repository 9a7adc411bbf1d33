/* Misuse and stack overflow end the process with a clear message. Each case runs in a
 * forked child; the parent checks that it died of SIGABRT and what it printed. */
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

static void nothing(void *arg) { (void)arg; }

static void expect_abort(void (*child)(void), const char *needle)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        child();
        _exit(0); /* reached only if the misuse went unnoticed */
    }
    close(p[1]);
    char buf[2048];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = 0;
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
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

static int pair[2];
static void reader(void *arg)
{
    (void)arg;
    char c;
    fiber_read(pair[0], &c, 1, FIBER_FOREVER);
}
static void two_readers(void)
{
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair);
    fiber_spawn(reader, NULL);
    fiber_spawn(reader, NULL);
    fiber_run();
}

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

static void test_join_twice(void **s) { (void)s; expect_abort(join_twice, "joined twice"); }
static void test_yield_outside(void **s) { (void)s; expect_abort(yield_outside, "fiber_yield called outside a fiber"); }
static void test_sleep_outside(void **s) { (void)s; expect_abort(sleep_outside, "called outside a fiber"); }
static void test_join_self(void **s) { (void)s; expect_abort(join_self, "joins itself"); }
static void test_join_detached(void **s) { (void)s; expect_abort(join_detached, "is detached"); }
static void test_run_in_fiber(void **s) { (void)s; expect_abort(run_in_fiber, "fiber_run called from inside fiber"); }
static void test_two_readers(void **s) { (void)s; expect_abort(two_readers, "two fibers wait to read it"); }
static void test_overflow(void **s) { (void)s; expect_abort(overflow, "stack overflow in fiber"); expect_abort(overflow, "'deep-thinker'"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_twice),
        cmocka_unit_test(test_yield_outside),
        cmocka_unit_test(test_sleep_outside),
        cmocka_unit_test(test_join_self),
        cmocka_unit_test(test_join_detached),
        cmocka_unit_test(test_run_in_fiber),
        cmocka_unit_test(test_two_readers),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
