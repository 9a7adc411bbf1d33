/*
 * remote.c - waking a scheduler from other threads and from signals.
 *
 * Each scheduler that is to be reached from outside gets a "remote face" (struct
 * fiber_sched, the public fiber_sched_t): a multi-producer inbox of messages and an
 * eventfd registered in the scheduler's epoll set. Any thread pushes a message and, when
 * the inbox was empty, writes the eventfd; the owner drains the inbox from its scheduler
 * loop and runs each message there (outside any fiber), so everything a message touches
 * - run queue, wait queues, the stack pool - is only ever touched by its own thread.
 *
 * The inbox is a lock-free LIFO (one compare-and-swap per push) that the owner takes
 * whole with one exchange and reverses into arrival order; there is no ABA problem since
 * nobody pops single nodes. Wake-up protocol: a producer whose push found the inbox empty
 * writes the eventfd after the push; the owner, woken by the eventfd, reads it (resetting
 * it) before taking the inbox. Either the take sees a message, or the push came after the
 * take, found the inbox empty and wrote the eventfd again: no message can be left behind
 * with the owner asleep. The owner also takes the inbox without reading the eventfd when
 * it passes by with fibers to run (one relaxed load per scheduler round); that costs at
 * most one spurious wake-up later. Measured against a mutex-protected list, see the
 * commit that added this file.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct fiber_sched {
    /* Written by every producer: a line of its own, away from the scheduler's hot data. */
    _Alignas(64) _Atomic(struct fiber__msg *) inbox;
    _Alignas(64) int efd;
    struct sched *owner;
};

static void fiber__msg_drop(struct fiber__msg *m);

/* ---- the owner's side ---- */

struct fiber_sched *fiber__remote(struct sched *s)
{
    if (s->remote)
        return s->remote;
    if (fiber__io_init(s) != 0)
        return NULL;
    struct fiber_sched *r = aligned_alloc(64, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    memset(r, 0, sizeof *r);
    atomic_init(&r->inbox, NULL);
    r->owner = s;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0)
        goto error1;
    /* Level-triggered: it keeps reporting until read, so no wake-up is lost between an
     * epoll_wait and the read. */
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = FIBER__REMOTE_TAG };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->efd, &ev) != 0)
        goto error2;
    s->remote = r;
    return r;
error2:;
    int e = errno;
    close(r->efd);
    errno = e;
error1:
    free(r);
    return NULL;
}

/* Runs every message in the inbox, in the order they were posted. from_event: the
 * eventfd reported readable, reset it first (see the top of this file). */
void fiber__remote_drain(struct sched *s, int from_event)
{
    struct fiber_sched *r = s->remote;
    if (from_event) {
        uint64_t v;
        ssize_t n = read(r->efd, &v, sizeof v);
        (void)n; /* EAGAIN: someone else's wake-up we already consumed */
    }
    struct fiber__msg *m = atomic_exchange_explicit(&r->inbox, NULL, memory_order_acquire);
    struct fiber__msg *fifo = NULL;
    while (m) {
        struct fiber__msg *next = m->next;
        m->next = fifo;
        fifo = m;
        m = next;
    }
    while (fifo) {
        m = fifo;
        fifo = m->next;
        m->run(s, m); /* may free m */
    }
}

int fiber__remote_pending(struct sched *s)
{
    return atomic_load_explicit(&s->remote->inbox, memory_order_relaxed) != NULL;
}

/* At thread exit. A fiber still parked in fiber_offload() has a pool thread that will
 * post to this face: then it is left in place (leaked) so the post lands harmlessly. */
void fiber__remote_free(struct sched *s)
{
    struct fiber_sched *r = s->remote;
    if (!r)
        return;
    s->remote = NULL;
    if (s->remote_waiters)
        return;
    /* Requests that came too late: dropped unrun (their functions would run inside a
     * thread-exit destructor, and a spawned fiber would never run). No offload
     * completion can be among them: those come only while a fiber waits. */
    struct fiber__msg *m = atomic_exchange_explicit(&r->inbox, NULL, memory_order_acquire);
    while (m) {
        struct fiber__msg *next = m->next;
        fiber__msg_drop(m);
        m = next;
    }
    close(r->efd);
    free(r);
}

/* ---- any thread ---- */

void fiber__remote_push(struct fiber_sched *r, struct fiber__msg *m)
{
    struct fiber__msg *old = atomic_load_explicit(&r->inbox, memory_order_relaxed);
    do
        m->next = old;
    while (!atomic_compare_exchange_weak_explicit(&r->inbox, &old, m, memory_order_release,
                                                  memory_order_relaxed));
    if (!old) {
        uint64_t one = 1;
        /* Cannot fail short of a bad fd; EAGAIN means the counter is already nonzero. */
        ssize_t n = write(r->efd, &one, sizeof one);
        (void)n;
    }
}

fiber_sched_t *fiber_sched_self(void)
{
    struct sched *s = fiber__sched();
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    struct fiber_sched *r = fiber__remote(s);
    if (r)
        s->remote_published = 1;
    return r;
}

/* A message that calls a function, or wakes a wait queue, or releases a semaphore. */
struct call_msg {
    struct fiber__msg hdr;
    void (*fn)(void *);
    void *arg;
};

static void run_call(struct sched *s, struct fiber__msg *m)
{
    (void)s;
    struct call_msg c = *(struct call_msg *)m;
    free(m);
    c.fn(c.arg);
}

static int post_call(fiber_sched_t *r, void (*run)(struct sched *, struct fiber__msg *),
                     void (*fn)(void *), void *arg)
{
    if (!r)
        FIBER_PANIC("a cross-thread call was given a NULL fiber_sched_t");
    struct call_msg *c = malloc(sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return -1;
    }
    c->hdr.run = run;
    c->fn = fn;
    c->arg = arg;
    fiber__remote_push(r, &c->hdr);
    return 0;
}

int fiber_sched_post(fiber_sched_t *r, void (*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    return post_call(r, run_call, fn, arg);
}

static void run_wake_one(struct sched *s, struct fiber__msg *m)
{
    (void)s;
    fiber_waitq_t *q = ((struct call_msg *)m)->arg;
    free(m);
    fiber_waitq_wake_one(q);
}

static void run_wake_all(struct sched *s, struct fiber__msg *m)
{
    (void)s;
    fiber_waitq_t *q = ((struct call_msg *)m)->arg;
    free(m);
    fiber_waitq_wake_all(q);
}

static void run_sem_release(struct sched *s, struct fiber__msg *m)
{
    (void)s;
    fiber_sem_t *sem = ((struct call_msg *)m)->arg;
    free(m);
    fiber_sem_release(sem);
}

int fiber_waitq_wake_one_on(fiber_sched_t *r, fiber_waitq_t *q)
{
    return post_call(r, run_wake_one, NULL, q);
}

int fiber_waitq_wake_all_on(fiber_sched_t *r, fiber_waitq_t *q)
{
    return post_call(r, run_wake_all, NULL, q);
}

int fiber_sem_release_on(fiber_sched_t *r, fiber_sem_t *sem)
{
    return post_call(r, run_sem_release, NULL, sem);
}

/* A spawn request carries the new fiber's stack, mapped by the caller: the target then
 * takes it from its pool, so creating the fiber there cannot fail for want of memory and
 * the caller is the one told about ENOMEM. */
struct spawn_msg {
    struct fiber__msg hdr;
    void (*fn)(void *);
    void *arg;
    struct fiber *rec; /* the record at the top of the new stack */
};

static void run_spawn(struct sched *s, struct fiber__msg *m)
{
    struct spawn_msg sp = *(struct spawn_msg *)m;
    free(m);
    fiber_attr_t at = { .detached = 1, .name = "remote" };
    fiber__pool_give(s, sp.rec);
    if (!fiber_spawn_ex(sp.fn, sp.arg, &at))
        FIBER_PANIC("fiber_spawn_on: the target could not create the fiber from its own "
                    "stack (%s)", strerror(errno)); /* cannot happen: the stack is pooled */
}

/* Frees a message without running it: its memory, and a spawn request's stack. */
static void fiber__msg_drop(struct fiber__msg *m)
{
    if (m->run == run_spawn) {
        fiber_stack_t st = ((struct spawn_msg *)m)->rec->stack;
        fiber_stack_free(&st);
    }
    free(m);
}

int fiber_spawn_on(fiber_sched_t *r, void (*fn)(void *), void *arg)
{
    if (!r)
        FIBER_PANIC("fiber_spawn_on was given a NULL fiber_sched_t");
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    struct spawn_msg *m = malloc(sizeof *m);
    if (!m) {
        errno = ENOMEM;
        return -1;
    }
    fiber_stack_t st;
    if (fiber_stack_alloc(&st, fiber__stack_round(FIBER_DEFAULT_STACK_SIZE), 1) != 0) {
        free(m);
        return -1;
    }
    m->hdr.run = run_spawn;
    m->fn = fn;
    m->arg = arg;
    m->rec = (struct fiber *)((char *)st.hi - FIBER_RECORD_SIZE);
    fiber__record_init(m->rec, &st);
    fiber__remote_push(r, &m->hdr);
    return 0;
}

/* ---- signals ---- */

int fiber_signal_wait(const sigset_t *set, uint64_t deadline_ns)
{
    if (!fiber_self())
        FIBER_PANIC("fiber_signal_wait called outside a fiber");
    /* Blocked here so that the signal stays pending for the signalfd instead of getting
     * its default action on this thread. Other threads must block it too (fiber.h). */
    if (pthread_sigmask(SIG_BLOCK, set, NULL) != 0)
        return -1;
    int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    struct signalfd_siginfo si;
    ssize_t n = fiber_read(fd, &si, sizeof si, deadline_ns);
    int e = errno;
    fiber_close(fd);
    if (n != (ssize_t)sizeof si) {
        errno = n < 0 ? e : EIO;
        return -1;
    }
    return (int)si.ssi_signo;
}
