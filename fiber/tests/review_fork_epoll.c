/* Review finding: after fork(), parent and child share one epoll instance (and the
 * remote eventfd): the epoll fd is inherited, and an epoll instance is one open file
 * description, so the child's epoll_ctl calls edit the parent's interest list. The
 * runtime has no fork handler for them (the offload pool has one, offload.c).
 *
 * A child that closes an inherited descriptor with fiber_close() - as every close(2) of
 * unmodified code does once the hooks library (issue 12) interposes close, e.g. a fork
 * +exec helper closing descriptors before exec - issues EPOLL_CTL_DEL on the shared
 * instance, keyed by (file, fd number): it removes the PARENT's registration of that
 * file, and the parent's fiber waiting on it is never woken (here: until its deadline;
 * with FIBER_FOREVER, for ever). Likewise an event of either process may be reported to
 * the other's epoll_wait and dropped there (one-shot), and a wake-up of the child's
 * eventfd may be consumed by the parent.
 *
 * Expected: a child's use of the runtime does not disturb the parent (a pthread_atfork
 * child handler that gives the child its own epoll instance and eventfd and forgets the
 * inherited registrations without EPOLL_CTL_DEL), or fiber.h says fork() is not
 * supported once a scheduler exists. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull

static int sv[2];
static ssize_t got_n;
static int got_err;
static char got;

static void reader(void *arg)
{
    (void)arg;
    errno = 0;
    got_n = fiber_read(sv[0], &got, 1, fiber_now_ns() + 1000 * MS);
    got_err = errno;
}

static void forker(void *arg)
{
    (void)arg;
    fiber_yield(); /* the reader is parked (registered, armed) by now */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child does not want the parent's connection: it closes its copy. */
        fiber_close(sv[0]);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(write(sv[1], "A", 1), 1); /* now the parent's reader has its byte */
}

static void test_child_close_leaves_parent_waiter(void **state)
{
    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fiber_t *r = fiber_spawn(reader, NULL);
    fiber_t *f = fiber_spawn(forker, NULL);
    assert_int_equal(fiber_run(), 0);
    fiber_join(r);
    fiber_join(f);
    if (got_n < 0)
        fail_msg("the parent's reader was not woken by its data after a forked child closed "
                 "its inherited copy of the fd: %s", strerror(got_err));
    assert_int_equal(got_n, 1);
    assert_int_equal(got, 'A');
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_close_leaves_parent_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
