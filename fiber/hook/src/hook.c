/*
 * hook.c - interposition of blocking libc calls, so that unmodified blocking code parks
 * fibers instead of threads. The contract is fiber/hook/include/fiber_hook.h.
 *
 * Built twice from this one file: linked into an executable (libfiber_hook.a, the
 * runtime resolved by the static link) and as the LD_PRELOAD library (libfiber_hook.so,
 * FIBER_HOOK_PRELOAD: the runtime's functions are weak references, bound at load time to
 * the ones the executable exports, or NULL when it exports none).
 *
 * How a call on a fiber works: the descriptor is made non-blocking underneath (once), the
 * real call is tried, and on EAGAIN the fiber parks in the runtime's poller until the
 * descriptor is ready or the socket's own timeout passes, then tries again. The real
 * libc functions are found with dlsym(RTLD_NEXT) in a constructor; until then (and if
 * dlsym fails) each falls back to the raw system call, so a call made while the dynamic
 * linker is still starting up - or by dlsym itself - cannot recurse into the hook.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include "fiber.h"
#include "fiber_hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- the runtime ----------------------------------------------------------------------
 * The offload pool is new in the runtime; until fiber.h declares it, it is declared here
 * and referenced weakly (a weak reference does not pull an archive member, so a linked
 * build whose runtime has the pool defines FIBER_HOOK_HAVE_OFFLOAD to make it strong). */
int fiber_offload(void (*fn)(void *arg), void *arg);

#ifdef FIBER_HOOK_PRELOAD
#pragma weak fiber_self
#pragma weak fiber_now_ns
#pragma weak fiber_sleep_until
#pragma weak fiber_wait_fd
#pragma weak fiber_wait_fd_after_eagain
#pragma weak fiber_fd_forget
#pragma weak fiber_spawn_ex
#pragma weak fiber_waitq_wait
#pragma weak fiber_waitq_wake_one
#pragma weak fiber_offload
#define HOOK_MODE "preload"
#define RT_HAS(f) ((f) != NULL)
#define OFFLOAD_HAS() (fiber_offload != NULL)
#else
#define HOOK_MODE "linked"
#define RT_HAS(f) 1
#ifdef FIBER_HOOK_HAVE_OFFLOAD
#define OFFLOAD_HAS() 1
#else
#pragma weak fiber_offload
#define OFFLOAD_HAS() (fiber_offload != NULL)
#endif
#endif

/* The runtime is usable: every function the hook parks with is there. */
static int rt_present(void)
{
    return RT_HAS(fiber_self) && RT_HAS(fiber_now_ns) && RT_HAS(fiber_sleep_until) &&
           RT_HAS(fiber_wait_fd) && RT_HAS(fiber_wait_fd_after_eagain) &&
           RT_HAS(fiber_fd_forget) && RT_HAS(fiber_spawn_ex) && RT_HAS(fiber_waitq_wait) &&
           RT_HAS(fiber_waitq_wake_one);
}

static int rt_ok; /* rt_present(), settled in the constructor */

static inline int on_fiber(void)
{
    return rt_ok && fiber_self() != NULL;
}

/* ---- the real functions ----------------------------------------------------------------
 * Each starts as its raw system call and becomes libc's once dlsym has found it. */

static ssize_t raw_read(int fd, void *b, size_t n) { return syscall(SYS_read, fd, b, n); }
static ssize_t raw_write(int fd, const void *b, size_t n) { return syscall(SYS_write, fd, b, n); }
static ssize_t raw_readv(int fd, const struct iovec *v, int c) { return syscall(SYS_readv, fd, v, c); }
static ssize_t raw_writev(int fd, const struct iovec *v, int c) { return syscall(SYS_writev, fd, v, c); }
static ssize_t raw_recvfrom(int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l)
{ return syscall(SYS_recvfrom, fd, b, n, fl, a, l); }
static ssize_t raw_sendto(int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t l)
{ return syscall(SYS_sendto, fd, b, n, fl, a, l); }
static ssize_t raw_recvmsg(int fd, struct msghdr *m, int fl) { return syscall(SYS_recvmsg, fd, m, fl); }
static ssize_t raw_sendmsg(int fd, const struct msghdr *m, int fl) { return syscall(SYS_sendmsg, fd, m, fl); }
static int raw_connect(int fd, const struct sockaddr *a, socklen_t l) { return (int)syscall(SYS_connect, fd, a, l); }
static int raw_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl) { return (int)syscall(SYS_accept4, fd, a, l, fl); }
static int raw_ppoll(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m)
{ return (int)syscall(SYS_ppoll, f, n, t, m, _NSIG / 8); }
static int raw_poll(struct pollfd *f, nfds_t n, int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000 };
    return raw_ppoll(f, n, ms < 0 ? NULL : &t, NULL);
}
static int raw_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
                       const sigset_t *m)
{
    struct { const sigset_t *ss; size_t len; } data = { m, _NSIG / 8 };
    struct timespec tt, *tp = NULL;
    if (t) { tt = *t; tp = &tt; } /* the kernel writes the time left into it */
    return (int)syscall(SYS_pselect6, n, r, w, e, tp, m ? &data : NULL);
}
static int raw_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    struct timespec t;
    if (tv) { t.tv_sec = tv->tv_sec; t.tv_nsec = tv->tv_usec * 1000; }
    return raw_pselect(n, r, w, e, tv ? &t : NULL, NULL);
}
static int raw_epoll_pwait(int ep, struct epoll_event *e, int n, int ms, const sigset_t *m)
{ return (int)syscall(SYS_epoll_pwait, ep, e, n, ms, m, _NSIG / 8); }
static int raw_epoll_wait(int ep, struct epoll_event *e, int n, int ms)
{ return raw_epoll_pwait(ep, e, n, ms, NULL); }
static int raw_nanosleep(const struct timespec *q, struct timespec *r) { return (int)syscall(SYS_nanosleep, q, r); }
static int raw_clock_nanosleep(clockid_t c, int fl, const struct timespec *q, struct timespec *r)
{ return syscall(SYS_clock_nanosleep, c, fl, q, r) == 0 ? 0 : errno; }
static int raw_close(int fd) { return (int)syscall(SYS_close, fd); }
static int raw_dup(int fd) { return (int)syscall(SYS_dup, fd); }
static int raw_dup3(int o, int n, int fl) { return (int)syscall(SYS_dup3, o, n, fl); }
static int raw_dup2(int o, int n)
{
    if (o == n) /* dup3 refuses this; dup2 checks o and returns it */
        return syscall(SYS_fcntl, o, F_GETFD) < 0 ? -1 : n;
    return raw_dup3(o, n, 0);
}
static int raw_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
static int raw_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return (int)syscall(SYS_ioctl, fd, req, arg);
}
static int raw_socket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static int raw_socketpair(int d, int t, int p, int sv[2]) { return (int)syscall(SYS_socketpair, d, t, p, sv); }
static int raw_pipe2(int p[2], int fl) { return (int)syscall(SYS_pipe2, p, fl); }
static int raw_eventfd(unsigned v, int fl) { return (int)syscall(SYS_eventfd2, v, fl); }
static int raw_timerfd_create(int c, int fl) { return (int)syscall(SYS_timerfd_create, c, fl); }
static int raw_epoll_create1(int fl) { return (int)syscall(SYS_epoll_create1, fl); }
static unsigned raw_sleep(unsigned s)
{
    struct timespec q = { (time_t)s, 0 }, r = { 0, 0 };
    return raw_nanosleep(&q, &r) == 0 ? 0 : (unsigned)r.tv_sec + (r.tv_nsec > 0);
}
static int raw_usleep(useconds_t us)
{
    struct timespec q = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000 };
    return raw_nanosleep(&q, NULL);
}
static int lazy_getaddrinfo(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static struct {
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int     (*connect)(int, const struct sockaddr *, socklen_t);
    int     (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int     (*poll)(struct pollfd *, nfds_t, int);
    int     (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int     (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int     (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int     (*epoll_wait)(int, struct epoll_event *, int, int);
    int     (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    int     (*nanosleep)(const struct timespec *, struct timespec *);
    int     (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
    int     (*close)(int);
    int     (*dup)(int);
    int     (*dup2)(int, int);
    int     (*dup3)(int, int, int);
    int     (*fcntl)(int, int, ...);
    int     (*ioctl)(int, unsigned long, ...);
    int     (*socket)(int, int, int);
    int     (*socketpair)(int, int, int, int[2]);
    int     (*pipe2)(int[2], int);
    int     (*eventfd)(unsigned, int);
    int     (*timerfd_create)(int, int);
    int     (*epoll_create1)(int);
    unsigned (*sleep)(unsigned);
    int     (*usleep)(useconds_t);
    int     (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
} real = {
    raw_read, raw_write, raw_readv, raw_writev, raw_recvfrom, raw_sendto, raw_recvmsg,
    raw_sendmsg, raw_connect, raw_accept4, raw_poll, raw_ppoll, raw_select, raw_pselect,
    raw_epoll_wait, raw_epoll_pwait, raw_nanosleep, raw_clock_nanosleep, raw_close, raw_dup, raw_dup2, raw_dup3, raw_fcntl,
    raw_ioctl, raw_socket, raw_socketpair, raw_pipe2, raw_eventfd, raw_timerfd_create,
    raw_epoll_create1, raw_sleep, raw_usleep,
    lazy_getaddrinfo,
};

#define RESOLVE(name)                                   \
    do {                                                \
        void *p_ = dlsym(RTLD_NEXT, #name);             \
        if (p_)                                         \
            memcpy(&real.name, &p_, sizeof p_);         \
    } while (0)

/* Runs before main (and, preloaded, before the program's own constructors). dlsym may
 * allocate and may take the loader's lock; it calls none of the interposed functions on
 * glibc, and if it did they would take the raw path above. */
__attribute__((constructor(101))) static void hook_init(void)
{
    RESOLVE(read); RESOLVE(write); RESOLVE(readv); RESOLVE(writev);
    RESOLVE(recvfrom); RESOLVE(sendto); RESOLVE(recvmsg); RESOLVE(sendmsg);
    RESOLVE(connect); RESOLVE(accept4); RESOLVE(poll); RESOLVE(ppoll);
    RESOLVE(select); RESOLVE(pselect); RESOLVE(epoll_wait); RESOLVE(epoll_pwait);
    RESOLVE(nanosleep); RESOLVE(clock_nanosleep);
    RESOLVE(close); RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(fcntl);
    RESOLVE(ioctl); RESOLVE(socket); RESOLVE(socketpair); RESOLVE(pipe2);
    RESOLVE(eventfd); RESOLVE(timerfd_create); RESOLVE(epoll_create1);
    RESOLVE(sleep); RESOLVE(usleep); RESOLVE(getaddrinfo);
    rt_ok = rt_present();
}

static int lazy_getaddrinfo(const char *node, const char *svc, const struct addrinfo *h,
                            struct addrinfo **res)
{
    RESOLVE(getaddrinfo);
    if (real.getaddrinfo == lazy_getaddrinfo)
        return EAI_SYSTEM;
    return real.getaddrinfo(node, svc, h, res);
}

int fiber_hook_enabled(void) { return rt_present(); }
const char *fiber_hook_mode(void) { return HOOK_MODE; }

/* ---- what the hook knows of each descriptor -------------------------------------------
 * One byte per fd number, process-wide (descriptors are): 1 MiB of zero pages that cost
 * memory only where descriptors are used. Numbers past the table pass through. */
#define FD_MAX (1 << 20)
enum {
    FD_KNOWN    = 1, /* classified: the bits below are meaningful */
    FD_WAITABLE = 2, /* a socket or a pipe/FIFO: the poller can wait for it */
    FD_USER_NB  = 4, /* the caller asked for O_NONBLOCK */
    FD_SYS_NB   = 8, /* O_NONBLOCK is set in the kernel (by the caller or by the hook) */
};
static _Atomic unsigned char fdtab[FD_MAX];

static inline unsigned fd_get(int fd)
{
    return fd >= 0 && fd < FD_MAX ? atomic_load_explicit(&fdtab[fd], memory_order_relaxed) : 0;
}
static inline void fd_set_state(int fd, unsigned s)
{
    if (fd >= 0 && fd < FD_MAX)
        atomic_store_explicit(&fdtab[fd], (unsigned char)s, memory_order_relaxed);
}

/* A descriptor just made by socket/accept/pipe: waitable, non-blocking if asked. */
static void fd_newgen(int fd);

static void fd_born(int fd, int nonblock)
{
    fd_newgen(fd);
    fd_set_state(fd, FD_KNOWN | FD_WAITABLE | (nonblock ? FD_USER_NB | FD_SYS_NB : 0));
}

/*
 * Whether a call on fd must be handled (retried around waits) rather than passed
 * through. On a fiber: a socket or pipe that the caller did not make non-blocking, which
 * is then made non-blocking underneath. Outside a fiber: only a descriptor that the hook
 * made non-blocking for a fiber earlier, so that a thread still sees it block.
 */
static int fd_hooked(int fd, int fiber)
{
    unsigned s = fd_get(fd);
    if (!fiber)
        return (s & (FD_SYS_NB | FD_USER_NB)) == FD_SYS_NB;
    if (fd < 0 || fd >= FD_MAX)
        return 0;
    if (!(s & FD_KNOWN)) {
        struct stat st;
        if (fstat(fd, &st) != 0) /* EBADF: the real call says so */
            return 0;
        s = FD_KNOWN;
        if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)) {
            int fl = real.fcntl(fd, F_GETFL);
            if (fl < 0)
                return 0;
            s |= FD_WAITABLE | ((fl & O_NONBLOCK) ? FD_USER_NB | FD_SYS_NB : 0);
        }
        fd_set_state(fd, s);
    }
    if ((s & (FD_WAITABLE | FD_USER_NB)) != FD_WAITABLE)
        return 0;
    if (!(s & FD_SYS_NB)) {
        int fl = real.fcntl(fd, F_GETFL);
        if (fl < 0 || real.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return 0;
        fd_set_state(fd, s | FD_SYS_NB);
    }
    return 1;
}

/* ---- waiting --------------------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t after_ns(uint64_t ns)
{
    uint64_t now = mono_ns();
    return ns >= FIBER_FOREVER - now ? FIBER_FOREVER - 1 : now + ns;
}

/* The socket's SO_RCVTIMEO or SO_SNDTIMEO as an absolute deadline; none for a pipe or
 * a zero timeout. */
static uint64_t sock_deadline(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return FIBER_FOREVER;
    return after_ns((uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u);
}

/*
 * Waits for fd (EPOLLIN or EPOLLOUT) after the real call said EAGAIN. On a fiber it
 * parks; on a thread (a descriptor made non-blocking for a fiber) it blocks in poll.
 * Returns 0, or -1 with errno ETIMEDOUT at the deadline, EBADF when another fiber closed
 * the descriptor, or the poller's error.
 */
static int wait_ready(int fd, uint32_t ev, uint64_t deadline, int fiber)
{
    if (fiber)
        return fiber_wait_fd_after_eagain(fd, ev, deadline) < 0 ? -1 : 0;
    for (;;) {
        int ms = -1;
        if (deadline != FIBER_FOREVER) {
            uint64_t now = mono_ns();
            if (now >= deadline) {
                errno = ETIMEDOUT;
                return -1;
            }
            uint64_t left = (deadline - now + 999999u) / 1000000u;
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = { .fd = fd, .events = (short)(ev & EPOLLIN ? POLLIN : POLLOUT) };
        int r = real.poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- read side ------------------------------------------------------------------------- */

enum op { OP_READ, OP_READV, OP_RECVFROM, OP_RECVMSG };

struct rcall {
    enum op              op;
    int                  fd, flags;
    void                *buf;
    size_t               n;
    const struct iovec  *iov;
    int                  iovcnt;
    struct sockaddr     *addr;
    socklen_t           *alen;
    struct msghdr       *msg;
};

static ssize_t rcall_real(const struct rcall *c, int flags)
{
    switch (c->op) {
    case OP_READ:     return real.read(c->fd, c->buf, c->n);
    case OP_READV:    return real.readv(c->fd, c->iov, c->iovcnt);
    case OP_RECVFROM: return real.recvfrom(c->fd, c->buf, c->n, flags, c->addr, c->alen);
    case OP_RECVMSG:  return real.recvmsg(c->fd, c->msg, flags);
    }
    return -1;
}

/* A read that would block: try, park on EAGAIN, try again. MSG_WAITALL on a stream keeps
 * reading until n bytes, end of file, a timeout or an error (recv(2)). */
static ssize_t do_read(struct rcall *c)
{
    int fiber = on_fiber();
    if (!fiber && !(fd_get(c->fd) & FD_SYS_NB))
        return rcall_real(c, c->flags); /* the common case off a fiber: one load, one call */
    if ((c->flags & MSG_DONTWAIT) || !fd_hooked(c->fd, fiber))
        return rcall_real(c, c->flags);
    int waitall = (c->op == OP_RECVFROM) && (c->flags & MSG_WAITALL);
    int flags = c->flags & ~MSG_WAITALL;
    uint64_t deadline = 0; /* 0 = not looked up yet */
    size_t got = 0;
    for (;;) {
        ssize_t r;
        if (waitall) {
            struct rcall w = *c;
            w.buf = (char *)c->buf + got;
            w.n = c->n - got;
            r = rcall_real(&w, flags);
            if (r > 0) {
                got += (size_t)r;
                if (got == c->n)
                    return (ssize_t)got;
                continue;
            }
            if (r == 0)
                return (ssize_t)got;
        } else {
            r = rcall_real(c, flags);
            if (r >= 0)
                return r;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return got ? (ssize_t)got : -1;
        if (!deadline)
            deadline = sock_deadline(c->fd, SO_RCVTIMEO);
        if (wait_ready(c->fd, EPOLLIN, deadline, fiber) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN; /* what a blocking socket says when SO_RCVTIMEO passes */
            return got ? (ssize_t)got : -1;
        }
    }
}

ssize_t read(int fd, void *buf, size_t n)
{
    struct rcall c = { .op = OP_READ, .fd = fd, .buf = buf, .n = n };
    return do_read(&c);
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct rcall c = { .op = OP_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt };
    return do_read(&c);
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr,
                 socklen_t *restrict alen)
{
    struct rcall c = { .op = OP_RECVFROM, .fd = fd, .flags = flags, .buf = buf, .n = n,
                       .addr = addr.__sockaddr__, .alen = alen };
    return do_read(&c);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    struct rcall c = { .op = OP_RECVFROM, .fd = fd, .flags = flags, .buf = buf, .n = n };
    return do_read(&c);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct rcall c = { .op = OP_RECVMSG, .fd = fd, .flags = flags, .msg = msg };
    return do_read(&c);
}

/* ---- write side ------------------------------------------------------------------------
 * A blocking write on a stream returns when every byte is queued; a datagram goes whole
 * or not at all, so the same loop serves both. Vectors are advanced on a private copy. */

enum wop { OP_WRITE, OP_WRITEV, OP_SENDTO, OP_SENDMSG };

#define IOV_STACK 16

static ssize_t do_write(enum wop op, int fd, const void *buf, size_t n, const struct iovec *iov,
                        int iovcnt, int flags, const struct sockaddr *addr, socklen_t alen,
                        const struct msghdr *msg)
{
    int fiber = on_fiber();
    int pass = (!fiber && !(fd_get(fd) & FD_SYS_NB)) || (flags & MSG_DONTWAIT) ||
               !fd_hooked(fd, fiber);
    if (pass) {
        switch (op) {
        case OP_WRITE:   return real.write(fd, buf, n);
        case OP_WRITEV:  return real.writev(fd, iov, iovcnt);
        case OP_SENDTO:  return real.sendto(fd, buf, n, flags, addr, alen);
        case OP_SENDMSG: return real.sendmsg(fd, msg, flags);
        }
    }
    /* The vector case: copy the iovec array so a partial write can advance it. */
    struct iovec stack_iov[IOV_STACK], *v = NULL;
    struct msghdr m;
    size_t total = 0, done = 0;
    int vc = 0;
    if (op == OP_WRITEV || op == OP_SENDMSG) {
        const struct iovec *src = op == OP_WRITEV ? iov : msg->msg_iov;
        vc = op == OP_WRITEV ? iovcnt : (int)msg->msg_iovlen;
        if (vc < 0 || vc > IOV_MAX) {
            errno = EINVAL;
            return -1;
        }
        v = vc <= IOV_STACK ? stack_iov : malloc((size_t)vc * sizeof *v);
        if (!v) {
            errno = ENOMEM;
            return -1;
        }
        for (int i = 0; i < vc; i++) {
            v[i] = src[i];
            total += src[i].iov_len;
        }
        if (op == OP_SENDMSG)
            m = *msg;
    } else {
        total = n;
    }
    uint64_t deadline = 0;
    ssize_t ret;
    int vi = 0;
    for (;;) {
        ssize_t r;
        switch (op) {
        case OP_WRITE:  r = real.write(fd, (const char *)buf + done, n - done); break;
        case OP_SENDTO: r = real.sendto(fd, (const char *)buf + done, n - done, flags, addr, alen); break;
        case OP_WRITEV: r = real.writev(fd, v + vi, vc - vi); break;
        default:
            m.msg_iov = v + vi;
            m.msg_iovlen = (size_t)(vc - vi);
            r = real.sendmsg(fd, &m, flags);
            if (r > 0) { /* ancillary data goes with the first bytes only */
                m.msg_control = NULL;
                m.msg_controllen = 0;
            }
            break;
        }
        if (r >= 0) {
            done += (size_t)r;
            if (done >= total) {
                ret = (ssize_t)done;
                goto out;
            }
            if (v) { /* drop the iovecs written, trim the one written in part */
                size_t k = (size_t)r;
                while (vi < vc && k >= v[vi].iov_len)
                    k -= v[vi++].iov_len;
                if (vi < vc) {
                    v[vi].iov_base = (char *)v[vi].iov_base + k;
                    v[vi].iov_len -= k;
                }
            }
            if (r > 0)
                continue;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            ret = done ? (ssize_t)done : -1; /* libc reports the bytes it did send */
            goto out;
        }
        if (!deadline)
            deadline = sock_deadline(fd, SO_SNDTIMEO);
        if (wait_ready(fd, EPOLLOUT, deadline, fiber) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN;
            ret = done ? (ssize_t)done : -1;
            goto out;
        }
    }
out:
    if (v && v != stack_iov) {
        int e = errno;
        free(v);
        errno = e;
    }
    return ret;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    return do_write(OP_WRITE, fd, buf, n, NULL, 0, 0, NULL, 0, NULL);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    return do_write(OP_WRITEV, fd, NULL, 0, iov, iovcnt, 0, NULL, 0, NULL);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    return do_write(OP_SENDTO, fd, buf, n, NULL, 0, flags, NULL, 0, NULL);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
               socklen_t alen)
{
    return do_write(OP_SENDTO, fd, buf, n, NULL, 0, flags, addr.__sockaddr__, alen, NULL);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return do_write(OP_SENDMSG, fd, NULL, 0, NULL, 0, flags, NULL, 0, msg);
}

/* ---- connect and accept ----------------------------------------------------------------- */

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    int fiber = on_fiber();
    if (!fd_hooked(fd, fiber))
        return real.connect(fd, addr.__sockaddr__, len);
    int r = real.connect(fd, addr.__sockaddr__, len);
    if (r == 0 || (errno != EINPROGRESS && errno != EINTR))
        return r;
    /* A blocking connect with SO_SNDTIMEO gives up with EINPROGRESS (socket(7)); the
     * handshake goes on in the kernel either way. */
    if (wait_ready(fd, EPOLLOUT, sock_deadline(fd, SO_SNDTIMEO), fiber) != 0) {
        if (errno == ETIMEDOUT)
            errno = EINPROGRESS;
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

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int fiber = on_fiber();
    int hooked = (fiber || (fd_get(fd) & FD_SYS_NB)) && fd_hooked(fd, fiber);
    uint64_t deadline = 0;
    for (;;) {
        int c = real.accept4(fd, addr, len, flags);
        if (c >= 0) {
            fd_born(c, flags & SOCK_NONBLOCK); /* O_NONBLOCK is not inherited on Linux */
            return c;
        }
        if (!hooked)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (!deadline)
            deadline = sock_deadline(fd, SO_RCVTIMEO);
        if (wait_ready(fd, EPOLLIN, deadline, fiber) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN;
            return -1;
        }
    }
}

int accept(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
    return do_accept(fd, addr.__sockaddr__, len, 0);
}

int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len, int flags)
{
    return do_accept(fd, addr.__sockaddr__, len, flags);
}

/* ---- poll and select ---------------------------------------------------------------------- */

/*
 * Waiting for several descriptors at once.
 *
 * The runtime waits for one descriptor per call (and one reader per descriptor), so poll
 * and select park through a poll set of the hook's own: one epoll instance per thread
 * (the "hep"), registered once in the runtime's poller, in which every descriptor a fiber
 * polls is added once, edge-triggered, for every event. A dispatcher fiber waits on the
 * hep, reads its events and wakes the fibers polling each ready descriptor. A poll that
 * finds nothing ready parks on its own wait queue with its nodes linked under each of its
 * descriptors; woken, it polls again (level-triggered truth) and parks again if the wake
 * was spurious. The edge-triggered registration is sound for the same reason the
 * runtime's is: a poll always asks the descriptors themselves before parking, and an
 * edge that comes between that question and the park is queued in the hep.
 *
 * What this costs per wait, in the steady state: the poll that finds nothing ready and
 * the poll after the wake-up; the dispatcher's epoll_wait is shared by every fiber woken
 * in the same round. A descriptor number is added again only after it was closed or
 * made anew (fdgen), so libcurl's loop over the same two descriptors adds nothing. And it
 * costs one descriptor per thread, not one per parked fiber: ten thousand parked
 * transfers would otherwise need ten thousand more under a 20,000 open-files cap.
 */
static _Atomic unsigned char fdgen[FD_MAX]; /* bumped whenever a number gets a new file */

static void fd_newgen(int fd)
{
    if (fd >= 0 && fd < FD_MAX)
        atomic_fetch_add_explicit(&fdgen[fd], 1, memory_order_relaxed);
}

struct poller {
    fiber_waitq_t wq;
    int           woken;
};

struct pnode { /* one per descriptor of a parked poll, on that poll's stack */
    struct pnode  *prev, *next;
    struct poller *p;
};

struct hepfd {
    struct pnode *head;
    unsigned char gen, added; /* added to the hep while fdgen was gen */
};

struct hep {
    int           ep;
    struct hepfd *fds;
    size_t        nfds;
    size_t        parked;    /* polls parked and not yet woken */
    int           disp;      /* a dispatcher fiber exists */
    int           disp_wait; /* ... and is parked on the hep */
};

static _Thread_local struct hep *tl_hep;
static pthread_key_t hep_key;
static pthread_once_t hep_once = PTHREAD_ONCE_INIT;

/* A thread that ran fibers (fiber-mt, a pool of schedulers) gives its poll set back when
 * it exits; its fibers, and so its polls, are done by then. */
static void hep_free(void *p)
{
    struct hep *h = p;
    real.close(h->ep);
    free(h->fds);
    free(h);
}

static void hep_key_make(void)
{
    pthread_key_create(&hep_key, hep_free);
}

static struct hepfd *hep_fd(struct hep *h, int fd)
{
    if ((size_t)fd >= h->nfds) {
        size_t n = h->nfds ? h->nfds : 256;
        while (n <= (size_t)fd)
            n *= 2;
        struct hepfd *t = realloc(h->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + h->nfds, 0, (n - h->nfds) * sizeof *t);
        h->fds = t;
        h->nfds = n;
    }
    return &h->fds[fd];
}

static void hep_wake_fd(struct hep *h, int fd)
{
    if (!h || fd < 0 || (size_t)fd >= h->nfds)
        return;
    for (struct pnode *n = h->fds[fd].head; n; n = n->next)
        if (!n->p->woken) {
            n->p->woken = 1;
            h->parked--;
            fiber_waitq_wake_one(&n->p->wq);
        }
}

static void dispatcher_main(void *arg)
{
    struct hep *h = arg;
    struct epoll_event evs[256];
    while (h->parked) {
        int k = epoll_wait(h->ep, evs, 256, 0);
        if (k > 0) {
            for (int i = 0; i < k; i++)
                hep_wake_fd(h, (int)evs[i].data.u64);
            continue; /* drained only when a call returns nothing */
        }
        if (k < 0 && errno != EINTR)
            break; /* cannot happen with a valid hep; the pollers time out or re-poll */
        h->disp_wait = 1;
        fiber_wait_fd_after_eagain(h->ep, EPOLLIN, FIBER_FOREVER); /* EBADF: told to look */
        h->disp_wait = 0;
    }
    h->disp = 0;
}

/*
 * Parks the calling fiber until one of fds may be ready, or the deadline. The caller has
 * just polled them without waiting and found none ready.
 * Returns 0 (woken: poll again), or -1 with errno ETIMEDOUT, ENOMEM or the poller's error.
 */
static int park_pollfds(struct pollfd *fds, nfds_t n, uint64_t deadline)
{
    int count = 0;
    for (nfds_t i = 0; i < n; i++)
        count += fds[i].fd >= 0;
    if (count == 0) { /* poll(NULL, 0, ms): a sleep */
        fiber_sleep_until(deadline);
        errno = ETIMEDOUT;
        return -1;
    }
    struct hep *h = tl_hep;
    if (!h) {
        h = calloc(1, sizeof *h);
        if (!h || (h->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
            free(h);
            errno = ENOMEM;
            return -1;
        }
        tl_hep = h;
        pthread_once(&hep_once, hep_key_make);
        pthread_setspecific(hep_key, h);
    }
    struct pnode stack_nodes[8], *nodes = stack_nodes;
    if (n > 8 && !(nodes = calloc(n, sizeof *nodes))) {
        errno = ENOMEM;
        return -1;
    }
    struct poller p = { FIBER_WAITQ_INIT, 0 };
    int rc = 0;
    nfds_t linked = 0;
    for (; linked < n; linked++) {
        int fd = fds[linked].fd;
        nodes[linked].p = NULL;
        if (fd < 0 || fd >= FD_MAX)
            continue;
        struct hepfd *hf = hep_fd(h, fd);
        if (!hf) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
        unsigned char g = atomic_load_explicit(&fdgen[fd], memory_order_relaxed);
        if (!hf->added || hf->gen != g) {
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP |
                                                EPOLLET, .data.u64 = (uint64_t)fd };
            if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                if (errno == EBADF) /* closed meanwhile: the next poll says POLLNVAL */
                    break;
                if (errno == EPERM) /* a regular file: always ready, poll saw it */
                    continue;
                if (errno != EEXIST) {
                    rc = -1;
                    break;
                }
            }
            hf->added = 1;
            hf->gen = g;
        }
        struct pnode *nd = &nodes[linked];
        nd->p = &p;
        nd->prev = NULL;
        nd->next = hf->head;
        if (hf->head)
            hf->head->prev = nd;
        hf->head = nd;
    }
    if (rc == 0 && linked == n) {
        h->parked++;
        if (!h->disp) {
            fiber_attr_t a = { .stack_size = 16384, .name = "hook-poll", .detached = 1 };
            if (fiber_spawn_ex(dispatcher_main, h, &a))
                h->disp = 1;
        }
        if (!h->disp) {
            h->parked--;
            errno = ENOMEM;
            rc = -1;
        } else {
            rc = fiber_waitq_wait(&p.wq, deadline);
            if (!p.woken) { /* timed out: the dispatcher may be waiting for nobody */
                h->parked--;
                if (h->parked == 0 && h->disp_wait)
                    fiber_fd_forget(h->ep); /* wakes it (EBADF) so it can finish */
            }
        }
    }
    int e = errno;
    for (nfds_t i = 0; i < linked; i++) {
        struct pnode *nd = &nodes[i];
        if (!nd->p)
            continue;
        struct hepfd *hf = &h->fds[fds[i].fd];
        if (nd->prev)
            nd->prev->next = nd->next;
        else
            hf->head = nd->next;
        if (nd->next)
            nd->next->prev = nd->prev;
    }
    if (nodes != stack_nodes)
        free(nodes);
    errno = e;
    return rc;
}

/* poll on a fiber: check without waiting, park, check again, until something is ready or
 * the deadline passes (then 0, like poll). */
static int fiber_poll(struct pollfd *fds, nfds_t n, uint64_t deadline, const sigset_t *mask)
{
    static const struct timespec zero = { 0, 0 };
    for (;;) {
        int r = mask ? real.ppoll(fds, n, &zero, mask) : real.poll(fds, n, 0);
        if (r != 0)
            return r;
        if (deadline != FIBER_FOREVER && mono_ns() >= deadline)
            return 0;
        if (park_pollfds(fds, n, deadline) != 0) {
            if (errno == ETIMEDOUT) /* a last look: an event may have come with the time */
                return real.poll(fds, n, 0);
            if (errno != EBADF) /* EBADF: one was closed; the next poll reports POLLNVAL */
                return -1;
        }
        mask = NULL; /* the caller's mask applied to the first check only */
    }
}

static uint64_t ms_deadline(int ms)
{
    return ms < 0 ? FIBER_FOREVER : after_ns((uint64_t)ms * 1000000u);
}

static int ts_valid(const struct timespec *t)
{
    return t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

static uint64_t ts_ns(const struct timespec *t)
{
    if ((uint64_t)t->tv_sec >= (FIBER_FOREVER - 1000000000u) / 1000000000u)
        return FIBER_FOREVER - 1;
    return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

int poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (timeout_ms == 0 || !on_fiber())
        return real.poll(fds, n, timeout_ms);
    return fiber_poll(fds, n, ms_deadline(timeout_ms), NULL);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
    if ((t && t->tv_sec == 0 && t->tv_nsec == 0) || !on_fiber())
        return real.ppoll(fds, n, t, mask);
    if (t && !ts_valid(t)) {
        errno = EINVAL;
        return -1;
    }
    return fiber_poll(fds, n, t ? after_ns(ts_ns(t)) : FIBER_FOREVER, mask);
}

/* select as poll: the sets become pollfds, the answer goes back into the sets. */
static int fiber_select(int nfds, fd_set *r, fd_set *w, fd_set *e, uint64_t deadline,
                        const sigset_t *mask)
{
    if (nfds < 0 || nfds > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd stack_p[32], *p = stack_p;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
            n++;
    if (n > 32 && !(p = malloc((size_t)n * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    int k = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((r && FD_ISSET(fd, r) ? POLLIN : 0) | (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
                           (e && FD_ISSET(fd, e) ? POLLPRI : 0));
        if (ev)
            p[k++] = (struct pollfd){ .fd = fd, .events = ev };
    }
    int rc = fiber_poll(p, (nfds_t)n, deadline, mask);
    if (rc >= 0) {
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLNVAL) {
                errno = EBADF;
                rc = -1;
                goto out;
            }
        if (r) FD_ZERO(r);
        if (w) FD_ZERO(w);
        if (e) FD_ZERO(e);
        rc = 0;
        for (int i = 0; i < n; i++) {
            short ev = p[i].events, re = p[i].revents;
            if (r && (ev & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) { FD_SET(p[i].fd, r); rc++; }
            if (w && (ev & POLLOUT) && (re & (POLLOUT | POLLERR))) { FD_SET(p[i].fd, w); rc++; }
            if (e && (ev & POLLPRI) && (re & POLLPRI)) { FD_SET(p[i].fd, e); rc++; }
        }
    }
out:
    if (p != stack_p) {
        int er = errno;
        free(p);
        errno = er;
    }
    return rc;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if ((tv && tv->tv_sec == 0 && tv->tv_usec == 0) || !on_fiber())
        return real.select(nfds, r, w, e, tv);
    if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)) {
        errno = EINVAL;
        return -1;
    }
    uint64_t deadline = tv ? after_ns((uint64_t)tv->tv_sec * 1000000000u +
                                      (uint64_t)tv->tv_usec * 1000u) : FIBER_FOREVER;
    int rc = fiber_select(nfds, r, w, e, deadline, NULL);
    if (tv) { /* Linux select writes the time left back */
        uint64_t now = mono_ns(), left = deadline > now ? deadline - now : 0;
        tv->tv_sec = (time_t)(left / 1000000000u);
        tv->tv_usec = (suseconds_t)(left % 1000000000u / 1000u);
    }
    return rc;
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
            const sigset_t *mask)
{
    if ((t && t->tv_sec == 0 && t->tv_nsec == 0) || !on_fiber())
        return real.pselect(nfds, r, w, e, t, mask);
    if (t && !ts_valid(t)) {
        errno = EINVAL;
        return -1;
    }
    return fiber_select(nfds, r, w, e, t ? after_ns(ts_ns(t)) : FIBER_FOREVER, mask);
}

/* An event loop of the program's own, run on a fiber: its epoll set is itself a
 * descriptor, readable while an event is pending, so the fiber parks on the set in the
 * runtime's poller (a set inside a set) and asks it again when woken. */
static int fiber_epoll(int ep, struct epoll_event *ev, int n, int ms, const sigset_t *mask)
{
    uint64_t deadline = ms_deadline(ms);
    for (;;) {
        int r = mask ? real.epoll_pwait(ep, ev, n, 0, mask) : real.epoll_wait(ep, ev, n, 0);
        if (r != 0)
            return r;
        if (deadline != FIBER_FOREVER && mono_ns() >= deadline)
            return 0;
        if (fiber_wait_fd(ep, EPOLLIN, deadline) < 0)
            return errno == ETIMEDOUT ? 0 : -1;
        mask = NULL;
    }
}

int epoll_wait(int ep, struct epoll_event *ev, int n, int ms)
{
    if (ms == 0 || !on_fiber())
        return real.epoll_wait(ep, ev, n, ms);
    return fiber_epoll(ep, ev, n, ms, NULL);
}

int epoll_pwait(int ep, struct epoll_event *ev, int n, int ms, const sigset_t *mask)
{
    if (ms == 0 || !on_fiber())
        return real.epoll_pwait(ep, ev, n, ms, mask);
    return fiber_epoll(ep, ev, n, ms, mask);
}

/* ---- sleeping --------------------------------------------------------------------------- */

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!on_fiber() || !req)
        return real.nanosleep(req, rem); /* NULL: libc's EFAULT */
    if (!ts_valid(req)) {
        errno = EINVAL;
        return -1;
    }
    fiber_sleep_until(after_ns(ts_ns(req)));
    if (rem)
        rem->tv_sec = 0, rem->tv_nsec = 0;
    return 0;
}

int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    if (!on_fiber() || (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME &&
                        clk != CLOCK_BOOTTIME))
        return real.clock_nanosleep(clk, flags, req, rem); /* CPU-time clocks and the rest */
    if (!req)
        return EFAULT;
    if (!ts_valid(req))
        return EINVAL;
    uint64_t deadline;
    if (flags & TIMER_ABSTIME) {
        /* an absolute time on another clock becomes a monotonic deadline now */
        struct timespec now;
        clock_gettime(clk, &now);
        uint64_t at = ts_ns(req), cur = ts_ns(&now);
        deadline = at <= cur ? mono_ns() : after_ns(at - cur);
    } else {
        deadline = after_ns(ts_ns(req));
    }
    fiber_sleep_until(deadline);
    if (rem && !(flags & TIMER_ABSTIME))
        rem->tv_sec = 0, rem->tv_nsec = 0;
    return 0;
}

int usleep(useconds_t us)
{
    if (!on_fiber())
        return real.usleep(us);
    fiber_sleep_until(after_ns((uint64_t)us * 1000u));
    return 0;
}

unsigned sleep(unsigned s)
{
    if (!on_fiber())
        return real.sleep(s);
    fiber_sleep_until(after_ns((uint64_t)s * 1000000000u));
    return 0;
}

/* ---- descriptors: birth, copies, death ---------------------------------------------------- */

int socket(int domain, int type, int proto)
{
    int fd = real.socket(domain, type, proto);
    if (fd >= 0)
        fd_born(fd, type & SOCK_NONBLOCK);
    return fd;
}

int socketpair(int domain, int type, int proto, int sv[2])
{
    int r = real.socketpair(domain, type, proto, sv);
    if (r == 0) {
        fd_born(sv[0], type & SOCK_NONBLOCK);
        fd_born(sv[1], type & SOCK_NONBLOCK);
    }
    return r;
}

int pipe2(int p[2], int flags)
{
    int r = real.pipe2(p, flags);
    if (r == 0) {
        fd_born(p[0], flags & O_NONBLOCK);
        fd_born(p[1], flags & O_NONBLOCK);
    }
    return r;
}

int pipe(int p[2])
{
    return pipe2(p, 0);
}

/* Other descriptors a program polls: made through the hook only so that their numbers
 * get a new generation (the poll set must not take a reused number for its old file).
 * They are not sockets or pipes, so reads and writes on them pass through. */
static int born_other(int fd)
{
    if (fd >= 0) {
        fd_newgen(fd);
        fd_set_state(fd, 0);
    }
    return fd;
}

int eventfd(unsigned v, int flags) { return born_other(real.eventfd(v, flags)); }
int timerfd_create(int clk, int flags) { return born_other(real.timerfd_create(clk, flags)); }
int epoll_create1(int flags) { return born_other(real.epoll_create1(flags)); }
int epoll_create(int size)
{
    if (size <= 0) {
        errno = EINVAL;
        return -1;
    }
    return epoll_create1(0);
}

/* Forget what the poller and the hook know of fd, before its number can be reused. A
 * fiber parked on it wakes with EBADF. */
static void fd_gone(int fd)
{
    if (rt_ok && fd >= 0) {
        fiber_fd_forget(fd);
        hep_wake_fd(tl_hep, fd); /* a poll parked on it looks again: POLLNVAL */
    }
    fd_set_state(fd, 0);
    fd_newgen(fd);
}

int close(int fd)
{
    fd_gone(fd);
    return real.close(fd);
}

int dup(int fd)
{
    int n = real.dup(fd);
    if (n >= 0) {
        fd_newgen(n);
        fd_set_state(n, fd_get(fd));
    } /* one open file description: one O_NONBLOCK */
    return n;
}

int dup2(int old, int nfd)
{
    if (old != nfd && fcntl(old, F_GETFD) >= 0)
        fd_gone(nfd);
    int r = real.dup2(old, nfd);
    if (r >= 0 && old != nfd)
        fd_set_state(nfd, fd_get(old));
    return r;
}

int dup3(int old, int nfd, int flags)
{
    if (old != nfd && fcntl(old, F_GETFD) >= 0)
        fd_gone(nfd);
    int r = real.dup3(old, nfd, flags);
    if (r >= 0)
        fd_set_state(nfd, fd_get(old));
    return r;
}

/* fcntl's third argument is an int or a pointer; passing it on as a pointer-sized word
 * is what glibc's own wrapper does. */
static int do_fcntl(int fd, int cmd, void *arg)
{
    unsigned s = fd_get(fd);
    switch (cmd) {
    case F_GETFL: {
        int r = real.fcntl(fd, cmd);
        if (r >= 0 && (s & FD_SYS_NB) && !(s & FD_USER_NB))
            r &= ~O_NONBLOCK; /* the caller's view: what the caller set */
        return r;
    }
    case F_SETFL: {
        int fl = (int)(intptr_t)arg;
        if (!(s & FD_KNOWN))
            return real.fcntl(fd, cmd, fl);
        unsigned ns = s & ~(unsigned)(FD_USER_NB | FD_SYS_NB);
        if (fl & O_NONBLOCK)
            ns |= FD_USER_NB | FD_SYS_NB;
        else if ((s & (FD_WAITABLE | FD_SYS_NB)) == (FD_WAITABLE | FD_SYS_NB)) {
            fl |= O_NONBLOCK; /* blocking for the caller, still non-blocking for fibers */
            ns |= FD_SYS_NB;
        }
        int r = real.fcntl(fd, cmd, fl);
        if (r == 0)
            fd_set_state(fd, ns);
        return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = real.fcntl(fd, cmd, (int)(intptr_t)arg);
        if (r >= 0) {
            fd_newgen(r);
            fd_set_state(r, s);
        }
        return r;
    }
    default:
        return real.fcntl(fd, cmd, arg);
    }
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

/* ioctl(FIONBIO) is the other way to ask for non-blocking (BSD's); it is tracked like
 * F_SETFL, every other request passes through. */
int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    unsigned s = fd_get(fd);
    if (req == FIONBIO && arg && (s & FD_KNOWN)) {
        int on = *(int *)arg;
        if ((s & (FD_WAITABLE | FD_SYS_NB)) == (FD_WAITABLE | FD_SYS_NB) && !on) {
            /* blocking for the caller, still non-blocking for fibers */
            fd_set_state(fd, s & ~(unsigned)FD_USER_NB);
            return 0;
        }
        int r = real.ioctl(fd, req, arg);
        if (r == 0)
            fd_set_state(fd, on ? (s | FD_USER_NB | FD_SYS_NB)
                                : (s & ~(unsigned)(FD_USER_NB | FD_SYS_NB)));
        return r;
    }
    return real.ioctl(fd, req, arg);
}

/* ---- name resolution ------------------------------------------------------------------------ */

struct gai_call {
    const char             *node, *service;
    const struct addrinfo  *hints;
    struct addrinfo       **res;
    int                     rc, err;
};

static void gai_run(void *p)
{
    struct gai_call *c = p;
    c->rc = real.getaddrinfo(c->node, c->service, c->hints, c->res);
    c->err = errno; /* EAI_SYSTEM says errno: the pool thread's, carried back */
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (OFFLOAD_HAS() && on_fiber()) {
        struct gai_call c = { node, service, hints, res, EAI_SYSTEM, 0 };
        if (fiber_offload(gai_run, &c) == 0) {
            if (c.rc == EAI_SYSTEM)
                errno = c.err;
            return c.rc;
        }
        /* no pool thread could be had: resolve here, blocking the thread as before */
    }
    return real.getaddrinfo(node, service, hints, res);
}

/* ---- glibc's other names for the same calls ---------------------------------------------------
 * Programs reach some calls through these: the __ aliases glibc exports, and the checking
 * versions that _FORTIFY_SOURCE substitutes when it knows the buffer's size. */

extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __read(int fd, void *buf, size_t n) { return read(fd, buf, n); }
ssize_t __write(int fd, const void *buf, size_t n) { return write(fd, buf, n); }
int __close(int fd) { return close(fd); }
int __connect(int fd, __CONST_SOCKADDR_ARG a, socklen_t l) { return connect(fd, a, l); }
ssize_t __send(int fd, const void *b, size_t n, int fl) { return send(fd, b, n, fl); }
int __poll(struct pollfd *f, nfds_t n, int ms) { return poll(f, n, ms); }
int __select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t) { return select(n, r, w, e, t); }
int __nanosleep(const struct timespec *q, struct timespec *r) { return nanosleep(q, r); }
int __dup2(int o, int n) { return dup2(o, n); }
int __fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                       __SOCKADDR_ARG addr, socklen_t *restrict alen)
{
    if (n > buflen)
        __chk_fail();
    return recvfrom(fd, buf, n, flags, addr, alen);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int ms, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return poll(fds, n, ms);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m,
                size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return ppoll(fds, n, t, m);
}
