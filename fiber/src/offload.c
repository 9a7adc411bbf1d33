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
 * Deadlines. A fiber that stops waiting (fiber_offload_until's deadline) cannot stop the
 * call, which is running somewhere in a blocking system call. The job therefore owns its
 * argument; the fiber and the pool thread race, with one compare-and-swap on the job's
 * state, for who finishes the job's life: PENDING -> DONE (the pool thread won: the fiber
 * is still waiting and gets the result) or PENDING -> ABANDONED (the fiber won: it leaves
 * with ETIMEDOUT, and the pool thread later runs the cleanup callback and frees the job).
 * A fiber that lost the race waits for the completion message that is already on its way.
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

enum { JOB_PENDING, JOB_DONE, JOB_ABANDONED };

struct job {
    struct fiber__msg   msg;       /* first: the completion message */
    struct job         *next;      /* pool queue */
    void              (*fn)(void *);
    void              (*cleanup)(void *);
    void               *arg;
    struct fiber_sched *dest;
    struct fiber       *waiter;
    atomic_int          state;
    int                 delivered; /* the completion message ran (owner thread only) */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    struct job     *head, *tail;
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

static void pool_atfork_init(void)
{
    pthread_atfork(NULL, NULL, pool_atfork_child);
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
    struct job *j = (struct job *)m;
    j->delivered = 1;
    fiber__wake(s, j->waiter, 0);
}

static void job_finish(struct job *j)
{
    int expected = JOB_PENDING;
    if (atomic_compare_exchange_strong(&j->state, &expected, JOB_DONE)) {
        j->msg.run = job_delivered;
        fiber__remote_push(j->dest, &j->msg);
        return;
    }
    /* Abandoned: nobody waits, the job is ours to end. */
    if (j->cleanup)
        j->cleanup(j->arg);
    free(j);
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
        struct job *j = pool.head;
        pool.queued--;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.mu);
        j->fn(j->arg);
        job_finish(j);
        pthread_mutex_lock(&pool.mu);
    }
}

/* Queues j, starting a thread if none is idle. Returns 0, or EAGAIN when the pool has no
 * thread at all and none could be started. */
static int pool_submit(struct job *j)
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
    struct fiber_sched *dest = fiber__remote(s);
    if (!dest)
        return errno;
    struct job *j = calloc(1, sizeof *j);
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
    f->wait_kind = WAIT_OFFLOAD;
    int r = fiber__park(s, f, deadline_ns);
    if (r == ENOMEM) /* no room for the deadline in the timer heap: wait without it */
        r = fiber__park(s, f, FIBER_FOREVER);
    if (r == ETIMEDOUT) {
        int expected = JOB_PENDING;
        if (atomic_compare_exchange_strong(&j->state, &expected, JOB_ABANDONED)) {
            s->remote_waiters--;
            return ETIMEDOUT; /* the pool thread ends the job */
        }
        /* Done just now: the completion message is posted; wait for it to land. */
        if (!j->delivered) {
            f->wait_kind = WAIT_OFFLOAD;
            fiber__park(s, f, FIBER_FOREVER);
        }
    }
    s->remote_waiters--;
    free(j);
    return 0;
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
