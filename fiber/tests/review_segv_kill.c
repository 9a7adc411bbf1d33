/* Review finding: a SIGSEGV sent with kill(2)/raise(3)/tgkill(2) - an operator's
 * `kill -SEGV`, a supervisor, a crash reporter re-raising - no longer kills a process
 * that has made a scheduler. overflow.c's handler, finding no overflow and no earlier
 * handler, restores SIG_DFL and returns "so the faulting instruction runs again"; for a
 * signal that did not come from a fault nothing runs again, so the process carries on,
 * and the runtime's overflow report is gone for good. (For a sent signal si_addr is not
 * even an address: it overlaps si_pid and si_uid.)
 * Fix: after restoring SIG_DFL, re-raise when si_code <= 0 (SI_USER, SI_TKILL, SI_QUEUE),
 * or always raise(sig): it is blocked until the handler returns, then delivered. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "fiber.h"

static void nothing(void *arg) { (void)arg; }
static void raiser(void *arg) { (void)arg; raise(SIGSEGV); }

static void expect_killed_by_segv(int from_fiber)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler: the default action */
        fiber_join(fiber_spawn(nothing, NULL)); /* the runtime installs its handler */
        if (from_fiber)
            fiber_join(fiber_spawn(raiser, NULL));
        else
            kill(getpid(), SIGSEGV);
        _exit(0); /* still alive */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status))
        fail_msg("a SIGSEGV sent %s did not end the process (it exited %d)",
                 from_fiber ? "by raise() in a fiber" : "by kill() to the process",
                 WEXITSTATUS(status));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

static void test_kill_segv_kills(void **state) { (void)state; expect_killed_by_segv(0); }
static void test_raise_segv_in_fiber_kills(void **state) { (void)state; expect_killed_by_segv(1); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_segv_kills),
        cmocka_unit_test(test_raise_segv_in_fiber_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
