/*
 * fiber_hook.h - unmodified blocking code on fibers. This header is the manual.
 *
 * What it does
 *   libfiber_hook interposes the blocking libc calls on sockets and pipes. Called on a
 *   fiber, a call that would block parks the fiber in the runtime's poller (or timer
 *   heap) instead of blocking the thread, so every other fiber of the thread keeps
 *   running: existing blocking code - libcurl's easy API, a database driver - becomes
 *   concurrent without a line changed. Called outside a fiber, or on a regular file, a
 *   call goes straight to libc (found with dlsym(RTLD_NEXT)).
 *
 *   Interposed: read write readv writev recv recvfrom recvmsg send sendto sendmsg
 *   connect accept accept4 poll ppoll select pselect epoll_wait epoll_pwait nanosleep
 *   clock_nanosleep usleep sleep close dup dup2 dup3 fcntl fcntl64 ioctl(FIONBIO)
 *   getaddrinfo; and, so that the hook knows each descriptor from its birth, socket
 *   socketpair pipe pipe2 eventfd timerfd_create epoll_create epoll_create1. Also the
 *   glibc names that reach the same code: __read __write __close __connect __send
 *   __poll __select __nanosleep __fcntl __dup2 and the _FORTIFY_SOURCE entry points
 *   __read_chk __recv_chk __recvfrom_chk __poll_chk __ppoll_chk.
 *
 * Two ways in
 *   - Preload: LD_PRELOAD=libfiber_hook.so ./program. The program links the fiber
 *     runtime (statically is fine) and exports its symbols so that the preloaded library
 *     finds them: link it with -Wl,--export-dynamic-symbol=fiber_* (the CMake helper
 *     fiber_hook_preloadable(target) does it). Without them the hooks pass every call
 *     through and fiber_hook_enabled() says 0.
 *   - Linked: link libfiber_hook.a (CMake target fiber_hook) with the runtime; it exports
 *     the interposed names from the executable so shared libraries (libcurl) bind to
 *     them. The same code, nothing else to do.
 *
 * Semantics kept
 *   - O_NONBLOCK is the caller's: a descriptor the caller made non-blocking gets libc's
 *     behaviour (EAGAIN) on a fiber too. The hook makes a blocking socket or pipe
 *     non-blocking underneath the first time a fiber blocks on it, remembers that the
 *     caller did not ask for it, and F_GETFL reports the caller's flags. A plain thread
 *     that later uses that descriptor still blocks (the hook waits in poll for it).
 *     O_NONBLOCK lives on the open file description: a pipe shared with another process
 *     (an inherited stdin) sees it too while this process runs.
 *   - SO_RCVTIMEO / SO_SNDTIMEO bound a parked read or write as they bound a blocked one
 *     (then EAGAIN; EINPROGRESS for connect); poll's, select's and the sleeps' timeouts
 *     are deadlines on CLOCK_MONOTONIC (clock_nanosleep on CLOCK_REALTIME converts).
 *   - Partial transfers as libc: a blocking write or send on a stream returns when all
 *     bytes are queued, or with the count so far when a timeout or an error cuts it short.
 *   - close() from another fiber wakes a fiber parked on that descriptor with EBADF.
 *   - getaddrinfo on a fiber runs on the runtime's offload pool (fiber_offload) while the
 *     fiber is parked; if no pool thread can be had it runs on the thread, as before.
 *   - epoll_wait/epoll_pwait on a fiber (a program's own event loop) park on the epoll
 *     set itself, which the runtime's poller watches like any descriptor.
 *
 * Differences (by design)
 *   - A parked fiber is not interrupted by a signal: a signal handler runs on the thread,
 *     and the call continues as with SA_RESTART (no EINTR); ppoll's and pselect's signal
 *     mask applies to the first, non-parking check only. A parked call is not a
 *     pthread_cancel point.
 *   - The runtime's rule holds for read/write-like calls: one fiber reading and one
 *     writing per descriptor at a time (a second aborts, naming the descriptor).
 *     poll/select wait through a poll set of the hook's own (one epoll instance per
 *     thread, one dispatcher fiber), so any number of fibers may poll one descriptor.
 *   - A descriptor closed behind the hook's back (libc-internal close, a raw syscall)
 *     keeps its remembered state until its number is reused by socket, accept, pipe, dup
 *     or close through the hook.
 */
#ifndef FIBER_HOOK_H
#define FIBER_HOOK_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the hooks are in the process and found the fiber runtime (so blocking calls on
 * fibers park), 0 when they can only pass calls through. */
int fiber_hook_enabled(void);

/* "linked" or "preload": how the hook library came into the process. */
const char *fiber_hook_mode(void);

#ifdef __cplusplus
}
#endif

#endif /* FIBER_HOOK_H */
