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
  *
 * Lifetime. A face outlives its thread. At thread exit it is closed - posts from then on
 * fail with EPIPE - and kept for the next scheduler that needs one, under a new tag
 * (internal.h, "Tagged handles"): a fiber_sched_t of the exited thread never reaches the
 * scheduler that reuses its face. Closing races with posts in progress: a poster counts
 * itself in (posters) before it checks that the face is open under its handle, and the
 * owner marks the face closed before it reads that count and waits for it to fall to
 * zero; with both sides sequentially consistent, either the poster sees "closed", or the
 * owner sees the poster and lets its push (and eventfd write) finish before it drops the
 * inbox and closes the eventfd. Faces are never freed (a post may come at any later
 * time); there are as many as the most schedulers reachable at once, 192 bytes each.
 *
 * Fork. A forked child has only the thread that forked. A pthread_atfork handler gives
 * that thread's face an eventfd of its own (the inherited one is the parent's object),
 * registered in the child's own epoll instance (io.c), and closes every other face: they
 * belong to threads the child does not have, and posting to them fails with EPIPE there.
 */

#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* fiber_spawn_on() stacks a face keeps for its posters to reuse (see run_spawn). */
#define SPARE_MAX 64

struct fiber_sched {
    /* Written by every producer: a line of its own, away from the scheduler's hot data. */
    _Alignas(64) _Atomic(struct fiber__msg *) inbox;
    atomic_uint posters;          /* posts in progress (see "Lifetime" above) */
    /* Read by every producer; written when the face opens and closes. */
    _Alignas(64) _Atomic uintptr_t open_handle; /* the handle while open, 0 when closed */
    int efd;
    struct sched *owner;
    uintptr_t handle;             /* the current (or last) handle: address and tag */
    struct fiber_sched *all_next; /* every face ever made (faces_mu) */
    struct fiber_sched *free_next;/* closed faces, for reuse (faces_mu) */
    /* Default stacks for fiber_spawn_on(): the unused ones come back here. */
    pthread_mutex_t spare_mu;
    struct fiber *spare;          /* records at the top of the stacks, linked by next */
    unsigned nspare;
};

static pthread_mutex_t faces_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fiber_sched *faces_all, *faces_free;

static void fiber__msg_drop(struct fiber__msg *m);

/* ---- faces ---- */

static struct fiber_sched *face_get(void)
{
    pthread_mutex_lock(&faces_mu);
    struct fiber_sched *r = faces_free;
    if (r)
        faces_free = r->free_next;
    pthread_mutex_unlock(&faces_mu);
    if (r)
        return r;
    r = aligned_alloc(64, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    atomic_init(&r->inbox, NULL);
    atomic_init(&r->posters, 0);
    atomic_init(&r->open_handle, 0);
    r->efd = -1;
    r->handle = (uintptr_t)r | fiber__tag_random();
    pthread_mutex_init(&r->spare_mu, NULL);
    pthread_mutex_lock(&faces_mu);
    r->all_next = faces_all;
    faces_all = r;
    pthread_mutex_unlock(&faces_mu);
    return r;
}

static void face_put(struct fiber_sched *r)
{
    pthread_mutex_lock(&faces_mu);
    r->free_next = faces_free;
    faces_free = r;
    pthread_mutex_unlock(&faces_mu);
}

/* Drops what a closed face still holds: messages (unrun), spare stacks, the eventfd. */
static void face_empty(struct fiber_sched *r)
{
    struct fiber__msg *m = atomic_exchange_explicit(&r->inbox, NULL, memory_order_acquire);
    while (m) {
        struct fiber__msg *next = m->next;
        fiber__msg_drop(m);
        m = next;
    }
    while (r->spare) {
        struct fiber *rec = r->spare;
        r->spare = rec->next;
        fiber_stack_t st = rec->stack; /* the record lives in the mapping: copy first */
        fiber_stack_free(&st);
    }
    r->nspare = 0;
    if (r->efd >= 0)
        close(r->efd);
    r->efd = -1;
    r->owner = NULL;
}

/* A poster's way in: the face h names if it is open under h (counted in until
 * face_leave), or NULL with errno EPIPE. */
static struct fiber_sched *face_enter(fiber_sched_t *h)
{
    if (!h)
        FIBER_PANIC("a cross-thread call was given a NULL fiber_sched_t");
    struct fiber_sched *r = fiber__untag(h);
    atomic_fetch_add(&r->posters, 1);
    if (atomic_load(&r->open_handle) != (uintptr_t)h) {
        atomic_fetch_sub_explicit(&r->posters, 1, memory_order_release);
        errno = EPIPE;
        return NULL;
    }
    return r;
}

static void face_leave(struct fiber_sched *r)
{
    atomic_fetch_sub_explicit(&r->posters, 1, memory_order_release);
}

/* ---- the owner's side ---- */

fiber_sched_t *fiber__remote(struct sched *s)
{
    if (s->remote)
        return (fiber_sched_t *)s->remote->handle;
    if (fiber__io_init(s) != 0)
        return NULL;
    struct fiber_sched *r = face_get();
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0)
        goto error1;
    /* Level-triggered: it keeps reporting until read, so no wake-up is lost between an
     * epoll_wait and the read. */
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = FIBER__REMOTE_TAG };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->efd, &ev) != 0)
        goto error2;
    r->owner = s;
    r->handle = fiber__tag_next(r->handle);
    atomic_store(&r->open_handle, r->handle);
    s->remote = r;
    fiber__attn_add(s);
    return (fiber_sched_t *)r->handle;
error2:
    close(r->efd);
    r->efd = -1;
error1:;
    int e = errno;
    face_put(r);
    errno = e;
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

/* At thread exit: closes the face (see "Lifetime"). Requests that came too late are
 * dropped unrun: their functions would run inside a thread-exit destructor, and a
 * spawned fiber would never run. An offload completion among them belongs to a fiber
 * that will never run again either. */
void fiber__remote_free(struct sched *s)
{
    struct fiber_sched *r = s->remote;
    if (!r)
        return;
    s->remote = NULL;
    fiber__attn_sub(s);
    atomic_store(&r->open_handle, 0);
    while (atomic_load(&r->posters) != 0)
        sched_yield(); /* a post in progress: a push and a write, then it leaves */
    face_empty(r);
    face_put(r);
}

/* ---- any thread ---- */

static void remote_push(struct fiber_sched *r, struct fiber__msg *m)
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

int fiber__remote_post(fiber_sched_t *h, struct fiber__msg *m)
{
    struct fiber_sched *r = face_enter(h);
    if (!r)
        return -1;
    remote_push(r, m);
    face_leave(r);
    return 0;
}

fiber_sched_t *fiber_sched_self(void)
{
    struct sched *s = fiber__sched();
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    fiber_sched_t *h = fiber__remote(s);
    if (h)
        s->remote_published = 1;
    return h;
}

/* A message that calls a function, or wakes a wait queue, or releases a semaphore.
 * Every message is one malloc'd block that starts with its header (fiber__msg_drop). */
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

static int post_call(fiber_sched_t *h, void (*run)(struct sched *, struct fiber__msg *),
                     void (*fn)(void *), void *arg)
{
    if (!h)
        FIBER_PANIC("a cross-thread call was given a NULL fiber_sched_t");
    struct call_msg *c = malloc(sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return -1;
    }
    c->hdr.run = run;
    c->fn = fn;
    c->arg = arg;
    if (fiber__remote_post(h, &c->hdr) != 0) {
        free(c);
        return -1;
    }
    return 0;
}

int fiber_sched_post(fiber_sched_t *h, void (*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    return post_call(h, run_call, fn, arg);
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

static void run_stop(struct sched *s, struct fiber__msg *m)
{
    free(m);
    s->stop_requested = 1;
}

int fiber_waitq_wake_one_on(fiber_sched_t *h, fiber_waitq_t *q)
{
    return post_call(h, run_wake_one, NULL, q);
}

int fiber_waitq_wake_all_on(fiber_sched_t *h, fiber_waitq_t *q)
{
    return post_call(h, run_wake_all, NULL, q);
}

int fiber_sem_release_on(fiber_sched_t *h, fiber_sem_t *sem)
{
    return post_call(h, run_sem_release, NULL, sem);
}

int fiber_sched_stop(fiber_sched_t *h)
{
    return post_call(h, run_stop, NULL, NULL);
}

/*
 * A spawn request carries the new fiber's stack, mapped by the caller (or reused from
 * the face's spares), so that creating the fiber on the target cannot fail for want of
 * memory and the caller is the one told about ENOMEM. The target runs the fiber on a
 * stack of its own pool when it has one, and gives the stack it was sent back to the
 * face for the next request: in a steady flow of requests no stack is mapped or
 * unmapped, and the target's pool holds about as many stacks as it had remote fibers
 * alive at once (plus up to SPARE_MAX spares on the face), not one per request.
 */
struct spawn_msg {
    struct fiber__msg hdr;
    void (*fn)(void *);
    void *arg;
    struct fiber *rec; /* the record at the top of the new stack */
};

/* On the owner's thread: keeps rec's stack for a later request, or unmaps it. */
static void spare_give(struct fiber_sched *r, struct fiber *rec)
{
    pthread_mutex_lock(&r->spare_mu);
    if (r->nspare < SPARE_MAX) {
        rec->next = r->spare;
        r->spare = rec;
        r->nspare++;
        rec = NULL;
    }
    pthread_mutex_unlock(&r->spare_mu);
    if (rec) {
        fiber_stack_t st = rec->stack;
        fiber_stack_free(&st);
    }
}

static void run_spawn(struct sched *s, struct fiber__msg *m)
{
    struct spawn_msg sp = *(struct spawn_msg *)m;
    free(m);
    size_t size = (size_t)((char *)sp.rec->stack.hi - (char *)sp.rec->stack.lo);
    fiber_attr_t at = { .detached = 1, .name = "remote" };
    /* With a pooled stack of that size, spawning takes it and cannot fail. */
    if (fiber__pool_has(s, size) && fiber_spawn_ex(sp.fn, sp.arg, &at)) {
        spare_give(s->remote, sp.rec);
        return;
    }
    fiber__spawn_given(sp.rec, sp.fn, sp.arg, at.name);
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

int fiber_spawn_on(fiber_sched_t *h, void (*fn)(void *), void *arg)
{
    if (!h)
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
    struct fiber_sched *r = face_enter(h);
    if (!r)
        goto error1;
    pthread_mutex_lock(&r->spare_mu);
    struct fiber *rec = r->spare;
    if (rec) {
        r->spare = rec->next;
        r->nspare--;
    }
    pthread_mutex_unlock(&r->spare_mu);
    if (!rec) {
        fiber_stack_t st;
        if (fiber_stack_alloc(&st, fiber__stack_round(FIBER_DEFAULT_STACK_SIZE), 1) != 0)
            goto error2;
        rec = (struct fiber *)((char *)st.hi - FIBER_RECORD_SIZE);
        fiber__record_init(rec, &st);
    }
    m->hdr.run = run_spawn;
    m->fn = fn;
    m->arg = arg;
    m->rec = rec;
    remote_push(r, &m->hdr);
    face_leave(r);
    return 0;
error2:
    face_leave(r);
error1:
    free(m);
    return -1;
}

/* ---- fork ---- */

static void fork_prepare(void)
{
    pthread_mutex_lock(&faces_mu);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&faces_mu);
}

/* In the child (see "Fork" above); only the forking thread exists, nothing runs
 * concurrently, and faces_mu is held since fork_prepare. */
static void fork_child(void)
{
    struct sched *s = fiber__sched_peek();
    if (s)
        fiber__io_atfork_child(s);
    for (struct fiber_sched *r = faces_all; r; r = r->all_next) {
        pthread_mutex_init(&r->spare_mu, NULL); /* a parent's thread may have held it */
        atomic_store(&r->posters, 0);           /* posters that the child does not have */
        if (!atomic_load(&r->open_handle))
            continue;
        if (s && r == s->remote) {
            close(r->efd);
            r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            struct epoll_event ev = { .events = EPOLLIN, .data.u64 = FIBER__REMOTE_TAG };
            if (r->efd >= 0 && s->epfd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, r->efd, &ev) == 0 &&
                atomic_load(&r->inbox)) {
                uint64_t one = 1; /* messages came before the fork: look at them */
                ssize_t n = write(r->efd, &one, sizeof one);
                (void)n;
            }
            continue;
        }
        atomic_store(&r->open_handle, 0);
        if (r->owner && r->owner->epfd >= 0)
            close(r->owner->epfd); /* that thread's poller: the child's copy of the fd */
        face_empty(r);
        r->free_next = faces_free;
        faces_free = r;
    }
    if (s)
        fiber__offload_atfork_child(s);
    pthread_mutex_unlock(&faces_mu);
}

void fiber__fork_init(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
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
