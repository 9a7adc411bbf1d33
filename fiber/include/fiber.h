/*
 * fiber.h - the fiberbench fiber runtime. This header is the manual.
 *
 * Model
 *   A fiber is a function running on its own small stack, switched in user space by
 *   an assembly context switch (fiber/src/switch_*.S). Each thread that calls
 *   fiber_spawn() owns one scheduler: a FIFO run queue, one timer heap for every sleep
 *   and I/O deadline, and one epoll poller. Fibers never migrate between threads.
 *   Several threads may each run their own scheduler at the same time.
 *
 * Threads
 *   A fiber, a wait queue and a semaphore belong to one thread's scheduler: join,
 *   detach, wake, release and wait on them only from that thread. From another thread,
 *   reach them through fiber_sched_self()'s handle: fiber_waitq_wake_one_on(),
 *   fiber_sem_release_on(), fiber_spawn_on(), fiber_sched_post() ("Other threads and
 *   signals" below). Waking another thread's waiters directly, or waiting on its queue,
 *   aborts with a message when the runtime can see it (the queue has a waiter); with
 *   no waiter it is a data race that no check can see.
 *
 * Blocking calls stall the thread
 *   Fibers are switched only at the calls of this API. A blocking system or libc call
 *   made from a fiber - getaddrinfo, read(2) of a regular file or of a blocking socket,
 *   sleep(3), waiting on a pthread mutex or condition variable, a synchronous DNS or
 *   TLS library call on a blocking fd - stalls EVERY fiber of that thread until it
 *   returns. Use the fiber_ I/O calls on nonblocking descriptors, hand the call to the
 *   offload pool (fiber_offload(), fiber_getaddrinfo(), fiber_pread()), or link the
 *   hooks library, which does that for unmodified code.
 *
 * Floating-point state
 *   Each fiber has its own rounding mode, exception masks, DAZ/FZ and x87 control word
 *   (a new fiber starts with the psABI defaults). They die with the fiber, as a
 *   thread's do: a fiber may return with them changed (fesetround without restoring),
 *   and its joiner goes on with its own, however the join was served. All this is
 *   x86-64's strict build; in the lean one (FIBER_LEAN_FP) the words are the thread's,
 *   and so is FPCR on aarch64 (AAPCS64 treats its modes as global). The exception
 *   flags (fetestexcept) are another matter: on most CPUs they belong to the thread,
 *   and any call that may switch fibers (fiber_yield, fiber_sleep_ns, the fiber I/O and
 *   wait calls, a hooked blocking call) may return with flags other fibers raised or
 *   cleared; on AMD CPUs they travel with the fiber. Save them around such a call
 *   (fegetexceptflag / fesetexceptflag) if you test them. Why: fiber_context.h,
 *   switch_x86_64.S.
 *
 * Handles
 *   A fiber_t is valid from fiber_spawn() until fiber_join() returns for it, or, for a
 *   detached fiber, until it returns (a detached fiber's handle is best not kept at
 *   all). Its record and stack are then reused by a later fiber. A fiber_t carries a
 *   22-bit tag that moves on each time its record starts a fiber, so joining or
 *   detaching a stale handle whose record runs another fiber aborts ("stale fiber_t")
 *   instead of acting on the wrong fiber. The check's limits: the tag wraps, so a handle
 *   kept across a multiple of 4,194,304 reuses of its record passes it; after
 *   fiber_pool_trim() or thread exit the record may be unmapped, and a stale handle then
 *   faults, or (a new record mapped at the same address, with a random first tag)
 *   passes with odds of 1 in 4,194,304. fiber_name() and fiber_id() do not check.
 *   fiber_self() returns the same value as the fiber's fiber_spawn() did. A fiber_t is
 *   not a pointer to dereference: its low and high bits hold the tag.
 *
 * Fork
 *   fork() from a thread that runs fibers is supported for the forking thread: the child
 *   gets an epoll instance and a wake-up eventfd of its own (pthread_atfork handlers), so
 *   its I/O waits and fiber_close() calls do not touch the parent's registrations, and
 *   its fibers carry on (a copy of each). Calls that the parent's offload pool was
 *   running or had queued for that thread end in the child with ECANCELED (the child has
 *   no pool threads; the parent gets its results as usual). Schedulers of the parent's
 *   other threads do not exist in the child: posting to them there fails with EPIPE.
 *   As always after fork() in a threaded process, the child should stick to
 *   async-signal-safe calls if another thread might have held a libc lock (malloc's)
 *   at the time; a child that goes on using the runtime relies on glibc making malloc
 *   and stdio usable after fork, as it does.
 *
 * Stacks and signals
 *   Each stack has a 64 KiB guard below it (one page, where pages are larger) and other
 *   fibers' stacks mapped right under that, with each fiber's record at the top of its
 *   stack. A frame that runs past the end of its stack faults in the guard as long as
 *   it touches memory at most 64 KiB below the stack's end before it touches anything
 *   further down: true of every frame smaller than 64 KiB, and of code compiled with
 *   -fstack-clash-protection (this project's build sets it), which probes large frames
 *   page by page (every 4 KiB on x86-64, 64 KiB on aarch64). An unprobed frame of more
 *   than 64 KiB (a big local array, alloca or VLA in code built without the flag) can
 *   still step over the guard into a neighbour's stack silently. The guard costs address
 *   space (128 KiB of it per default stack) and page-table entries, not memory.
 *   On the first scheduler the runtime installs, process-wide, a SIGSEGV handler
 *   (SA_ONSTACK | SA_SIGINFO) that turns a fault in the running fiber's guard into
 *   "fiber: stack overflow in fiber N 'name'" and abort(); any other SIGSEGV - a fault
 *   elsewhere, or one sent with kill(2)/raise(3) - goes to the handler that was
 *   installed before it, or gets the default action (the process dies of SIGSEGV).
 *   Each thread that makes a scheduler also gets a 64 KiB alternate signal stack
 *   (sigaltstack), unless it already has one of at least 16 KiB; it is freed at thread
 *   exit. A handler the program installs for SIGSEGV later replaces the runtime's
 *   (overflow reports are then the program's to make); install yours first and the
 *   runtime chains to it.
 *
 * Time
 *   Every time in this API is nanoseconds on CLOCK_MONOTONIC. Deadlines are absolute
 *   (compare fiber_now_ns()); FIBER_FOREVER means "no deadline".
 *
 * Errors
 *   Calls that can fail for a reason outside the program's control return -1 (or NULL)
 *   and set errno, like the system calls they wrap. Misuse - joining a fiber twice,
 *   joining oneself, yielding outside a fiber - is a bug, not an error: the runtime
 *   prints what was wrong and where on stderr, then aborts.
 */
#ifndef FIBER_H
#define FIBER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct addrinfo;
struct pollfd;

#ifdef __cplusplus
extern "C" {
#endif

/* No deadline. */
#define FIBER_FOREVER UINT64_MAX

/* Default usable stack size of a fiber, not counting its guard. */
#define FIBER_DEFAULT_STACK_SIZE (64u * 1024u)

typedef struct fiber fiber_t;

/* Options for fiber_spawn_ex(). Zero-initialise and set what you need. */
typedef struct fiber_attr {
    size_t      stack_size; /* usable bytes; 0 = FIBER_DEFAULT_STACK_SIZE; rounded up to pages */
    const char *name;       /* shown in overflow and misuse messages; copied (max 31 chars) */
    int         detached;   /* nonzero: nobody joins it; it is reclaimed as soon as it returns */
} fiber_attr_t;

/*
 * Creates a fiber that will run fn(arg) on the calling thread's scheduler, and puts it
 * at the tail of the run queue. It first runs when the scheduler gets to it (inside
 * fiber_run(), fiber_join() or when the current fiber yields or blocks).
 * The fiber is joinable: exactly one fiber_join() must reclaim it, unless it is detached.
 * Returns NULL with errno ENOMEM (no memory or no more mappings: vm.max_map_count) or
 * EINVAL (bad attribute).
 */
fiber_t *fiber_spawn(void (*fn)(void *), void *arg);

/* As fiber_spawn(), with a stack size, a name and detached state. attr may be NULL. */
fiber_t *fiber_spawn_ex(void (*fn)(void *), void *arg, const fiber_attr_t *attr);

/*
 * Marks a joinable fiber as detached: it is reclaimed when it returns (at once, if it
 * already has); f is not valid after that. Aborts on a fiber that is already detached
 * or being joined, or on a stale handle.
 */
void fiber_detach(fiber_t *f);

/*
 * Waits until f has returned, then frees it. From a fiber, the caller is parked; from
 * the thread outside any fiber, the scheduler is run until f has returned.
 * Returns 0; f is not valid after that. Aborts on misuse: f detached, f already joined
 * (or being joined), f being the caller, f belonging to another thread's scheduler, or
 * f stale (its record since reused by another fiber; see "Handles" above).
 * Returns -1 with errno EDEADLK if, outside a fiber, the scheduler runs out of work
 * (every fiber blocked with no timer, no I/O and no offloaded call) before f returns;
 * never once fiber_sched_self() has been called on this thread.
 */
int fiber_join(fiber_t *f);

/* Puts the calling fiber at the tail of the run queue and runs the next one.
 * Aborts when called outside a fiber. */
void fiber_yield(void);

/* The calling fiber (the same handle its fiber_spawn() returned), or NULL on a thread
 * outside any fiber. */
fiber_t *fiber_self(void);

/* A fiber's name ("" if none was given), and its id: unique in the process, nonzero,
 * handed out in the order of the first fiber_id() call for each fiber. */
const char *fiber_name(const fiber_t *f);
uint64_t    fiber_id(const fiber_t *f);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t fiber_now_ns(void);

/* Parks the calling fiber for at least ns nanoseconds (0 behaves like fiber_yield()).
 * Aborts when called outside a fiber. */
void fiber_sleep_ns(uint64_t ns);

/* Parks the calling fiber until fiber_now_ns() >= deadline_ns (a past deadline yields).
 * Aborts when called outside a fiber. */
void fiber_sleep_until(uint64_t deadline_ns);

/*
 * Runs the calling thread's scheduler until no fiber is left (every fiber has returned;
 * joinable ones that nobody joined stay allocated until joined). With no fiber at all it
 * returns 0 at once - also after fiber_sched_self(): a thread that is to wait for work
 * from other threads (fiber_spawn_on(), fiber_sched_post()) calls fiber_sched_serve().
 * Returns 0; -1 with errno EDEADLK when fibers remain but none can ever run again (all
 * parked on wait queues with no deadline; not reported once fiber_sched_self() has been
 * called on this thread, since another thread may still wake them); -1 with errno from
 * epoll on a poller failure.
 * Aborts when called from inside a fiber.
 */
int fiber_run(void);

/* For this thread's scheduler: when the next timer is at most ns away, poll without
 * sleeping instead of letting the CPU halt. Under a hypervisor a halted vCPU can take
 * tens of microseconds to wake, which shows as timer lateness; spinning costs a busy
 * core for that window. 0 (the default) never spins; FIBER_FOREVER spins whenever a
 * timer is pending (with no timer pending the scheduler still sleeps in epoll). */
void fiber_sched_spin(uint64_t ns);

/* For this thread's scheduler: while it is busy (fibers ready between two rounds) or
 * spinning (fiber_sched_spin), it polls for I/O (epoll_wait with no timeout) at most
 * every ns instead of between every two rounds, and in between only expires timers. A
 * busy scheduler whose rounds are short (one or two fibers woken per timer) then pays
 * one system call per ns rather than one per round, and notices I/O up to ns later.
 * 0 (the default) polls between every two rounds. A scheduler with nothing to run
 * and no timer within its spin window still sleeps in epoll as before. */
void fiber_sched_io_interval(uint64_t ns);

/* Gives the pages of the calling fiber's stack below its current frame back to the
 * kernel (MADV_DONTNEED; they read as zeros if touched again). For a long-lived fiber
 * that once ran deep and now waits shallow. Returns the bytes released (0 if none).
 * Aborts outside a fiber. */
size_t fiber_stack_trim(void);

/* How many fibers of this thread's scheduler have not yet returned. */
size_t fiber_live_count(void);

/* ---- I/O ---------------------------------------------------------------------------
 * These take nonblocking file descriptors (O_NONBLOCK; fiber_socket_nonblock() sets it)
 * and park the calling fiber, not the thread, while the fd is not ready. They try the
 * system call first, so a ready fd costs one system call. Each takes an absolute
 * deadline and fails with errno ETIMEDOUT when it passes. Called outside a fiber they
 * abort. Any number of fibers may wait on one fd in each direction (several acceptors on
 * one listener, several readers of one pipe): readiness wakes the one that has waited
 * longest, hang-up and error wake all of them (the reader side also on the peer's
 * shutdown, EPOLLRDHUP). A fiber may wait for both directions at once; either wakes it.
 * Each park costs one epoll_ctl (it arms the fd's registration, one-shot), besides the
 * epoll_wait that reports it. A descriptor closed with plain close(2) - by a library
 * that closes its own sockets - and its number reused for a new file works: the new file
 * is registered at its first park, and events of the old file (kept open by a dup or a
 * forked child) never wake a fiber waiting on the new one. fiber_close() (or
 * fiber_fd_forget() before close) is still how a waiting fiber learns that its fd is
 * gone (EBADF) and how the poller drops its registration at once: also a fiber that
 * readiness has already woken but that has not run yet gets EBADF, rather than
 * retrying its call on whatever file the number names by then.
 */

/* Sets O_NONBLOCK on fd. Returns 0, or -1 with errno. */
int fiber_socket_nonblock(int fd);

/* Waits until fd is ready for events (EPOLLIN and/or EPOLLOUT) or the deadline passes.
 * Returns the ready events - EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP and, when the peer has
 * shut down its writing side, EPOLLRDHUP (always with EPOLLIN: reading returns the end
 * of file) - or -1 with errno ETIMEDOUT, EBADF (fd not open, or fiber_close()d while
 * waiting) or EINVAL (events asks for neither direction). */
int fiber_wait_fd(int fd, uint32_t events, uint64_t deadline_ns);

/* As fiber_wait_fd(), for a caller that has just seen EAGAIN on fd: parks at once,
 * without the poll(2) that fiber_wait_fd() makes first. Readiness that is already there
 * is still seen (the registration is level-triggered), one scheduler round later. */
int fiber_wait_fd_after_eagain(int fd, uint32_t events, uint64_t deadline_ns);

/*
 * poll(2) for a fiber: waits until one of the n entries of fds is ready or the deadline
 * passes, parking the fiber (one park, one registration per fd and direction) instead of
 * the thread. Fills each entry's revents as poll(2) does and returns how many entries
 * have nonzero revents, 0 when the deadline passed first (like poll's timeout, not
 * ETIMEDOUT), or -1 with errno (ENOMEM, EINVAL). Entries with fd < 0 are ignored.
 * What wakes the fiber: POLLIN/POLLRDNORM/POLLRDHUP readiness, POLLOUT/POLLWRNORM
 * readiness, and hang-up and error on those fds; POLLPRI, and entries asking for neither
 * reading nor writing, are reported when the call looks (at the start, after each
 * wake-up and at the deadline) but do not wake it by themselves. An fd that was
 * fiber_close()d while the call waited is reported POLLNVAL, even if its number names a
 * new file by then. With no fd to wait for it sleeps until the deadline (for ever with
 * FIBER_FOREVER, as poll(2) with no fds would). Aborts outside a fiber.
 */
int fiber_wait_fds(struct pollfd *fds, size_t n, uint64_t deadline_ns);

/* Like read(2): returns 1..n bytes, 0 at end of file, or -1 with errno. */
ssize_t fiber_read(int fd, void *buf, size_t n, uint64_t deadline_ns);

/* Writes all n bytes. Returns n, or -1 with errno (EPIPE, ETIMEDOUT, ...); on failure
 * an unknown prefix may have been written. */
ssize_t fiber_write(int fd, const void *buf, size_t n, uint64_t deadline_ns);

/* Like accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: the new fd is nonblocking.
 * addr and len may be NULL. Returns the fd or -1 with errno (EMFILE is returned, not
 * waited on: the caller decides how to back off). */
int fiber_accept(int fd, struct sockaddr *addr, socklen_t *len, uint64_t deadline_ns);

/* Like connect(2) on a nonblocking socket, waiting for the handshake.
 * Returns 0 or -1 with errno (ECONNREFUSED, ETIMEDOUT, ...). */
int fiber_connect(int fd, const struct sockaddr *addr, socklen_t len, uint64_t deadline_ns);

/* Forgets the poller state for fd and closes it. Every fiber waiting on it - parked, or
 * woken by its readiness but not yet run - gets EBADF. Returns close(2)'s result. */
int fiber_close(int fd);

/* Forgets the poller state for fd without closing it. */
void fiber_fd_forget(int fd);

/* ---- Wait queues and semaphores ---------------------------------------------------
 * A wait queue is a FIFO of parked fibers. It belongs to one scheduler (thread).
 */
typedef struct fiber_waitq {
    struct fiber *head, *tail;
} fiber_waitq_t;

#define FIBER_WAITQ_INIT { 0, 0 }

/* Parks the calling fiber on q until woken or the deadline passes.
 * Returns 0 when woken, -1 with errno ETIMEDOUT. Aborts outside a fiber. */
int fiber_waitq_wait(fiber_waitq_t *q, uint64_t deadline_ns);

/* Makes the first (or every) waiter of q runnable. Returns how many were woken.
 * May be called outside a fiber, on the same thread. */
int fiber_waitq_wake_one(fiber_waitq_t *q);
int fiber_waitq_wake_all(fiber_waitq_t *q);

/* A counting semaphore for fibers of one scheduler (e.g. K shared "connections"). */
typedef struct fiber_sem {
    long          count;
    fiber_waitq_t waiters;
} fiber_sem_t;

#define FIBER_SEM_INIT(n) { (n), FIBER_WAITQ_INIT }

/* Takes one unit, parking until one is free or the deadline passes.
 * Returns 0, or -1 with errno ETIMEDOUT. Waiters are served in FIFO order. */
int fiber_sem_acquire(fiber_sem_t *s, uint64_t deadline_ns);

/* Gives one unit back, waking the first waiter if any. */
void fiber_sem_release(fiber_sem_t *s);

/* ---- Other threads and signals ------------------------------------------------------
 * Everything above acts on the calling thread's scheduler only. These calls are how
 * another thread reaches a scheduler: they queue a message in the target's inbox and
 * wake its poller (an eventfd in its epoll set); the target runs the message on its own
 * thread, from its scheduler loop, outside any fiber. Messages from one thread run in
 * the order they were posted. None of them is async-signal-safe (they allocate): a
 * signal reaches fibers through fiber_signal_wait().
 */

/* A scheduler as seen from other threads. */
typedef struct fiber_sched fiber_sched_t;

/*
 * The calling thread's scheduler (made if need be), ready to be posted to from any
 * thread. Pass it to the threads that will wake this one. Once the thread has exited,
 * every call that posts to it fails with EPIPE (the handle stays safe to use for ever;
 * its 22-bit tag, as a fiber_t's, tells it from a later thread's scheduler). A request
 * posted while the thread is exiting may be accepted (0) and then dropped unrun, its
 * resources freed: the thread runs no more fibers.
 * Once it has been handed out, fiber_run() and fiber_join() no longer fail with
 * EDEADLK when every fiber is parked: another thread may still wake them, so they wait.
 * Returns NULL with errno ENOMEM, or EMFILE/ENFILE (no descriptor for the eventfd).
 */
fiber_sched_t *fiber_sched_self(void);

/* From any thread: runs fn(arg) on s's thread, outside any fiber (fn must not park; it
 * may spawn fibers, wake wait queues, release semaphores). Returns 0 once queued, or -1
 * with errno ENOMEM (nothing was queued), EPIPE (s's thread has exited) or EINVAL (fn
 * NULL). */
int fiber_sched_post(fiber_sched_t *s, void (*fn)(void *), void *arg);

/* From any thread: creates a detached fiber running fn(arg) on s's thread, with the
 * default stack. The caller provides the stack (mapped, or reused from those s gave
 * back), so the target cannot fail to create the fiber; the target runs it on a stack of
 * its own pool when it has one and keeps the one sent for a later request, so a steady
 * flow of requests maps nothing. Returns 0, or -1 with errno ENOMEM (no memory or
 * mappings), EPIPE (s's thread has exited) or EINVAL. */
int fiber_spawn_on(fiber_sched_t *s, void (*fn)(void *), void *arg);

/* Runs the calling thread's scheduler as fiber_run() does, but when no fiber is left it
 * waits for other threads' requests instead of returning; it returns 0 once
 * fiber_sched_stop() has been called for this scheduler and no fiber is left (a stop
 * asks for a graceful end: fibers still running are not interrupted). A stop that came
 * before the call makes it return once no fiber is left. Publishes the scheduler (as
 * fiber_sched_self()). Returns -1 with errno ENOMEM/EMFILE (no scheduler or eventfd) or
 * a poller failure's. Aborts when called from inside a fiber. For a worker thread:
 *     *slot = fiber_sched_self(); (hand it out)   fiber_sched_serve();  */
int fiber_sched_serve(void);

/* From any thread (or a fiber of s itself): makes s's fiber_sched_serve() return once no
 * fiber is left. Returns 0 once queued, or -1 with errno ENOMEM or EPIPE. */
int fiber_sched_stop(fiber_sched_t *s);

/* From any thread: fiber_waitq_wake_one/_all(q) or fiber_sem_release(sem), run on s's
 * thread, the one that owns q or sem. Return 0 once queued, or -1 with errno ENOMEM or
 * EPIPE. q and sem must stay valid until the target has run the request. */
int fiber_waitq_wake_one_on(fiber_sched_t *s, fiber_waitq_t *q);
int fiber_waitq_wake_all_on(fiber_sched_t *s, fiber_waitq_t *q);
int fiber_sem_release_on(fiber_sched_t *s, fiber_sem_t *sem);

/*
 * Parks the calling fiber until one of the signals in set is delivered to the process,
 * or the deadline passes. Returns the signal number, or -1 with errno (ETIMEDOUT, or
 * the errno of signalfd(2)). Each signal is taken by one waiter.
 * It works through a signalfd: the signals must be blocked in EVERY thread of the
 * process, or the kernel delivers them to a thread that does not block them (default
 * action or handler) and the fiber never sees them. Block them in main() before any
 * thread starts (threads inherit the mask): sigprocmask(SIG_BLOCK, &set, NULL). This
 * call blocks them on its own thread too, and they stay blocked there. The offload
 * pool's threads block every signal. Aborts outside a fiber.
 */
int fiber_signal_wait(const sigset_t *set, uint64_t deadline_ns);

/* ---- Blocking calls: the offload pool ---------------------------------------------
 * A fiber that makes a blocking system call (getaddrinfo, read(2) of a regular file, a
 * blocking socket, sleep(3), a mutex held by another thread...) stalls its whole thread:
 * no other fiber of that thread runs until the call returns. Use the fiber_ calls
 * (sockets), hand the call to the offload pool (below), or link the hooks library, which
 * does this for unmodified code.
 * The pool is process-wide: up to 8 threads by default, started when a job finds none
 * idle and ended after 10 s without work.
 */

/* Runs fn(arg) on a thread of the runtime's offload pool and parks the calling fiber
 * until fn returns; other fibers of this thread run meanwhile. Outside a fiber, calls
 * fn(arg) directly. Returns 0, or an errno value (ENOMEM; EAGAIN when no pool thread
 * could be started; EMFILE when this thread's scheduler has no eventfd and cannot make
 * one; ECANCELED in a forked child for a call that the parent's pool had queued or was
 * running at fork() - arg is the caller's again, in whatever state the copy was).
 * fn runs on another thread: it must not call fiber functions. */
int fiber_offload(void (*fn)(void *arg), void *arg);

/*
 * As fiber_offload(), giving up at deadline_ns. On ETIMEDOUT the job owns arg: a call
 * in progress cannot be stopped, so it runs on and, when fn returns, cleanup(arg) runs
 * on the pool thread; a call still queued is never made, and only cleanup(arg) runs, on
 * the pool thread when it reaches the job (cleanup may be NULL). On 0, fn has returned,
 * cleanup is NOT called, and arg is the caller's again. So arg must not live on the
 * caller's stack unless the deadline is FIBER_FOREVER. Returns 0, ETIMEDOUT, or as
 * fiber_offload().
 */
int fiber_offload_until(void (*fn)(void *arg), void (*cleanup)(void *arg), void *arg,
                        uint64_t deadline_ns);

/* Sets the most threads the offload pool may run at once (0 = the default, 8; at most
 * 1024). Threads already running above a lowered limit finish their jobs and stay
 * until idle. */
void fiber_offload_set_threads(unsigned n);

/* getaddrinfo(3) on the offload pool, with a deadline. Returns what getaddrinfo returns
 * (0, or EAI_* with *res untouched); at the deadline EAI_SYSTEM with errno ETIMEDOUT
 * (the lookup finishes in the background and is freed there). Free *res with
 * freeaddrinfo(). Without a pool thread the lookup runs on the calling thread. */
int fiber_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res, uint64_t deadline_ns);

/* pread(2)/pwrite(2) on the offload pool, for regular files (which epoll cannot wait
 * for: their reads block the thread). Return as pread/pwrite (-1 with errno). No
 * deadline: buf is the caller's until the call is done. Without a pool thread the call
 * runs on the calling thread. */
ssize_t fiber_pread(int fd, void *buf, size_t n, off_t off);
ssize_t fiber_pwrite(int fd, const void *buf, size_t n, off_t off);

/* ---- Introspection ------------------------------------------------------------------ */

/* "madvise" when guard pages are installed with MADV_GUARD_INSTALL (no extra mapping per
 * stack), "mprotect" when each guard costs a mapping (vm.max_map_count caps the count),
 * "unknown" before the first guarded stack. The environment variable FIBER_GUARD=mprotect,
 * read at the first guarded stack, forces mprotect even where madvise works. */
const char *fiber_guard_mode(void);

/* Stacks given back by finished fibers and kept in this thread's pool for reuse. Stacks
 * are mapped in batches (4, 8, ... up to 64 at a time, the guards of a batch installed
 * by one process_madvise call where the kernel allows); the not-yet-used rest of a batch
 * is untouched memory and is not counted here. */
size_t fiber_pool_count(void);

/* Unmaps every pooled stack of this thread, and the unused rest of its batches. */
void fiber_pool_trim(void);

#ifdef __cplusplus
}
#endif

#endif /* FIBER_H */
