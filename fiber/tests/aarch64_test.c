/* The aarch64 build of the runtime, run under qemu-user: registers across the switch,
 * then the scheduler, timers and I/O on the same build. Plain asserts with a count,
 * since no aarch64 cmocka is installed; prints "N passed, 0 failed". */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fiber.h"
#include "fiber_context.h"

static int passed, failed;
#define CHECK(cond) do { if (cond) passed++; else { failed++; \
    fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

void regs_probe(fiber_context_t *from, fiber_context_t *to, uint64_t out[18]);
void regs_clobber(fiber_context_t *self, fiber_context_t *back);

static fiber_context_t main_ctx, fib_ctx;

static void clobber_entry(void *arg)
{
    (void)arg;
    for (;;)
        regs_clobber(&fib_ctx, &main_ctx);
}

static void test_registers(void)
{
    fiber_stack_t st;
    CHECK(fiber_stack_alloc(&st, 64 * 1024, 1) == 0);
    fiber_context_make(&fib_ctx, st.lo, st.hi, clobber_entry, NULL);
    static const uint64_t x[10] = { 0x19, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28 };
    static const uint64_t d[8] = { 0x108, 0x109, 0x110, 0x111, 0x112, 0x113, 0x114, 0x115 };
    for (int round = 0; round < 3; round++) {
        uint64_t out[18] = { 0 };
        regs_probe(&main_ctx, &fib_ctx, out);
        for (int i = 0; i < 10; i++)
            CHECK(out[i] == x[i]);
        for (int i = 0; i < 8; i++)
            CHECK(out[10 + i] == d[i]);
    }
    fiber_stack_free(&st);
}

static char trace[16];
static int ntrace;
static void tracer(void *arg)
{
    for (int i = 0; i < 3; i++) {
        trace[ntrace++] = (char)(intptr_t)arg;
        fiber_yield();
    }
}

/* fiber_yield's direct swap (one other fiber ready), as in test_sched.c: a fiber taken
 * from a queue of two swaps with the second, which ends first; then the first is popped
 * by the general path, which must find the queue's links as the swap left them. */
static void tracer_n(void *arg)
{
    intptr_t v = (intptr_t)arg;
    for (int i = 0; i < (int)(v >> 8); i++) {
        trace[ntrace++] = (char)(v & 0xff);
        fiber_yield();
    }
}

static void test_pingpong(void)
{
    ntrace = 0;
    fiber_t *p = fiber_spawn(tracer_n, (void *)(intptr_t)('p' | 3 << 8));
    fiber_t *q = fiber_spawn(tracer_n, (void *)(intptr_t)('q' | 1 << 8));
    CHECK(fiber_run() == 0);
    trace[ntrace] = 0;
    CHECK(strcmp(trace, "pqpp") == 0);
    CHECK(fiber_join(p) == 0 && fiber_join(q) == 0);
    CHECK(fiber_live_count() == 0);
}

static int order[4], norder;
static uint64_t sleep_base; /* one origin for every sleeper: the order cannot depend on
                               when each one started (a loaded machine, qemu) */
static void sleeper(void *arg)
{
    int ms = (int)(intptr_t)arg;
    fiber_sleep_until(sleep_base + (uint64_t)ms * 20000000u);
    order[norder++] = ms;
    uint64_t t0 = fiber_now_ns();
    fiber_sleep_ns((uint64_t)ms * 1000000u);
    CHECK(fiber_now_ns() - t0 >= (uint64_t)ms * 1000000u);
}

static long counted;
static void counter(void *arg)
{
    (void)arg;
    counted++;
    fiber_yield();
    counted++;
}

static int sv[2];
static void echo(void *arg)
{
    (void)arg;
    char buf[8];
    ssize_t n = fiber_read(sv[1], buf, sizeof buf, FIBER_FOREVER);
    CHECK(n == 5);
    CHECK(fiber_write(sv[1], buf, (size_t)n, FIBER_FOREVER) == n);
}
static void asker(void *arg)
{
    (void)arg;
    char buf[8] = { 0 };
    CHECK(fiber_write(sv[0], "hello", 5, FIBER_FOREVER) == 5);
    CHECK(fiber_read(sv[0], buf, sizeof buf, fiber_now_ns() + 2000000000u) == 5);
    CHECK(buf[0] == 'h' && buf[4] == 'o');
    errno = 0;
    CHECK(fiber_read(sv[0], buf, 1, fiber_now_ns() + 2000000u) == -1 && errno == ETIMEDOUT);
}

/* An fd number reused after a plain close() (issue 10): the new socket's reader wakes. */
static int ra[2];
static void reuse_reader(void *arg)
{
    (void)arg;
    char c = 0;
    CHECK(fiber_read(ra[0], &c, 1, fiber_now_ns() + 2000000000u) == 1 && c == 'r');
}
static void reuse_writer(void *arg)
{
    (void)arg;
    fiber_sleep_ns(2000000);
    CHECK(write(ra[1], "r", 1) == 1);
}
static void park_briefly(void *arg)
{
    (void)arg;
    char c;
    CHECK(fiber_read(ra[0], &c, 1, fiber_now_ns() + 1000000u) == -1 && errno == ETIMEDOUT);
}
static void test_fd_reuse(void)
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ra) == 0);
    fiber_join(fiber_spawn(park_briefly, NULL));
    int num = ra[0];
    close(ra[0]);
    close(ra[1]);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ra) == 0);
    if (ra[0] != num && ra[1] == num) { int t = ra[0]; ra[0] = ra[1]; ra[1] = t; }
    CHECK(ra[0] == num);
    fiber_t *r = fiber_spawn(reuse_reader, NULL), *w = fiber_spawn(reuse_writer, NULL);
    CHECK(fiber_run() == 0);
    fiber_join(r); fiber_join(w);
    fiber_close(ra[0]);
    fiber_close(ra[1]);
}

/* The offload pool and a cross-thread wake-up on this build too. */
static pthread_t a64_main;
static void off_call(void *arg) { *(int *)arg = !pthread_equal(pthread_self(), a64_main); }
static void off_fiber(void *arg)
{
    (void)arg;
    int elsewhere = 0;
    CHECK(fiber_offload(off_call, &elsewhere) == 0);
    CHECK(elsewhere == 1);
}
static fiber_waitq_t a64_q = FIBER_WAITQ_INIT;
static fiber_sched_t *a64_sched;
static void q_waiter(void *arg)
{
    (void)arg;
    CHECK(fiber_waitq_wait(&a64_q, fiber_now_ns() + 5000000000u) == 0);
}
static void *q_waker(void *arg)
{
    (void)arg;
    usleep(2000);
    CHECK(fiber_waitq_wake_one_on(a64_sched, &a64_q) == 0);
    return NULL;
}
static void test_offload_and_remote(void)
{
    a64_main = pthread_self();
    fiber_join(fiber_spawn(off_fiber, NULL));
    a64_sched = fiber_sched_self();
    CHECK(a64_sched != NULL);
    fiber_t *w = fiber_spawn(q_waiter, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, q_waker, NULL) == 0);
    CHECK(fiber_join(w) == 0);
    pthread_join(t, NULL);
}

/* The page size of the system, not 4 KiB: run under qemu-aarch64 -p 65536 too. The
 * trim must release whole pages of the system (madvise rounds the length up: a 4 KiB
 * multiple on a 64 KiB-page kernel would discard the page of the live frame). */
static void nothing_a64(void *arg) { (void)arg; }
static size_t trimmed;
static __attribute__((noinline)) int deep_a64(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    return n ? deep_a64(n - 1) + pad[0] : pad[0];
}
static void trim_fiber(void *arg)
{
    (void)arg;
    volatile char marker[64];
    memset((char *)marker, 0x6b, sizeof marker);
    deep_a64(200); /* ~200 KiB below this frame */
    trimmed = fiber_stack_trim();
    CHECK(marker[0] == 0x6b && marker[63] == 0x6b);
}
static void test_page_size(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    fiber_attr_t at = { .stack_size = 512 * 1024 };
    fiber_join(fiber_spawn_ex(trim_fiber, NULL, &at));
    CHECK(trimmed > 0);
    CHECK(trimmed % ps == 0);
    /* A stack size that is not a whole number of pages works, rounded up. */
    fiber_attr_t odd = { .stack_size = 20000 };
    fiber_t *f = fiber_spawn_ex(nothing_a64, NULL, &odd);
    CHECK(f == NULL || fiber_join(f) == 0);
}

/* A frame larger than the stack: stack-clash probes fault in the guard (64 KiB here, the
 * interval GCC probes at on aarch64), the runtime says so and aborts. */
static __attribute__((noinline)) void big_frame_a64(void)
{
    volatile char big[80 * 1024];
    for (int i = 0; i < 256; i++)
        big[i] = 0x5a;
    big[0] = big[255];
}
static void big_framer_a64(void *arg) { (void)arg; big_frame_a64(); }
static void test_big_frame(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        fiber_attr_t at = { .name = "big-frame", .stack_size = 48 * 1024 };
        fiber_t *a = fiber_spawn_ex(big_framer_a64, NULL, &at);
        fiber_t *b = fiber_spawn_ex(nothing_a64, NULL, &at);
        fiber_join(a);
        fiber_join(b);
        _exit(0);
    }
    close(p[1]);
    char buf[512] = { 0 };
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(p[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(buf, "stack overflow in fiber") != NULL);
}

int main(void)
{
    test_registers();

    fiber_t *a = fiber_spawn(tracer, (void *)'a'), *b = fiber_spawn(tracer, (void *)'b');
    CHECK(fiber_run() == 0);
    trace[ntrace] = 0;
    CHECK(ntrace == 6 && trace[0] == 'a' && trace[1] == 'b' && trace[4] == 'a');
    CHECK(strcmp(trace, "ababab") == 0);
    CHECK(fiber_join(a) == 0 && fiber_join(b) == 0);
    test_pingpong();

    sleep_base = fiber_now_ns();
    fiber_t *s3 = fiber_spawn(sleeper, (void *)3), *s1 = fiber_spawn(sleeper, (void *)1);
    fiber_t *s2 = fiber_spawn(sleeper, (void *)2);
    CHECK(fiber_run() == 0);
    CHECK(norder == 3 && order[0] == 1 && order[1] == 2 && order[2] == 3);
    fiber_join(s1); fiber_join(s2); fiber_join(s3);

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    fiber_t *e = fiber_spawn(echo, NULL), *k = fiber_spawn(asker, NULL);
    CHECK(fiber_run() == 0);
    fiber_join(e); fiber_join(k);

    test_fd_reuse();
    test_offload_and_remote();
    test_page_size();
    test_big_frame();

    enum { N = 10000 };
    static fiber_t *many[N];
    for (int i = 0; i < N; i++)
        many[i] = fiber_spawn(counter, NULL);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= fiber_join(many[i]) == 0;
    CHECK(ok);
    CHECK(counted == 2 * N);

    printf("aarch64 (%s guards): %d passed, %d failed\n", fiber_guard_mode(), passed, failed);
    return failed ? 1 : 0;
}
