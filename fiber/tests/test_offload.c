/* The offload pool: blocking calls on pool threads while the fiber's thread goes on. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

#define MS 1000000ull

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, (long)ms * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- outside a fiber: a plain call ---- */

static void record_thread(void *arg)
{
    *(pthread_t *)arg = pthread_self();
}

static void test_offload_outside_a_fiber_calls_directly(void **state)
{
    (void)state;
    pthread_t t = 0;
    assert_int_equal(fiber_offload(record_thread, &t), 0);
    assert_true(pthread_equal(t, pthread_self()));
}

/* ---- many fibers at once, the thread's other fibers running meanwhile ---- */

enum { MANY = 64 };
static atomic_int in_flight, completed;
static int ticks_while_in_flight;
static pthread_t main_thread;

struct slow { pthread_t ran_on; };

static void slow_call(void *arg)
{
    struct slow *s = arg;
    s->ran_on = pthread_self();
    sleep_ms(3); /* a blocking call: it would stall the fiber's thread */
}

static void offloader(void *arg)
{
    struct slow s;
    (void)arg;
    atomic_fetch_add(&in_flight, 1);
    assert_int_equal(fiber_offload(slow_call, &s), 0);
    atomic_fetch_sub(&in_flight, 1);
    assert_false(pthread_equal(s.ran_on, main_thread));
    assert_true(pthread_equal(pthread_self(), main_thread)); /* back on its own thread */
    atomic_fetch_add(&completed, 1);
}

static void ticker(void *arg)
{
    (void)arg;
    fiber_yield(); /* let the offloaders start */
    while (atomic_load(&completed) < MANY) {
        if (atomic_load(&in_flight) > 0)
            ticks_while_in_flight++;
        fiber_sleep_ns(200000);
    }
}

static void test_many_fibers_offload_at_once(void **state)
{
    (void)state;
    main_thread = pthread_self();
    atomic_store(&completed, 0);
    fiber_t *f[MANY];
    for (int i = 0; i < MANY; i++)
        f[i] = fiber_spawn(offloader, NULL);
    fiber_t *t = fiber_spawn(ticker, NULL);
    uint64_t t0 = fiber_now_ns();
    assert_int_equal(fiber_run(), 0);
    uint64_t took = fiber_now_ns() - t0;
    assert_int_equal(atomic_load(&completed), MANY);
    /* 64 calls of 3 ms each on one thread would take 192 ms and starve the ticker;
     * offloaded, the ticker kept its 0.2 ms beat while calls were out. */
    assert_true(ticks_while_in_flight >= 3);
    print_message("64 offloaded 3 ms calls: %.1f ms, ticker ran %d times meanwhile\n",
                  (double)took / 1e6, ticks_while_in_flight);
    for (int i = 0; i < MANY; i++)
        fiber_join(f[i]);
    fiber_join(t);
}

/* ---- a call that outlives its deadline ---- */

struct stuck {
    int          rfd;      /* the call blocks reading this until the test writes */
    char        *payload;  /* owned by the job: freed by the cleanup */
    atomic_int  *cleaned;
};

static void stuck_call(void *arg)
{
    struct stuck *s = arg;
    char c;
    ssize_t n = read(s->rfd, &c, 1); /* a blocking read, as a slow resolver would */
    (void)n;
    memset(s->payload, 'x', 64); /* touches memory the fiber no longer owns */
}

static void stuck_cleanup(void *arg)
{
    struct stuck *s = arg;
    atomic_store(s->cleaned, 1);
    free(s->payload);
    free(s);
}

static atomic_int cleaned;
static int after_timeout;

static void impatient(void *arg)
{
    int rfd = *(int *)arg;
    struct stuck *s = malloc(sizeof *s);
    s->rfd = rfd;
    s->payload = malloc(64);
    s->cleaned = &cleaned;
    uint64_t t0 = fiber_now_ns();
    assert_int_equal(fiber_offload_until(stuck_call, stuck_cleanup, s, t0 + 5 * MS), ETIMEDOUT);
    assert_true(fiber_now_ns() >= t0 + 5 * MS);
    assert_int_equal(atomic_load(&cleaned), 0); /* still running */
    fiber_sleep_ns(1 * MS); /* and this fiber goes on with its life */
    after_timeout = 1;
}

static void test_offload_outlives_its_deadline(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    atomic_store(&cleaned, 0);
    fiber_join(fiber_spawn(impatient, &p[0]));
    assert_int_equal(after_timeout, 1);
    assert_int_equal(write(p[1], "!", 1), 1); /* now the call returns */
    for (int i = 0; i < 5000 && !atomic_load(&cleaned); i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&cleaned), 1);
    close(p[0]);
    close(p[1]);
}

/* Calls that end right around their deadline: both sides of the race, many times.
 * Under ASan a freed job or argument touched late would show here. */
static atomic_int race_cleanups;
struct racer { int done; };

static void racer_call(void *arg)
{
    struct racer *r = arg;
    sleep_ms(1);
    r->done = 1;
}

static void racer_cleanup(void *arg)
{
    free(arg);
    atomic_fetch_add(&race_cleanups, 1);
}

static int race_timeouts, race_ok;

static void racing(void *arg)
{
    (void)arg;
    for (int i = 0; i < 40; i++) {
        struct racer *r = calloc(1, sizeof *r);
        int e = fiber_offload_until(racer_call, racer_cleanup, r, fiber_now_ns() + 1 * MS);
        if (e == 0) {
            assert_int_equal(r->done, 1);
            free(r);
            race_ok++;
        } else {
            assert_int_equal(e, ETIMEDOUT);
            race_timeouts++;
        }
    }
}

static void test_offload_deadline_race(void **state)
{
    (void)state;
    atomic_store(&race_cleanups, 0);
    fiber_join(fiber_spawn(racing, NULL));
    assert_int_equal(race_ok + race_timeouts, 40);
    for (int i = 0; i < 5000 && atomic_load(&race_cleanups) < race_timeouts; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&race_cleanups), race_timeouts);
    print_message("deadline race: %d completed, %d timed out\n", race_ok, race_timeouts);
}

/* ---- the pool's size ---- */

static atomic_int running_now, most_running;

static void counted_call(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&most_running);
    while (n > m && !atomic_compare_exchange_weak(&most_running, &m, n)) {}
    sleep_ms(2);
    atomic_fetch_sub(&running_now, 1);
}

static void counted_offloader(void *arg)
{
    (void)arg;
    assert_int_equal(fiber_offload(counted_call, NULL), 0);
}

static void test_pool_size_limit(void **state)
{
    (void)state;
    fiber_offload_set_threads(2);
    atomic_store(&most_running, 0);
    fiber_t *f[12];
    for (int i = 0; i < 12; i++)
        f[i] = fiber_spawn(counted_offloader, NULL);
    assert_int_equal(fiber_run(), 0);
    for (int i = 0; i < 12; i++)
        fiber_join(f[i]);
    /* This runs before any other test has started a pool thread. */
    assert_true(atomic_load(&most_running) >= 1);
    assert_true(atomic_load(&most_running) <= 2);
    fiber_offload_set_threads(0);
}

/* ---- deadlock detection still works once the pool has been used ---- */

static fiber_waitq_t never = FIBER_WAITQ_INIT;
static void offload_then_hang(void *arg)
{
    (void)arg;
    struct slow s;
    assert_int_equal(fiber_offload(slow_call, &s), 0);
    fiber_waitq_wait(&never, FIBER_FOREVER);
}

static void test_deadlock_still_detected(void **state)
{
    (void)state;
    fiber_t *f = fiber_spawn(offload_then_hang, NULL);
    errno = 0;
    assert_int_equal(fiber_run(), -1);
    assert_int_equal(errno, EDEADLK);
    fiber_waitq_wake_all(&never);
    assert_int_equal(fiber_join(f), 0);
}

/* ---- the first users ---- */

static void resolver(void *arg)
{
    (void)arg;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    /* "localhost" comes from /etc/hosts: no network needed. */
    assert_int_equal(fiber_getaddrinfo("localhost", "80", &hints, &res, fiber_now_ns() + 5000 * MS), 0);
    assert_non_null(res);
    assert_int_equal(res->ai_family, AF_INET);
    freeaddrinfo(res);
    res = NULL;
    hints.ai_flags = AI_NUMERICHOST;
    assert_int_not_equal(fiber_getaddrinfo("not-a-number", NULL, &hints, &res, FIBER_FOREVER), 0);
    assert_null(res);
}

static void test_getaddrinfo(void **state)
{
    (void)state;
    fiber_join(fiber_spawn(resolver, NULL));
}

static void file_io(void *arg)
{
    int fd = *(int *)arg;
    static char out[100000], in[100000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 31);
    assert_int_equal(fiber_pwrite(fd, out, sizeof out, 4096), sizeof out);
    assert_int_equal(fiber_pread(fd, in, sizeof in, 4096), sizeof in);
    assert_memory_equal(in, out, sizeof in);
    errno = 0;
    assert_int_equal(fiber_pread(-1, in, 1, 0), -1);
    assert_int_equal(errno, EBADF);
}

static void test_pread_pwrite(void **state)
{
    (void)state;
    char path[] = "/tmp/fiber_offload_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fiber_join(fiber_spawn(file_io, &fd));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offload_outside_a_fiber_calls_directly),
        cmocka_unit_test(test_pool_size_limit), /* first: no pool thread exists yet */
        cmocka_unit_test(test_many_fibers_offload_at_once),
        cmocka_unit_test(test_offload_outlives_its_deadline),
        cmocka_unit_test(test_offload_deadline_race),
        cmocka_unit_test(test_deadlock_still_detected),
        cmocka_unit_test(test_getaddrinfo),
        cmocka_unit_test(test_pread_pwrite),
    };
    if (getenv("FIBER_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FIBER_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
