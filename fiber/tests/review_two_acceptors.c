/* Review finding (for issue 12): two fibers blocked in accept() on one listening socket
 * abort the process ("fd N: two fibers wait to read it at once", io.c io_park). The
 * header documents one reader and one writer per fd, and test_misuse checks the abort,
 * but the hooks library will run unmodified code: a server with several acceptors on one
 * listener (the pre-threaded design: N threads blocked in accept(2) on one socket), or two
 * readers of one pipe or eventfd, works with threads and with Go (its fdMutex queues the
 * second reader; the netpoller still has one waiter per direction), and here crashes.
 * Expected: a second waiter queues behind the first (a wait list per direction, woken one
 * at a time on EPOLLIN for a listener; all on EPOLLERR/HUP) instead of aborting.
 * Runs in a forked child, since today it aborts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
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
#include "fork_child.h"

#define MS 1000000ull

static int lfd;
static struct sockaddr_in addr;
static int accepted;

static void acceptor(void *arg)
{
    (void)arg;
    int c = fiber_accept(lfd, NULL, NULL, fiber_now_ns() + 2000 * MS);
    if (c >= 0) {
        accepted++;
        fiber_close(c);
    }
}

static void connector(void *arg)
{
    (void)arg;
    fiber_sleep_ns(2 * MS); /* both acceptors are parked */
    for (int i = 0; i < 2; i++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0 || fiber_connect(s, (struct sockaddr *)&addr, sizeof addr,
                                   fiber_now_ns() + 2000 * MS) != 0)
            _exit(6);
        fiber_sleep_ns(1 * MS);
        fiber_close(s);
    }
}

static void child(void)
{
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(lfd, 16) != 0 || getsockname(lfd, (struct sockaddr *)&addr, &len) != 0)
        _exit(5);
    fiber_spawn(acceptor, NULL);
    fiber_spawn(acceptor, NULL);
    fiber_spawn(connector, NULL);
    fiber_run();
    _exit(accepted == 2 ? 0 : 3);
}

static void test_two_acceptors_on_one_listener(void **state)
{
    (void)state;
    char buf[1024];
    int status = fork_child(child, buf, sizeof buf);
    if (WIFSIGNALED(status))
        fail_msg("two fibers accepting on one listener: killed by signal %d: %s",
                 WTERMSIG(status), buf);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_acceptors_on_one_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
