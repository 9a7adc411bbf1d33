/*
 * offload.c - the offload pool: blocking calls run on a few plain threads while the
 * calling fiber is parked, so the other fibers of its thread keep running.
 *
 * One process-wide pool: a FIFO of jobs under one mutex, and threads started on demand
 * (a job that finds no idle thread starts one, up to the limit) that exit after
 * IDLE_EXIT_S seconds without work. A finished job is handed back to the scheduler of
 * the fiber that asked for it through that scheduler's inbox (remote.c), whose message
 * wakes the fiber on its own thread.
 *
 * Deadlines. A fiber that stops waiting (fiber_offload_until's deadline) cannot stop a
 * call that has started: it is running somewhere in a blocking system call. A call still
 * queued can be stopped. The fiber and the pool thread race, with compare-and-swaps on
 * the job's state, for who decides its fate:
 *   PENDING -> RUNNING    a pool thread took the job from the queue and calls fn;
 *   PENDING -> CANCELLED  the fiber gave up first: fn is never called; the pool thread,
 *                         when it meets the job in the queue, runs only the cleanup;
 *   RUNNING -> DONE       fn returned while the fiber waits: it gets the result;
 *   RUNNING -> ABANDONED  the fiber gave up during the call: the job owns its argument,
 *                         and the pool thread runs the cleanup when fn returns.
 * A fiber that lost the race (DONE) waits for the completion message already on its way.
 * Jobs given up while queued therefore cost a pool thread nothing but their cleanup: a
 * DNS outage with deadlines does not leave the pool running lookups nobody waits for.
 *
 * Fork. A forked child has none of the pool's threads. The pool's lock is held across
 * fork(), and a pool thread marks a job DONE and posts its completion under that lock,
 * so the child sees each job of its thread either done and posted (the message is in
 * the inbox the child inherited) or not: the fibers still waiting for those are woken
 * with ECANCELED (fiber__offload_atfork_child), and the queue starts empty.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_THREADS 8 /* libuv's pool has 4; name lookups are latency, not CPU */
#define MAX_THREADS 1024
#define IDLE_EXIT_S 10

enum { JOB_PENDING, JOB_RUNNING, JOB_DONE, JOB_ABANDONED, JOB_CANCELLED };

struct fiber__job {
    struct fiber__msg   msg;       /* first: the completion message */
    struct fiber__job  *next;      /* pool queue */
    struct fiber__job  *snext, *sprev; /* the waiting scheduler's jobs (its thread only) */
    void              (*fn)(void *);
    void              (*cleanup)(void *);
    void               *arg;
    fiber_sched_t      *dest;
    struct fiber       *waiter;
    atomic_int          state;
    int                 delivered; /* the completion message ran (owner thread only) */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    struct fiber__job     *head, *tail;
    unsigned        queued, threads, idle, max;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0, DEFAULT_THREADS };

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child has none of the pool's threads, and its queued jobs belong to fibers
 * of the parent: it starts with an empty pool. */
static void pool_atfork_child(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pool.head = pool.tail = NULL;
    pool.queued = pool.threads = pool.idle = 0;
}

static void pool_atfork_prepare(void)
{
    pthread_mutex_lock(&pool.mu);
}

static void pool_atfork_parent(void)
{
    pthread_mutex_unlock(&pool.mu);
}

static void pool_atfork_init(void)
{
    pthread_atfork(pool_atfork_prepare, pool_atfork_parent, pool_atfork_child);
}

/* In a forked child, before the pool is reset: see "Fork" above. */
void fiber__offload_atfork_child(struct sched *s)
{
    for (struct fiber__job *j = s->jobs; j; j = j->snext) {
        int st = atomic_load(&j->state);
        if (st == JOB_PENDING || st == JOB_RUNNING) {
            atomic_store(&j->state, JOB_CANCELLED);
            fiber__wake(s, j->waiter, ECANCELED);
        }
    }
}

void fiber_offload_set_threads(unsigned n)
{
    if (n == 0)
        n = DEFAULT_THREADS;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pthread_mutex_lock(&pool.mu);
    pool.max = n;
    pthread_mutex_unlock(&pool.mu);
}

/* On the owner's thread: the job is done and its fiber still waits. */
static void job_delivered(struct sched *s, struct fiber__msg *m)
{
    struct fiber__job *j = (struct fiber__job *)m;
    j->delivered = 1;
    fiber__wake(s, j->waiter, 0);
}

static void *pool_thread(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.head) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until); /* what pthread_cond_timedwait reads */
            until.tv_sec += IDLE_EXIT_S;
            pool.idle++;
            int r = pthread_cond_timedwait(&pool.cv, &pool.mu, &until);
            pool.idle--;
            if (r == ETIMEDOUT && !pool.head) {
                pool.threads--;
                pthread_mutex_unlock(&pool.mu);
                return NULL;
            }
        }
        struct fiber__job *j = pool.head;
        pool.queued--;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        int expected = JOB_PENDING;
        int claimed = atomic_compare_exchange_strong(&j->state, &expected, JOB_RUNNING);
        pthread_mutex_unlock(&pool.mu);
        if (claimed)
            j->fn(j->arg);
        pthread_mutex_lock(&pool.mu);
        /* Done and posted under the lock, as one step for fork() (see the top). */
        expected = JOB_RUNNING;
        if (claimed && atomic_compare_exchange_strong(&j->state, &expected, JOB_DONE)) {
            j->msg.run = job_delivered;
            if (fiber__remote_post(j->dest, &j->msg) != 0)
                free(j); /* EPIPE: the thread exited with the fiber parked; nobody to tell */
            continue;
        }
        /* Cancelled before it started, or abandoned while it ran: ours to end. */
        pthread_mutex_unlock(&pool.mu);
        if (j->cleanup)
            j->cleanup(j->arg);
        free(j);
        pthread_mutex_lock(&pool.mu);
    }
}

/* Queues j, starting a thread if none is idle. Returns 0, or EAGAIN when the pool has no
 * thread at all and none could be started. */
static int pool_submit(struct fiber__job *j)
{
    int err = 0;
    j->next = NULL;
    pthread_once(&atfork_once, pool_atfork_init);
    pthread_mutex_lock(&pool.mu);
    /* Every queued job has claimed an idle thread (signalled ones count as idle until
     * they wake): start one more when the idle ones are all claimed. */
    if (pool.queued >= pool.idle && pool.threads < pool.max) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        /* The pool threads must not take the signals fiber_signal_wait() expects. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = pthread_create(&t, &a, pool_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&a);
        if (r == 0)
            pool.threads++;
        else if (pool.threads == 0)
            err = EAGAIN; /* no thread will ever take it */
    }
    if (!err) {
        if (pool.tail)
            pool.tail->next = j;
        else
            pool.head = j;
        pool.tail = j;
        pool.queued++;
        pthread_cond_signal(&pool.cv);
    }
    pthread_mutex_unlock(&pool.mu);
    return err;
}

int fiber_offload_until(void (*fn)(void *arg), void (*cleanup)(void *arg), void *arg,
                        uint64_t deadline_ns)
{
    if (!fn)
        return EINVAL;
    struct sched *s = fiber__sched_peek();
    struct fiber *f = s ? s->current : NULL;
    if (!f) {
        fn(arg);
        return 0;
    }
    fiber_sched_t *dest = fiber__remote(s);
    if (!dest)
        return errno;
    struct fiber__job *j = calloc(1, sizeof *j);
    if (!j)
        return ENOMEM;
    j->fn = fn;
    j->cleanup = cleanup;
    j->arg = arg;
    j->dest = dest;
    j->waiter = f;
    atomic_init(&j->state, JOB_PENDING);
    int err = pool_submit(j);
    if (err) {
        free(j);
        return err;
    }
    s->remote_waiters++;
    j->sprev = NULL;
    j->snext = s->jobs;
    if (s->jobs)
        s->jobs->sprev = j;
    s->jobs = j;
    f->wait_kind = WAIT_OFFLOAD;
    int r = fiber__park(s, f, deadline_ns);
    if (r == ENOMEM) { /* no room for the deadline in the timer heap: wait without it */
        f->wait_kind = WAIT_OFFLOAD;
        r = fiber__park(s, f, FIBER_FOREVER);
    }
    if (r == ETIMEDOUT) {
        int expected = JOB_PENDING;
        if (atomic_compare_exchange_strong(&j->state, &expected, JOB_CANCELLED) ||
            (expected == JOB_RUNNING &&
             atomic_compare_exchange_strong(&j->state, &expected, JOB_ABANDONED))) {
            r = ETIMEDOUT; /* the pool thread ends the job (cleanup only, if cancelled) */
            goto out;
        }
        /* Done just now: the completion message is posted; wait for it to land. */
        if (!j->delivered) {
            f->wait_kind = WAIT_OFFLOAD;
            fiber__park(s, f, FIBER_FOREVER);
        }
        r = 0;
    }
    /* 0: done and delivered; ECANCELED: a forked child, the call ran in the parent. */
out:
    if (j->sprev)
        j->sprev->snext = j->snext;
    else
        s->jobs = j->snext;
    if (j->snext)
        j->snext->sprev = j->sprev;
    s->remote_waiters--;
    if (r != ETIMEDOUT)
        free(j);
    return r;
}

int fiber_offload(void (*fn)(void *arg), void *arg)
{
    return fiber_offload_until(fn, NULL, arg, FIBER_FOREVER);
}

/* ---- the first users: file I/O here, name lookup in offload_gai.c ---- */

struct rw_job {
    int         fd;
    void       *buf;
    size_t      n;
    off_t       off;
    int         write;
    ssize_t     r;
    int         err;
};

static void rw_run(void *p)
{
    struct rw_job *j = p;
    do
        j->r = j->write ? pwrite(j->fd, j->buf, j->n, j->off) : pread(j->fd, j->buf, j->n, j->off);
    while (j->r < 0 && errno == EINTR);
    j->err = errno;
}

static ssize_t rw(int fd, void *buf, size_t n, off_t off, int write)
{
    struct rw_job j = { fd, buf, n, off, write, -1, 0 };
    if (fiber_offload(rw_run, &j) != 0)
        rw_run(&j); /* no pool thread: do it here (it stalls this thread, but it is done) */
    if (j.r < 0)
        errno = j.err;
    return j.r;
}

ssize_t fiber_pread(int fd, void *buf, size_t n, off_t off)
{
    return rw(fd, buf, n, off, 0);
}

ssize_t fiber_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return rw(fd, (void *)buf, n, off, 1);
}
