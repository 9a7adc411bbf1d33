/*
 * hook.c - interposition of blocking libc calls, so that unmodified blocking code parks
 * fibers instead of threads. The contract is fiber/hook/include/fiber_hook.h.
 *
 * Built twice from this one file: linked into an executable (libfiber_hook.a, the
 * runtime resolved by the static link) and as the LD_PRELOAD library (libfiber_hook.so,
 * FIBER_HOOK_PRELOAD: the runtime's functions are weak references, bound at load time to
 * the ones the executable exports, or NULL when it exports none).
 *
 * The rule everything here follows: the hook never leaves O_NONBLOCK set on a descriptor.
 * O_NONBLOCK lives on the open file description, which other numbers (dup), other threads
 * (plain blocking code), libc's own I/O (stdio, recvmmsg, sendfile) and other processes
 * (an exec'd child that inherited a socket or pipe as its stdin) share; a flag set for a
 * fiber would change what all of them get (Ruby 3.0, trio and node each met this). So the
 * kernel's flag is always the caller's own, and a call on a fiber is made non-blocking
 * per call instead:
 *   - sockets: the data calls carry MSG_DONTWAIT (read becomes recv, readv recvmsg, write
 *     send, writev sendmsg), which cannot block whoever else uses the socket;
 *   - connect: O_NONBLOCK for the one connect(2) call, cleared right after (no flag
 *     reaches a data call; an exec in another thread during that call would see it);
 *   - everything else (pipes, FIFOs, eventfd, timerfd, ttys, accept): poll(2) with a zero
 *     timeout, and the real call only when the descriptor is ready - a readable pipe does
 *     not block a read, and a pipe reported writable has a free PIPE_BUF slot, so a write
 *     of at most PIPE_BUF bytes does not block (larger ones go PIPE_BUF at a time). The
 *     check and the call run back to back with no fiber switch between them, so fibers
 *     of one thread never race each other there; another thread or process that reads
 *     (or writes, or accepts) on the same pipe or listener can take the readiness in
 *     between, and then the call blocks this thread until there is more (fiber_hook.h).
 * When the call would block and the caller's own descriptor is blocking (F_GETFL, asked
 * only then), the fiber parks in the runtime's poller until the descriptor is ready, the
 * socket's SO_RCVTIMEO/SO_SNDTIMEO passes or the descriptor is closed; then it tries again.
 *
 * Nothing on the fiber path trusts a record of what a descriptor number was: numbers are
 * closed behind the hook's back (fclose, a library's raw close) and reused by calls it
 * does not see (open, a libc-internal socket). The one table kept is a hint of the
 * number's kind (socket or not) that only picks which way to try first: a wrong hint costs
 * one failed call (ENOTSOCK) or one poll, never a blocked thread.
 *
 * The real libc functions are found with dlsym(RTLD_NEXT) in a constructor; until then
 * (and if dlsym fails) each falls back to the raw system call, so a call made while the
 * dynamic linker is still starting up - or by dlsym itself - cannot recurse into the hook.
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
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- the runtime ----------------------------------------------------------------------
 * The offload pool is referenced weakly unless the build says the runtime has it (a weak
 * reference does not pull an archive member; FIBER_HOOK_HAVE_OFFLOAD makes it strong). */
int fiber_offload(void (*fn)(void *arg), void *arg);

#ifdef FIBER_HOOK_PRELOAD
#pragma weak fiber_self
#pragma weak fiber_now_ns
#pragma weak fiber_sleep_until
#pragma weak fiber_wait_fd
#pragma weak fiber_wait_fd_after_eagain
#pragma weak fiber_wait_fds
#pragma weak fiber_fd_forget
#pragma weak fiber_sched_self
#pragma weak fiber_sched_post
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

/* The runtime is usable: every function the hook parks and wakes with is there. */
static int rt_present(void)
{
    return RT_HAS(fiber_self) && RT_HAS(fiber_now_ns) && RT_HAS(fiber_sleep_until) &&
           RT_HAS(fiber_wait_fd) && RT_HAS(fiber_wait_fd_after_eagain) &&
           RT_HAS(fiber_wait_fds) && RT_HAS(fiber_fd_forget) && RT_HAS(fiber_sched_self) &&
           RT_HAS(fiber_sched_post);
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
static int raw_epoll_pwait2(int ep, struct epoll_event *e, int n, const struct timespec *t,
                            const sigset_t *m)
{ return (int)syscall(SYS_epoll_pwait2, ep, e, n, t, m, _NSIG / 8); }
static int raw_nanosleep(const struct timespec *q, struct timespec *r) { return (int)syscall(SYS_nanosleep, q, r); }
static int raw_clock_nanosleep(clockid_t c, int fl, const struct timespec *q, struct timespec *r)
{ return syscall(SYS_clock_nanosleep, c, fl, q, r) == 0 ? 0 : errno; }
static int raw_close(int fd) { return (int)syscall(SYS_close, fd); }
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
static int raw_pipe2(int p[2], int fl) { return (int)syscall(SYS_pipe2, p, fl); }
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
    int     (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
    int     (*nanosleep)(const struct timespec *, struct timespec *);
    int     (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
    int     (*close)(int);
    int     (*dup2)(int, int);
    int     (*dup3)(int, int, int);
    int     (*fcntl)(int, int, ...);
    int     (*pipe2)(int[2], int);
    unsigned (*sleep)(unsigned);
    int     (*usleep)(useconds_t);
    int     (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
} real = {
    raw_read, raw_write, raw_readv, raw_writev, raw_recvfrom, raw_sendto, raw_recvmsg,
    raw_sendmsg, raw_connect, raw_accept4, raw_poll, raw_ppoll, raw_select, raw_pselect,
    raw_epoll_wait, raw_epoll_pwait, raw_epoll_pwait2, raw_nanosleep, raw_clock_nanosleep,
    raw_close, raw_dup2, raw_dup3, raw_fcntl, raw_pipe2, raw_sleep, raw_usleep,
    lazy_getaddrinfo,
};

#define RESOLVE(name)                                   \
    do {                                                \
        void *p_ = dlsym(RTLD_NEXT, #name);             \
        if (p_)                                         \
            memcpy(&real.name, &p_, sizeof p_);         \
    } while (0)

static void registry_atfork_child(void);

/* Runs before main (and, preloaded, before the program's own constructors). dlsym may
 * allocate and may take the loader's lock; it calls none of the interposed functions on
 * glibc, and if it did they would take the raw path above. */
__attribute__((constructor(101))) static void hook_init(void)
{
    RESOLVE(read); RESOLVE(write); RESOLVE(readv); RESOLVE(writev);
    RESOLVE(recvfrom); RESOLVE(sendto); RESOLVE(recvmsg); RESOLVE(sendmsg);
    RESOLVE(connect); RESOLVE(accept4); RESOLVE(poll); RESOLVE(ppoll);
    RESOLVE(select); RESOLVE(pselect); RESOLVE(epoll_wait); RESOLVE(epoll_pwait);
    RESOLVE(epoll_pwait2); RESOLVE(nanosleep); RESOLVE(clock_nanosleep);
    RESOLVE(close); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(fcntl); RESOLVE(pipe2);
    RESOLVE(sleep); RESOLVE(usleep); RESOLVE(getaddrinfo);
    rt_ok = rt_present();
    if (rt_ok)
        pthread_atfork(NULL, NULL, registry_atfork_child);
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

/* ---- time ------------------------------------------------------------------------------ */

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

/* The socket's SO_RCVTIMEO or SO_SNDTIMEO as an absolute deadline; none for what is not
 * a socket, or a zero timeout. */
static uint64_t sock_deadline(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof tv;
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return FIBER_FOREVER;
    return after_ns((uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u);
}

/* ---- what kind a descriptor number is: a hint ------------------------------------------
 * One byte per number, process-wide, learned at the first read/write on a fiber (one
 * getsockopt) and dropped by close/dup2/dup3/accept. It only chooses which way a
 * read/write is tried first; every wrong guess is caught (see the top of this file). Numbers
 * past the table are asked each time. 1 MiB of zero pages, touched where numbers are used. */
#define FD_MAX (1 << 20)
enum { K_UNKNOWN = 0, K_OTHER, K_STREAM, K_DGRAM, K_SEQPACKET };
static _Atomic unsigned char fdkind[FD_MAX];

static unsigned kind_probe(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        return type == SOCK_STREAM ? K_STREAM : type == SOCK_SEQPACKET ? K_SEQPACKET : K_DGRAM;
    return errno == ENOTSOCK ? K_OTHER : K_UNKNOWN; /* EBADF: the call itself will say */
}

static unsigned fd_kind(int fd)
{
    if (fd < 0)
        return K_OTHER;
    if (fd >= FD_MAX)
        return kind_probe(fd);
    unsigned k = atomic_load_explicit(&fdkind[fd], memory_order_relaxed);
    if (k == K_UNKNOWN) {
        k = kind_probe(fd);
        if (k != K_UNKNOWN)
            atomic_store_explicit(&fdkind[fd], (unsigned char)k, memory_order_relaxed);
        else
            k = K_OTHER;
    }
    return k;
}

static void fd_kind_set(int fd, unsigned k)
{
    if (fd >= 0 && fd < FD_MAX)
        atomic_store_explicit(&fdkind[fd], (unsigned char)k, memory_order_relaxed);
}

static int is_sock(unsigned k) { return k >= K_STREAM; }

/* A stream socket, asked now (MSG_WAITALL's loop must not trust a hint). */
static int is_stream_now(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* The caller's descriptor is non-blocking: then EAGAIN is its answer and nothing parks.
 * Asked only when a call would block; the kernel's flag is the caller's own. */
static int caller_nonblock(int fd)
{
    int fl = real.fcntl(fd, F_GETFL);
    return fl < 0 || (fl & O_NONBLOCK);
}

/* ---- who waits on which number: waking fibers of other threads on close ----------------
 * A fiber parked on a descriptor sits in its own thread's poller. If another thread closes
 * that descriptor, the poller's registration dies with the file and nothing would ever
 * wake the fiber (not even the peer's hang-up: the file is gone). So each thread whose
 * fibers park through the hook is registered here with its scheduler's cross-thread
 * handle (fiber_sched_self) and a count of its parked fibers per number, and a global
 * count per number gives close() its fast path: when nobody on another thread waits on
 * the number (one load and compare), close is the plain close.
 *
 * Otherwise close() must tell those schedulers, and the message is run later, on their
 * threads. Had the number been freed meanwhile, a new file could take it and a fiber
 * there park on the new file before the message runs, and the message would wake that
 * fiber too (EBADF for a file nobody closed). So close() replaces the file at the number
 * with a placeholder (dup3: the old file is closed at once, atomically - the peer sees
 * the hang-up now) and the number stays taken until every scheduler told has forgotten
 * it; the last one closes the placeholder. Meanwhile the number reads as a hung-up pipe
 * (end of file; writes fail with EBADF). A dup2/dup3 or close of the program's own over
 * that number in the meantime takes it over (pending[] is cleared and the placeholder is
 * not closed behind it).
 *
 * What it does not cover: a fiber that parks on the number while another thread is
 * already inside close() for it (the program races with itself, as threads would); dup2
 * over a number that fibers of other threads wait on (close it first); numbers past
 * FD_MAX; close_range() and raw close system calls (they wake nobody).
 */
struct thr {
    fiber_sched_t     *sched;
    _Atomic uint16_t  *cnt;     /* FD_MAX counters: zero pages until used */
    struct thr        *next;
};

static pthread_mutex_t thr_mu = PTHREAD_MUTEX_INITIALIZER;
static struct thr *thr_all;
static _Thread_local struct thr *tl_thr;
static pthread_key_t thr_key;
static pthread_once_t thr_once = PTHREAD_ONCE_INIT;
static _Atomic uint16_t nparked[FD_MAX];  /* fibers parked on each number, every thread */
static _Atomic uint32_t pending[FD_MAX];  /* a placeholder holds the number: its token */
static _Atomic uint32_t pending_next = 1;
static int placeholder = -1;              /* a pipe's read end, its write end closed */
static pthread_once_t ph_once = PTHREAD_ONCE_INIT;

static void thr_exit(void *p)
{
    struct thr *t = p;
    pthread_mutex_lock(&thr_mu);
    for (struct thr **pp = &thr_all; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    pthread_mutex_unlock(&thr_mu);
    free(t->cnt);
    free(t);
}

static void thr_key_make(void)
{
    pthread_key_create(&thr_key, thr_exit);
}

/* This thread's registration, made at its first park; NULL if it cannot be had (then its
 * fibers are not woken by other threads' closes, as before this existed). */
static struct thr *thr_self(void)
{
    struct thr *t = tl_thr;
    if (t)
        return t;
    fiber_sched_t *s = fiber_sched_self();
    if (!s)
        return NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cnt = calloc(FD_MAX, sizeof *t->cnt);
    if (!t->cnt) {
        free(t);
        return NULL;
    }
    t->sched = s;
    pthread_once(&thr_once, thr_key_make);
    pthread_setspecific(thr_key, t);
    pthread_mutex_lock(&thr_mu);
    t->next = thr_all;
    thr_all = t;
    pthread_mutex_unlock(&thr_mu);
    tl_thr = t;
    return t;
}

static void reg_add(struct thr *t, int fd, int d)
{
    if (!t || fd < 0 || fd >= FD_MAX)
        return;
    atomic_fetch_add_explicit(&t->cnt[fd], (uint16_t)d, memory_order_relaxed);
    atomic_fetch_add_explicit(&nparked[fd], (uint16_t)d, memory_order_seq_cst);
}

/* In a forked child only the forking thread is left: the others' registrations go (their
 * counts stay in nparked, which only sends a close that finds nobody to the slow path). */
static void registry_atfork_child(void)
{
    pthread_mutex_init(&thr_mu, NULL);
    struct thr *keep = tl_thr, *t = thr_all;
    while (t) {
        struct thr *next = t->next;
        if (t != keep) {
            free(t->cnt);
            free(t);
        }
        t = next;
    }
    thr_all = keep;
    if (keep)
        keep->next = NULL;
}

static void placeholder_make(void)
{
    int p[2];
    if (real.pipe2(p, O_CLOEXEC) == 0) {
        real.close(p[1]);
        placeholder = p[0];
    }
}

/* The number stops being held by a placeholder; 1 if this call was the one to end it. */
static int pending_end(int fd, uint32_t token)
{
    if (fd < 0 || fd >= FD_MAX)
        return 0;
    if (!token)
        return atomic_exchange(&pending[fd], 0) != 0;
    return atomic_compare_exchange_strong(&pending[fd], &token, 0);
}

struct xclose {
    atomic_int refs;
    int        fd;
    uint32_t   token;
};

static void xclose_done(struct xclose *x)
{
    if (atomic_fetch_sub(&x->refs, 1) != 1)
        return;
    if (pending_end(x->fd, x->token))
        real.close(x->fd); /* the placeholder */
    free(x);
}

static void xclose_run(void *p) /* on a scheduler told of the close, outside any fiber */
{
    struct xclose *x = p;
    fiber_fd_forget(x->fd);
    xclose_done(x);
}

/* close(fd) when fibers of other threads wait on it (see above). */
static int close_remote(int fd)
{
    fiber_sched_t *stack_targets[8], **targets = stack_targets;
    size_t n = 0, cap = 8;
    struct thr *me = tl_thr;
    pthread_mutex_lock(&thr_mu);
    for (struct thr *t = thr_all; t; t = t->next) {
        if (t == me || atomic_load_explicit(&t->cnt[fd], memory_order_relaxed) == 0)
            continue;
        if (n == cap) {
            fiber_sched_t **g = malloc(cap * 2 * sizeof *g);
            if (!g)
                break; /* the rest are not told: they wait for their deadline, as before */
            memcpy(g, targets, n * sizeof *g);
            if (targets != stack_targets)
                free(targets);
            targets = g;
            cap *= 2;
        }
        targets[n++] = t->sched;
    }
    pthread_mutex_unlock(&thr_mu);
    int r;
    pthread_once(&ph_once, placeholder_make);
    struct xclose *x = n ? malloc(sizeof *x) : NULL;
    if (!x || placeholder < 0) {
        free(x);
        pending_end(fd, 0);
        r = real.close(fd);
        goto out;
    }
    x->fd = fd;
    x->token = atomic_fetch_add(&pending_next, 1) | 1; /* never 0 */
    atomic_store(&pending[fd], x->token); /* before dup3: a close racing ours ends it */
    if (real.dup3(placeholder, fd, O_CLOEXEC) < 0) { /* EBADF: fd was not open */
        int e = errno;
        pending_end(fd, x->token);
        free(x);
        errno = e;
        r = -1;
        goto out;
    }
    atomic_init(&x->refs, (int)n + 1);
    for (size_t i = 0; i < n; i++)
        if (fiber_sched_post(targets[i], xclose_run, x) != 0)
            xclose_done(x); /* that thread has exited (EPIPE) or no memory */
    xclose_done(x);
    r = 0;
out:
    if (targets != stack_targets)
        free(targets);
    return r;
}

/* Others than this thread have fibers parked on fd. */
static inline int parked_elsewhere(int fd)
{
    if (fd < 0 || fd >= FD_MAX)
        return 0;
    unsigned all = atomic_load_explicit(&nparked[fd], memory_order_seq_cst);
    if (!all)
        return 0;
    struct thr *me = tl_thr;
    return all > (me ? atomic_load_explicit(&me->cnt[fd], memory_order_relaxed) : 0u);
}

/* ---- parking ----------------------------------------------------------------------------- */

/*
 * Parks the calling fiber until fd is ready for ev (EPOLLIN or EPOLLOUT), after the call
 * said it would block. Returns 0, or -1 with errno ETIMEDOUT at the deadline, EBADF when
 * the descriptor was closed, EPERM when epoll cannot wait for it, or the poller's error.
 */
static int park_fd(int fd, uint32_t ev, uint64_t deadline)
{
    struct thr *t = thr_self();
    reg_add(t, fd, 1);
    int r = fiber_wait_fd_after_eagain(fd, ev, deadline);
    int e = errno;
    reg_add(t, fd, -1);
    errno = e;
    return r < 0 ? -1 : 0;
}

/* Is fd ready for ev now? 1 ready (or in error, hung up, closed: the call will say), 0 not. */
static int ready_now(int fd, short ev)
{
    struct pollfd p = { .fd = fd, .events = ev };
    int r;
    while ((r = real.poll(&p, 1, 0)) < 0 && errno == EINTR) {}
    return r != 0; /* -1 (ENOMEM...): let the call run as libc's */
}

/* A vector copied so that a partial transfer can advance it. */
#define IOV_STACK 16

struct vec {
    struct iovec  stack[IOV_STACK], *v;
    int           n, i;  /* entries, first not yet done */
    size_t        total;
};

static int vec_init(struct vec *x, const struct iovec *src, int n)
{
    if (n < 0 || n > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    x->v = n <= IOV_STACK ? x->stack : malloc((size_t)n * sizeof *x->v);
    if (!x->v) {
        errno = ENOMEM;
        return -1;
    }
    x->n = n;
    x->i = 0;
    x->total = 0;
    for (int k = 0; k < n; k++) {
        x->v[k] = src[k];
        x->total += src[k].iov_len;
    }
    return 0;
}

static void vec_advance(struct vec *x, size_t k)
{
    while (x->i < x->n && k >= x->v[x->i].iov_len)
        k -= x->v[x->i++].iov_len;
    if (x->i < x->n) {
        x->v[x->i].iov_base = (char *)x->v[x->i].iov_base + k;
        x->v[x->i].iov_len -= k;
    }
}

static void vec_free(struct vec *x)
{
    if (x->v && x->v != x->stack) {
        int e = errno;
        free(x->v);
        errno = e;
    }
    x->v = NULL;
}

/* ---- read side ---------------------------------------------------------------------------- */

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

static ssize_t rcall_real(const struct rcall *c)
{
    switch (c->op) {
    case OP_READ:     return real.read(c->fd, c->buf, c->n);
    case OP_READV:    return real.readv(c->fd, c->iov, c->iovcnt);
    case OP_RECVFROM: return real.recvfrom(c->fd, c->buf, c->n, c->flags, c->addr, c->alen);
    case OP_RECVMSG:  return real.recvmsg(c->fd, c->msg, c->flags);
    }
    return -1;
}

/* The call once, on a socket, with the flags given (MSG_DONTWAIT among them). read and
 * readv are recv and recvmsg with no flags on a socket (the kernel's read is). */
static ssize_t sock_recv_once(const struct rcall *c, int flags)
{
    switch (c->op) {
    case OP_READ:
    case OP_RECVFROM:
        return real.recvfrom(c->fd, c->buf, c->n, flags, c->op == OP_READ ? NULL : c->addr,
                             c->op == OP_READ ? NULL : c->alen);
    case OP_READV: {
        struct msghdr m = { .msg_iov = (struct iovec *)c->iov, .msg_iovlen = (size_t)c->iovcnt };
        return real.recvmsg(c->fd, &m, flags);
    }
    case OP_RECVMSG:
        return real.recvmsg(c->fd, c->msg, flags);
    }
    return -1;
}

/*
 * recv/recvmsg(MSG_WAITALL) on a stream socket: a blocking socket waits for all of it
 * (or the end, an error, a timeout); MSG_DONTWAIT returns what is there, so the hook loops,
 * advancing the buffer. Only streams: a datagram is one message whatever the flag says,
 * and MSG_PEEK reads the same bytes again (both handled by the plain path: one call).
 * recvmsg stops early when ancillary data comes, as the kernel does for passed descriptors.
 */
static ssize_t sock_recv_waitall(struct rcall *c, uint64_t *deadline, int *blocking)
{
    int flags = (c->flags & ~MSG_WAITALL) | MSG_DONTWAIT;
    struct vec v = { .v = NULL };
    struct msghdr m = { .msg_name = NULL };
    socklen_t namelen0 = 0;
    int mflags = 0, answered = 0;
    size_t total = c->n, got = 0;
    if (c->op == OP_RECVMSG) {
        if (vec_init(&v, c->msg->msg_iov, (int)c->msg->msg_iovlen) != 0)
            return -1;
        m = *c->msg;
        total = v.total;
    }
    ssize_t ret;
    for (;;) {
        ssize_t r;
        if (c->op == OP_RECVMSG) {
            m.msg_iov = v.v + v.i;
            m.msg_iovlen = (size_t)(v.n - v.i);
            m.msg_controllen = c->msg->msg_controllen;
            r = real.recvmsg(c->fd, &m, flags);
            if (r >= 0) {
                if (!answered++)
                    namelen0 = m.msg_namelen;
                mflags |= m.msg_flags;
            }
        } else {
            r = real.recvfrom(c->fd, (char *)c->buf + got, c->n - got, flags,
                              got ? NULL : c->addr, got ? NULL : c->alen);
        }
        if (r > 0) {
            got += (size_t)r;
            if (c->op == OP_RECVMSG) {
                vec_advance(&v, (size_t)r);
                m.msg_name = NULL; /* the peer's address comes with the first part only */
                m.msg_namelen = 0;
                if (m.msg_controllen || (m.msg_flags & (MSG_CTRUNC | MSG_OOB)))
                    goto done; /* ancillary data ends a waitall read (descriptors passed) */
            }
            if (got >= total)
                goto done;
            continue;
        }
        if (r == 0) /* end of file (or nothing asked) */
            goto done;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            goto fail;
        if (*blocking < 0)
            *blocking = !caller_nonblock(c->fd);
        if (!*blocking)
            goto fail;
        if (!*deadline)
            *deadline = sock_deadline(c->fd, SO_RCVTIMEO);
        if (park_fd(c->fd, EPOLLIN, *deadline) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN; /* what a blocking socket says when SO_RCVTIMEO passes */
            goto fail;
        }
    }
done:
    ret = (ssize_t)got;
    goto out;
fail:
    ret = got ? (ssize_t)got : -1;
out:
    if (c->op == OP_RECVMSG) {
        if (answered) {
            c->msg->msg_namelen = namelen0;
            c->msg->msg_controllen = m.msg_controllen;
            c->msg->msg_flags = mflags & ~MSG_DONTWAIT;
        }
        vec_free(&v);
    }
    return ret;
}

/* A socket read that would block parks until readable. Returns -2 with the hint
 * corrected when the descriptor turns out not to be a socket (read/readv only). */
static ssize_t sock_read(struct rcall *c)
{
    uint64_t deadline = 0; /* 0 = not looked up yet */
    int blocking = -1;     /* -1 = not asked yet */
    if ((c->flags & MSG_WAITALL) && !(c->flags & MSG_PEEK) &&
        (c->op == OP_RECVFROM || c->op == OP_RECVMSG) && is_stream_now(c->fd))
        return sock_recv_waitall(c, &deadline, &blocking);
    int flags = (c->flags & ~MSG_WAITALL) | MSG_DONTWAIT;
    for (;;) {
        ssize_t r = sock_recv_once(c, flags);
        if (r >= 0)
            return r;
        if (errno == ENOTSOCK && (c->op == OP_READ || c->op == OP_READV)) {
            fd_kind_set(c->fd, K_OTHER); /* the number now names something else */
            return -2;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (blocking < 0)
            blocking = !caller_nonblock(c->fd);
        if (!blocking) {
            errno = EAGAIN;
            return -1;
        }
        if (!deadline)
            deadline = sock_deadline(c->fd, SO_RCVTIMEO);
        if (park_fd(c->fd, EPOLLIN, deadline) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN;
            return -1;
        }
    }
}

/* What is not a socket: pipes, FIFOs, eventfd, timerfd, ttys - and regular files, which
 * are always ready. Ready now: the real call (it does not block). Not ready: the
 * caller's non-blocking answer, or park until readable. */
static ssize_t other_read(struct rcall *c)
{
    uint64_t deadline = 0;
    for (;;) {
        if (ready_now(c->fd, POLLIN))
            return rcall_real(c);
        if (caller_nonblock(c->fd))
            return rcall_real(c); /* EAGAIN, or what came meanwhile */
        if (!deadline)
            deadline = sock_deadline(c->fd, SO_RCVTIMEO); /* a socket behind a stale hint */
        if (park_fd(c->fd, EPOLLIN, deadline) != 0) {
            if (errno == ETIMEDOUT) {
                errno = EAGAIN;
                return -1;
            }
            if (errno == EPERM)
                return rcall_real(c); /* epoll cannot wait for it: as libc, blocking */
            return -1;
        }
    }
}

static ssize_t do_read(struct rcall *c)
{
    if (!on_fiber() || (c->flags & MSG_DONTWAIT))
        return rcall_real(c);
    if (c->op == OP_READ && c->n == 0)
        return rcall_real(c); /* returns at once; recv(0) would eat a datagram */
    if (c->op == OP_READV) {
        size_t total = 0;
        for (int i = 0; i < c->iovcnt && c->iov; i++)
            total += c->iov[i].iov_len;
        if (total == 0 || c->iovcnt < 0)
            return rcall_real(c); /* as read(0); a bad count gets libc's EINVAL */
    }
    if (c->op == OP_RECVFROM || c->op == OP_RECVMSG || is_sock(fd_kind(c->fd))) {
        ssize_t r = sock_read(c);
        if (r != -2)
            return r;
    }
    return other_read(c);
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

/* ---- write side ------------------------------------------------------------------------------
 * A blocking write on a stream returns when every byte is queued; a datagram goes whole
 * or not at all, so the same loop serves both. Vectors are advanced on a private copy. */

enum wop { OP_WRITE, OP_WRITEV, OP_SENDTO, OP_SENDMSG };

struct wcall {
    enum wop               op;
    int                    fd, flags;
    const void            *buf;
    size_t                 n;
    const struct iovec    *iov;
    int                    iovcnt;
    const struct sockaddr *addr;
    socklen_t              alen;
    const struct msghdr   *msg;
};

static ssize_t wcall_real(const struct wcall *c)
{
    switch (c->op) {
    case OP_WRITE:   return real.write(c->fd, c->buf, c->n);
    case OP_WRITEV:  return real.writev(c->fd, c->iov, c->iovcnt);
    case OP_SENDTO:  return real.sendto(c->fd, c->buf, c->n, c->flags, c->addr, c->alen);
    case OP_SENDMSG: return real.sendmsg(c->fd, c->msg, c->flags);
    }
    return -1;
}

/* On a socket. Returns -2 with the hint corrected when fd turns out not to be one. */
static ssize_t sock_write(const struct wcall *c, unsigned kind)
{
    int flags = c->flags | MSG_DONTWAIT;
    if ((c->op == OP_WRITE || c->op == OP_WRITEV) && kind == K_SEQPACKET)
        flags |= MSG_EOR; /* what write(2) on a SOCK_SEQPACKET socket adds */
    struct vec v = { .v = NULL };
    struct msghdr m = { .msg_name = NULL };
    size_t total = c->n, done = 0;
    if (c->op == OP_WRITEV || c->op == OP_SENDMSG) {
        const struct iovec *src = c->op == OP_WRITEV ? c->iov : c->msg->msg_iov;
        int cnt = c->op == OP_WRITEV ? c->iovcnt : (int)c->msg->msg_iovlen;
        if (vec_init(&v, src, cnt) != 0)
            return -1;
        total = v.total;
        if (c->op == OP_SENDMSG)
            m = *c->msg;
        else
            m = (struct msghdr){ .msg_iov = NULL };
    }
    uint64_t deadline = 0;
    int blocking = -1;
    ssize_t ret;
    for (;;) {
        ssize_t r;
        if (v.v) {
            m.msg_iov = v.v + v.i;
            m.msg_iovlen = (size_t)(v.n - v.i);
            r = real.sendmsg(c->fd, &m, flags);
            if (r > 0) { /* ancillary data goes with the first bytes only */
                m.msg_control = NULL;
                m.msg_controllen = 0;
            }
        } else {
            r = real.sendto(c->fd, (const char *)c->buf + done, c->n - done, flags,
                            c->op == OP_SENDTO ? c->addr : NULL, c->op == OP_SENDTO ? c->alen : 0);
        }
        if (r >= 0) {
            done += (size_t)r;
            if (done >= total) {
                ret = (ssize_t)done;
                goto out;
            }
            if (v.v)
                vec_advance(&v, (size_t)r);
            if (r > 0)
                continue;
        } else if (errno == ENOTSOCK && done == 0 && (c->op == OP_WRITE || c->op == OP_WRITEV)) {
            fd_kind_set(c->fd, K_OTHER);
            ret = -2;
            goto out;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            ret = done ? (ssize_t)done : -1; /* libc reports the bytes it did send */
            goto out;
        }
        if (blocking < 0)
            blocking = !caller_nonblock(c->fd);
        if (!blocking) {
            errno = EAGAIN;
            ret = done ? (ssize_t)done : -1;
            goto out;
        }
        if (!deadline)
            deadline = sock_deadline(c->fd, SO_SNDTIMEO);
        if (park_fd(c->fd, EPOLLOUT, deadline) != 0) {
            if (errno == ETIMEDOUT)
                errno = EAGAIN;
            ret = done ? (ssize_t)done : -1;
            goto out;
        }
    }
out:
    vec_free(&v);
    return ret;
}

/* What fstat says: 'p' a pipe or FIFO, 's' a socket, 0 anything else. */
static int file_type(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    return S_ISFIFO(st.st_mode) ? 'p' : S_ISSOCK(st.st_mode) ? 's' : 0;
}

/*
 * What is not a socket. Ready now: the real call. A pipe reported writable has a free
 * slot of PIPE_BUF bytes or more, so a write of up to PIPE_BUF bytes completes without
 * blocking (and stays atomic); a longer one goes PIPE_BUF bytes per readiness, which a
 * blocking write of more than PIPE_BUF bytes may interleave with other writers anyway.
 * Other descriptors (a regular file, a tty) get the whole call once poll says writable.
 */
static ssize_t other_write(const struct wcall *c)
{
    size_t total = c->n;
    struct vec v = { .v = NULL };
    if (c->op == OP_WRITEV) {
        if (vec_init(&v, c->iov, c->iovcnt) != 0)
            return -1;
        total = v.total;
    }
    int chunked = 0;
    if (total > PIPE_BUF) {
        /* Worth a look at what the number names now: a pipe goes PIPE_BUF at a time, and a
         * socket behind a stale hint (its number was closed where the hook did not see it)
         * gets MSG_DONTWAIT - poll's "writable" does not promise room for a long write. */
        int t = file_type(c->fd);
        chunked = t == 'p';
        unsigned k;
        if (t == 's' && is_sock(k = kind_probe(c->fd))) {
            fd_kind_set(c->fd, k);
            ssize_t r = sock_write(c, k);
            if (r != -2) {
                vec_free(&v);
                return r;
            }
        }
    }
    size_t done = 0;
    uint64_t deadline = 0;
    ssize_t ret;
    for (;;) {
        if (ready_now(c->fd, POLLOUT)) {
            if (!chunked) {
                ret = wcall_real(c);
                goto out;
            }
            ssize_t r;
            size_t want = total - done < PIPE_BUF ? total - done : PIPE_BUF;
            if (v.v) { /* the next PIPE_BUF bytes of the vector */
                struct iovec part[IOV_STACK];
                int k = 0;
                size_t left = want;
                for (int i = v.i; i < v.n && left && k < IOV_STACK; i++) {
                    part[k].iov_base = v.v[i].iov_base;
                    part[k].iov_len = v.v[i].iov_len < left ? v.v[i].iov_len : left;
                    left -= part[k++].iov_len;
                }
                r = real.writev(c->fd, part, k);
            } else {
                r = real.write(c->fd, (const char *)c->buf + done, want);
            }
            if (r > 0) {
                done += (size_t)r;
                if (v.v)
                    vec_advance(&v, (size_t)r);
                if (done >= total) {
                    ret = (ssize_t)done;
                    goto out;
                }
                continue;
            }
            if (r < 0 && errno == EINTR && !done)
                continue;
            ret = done ? (ssize_t)done : r; /* EPIPE, ... as libc: the bytes so far */
            goto out;
        }
        if (caller_nonblock(c->fd)) {
            if (done) {
                ret = (ssize_t)done;
                goto out;
            }
            ret = wcall_real(c); /* EAGAIN, or what fits now */
            goto out;
        }
        if (!deadline)
            deadline = sock_deadline(c->fd, SO_SNDTIMEO);
        if (park_fd(c->fd, EPOLLOUT, deadline) != 0) {
            if (errno == EPERM && !done) {
                ret = wcall_real(c);
                goto out;
            }
            if (errno == ETIMEDOUT)
                errno = EAGAIN;
            ret = done ? (ssize_t)done : -1;
            goto out;
        }
    }
out:
    vec_free(&v);
    return ret;
}

static ssize_t do_write(const struct wcall *c)
{
    if (!on_fiber() || (c->flags & MSG_DONTWAIT))
        return wcall_real(c);
    unsigned kind = K_STREAM; /* send, sendto, sendmsg: a socket, or ENOTSOCK as libc */
    if (c->op == OP_WRITE || c->op == OP_WRITEV)
        kind = fd_kind(c->fd);
    if (is_sock(kind)) {
        ssize_t r = sock_write(c, kind);
        if (r != -2)
            return r;
    }
    return other_write(c);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    struct wcall c = { .op = OP_WRITE, .fd = fd, .buf = buf, .n = n };
    return do_write(&c);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct wcall c = { .op = OP_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt };
    return do_write(&c);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    struct wcall c = { .op = OP_SENDTO, .fd = fd, .flags = flags, .buf = buf, .n = n };
    return do_write(&c);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr,
               socklen_t alen)
{
    struct wcall c = { .op = OP_SENDTO, .fd = fd, .flags = flags, .buf = buf, .n = n,
                       .addr = addr.__sockaddr__, .alen = alen };
    return do_write(&c);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct wcall c = { .op = OP_SENDMSG, .fd = fd, .flags = flags, .msg = msg };
    return do_write(&c);
}

/* ---- connect and accept --------------------------------------------------------------------- */

/*
 * A blocking connect on a fiber: the socket is non-blocking for the one connect(2) call
 * (there is no per-call flag for it), and the fiber parks for the handshake.
 *   - SO_SNDTIMEO bounds the wait, then EINPROGRESS (socket(7)); a connect retried while
 *     the handshake is still going waits again and times out with EALREADY, as Linux's.
 *   - AF_UNIX: a listener whose backlog is full says EAGAIN to a non-blocking connect
 *     and makes a blocking one wait for room (unix(7)); nothing can be polled for that, so
 *     the fiber sleeps 1, 2, 4 ... 32 ms between tries until SO_SNDTIMEO (then EAGAIN).
 */
int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    const struct sockaddr *sa = addr.__sockaddr__;
    if (!on_fiber())
        return real.connect(fd, sa, len);
    int fl = real.fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_NONBLOCK))
        return real.connect(fd, sa, len);
    uint64_t deadline = 0, nap = 1000000;
    for (;;) {
        if (real.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return real.connect(fd, sa, len);
        int r = real.connect(fd, sa, len), e = errno;
        real.fcntl(fd, F_SETFL, fl);
        if (r == 0)
            return 0;
        if (!deadline)
            deadline = sock_deadline(fd, SO_SNDTIMEO);
        if (e == EAGAIN && sa && len >= sizeof(sa_family_t) && sa->sa_family == AF_UNIX) {
            uint64_t now = mono_ns();
            if (now >= deadline) {
                errno = EAGAIN;
                return -1;
            }
            fiber_sleep_until(deadline - now > nap ? now + nap : deadline);
            if (nap < 32000000)
                nap *= 2;
            continue;
        }
        if (e != EINPROGRESS && e != EALREADY && e != EINTR) {
            errno = e;
            return -1;
        }
        if (park_fd(fd, EPOLLOUT, deadline) != 0) {
            if (errno == ETIMEDOUT)
                errno = e == EALREADY ? EALREADY : EINPROGRESS;
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
}

/* accept has no per-call non-blocking flag: the listener is polled and accept4 called
 * when a connection is queued (see the top of this file for the race with acceptors in
 * other threads or processes). */
static int do_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (!on_fiber())
        return real.accept4(fd, addr, len, flags);
    uint64_t deadline = 0;
    for (;;) {
        if (ready_now(fd, POLLIN) || caller_nonblock(fd)) {
            int c = real.accept4(fd, addr, len, flags);
            if (c >= 0)
                fd_kind_set(c, K_UNKNOWN); /* a new file under that number */
            return c;
        }
        if (!deadline)
            deadline = sock_deadline(fd, SO_RCVTIMEO);
        if (park_fd(fd, EPOLLIN, deadline) != 0) {
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

/* ---- poll, select, epoll ---------------------------------------------------------------------
 * poll parks in the runtime's fiber_wait_fds: the descriptors' own registrations in the
 * thread's poller, re-armed at each park, so a number closed and reused for a new file is
 * waited on as the new file. ppoll's and pselect's signal mask applies to the first,
 * non-parking check only (fiber_hook.h). */

static int fiber_poll(struct pollfd *fds, nfds_t n, uint64_t deadline, const sigset_t *mask)
{
    if (mask) {
        static const struct timespec zero = { 0, 0 };
        int r = real.ppoll(fds, n, &zero, mask);
        if (r != 0)
            return r;
    }
    struct thr *t = thr_self();
    for (nfds_t i = 0; i < n; i++)
        reg_add(t, fds[i].fd, 1);
    int r = fiber_wait_fds(fds, n, deadline);
    int e = errno;
    for (nfds_t i = 0; i < n; i++)
        reg_add(t, fds[i].fd, -1);
    errno = e;
    return r;
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

/* fd_set bits by hand: FD_ISSET's checks stop at FD_SETSIZE, and select takes more. */
#define BITS_PER_WORD (8 * (int)sizeof(unsigned long))
static inline int bit_get(const fd_set *s, int fd)
{
    return s && (((const unsigned long *)s)[fd / BITS_PER_WORD] >> (fd % BITS_PER_WORD)) & 1;
}
static inline void bit_set(fd_set *s, int fd)
{
    ((unsigned long *)s)[fd / BITS_PER_WORD] |= 1ul << (fd % BITS_PER_WORD);
}
static inline void bits_zero(fd_set *s, int nfds)
{
    if (s)
        memset(s, 0, (size_t)(nfds + BITS_PER_WORD - 1) / BITS_PER_WORD * sizeof(unsigned long));
}

/* select as poll: the sets (nfds bits each, which may be more than FD_SETSIZE: Linux takes
 * any nfds, the caller's arrays being that large) become pollfds, the answer goes back. */
static int fiber_select(int nfds, fd_set *r, fd_set *w, fd_set *e, uint64_t deadline,
                        const sigset_t *mask)
{
    if (nfds < 0) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd stack_p[32], *p = stack_p;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++)
        n += bit_get(r, fd) || bit_get(w, fd) || bit_get(e, fd);
    if (n > 32 && !(p = malloc((size_t)n * sizeof *p))) {
        errno = ENOMEM;
        return -1;
    }
    int k = 0;
    for (int fd = 0; fd < nfds && k < n; fd++) {
        short ev = (short)((bit_get(r, fd) ? POLLIN : 0) | (bit_get(w, fd) ? POLLOUT : 0) |
                           (bit_get(e, fd) ? POLLPRI : 0));
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
        bits_zero(r, nfds);
        bits_zero(w, nfds);
        bits_zero(e, nfds);
        rc = 0;
        for (int i = 0; i < n; i++) {
            short ev = p[i].events, re = p[i].revents;
            if (r && (ev & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) { bit_set(r, p[i].fd); rc++; }
            if (w && (ev & POLLOUT) && (re & (POLLOUT | POLLERR))) { bit_set(w, p[i].fd); rc++; }
            if (e && (ev & POLLPRI) && (re & POLLPRI)) { bit_set(e, p[i].fd); rc++; }
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
 * runtime's poller (a set inside a set) and asks it again when woken. Any number of
 * fibers may wait on one set (the runtime wakes one per readiness). */
static int fiber_epoll(int ep, struct epoll_event *ev, int n, uint64_t deadline,
                       const sigset_t *mask)
{
    for (;;) {
        int r = mask ? real.epoll_pwait(ep, ev, n, 0, mask) : real.epoll_wait(ep, ev, n, 0);
        if (r != 0)
            return r;
        if (deadline != FIBER_FOREVER && mono_ns() >= deadline)
            return 0;
        if (park_fd(ep, EPOLLIN, deadline) != 0)
            return errno == ETIMEDOUT ? 0 : -1;
        mask = NULL;
    }
}

int epoll_wait(int ep, struct epoll_event *ev, int n, int ms)
{
    if (ms == 0 || !on_fiber())
        return real.epoll_wait(ep, ev, n, ms);
    return fiber_epoll(ep, ev, n, ms_deadline(ms), NULL);
}

int epoll_pwait(int ep, struct epoll_event *ev, int n, int ms, const sigset_t *mask)
{
    if (ms == 0 || !on_fiber())
        return real.epoll_pwait(ep, ev, n, ms, mask);
    return fiber_epoll(ep, ev, n, ms_deadline(ms), mask);
}

int epoll_pwait2(int ep, struct epoll_event *ev, int n, const struct timespec *t,
                 const sigset_t *mask)
{
    if ((t && t->tv_sec == 0 && t->tv_nsec == 0) || !on_fiber())
        return real.epoll_pwait2(ep, ev, n, t, mask);
    if (t && !ts_valid(t)) {
        errno = EINVAL;
        return -1;
    }
    return fiber_epoll(ep, ev, n, t ? after_ns(ts_ns(t)) : FIBER_FOREVER, mask);
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

/* The clocks a fiber sleeps on: every clock the kernel sleeps on that moves with time
 * (CPU-time clocks, the _ALARM clocks that need CAP_WAKE_ALARM and clocks the kernel does
 * not sleep on go to libc). A relative sleep is the same length on each; an absolute
 * time on one of them becomes a monotonic deadline when the call is made (a later step
 * of CLOCK_REALTIME or CLOCK_TAI does not move it, as it would a thread's sleep). */
int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    if (!on_fiber() || (clk != CLOCK_MONOTONIC && clk != CLOCK_REALTIME &&
                        clk != CLOCK_BOOTTIME && clk != CLOCK_TAI))
        return real.clock_nanosleep(clk, flags, req, rem);
    if (!req)
        return EFAULT;
    if (!ts_valid(req))
        return EINVAL;
    uint64_t deadline;
    if (flags & TIMER_ABSTIME) {
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

/* ---- descriptors closed and replaced ------------------------------------------------------
 * A fiber of this thread parked on the number wakes with EBADF (fiber_fd_forget), one of
 * another thread too (close_remote above), and the kind hint is dropped. */

int close(int fd)
{
    if (fd < 0)
        return real.close(fd);
    fd_kind_set(fd, K_UNKNOWN);
    if (rt_ok) {
        fiber_fd_forget(fd);
        if (parked_elsewhere(fd))
            return close_remote(fd);
    }
    pending_end(fd, 0); /* the program's close of a number a placeholder held */
    return real.close(fd);
}

/* dup2/dup3 replace the file at nfd: the same for nfd's waiters as a close (of this thread;
 * see close_remote for others). Only when the call will succeed (old is open). */
static void replaced(int old, int nfd)
{
    if (old == nfd || nfd < 0 || real.fcntl(old, F_GETFD) < 0)
        return;
    fd_kind_set(nfd, K_UNKNOWN);
    if (rt_ok)
        fiber_fd_forget(nfd);
    pending_end(nfd, 0);
}

int dup2(int old, int nfd)
{
    replaced(old, nfd);
    return real.dup2(old, nfd);
}

int dup3(int old, int nfd, int flags)
{
    replaced(old, nfd);
    return real.dup3(old, nfd, flags);
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
