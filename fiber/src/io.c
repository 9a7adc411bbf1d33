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
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
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

int fiber__io_init(struct sched *s)
{
    if (s->epfd >= 0)
        return 0;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    return s->epfd < 0 ? -1 : 0;
}

static struct fdslot *fdslot(struct sched *s, int fd)
{
    if ((size_t)fd >= s->nfds) {
        size_t n = s->nfds ? s->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fdslot *t = realloc(s->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + s->nfds, 0, (n - s->nfds) * sizeof *t);
        s->fds = t;
        s->nfds = n;
    }
    return &s->fds[fd];
}

/* Parks the current fiber until fd is ready in `dirs` (EPOLLIN and/or EPOLLOUT).
 * Returns 0 or an errno value. */
static int io_park(struct fiber *f, int fd, uint32_t dirs, uint64_t deadline_ns)
{
    struct sched *s = f->sched;
    if (fd < 0)
        return EBADF;
    if (fiber__io_init(s) != 0)
        return errno;
    struct fdslot *slot = fdslot(s, fd);
    if (!slot)
        return ENOMEM;
    if (((dirs & EPOLLIN) && slot->reader) || ((dirs & EPOLLOUT) && slot->writer))
        FIBER_PANIC("fd %d: two fibers wait to %s it at once", fd,
                    (dirs & EPOLLIN) && slot->reader ? "read" : "write");
    uint32_t armed = dirs | (slot->reader ? EPOLLIN : 0) | (slot->writer ? EPOLLOUT : 0);
    int e = io_arm(s, slot, fd, armed);
    if (e)
        return e;
    if (dirs & EPOLLIN)
        slot->reader = f;
    if (dirs & EPOLLOUT)
        slot->writer = f;
    f->io_fd = fd;
    f->io_dirs = dirs;
    f->io_revents = 0;
    f->wait_kind = WAIT_IO;
    s->io_waiters++;
    int r = fiber__park(s, f, deadline_ns);
    if (r == ENOMEM) { /* never parked: undo */
        if (slot->reader == f)
            slot->reader = NULL;
        if (slot->writer == f)
            slot->writer = NULL;
        s->io_waiters--;
    }
    return r;
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
     * precision; epoll_wait would round to whole milliseconds. */
    int n = epoll_pwait2(s->epfd, evs, EVENTS_PER_POLL, tsp, NULL);
    if (n < 0 && errno == ENOSYS) {
        int ms = -1;
        if (tsp)
            ms = (int)(tsp->tv_sec * 1000 + (tsp->tv_nsec + 999999) / 1000000);
        n = epoll_wait(s->epfd, evs, EVENTS_PER_POLL, ms);
    }
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
        struct fiber *r = slot->reader, *w = slot->writer;
        /* One fiber may wait for both directions: either kind of event wakes it. */
        if (r && (e & (r == w ? READ_EVENTS | WRITE_EVENTS : READ_EVENTS))) {
            r->io_revents = e;
            fiber__wake(s, r, 0);
        }
        if (w && w != r && (e & WRITE_EVENTS)) {
            w->io_revents = e;
            fiber__wake(s, w, 0);
        }
        /* The event disarmed the registration: re-arm it for a fiber still waiting (a
         * writer when the event woke only the reader, or the other way round). */
        uint32_t still = (slot->reader ? EPOLLIN : 0) | (slot->writer ? EPOLLOUT : 0);
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
    if (slot->reader)
        fiber__wake(s, slot->reader, reason);
    if (slot->writer)
        fiber__wake(s, slot->writer, reason);
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
    int r = io_park(f, fd, events, deadline_ns);
    if (r) {
        errno = r;
        return -1;
    }
    return (int)(f->io_revents & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP));
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
        int e = io_park(f, fd, EPOLLIN, deadline_ns);
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
        int e = io_park(f, fd, EPOLLOUT, deadline_ns);
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
        int e = io_park(f, fd, EPOLLIN, deadline_ns);
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
    int e = io_park(f, fd, EPOLLOUT, deadline_ns);
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
        return;
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
