/*
 * common.c - what every model shares: I/O that parks a fiber or blocks a thread, the
 * listening socket, the live-connection registry and the shared resource.
 */
#define _GNU_SOURCE
#include "wl.h"
#include "internal.h"

#include "fiber.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void wl__panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "workloads: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

uint64_t wl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int wl_stop_init(wl_stop_t *s)
{
    atomic_init(&s->requested, 0);
    s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return s->fd < 0 ? -1 : 0;
}

void wl_stop_request(wl_stop_t *s)
{
    uint64_t one = 1;
    atomic_store(&s->requested, 1);
    ssize_t n = write(s->fd, &one, sizeof one); /* EAGAIN: the counter is full, still set */
    (void)n;
}

int wl_stop_requested(wl_stop_t *s)
{
    return atomic_load(&s->requested);
}

void wl_stop_destroy(wl_stop_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

int wl_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int wl__poll_ready(int fd, short ev, uint64_t deadline_ns)
{
    for (;;) {
        int ms = -1;
        if (deadline_ns != WL_FOREVER) {
            uint64_t now = wl_now_ns();
            if (now >= deadline_ns) {
                errno = ETIMEDOUT;
                return -1;
            }
            ms = (int)((deadline_ns - now + 999999) / 1000000);
        }
        struct pollfd p = { .fd = fd, .events = ev };
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

ssize_t wl_read(int fd, void *buf, size_t n, uint64_t deadline_ns)
{
    if (fiber_self())
        return fiber_read(fd, buf, n, deadline_ns);
    for (;;) {
        /* The thread model at its idiomatic best: one blocking read(2) per wake-up. The
         * deadline is enforced by SO_RCVTIMEO (set once by wl_dial) rather than a poll(2)
         * before every read, which would double the system calls per token. */
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* SO_RCVTIMEO expired, or a nonblocking fd: honour the deadline exactly */
            if (wl__poll_ready(fd, POLLIN, deadline_ns) != 0)
                return -1;
            continue;
        }
        return -1;
    }
}

ssize_t wl_write(int fd, const void *buf, size_t n, uint64_t deadline_ns)
{
    if (fiber_self())
        return fiber_write(fd, buf, n, deadline_ns);
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wl__poll_ready(fd, POLLOUT, deadline_ns) != 0)
                return -1;
            continue;
        }
        return -1;
    }
    return (ssize_t)n;
}

/* Linux (6.18 here) gives connect() the even ports of the local range first, and once
 * ~14,100 of them (the even half of 32768-60999) are taken by connections from one source
 * address to one address and port, every further connect() scans them all before it
 * takes an odd one: 1.4 ms of kernel time per connect() on this VM, against 11 us below
 * the knee (workloads/tools/connect_probe.py). A non-blocking connect() does the scan in
 * the call too, so a fiber scheduler stalls every fiber for it, and a 20,000-conversation
 * run paid ~9 s of it opening the last ~6,000. A port need only be unique per source
 * address, so over loopback every WL_PER_SOURCE connections dialled take their own source
 * (the first block the kernel's default, 127.0.0.1; then 127.0.0.2, .3, ...), the same
 * for every model. */
#define WL_PER_SOURCE 8192
#define WL_SOURCES    32 /* then round again: 262,144 dials, far more than stay open */
static unsigned long wl__dials;

/* The source address for the next connection to addr: 0 (leave it to the kernel) or a
 * loopback address in network order. */
static uint32_t wl__next_source(const struct sockaddr *addr, socklen_t len)
{
    if (addr->sa_family != AF_INET || len < (socklen_t)sizeof(struct sockaddr_in))
        return 0;
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
        return 0;
    unsigned long n = __atomic_fetch_add(&wl__dials, 1, __ATOMIC_RELAXED);
    unsigned block = (unsigned)(n / WL_PER_SOURCE % WL_SOURCES);
    return block ? htonl((127u << 24) + 1u + block) : 0;
}

int wl_dial(const struct sockaddr *addr, socklen_t len, uint64_t deadline_ns)
{
    int on_fiber = fiber_self() != NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (on_fiber ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    /* Nagle plus delayed ACK would hold small request writes ~40 ms. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint32_t src = wl__next_source(addr, len);
    if (src) {
        /* IP_BIND_ADDRESS_NO_PORT: bind() fixes only the address and connect() still
         * chooses the port against the whole 4-tuple, so ports are shared across
         * destinations as before. A bind() to port 0 without it would take a port at bind
         * time, exclusive to this socket whatever it connects to (the whole range for all
         * sources together, and bind's own search); SO_REUSEADDR would not help that. */
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = src };
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    int r;
    if (on_fiber) {
        r = fiber_connect(fd, addr, len, deadline_ns);
    } else {
        if (deadline_ns != WL_FOREVER) {
            /* bounds each blocking read/write/connect by the time left; wl_read then
             * checks the exact deadline when one of them times out */
            uint64_t now = wl_now_ns(), left = deadline_ns > now ? deadline_ns - now : 1000;
            struct timeval tv = { .tv_sec = (time_t)(left / 1000000000u),
                                  .tv_usec = (suseconds_t)(left % 1000000000u / 1000u) };
            if (!tv.tv_sec && !tv.tv_usec)
                tv.tv_usec = 1;
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        }
        do
            r = connect(fd, addr, len);
        while (r < 0 && errno == EINTR);
        if (r < 0 && errno == EINPROGRESS) /* SO_SNDTIMEO expired during the handshake */
            errno = ETIMEDOUT;
    }
    if (r < 0) {
        int e = errno;
        wl_close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int wl_close(int fd)
{
    if (fiber_self())
        return fiber_close(fd);
    return close(fd);
}

void wl_sleep_until(uint64_t deadline_ns)
{
    if (fiber_self()) {
        fiber_sleep_until(deadline_ns);
        return;
    }
    struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
                           .tv_nsec = (long)(deadline_ns % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

void wl_sleep_ns(uint64_t ns)
{
    wl_sleep_until(wl_now_ns() + ns);
}

int wl_parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host || colon == s) {
        errno = EINVAL;
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    return 0;
}

/* ---- listening ---------------------------------------------------------------------- */

int wl_listen(const struct sockaddr_in *addr, int backlog, int reuseport, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        goto error;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto error;
    if (bind(fd, (const struct sockaddr *)addr, sizeof *addr) != 0)
        goto error;
    /* The kernel caps the backlog at net.core.somaxconn; asking for more is harmless. */
    if (listen(fd, backlog > 0 ? backlog : 4096) != 0)
        goto error;
    return fd;
error:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

uint16_t wl_bound_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    return ntohs(sa.sin_port);
}

/* ---- live connections ---------------------------------------------------------------- */

void wl_live_init(wl_live_t *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

void wl_live_add(wl_live_t *l, int fd)
{
    pthread_mutex_lock(&l->mu);
    if ((size_t)fd >= l->cap) {
        size_t n = l->cap ? l->cap : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        int *t = realloc(l->fds, n * sizeof *t);
        if (!t)
            WL_PANIC("out of memory for %zu live connections", n);
        memset(t + l->cap, 0, (n - l->cap) * sizeof *t);
        l->fds = t;
        l->cap = n;
    }
    l->fds[fd] = 1;
    if (++l->count > l->peak)
        l->peak = l->count;
    pthread_mutex_unlock(&l->mu);
}

void wl_live_del(wl_live_t *l, int fd)
{
    pthread_mutex_lock(&l->mu);
    if ((size_t)fd < l->cap && l->fds[fd]) {
        l->fds[fd] = 0;
        l->count--;
    }
    pthread_mutex_unlock(&l->mu);
}

void wl_live_shutdown_all(wl_live_t *l)
{
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->cap; i++)
        if (l->fds[i])
            shutdown((int)i, SHUT_RDWR);
    pthread_mutex_unlock(&l->mu);
}

size_t wl_live_count(wl_live_t *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->count;
    pthread_mutex_unlock(&l->mu);
    return n;
}

void wl_live_destroy(wl_live_t *l)
{
    free(l->fds);
    pthread_mutex_destroy(&l->mu);
}

/* ---- the shared resource ------------------------------------------------------------- */

/* A thread waiting for a unit: a FIFO node on its own stack with its own condition
 * variable, so a release hands the unit to exactly the oldest waiter (the fiber semaphore
 * is FIFO too: the comparison is about the model, not about fairness). */
struct res_waiter {
    struct res_waiter *next;
    pthread_cond_t     cv;
    int                granted;
};

struct wl_res {
    int                on_fiber;
    long               k, free, held, peak;
    uint64_t           wait_ns;
    pthread_mutex_t    mu;
    struct res_waiter *head, *tail;
    fiber_sem_t        sem;
};

static wl_res_t *res_new(long k, int on_fiber)
{
    wl_res_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->on_fiber = on_fiber;
    r->k = r->free = k;
    r->sem = (fiber_sem_t)FIBER_SEM_INIT(k);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

wl_res_t *wl_res_new_thread(long k) { return res_new(k, 0); }
wl_res_t *wl_res_new_fiber(long k) { return res_new(k, 1); }

void wl_res_free(wl_res_t *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int wl_res_acquire(wl_res_t *r, uint64_t deadline_ns)
{
    uint64_t t = wl_now_ns();
    if (r->on_fiber) {
        /* Only fibers of one scheduler touch this resource: no lock needed. */
        if (fiber_sem_acquire(&r->sem, deadline_ns) != 0)
            return -1;
        r->wait_ns += wl_now_ns() - t;
        if (++r->held > r->peak)
            r->peak = r->held;
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    if (r->free > 0 && !r->head) {
        r->free--;
    } else {
        struct res_waiter w = { .next = NULL, .granted = 0 };
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cv, &ca);
        pthread_condattr_destroy(&ca);
        if (r->tail)
            r->tail->next = &w;
        else
            r->head = &w;
        r->tail = &w;
        struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
                               .tv_nsec = (long)(deadline_ns % 1000000000u) };
        while (!w.granted) {
            int e = deadline_ns == WL_FOREVER ? pthread_cond_wait(&w.cv, &r->mu)
                                              : pthread_cond_timedwait(&w.cv, &r->mu, &ts);
            if (e == ETIMEDOUT && !w.granted) {
                struct res_waiter **pp = &r->head, *prev = NULL;
                while (*pp != &w) {
                    prev = *pp;
                    pp = &(*pp)->next;
                }
                *pp = w.next;
                if (r->tail == &w)
                    r->tail = prev;
                pthread_mutex_unlock(&r->mu);
                pthread_cond_destroy(&w.cv);
                errno = ETIMEDOUT;
                return -1;
            }
        }
        pthread_cond_destroy(&w.cv);
    }
    if (++r->held > r->peak)
        r->peak = r->held;
    r->wait_ns += wl_now_ns() - t;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void wl_res_release(wl_res_t *r)
{
    if (r->on_fiber) {
        r->held--;
        fiber_sem_release(&r->sem);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->held--;
    struct res_waiter *w = r->head;
    if (w) { /* direct handoff: the unit never becomes free for a newcomer to grab */
        r->head = w->next;
        if (!r->head)
            r->tail = NULL;
        w->granted = 1;
        pthread_cond_signal(&w->cv);
    } else {
        r->free++;
    }
    pthread_mutex_unlock(&r->mu);
}

void wl_res_stats(const wl_res_t *r, long *peak_held, uint64_t *wait_ns)
{
    *peak_held = r->peak;
    *wait_ns = r->wait_ns;
}
