/* Review finding: the stale-handle check (a 16-bit generation in bits 48-63 of fiber_t)
 * misses a handle kept across a multiple of 65,536 reuses of its record. A pooled record
 * is reused by every spawn that follows a join (LIFO pool), so in a loop spawning and
 * joining one fiber at a time - a connection handler per request - a stale handle kept
 * for 65,536 requests joins (or detaches) whichever fiber the record runs now, silently:
 * the wrong fiber is reclaimed while it still runs. fiber.h states the check without its
 * limit. Also: a fresh record starts at generation 1 (memset), so after fiber_pool_trim()
 * or thread exit a new record mapped at the same address accepts the old handles of
 * records used once. Expected: the abort ("stale fiber_t"), or fiber.h saying the check
 * is modulo 2^16 reuses. Cheap widening: records are 64-byte aligned, so 6 low bits are
 * free too (22 bits), and fresh records can take their first generation from a
 * per-thread counter rather than 0. Runs in a forked child (it must abort). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"
#include "fork_child.h"

static void nothing(void *arg) { (void)arg; }
static void parked(void *arg) { fiber_waitq_wait(arg, FIBER_FOREVER); }

static void child(void)
{
    fiber_t *old = fiber_spawn(nothing, NULL);
    fiber_join(old); /* `old` is stale from here on */
    for (int i = 0; i < 65535; i++)
        fiber_join(fiber_spawn(nothing, NULL)); /* the same record each time */
    static fiber_waitq_t q = FIBER_WAITQ_INIT;
    fiber_t *now = fiber_spawn(parked, &q); /* the record's 65,537th fiber */
    fiber_run(); /* parks it (EDEADLK) */
    fiber_detach(old); /* should abort: a stale handle */
    _exit(now == old ? 3 : 4);
}

static void test_stale_handle_after_65536_reuses(void **state)
{
    (void)state;
    char buf[1024];
    int status = fork_child(child, buf, sizeof buf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        fail_msg("a handle kept across 65,536 reuses of its record equals the handle of the "
                 "fiber the record runs now: fiber_detach() acted on that fiber silently");
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(buf, "stale fiber_t"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_handle_after_65536_reuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
