/*
 * fiber_hook.h - unmodified blocking code on fibers. This header is the manual.
 *
 * What it does
 *   libfiber_hook interposes the blocking libc calls. Called on a fiber, a call that would
 *   block parks the fiber in the runtime's poller (or timer heap) instead of blocking the
 *   thread, so every other fiber of the thread keeps running: existing blocking code -
 *   libcurl's easy API, a database driver - becomes concurrent without a line changed.
 *   Called outside a fiber, every call goes straight to libc (found with
 *   dlsym(RTLD_NEXT)), with nothing changed: the hook keeps no state that a thread sees.
 *
 *   Interposed: read write readv writev recv recvfrom recvmsg send sendto sendmsg
 *   connect accept accept4 poll ppoll select pselect epoll_wait epoll_pwait epoll_pwait2
 *   nanosleep clock_nanosleep usleep sleep close dup2 dup3 getaddrinfo; and the glibc
 *   names that reach the same code: __read __write __close __connect __send __poll
 *   __select __nanosleep __dup2 and the _FORTIFY_SOURCE entry points __read_chk
 *   __recv_chk __recvfrom_chk __poll_chk __ppoll_chk.
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
 * O_NONBLOCK stays the caller's
 *   The hook never leaves O_NONBLOCK set on a descriptor: the flag lives on the open file
 *   description, which dup'd numbers, plain threads, libc's own I/O (stdio, recvmmsg,
 *   sendfile) and other processes (a child that inherits a socket or pipe as its stdin)
 *   share. A call on a fiber is made non-blocking per call instead:
 *   - sockets: read/recv/readv/recvmsg/write/send/writev/sendmsg carry MSG_DONTWAIT (read
 *     is made as recv, readv as recvmsg, write as send, writev as sendmsg: what the kernel
 *     does for them on a socket). Nothing another user of the socket does can make a
 *     fiber's call block, and nothing the fiber does changes theirs.
 *   - connect: O_NONBLOCK is set for that one connect(2) call and cleared right after
 *     (there is no per-call flag); a thread that reads the socket's flags during that
 *     call, or a child exec'd in it, would see it.
 *   - everything else - pipes, FIFOs, eventfd, timerfd, signalfd, inotify, ttys and other
 *     character devices, and accept on a listener - is polled (poll(2), timeout 0) and
 *     the real call made only when it is ready; a regular file is always ready.
 *   A descriptor the caller made non-blocking gets libc's answer (EAGAIN) on a fiber too;
 *   F_GETFL is asked when a call would block, so the caller may change the flag at any
 *   time, through any number.
 *
 * What is guaranteed for pipes (and listeners)
 *   - Read: a fiber's read of a blocking pipe parks until the pipe is readable (data, or
 *     no writer left), then reads: a readable pipe does not block.
 *   - Write: Linux reports a pipe writable when a slot of at least PIPE_BUF (4096) bytes
 *     is free, so a fiber's blocking write of up to PIPE_BUF bytes is made once the pipe
 *     is writable, whole and atomic, without blocking; a longer write goes PIPE_BUF bytes
 *     per readiness until all is written (interleaving with other writers at PIPE_BUF
 *     boundaries, which POSIX allows for writes above PIPE_BUF).
 *   - Other polled descriptors (ttys and other character devices, eventfd, timerfd,
 *     signalfd, inotify): reads as for pipes; a write is made whole once poll says
 *     writable, and may still wait for room beyond what poll promised (a long write to a
 *     tty whose reader is slow blocks the thread). Regular files and block devices always
 *     poll ready: their reads and writes wait for the disk on the thread.
 *   - Fibers of one thread never race each other between the readiness check and the
 *     call (nothing switches there). Another thread or process that reads the same pipe
 *     (or writes it, or accepts on the same listener) can take the data (the room, the
 *     connection) in between; the fiber's call then blocks its thread until more comes,
 *     as that thread's own blocking call would. A pipe or listener shared that way should
 *     be made non-blocking by the program (the fibers then park on EAGAIN and never
 *     block). Sockets have no such window (MSG_DONTWAIT).
 *
 * Semantics kept
 *   - SO_RCVTIMEO / SO_SNDTIMEO bound a parked read or write as they bound a blocked one
 *     (then EAGAIN; EINPROGRESS for connect, EALREADY for a connect retried while the
 *     handshake is pending, which waits again as Linux's does); poll's, select's and the
 *     sleeps' timeouts are deadlines on CLOCK_MONOTONIC.
 *   - connect to an AF_UNIX listener whose backlog is full waits for room (a blocking
 *     socket's behaviour), retrying every 1, 2, 4 ... 32 ms until SO_SNDTIMEO (then
 *     EAGAIN): there is nothing to poll for.
 *   - Partial transfers as libc: a blocking write or send on a stream returns when all
 *     bytes are queued, or with the count so far when a timeout or an error cuts it short.
 *     recv/recvmsg with MSG_WAITALL on a stream socket wait for all the bytes (recvmsg
 *     stops early when ancillary data comes); on datagrams, and with MSG_PEEK, one call
 *     once data is there (AF_UNIX's behaviour; TCP's blocking MSG_PEEK|MSG_WAITALL waits
 *     for all n bytes, a fiber's returns what is there).
 *   - close() (and dup2/dup3 over a number) from another fiber of the thread wakes a fiber
 *     parked on that descriptor with EBADF; close() from another thread does too: the
 *     number is then held by a placeholder (reads see end of file) until the waiting
 *     threads' schedulers have let go of it, a few microseconds unless they are busy.
 *     Threads whose fibers park through the hook publish their scheduler for this
 *     (fiber_sched_self: fiber_run/fiber_join then wait instead of failing with EDEADLK).
 *   - poll/select/epoll_wait: any number of fibers may wait on one descriptor; a number
 *     closed (by anyone, libc included) and reused for a new file is waited on as the new
 *     file. select takes nfds above FD_SETSIZE, as Linux does.
 *   - clock_nanosleep parks on CLOCK_REALTIME, MONOTONIC, BOOTTIME and TAI; an absolute
 *     time becomes a monotonic deadline when the call is made (a later clock step does
 *     not move it). CPU-time and _ALARM clocks go to libc.
 *   - getaddrinfo on a fiber runs on the runtime's offload pool (fiber_offload) while the
 *     fiber is parked; if no pool thread can be had it runs on the thread, as before.
 *   - fork: the hook keeps no kernel object per thread; the runtime gives the child its
 *     own poller, and the child's fibers carry on.
 *
 * Differences (by design)
 *   - A parked fiber is not interrupted by a signal: a signal handler runs on the thread,
 *     and the call continues as with SA_RESTART (no EINTR); ppoll's, pselect's and
 *     epoll_pwait's signal mask applies to the first, non-parking check only. A parked
 *     call is not a pthread_cancel point.
 *   - poll/select: POLLPRI and entries that ask for neither reading nor writing are
 *     reported when the call looks (at the start, on each wake-up, at the deadline) but
 *     do not wake it by themselves (fiber_wait_fds).
 *
 * Not covered (these block the thread on a fiber, as they do without the hook)
 *   - libc calling itself: stdio (fread/fgets/fwrite on a socket or pipe), recvmmsg,
 *     sendmmsg, sendfile, splice, gethostbyname, getnameinfo, the resolver's own sockets.
 *   - open/openat of a FIFO (waits for the other end), flock, fcntl(F_SETLKW), lockf,
 *     waitpid, pthread mutexes and condition variables, read(2) of a regular file or
 *     block device (the disk), and any raw syscall().
 *   - close_range(), closefrom() and raw close system calls wake nobody: a fiber parked
 *     on such a number waits for its deadline (for ever without one).
 *   - A fiber that parks on a number while another thread is already inside close() for
 *     it, and dup2/dup3 over a number that fibers of ANOTHER thread wait on, are not
 *     woken (close the number first). Numbers at or above 2^20 are not woken across
 *     threads either.
 *   - Signal handlers: the hook cannot tell that it runs in one. A handler on a fiber's
 *     thread may call an interposed function that does not wait - write() to a
 *     non-blocking self-pipe (EAGAIN passes straight through), or to one that has room -
 *     but must not call one that would park, nor close() a descriptor a fiber waits on
 *     (both touch the scheduler the handler may have interrupted).
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
