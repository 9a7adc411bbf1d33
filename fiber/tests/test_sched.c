/* Spawning, yielding, joining, detaching, the pool, and many live fibers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "fiber.h"
#include "fiber_context.h"

/* Two handles of one record: they differ only in the tag, bits 0-5 and 48-63 of a
 * fiber_t (fiber/src/internal.h). */
static int same_record(const fiber_t *a, const fiber_t *b)
{
    return (((uintptr_t)a ^ (uintptr_t)b) & (((uintptr_t)1 << 48) - 64)) == 0;
}

static char trace[64];
static size_t trace_len;

static void tracer(void *arg)
{
    char c = (char)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        trace[trace_len++] = c;
        fiber_yield();
    }
}

static void test_yield_round_robin(void **state)
{
    (void)state;
    trace_len = 0;
    fiber_t *a = fiber_spawn(tracer, (void *)'a');
    fiber_t *b = fiber_spawn(tracer, (void *)'b');
    fiber_t *c = fiber_spawn(tracer, (void *)'c');
    assert_non_null(a);
    assert_int_equal(fiber_live_count(), 3);
    assert_int_equal(fiber_run(), 0);
    trace[trace_len] = 0;
    assert_string_equal(trace, "abcabcabc");
    assert_int_equal(fiber_live_count(), 0);
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(c), 0);
}

static int ran;
static void set_ran(void *arg) { ran = (int)(intptr_t)arg; }

static void test_join_from_main_runs_scheduler(void **state)
{
    (void)state;
    ran = 0;
    fiber_t *f = fiber_spawn(set_ran, (void *)42);
    assert_int_equal(ran, 0); /* spawn only queues it */
    assert_int_equal(fiber_join(f), 0);
    assert_int_equal(ran, 42);
}

/* Main spawning and joining one fiber after another (the pooled spawn+join of
 * bench/alloc.c, which the join's run path serves) must not starve the other fibers: a
 * sleeper's timer, a reader's I/O and a fiber that keeps yielding all get their turn
 * while it loops. The run path is taken only when nothing else needs the scheduler. */
static int sj_slept, sj_read;
static long sj_yields;
static int sj_pipe[2];

static void sj_sleeper(void *arg)
{
    (void)arg;
    fiber_sleep_ns(1000000);
    sj_slept = 1;
}

static void sj_reader(void *arg)
{
    (void)arg;
    char c;
    if (fiber_read(sj_pipe[0], &c, 1, FIBER_FOREVER) == 1)
        sj_read = 1;
}

static void sj_yielder(void *arg)
{
    int *stop = arg;
    while (!*stop) {
        sj_yields++;
        fiber_yield();
    }
}

static void sj_child(void *arg) { (*(long *)arg)++; }

static void test_spawn_join_loop_lets_others_run(void **state)
{
    (void)state;
    assert_int_equal(pipe2(sj_pipe, O_NONBLOCK), 0);
    sj_slept = sj_read = 0;
    sj_yields = 0;
    int stop = 0;
    long children = 0, joins = 0;
    fiber_t *z = fiber_spawn(sj_sleeper, NULL);
    fiber_t *r = fiber_spawn(sj_reader, NULL);
    fiber_t *y = fiber_spawn(sj_yielder, &stop);
    uint64_t t0 = fiber_now_ns();
    /* Bounded by count and time: with the timer, the reader and the yielder served, this
     * ends after a few thousand joins (the sleeper needs 1 ms). */
    while (joins < 2000000 && fiber_now_ns() - t0 < 5000000000u &&
           !(sj_slept && sj_read && sj_yields >= 1000)) {
        fiber_t *c = fiber_spawn(sj_child, &children);
        assert_non_null(c);
        assert_int_equal(fiber_join(c), 0);
        if (++joins == 100)
            assert_int_equal(write(sj_pipe[1], "x", 1), 1);
    }
    print_message("after %ld joins: slept %d, read %d, %ld yields\n", joins, sj_slept, sj_read,
                  sj_yields);
    assert_int_equal(children, joins);
    assert_int_equal(sj_slept, 1);
    assert_int_equal(sj_read, 1);
    /* the yielder, ready all along, runs about once per join (the child queues behind it) */
    assert_true(sj_yields >= joins / 2);
    stop = 1;
    assert_int_equal(fiber_join(y), 0);
    assert_int_equal(fiber_join(r), 0);
    assert_int_equal(fiber_join(z), 0);
    assert_int_equal(fiber_live_count(), 0);
    close(sj_pipe[0]);
    close(sj_pipe[1]);
}

/* The same loop with nothing ready beside main's child: every join can take the run
 * path, so only its own test of the scheduler's words (the timer heap, the I/O waiters,
 * the inbox) lets a sleeper, a reader or another thread's message in. Bounded by count
 * and a generous deadline: served, each ends after a few ms. */
static int sj_loop_until(const volatile int *flag, long *joins)
{
    long children = 0;
    uint64_t t0 = fiber_now_ns();
    *joins = 0;
    while (!*flag && *joins < 20000000 && fiber_now_ns() - t0 < 5000000000u) {
        fiber_t *c = fiber_spawn(sj_child, &children);
        if (!c || fiber_join(c) != 0)
            return -1;
        ++*joins;
    }
    return children == *joins ? 0 : -1;
}

static void test_spawn_join_loop_lets_timer_run(void **state)
{
    (void)state;
    sj_slept = 0;
    long joins;
    fiber_t *z = fiber_spawn(sj_sleeper, NULL);
    assert_int_equal(sj_loop_until((volatile int *)&sj_slept, &joins), 0);
    print_message("timer: slept %d after %ld joins\n", sj_slept, joins);
    assert_int_equal(sj_slept, 1);
    assert_int_equal(fiber_join(z), 0);
    assert_int_equal(fiber_live_count(), 0);
}

static void test_spawn_join_loop_lets_io_run(void **state)
{
    (void)state;
    assert_int_equal(pipe2(sj_pipe, O_NONBLOCK), 0);
    sj_read = 0;
    long children = 0, joins;
    fiber_t *r = fiber_spawn(sj_reader, NULL);
    fiber_t *c = fiber_spawn(sj_child, &children);
    assert_int_equal(fiber_join(c), 0); /* the reader runs first and parks on the pipe */
    assert_int_equal(sj_read, 0);
    assert_int_equal(write(sj_pipe[1], "x", 1), 1);
    assert_int_equal(sj_loop_until((volatile int *)&sj_read, &joins), 0);
    print_message("io: read %d after %ld joins\n", sj_read, joins);
    assert_int_equal(sj_read, 1);
    assert_int_equal(fiber_join(r), 0);
    assert_int_equal(fiber_live_count(), 0);
    close(sj_pipe[0]);
    close(sj_pipe[1]);
}

/* Another thread's message, posted ~2 ms into the loop, runs during it. On a thread of
 * its own, so that the main thread's scheduler gets no inbox (which every later join
 * would then see). */
static volatile int sj_posted_ran;
static void sj_posted(void *arg) { (void)arg; sj_posted_ran = 1; }
static void *sj_poster(void *arg)
{
    usleep(2000);
    return (void *)(intptr_t)fiber_sched_post(arg, sj_posted, NULL);
}
static void *sj_remote_thread(void *arg)
{
    long *joins = arg;
    fiber_sched_t *me = fiber_sched_self();
    if (!me)
        return (void *)1;
    pthread_t t;
    if (pthread_create(&t, NULL, sj_poster, me) != 0)
        return (void *)2;
    int rc = sj_loop_until(&sj_posted_ran, joins);
    void *prc;
    pthread_join(t, &prc);
    if (rc != 0 || prc != NULL)
        return (void *)3;
    return NULL;
}

static void test_spawn_join_loop_lets_remote_run(void **state)
{
    (void)state;
    sj_posted_ran = 0;
    long joins = 0;
    pthread_t t;
    void *rc;
    assert_int_equal(pthread_create(&t, NULL, sj_remote_thread, &joins), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    print_message("remote: ran %d after %ld joins\n", sj_posted_ran, joins);
    assert_null(rc);
    assert_int_equal(sj_posted_ran, 1);
}

/* The run path's hot-slot end keeps a record only if its stack has the first bucket's
 * size: a 16 KiB fiber joined there while the hot slot is empty must not come back as a
 * default one. Then four default fibers each use 48 KiB of their stack. On a thread of
 * its own: a fresh pool, the hot slot in a known state. */
static int sz_deep_ok;
static void sz_deep(void *arg)
{
    (void)arg;
    volatile char buf[48 * 1024];
    memset((char *)buf, 0x5a, sizeof buf);
    sz_deep_ok += buf[100] == 0x5a && buf[sizeof buf - 1] == 0x5a;
}
static void *sz_thread(void *arg)
{
    (void)arg;
    long n = 0;
    fiber_t *g = fiber_spawn(sj_child, &n); /* takes the hot record */
    fiber_run();                            /* g ends, its record not yet back */
    fiber_attr_t small = {.stack_size = 16 * 1024};
    fiber_t *h = fiber_spawn_ex(sj_child, &n, &small);
    if (!g || !h || fiber_join(h) != 0 || fiber_join(g) != 0 || n != 2)
        return (void *)1;
    sz_deep_ok = 0;
    fiber_t *d[4];
    for (int i = 0; i < 4; i++)
        d[i] = fiber_spawn(sz_deep, NULL);
    for (int i = 0; i < 4; i++)
        if (!d[i] || fiber_join(d[i]) != 0)
            return (void *)2;
    return sz_deep_ok == 4 ? NULL : (void *)3;
}

static void test_join_run_path_keeps_stack_sizes_apart(void **state)
{
    (void)state;
    pthread_t t;
    void *rc;
    assert_int_equal(pthread_create(&t, NULL, sz_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_null(rc);
}

/* A fiber woken onto the head of the run queue is no longer fresh: joining it from main
 * resumes it where it parked, never enters fn again. */
static fiber_waitq_t wk_q = FIBER_WAITQ_INIT;
static int wk_entries, wk_done;
static void wk_parker(void *arg)
{
    (void)arg;
    wk_entries++;
    fiber_waitq_wait(&wk_q, FIBER_FOREVER);
    wk_done = 1;
}

static void test_join_woken_fiber_resumes(void **state)
{
    (void)state;
    wk_entries = wk_done = 0;
    long n = 0;
    fiber_t *w = fiber_spawn(wk_parker, NULL);
    assert_int_equal(fiber_join(fiber_spawn(sj_child, &n)), 0); /* w runs and parks */
    assert_int_equal(wk_entries, 1);
    assert_int_equal(wk_done, 0);
    assert_int_equal(fiber_waitq_wake_one(&wk_q), 1); /* w: the head of the run queue */
    assert_int_equal(fiber_join(w), 0);
    assert_int_equal(wk_entries, 1);
    assert_int_equal(wk_done, 1);
    assert_int_equal(fiber_live_count(), 0);
}

static void child_sleeper(void *arg)
{
    fiber_sleep_ns(1000000);
    *(int *)arg = 1;
}

static void parent(void *arg)
{
    int *done = arg;
    int child_done = 0;
    fiber_t *c = fiber_spawn(child_sleeper, &child_done);
    assert_non_null(c);
    assert_int_equal(fiber_join(c), 0);
    assert_int_equal(child_done, 1); /* join returned only after the child finished */
    *done = 1;
}

static void test_join_from_fiber_parks(void **state)
{
    (void)state;
    int done = 0;
    fiber_t *p = fiber_spawn(parent, &done);
    assert_int_equal(fiber_join(p), 0);
    assert_int_equal(done, 1);
}

static void self_check(void *arg)
{
    fiber_t **out = arg;
    *out = fiber_self();
}

static void test_self_name_and_id(void **state)
{
    (void)state;
    fiber_t *seen = NULL;
    fiber_attr_t at = { .name = "a-fiber-with-a-name-longer-than-31-chars" };
    fiber_t *f = fiber_spawn_ex(self_check, &seen, &at);
    fiber_t *g = fiber_spawn(self_check, &seen);
    assert_int_equal(strlen(fiber_name(f)), 31); /* truncated, terminated */
    assert_string_equal(fiber_name(g), "");
    uint64_t idf = fiber_id(f), idg = fiber_id(g);
    assert_true(idf > 0);
    assert_true(idg > idf);
    assert_int_equal(fiber_id(f), idf); /* stable */
    assert_null(fiber_self());
    assert_int_equal(fiber_join(f), 0);
    assert_int_equal(fiber_join(g), 0);
    assert_ptr_equal(seen, g);
}

static int detached_runs;
static void detached_fn(void *arg)
{
    (void)arg;
    fiber_yield();
    detached_runs++;
}

static void test_detached_fibers_reclaimed(void **state)
{
    (void)state;
    fiber_pool_trim();
    detached_runs = 0;
    fiber_attr_t at = { .detached = 1 };
    for (int i = 0; i < 100; i++)
        assert_non_null(fiber_spawn_ex(detached_fn, NULL, &at));
    fiber_t *late = fiber_spawn(detached_fn, NULL);
    fiber_detach(late);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(detached_runs, 101);
    assert_int_equal(fiber_live_count(), 0);
    /* Every stack went back to the pool: nothing leaked, nothing freed twice. */
    assert_int_equal(fiber_pool_count(), 101);
    fiber_pool_trim();
    assert_int_equal(fiber_pool_count(), 0);
}

static void test_detach_after_return(void **state)
{
    (void)state;
    fiber_pool_trim();
    fiber_t *f = fiber_spawn(set_ran, (void *)7);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(fiber_pool_count(), 0); /* joinable: kept until joined or detached */
    fiber_detach(f);
    assert_int_equal(fiber_pool_count(), 1);
}

static void test_pool_reuses_stacks(void **state)
{
    (void)state;
    fiber_pool_trim();
    fiber_t *f = fiber_spawn(set_ran, (void *)1);
    fiber_join(f);
    assert_int_equal(fiber_pool_count(), 1);
    fiber_t *g = fiber_spawn(set_ran, (void *)2);
    /* The same stack, so the same record, under a new generation: f is stale now. */
    assert_ptr_not_equal(g, f);
    assert_true(same_record(g, f));
    assert_int_equal(fiber_pool_count(), 0);
    fiber_join(g);
    /* A different size gets its own stack. */
    fiber_attr_t at = { .stack_size = 256 * 1024 };
    fiber_t *h = fiber_spawn_ex(set_ran, (void *)3, &at);
    assert_ptr_not_equal(h, f);
    fiber_join(h);
    assert_int_equal(fiber_pool_count(), 2);
    fiber_pool_trim();
}

static void test_bad_attributes(void **state)
{
    (void)state;
    fiber_attr_t tiny = { .stack_size = 16 };
    errno = 0;
    assert_null(fiber_spawn_ex(set_ran, NULL, &tiny));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(fiber_spawn(NULL, NULL));
    assert_int_equal(errno, EINVAL);
}

/* Uses a lot of its stack, to check that 64 KiB really is usable. */
static void deep(void *arg)
{
    volatile char buf[48 * 1024];
    memset((char *)buf, 0x5a, sizeof buf);
    *(int *)arg = buf[100] + buf[sizeof buf - 1];
}

static void test_default_stack_is_usable(void **state)
{
    (void)state;
    int out = 0;
    fiber_t *f = fiber_spawn(deep, &out);
    fiber_join(f);
    assert_int_equal(out, 0x5a * 2);
}

static long counter;
static void count_and_yield(void *arg)
{
    (void)arg;
    counter++;
    fiber_yield();
    counter++;
}

static void test_many_live_fibers(void **state)
{
    (void)state;
    /* 100,000 at once: each is spawned, yields once while all others are alive, and is
     * joined. Under Valgrind, 2,000 (it runs every instruction ~50x slower). */
    size_t n = RUNNING_ON_VALGRIND ? 2000 : 100000;
    fiber_t **fs = calloc(n, sizeof *fs);
    assert_non_null(fs);
    counter = 0;
    for (size_t i = 0; i < n; i++) {
        errno = 0;
        fs[i] = fiber_spawn(count_and_yield, NULL);
        if (!fs[i]) {
            /* With mprotect guards each stack costs two mappings and vm.max_map_count
             * (65530 here) stops us near 32,750: a clean ENOMEM, not a crash. */
            assert_string_equal(fiber_guard_mode(), "mprotect");
            assert_int_equal(errno, ENOMEM);
            assert_true(i > 10000);
            printf("# mprotect guards: spawn %zu failed with ENOMEM (vm.max_map_count)\n", i);
            n = i;
            break;
        }
    }
    assert_int_equal(fiber_live_count(), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fiber_join(fs[i]), 0);
    assert_int_equal(counter, (long)(2 * n));
    assert_int_equal(fiber_live_count(), 0);
    assert_int_equal(fiber_pool_count(), n);
    fiber_pool_trim();
    free(fs);
}

/* Several threads, each with its own scheduler, at the same time. */
struct thread_job { long sum; int ok; };

static __thread long thread_sum; /* per thread: the fibers of one scheduler add to it */

static void add_and_yield(void *arg)
{
    for (int i = 0; i < 10; i++) {
        thread_sum += (long)(intptr_t)arg;
        fiber_yield();
    }
}

static void *thread_main(void *arg)
{
    struct thread_job *j = arg;
    fiber_t *fs[500];
    for (int i = 0; i < 500; i++)
        fs[i] = fiber_spawn(add_and_yield, (void *)(intptr_t)(i + 1));
    j->ok = fiber_run() == 0;
    for (int i = 0; i < 500; i++)
        j->ok &= fiber_join(fs[i]) == 0;
    j->ok &= fiber_live_count() == 0;
    j->sum = thread_sum;
    return NULL;
}

static void test_one_scheduler_per_thread(void **state)
{
    (void)state;
    pthread_t t[4];
    struct thread_job jobs[4] = { { 0 } };
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(jobs[i].ok);
        assert_int_equal(jobs[i].sum, 10L * 500 * 501 / 2);
    }
    /* This thread's scheduler saw none of it. */
    assert_int_equal(fiber_live_count(), 0);
}

/* Pages of [lo, lo + len) resident, in pages of the system (len a multiple of them):
 * wholly resident (whole = 1) or resident in part (whole = 0). mincore() writes one byte
 * per page of the kernel that runs it, which under qemu-user is the host's (4 KiB) when
 * the guest's are 16 or 64 KiB: the bytes it wrote are counted (the rest keep 0xff, a
 * value it never writes) and grouped per system page, so that every host page of the
 * range is looked at, not only the first len / ps of them. */
static size_t resident_pages(void *lo, size_t len, int whole)
{
    unsigned char vec[256 + 1];
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = len / ps, m = 0, r = 0;
    if (len / 4096 > sizeof vec - 1)
        return (size_t)-1;
    memset(vec, 0xff, sizeof vec);
    if (mincore(lo, len, vec) != 0)
        return (size_t)-1;
    while (m < sizeof vec && vec[m] != 0xff)
        m++;
    if (n == 0 || m == 0 || m % n != 0)
        return (size_t)-1;
    for (size_t i = 0, per = m / n; i < n; i++) {
        size_t in = 0;
        for (size_t j = 0; j < per; j++)
            in += vec[i * per + j] & 1;
        r += whole ? in == per : in > 0;
    }
    return r;
}

/* Touches `bytes` of the stack below the caller's frame. */
static __attribute__((noinline)) void touch_below(size_t bytes)
{
    volatile char buf[bytes];
    memset((char *)buf, 0x5a, bytes);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* The trim test in pages of the system (4, 16 or 64 KiB): a stack of 16 pages, 12 of them
 * touched, a window of 8 pages well below the trimming frame. */
static void trimmer(void *arg)
{
    size_t *out = arg;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    touch_below(12 * ps);
    /* A window well below this frame, inside what touch_below() touched. */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)(ps - 1);
    void *win = (void *)(here - 10 * ps);
    out[1] = resident_pages(win, 8 * ps, 1); /* every byte of it */
    out[0] = fiber_stack_trim();
    out[2] = resident_pages(win, 8 * ps, 0); /* any byte of it */
}

static void test_stack_trim(void **state)
{
    (void)state;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t out[3] = { 0 };
    fiber_attr_t a = {.stack_size = 16 * ps};
    fiber_join(fiber_spawn_ex(trimmer, out, &a));
    assert_true(out[0] >= 8 * ps);  /* bytes released */
    assert_true(out[0] < 16 * ps);
    assert_int_equal(out[0] % ps, 0); /* whole system pages */
#if !defined(__SANITIZE_ADDRESS__)
    /* (ASan puts touch_below()'s array on its own fake stack, off the fiber's stack.) */
    assert_int_equal(out[1], 8);        /* the window was resident ... */
#endif
    assert_int_equal(out[2], 0);        /* ... and is not after the trim */
}

static void test_guard_mode_reported(void **state)
{
    (void)state;
    fiber_join(fiber_spawn(set_ran, NULL));
    const char *m = fiber_guard_mode();
    const char *forced = getenv("FIBER_GUARD");
    if (forced && strcmp(forced, "mprotect") == 0)
        assert_string_equal(m, "mprotect");
    else
        assert_true(strcmp(m, "madvise") == 0 || strcmp(m, "mprotect") == 0);
}

/* ---- recycled records start clean (spawn re-initialises only what a finished fiber
 * leaves dirty) ---- */

static fiber_waitq_t reuse_q = FIBER_WAITQ_INIT;
static int reuse_step;

static void reuse_first(void *arg)
{
    (void)arg;
    /* Leaves the record through the timer heap and a wait queue. */
    assert_int_equal(fiber_waitq_wait(&reuse_q, fiber_now_ns() + 1000000), -1);
    assert_int_equal(errno, ETIMEDOUT);
    fiber_sleep_ns(100000);
    reuse_step = 1;
}

static void reuse_second(void *arg)
{
    (void)arg;
    /* Parked with a deadline, woken early: its heap slot must be its own. */
    assert_int_equal(fiber_waitq_wait(&reuse_q, fiber_now_ns() + 5000000000ull), 0);
    reuse_step = 2;
}

static void reuse_waker(void *arg)
{
    (void)arg;
    while (!fiber_waitq_wake_one(&reuse_q))
        fiber_yield();
}

static void test_recycled_record_starts_clean(void **state)
{
    (void)state;
    fiber_pool_trim();
    fiber_attr_t named = { .name = "first" };
    fiber_t *a = fiber_spawn_ex(reuse_first, NULL, &named);
    uint64_t id_a = fiber_id(a);
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(reuse_step, 1);
    fiber_t *b = fiber_spawn(reuse_second, NULL);
    assert_true(same_record(b, a)); /* the same record, recycled (a new generation) */
    assert_string_equal(fiber_name(b), "");
    assert_true(fiber_id(b) != id_a);
    fiber_t *w = fiber_spawn(reuse_waker, NULL);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(w), 0);
    assert_int_equal(reuse_step, 2);
    assert_int_equal(fiber_run(), 0);
    fiber_pool_trim();
}

/* Records of fresh stacks sit at different offsets in their pages, so that many live
 * records do not all fall into one L1 cache set. */
static void nop_fiber(void *arg)
{
    (void)arg;
}

static void test_records_spread_over_cache_sets(void **state)
{
    (void)state;
    fiber_pool_trim();
    enum { N = 16 };
    fiber_t *f[N];
    int seen[64] = { 0 }, distinct = 0;
    for (int i = 0; i < N; i++) {
        f[i] = fiber_spawn(nop_fiber, NULL);
        assert_non_null(f[i]);
        int set = (int)(((uintptr_t)f[i] >> 6) & 63); /* 64-byte lines, 4 KiB way */
        distinct += !seen[set]++;
    }
    for (int i = 0; i < N; i++)
        fiber_join(f[i]);
    assert_true(distinct >= 8);
    fiber_pool_trim();
}

#if defined(__x86_64__)
/* The scheduler enters a fresh fiber by a half switch: it must start with the psABI FP
 * control defaults and leave the joiner's own modes in force when it ends, having
 * changed its own. */
#include "fp_words.h"
static uint32_t fp_seen_mxcsr;
static uint16_t fp_seen_fcw;

struct fp_change {
    uint32_t mxcsr; /* what the fiber sets */
    int      yield;
};

static void fp_changer(void *arg)
{
    const struct fp_change *c = arg;
    fp_seen_mxcsr = get_mxcsr();
    fp_seen_fcw = get_fcw();
    set_mxcsr(c->mxcsr);
    set_fcw(0x0B7Fu); /* x87 round up */
    if (c->yield)
        fiber_yield();
}

static void fp_bystander(void *arg) { (void)arg; }

/* The exact MXCSR words, per policy (fiber_context.h): the control bits always travel
 * with the fiber; the flags (bits 0-5) travel with it under `always` and stay with the
 * thread under `cmp`. Each way in and out of the scheduler's switch: a fresh fiber
 * entered from a saved frame, a fiber that ends without switching away (the direct way
 * back), one that yields to another runnable fiber and ends after being resumed (the
 * way back from a finished fiber's stack). */
static void test_fresh_fiber_fp_state(void **state)
{
    (void)state;
    uint32_t saved_mxcsr = get_mxcsr();
    uint16_t saved_fcw = get_fcw();
    int cmp = strcmp(fiber_context_mxcsr_policy(), "cmp") == 0;
    assert_true(cmp || strcmp(fiber_context_mxcsr_policy(), "always") == 0);
    /* The lean build (fiber_test_sched_lean) switches general registers only: the words
     * are the thread's, seen by the fiber as the joiner left them and left as the fiber
     * set them. */
    int lean = strcmp(fiber_context_variant(), "lean") == 0;
    /* The joiner: round toward zero; the defaults with the precision flag; flush to zero;
     * denormals are zero; the defaults. */
    static const uint32_t joiner_mxcsr[] = {0x7F80u, 0x1F80u | 0x20u, 0x9F80u, 0x1FC0u, 0x1F80u};
    static const uint16_t joiner_fcw[] = {0x0F7Fu, 0x037Fu, 0x037Fu, 0x0F7Fu, 0x037Fu};
    /* The fiber: round up, no flag; the defaults with the precision flag. */
    static const uint32_t fiber_mxcsr[] = {0x5F80u, 0x1F80u | 0x20u};
    for (int m = 0; m < 5; m++)
        for (int k = 0; k < 2; k++)
            for (int yield = 0; yield < 2; yield++) {
                struct fp_change c = {fiber_mxcsr[k], yield};
                set_mxcsr(joiner_mxcsr[m]);
                set_fcw(joiner_fcw[m]);
                fiber_t *f = fiber_spawn(fp_changer, &c);
                /* With a second fiber runnable, the yield really switches: the changer
                 * ends after having been resumed, and the joiner is resumed from a
                 * finished fiber's stack (the scheduler switch's other way back). */
                fiber_t *g = yield ? fiber_spawn(fp_bystander, NULL) : NULL;
                assert_int_equal(fiber_join(f), 0);
                if (g)
                    assert_int_equal(fiber_join(g), 0);
                uint32_t now = get_mxcsr();
                uint32_t seen_want = cmp ? 0x1F80u | (joiner_mxcsr[m] & 0x3Fu) : 0x1F80u;
                uint32_t now_want = cmp ? (joiner_mxcsr[m] & ~0x3Fu) | (fiber_mxcsr[k] & 0x3Fu)
                                        : joiner_mxcsr[m];
                uint16_t seen_fcw_want = 0x037Fu, now_fcw_want = joiner_fcw[m];
                if (lean) {
                    seen_want = joiner_mxcsr[m];
                    now_want = fiber_mxcsr[k];
                    seen_fcw_want = joiner_fcw[m];
                    now_fcw_want = 0x0B7Fu;
                }
                if (mx(fp_seen_mxcsr) != mx(seen_want) || mx(now) != mx(now_want))
                    print_error("joiner %#x, fiber sets %#x, yield %d, %s: fiber saw %#x (want "
                                "%#x), joiner has %#x (want %#x)\n", joiner_mxcsr[m],
                                fiber_mxcsr[k], yield, lean ? "lean" : cmp ? "cmp" : "always", fp_seen_mxcsr,
                                seen_want, now, now_want);
                assert_int_equal(mx(fp_seen_mxcsr), mx(seen_want));
                assert_int_equal(mx(now), mx(now_want));
                assert_int_equal(fp_seen_fcw, seen_fcw_want);
                assert_int_equal(get_fcw(), now_fcw_want);
            }
    set_mxcsr(saved_mxcsr);
    set_fcw(saved_fcw);
}

/*
 * The FP control words against every way a join can come back, with joiners whose words
 * differ from the psABI defaults and from the spawner's (strict builds only: under lean
 * the words are the thread's). What this pins down, and why (fiber.h, "Floating-point
 * state"): a fiber's control words are its own and die with it, as a thread's do, so
 * its joiner continues with the words it had when it called fiber_join - also when the
 * fiber returned without restoring what it changed. The psABI makes the MXCSR control
 * bits and the x87 control word callee-saved, and the run path's fast end could trust
 * that and skip reading the words back (its stmxcsr and fnstcw) when a fiber never
 * switched away; a fiber that set its rounding mode and returned would then hand it to
 * a joiner that had the defaults. That elision was measured (switch_x86_64.S,
 * JOIN_RESUME) and not taken; this test fails on it: the joiner at the defaults after
 * a fiber that returns (or "yields" alone, which does not switch) with round-up set.
 * Each end: returning with round-up set; restoring its words first (what the psABI
 * asks of a function); yielding with nothing else runnable (no switch: the run path's
 * fast end); yielding to another fiber (a real switch away); sleeping (the scheduler's
 * loop resumes it). Each joiner: main at the defaults, main at round-toward-zero, main
 * that spawned at round-down and joins at the defaults, main that spawned at the
 * defaults and joins at round-toward-zero, and a fiber (flush-to-zero, x87 double
 * precision) that joins a fiber main spawned.
 */
struct fpw {
    uint32_t mx;
    uint16_t cw;
};
static const struct fpw FPW_DEF = {0x1F80u, 0x037Fu}, FPW_RZ = {0x7F80u, 0x0F7Fu},
                        FPW_RD = {0x3F80u, 0x077Fu}, FPW_RU = {0x5F80u, 0x0B7Fu},
                        FPW_FZ = {0x9F80u, 0x027Fu};
enum fp_end { FPE_RETURN, FPE_RESTORE, FPE_YIELD_ALONE, FPE_YIELD_OTHER, FPE_SLEEP, FPE_COUNT };
static const char *const fp_end_names[] = {"returns changed", "restores", "yields alone",
                                           "yields to another", "sleeps"};
enum fp_joiner { FPJ_MAIN_DEF, FPJ_MAIN_RZ, FPJ_SPAWN_RD_JOIN_DEF, FPJ_SPAWN_DEF_JOIN_RZ,
                 FPJ_FIBER_FZ, FPJ_COUNT };
static const char *const fp_joiner_names[] = {"main at defaults", "main at round-to-zero",
                                              "main spawned at round-down, joins at defaults",
                                              "main spawned at defaults, joins at round-to-zero",
                                              "a fiber at flush-to-zero/double"};

static void fpw_set(struct fpw w)
{
    set_mxcsr(w.mx);
    set_fcw(w.cw);
}
static struct fpw fpw_get(void) { return (struct fpw){get_mxcsr(), get_fcw()}; }
/* The control bits only (the flags follow the policy: test_fresh_fiber_fp_state). */
static uint32_t mx_ctl(uint32_t v) { return mx(v) & 0xFFC0u; }

static struct fpw fpt_seen;
static int        fpt_ran;

static void fp_target(void *arg)
{
    enum fp_end end = (enum fp_end)(intptr_t)arg;
    fpt_seen = fpw_get();
    fpt_ran++;
    fpw_set(FPW_RU);
    if (end == FPE_YIELD_ALONE || end == FPE_YIELD_OTHER)
        fiber_yield();
    else if (end == FPE_SLEEP)
        fiber_sleep_ns(1000);
    if (end == FPE_RESTORE)
        fpw_set(fpt_seen);
}

struct fp_fiber_joiner {
    fiber_t    *target;
    struct fpw  before, after;
};

static void fp_joining_fiber(void *arg)
{
    struct fp_fiber_joiner *j = arg;
    struct fpw mine = fpw_get();
    fpw_set(FPW_FZ);
    j->before = fpw_get();
    assert_int_equal(fiber_join(j->target), 0);
    j->after = fpw_get();
    fpw_set(mine); /* this fiber's own return keeps to the psABI */
}

static void test_fp_words_every_way_back(void **state)
{
    (void)state;
    if (strcmp(fiber_context_variant(), "lean") == 0) {
        print_message("lean: the FP words are the thread's, nothing to check here\n");
        return;
    }
    struct fpw saved = fpw_get();
    for (int jk = 0; jk < FPJ_COUNT; jk++)
        for (int e = 0; e < FPE_COUNT; e++)
            for (int round = 0; round < 2; round++) { /* a fresh record, then a pooled one */
                struct fpw spawn_w = FPW_DEF, join_w = FPW_DEF;
                if (jk == FPJ_MAIN_RZ)
                    spawn_w = join_w = FPW_RZ;
                else if (jk == FPJ_SPAWN_RD_JOIN_DEF)
                    spawn_w = FPW_RD;
                else if (jk == FPJ_SPAWN_DEF_JOIN_RZ)
                    join_w = FPW_RZ;
                fpt_ran = 0;
                fpw_set(spawn_w);
                struct fp_fiber_joiner fj = {0};
                fiber_t *j = NULL;
                if (jk == FPJ_FIBER_FZ) /* first in the run queue: it joins the target */
                    j = fiber_spawn(fp_joining_fiber, &fj);
                fiber_t *t = fiber_spawn(fp_target, (void *)(intptr_t)e);
                fiber_t *other = e == FPE_YIELD_OTHER ? fiber_spawn(fp_bystander, NULL) : NULL;
                assert_non_null(t);
                fpw_set(join_w);
                struct fpw want, got;
                if (j) {
                    fj.target = t;
                    assert_int_equal(fiber_join(j), 0);
                    want = fj.before;
                    got = fj.after;
                } else {
                    assert_int_equal(fiber_join(t), 0);
                    want = join_w;
                    got = fpw_get();
                }
                if (other)
                    assert_int_equal(fiber_join(other), 0);
                struct fpw main_now = fpw_get();
                fpw_set(saved);
                if (mx_ctl(got.mx) != mx_ctl(want.mx) || got.cw != want.cw ||
                    mx_ctl(fpt_seen.mx) != 0x1F80u || fpt_seen.cw != 0x037Fu)
                    print_error("%s, fiber %s, round %d: fiber saw %#x/%#x (want the defaults), "
                                "joiner has %#x/%#x (want %#x/%#x)\n", fp_joiner_names[jk],
                                fp_end_names[e], round, fpt_seen.mx, fpt_seen.cw, got.mx, got.cw,
                                want.mx, want.cw);
                assert_int_equal(fpt_ran, 1);
                assert_int_equal(mx_ctl(fpt_seen.mx), 0x1F80u);
                assert_int_equal(fpt_seen.cw, 0x037Fu);
                assert_int_equal(mx_ctl(got.mx), mx_ctl(want.mx));
                assert_int_equal(got.cw, want.cw);
                /* main, under a joining fiber, keeps its own words too */
                assert_int_equal(mx_ctl(main_now.mx), mx_ctl(join_w.mx));
                assert_int_equal(main_now.cw, join_w.cw);
            }
    fpw_set(saved);
}

/*
 * The x87 word on the run path's fast end against what lies in the dead stack under the
 * joiner's saved frame. The strict ends compare the word the fiber left with the
 * joiner's and skip an equal fldcw; they read the fiber's word back through that dead
 * space (fnstcw, then a load), and a skip decided on whatever was there before - a
 * missing or misplaced fnstcw, a load from the wrong slot - hands the fiber's rounding
 * to its joiner exactly when the stale bytes equal the joiner's word. The other tests
 * join over stack the C code left: such a mutant passed all of them. So the stack just
 * below fiber_join's caller (where fiber_join, which has no frame of its own, and the
 * run path put the joiner's frame) is filled with the joiner's word first, and, for the
 * way in, with the default word while the joiner has another one.
 */
static __attribute__((noinline)) void fill_below(uint16_t w)
{
    volatile uint16_t pad[2048];
    for (size_t i = 0; i < sizeof pad / sizeof pad[0]; i++)
        pad[i] = w;
}

static void test_fp_run_path_stale_slot(void **state)
{
    (void)state;
    if (strcmp(fiber_context_variant(), "lean") == 0) {
        print_message("lean: the FP words are the thread's, nothing to check here\n");
        return;
    }
    struct fpw saved = fpw_get();
    static const struct fpw joiners[] = {FPW_RZ, FPW_DEF, FPW_RD};
    for (size_t jk = 0; jk < sizeof joiners / sizeof joiners[0]; jk++)
        for (int end = FPE_RETURN; end <= FPE_RESTORE; end++)
            for (int fill_def = 0; fill_def < 2; fill_def++) {
                fpt_ran = 0;
                fiber_t *t = fiber_spawn(fp_target, (void *)(intptr_t)end);
                assert_non_null(t);
                fpw_set(joiners[jk]);
                fill_below(fill_def ? FPW_DEF.cw : joiners[jk].cw);
                int rc = fiber_join(t);
                struct fpw got = fpw_get();
                fpw_set(saved);
                if (got.cw != joiners[jk].cw || fpt_seen.cw != 0x037Fu)
                    print_error("joiner %#x, fiber %s, stack filled with %#x: fiber saw %#x "
                                "(want 0x37f), joiner has %#x\n", joiners[jk].cw,
                                fp_end_names[end], fill_def ? FPW_DEF.cw : joiners[jk].cw,
                                fpt_seen.cw, got.cw);
                assert_int_equal(rc, 0);
                assert_int_equal(fpt_ran, 1);
                assert_int_equal(fpt_seen.cw, 0x037Fu);
                assert_int_equal(got.cw, joiners[jk].cw);
                assert_int_equal(mx_ctl(got.mx), mx_ctl(joiners[jk].mx));
            }
    fpw_set(saved);
}

#endif

/* The scheduler's switch resumes a context that entered a fresh fiber without reloading
 * its registers when that fiber ends without having switched away (switch_x86_64.S),
 * and so does the join's run path (switch_<arch>.S): the joiner's (or the yielder's)
 * callee-saved registers must come back all the same, the frame pointer included,
 * whichever way the switch goes back. regs_<arch>.S loads patterns into them around the
 * call (regs_patterns.h). */
#include "regs_patterns.h"

static void check_patterns(const uint64_t out[REGS_N])
{
    for (int i = 0; i < REGS_N; i++)
        if (out[i] != regs_want[i])
            fail_msg("%s is %#llx, want %#llx", regs_names[i], (unsigned long long)out[i],
                     (unsigned long long)regs_want[i]);
}

static volatile uint64_t churn_sink;

/* Uses enough locals across calls that the compiler keeps some in callee-saved registers. */
static void churn(void *arg)
{
    uint64_t a = (uintptr_t)arg, b = a * 3, c = a ^ 0x55, d = a + 7, e = b ^ c;
    for (int i = 0; i < 4; i++) {
        churn_sink += a;
        if (arg == (void *)2)
            fiber_yield(); /* the way back through the general resume */
        a += b; b ^= c; c += d; d ^= e; e += a;
    }
    churn_sink += a + b + c + d + e;
}

static void join_arg(void *h) { assert_int_equal(fiber_join(h), 0); }
static void yield_arg(void *unused) { (void)unused; fiber_yield(); }

static int probed;
static void prober(void *arg)
{
    uint64_t out[REGS_N];
    /* A fresh fiber is next in the run queue: this yield enters it from this fiber's
     * context, and it ends straight back here without having switched away. */
    fiber_t *next = fiber_spawn(churn, arg);
    assert_non_null(next);
    regs_run_probe((void *)yield_arg, NULL, NULL, out);
    check_patterns(out);
    assert_int_equal(fiber_join(next), 0);
    probed++;
}

static void test_switch_back_keeps_registers(void **state)
{
    (void)state;
    uint64_t out[REGS_N];
    /* from the main context, the fiber alone: the join's run path ends it and resumes
     * the joiner directly (switch_<arch>.S) */
    for (int i = 0; i < 3; i++) {
        fiber_t *f = fiber_spawn(churn, (void *)(intptr_t)1);
        memset(out, 0, sizeof out);
        regs_run_probe((void *)join_arg, f, NULL, out);
        check_patterns(out);
    }
    for (int yield = 1; yield <= 2; yield++) {
        /* from the main context: the joined fiber ends straight back (1), or yields
         * first, with another fiber to yield to (2) */
        fiber_t *f = fiber_spawn(churn, (void *)(intptr_t)yield);
        fiber_t *g = fiber_spawn(churn, (void *)(intptr_t)yield);
        memset(out, 0, sizeof out);
        regs_run_probe((void *)join_arg, f, NULL, out);
        check_patterns(out);
        assert_int_equal(fiber_join(g), 0);
        /* from a fiber */
        probed = 0;
        fiber_t *p = fiber_spawn(prober, (void *)(intptr_t)yield);
        assert_int_equal(fiber_join(p), 0);
        assert_int_equal(probed, 1);
    }
}

/* ---- the join's run path: main spawns a fiber and joins it at once ---- */

/* fiber_join() from the main context enters a fresh fiber through its own path
 * (switch_x86_64.S, SCHED_JOIN) and ends it there when it neither switched away nor left
 * another fiber runnable; every other end goes back to the general one. Each case below
 * takes one of those ways; after each the scheduler must be at rest: no live fiber, no
 * current fiber, every record back in the pool. */
static int rp_child_ran;
static void rp_child(void *arg)
{
    (void)arg;
    rp_child_ran++;
}

enum rp_case { RP_PLAIN, RP_DETACHED_CHILD, RP_JOINABLE_CHILD, RP_JOIN_CHILD, RP_YIELD,
               RP_SLEEP, RP_IO, RP_SPAWN_JOIN_LOOP, RP_CASES };

static int rp_pipe[2];
static int rp_done;

static void rp_writer(void *arg)
{
    (void)arg;
    fiber_sleep_ns(200000);
    assert_int_equal(fiber_write(rp_pipe[1], "x", 1, FIBER_FOREVER), 1);
}

static fiber_t *rp_left; /* RP_JOINABLE_CHILD: the child the fiber spawned and left */

static void rp_body(void *arg)
{
    enum rp_case c = (enum rp_case)(intptr_t)arg;
    assert_non_null(fiber_self());
    switch (c) {
    case RP_PLAIN:
        break;
    case RP_DETACHED_CHILD: {
        fiber_attr_t at = {.detached = 1};
        assert_non_null(fiber_spawn_ex(rp_child, NULL, &at));
        break;
    }
    case RP_JOINABLE_CHILD:
        assert_non_null(rp_left = fiber_spawn(rp_child, NULL));
        break;
    case RP_JOIN_CHILD: {
        fiber_t *ch = fiber_spawn(rp_child, NULL);
        assert_non_null(ch);
        assert_int_equal(fiber_join(ch), 0);
        assert_int_equal(rp_child_ran, 1);
        break;
    }
    case RP_YIELD:
        fiber_yield(); /* alone: keeps running */
        fiber_yield();
        break;
    case RP_SLEEP:
        fiber_sleep_ns(100000);
        break;
    case RP_IO: {
        fiber_t *w = fiber_spawn(rp_writer, NULL);
        assert_non_null(w);
        char b;
        assert_int_equal(fiber_read(rp_pipe[0], &b, 1, FIBER_FOREVER), 1);
        assert_int_equal(b, 'x');
        assert_int_equal(fiber_join(w), 0);
        break;
    }
    case RP_SPAWN_JOIN_LOOP: {
        /* spawn+join from inside a fiber, many times: the join parks, the children run */
        for (int i = 0; i < 5; i++) {
            fiber_t *ch = fiber_spawn(rp_child, NULL);
            assert_int_equal(fiber_join(ch), 0);
        }
        assert_int_equal(rp_child_ran, 5);
        break;
    }
    default:
        fail();
    }
    rp_done++;
}

static void test_join_run_path(void **state)
{
    (void)state;
    assert_int_equal(pipe(rp_pipe), 0);
    assert_int_equal(fiber_socket_nonblock(rp_pipe[0]), 0);
    assert_int_equal(fiber_socket_nonblock(rp_pipe[1]), 0);
    /* warm the pool so that every record comes back to a count we know */
    fiber_t *warm[4];
    for (int i = 0; i < 4; i++)
        assert_non_null(warm[i] = fiber_spawn(rp_child, NULL));
    for (int i = 0; i < 4; i++)
        assert_int_equal(fiber_join(warm[i]), 0);
    size_t pool = fiber_pool_count();
    for (int round = 0; round < 3; round++)
        for (int c = 0; c < RP_CASES; c++) {
            rp_child_ran = 0;
            rp_done = 0;
            rp_left = NULL;
            fiber_t *f = fiber_spawn(rp_body, (void *)(intptr_t)c);
            assert_non_null(f);
            assert_int_equal(fiber_live_count(), 1);
            assert_int_equal(fiber_join(f), 0);
            assert_int_equal(rp_done, 1);
            assert_null(fiber_self()); /* back in the main context */
            if (c == RP_DETACHED_CHILD || c == RP_JOINABLE_CHILD) {
                /* the fiber's end ran its child before the join returned */
                assert_int_equal(rp_child_ran, 1);
            }
            if (rp_left)
                assert_int_equal(fiber_join(rp_left), 0); /* already finished */
            assert_int_equal(fiber_live_count(), 0);
            /* the detached child's record is back too, not left to a later switch */
            if (fiber_pool_count() != pool)
                print_error("case %d: pool %zu, want %zu\n", c, fiber_pool_count(), pool);
            assert_int_equal(fiber_pool_count(), pool);
            /* the handle is stale now: its record starts the next fiber */
            fiber_t *g = fiber_spawn(rp_child, NULL);
            assert_true(g != f);
            assert_int_equal(fiber_join(g), 0);
        }
    close(rp_pipe[0]);
    close(rp_pipe[1]);
}

/* Joined from main right after its spawn: a fiber that finishes, joined later (the
 * already-finished way), and several spawned before the first join (the first is run
 * with others queued behind it; their order holds). */
static void rp_tracer(void *arg) { trace[trace_len++] = (char)(intptr_t)arg; }

static void test_join_run_path_order(void **state)
{
    (void)state;
    trace_len = 0;
    fiber_t *a = fiber_spawn(rp_tracer, (void *)'a');
    fiber_t *b = fiber_spawn(rp_tracer, (void *)'b');
    fiber_t *c = fiber_spawn(rp_tracer, (void *)'c');
    assert_int_equal(fiber_join(c), 0); /* not at the head: the general way runs a, b, c */
    assert_int_equal(fiber_join(a), 0); /* already finished */
    assert_int_equal(fiber_join(b), 0);
    a = fiber_spawn(rp_tracer, (void *)'d');
    b = fiber_spawn(rp_tracer, (void *)'e');
    assert_int_equal(fiber_join(a), 0); /* at the head, e behind it */
    assert_int_equal(fiber_join(b), 0);
    trace[trace_len] = 0;
    assert_string_equal(trace, "abcde");
    assert_int_equal(fiber_live_count(), 0);
}

/* ---- fiber_yield's fast path (one other fiber ready: a direct swap) ---- */

static void pp_tracer(void *arg)
{
    intptr_t v = (intptr_t)arg;
    char c = (char)(v & 0xff);
    int n = (int)(v >> 8);
    for (int i = 0; i < n; i++) {
        trace[trace_len++] = c;
        fiber_yield();
    }
}

/* Two fibers hand the CPU back and forth; one ends first and the other goes on alone
 * (its yields then find the queue empty), then a third fiber joins a new pair. */
static void test_yield_pingpong_order(void **state)
{
    (void)state;
    trace_len = 0;
    fiber_t *a = fiber_spawn(pp_tracer, (void *)(intptr_t)('a' | 3 << 8));
    fiber_t *b = fiber_spawn(pp_tracer, (void *)(intptr_t)('b' | 6 << 8));
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(a), 0);
    trace[trace_len] = 0;
    assert_string_equal(trace, "abababbbb");
    /* The queue is left empty and consistent: a new pair and a third fiber spawned
     * while they run are scheduled in order. */
    trace_len = 0;
    a = fiber_spawn(pp_tracer, (void *)(intptr_t)('x' | 2 << 8));
    b = fiber_spawn(pp_tracer, (void *)(intptr_t)('y' | 2 << 8));
    fiber_t *c = fiber_spawn(pp_tracer, (void *)(intptr_t)('z' | 2 << 8));
    assert_int_equal(fiber_run(), 0);
    trace[trace_len] = 0;
    assert_string_equal(trace, "xyzxyz");
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(c), 0);
    assert_int_equal(fiber_live_count(), 0);
    /* The first fiber is taken from a queue of two (its link then still names the
     * second), swaps with it, and the second ends: the first is popped by the general
     * path, which must find the queue's links as it left them. */
    trace_len = 0;
    a = fiber_spawn(pp_tracer, (void *)(intptr_t)('p' | 3 << 8));
    b = fiber_spawn(pp_tracer, (void *)(intptr_t)('q' | 1 << 8));
    assert_int_equal(fiber_run(), 0);
    trace[trace_len] = 0;
    assert_string_equal(trace, "pqpp");
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(fiber_join(b), 0);
}

static volatile int pp_woke;
static long pp_spins;

static void pp_sleeper(void *arg)
{
    (void)arg;
    fiber_sleep_ns(1000000);
    pp_woke = 1;
}

static void pp_spinner(void *arg)
{
    (void)arg;
    while (!pp_woke && pp_spins < 20000000) {
        pp_spins++;
        fiber_yield();
    }
}

/* Two fibers yielding to each other must still let the scheduler run between rounds
 * (timers, I/O): the fast path counts its handoffs. A sleeper wakes while they spin. */
static void test_yield_pingpong_lets_timers_run(void **state)
{
    (void)state;
    pp_woke = 0;
    pp_spins = 0;
    fiber_t *z = fiber_spawn(pp_sleeper, NULL);
    fiber_t *a = fiber_spawn(pp_spinner, NULL);
    fiber_t *b = fiber_spawn(pp_spinner, NULL);
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(z), 0);
    assert_int_equal(pp_woke, 1);
    assert_true(pp_spins < 20000000);
}

/* ... and I/O readiness: a fiber reading a pipe is woken while two others ping-pong
 * through the direct swap, within a bounded number of yields after the write (the poller
 * runs at least every round of MIN_ROUND = 256 handoffs; measured: 24). Without the
 * handoff count the reader would wait for the pair's 1,000,000-spin cap. */
static int io_pipe[2];
static long io_spins, io_written_at, io_woke_at;

static void io_reader(void *arg)
{
    (void)arg;
    char c;
    if (fiber_read(io_pipe[0], &c, 1, FIBER_FOREVER) == 1)
        io_woke_at = io_spins;
}

static void io_spinner(void *arg)
{
    (void)arg;
    while (io_woke_at < 0 && io_spins < 1000000) {
        if (++io_spins == 1000) {
            assert_int_equal(write(io_pipe[1], "x", 1), 1);
            io_written_at = io_spins;
        }
        fiber_yield();
    }
}

static void test_yield_pingpong_lets_io_run(void **state)
{
    (void)state;
    assert_int_equal(pipe2(io_pipe, O_NONBLOCK), 0);
    io_spins = 0;
    io_written_at = 0;
    io_woke_at = -1;
    fiber_t *r = fiber_spawn(io_reader, NULL); /* first in the queue: parks on the pipe */
    fiber_t *a = fiber_spawn(io_spinner, NULL);
    fiber_t *b = fiber_spawn(io_spinner, NULL);
    assert_int_equal(fiber_join(a), 0);
    assert_int_equal(fiber_join(b), 0);
    assert_int_equal(fiber_join(r), 0);
    assert_true(io_written_at == 1000);
    assert_true(io_woke_at >= io_written_at);
    if (io_woke_at - io_written_at > 2 * 256 + 8)
        fail_msg("the reader woke %ld yields after the write", io_woke_at - io_written_at);
    close(io_pipe[0]);
    close(io_pipe[1]);
}

static size_t pp_pool[4];
static int pp_pool_n;

static void pp_short_detached(void *arg)
{
    (void)arg;
    fiber_yield();
}

static void pp_pool_watcher(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        fiber_yield();
        pp_pool[pp_pool_n++] = fiber_pool_count();
    }
}

/* A detached fiber that ends hands over to the fiber suspended in a direct swap; that
 * one must give the finished fiber's stack back to the pool as soon as it resumes. */
static void test_yield_pingpong_detached_end(void **state)
{
    (void)state;
    pp_pool_n = 0;
    fiber_attr_t at = {.detached = 1};
    assert_non_null(fiber_spawn_ex(pp_short_detached, NULL, &at));
    fiber_t *w = fiber_spawn(pp_pool_watcher, NULL);
    assert_non_null(w);
    size_t before = fiber_pool_count();
    assert_int_equal(fiber_join(w), 0);
    assert_int_equal(pp_pool_n, 3);
    /* D yields to W (W: first yield back to D), D ends into W: W's first count sees
     * D's stack back in the pool. */
    assert_int_equal(pp_pool[0], before + 1);
    assert_int_equal(fiber_live_count(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yield_round_robin),
        cmocka_unit_test(test_yield_pingpong_order),
        cmocka_unit_test(test_yield_pingpong_lets_timers_run),
        cmocka_unit_test(test_yield_pingpong_lets_io_run),
        cmocka_unit_test(test_yield_pingpong_detached_end),
        cmocka_unit_test(test_join_from_main_runs_scheduler),
        cmocka_unit_test(test_spawn_join_loop_lets_others_run),
        cmocka_unit_test(test_spawn_join_loop_lets_timer_run),
        cmocka_unit_test(test_spawn_join_loop_lets_io_run),
        cmocka_unit_test(test_spawn_join_loop_lets_remote_run),
        cmocka_unit_test(test_join_run_path_keeps_stack_sizes_apart),
        cmocka_unit_test(test_join_woken_fiber_resumes),
        cmocka_unit_test(test_join_from_fiber_parks),
        cmocka_unit_test(test_join_run_path),
        cmocka_unit_test(test_join_run_path_order),
        cmocka_unit_test(test_self_name_and_id),
        cmocka_unit_test(test_detached_fibers_reclaimed),
        cmocka_unit_test(test_detach_after_return),
        cmocka_unit_test(test_pool_reuses_stacks),
        cmocka_unit_test(test_bad_attributes),
        cmocka_unit_test(test_default_stack_is_usable),
        cmocka_unit_test(test_many_live_fibers),
        cmocka_unit_test(test_one_scheduler_per_thread),
        cmocka_unit_test(test_stack_trim),
        cmocka_unit_test(test_guard_mode_reported),
        cmocka_unit_test(test_recycled_record_starts_clean),
        cmocka_unit_test(test_records_spread_over_cache_sets),
#if defined(__x86_64__)
        cmocka_unit_test(test_fresh_fiber_fp_state),
        cmocka_unit_test(test_fp_words_every_way_back),
        cmocka_unit_test(test_fp_run_path_stale_slot),
#endif
        cmocka_unit_test(test_switch_back_keeps_registers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
