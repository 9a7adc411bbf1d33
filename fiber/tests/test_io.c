/* Fiber I/O: socketpairs, a loopback TCP echo, timeouts, refused connects, close. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

struct pp { int fd; int rounds; long sum; };

static void pinger(void *arg)
{
    struct pp *p = arg;
    for (int i = 0; i < p->rounds; i++) {
        int v = i, r;
        assert_int_equal(fiber_write(p->fd, &v, sizeof v, FIBER_FOREVER), sizeof v);
        assert_int_equal(fiber_read(p->fd, &r, sizeof r, FIBER_FOREVER), sizeof r);
        p->sum += r;
    }
}

static void ponger(void *arg)
{
    struct pp *p = arg;
    int v;
    ssize_t n;
    while ((n = fiber_read(p->fd, &v, sizeof v, FIBER_FOREVER)) == sizeof v) {
        v *= 2;
        assert_int_equal(fiber_write(p->fd, &v, sizeof v, FIBER_FOREVER), sizeof v);
    }
    assert_int_equal(n, 0); /* end of file once the pinger closed */
}

static void closer_pinger(void *arg)
{
    pinger(arg);
    fiber_close(((struct pp *)arg)->fd);
}

static void test_socketpair_pingpong(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct pp a = { .fd = sv[0], .rounds = 1000 }, b = { .fd = sv[1] };
    fiber_t *fa = fiber_spawn(closer_pinger, &a);
    fiber_t *fb = fiber_spawn(ponger, &b);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(a.sum, 2L * (999L * 1000L / 2));
    fiber_join(fa);
    fiber_join(fb);
    fiber_close(sv[1]);
}

static void timed_reader(void *arg)
{
    int fd = *(int *)arg;
    char c;
    uint64_t t0 = fiber_now_ns();
    errno = 0;
    assert_int_equal(fiber_read(fd, &c, 1, t0 + 5 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(fiber_now_ns() >= t0 + 5 * MS);
    /* And wait_fd, with a deadline already in the past, fails at once. */
    errno = 0;
    assert_int_equal(fiber_wait_fd(fd, EPOLLIN, 1), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void test_read_timeout(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_t *f = fiber_spawn(timed_reader, &sv[0]);
    fiber_join(f);
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

static void filler(void *arg)
{
    int fd = *(int *)arg;
    static char big[1 << 20];
    /* Nobody reads: the socket buffer fills and the write times out. */
    errno = 0;
    assert_int_equal(fiber_write(fd, big, sizeof big, fiber_now_ns() + 5 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void test_write_timeout_on_full_buffer(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_join(fiber_spawn(filler, &sv[0]));
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

/* ---- loopback TCP echo ---- */

struct echo { int lfd; uint16_t port; int clients; int served; long bytes; };

static void echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = fiber_read(fd, buf, sizeof buf, fiber_now_ns() + 2000 * MS)) > 0)
        if (fiber_write(fd, buf, (size_t)n, FIBER_FOREVER) != n)
            break;
    fiber_close(fd);
}

static void echo_server(void *arg)
{
    struct echo *e = arg;
    fiber_attr_t at = { .detached = 1, .name = "echo-conn" };
    for (int i = 0; i < e->clients; i++) {
        int c = fiber_accept(e->lfd, NULL, NULL, fiber_now_ns() + 2000 * MS);
        assert_true(c >= 0);
        fiber_spawn_ex(echo_conn, (void *)(intptr_t)c, &at);
        e->served++;
    }
}

static void echo_client(void *arg)
{
    struct echo *e = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(e->port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(fiber_connect(fd, (struct sockaddr *)&sa, sizeof sa, fiber_now_ns() + 2000 * MS), 0);
    char out[10000], in[10000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 7 + fd);
    assert_int_equal(fiber_write(fd, out, sizeof out, FIBER_FOREVER), sizeof out);
    size_t got = 0;
    while (got < sizeof in) {
        ssize_t n = fiber_read(fd, in + got, sizeof in - got, fiber_now_ns() + 2000 * MS);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(in, out, sizeof in);
    e->bytes += (long)got;
    fiber_close(fd);
}

static int listen_loopback(uint16_t *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 128), 0);
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return lfd;
}

static void test_tcp_echo(void **state)
{
    (void)state;
    struct echo e = { .clients = 20 };
    e.lfd = listen_loopback(&e.port);
    fiber_t *srv = fiber_spawn(echo_server, &e);
    fiber_t *cl[20];
    for (int i = 0; i < 20; i++)
        cl[i] = fiber_spawn(echo_client, &e);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(e.served, 20);
    assert_int_equal(e.bytes, 20L * 10000);
    fiber_join(srv);
    for (int i = 0; i < 20; i++)
        fiber_join(cl[i]);
    fiber_close(e.lfd);
}

static void accept_timeout(void *arg)
{
    int lfd = *(int *)arg;
    errno = 0;
    assert_int_equal(fiber_accept(lfd, NULL, NULL, fiber_now_ns() + 3 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void refused(void *arg)
{
    uint16_t port = *(uint16_t *)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    errno = 0;
    assert_int_equal(fiber_connect(fd, (struct sockaddr *)&sa, sizeof sa, fiber_now_ns() + 1000 * MS), -1);
    assert_int_equal(errno, ECONNREFUSED);
    fiber_close(fd);
}

static void test_accept_timeout_and_refused_connect(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = listen_loopback(&port);
    fiber_join(fiber_spawn(accept_timeout, &lfd));
    fiber_close(lfd); /* nobody listens on port now */
    fiber_join(fiber_spawn(refused, &port));
}

struct closing { int fd; int err; };

static void blocked_reader(void *arg)
{
    struct closing *c = arg;
    char ch;
    errno = 0;
    assert_int_equal(fiber_read(c->fd, &ch, 1, FIBER_FOREVER), -1);
    c->err = errno;
}

static void closer(void *arg)
{
    struct closing *c = arg;
    fiber_yield(); /* let the reader park first */
    fiber_close(c->fd);
}

static void test_close_wakes_waiter(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct closing c = { .fd = sv[0] };
    fiber_t *r = fiber_spawn(blocked_reader, &c);
    fiber_t *k = fiber_spawn(closer, &c);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(c.err, EBADF);
    fiber_join(r);
    fiber_join(k);
    fiber_close(sv[1]);
}

static void waiter_fd(void *arg)
{
    int *sv = arg;
    /* Readiness that arrived before the wait is seen (edge already consumed or not). */
    char ch = 'x';
    assert_int_equal(write(sv[1], &ch, 1), 1);
    int ev = fiber_wait_fd(sv[0], EPOLLIN, fiber_now_ns() + 1000 * MS);
    assert_true(ev & EPOLLIN);
    assert_int_equal(read(sv[0], &ch, 1), 1);
    ev = fiber_wait_fd(sv[0], EPOLLOUT, fiber_now_ns() + 1000 * MS);
    assert_true(ev & EPOLLOUT);
    errno = 0;
    assert_int_equal(fiber_wait_fd(sv[0], 0, FIBER_FOREVER), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_wait_fd(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_join(fiber_spawn(waiter_fd, sv));
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

static void write_to_gone_peer(void *arg)
{
    int *sv = arg;
    char buf[64] = { 0 };
    close(sv[1]);
    errno = 0;
    /* The first write may land in the buffer before the reset is seen; the next fails. */
    ssize_t r = fiber_write(sv[0], buf, sizeof buf, FIBER_FOREVER);
    if (r >= 0)
        r = fiber_write(sv[0], buf, sizeof buf, FIBER_FOREVER);
    assert_int_equal(r, -1);
    assert_int_equal(errno, EPIPE);
}

static void test_write_to_closed_peer_is_epipe_not_sigpipe(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    /* SIGPIPE's default action would end the test process right here. */
    fiber_join(fiber_spawn(write_to_gone_peer, sv));
    fiber_close(sv[0]);
}

static void eagain_waiter(void *arg)
{
    int fd = *(int *)arg;
    char c;
    assert_int_equal(read(fd, &c, 1), -1); /* nothing there yet */
    assert_true(errno == EAGAIN);
    int ev = fiber_wait_fd_after_eagain(fd, EPOLLIN, fiber_now_ns() + 2000 * MS);
    assert_true(ev & EPOLLIN);
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'z');
}

static void late_writer(void *arg)
{
    int fd = *(int *)arg;
    fiber_sleep_ns(2 * MS);
    assert_int_equal(write(fd, "z", 1), 1);
}

static void test_wait_after_eagain(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_t *w = fiber_spawn(eagain_waiter, &sv[0]);
    fiber_t *l = fiber_spawn(late_writer, &sv[1]);
    assert_int_equal(fiber_run(), 0);
    fiber_join(w);
    fiber_join(l);
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

static int exhausted_sv[2];
static void exhausted_pinger(void *arg)
{
    (void)arg;
    char c = 0;
    /* Out of descriptors by now: the poller must already exist for this to park. */
    ssize_t n = fiber_read(exhausted_sv[0], &c, 1, fiber_now_ns() + 2000 * MS);
    _exit(n == 1 && c == 'q' ? 0 : 3);
}
static void exhausted_writer(void *arg)
{
    (void)arg;
    fiber_sleep_ns(1 * MS);
    if (write(exhausted_sv[1], "q", 1) != 1)
        _exit(4);
}

static void test_io_works_when_out_of_descriptors(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A fresh process: its scheduler is made by the first spawn, before the
         * descriptors run out; the first I/O wait comes after. */
        struct rlimit rl = { 64, 64 };
        setrlimit(RLIMIT_NOFILE, &rl);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, exhausted_sv) != 0)
            _exit(5);
        fiber_spawn(exhausted_pinger, NULL);
        fiber_spawn(exhausted_writer, NULL);
        while (dup(0) >= 0) {}
        if (errno != EMFILE)
            _exit(6);
        fiber_run();
        _exit(7);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}


/* ---- missed wake-ups (issue 10) ---- */

/* Fills fd's send buffer until the kernel says EAGAIN. */
static void fill_send_buffer(int fd)
{
    static char chunk[65536];
    while (write(fd, chunk, sizeof chunk) > 0) {}
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void drain(int fd)
{
    static char buf[65536]; /* not on the 64 KiB fiber stack */
    while (read(fd, buf, sizeof buf) > 0) {}
}

struct rw { int sv[2]; int ev; int err; };

static void rw_waiter(void *arg)
{
    struct rw *t = arg;
    /* Nothing to read and no room to write: one fiber waits for either (mock-llm's
     * backed-up stream: the client may send more, or drain). */
    errno = 0;
    t->ev = fiber_wait_fd(t->sv[0], EPOLLIN | EPOLLOUT, fiber_now_ns() + 1000 * MS);
    t->err = errno;
}

static void rw_drainer(void *arg)
{
    struct rw *t = arg;
    fiber_sleep_ns(2 * MS); /* the waiter is parked by now */
    drain(t->sv[1]);         /* room to write: an EPOLLOUT-only event on sv[0] */
}

static void test_read_write_waiter_woken_by_write_event(void **state)
{
    (void)state;
    struct rw t = { .ev = 0 };
    make_pair(t.sv);
    fill_send_buffer(t.sv[0]);
    fiber_t *w = fiber_spawn(rw_waiter, &t);
    fiber_t *d = fiber_spawn(rw_drainer, &t);
    assert_int_equal(fiber_run(), 0);
    if (t.ev < 0)
        fail_msg("the read+write waiter was not woken by writability: %s", strerror(t.err));
    assert_true(t.ev & EPOLLOUT);
    assert_false(t.ev & EPOLLIN);
    fiber_join(w);
    fiber_join(d);
    fiber_close(t.sv[0]);
    fiber_close(t.sv[1]);
}

/* A reader that parks once on fd (so the poller registers it), then returns. */
static void park_once(void *arg)
{
    int fd = *(int *)arg;
    char c;
    /* Times out with the registration still armed for reading. */
    errno = 0;
    assert_int_equal(fiber_read(fd, &c, 1, fiber_now_ns() + 1 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

/* Makes fd number `at` name one end of a fresh socketpair; *peer gets the other end. */
static void pair_at(int at, int *peer)
{
    int sv[2];
    make_pair(sv);
    if (sv[0] == at || sv[1] == at) { /* the lowest free numbers: it landed there itself */
        *peer = sv[0] == at ? sv[1] : sv[0];
        return;
    }
    assert_int_equal(dup2(sv[0], at), at);
    close(sv[0]);
    *peer = sv[1];
}

struct reuse { int fd, peer, stale_peer; char got; int err; };

static void reuse_reader(void *arg)
{
    struct reuse *r = arg;
    errno = 0;
    ssize_t n = fiber_read(r->fd, &r->got, 1, fiber_now_ns() + 1000 * MS);
    r->err = n == 1 ? 0 : errno;
}

static void reuse_writer(void *arg)
{
    struct reuse *r = arg;
    fiber_sleep_ns(2 * MS);
    if (r->stale_peer >= 0) {
        /* The old file is alive (dup'd) and its registration still names fd number
         * r->fd: its event must not wake the reader of the new file. */
        assert_int_equal(write(r->stale_peer, "A", 1), 1);
        fiber_sleep_ns(3 * MS);
    }
    assert_int_equal(write(r->peer, "B", 1), 1);
}

static void run_reuse(struct reuse *r)
{
    r->got = 0;
    r->err = -1;
    fiber_t *a = fiber_spawn(reuse_reader, r);
    fiber_t *b = fiber_spawn(reuse_writer, r);
    assert_int_equal(fiber_run(), 0);
    fiber_join(a);
    fiber_join(b);
    if (r->err)
        fail_msg("reader of the reused fd %d: %s", r->fd, strerror(r->err));
    assert_int_equal(r->got, 'B');
}

static void test_fd_reused_after_plain_close(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_join(fiber_spawn(park_once, &sv[0]));
    /* A library closes its own descriptor, not through fiber_close(); the number comes
     * back for a new socket. */
    int num = sv[0];
    close(sv[0]);
    close(sv[1]);
    struct reuse r = { .fd = num, .stale_peer = -1 };
    pair_at(num, &r.peer);
    run_reuse(&r);
    fiber_close(r.fd);
    fiber_close(r.peer);
}

static void test_stale_registration_of_dup_wakes_nobody(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_join(fiber_spawn(park_once, &sv[0]));
    /* The old file stays open through a dup (as after a fork), so epoll keeps its
     * registration under fd number sv[0] even after the close. */
    int num = sv[0], keep = dup(sv[0]);
    assert_true(keep >= 0);
    close(sv[0]);
    struct reuse r = { .fd = num, .stale_peer = sv[1] };
    pair_at(num, &r.peer);
    run_reuse(&r);

    /* And the old file can come back under its old number: it must work there too. */
    fiber_fd_forget(num);
    close(num);
    close(r.peer);
    assert_int_equal(dup2(keep, num), num);
    close(keep);
    drain(num); /* the "A" written above */
    struct reuse back = { .fd = num, .peer = sv[1], .stale_peer = -1 };
    run_reuse(&back);
    fiber_close(num);
    fiber_close(sv[1]);
}

static void writer_parks(void *arg)
{
    int *sv = arg;
    fill_send_buffer(sv[0]);
    errno = 0;
    /* Times out with the registration armed for writing. */
    assert_int_equal(fiber_write(sv[0], "x", 1, fiber_now_ns() + 1 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

struct wreuse { int fd, peer; ssize_t n; int err; };

static void wreuse_writer(void *arg)
{
    struct wreuse *w = arg;
    static char big[1 << 20];
    errno = 0;
    w->n = fiber_write(w->fd, big, sizeof big, fiber_now_ns() + 2000 * MS);
    w->err = errno;
}

static void wreuse_reader(void *arg)
{
    struct wreuse *w = arg;
    static char buf[65536];
    size_t got = 0;
    while (got < (1 << 20)) {
        ssize_t n = fiber_read(w->peer, buf, sizeof buf, fiber_now_ns() + 2000 * MS);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static void test_writer_on_reused_fd(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    fiber_join(fiber_spawn(writer_parks, sv));
    int num = sv[0];
    close(sv[0]);
    close(sv[1]);
    struct wreuse w = { .fd = num };
    pair_at(num, &w.peer);
    fiber_t *a = fiber_spawn(wreuse_writer, &w);
    fiber_t *b = fiber_spawn(wreuse_reader, &w);
    assert_int_equal(fiber_run(), 0);
    fiber_join(a);
    fiber_join(b);
    if (w.n < 0)
        fail_msg("writer on the reused fd: %s", strerror(w.err));
    assert_int_equal(w.n, 1 << 20);
    fiber_close(w.fd);
    fiber_close(w.peer);
}

/* ---- several waiters on one fd ---- */

struct crowd {
    int fd;
    int order[16];  /* which reader got the i-th byte */
    int got;        /* bytes read so far */
    int eof, ebadf, timedout;
    int empty_wakes; /* wake-ups that found nothing to read */
};

struct crowd_member { struct crowd *c; int id; uint64_t deadline; };

/* fiber_read(), spelled out to count the wake-ups that find nothing. */
static void crowd_reader(void *arg)
{
    struct crowd_member *m = arg;
    char ch;
    ssize_t n;
    int woken = 0;
    errno = 0;
    while ((n = read(m->c->fd, &ch, 1)) < 0 && errno == EAGAIN) {
        m->c->empty_wakes += woken;
        if (fiber_wait_fd_after_eagain(m->c->fd, EPOLLIN, m->deadline) < 0)
            break;
        woken = 1;
    }
    if (n == 1)
        m->c->order[m->c->got++] = m->id;
    else if (n == 0)
        m->c->eof++;
    else if (errno == EBADF)
        m->c->ebadf++;
    else if (errno == ETIMEDOUT)
        m->c->timedout++;
}

static int crowd_peer;

/* One byte at a time, each after the readers have had a round to take the last one. */
static void trickle(void *arg)
{
    int n = (int)(intptr_t)arg;
    fiber_sleep_ns(2 * MS); /* every reader is parked */
    for (int i = 0; i < n; i++) {
        assert_int_equal(write(crowd_peer, "x", 1), 1);
        fiber_sleep_ns(1 * MS);
    }
}

/* Readiness wakes one waiter, the longest waiting: eight readers of one socket, eight
 * bytes one by one, each reader gets one, in the order they parked. */
static void test_readers_share_an_fd_in_fifo_order(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct crowd c = { .fd = sv[0] };
    struct crowd_member m[8];
    fiber_t *f[8];
    crowd_peer = sv[1];
    for (int i = 0; i < 8; i++) {
        m[i] = (struct crowd_member){ &c, i, fiber_now_ns() + 2000 * MS };
        f[i] = fiber_spawn(crowd_reader, &m[i]);
    }
    fiber_t *w = fiber_spawn(trickle, (void *)(intptr_t)8);
    assert_int_equal(fiber_run(), 0);
    for (int i = 0; i < 8; i++)
        fiber_join(f[i]);
    fiber_join(w);
    assert_int_equal(c.got, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(c.order[i], i);
    /* One reader woken per byte, not all of them (that would be 7 + 6 + ... = 28). */
    assert_true(c.empty_wakes < 4);
    fiber_close(sv[0]);
    fiber_close(sv[1]);
}

/* A waiter leaving from the middle of the list (its deadline) leaves the others in
 * order; the peer's close then wakes every remaining reader at once (end of file). */
static void middle_controller(void *arg)
{
    struct crowd *c = arg;
    fiber_sleep_ns(6 * MS); /* the middle reader (3 ms) has timed out */
    assert_int_equal(c->timedout, 1);
    assert_int_equal(c->got, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(write(crowd_peer, "x", 1), 1);
        fiber_sleep_ns(1 * MS);
    }
    close(crowd_peer);
}

static void test_middle_waiter_times_out_and_hangup_wakes_all(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct crowd c = { .fd = sv[0] };
    struct crowd_member m[5];
    fiber_t *f[5];
    crowd_peer = sv[1];
    for (int i = 0; i < 5; i++) {
        m[i] = (struct crowd_member){ &c, i, fiber_now_ns() + (i == 2 ? 3 : 2000) * MS };
        f[i] = fiber_spawn(crowd_reader, &m[i]);
    }
    fiber_t *k = fiber_spawn(middle_controller, &c);
    assert_int_equal(fiber_run(), 0);
    for (int i = 0; i < 5; i++)
        fiber_join(f[i]);
    fiber_join(k);
    assert_int_equal(c.timedout, 1);
    assert_int_equal(c.got, 2);
    assert_int_equal(c.order[0], 0);
    assert_int_equal(c.order[1], 1);
    assert_int_equal(c.eof, 2); /* readers 3 and 4, both woken by the one hang-up */
    fiber_close(sv[0]);
}

/* fiber_close() wakes every waiter of both directions with EBADF. */
struct both { int fd; int ebadf; };
static void both_reader(void *arg)
{
    struct both *b = arg;
    char ch;
    if (fiber_read(b->fd, &ch, 1, fiber_now_ns() + 2000 * MS) < 0 && errno == EBADF)
        b->ebadf++;
}
static void both_writer(void *arg)
{
    struct both *b = arg;
    static char big[1 << 20];
    if (fiber_write(b->fd, big, sizeof big, fiber_now_ns() + 2000 * MS) < 0 && errno == EBADF)
        b->ebadf++;
}
static void both_closer(void *arg)
{
    struct both *b = arg;
    fiber_sleep_ns(2 * MS);
    fiber_close(b->fd);
}

static void test_close_wakes_every_waiter(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    struct both b = { sv[0], 0 };
    fiber_t *f[5] = { fiber_spawn(both_reader, &b), fiber_spawn(both_reader, &b),
                      fiber_spawn(both_writer, &b), fiber_spawn(both_writer, &b),
                      fiber_spawn(both_closer, &b) };
    assert_int_equal(fiber_run(), 0);
    for (int i = 0; i < 5; i++)
        fiber_join(f[i]);
    assert_int_equal(b.ebadf, 4);
    fiber_close(sv[1]);
}

/* ---- fiber_wait_fds ---- */

#define NPAIRS 3
static int wp[NPAIRS][2];

static void poke(void *arg)
{
    int i = (int)(intptr_t)arg;
    fiber_sleep_ns(3 * MS);
    assert_int_equal(write(wp[i][1], "p", 1), 1);
}

static void fds_waiter(void *arg)
{
    (void)arg;
    struct pollfd p[NPAIRS + 1];
    for (int i = 0; i < NPAIRS; i++)
        p[i] = (struct pollfd){ .fd = wp[i][0], .events = POLLIN };
    p[NPAIRS] = (struct pollfd){ .fd = -1, .events = POLLIN }; /* ignored */
    /* Nothing ready: parks until the poke on pair 1 (not a busy loop: it took a while). */
    uint64_t t0 = fiber_now_ns();
    assert_int_equal(fiber_wait_fds(p, NPAIRS + 1, t0 + 2000 * MS), 1);
    assert_true(fiber_now_ns() - t0 >= 2 * MS);
    assert_int_equal(p[0].revents, 0);
    assert_int_equal(p[1].revents, POLLIN);
    assert_int_equal(p[2].revents, 0);
    assert_int_equal(p[3].revents, 0);
    /* Still readable: reported at once, without parking. */
    assert_int_equal(fiber_wait_fds(p, NPAIRS, FIBER_FOREVER), 1);
    char ch;
    assert_int_equal(read(wp[1][0], &ch, 1), 1);
    /* The deadline: 0, as poll(2) times out. */
    t0 = fiber_now_ns();
    assert_int_equal(fiber_wait_fds(p, NPAIRS, t0 + 2 * MS), 0);
    assert_true(fiber_now_ns() >= t0 + 2 * MS);
    for (int i = 0; i < NPAIRS; i++)
        assert_int_equal(p[i].revents, 0);
    /* Writable at once, and both directions on one entry. */
    struct pollfd q = { .fd = wp[0][0], .events = POLLIN | POLLOUT };
    assert_int_equal(fiber_wait_fds(&q, 1, FIBER_FOREVER), 1);
    assert_int_equal(q.revents, POLLOUT);
    /* No fd at all: a sleep until the deadline. */
    t0 = fiber_now_ns();
    assert_int_equal(fiber_wait_fds(NULL, 0, t0 + 1 * MS), 0);
    assert_true(fiber_now_ns() >= t0 + 1 * MS);
}

static void test_wait_fds(void **state)
{
    (void)state;
    for (int i = 0; i < NPAIRS; i++)
        make_pair(wp[i]);
    fiber_t *w = fiber_spawn(fds_waiter, NULL);
    fiber_t *k = fiber_spawn(poke, (void *)(intptr_t)1);
    assert_int_equal(fiber_run(), 0);
    fiber_join(w);
    fiber_join(k);
    for (int i = 0; i < NPAIRS; i++) {
        fiber_close(wp[i][0]);
        fiber_close(wp[i][1]);
    }
}

/* Many entries (the nodes no longer fit on the stack), a hang-up as the waking event,
 * and an fd fiber_close()d by another fiber while waiting: POLLNVAL, even though its
 * number is reused for a new socket before the waiter runs. */
#define MANY 40
static int many[MANY][2];
static int reused_peer = -1;

static void many_waiter(void *arg)
{
    (void)arg;
    struct pollfd p[MANY];
    for (int i = 0; i < MANY; i++)
        p[i] = (struct pollfd){ .fd = many[i][0], .events = POLLIN };
    assert_int_equal(fiber_wait_fds(p, MANY, fiber_now_ns() + 2000 * MS), 1);
    assert_true(p[MANY - 1].revents & POLLHUP);
    /* Again, with the last one out: another fiber closes entry 5 while we wait. */
    assert_int_equal(fiber_wait_fds(p, MANY - 1, fiber_now_ns() + 2000 * MS), 1);
    assert_int_equal(p[5].revents, POLLNVAL);
}

static void many_closer(void *arg)
{
    (void)arg;
    fiber_sleep_ns(2 * MS);
    close(many[MANY - 1][1]); /* hang-up on the last entry */
    fiber_sleep_ns(2 * MS);
    int num = many[5][0];
    fiber_close(num);
    /* The number comes back at once, for a socket that is readable. */
    int sv[2];
    make_pair(sv);
    if (sv[0] != num) {
        assert_int_equal(dup2(sv[0], num), num);
        close(sv[0]);
    }
    assert_int_equal(write(sv[1], "n", 1), 1);
    reused_peer = sv[1];
}

static void test_wait_fds_many_hangup_and_close(void **state)
{
    (void)state;
    for (int i = 0; i < MANY; i++)
        make_pair(many[i]);
    fiber_t *w = fiber_spawn(many_waiter, NULL);
    fiber_t *k = fiber_spawn(many_closer, NULL);
    assert_int_equal(fiber_run(), 0);
    fiber_join(w);
    fiber_join(k);
    for (int i = 0; i < MANY; i++) {
        fiber_close(many[i][0]);
        if (i != MANY - 1)
            fiber_close(many[i][1]);
    }
    close(reused_peer);
}

/* ---- stopped and continued ---------------------------------------------------------------
 * A process freezer (scripts/stopcont.py, a quiet benchmark window) stops the process and
 * continues it, no handler run. Linux then fails the scheduler's epoll_wait with EINTR
 * (signal(7)); that must cost the fibers nothing but time: no EINTR, no short read, no
 * deadline cut short or lost. The stopper is a child that stops and continues us until
 * told to end through shared memory (killing it could leave us stopped). */

#include "stopper.h"

struct sc { int sv[2]; size_t got; int naps; int timed_out; };

static void sc_writer(void *arg)
{
    struct sc *c = arg;
    char b[1000];
    memset(b, 'w', sizeof b);
    for (int i = 0; i < 60; i++) {
        fiber_sleep_ns(2 * MS);
        assert_int_equal(fiber_write(c->sv[1], b, sizeof b, fiber_now_ns() + 10000 * MS), sizeof b);
    }
}

static void sc_reader(void *arg)
{
    struct sc *c = arg;
    char b[4096];
    while (c->got < 60000) {
        errno = 0;
        ssize_t n = fiber_read(c->sv[0], b, sizeof b, fiber_now_ns() + 10000 * MS);
        if (n <= 0)
            fail_msg("fiber_read after %zu bytes: %zd (%s)", c->got, n, strerror(errno));
        c->got += (size_t)n;
    }
}

static void sc_sleeper(void *arg)
{
    struct sc *c = arg;
    for (int i = 0; i < 60; i++) {
        uint64_t t0 = fiber_now_ns();
        fiber_sleep_ns(3 * MS);
        assert_true(fiber_now_ns() - t0 >= 3 * MS); /* never cut short */
        c->naps++;
    }
}

/* A deadline set before the stops is kept: ETIMEDOUT, not EINTR, not earlier. */
static void sc_deadline(void *arg)
{
    struct sc *c = arg;
    int sv[2];
    make_pair(sv);
    char b[8];
    uint64_t t0 = fiber_now_ns();
    errno = 0;
    ssize_t n = fiber_read(sv[0], b, sizeof b, t0 + 150 * MS);
    int e = errno;
    uint64_t el = fiber_now_ns() - t0;
    fiber_close(sv[0]);
    fiber_close(sv[1]);
    if (n != -1 || e != ETIMEDOUT)
        fail_msg("fiber_read to a deadline: %zd (%s), not -1 ETIMEDOUT", n, strerror(e));
    assert_true(el >= 150 * MS);
    c->timed_out = 1;
}

static void test_stopped_and_continued(void **state)
{
    (void)state;
    struct sc c = { .got = 0 };
    make_pair(c.sv);
    struct echo e = { .clients = 20 };
    e.lfd = listen_loopback(&e.port);
    struct sc_shared *sh = sc_stopper_start();
    fiber_t *srv = fiber_spawn(echo_server, &e), *cl[20];
    for (int i = 0; i < 20; i++)
        cl[i] = fiber_spawn(echo_client, &e);
    fiber_t *f[4] = { fiber_spawn(sc_writer, &c), fiber_spawn(sc_reader, &c),
                      fiber_spawn(sc_sleeper, &c), fiber_spawn(sc_deadline, &c) };
    int rc = fiber_run();
    int err = errno;
    int stops = sh->stops;
    sc_stopper_end(NULL);
    if (rc != 0)
        fail_msg("fiber_run under %d stops: %d (%s)", stops, rc, strerror(err));
    for (int i = 0; i < 4; i++)
        fiber_join(f[i]);
    fiber_join(srv);
    for (int i = 0; i < 20; i++)
        fiber_join(cl[i]);
    assert_int_equal(c.got, 60000);
    assert_int_equal(c.naps, 60);
    assert_int_equal(c.timed_out, 1);
    assert_int_equal(e.served, 20);
    assert_int_equal(e.bytes, 20L * 10000);
    fiber_close(c.sv[0]);
    fiber_close(c.sv[1]);
    fiber_close(e.lfd);
    if (getenv("FIBER_TEST_DEBUG"))
        fprintf(stderr, "stopped and continued %d times\n", stops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socketpair_pingpong),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_write_timeout_on_full_buffer),
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_accept_timeout_and_refused_connect),
        cmocka_unit_test(test_close_wakes_waiter),
        cmocka_unit_test(test_wait_fd),
        cmocka_unit_test(test_write_to_closed_peer_is_epipe_not_sigpipe),
        cmocka_unit_test(test_wait_after_eagain),
        cmocka_unit_test(test_io_works_when_out_of_descriptors),
        cmocka_unit_test(test_read_write_waiter_woken_by_write_event),
        cmocka_unit_test(test_fd_reused_after_plain_close),
        cmocka_unit_test(test_stale_registration_of_dup_wakes_nobody),
        cmocka_unit_test(test_writer_on_reused_fd),
        cmocka_unit_test(test_readers_share_an_fd_in_fifo_order),
        cmocka_unit_test(test_middle_waiter_times_out_and_hangup_wakes_all),
        cmocka_unit_test(test_close_wakes_every_waiter),
        cmocka_unit_test(test_wait_fds),
        cmocka_unit_test(test_wait_fds_many_hangup_and_close),
        cmocka_unit_test_teardown(test_stopped_and_continued, sc_stopper_end),
    };
    if (getenv("FIBER_TEST_FILTER")) /* run one test alone: FIBER_TEST_FILTER=test_wait_fd */
        cmocka_set_test_filter(getenv("FIBER_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
