/* Waking fibers from other threads and from signals. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>

#include "fiber.h"

#define MS 1000000ull

static void sleep_ms(int ms)
{
    struct timespec ts = { 0, (long)ms * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static fiber_sched_t *target;

/* ---- a wait queue woken from another thread ---- */

static fiber_waitq_t q = FIBER_WAITQ_INIT;
static int woken;
static atomic_int parking;

static void queue_waiter(void *arg)
{
    (void)arg;
    /* Counted before it parks: nothing else runs on this thread in between, and a
     * request from another thread runs here only once this fiber has parked. */
    atomic_fetch_add(&parking, 1);
    assert_int_equal(fiber_waitq_wait(&q, fiber_now_ns() + 5000 * MS), 0);
    woken++;
}

static void *wake_from_thread(void *arg)
{
    (void)arg;
    /* Both waiters parked first: a wake that reaches an empty queue wakes nobody (a
     * fixed 2 ms sleep was not enough under Valgrind on a loaded machine: both wakes
     * came first and the waiters timed out). */
    while (atomic_load(&parking) < 2)
        sleep_ms(1);
    assert_int_equal(fiber_waitq_wake_one_on(target, &q), 0);
    sleep_ms(1);
    assert_int_equal(fiber_waitq_wake_all_on(target, &q), 0);
    return NULL;
}

static void test_waitq_woken_from_another_thread(void **state)
{
    (void)state;
    target = fiber_sched_self();
    assert_non_null(target);
    woken = 0;
    atomic_store(&parking, 0);
    fiber_t *a = fiber_spawn(queue_waiter, NULL), *b = fiber_spawn(queue_waiter, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wake_from_thread, NULL), 0);
    uint64_t t0 = fiber_now_ns();
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(woken, 2);
    assert_true(fiber_now_ns() - t0 < 4000 * MS); /* woken, not timed out */
    pthread_join(t, NULL);
    fiber_join(a);
    fiber_join(b);
}

/* ---- a semaphore posted from two threads, many times ---- */

enum { RELEASES = 2000, TAKERS = 4 };
static fiber_sem_t sem = FIBER_SEM_INIT(0);
static int taken;

static void taker(void *arg)
{
    (void)arg;
    for (int i = 0; i < RELEASES * 2 / TAKERS; i++) {
        assert_int_equal(fiber_sem_acquire(&sem, fiber_now_ns() + 5000 * MS), 0);
        taken++;
        if (i % 7 == 0)
            fiber_yield();
    }
}

static void *releaser(void *arg)
{
    (void)arg;
    for (int i = 0; i < RELEASES; i++)
        while (fiber_sem_release_on(target, &sem) != 0)
            sleep_ms(1); /* ENOMEM: try again */
    return NULL;
}

static void test_sem_released_from_other_threads(void **state)
{
    (void)state;
    taken = 0;
    fiber_t *f[TAKERS];
    for (int i = 0; i < TAKERS; i++)
        f[i] = fiber_spawn(taker, NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, releaser, NULL), 0);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(taken, 2 * RELEASES);
    assert_int_equal(sem.count, 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < TAKERS; i++)
        fiber_join(f[i]);
}

/* ---- fibers spawned onto this scheduler from another thread; a posted call ---- */

enum { SPAWNS = 200 };
static int spawned_ran;
static pthread_t main_thread;
static fiber_waitq_t all_done = FIBER_WAITQ_INIT;
static int posted_ran;

static fiber_waitq_t child_q = FIBER_WAITQ_INIT;
static fiber_sem_t child_sem = FIBER_SEM_INIT(0);
static int children_started;

static void remote_child(void *arg)
{
    (void)arg;
    assert_true(pthread_equal(pthread_self(), main_thread));
    int me = children_started++;
    /* It is a real fiber: it yields, sleeps, times out, waits with no deadline. */
    fiber_yield();
    fiber_sleep_ns(1000);
    errno = 0;
    assert_int_equal(fiber_waitq_wait(&child_q, fiber_now_ns() + 100000), -1);
    assert_int_equal(errno, ETIMEDOUT);
    if (me % 2)
        fiber_sem_release(&child_sem);
    else
        assert_int_equal(fiber_sem_acquire(&child_sem, FIBER_FOREVER), 0);
    if (++spawned_ran == SPAWNS)
        fiber_waitq_wake_all(&all_done);
}

static void posted(void *arg)
{
    assert_null(fiber_self()); /* runs in the scheduler's context, not in a fiber */
    assert_true(pthread_equal(pthread_self(), main_thread));
    posted_ran = *(int *)arg;
}

static void *spawner(void *arg)
{
    (void)arg;
    static int v = 42;
    assert_int_equal(fiber_sched_post(target, posted, &v), 0);
    for (int i = 0; i < SPAWNS; i++)
        assert_int_equal(fiber_spawn_on(target, remote_child, NULL), 0);
    return NULL;
}

static void collector(void *arg)
{
    (void)arg;
    while (spawned_ran < SPAWNS)
        assert_int_equal(fiber_waitq_wait(&all_done, fiber_now_ns() + 5000 * MS), 0);
}

static void test_spawn_on_from_another_thread(void **state)
{
    (void)state;
    main_thread = pthread_self();
    spawned_ran = 0;
    fiber_t *c = fiber_spawn(collector, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, spawner, NULL), 0);
    fiber_join(c);
    assert_int_equal(spawned_ran, SPAWNS);
    assert_int_equal(posted_ran, 42);
    pthread_join(t, NULL);
    assert_int_equal(fiber_run(), 0); /* the detached children, all done */
    assert_int_equal(fiber_live_count(), 0);
}

/* ---- a busy scheduler still takes messages (no poll needed to see them) ---- */

static atomic_int busy_stop;
static int busy_posted;

static void busy_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop))
        fiber_yield();
}

static void stop_busy(void *arg)
{
    (void)arg;
    busy_posted = 1;
    atomic_store(&busy_stop, 1);
}

static void *post_to_busy(void *arg)
{
    (void)arg;
    sleep_ms(2);
    assert_int_equal(fiber_sched_post(target, stop_busy, NULL), 0);
    return NULL;
}

static void test_busy_scheduler_takes_messages(void **state)
{
    (void)state;
    fiber_t *a = fiber_spawn(busy_loop, NULL), *b = fiber_spawn(busy_loop, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, post_to_busy, NULL), 0);
    assert_int_equal(fiber_run(), 0);
    assert_int_equal(busy_posted, 1);
    pthread_join(t, NULL);
    fiber_join(a);
    fiber_join(b);
}

/* ---- a thread that exits with requests still in its inbox ---- */

static pthread_barrier_t posted_bar, handed;
static fiber_sched_t *leaving;
static int late_ran;

static void late_call(void *arg) { (void)arg; late_ran = 1; }

static void *exits_without_running(void *arg)
{
    (void)arg;
    leaving = fiber_sched_self();
    pthread_barrier_wait(&handed);
    pthread_barrier_wait(&posted_bar); /* then leaves without running its scheduler */
    return NULL;
}

static void test_exiting_thread_drops_requests(void **state)
{
    (void)state;
    pthread_barrier_init(&posted_bar, NULL, 2);
    pthread_barrier_init(&handed, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, exits_without_running, NULL), 0);
    pthread_barrier_wait(&handed);
    assert_non_null(leaving);
    assert_int_equal(fiber_sched_post(leaving, late_call, NULL), 0);
    assert_int_equal(fiber_spawn_on(leaving, remote_child, NULL), 0);
    pthread_barrier_wait(&posted_bar);
    pthread_join(t, NULL);
    /* Dropped unrun (and freed: the ASan build checks for leaks). */
    assert_int_equal(late_ran, 0);
    pthread_barrier_destroy(&posted_bar);
    pthread_barrier_destroy(&handed);
}

/* ---- signals ---- */

static int got_signal;
static void signal_waiter(void *arg)
{
    sigset_t *set = arg;
    got_signal = fiber_signal_wait(set, fiber_now_ns() + 5000 * MS);
}

static void signal_sender(void *arg)
{
    int sig = (int)(intptr_t)arg;
    fiber_sleep_ns(2 * MS); /* the waiter is parked */
    assert_int_equal(kill(getpid(), sig), 0);
}

static int ticks;
static void signal_ticker(void *arg)
{
    (void)arg;
    while (!got_signal) {
        ticks++;
        fiber_sleep_ns(MS / 2);
    }
}

static void test_signal_wakes_a_fiber(void **state)
{
    (void)state;
    /* Blocked in main before any thread of this test exists (see fiber.h). */
    int sigs[] = { SIGTERM, SIGINT, SIGUSR1 };
    for (int i = 0; i < 3; i++) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        got_signal = 0;
        ticks = 0;
        fiber_t *w = fiber_spawn(signal_waiter, &set);
        fiber_t *k = fiber_spawn(signal_sender, (void *)(intptr_t)sigs[i]);
        fiber_t *t = fiber_spawn(signal_ticker, NULL);
        assert_int_equal(fiber_run(), 0);
        assert_int_equal(got_signal, sigs[i]);
        assert_true(ticks >= 1); /* the thread was not blocked in sigwait */
        fiber_join(w);
        fiber_join(k);
        fiber_join(t);
    }
}

static void signal_timeout(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    errno = 0;
    assert_int_equal(fiber_signal_wait(&set, fiber_now_ns() + 2 * MS), -1);
    assert_int_equal(errno, ETIMEDOUT);
}

static void test_signal_wait_timeout(void **state)
{
    (void)state;
    fiber_join(fiber_spawn(signal_timeout, NULL));
}

/* ---- a worker thread that serves requests until stopped ---- */

static pthread_barrier_t served_bar;
static fiber_sched_t *worker;
static atomic_int served;
static int serve_rc = -2;

static void served_request(void *arg)
{
    (void)arg;
    fiber_sleep_ns(1 * MS); /* a fiber that parks: the worker must not return meanwhile */
    atomic_fetch_add(&served, 1);
}

static void served_call(void *arg) { (void)arg; atomic_fetch_add(&served, 100); }

static void *serving_thread(void *arg)
{
    (void)arg;
    worker = fiber_sched_self();
    pthread_barrier_wait(&served_bar);
    /* No fiber yet: fiber_run() would return at once; fiber_sched_serve() waits. */
    serve_rc = fiber_sched_serve();
    return NULL;
}

static void test_serve_until_stopped(void **state)
{
    (void)state;
    atomic_store(&served, 0);
    pthread_barrier_init(&served_bar, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serving_thread, NULL), 0);
    pthread_barrier_wait(&served_bar);
    sleep_ms(5); /* the worker is asleep in its poller with nothing to run */
    for (int i = 0; i < 10; i++)
        assert_int_equal(fiber_spawn_on(worker, served_request, NULL), 0);
    assert_int_equal(fiber_sched_post(worker, served_call, NULL), 0);
    /* A graceful stop: the requests in flight finish first. */
    assert_int_equal(fiber_sched_stop(worker), 0);
    pthread_join(t, NULL);
    assert_int_equal(serve_rc, 0);
    assert_int_equal(atomic_load(&served), 110);
    pthread_barrier_destroy(&served_bar);
    /* The thread is gone: every call that posts to it says so. */
    static fiber_waitq_t wq = FIBER_WAITQ_INIT;
    static fiber_sem_t sem = FIBER_SEM_INIT(0);
    errno = 0;
    assert_int_equal(fiber_sched_post(worker, served_call, NULL), -1);
    assert_int_equal(errno, EPIPE);
    errno = 0;
    assert_int_equal(fiber_spawn_on(worker, served_request, NULL), -1);
    assert_int_equal(errno, EPIPE);
    errno = 0;
    assert_int_equal(fiber_waitq_wake_one_on(worker, &wq), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(fiber_waitq_wake_all_on(worker, &wq), -1);
    assert_int_equal(fiber_sem_release_on(worker, &sem), -1);
    assert_int_equal(fiber_sched_stop(worker), -1);
    assert_int_equal(errno, EPIPE);
}

/* A later thread's scheduler may reuse the exited one's face; the old handle must not
 * reach it. */
static void *publish_and_wait(void *arg)
{
    fiber_sched_t **out = arg;
    *out = fiber_sched_self();
    pthread_barrier_wait(&served_bar);
    return (void *)(intptr_t)fiber_sched_serve();
}

static void test_handle_of_exited_thread_never_reaches_a_new_one(void **state)
{
    (void)state;
    atomic_store(&served, 0);
    fiber_sched_t *old_h[4], *new_h;
    for (int i = 0; i < 4; i++) { /* a few lives, so that faces are surely reused */
        pthread_barrier_init(&served_bar, NULL, 2);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, publish_and_wait, &old_h[i]), 0);
        pthread_barrier_wait(&served_bar);
        assert_int_equal(fiber_sched_stop(old_h[i]), 0);
        pthread_join(t, NULL);
        pthread_barrier_destroy(&served_bar);
    }
    pthread_barrier_init(&served_bar, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publish_and_wait, &new_h), 0);
    pthread_barrier_wait(&served_bar);
    for (int i = 0; i < 4; i++) {
        assert_ptr_not_equal(old_h[i], new_h);
        errno = 0;
        assert_int_equal(fiber_sched_post(old_h[i], served_call, NULL), -1);
        assert_int_equal(errno, EPIPE);
    }
    assert_int_equal(fiber_sched_post(new_h, served_call, NULL), 0);
    assert_int_equal(fiber_sched_stop(new_h), 0);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&served_bar);
    assert_int_equal(atomic_load(&served), 100); /* the new one's call only */
}

/* ---- posts racing a thread's exit ---- */

static fiber_sched_t *_Atomic racing_target;
static atomic_long race_accepted, race_ran, race_epipe;
static atomic_int race_over;

static void race_job(void *arg) { (void)arg; atomic_fetch_add(&race_ran, 1); }

static void *race_worker(void *arg)
{
    (void)arg;
    atomic_store(&racing_target, fiber_sched_self());
    fiber_sched_serve();
    return NULL;
}

static void *race_poster(void *arg)
{
    int spawn = (int)(intptr_t)arg;
    while (!atomic_load(&race_over)) {
        fiber_sched_t *t = atomic_load(&racing_target);
        if (!t) {
            sched_yield();
            continue;
        }
        int r = spawn ? fiber_spawn_on(t, race_job, NULL) : fiber_sched_post(t, race_job, NULL);
        if (r == 0)
            atomic_fetch_add(&race_accepted, 1);
        else if (errno == EPIPE)
            atomic_fetch_add(&race_epipe, 1);
        else
            fail_msg("a post failed with %s", strerror(errno));
    }
    return NULL;
}

/* Threads posting (and spawning) while the target thread stops and exits, again and
 * again: no crash or use-after-free (ASan, Valgrind), EPIPE once it is gone, and never
 * more messages run than were accepted. */
static void test_posts_racing_thread_exit(void **state)
{
    (void)state;
    int rounds = RUNNING_ON_VALGRIND ? 3 : 30;
    pthread_t p[2];
    assert_int_equal(pthread_create(&p[0], NULL, race_poster, (void *)0), 0);
    assert_int_equal(pthread_create(&p[1], NULL, race_poster, (void *)1), 0);
    for (int i = 0; i < rounds; i++) {
        pthread_t w;
        assert_int_equal(pthread_create(&w, NULL, race_worker, NULL), 0);
        while (!atomic_load(&racing_target))
            sched_yield();
        sleep_ms(1);
        assert_int_equal(fiber_sched_stop(atomic_load(&racing_target)), 0);
        pthread_join(w, NULL);
        sleep_ms(1); /* the posters meet the exited scheduler */
        atomic_store(&racing_target, NULL);
    }
    atomic_store(&race_over, 1);
    pthread_join(p[0], NULL);
    pthread_join(p[1], NULL);
    assert_true(atomic_load(&race_epipe) > 0);
    assert_true(atomic_load(&race_ran) <= atomic_load(&race_accepted));
    print_message("%d exits under posts: %ld accepted, %ld ran, %ld EPIPE\n", rounds,
                  atomic_load(&race_accepted), atomic_load(&race_ran), atomic_load(&race_epipe));
}

/* ---- fork ---- */

static int fork_pair[2];
static int offload_rc = -1;
static fiber_sched_t *other_thread;

static void slow_job(void *arg) { (void)arg; sleep_ms(30); }

static void offloader_across_fork(void *arg)
{
    (void)arg;
    offload_rc = fiber_offload(slow_job, NULL);
}

static void child_reader(void *arg)
{
    char *got = arg;
    if (fiber_read(fork_pair[0], got, 1, fiber_now_ns() + 2000 * MS) != 1)
        *got = '?';
}

static void child_writer(void *arg)
{
    (void)arg;
    fiber_sleep_ns(2 * MS); /* the reader is parked, in the child's own poller */
    assert_int_equal(write(fork_pair[1], "c", 1), 1);
}

static void forking_fiber(void *arg)
{
    (void)arg;
    fiber_sleep_ns(5 * MS); /* the offloaded call is running on a pool thread */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: the pool's call belongs to the parent; the copy of its fiber is told. */
        fiber_yield();
        fiber_yield();
        int code = 0;
        if (offload_rc != ECANCELED)
            code |= 1;
        /* Its own I/O waits work (its own epoll instance and eventfd). */
        char got = 0;
        fiber_t *r = fiber_spawn(child_reader, &got), *w = fiber_spawn(child_writer, NULL);
        fiber_join(r);
        fiber_join(w);
        if (got != 'c')
            code |= 2;
        /* Another thread of the parent does not exist here. */
        errno = 0;
        if (fiber_sched_post(other_thread, served_call, NULL) != -1 || errno != EPIPE)
            code |= 4;
        /* And its own scheduler still takes posts (through its new eventfd). */
        if (fiber_sched_post(fiber_sched_self(), served_call, NULL) != 0)
            code |= 8;
        _exit(code);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_fork_from_a_fiber(void **state)
{
    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fork_pair), 0);
    pthread_barrier_init(&served_bar, NULL, 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publish_and_wait, &other_thread), 0);
    pthread_barrier_wait(&served_bar);
    fiber_t *o = fiber_spawn(offloader_across_fork, NULL), *f = fiber_spawn(forking_fiber, NULL);
    fiber_join(f);
    fiber_join(o);
    assert_int_equal(offload_rc, 0); /* the parent's call completes as usual */
    assert_int_equal(fiber_sched_stop(other_thread), 0);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&served_bar);
    fiber_close(fork_pair[0]);
    fiber_close(fork_pair[1]);
}

int main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL); /* before any thread: they all inherit it */

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waitq_woken_from_another_thread),
        cmocka_unit_test(test_sem_released_from_other_threads),
        cmocka_unit_test(test_spawn_on_from_another_thread),
        cmocka_unit_test(test_busy_scheduler_takes_messages),
        cmocka_unit_test(test_exiting_thread_drops_requests),
        cmocka_unit_test(test_signal_wakes_a_fiber),
        cmocka_unit_test(test_signal_wait_timeout),
        cmocka_unit_test(test_serve_until_stopped),
        cmocka_unit_test(test_handle_of_exited_thread_never_reaches_a_new_one),
        cmocka_unit_test(test_posts_racing_thread_exit),
        cmocka_unit_test(test_fork_from_a_fiber),
    };
    if (getenv("FIBER_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FIBER_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
