/* Review finding: a reader that readiness has already woken, but that has not run yet,
 * is not told when another fiber fiber_close()s its fd in between. It retries read(2)
 * on whatever the fd number names by then: with the number reused for a new socket (an
 * accept, a connect), it reads another connection's bytes.
 *
 * This is the idle-connection reaper of every server (one fiber closes a connection
 * whose reader has just been woken), and with the hooks library (issue 12) every
 * close(2) of unmodified code is a fiber_close(). fiber.h promises that fiber_close()
 * "is how a waiting fiber learns that its fd is gone (EBADF)"; a fiber inside
 * fiber_read() that is READY rather than parked is still waiting from its caller's
 * point of view. Go's poller guards the same window with the fd's reference count and
 * its pollDesc "closing" flag, checked after every wake-up.
 *
 * The order is made deterministic with the scheduler's own rule: between two rounds with
 * fibers ready, expired timers are made runnable before I/O events, so the closer (a
 * timer) runs before the woken reader. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull

struct scene {
    int fd, peer;        /* the connection the reader reads */
    int new_peer;        /* the peer of the socket that takes fd's number afterwards */
    ssize_t n;
    char got;
    int err;
};

static void reader(void *arg)
{
    struct scene *c = arg;
    errno = 0;
    c->n = fiber_read(c->fd, &c->got, 1, fiber_now_ns() + 2000 * MS);
    c->err = errno;
}

static void spin_ms(unsigned ms)
{
    uint64_t end = fiber_now_ns() + ms * MS;
    while (fiber_now_ns() < end) {}
}

/* Writes the reader's byte, then keeps the thread busy past the closer's deadline, so
 * that the next round starts with both the closer's timer and the reader's event due. */
static void writer(void *arg)
{
    struct scene *c = arg;
    assert_int_equal(write(c->peer, "A", 1), 1);
    spin_ms(5);
}

/* The reaper: closes the reader's fd; the number is then reused for a new connection
 * (here a socketpair placed at that number, as the lowest free number would be). */
static void closer(void *arg)
{
    struct scene *c = arg;
    fiber_sleep_ns(1 * MS);
    int num = c->fd;
    assert_int_equal(fiber_close(num), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    if (sv[0] != num) {
        assert_int_equal(dup2(sv[0], num), num);
        close(sv[0]);
    }
    c->new_peer = sv[1];
    /* The new connection's client sends its first byte. */
    assert_int_equal(write(sv[1], "X", 1), 1);
}

static void test_close_of_a_woken_reader_fd(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct scene c = { .fd = sv[0], .peer = sv[1], .new_peer = -1, .n = -2 };
    fiber_t *r = fiber_spawn(reader, &c);  /* runs first: EAGAIN, parks */
    fiber_t *k = fiber_spawn(closer, &c);  /* sleeps 1 ms */
    fiber_t *w = fiber_spawn(writer, &c);  /* data for the reader, then 5 ms busy */
    assert_int_equal(fiber_run(), 0);
    fiber_join(r);
    fiber_join(k);
    fiber_join(w);
    if (c.n == 1 && c.got == 'X')
        fail_msg("the reader of the closed fd read 'X', the first byte of the connection "
                 "that reused its number, instead of failing with EBADF");
    if (c.n == 1)
        fail_msg("the reader read '%c' from an fd that was closed under it (expected EBADF)",
                 c.got);
    assert_int_equal(c.n, -1);
    assert_int_equal(c.err, EBADF);
    fiber_close(c.fd);
    close(c.new_peer);
    close(c.peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_of_a_woken_reader_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
