/*
 * io.c - fiber-aware I/O over one epoll instance per scheduler.
 *
 * A fiber always tries the system call first and parks only on EAGAIN. Parking arms the
 * fd's registration for the directions somebody waits for, level-triggered and one-shot
 * (EPOLL_CTL_MOD, or ADD the first time): the kernel checks readiness when arming, so an
 * edge that came before the park is not lost, and an fd nobody waits for raises no
 * events. The one epoll_ctl per park is also what keeps the poller right when the
 * program closes a descriptor without telling us (a library closing its own socket):
 *
 *   epoll keys a registration on (open file description, fd number) and drops it only
 *   when the last reference to the description goes away. A plain close() of the only
 *   reference drops it silently; the number may come back for a new socket, which has
 *   no registration: MOD fails with ENOENT, and we ADD it. If the old description lives
 *   on (a dup, a forked child), its registration lives on too, still reporting under the
 *   old number, and nothing can remove it (DEL looks the number up and finds the new
 *   file). So every registration carries a generation in its event data, bumped at each
 *   ADD; an event whose generation is not the fd slot's current one comes from a file
 *   that number no longer names, and is dropped. MOD rewrites the data, so a description
 *   that comes back under its old number (dup2) is brought up to date by its next park.
 * (Go's netpoller tags its registrations the same way, for the reuse of its descriptors.)
 *
 * Waiters. Any number of fibers may wait on one fd, in each direction: each parked fiber
 * links a node (struct fiber__iow, on its own stack) into the fd's FIFO list for that
 * direction, and one fiber may link several (both directions, or several fds in
 * fiber_wait_fds()). Readiness wakes ONE waiter of its direction, the longest waiting,
 * and the registration is re-armed at once for the others. Since it is level-triggered,
 * a re-armed fd that is still ready reports again at the next poll, so a woken fiber
 * that leaves the data to somebody else (it returned, or another fiber took it first)
 * cannot strand the others; the price is that a waiter may be woken for data that the
 * first one then takes (it finds EAGAIN and parks again, at the tail). Waking every
 * waiter instead would make a listener with N acceptors run N of them per connection
 * (the thundering herd). Hang-up, error and the peer's shutdown (EPOLLRDHUP) concern
 * every waiter and wake them all.
 *
 * Closing. fiber_close()/fiber_fd_forget() wake every waiter with EBADF, and bump the
 * slot's close count. A fiber that readiness had already woken, but that has not run
 * yet, is no longer on the lists; when it runs, it finds the count moved and returns
 * EBADF instead of retrying its call on whatever file the number names by then (Go's
 * pollDesc has a "closing" flag for the same window).
 *
 * Fork. A forked child shares the parent's epoll instance (one open file description),
 * so its epoll_ctl calls would edit the parent's interest list. The child, from a
 * pthread_atfork handler (fiber__io_atfork_child), makes an epoll instance of its own and
 * registers in it the fds its fibers wait for; the parent's registrations are left alone.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_PER_POLL 256

/* What wakes a reader and a writer. */
#define READ_EVENTS  (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)
#define WRITE_EVENTS (EPOLLOUT | EPOLLERR | EPOLLHUP)

static inline uint64_t io_tag(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* Arms fd's registration, one-shot, for `dirs` (EPOLLIN and/or EPOLLOUT). Returns 0 or an
 * errno value: EPERM for a regular file, EBADF, ENOMEM, ENOSPC (fs.epoll.max_user_watches). */
static int io_arm(struct sched *s, struct fdslot *slot, int fd, uint32_t dirs)
{
    struct epoll_event ev = {
        .events = ((dirs & EPOLLIN) ? EPOLLIN | EPOLLRDHUP : 0) | (dirs & EPOLLOUT) | EPOLLONESHOT,
        .data.u64 = io_tag(fd, slot->gen),
    };
    if (slot->registered) {
        if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return errno;
        /* Closed behind our back and the number reused: a new file, a new registration. */
    }
    slot->registered = 0;
    ev.data.u64 = io_tag(fd, ++slot->gen);
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        /* Registered under this number but unknown to the slot (forgotten, then the same
         * file dup2'd back): take it over with the new generation. */
        if (errno != EEXIST || epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            return errno;
    }
    slot->registered = 1;
    return 0;
}

/* The directions somebody waits for on slot. */
static inline uint32_t slot_dirs(const struct fdslot *slot)
{
    return (slot->readers ? EPOLLIN : 0) | (slot->writers ? EPOLLOUT : 0);
}


/* Appends w at the tail of its circular list (the head's prev is the tail). */
static inline void iow_link(struct fiber__iow **head, struct fiber__iow *w)
{
    struct fiber__iow *h = *head;
    if (!h) {
        w->next = w->prev = w;
        *head = w;
        return;
    }
    w->prev = h->prev;
    w->next = h;
    h->prev->next = w;
    h->prev = w;
}


int fiber__io_init(struct sched *s)
{
    if (s->epfd >= 0)
        return 0;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    return s->epfd < 0 ? -1 : 0;
}

static __attribute__((noinline)) struct fdslot *fdslot_grow(struct sched *s, int fd)
{
    size_t n = s->nfds ? s->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct fdslot *t = realloc(s->fds, n * sizeof *t);
    if (!t)
        return NULL;
    memset(t + s->nfds, 0, (n - s->nfds) * sizeof *t);
    s->fds = t;
    s->nfds = n;
    return &s->fds[fd];
}

static inline struct fdslot *fdslot(struct sched *s, int fd)
{
    return (size_t)fd < s->nfds ? &s->fds[fd] : fdslot_grow(s, fd);
}


/* fiber__io_unpark() (internal.h) of a fiber with several nodes. */
void fiber__io_unpark_n(struct sched *s, struct fiber *f)
{
    fiber__iow_unlink_all(s, f->iow, f->io_n);
}

/*
 * Parks the current fiber on the n nodes w (each with fd and dir set; fd >= 0) until one
 * of them is ready, its fd is forgotten, or the deadline passes. Returns 0 (woken by
 * readiness: the nodes' revents say which), or an errno value: ETIMEDOUT, EBADF (an fd
 * forgotten, now or since it parked), or what arming the registration failed with. A
 * node whose fd was forgotten while the fiber waited keeps closes != its slot's count.
 */
static inline __attribute__((always_inline)) int
io_wait(struct fiber *f, struct fiber__iow *w, size_t n, uint64_t deadline_ns)
{
    struct sched *s = f->sched;
    if (fiber__io_init(s) != 0)
        return errno;
    /* Every slot first: fdslot() may move the table. */
    for (size_t i = 0; i < n; i++)
        if (!fdslot(s, w[i].fd))
            return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct fdslot *slot = &s->fds[w[i].fd];
        w[i].f = f;
        w[i].revents = 0;
        w[i].closes = slot->closes;
        iow_link(fiber__slot_list(slot, w[i].dir), &w[i]);
    }
    /* One arm per fd, for its waiters' directions (the nodes of one fd may repeat). */
    for (size_t i = 0; i < n; i++) {
        int fd = w[i].fd, seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = w[j].fd == fd;
        if (seen)
            continue;
        struct fdslot *slot = &s->fds[fd];
        int e = io_arm(s, slot, fd, slot_dirs(slot));
        if (e) {
            fiber__iow_unlink_all(s, w, n);
            return e;
        }
    }
    f->iow = w;
    f->io_n = (uint32_t)n;
    f->wait_kind = WAIT_IO;
    s->io_waiters++;
    fiber__attn_add(s);
    int r = fiber__park(s, f, deadline_ns);
    if (r == ENOMEM) { /* never parked: undo */
        fiber__iow_unlink_all(s, w, n);
        s->io_waiters--;
        fiber__attn_sub(s);
        f->wait_kind = WAIT_NONE;
        return r;
    }
    if (r == 0)
        for (size_t i = 0; i < n; i++)
            if (s->fds[w[i].fd].closes != w[i].closes)
                return EBADF; /* forgotten after readiness woke us, before we ran */
    return r;
}

/* io_wait() for one node (the calls on one fd in one direction): the loops fold away. */
static __attribute__((noinline)) int io_wait_1(struct fiber *f, struct fiber__iow *w,
                                               uint64_t deadline_ns)
{
    return io_wait(f, w, 1, deadline_ns);
}

static __attribute__((noinline)) int io_wait_n(struct fiber *f, struct fiber__iow *w, size_t n,
                                               uint64_t deadline_ns)
{
    return io_wait(f, w, n, deadline_ns);
}

/* Parks the current fiber until fd is ready in `dirs` (EPOLLIN and/or EPOLLOUT).
 * Returns 0 or an errno value; *revents (may be NULL) gets the events that woke it. */
static inline int io_park(struct fiber *f, int fd, uint32_t dirs, uint64_t deadline_ns,
                          uint32_t *revents)
{
    if (fd < 0)
        return EBADF;
    struct fiber__iow w[2];
    int r;
    if (dirs != (EPOLLIN | EPOLLOUT)) {
        w[0] = (struct fiber__iow){ .fd = fd, .dir = dirs };
        r = io_wait_1(f, w, deadline_ns);
        w[1].revents = 0;
    } else {
        w[0] = (struct fiber__iow){ .fd = fd, .dir = EPOLLIN };
        w[1] = (struct fiber__iow){ .fd = fd, .dir = EPOLLOUT };
        r = io_wait_n(f, w, 2, deadline_ns);
    }
    if (revents)
        *revents = w[0].revents | w[1].revents;
    return r;
}

/* Wakes the fiber of node w (first in its list) with the events e. */
static void wake_node(struct sched *s, struct fiber__iow *w, uint32_t e)
{
    w->revents = e;
    fiber__wake(s, w->f, 0); /* unlinks every node of that fiber */
}

/* Set once epoll_pwait2 has answered ENOSYS; read and written by every scheduler thread. */
static int io_no_pwait2;

/* epoll_wait's timeout for ts: whole milliseconds rounded UP, so a deadline 0.5 ms away
 * sleeps 1 ms and then fires, instead of polling with 0 until it comes (a busy spin);
 * capped at INT_MAX (the caller polls again); -1 (forever) for NULL. */
static int timespec_to_ms_up(const struct timespec *ts)
{
    if (!ts)
        return -1;
    if ((uint64_t)ts->tv_sec >= (uint64_t)INT_MAX / 1000)
        return INT_MAX;
    return (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
}

int fiber__io_poll(struct sched *s, uint64_t deadline_ns)
{
    struct epoll_event evs[EVENTS_PER_POLL];
    struct timespec ts, *tsp = NULL;
    if (deadline_ns != FIBER_FOREVER) {
        uint64_t now = deadline_ns ? fiber_now_ns() : 0;
        uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
        ts.tv_sec = (time_t)(left / 1000000000u);
        ts.tv_nsec = (long)(left % 1000000000u);
        tsp = &ts;
    }
    if (s->epfd < 0) { /* nothing registered yet: this is a plain sleep */
        if (tsp && (tsp->tv_sec || tsp->tv_nsec))
            while (nanosleep(tsp, tsp) != 0 && errno == EINTR) {}
        return 0;
    }
    /* epoll_pwait2 (Linux 5.11) takes a timespec, so timers keep sub-millisecond
     * precision. Where it answers ENOSYS (an older kernel, a seccomp filter, Valgrind) it
     * will answer so for good: remember that, process-wide, rather than paying a failed
     * system call before every poll. */
    int n = -1;
    if (!__atomic_load_n(&io_no_pwait2, __ATOMIC_RELAXED)) {
        n = epoll_pwait2(s->epfd, evs, EVENTS_PER_POLL, tsp, NULL);
        if (n < 0 && errno == ENOSYS)
            __atomic_store_n(&io_no_pwait2, 1, __ATOMIC_RELAXED);
    }
    if (__atomic_load_n(&io_no_pwait2, __ATOMIC_RELAXED) && n < 0)
        n = epoll_wait(s->epfd, evs, EVENTS_PER_POLL, timespec_to_ms_up(tsp));
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag == FIBER__REMOTE_TAG) {
            fiber__remote_drain(s, 1);
            continue;
        }
        int fd = (int)(uint32_t)tag;
        uint32_t e = evs[i].events;
        if ((size_t)fd >= s->nfds)
            continue;
        struct fdslot *slot = &s->fds[fd];
        if ((uint32_t)(tag >> 32) != slot->gen || !slot->registered)
            continue; /* a file this number no longer names (see the top of this file) */
        if (e & (EPOLLERR | EPOLLHUP)) {
            /* Concerns every waiter, both directions. */
            while (slot->readers)
                wake_node(s, slot->readers, e);
            while (slot->writers)
                wake_node(s, slot->writers, e);
        } else {
            /* The peer's shutdown: every reader will read the end of file. */
            if (e & EPOLLRDHUP)
                while (slot->readers)
                    wake_node(s, slot->readers, e);
            else if ((e & EPOLLIN) && slot->readers)
                wake_node(s, slot->readers, e);
            if ((e & EPOLLOUT) && slot->writers)
                wake_node(s, slot->writers, e);
        }
        /* The event disarmed the registration: re-arm it for the fibers still waiting
         * (level-triggered: still-ready data reports again at the next poll). */
        uint32_t still = slot_dirs(slot);
        if (still) {
            int err = io_arm(s, slot, fd, still);
            if (err)
                fiber__io_wake_fd(s, fd, err);
        }
    }
    return 0;
}

void fiber__io_sched_free(struct sched *s)
{
    if (s->epfd >= 0)
        close(s->epfd);
    s->epfd = -1;
    free(s->fds);
    s->fds = NULL;
    s->nfds = 0;
}

void fiber__io_wake_fd(struct sched *s, int fd, int reason)
{
    if (!s || fd < 0 || (size_t)fd >= s->nfds)
        return;
    struct fdslot *slot = &s->fds[fd];
    while (slot->readers)
        fiber__wake(s, slot->readers->f, reason);
    while (slot->writers)
        fiber__wake(s, slot->writers->f, reason);
}

/* In a forked child (see the top of this file): a new epoll instance, in which the fds
 * that fibers wait for are registered anew. The inherited one is only closed here - the
 * parent's interest list is not touched. */
void fiber__io_atfork_child(struct sched *s)
{
    if (s->epfd < 0)
        return;
    close(s->epfd);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    for (size_t fd = 0; fd < s->nfds; fd++) {
        struct fdslot *slot = &s->fds[fd];
        slot->registered = 0;
        if (!slot_dirs(slot))
            continue;
        int e = s->epfd < 0 ? ENOMEM : io_arm(s, slot, (int)fd, slot_dirs(slot));
        if (e)
            fiber__io_wake_fd(s, (int)fd, e);
    }
}

static struct fiber *io_self(const char *what)
{
    struct sched *s = fiber__sched_peek();
    struct fiber *f = s ? s->current : NULL;
    if (!f)
        FIBER_PANIC("%s called outside a fiber", what);
    return f;
}

int fiber_socket_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    return (fl & O_NONBLOCK) ? 0 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int wait_fd(const char *what, int fd, uint32_t events, uint64_t deadline_ns, int check)
{
    struct fiber *f = io_self(what);
    events &= EPOLLIN | EPOLLOUT;
    if (!events) {
        errno = EINVAL;
        return -1;
    }
    if (check) {
        /* The caller may not have just seen EAGAIN, and an edge may have come and gone
         * while nobody waited: ask the fd directly before parking. */
        struct pollfd p = { .fd = fd, .events = (short)((events & EPOLLIN ? POLLIN : 0) |
                                                        (events & EPOLLOUT ? POLLOUT : 0)) };
        if (poll(&p, 1, 0) > 0) {
            if (p.revents & POLLNVAL) {
                errno = EBADF;
                return -1;
            }
            return (p.revents & POLLIN ? EPOLLIN : 0) | (p.revents & POLLOUT ? EPOLLOUT : 0) |
                   (p.revents & POLLERR ? EPOLLERR : 0) | (p.revents & POLLHUP ? EPOLLHUP : 0);
        }
    }
    uint32_t revents;
    int r = io_park(f, fd, events, deadline_ns, &revents);
    if (r) {
        errno = r;
        return -1;
    }
    return (int)(revents & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP));
}

int fiber_wait_fd(int fd, uint32_t events, uint64_t deadline_ns)
{
    return wait_fd("fiber_wait_fd", fd, events, deadline_ns, 1);
}

int fiber_wait_fd_after_eagain(int fd, uint32_t events, uint64_t deadline_ns)
{
    return wait_fd("fiber_wait_fd_after_eagain", fd, events, deadline_ns, 0);
}

ssize_t fiber_read(int fd, void *buf, size_t n, uint64_t deadline_ns)
{
    struct fiber *f = io_self("fiber_read");
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int e = io_park(f, fd, EPOLLIN, deadline_ns, NULL);
        if (e) {
            errno = e;
            return -1;
        }
    }
}

ssize_t fiber_write(int fd, const void *buf, size_t n, uint64_t deadline_ns)
{
    struct fiber *f = io_self("fiber_write");
    size_t done = 0;
    int sock = 1;
    while (done < n) {
        /* A peer that went away must be an EPIPE for this fiber, not a SIGPIPE that
         * kills the whole process with every other fiber in it: send(MSG_NOSIGNAL) on
         * sockets, write() on anything else (pipes keep SIGPIPE, as write(2) does). */
        ssize_t r = sock ? send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL)
                         : write(fd, (const char *)buf + done, n - done);
        if (r < 0 && sock && errno == ENOTSOCK) {
            sock = 0;
            continue;
        }
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        int e = io_park(f, fd, EPOLLOUT, deadline_ns, NULL);
        if (e) {
            errno = e;
            return -1;
        }
    }
    return (ssize_t)n;
}

int fiber_accept(int fd, struct sockaddr *addr, socklen_t *len, uint64_t deadline_ns)
{
    struct fiber *f = io_self("fiber_accept");
    for (;;) {
        int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1; /* EMFILE/ENFILE included: the caller chooses how to back off */
        int e = io_park(f, fd, EPOLLIN, deadline_ns, NULL);
        if (e) {
            errno = e;
            return -1;
        }
    }
}

int fiber_connect(int fd, const struct sockaddr *addr, socklen_t len, uint64_t deadline_ns)
{
    struct fiber *f = io_self("fiber_connect");
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    int e = io_park(f, fd, EPOLLOUT, deadline_ns, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

void fiber_fd_forget(int fd)
{
    struct sched *s = fiber__sched_peek();
    if (!s || fd < 0 || (size_t)fd >= s->nfds)
        return; /* no fiber ever waited on it here: nobody to tell */
    s->fds[fd].closes++;
    fiber__io_wake_fd(s, fd, EBADF);
    if (s->fds[fd].registered && s->epfd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    s->fds[fd].registered = 0;
}

int fiber_close(int fd)
{
    fiber_fd_forget(fd);
    return close(fd);
}

/* ---- several fds at once ---- */

/* The pollfd events that make a node of each direction. */
#define POLL_READS  (POLLIN | POLLRDNORM | POLLRDHUP)
#define POLL_WRITES (POLLOUT | POLLWRNORM)

int fiber_wait_fds(struct pollfd *fds, size_t n, uint64_t deadline_ns)
{
    struct fiber *f = io_self("fiber_wait_fds");
    if (n > (size_t)INT_MAX / 2) {
        errno = EINVAL;
        return -1;
    }
    struct fiber__iow stack_nodes[16], *w = stack_nodes;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += fds[i].fd >= 0 ? !!(fds[i].events & POLL_READS) + !!(fds[i].events & POLL_WRITES) : 0;
    if (k > sizeof stack_nodes / sizeof stack_nodes[0] && !(w = malloc(k * sizeof *w))) {
        errno = ENOMEM;
        return -1;
    }
    int rc;
    for (;;) {
        /* The truth is poll(2)'s: level-triggered, every fd at once, POLLNVAL included. */
        rc = poll(fds, (nfds_t)n, 0);
        if (rc != 0)
            break;
        if (fiber_now_ns() >= deadline_ns)
            break; /* 0: timed out, as poll(2) */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (fds[i].fd < 0)
                continue;
            if (fds[i].events & POLL_READS)
                w[m++] = (struct fiber__iow){ .fd = fds[i].fd, .dir = EPOLLIN };
            if (fds[i].events & POLL_WRITES)
                w[m++] = (struct fiber__iow){ .fd = fds[i].fd, .dir = EPOLLOUT };
        }
        int e;
        if (m == 0) {
            fiber_sleep_until(deadline_ns); /* only a deadline to wait for (as poll(2)) */
            e = ETIMEDOUT;
        } else {
            e = io_wait_n(f, w, m, deadline_ns);
        }
        if (e && e != ETIMEDOUT && e != EBADF) {
            errno = e;
            rc = -1;
            break;
        }
        /* Woken, timed out or told of a close: look again. An fd forgotten meanwhile
         * (fiber_close) is reported POLLNVAL even if its number names a new file now. */
        struct sched *s = f->sched;
        rc = poll(fds, (nfds_t)n, 0);
        if (rc < 0)
            break;
        for (size_t j = 0; j < m; j++) {
            if (s->fds[w[j].fd].closes == w[j].closes)
                continue;
            for (size_t i = 0; i < n; i++)
                if (fds[i].fd == w[j].fd && fds[i].revents != POLLNVAL) {
                    rc += fds[i].revents == 0;
                    fds[i].revents = POLLNVAL;
                }
        }
        if (rc != 0 || e == ETIMEDOUT)
            break;
    }
    if (w != stack_nodes)
        free(w);
    return rc;
}
