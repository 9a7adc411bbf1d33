/* context.c - new contexts, the layout the assembly relies on, and stacks. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13, include/uapi/asm-generic/mman-common.h */
#endif

#if defined(__x86_64__)
/* The frame switch_x86_64.S pushes; see the table there. */
struct saved_frame {
    uint32_t mxcsr;
    uint16_t x87_cw;
    uint16_t pad;
    uint64_t r15, r14, r13, r12, rbx, rbp;
    uint64_t ret;
};
_Static_assert(offsetof(struct saved_frame, mxcsr) == 0, "switch_x86_64.S: mxcsr at 0");
_Static_assert(offsetof(struct saved_frame, x87_cw) == 4, "switch_x86_64.S: x87 cw at 4");
_Static_assert(offsetof(struct saved_frame, r15) == 8, "switch_x86_64.S: r15 at 8");
_Static_assert(offsetof(struct saved_frame, r13) == 24, "switch_x86_64.S: r13 (arg) at 24");
_Static_assert(offsetof(struct saved_frame, r12) == 32, "switch_x86_64.S: r12 (entry) at 32");
_Static_assert(offsetof(struct saved_frame, rbp) == 48, "switch_x86_64.S: rbp at 48");
_Static_assert(offsetof(struct saved_frame, ret) == 56, "switch_x86_64.S: return address at 56");
_Static_assert(sizeof(struct saved_frame) == 64, "switch_x86_64.S: 64-byte frame");
#elif defined(__aarch64__)
/* The frame switch_aarch64.S stores; see the table there. */
struct saved_frame {
    double   d[8];   /* d8..d15 */
    uint64_t x[10];  /* x19..x28 */
    uint64_t x29, x30;
};
_Static_assert(offsetof(struct saved_frame, d) == 0, "switch_aarch64.S: d8 at 0");
_Static_assert(offsetof(struct saved_frame, x) == 64, "switch_aarch64.S: x19 at 64");
_Static_assert(offsetof(struct saved_frame, x29) == 144, "switch_aarch64.S: x29 at 144");
_Static_assert(offsetof(struct saved_frame, x30) == 152, "switch_aarch64.S: x30 at 152");
_Static_assert(sizeof(struct saved_frame) == 160, "switch_aarch64.S: 160-byte frame");
#else
#error "fiberbench: no context switch for this architecture (x86-64 and aarch64 only)"
#endif

_Static_assert(offsetof(fiber_context_t, sp) == 0, "the switch stores sp at offset 0");

void fiber_context_make(fiber_context_t *ctx, void *stack_lo, void *stack_hi,
                        void (*entry)(void *), void *arg)
{
    uintptr_t top = (uintptr_t)stack_hi & ~(uintptr_t)15;
    if (top - (uintptr_t)stack_lo < sizeof(struct saved_frame) + 256)
        FIBER_PANIC("fiber_context_make: stack of %zu bytes is too small",
                    (size_t)((uintptr_t)stack_hi - (uintptr_t)stack_lo));
    /* The frame sits right under the 16-aligned top, so once the switch has popped it the
     * trampoline runs with sp 16-byte aligned, as a call requires. */
    struct saved_frame *fr = (struct saved_frame *)(top - sizeof *fr);
    memset(fr, 0, sizeof *fr);
#if defined(__x86_64__)
    fr->mxcsr  = 0x1F80; /* psABI initial values: all exceptions masked, round to nearest */
    fr->x87_cw = 0x037F;
    fr->r12 = (uint64_t)(uintptr_t)entry;
    fr->r13 = (uint64_t)(uintptr_t)arg;
    fr->ret = (uint64_t)(uintptr_t)fiber_context_trampoline;
#else
    fr->x[0] = (uint64_t)(uintptr_t)entry;
    fr->x[1] = (uint64_t)(uintptr_t)arg;
    fr->x30  = (uint64_t)(uintptr_t)fiber_context_trampoline;
#endif
    ctx->sp = fr;
}

#if defined(__x86_64__)
/*
 * The strict switch's MXCSR policy, chosen once per process by CPU. Both policies keep
 * the psABI's callee-saved control bits; they differ in the status flags (caller-saved,
 * so either is conforming) and in cost (switch_x86_64.S, (2)):
 *   always: ldmxcsr of the resumed context's saved word on every switch: the flags
 *           travel with the context. Measured cheap on the AMD EPYC (Zen 4) here,
 *           where reading stmxcsr's result back is not.
 *   cmp:    MXCSR written only when the control bits differ, the current flags kept:
 *           the flags belong to the thread. On the Intel Xeon here a stmxcsr after a
 *           ldmxcsr that changed the flags costs 75-90 ns - as every switch did under
 *           `always` between two contexts differing only in a sticky flag (one has done
 *           an inexact division) - against ~5 ns; cmp never changes the flags.
 * AMD CPUs get always (measured on Zen 4 only); every other CPU cmp.
 * fiber_context_switch_strict(_ret) and the scheduler jump through these pointers. They
 * start at cmp (correct on every CPU) and a constructor switches them on AMD: no code
 * runs before the C runtime is up (a GNU ifunc resolver would, before the sanitizers'
 * and the fuzzer's runtimes, which instrument it). The tests' builds force one policy
 * (FIBER_MXCSR_FORCE_ALWAYS, FIBER_MXCSR_FORCE_CMP).
 */
#include <cpuid.h>

typedef void switch_fn_t(fiber_context_t *, fiber_context_t *);
#if defined(FIBER_MXCSR_FORCE_ALWAYS)
switch_fn_t *fiber__strict_switch = fiber_context_switch_strict_always;
switch_fn_t *fiber__strict_switch_ret = fiber_context_switch_strict_always_ret;
switch_fn_t *fiber__sched_switch_strict = fiber__sched_switch_strict_always;
int (*fiber__sched_join_strict)(fiber_context_t *, struct fiber *) = fiber__sched_join_strict_always;
#else
switch_fn_t *fiber__strict_switch = fiber_context_switch_strict_cmp;
switch_fn_t *fiber__strict_switch_ret = fiber_context_switch_strict_cmp_ret;
switch_fn_t *fiber__sched_switch_strict = fiber__sched_switch_strict_cmp;
int (*fiber__sched_join_strict)(fiber_context_t *, struct fiber *) = fiber__sched_join_strict_cmp;
#endif

#if !defined(FIBER_MXCSR_FORCE_ALWAYS) && !defined(FIBER_MXCSR_FORCE_CMP)
static int mxcsr_always_suits(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    /* "AuthenticAMD" in ebx, edx, ecx */
    return b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
}

__attribute__((constructor)) static void pick_mxcsr_policy(void)
{
    if (!mxcsr_always_suits())
        return;
    fiber__strict_switch = fiber_context_switch_strict_always;
    fiber__strict_switch_ret = fiber_context_switch_strict_always_ret;
    fiber__sched_switch_strict = fiber__sched_switch_strict_always;
    fiber__sched_join_strict = fiber__sched_join_strict_always;
}
#endif

const char *fiber_context_mxcsr_policy(void)
{
    return fiber__strict_switch == fiber_context_switch_strict_always ? "always" : "cmp";
}
#else
const char *fiber_context_mxcsr_policy(void)
{
    return "none";
}
#endif

void fiber_context_switch(fiber_context_t *from, fiber_context_t *to)
{
#ifdef FIBER_LEAN_FP
    fiber_context_switch_lean(from, to);
#else
    fiber_context_switch_strict(from, to);
#endif
}

const char *fiber_context_variant(void)
{
#ifdef FIBER_LEAN_FP
    return "lean";
#else
    return "strict";
#endif
}

_Noreturn void fiber__context_returned(void)
{
    FIBER_PANIC("a context entry function returned; it must switch away for good");
}

_Noreturn void fiber__panic(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fiber: %s (%s:%d)\n", msg, file, line);
    fflush(stderr);
    abort();
}

/* ---- stacks ---- */

enum { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };
static atomic_int guard_mode = GUARD_UNKNOWN;

const char *fiber_guard_mode(void)
{
    switch (atomic_load(&guard_mode)) {
    case GUARD_MADVISE:  return "madvise";
    case GUARD_MPROTECT: return "mprotect";
    default:             return "unknown";
    }
}

size_t fiber__page_mask;

size_t fiber__page_size(void)
{
    static size_t ps; /* every thread computes the same value: relaxed is enough */
    size_t v = __atomic_load_n(&ps, __ATOMIC_RELAXED);
    if (!v) {
        long r = sysconf(_SC_PAGESIZE);
        v = r > 0 ? (size_t)r : 4096;
        __atomic_store_n(&fiber__page_mask, v - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&ps, v, __ATOMIC_RELAXED);
    }
    return v;
}

static size_t page_size(void)
{
    return fiber__page_size();
}

/* The guard below each stack: 64 KiB (or one page, if pages are larger), on every
 * architecture. GCC's -fstack-clash-protection probes a large frame every 4 KiB on x86-64
 * but only every 64 KiB on aarch64 (--param stack-clash-protection-guard-size=16), so
 * aarch64 needs 64 KiB even for probed code. On x86-64 one page would do for probed code,
 * but the code run on fibers is mostly not ours and not probed: Debian 12's glibc
 * (buffered_vfprintf, behind every fprintf to stderr: 8,496 bytes; strtold 13.9 KB),
 * libcurl (8.6 KB) and libcrypto (11 KB) have unprobed frames larger than 4 KiB, and one
 * entered with less than its size left would land in the stack below - the neighbour
 * fiber's record and top frames - without a fault. 64 KiB catches every unprobed frame
 * smaller than that. The guard costs address space only, and no more mappings than a
 * one-page guard: MADV_GUARD_INSTALL marks page table entries inside the stack's own
 * mapping, and mprotect makes one PROT_NONE mapping whatever its length. */
#define GUARD_BYTES 65536
static size_t guard_size(void)
{
    return page_size() > GUARD_BYTES ? page_size() : GUARD_BYTES;
}

size_t fiber__stack_round(size_t size)
{
    size_t ps = page_size();
    return (size + ps - 1) & ~(ps - 1);
}

/* Installs the guard at p. MADV_GUARD_INSTALL (Linux 6.13) marks its pages in the
 * page tables and leaves the mapping whole, so adjacent stacks can even merge into one
 * VMA; mprotect splits the mapping, and each guarded stack then costs two of the
 * vm.max_map_count (65530) entries. */
static int install_guard(void *p, size_t len)
{
    int mode = atomic_load(&guard_mode);
    if (mode == GUARD_UNKNOWN) {
        /* FIBER_GUARD=mprotect forces the old way, to measure or test it on a new kernel. */
        const char *env = getenv("FIBER_GUARD");
        if (env && strcmp(env, "mprotect") == 0)
            atomic_store(&guard_mode, mode = GUARD_MPROTECT);
    }
    if (mode != GUARD_MPROTECT) {
        if (madvise(p, len, MADV_GUARD_INSTALL) == 0) {
            if (mode == GUARD_UNKNOWN)
                atomic_store(&guard_mode, GUARD_MADVISE);
            return 0;
        }
        if (errno != EINVAL || mode == GUARD_MADVISE)
            return -1;
        atomic_store(&guard_mode, GUARD_MPROTECT);
    }
    return mprotect(p, len, PROT_NONE);
}

int fiber_stack_alloc(fiber_stack_t *st, size_t size, int guard)
{
    size_t ps = page_size();
    if (size == 0 || size > ((size_t)1 << 40)) {
        errno = EINVAL;
        return -1;
    }
    size = (size + ps - 1) & ~(ps - 1);
    size_t gsize = guard ? guard_size() : 0;
    void *map = mmap(NULL, size + gsize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -1; /* ENOMEM, also when vm.max_map_count is reached */
    if (guard && install_guard(map, gsize) != 0) {
        int e = errno;
        munmap(map, size + gsize);
        errno = (e == EFAULT || e == EAGAIN) ? ENOMEM : e;
        return -1;
    }
    st->map = map;
    st->map_size = size + gsize;
    st->lo = (char *)map + gsize;
    st->hi = (char *)map + gsize + size;
    st->guarded = guard != 0;
    st->valgrind_id = VALGRIND_STACK_REGISTER(st->lo, st->hi);
    return 0;
}

/* A pidfd for this process, for process_madvise(); reopened after a fork, since the
 * parent's would point the advice at the parent. -1 where the kernel has none. */
static int self_pidfd(void)
{
    static int fd = -1;
    static pid_t owner;
    pid_t me = getpid();
    if (fd >= 0 && owner == me)
        return fd;
    if (fd >= 0 && owner != me)
        close(fd); /* inherited from the parent */
#ifdef SYS_pidfd_open
    fd = (int)syscall(SYS_pidfd_open, me, 0);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
#else
    fd = -1;
#endif
    owner = me;
    return fd;
}

/* Installs n guards (at map + i*stride) with one process_madvise() call: Linux 6.13
 * accepts any advice, MADV_GUARD_INSTALL included, for the calling process. Returns 0,
 * or -1 when that is not available here. */
static int guards_batched(char *map, size_t n, size_t stride, size_t gsize)
{
#ifdef SYS_process_madvise
    struct iovec iov[FRESH_MAX];
    if (n > FRESH_MAX || atomic_load(&guard_mode) == GUARD_MPROTECT || RUNNING_ON_VALGRIND)
        return -1;
    int pidfd = self_pidfd();
    if (pidfd < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = map + i * stride;
        iov[i].iov_len = gsize;
    }
    long r = syscall(SYS_process_madvise, pidfd, iov, n, MADV_GUARD_INSTALL, 0);
    if (r != (long)(n * gsize))
        return -1;
    atomic_store(&guard_mode, GUARD_MADVISE);
    return 0;
#else
    (void)map; (void)n; (void)stride; (void)gsize;
    return -1;
#endif
}

int fiber__stack_alloc_batch(fiber_stack_t *st, size_t n, size_t size)
{
    size_t ps = page_size();
    if (size == 0 || size > ((size_t)1 << 40) || n == 0 || n > FRESH_MAX) {
        errno = EINVAL;
        return -1;
    }
    size = (size + ps - 1) & ~(ps - 1);
    size_t gsize = guard_size();
    size_t stride = size + gsize;
    char *map = mmap(NULL, n * stride, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        /* Near a limit a smaller request may still fit: fall back to one stack. */
        return n > 1 && fiber_stack_alloc(&st[0], size, 1) == 0 ? 1 : -1;
    }
    if (atomic_load(&guard_mode) == GUARD_UNKNOWN) {
        const char *env = getenv("FIBER_GUARD");
        if (env && strcmp(env, "mprotect") == 0)
            atomic_store(&guard_mode, GUARD_MPROTECT);
    }
    if (guards_batched(map, n, stride, gsize) != 0) {
        for (size_t i = 0; i < n; i++) {
            if (install_guard(map + i * stride, gsize) != 0) {
                int e = errno;
                /* Keep the stacks whose guards are in; give back the rest. */
                munmap(map + i * stride, (n - i) * stride);
                if (i == 0) {
                    errno = (e == EFAULT || e == EAGAIN) ? ENOMEM : e;
                    return -1;
                }
                n = i;
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *m = map + i * stride;
        st[i].map = m;
        st[i].map_size = stride;
        st[i].lo = m + gsize;
        st[i].hi = m + stride;
        st[i].guarded = 1;
        st[i].valgrind_id = VALGRIND_STACK_REGISTER(st[i].lo, st[i].hi);
    }
    return (int)n;
}

void fiber_stack_free(fiber_stack_t *st)
{
    if (!st->map)
        return;
    VALGRIND_STACK_DEREGISTER(st->valgrind_id);
    munmap(st->map, st->map_size);
    st->map = NULL;
}
